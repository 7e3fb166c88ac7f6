//! [`DeviceOps`] on a CUDA GPU, first version: every op on the device through the
//! kernels of [`super::gpu::Gpu`], simple and correct before fast.
//!
//! - Activations are f32 device buffers `[rows, cols]`, shared by `Arc` (ops allocate
//!   their outputs).
//! - Weights keep their storage format on the device (GGUF blocks for the quantized
//!   ones); `matmul` runs the decode GEMV over 8 rows at a time (prefill GEMM through
//!   cuBLAS comes next).
//! - The KV cache is f32, slot-major per layer, as on the CPU.
//! - MoE routing reads the router logits back and routes on the host with the CPU's
//!   [`route_row`] (so both devices route identically); experts run on the device.
//!
//! Status: compiled and type-checked; correctness against the CPU engine
//! (`kernels/tests/cuda_ops.rs`, `kernels/tests/cuda_engine.rs`) runs only on a GPU.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use cudarc::driver::CudaSlice;

use super::CudaError;
use super::gpu::{GEMV_MAX_BATCH, Gpu};
use crate::EngineError;
use crate::config::RopeStyle;
use crate::format::Precision;
use crate::ops::{AttnSeq, DeviceOps, ExpertWeights, KvLayout, Routing};

/// The CUDA device.
#[derive(Clone)]
pub struct CudaOps {
    gpu: Arc<Gpu>,
    ordinal: usize,
}

impl CudaOps {
    /// The device on GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        Ok(Self {
            gpu: Arc::new(Gpu::open(ordinal)?),
            ordinal,
        })
    }

    /// The GPU's ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
}

/// Activations on the device.
#[derive(Clone)]
pub struct CudaAct {
    data: Arc<CudaSlice<f32>>,
    rows: usize,
    cols: usize,
}

/// A weight matrix `[out, in]` on the device, in its storage format.
pub struct CudaWeight {
    bytes: CudaSlice<u8>,
    format: Precision,
    out: usize,
    inp: usize,
}

/// A table `[rows, cols]` of f32 on the device.
pub struct CudaTable {
    data: CudaSlice<f32>,
    rows: usize,
    cols: usize,
}

/// The paged KV cache on the device.
pub struct CudaKv {
    layout: KvLayout,
    k: Vec<CudaSlice<f32>>,
    v: Vec<CudaSlice<f32>>,
}

fn err(msg: String) -> EngineError {
    EngineError::Tensor(format!("cuda: {msg}"))
}

impl CudaOps {
    fn act(&self, data: CudaSlice<f32>, rows: usize, cols: usize) -> CudaAct {
        CudaAct {
            data: Arc::new(data),
            rows,
            cols,
        }
    }

    fn upload_u32(&self, v: &[u32]) -> Result<CudaSlice<u32>, EngineError> {
        // A zero-length device buffer is fine for cudarc, but kernels are never
        // launched on one (each launcher returns early).
        Ok(self.gpu.upload(v)?)
    }

    /// `x` rows `ids` (any order, repeats allowed).
    fn gather(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
        ids: &[u32],
    ) -> Result<CudaSlice<f32>, EngineError> {
        let max = ids.iter().copied().max().unwrap_or(0);
        if ids.is_empty() {
            return Ok(self.gpu.zeros(0)?);
        }
        let d_ids = self.upload_u32(ids)?;
        let mut y = self.gpu.zeros(ids.len() * cols)?;
        self.gpu.embed(x, &d_ids, &mut y, (rows, cols), max)?;
        Ok(y)
    }
}

impl DeviceOps for CudaOps {
    type Act = CudaAct;
    type Weight = CudaWeight;
    type Table = CudaTable;
    type Kv = CudaKv;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn synchronize(&self) -> Result<(), EngineError> {
        Ok(self.gpu.synchronize()?)
    }

    fn weight(&self, host: Arc<QTensor>) -> Result<CudaWeight, EngineError> {
        let format = Precision::from_ggml(host.dtype())
            .ok_or_else(|| err(format!("weight format {:?} is not supported", host.dtype())))?;
        let (out, inp) = host
            .shape()
            .dims2()
            .map_err(|e| err(format!("a weight is not a matrix: {e}")))?;
        let bytes = host.data()?;
        if bytes.len() != out * format.bytes_for(inp as u64) as usize {
            return Err(err(format!(
                "{} bytes for a [{out}, {inp}] {format:?} weight",
                bytes.len()
            )));
        }
        Ok(CudaWeight {
            bytes: self.gpu.upload(&bytes)?,
            format,
            out,
            inp,
        })
    }

    fn table(&self, data: Vec<f32>, rows: usize, cols: usize) -> Result<CudaTable, EngineError> {
        if data.len() != rows * cols {
            return Err(err(format!(
                "{} values for a [{rows}, {cols}] table",
                data.len()
            )));
        }
        Ok(CudaTable {
            data: self.gpu.upload(&data)?,
            rows,
            cols,
        })
    }

    fn weight_bytes(&self, w: &CudaWeight) -> u64 {
        w.bytes.len() as u64
    }

    fn embed(&self, table: &CudaTable, ids: &[u32]) -> Result<CudaAct, EngineError> {
        let y = self.gather(&table.data, table.rows, table.cols, ids)?;
        Ok(self.act(y, ids.len(), table.cols))
    }

    fn matmul(&self, x: &CudaAct, w: &CudaWeight) -> Result<CudaAct, EngineError> {
        if x.cols != w.inp {
            return Err(err(format!(
                "matmul of [{}, {}] by [{}, {}]",
                x.rows, x.cols, w.out, w.inp
            )));
        }
        let mut y = self.gpu.zeros(x.rows * w.out)?;
        let mut r = 0;
        while r < x.rows {
            let n = GEMV_MAX_BATCH.min(x.rows - r);
            let xs = x.data.slice(r * x.cols..(r + n) * x.cols);
            let mut ys = y.slice_mut(r * w.out..(r + n) * w.out);
            self.gpu
                .gemv(w.format, &w.bytes, &xs, &mut ys, (w.out, w.inp, n))?;
            r += n;
        }
        Ok(self.act(y, x.rows, w.out))
    }

    fn rms_norm(
        &self,
        x: &CudaAct,
        weight: &CudaTable,
        eps: f32,
        width: usize,
    ) -> Result<CudaAct, EngineError> {
        if width == 0 || !x.cols.is_multiple_of(width) || weight.rows * weight.cols != width {
            return Err(err(format!(
                "rms_norm of width {width} over {} columns",
                x.cols
            )));
        }
        let mut y = self.gpu.zeros(x.rows * x.cols)?;
        self.gpu.rms_norm(
            &x.data,
            &weight.data,
            &mut y,
            (x.rows, x.cols / width, width),
            eps,
        )?;
        Ok(self.act(y, x.rows, x.cols))
    }

    fn rope(
        &self,
        x: &CudaAct,
        head_dim: usize,
        positions: &[u32],
        cos_sin: &(CudaTable, CudaTable),
        style: RopeStyle,
    ) -> Result<CudaAct, EngineError> {
        let (cos, sin) = cos_sin;
        if head_dim == 0 || !x.cols.is_multiple_of(head_dim) || positions.len() != x.rows {
            return Err(err(format!("rope of {} rows by {head_dim}", x.rows)));
        }
        if let Some(&p) = positions.iter().max()
            && p as usize >= cos.rows
        {
            return Err(err(format!(
                "position {p} is beyond the RoPE table of {}",
                cos.rows
            )));
        }
        let mut y = self.gpu.copy(&x.data)?;
        let d_pos = self.upload_u32(positions)?;
        self.gpu.rope(
            &mut y,
            &d_pos,
            &cos.data,
            &sin.data,
            (x.rows, x.cols / head_dim, head_dim),
            cos.rows,
            style == RopeStyle::Interleaved,
        )?;
        Ok(self.act(y, x.rows, x.cols))
    }

    fn swiglu(&self, gate: &CudaAct, up: &CudaAct) -> Result<CudaAct, EngineError> {
        let mut y = self.gpu.zeros(gate.rows * gate.cols)?;
        self.gpu.elementwise(true, &gate.data, &up.data, &mut y)?;
        Ok(self.act(y, gate.rows, gate.cols))
    }

    fn add(&self, a: &CudaAct, b: &CudaAct) -> Result<CudaAct, EngineError> {
        let mut y = self.gpu.zeros(a.rows * a.cols)?;
        self.gpu.elementwise(false, &a.data, &b.data, &mut y)?;
        Ok(self.act(y, a.rows, a.cols))
    }

    fn kv_alloc(&self, layout: KvLayout) -> Result<CudaKv, EngineError> {
        let n = layout.slots() * layout.kv_heads * layout.head_dim;
        let mut k = Vec::with_capacity(layout.layers);
        let mut v = Vec::with_capacity(layout.layers);
        for _ in 0..layout.layers {
            k.push(self.gpu.zeros(n)?);
            v.push(self.gpu.zeros(n)?);
        }
        Ok(CudaKv { layout, k, v })
    }

    fn kv_write(
        &self,
        kv: &mut CudaKv,
        layer: usize,
        k: &CudaAct,
        v: &CudaAct,
        slots: &[u32],
    ) -> Result<(), EngineError> {
        let row = kv.layout.kv_heads * kv.layout.head_dim;
        let max = slots.iter().copied().max().unwrap_or(0);
        if max as usize >= kv.layout.slots() {
            return Err(err(format!("KV slot {max} out of range")));
        }
        if slots.is_empty() {
            return Ok(());
        }
        let d_slots = self.upload_u32(slots)?;
        let (kc, vc) = (&mut kv.k[layer], &mut kv.v[layer]);
        self.gpu
            .kv_write(&k.data, &v.data, &d_slots, (kc, vc), row, max)?;
        Ok(())
    }

    fn attention(
        &self,
        kv: &CudaKv,
        layer: usize,
        q: &CudaAct,
        heads: usize,
        seqs: &[AttnSeq<'_>],
    ) -> Result<CudaAct, EngineError> {
        let l = &kv.layout;
        let mut row_pos = vec![0u32; q.rows];
        let mut row_table = vec![0u32; q.rows];
        let mut tables = Vec::new();
        for s in seqs {
            let off = tables.len() as u32;
            let needed = (s.start + s.rows.len()).div_ceil(l.block_size);
            if s.blocks.len() < needed || s.rows.end > q.rows {
                return Err(err(
                    "a sequence's block table does not cover its rows".into()
                ));
            }
            tables.extend_from_slice(&s.blocks[..needed]);
            for (i, r) in s.rows.clone().enumerate() {
                row_pos[r] = (s.start + i) as u32;
                row_table[r] = off;
            }
        }
        if tables.is_empty() {
            tables.push(0);
        }
        let (d_pos, d_tab) = (self.upload_u32(&row_pos)?, self.upload_u32(&row_table)?);
        let d_tables = self.upload_u32(&tables)?;
        let mut out = self.gpu.zeros(q.rows * q.cols)?;
        self.gpu.attention(
            &q.data,
            (&kv.k[layer], &kv.v[layer]),
            (&d_pos, &d_tab),
            &d_tables,
            &mut out,
            (heads, l.kv_heads, l.head_dim, l.block_size),
        )?;
        Ok(self.act(out, q.rows, q.cols))
    }

    fn moe_route(
        &self,
        logits: &CudaAct,
        top_k: usize,
        renormalise: bool,
    ) -> Result<Routing, EngineError> {
        let all = self.to_host(logits)?;
        Ok(Routing::from_logits(&all, logits.cols, top_k, renormalise))
    }

    fn expert_dispatch(
        &self,
        x: &CudaAct,
        routing: &Routing,
        experts: &[ExpertWeights<CudaWeight>],
    ) -> Result<CudaAct, EngineError> {
        let mut out = self.gpu.zeros(x.rows * x.cols)?;
        for (e, ew) in experts.iter().enumerate() {
            let (rows, weights) = routing.rows_of(e);
            if rows.is_empty() {
                continue;
            }
            let xe = self.act(
                self.gather(&x.data, x.rows, x.cols, &rows)?,
                rows.len(),
                x.cols,
            );
            let h = self.swiglu(&self.matmul(&xe, &ew.gate)?, &self.matmul(&xe, &ew.up)?)?;
            let y = self.matmul(&h, &ew.down)?;
            let max = rows.iter().copied().max().unwrap_or(0);
            let (d_rows, d_w) = (self.upload_u32(&rows)?, self.gpu.upload(&weights)?);
            self.gpu
                .scatter_add_scaled(&y.data, &d_rows, &d_w, &mut out, x.cols, max)?;
        }
        Ok(self.act(out, x.rows, x.cols))
    }

    fn select_rows(&self, x: &CudaAct, rows: &[u32]) -> Result<CudaAct, EngineError> {
        let y = self.gather(&x.data, x.rows, x.cols, rows)?;
        Ok(self.act(y, rows.len(), x.cols))
    }

    fn argmax(&self, x: &CudaAct) -> Result<Vec<u32>, EngineError> {
        if x.rows == 0 {
            return Ok(Vec::new());
        }
        Ok(self.gpu.argmax(&x.data, x.rows, x.cols)?)
    }

    fn to_host(&self, x: &CudaAct) -> Result<Vec<f32>, EngineError> {
        Ok(self.gpu.download(&x.data)?)
    }
}
