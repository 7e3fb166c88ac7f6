//! [`DeviceOps`] on a CUDA GPU, first version: every op on the device through the
//! kernels of [`super::gpu::Gpu`], simple and correct before fast.
//!
//! - Activations are f32 device buffers `[rows, cols]`, shared by `Arc` (ops allocate
//!   their outputs).
//! - Weights keep their storage format on the device (GGUF blocks for the quantized
//!   ones); `matmul` runs the decode GEMV over 8 rows at a time, and prompt chunks
//!   (from [`gemm_min_rows`] rows) through cuBLAS when it is installed.
//! - The KV cache is slot-major per layer, as on the CPU, in f16 (the default) or f32
//!   ([`CudaOps::open_with_kv`], for parity tests); decode rows go through split-KV
//!   attention, prompt chunks through the tiled prefill kernel.
//! - MoE layers stay on the device (`moe_ffn`): routing (softmax, top-k with ties to
//!   the lower id, as the host reference [`route_row`]), grouping by expert, then three
//!   grouped launches (gate/up, down, combine). `moe_route` (host routing) remains for
//!   shapes the device routing does not take.
//!
//! Status: compiled and type-checked; correctness against the CPU engine
//! (`kernels/tests/cuda_ops.rs`, `kernels/tests/cuda_engine.rs`) runs only on a GPU.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use cudarc::driver::CudaSlice;

use super::CudaError;
use super::attention::{KvBuf, KvDtype, RowTables};
use super::geometry::{
    PREFILL_MAX_HEAD_DIM, decode_geometry, gemm_min_rows, moe_groups, prefill_tiles,
};
use super::gpu::{GEMV_MAX_BATCH, Gpu};
use super::moe::{DEVICE_MAX_EXPERTS, DEVICE_MAX_TOP_K, ExpertMatrix, ExpertMlp};
use crate::EngineError;
use crate::config::RopeStyle;
use crate::format::Precision;
use crate::ops::{AttnSeq, DeviceOps, ExpertWeights, KvLayout, Routing};

/// The CUDA device.
#[derive(Clone)]
pub struct CudaOps {
    gpu: Arc<Gpu>,
    ordinal: usize,
    kv_dtype: KvDtype,
}

impl CudaOps {
    /// The device on GPU `ordinal`, with an f16 KV cache.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        Self::open_with_kv(ordinal, KvDtype::F16)
    }

    /// The device on GPU `ordinal` with a KV cache of `kv_dtype` (f32 for parity
    /// tests against the CPU engine).
    pub fn open_with_kv(ordinal: usize, kv_dtype: KvDtype) -> Result<Self, CudaError> {
        Ok(Self {
            gpu: Arc::new(Gpu::open(ordinal)?),
            ordinal,
            kv_dtype,
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
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
}

/// A weight as the grouped expert launch sees it.
fn matrix(w: &CudaWeight) -> ExpertMatrix<'_> {
    ExpertMatrix {
        bytes: &w.bytes,
        out: w.out,
        inp: w.inp,
        format: w.format,
    }
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

    fn upload_u32(&self, v: &[u32]) -> Result<Arc<CudaSlice<u32>>, EngineError> {
        // Index vectors repeat in every layer of a step: uploaded once
        // (`Gpu::upload_cached_u32`). A zero-length buffer is fine for cudarc, but
        // kernels are never launched on one (each launcher returns early).
        Ok(self.gpu.upload_cached_u32(v)?)
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
        if x.rows >= gemm_min_rows(w.format) && self.gpu.blas().is_some() {
            self.gpu.gemm(
                w.format,
                &w.bytes,
                &x.data.as_view(),
                &mut y.as_view_mut(),
                (w.out, w.inp, x.rows),
            )?;
            return Ok(self.act(y, x.rows, w.out));
        }
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

    /// One fused launch per 8 rows (the GEMV's batch limit) for decode; prompt chunks
    /// that the GEMM takes go through it (each weight read once) and then SwiGLU.
    fn gate_up_silu(
        &self,
        x: &CudaAct,
        gate: &CudaWeight,
        up: &CudaWeight,
    ) -> Result<CudaAct, EngineError> {
        if x.rows >= gemm_min_rows(gate.format) && self.gpu.blas().is_some() {
            return self.swiglu(&self.matmul(x, gate)?, &self.matmul(x, up)?);
        }
        if x.cols != gate.inp || (gate.out, gate.inp, gate.format) != (up.out, up.inp, up.format) {
            return Err(err(format!(
                "gate/up of [{}, {}] by [{}, {}] and [{}, {}]",
                x.rows, x.cols, gate.out, gate.inp, up.out, up.inp
            )));
        }
        let mut y = self.gpu.zeros(x.rows * gate.out)?;
        let mut r = 0;
        while r < x.rows {
            let n = GEMV_MAX_BATCH.min(x.rows - r);
            let xs = x.data.slice(r * x.cols..(r + n) * x.cols);
            let mut ys = y.slice_mut(r * gate.out..(r + n) * gate.out);
            self.gpu.gemv_gate_up(
                gate.format,
                (&gate.bytes, &up.bytes),
                &xs,
                &mut ys,
                (gate.out, gate.inp, n),
            )?;
            r += n;
        }
        Ok(self.act(y, x.rows, gate.out))
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
            k.push(self.gpu.kv_zeros(self.kv_dtype, n)?);
            v.push(self.gpu.kv_zeros(self.kv_dtype, n)?);
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

    /// Single-token rows (decode) go through split-KV decode attention when the shape
    /// allows; prompt chunks (and decode rows it cannot take) through the tiled prefill
    /// kernel, or the per-row kernel for heads over 128.
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
        let (mut decode_rows, mut other_rows) = (Vec::new(), Vec::new());
        let mut runs = Vec::new();
        let mut longest = 0usize;
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
            if s.rows.len() == 1 {
                decode_rows.push(s.rows.start as u32);
                longest = longest.max(s.start + 1);
            } else {
                other_rows.extend(s.rows.clone().map(|r| r as u32));
                runs.push((s.rows.start, s.rows.len()));
            }
        }
        if tables.is_empty() {
            tables.push(0);
        }
        let geometry = decode_geometry(
            decode_rows.len(),
            heads,
            l.kv_heads,
            l.head_dim,
            longest,
            self.gpu.sm_count(),
        );
        if geometry.is_none() {
            runs.extend(decode_rows.iter().map(|&r| (r as usize, 1)));
            other_rows.append(&mut decode_rows);
        }
        let (d_pos, d_tab) = (self.upload_u32(&row_pos)?, self.upload_u32(&row_table)?);
        let d_tables = self.upload_u32(&tables)?;
        let t = RowTables {
            pos: &d_pos,
            table: &d_tab,
            tables: &d_tables,
        };
        let mut out = self.gpu.zeros(q.rows * q.cols)?;
        let dims = (heads, l.kv_heads, l.head_dim, l.block_size);
        let cache = (&kv.k[layer], &kv.v[layer]);
        if l.head_dim <= PREFILL_MAX_HEAD_DIM {
            self.gpu.prefill_attention(
                &q.data,
                cache,
                &prefill_tiles(&runs),
                &t,
                &mut out,
                dims,
            )?;
        } else if !other_rows.is_empty() {
            let listed = self.upload_u32(&other_rows)?;
            self.gpu.attention(
                &q.data,
                cache,
                &listed,
                other_rows.len(),
                &t,
                &mut out,
                dims,
            )?;
        }
        if let Some(g) = geometry {
            let listed = self.upload_u32(&decode_rows)?;
            self.gpu.decode_attention(
                &q.data,
                cache,
                &listed,
                decode_rows.len(),
                &t,
                &mut out,
                dims,
                g,
            )?;
        }
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

    /// Every expert of the layer in three launches (grouped gate/up, grouped down,
    /// combine) over the rows routed to it, grouped 8 slots at a time.
    fn expert_dispatch(
        &self,
        x: &CudaAct,
        routing: &Routing,
        experts: &[ExpertWeights<CudaWeight>],
    ) -> Result<CudaAct, EngineError> {
        let rows = x.rows;
        let mut out = self.gpu.zeros(rows * x.cols)?;
        let Some(first) = experts.first() else {
            return Ok(self.act(out, rows, x.cols));
        };
        let hidden = first.gate.inp;
        if hidden != x.cols || routing.experts.len() != rows * routing.top_k {
            return Err(err(format!(
                "experts of width {hidden} for rows of {}, or a routing of {} pairs for {rows} rows",
                x.cols,
                routing.experts.len()
            )));
        }
        let groups = moe_groups(routing, experts.len())
            .ok_or_else(|| err("a routing names an expert the layer does not have".into()))?;
        if groups.group_expert.is_empty() {
            return Ok(self.act(out, rows, x.cols));
        }
        let slab = self.gather(&x.data, rows, x.cols, &groups.slot_row)?;
        let mlps: Vec<ExpertMlp<'_>> = experts
            .iter()
            .map(|e| [matrix(&e.gate), matrix(&e.up), matrix(&e.down)])
            .collect();
        let y = self.gpu.grouped_ffn(&mlps, &groups, &slab)?;
        self.gpu
            .moe_combine(&y, &groups, &mut out, hidden, routing.top_k)?;
        Ok(self.act(out, rows, x.cols))
    }

    /// Routing, grouping and the experts all on the device (no wait for the host):
    /// `moe_route_f32`, `moe_group`, the grouped gate/up and down, the combine. Shapes
    /// the device routing does not take (over 1024 experts, over 8 per token) route on
    /// the host, as does `top_k = 0`.
    fn moe_ffn(
        &self,
        x: &CudaAct,
        logits: &CudaAct,
        (top_k, renormalise): (usize, bool),
        experts: &[ExpertWeights<CudaWeight>],
    ) -> Result<CudaAct, EngineError> {
        let n_experts = experts.len();
        if n_experts > DEVICE_MAX_EXPERTS || top_k > DEVICE_MAX_TOP_K || top_k == 0 {
            let routing = self.moe_route(logits, top_k, renormalise)?;
            return self.expert_dispatch(x, &routing, experts);
        }
        let rows = x.rows;
        let mut out = self.gpu.zeros(rows * x.cols)?;
        let Some(first) = experts.first() else {
            return Ok(self.act(out, rows, x.cols));
        };
        if logits.rows != rows || logits.cols != n_experts || first.gate.inp != x.cols {
            return Err(err(format!(
                "MoE of [{rows}, {}] with router logits [{}, {}] over {n_experts} experts of width {}",
                x.cols, logits.rows, logits.cols, first.gate.inp
            )));
        }
        if rows == 0 {
            return Ok(self.act(out, rows, x.cols));
        }
        let routing = self
            .gpu
            .moe_route(&logits.data, rows, n_experts, top_k, renormalise)?;
        let grouping = self.gpu.moe_group(&routing)?;
        let (slot_row, slots) = self.gpu.slot_rows(&grouping);
        let mut slab = self.gpu.zeros(slots * x.cols)?;
        // Every slot's row is below `rows` (moe_group makes them from pair indices).
        self.gpu.embed(
            &x.data,
            slot_row,
            &mut slab,
            (rows, x.cols),
            (rows - 1) as u32,
        )?;
        let mlps: Vec<ExpertMlp<'_>> = experts
            .iter()
            .map(|e| [matrix(&e.gate), matrix(&e.up), matrix(&e.down)])
            .collect();
        let y = self.gpu.grouped_ffn_on_device(&mlps, &grouping, &slab)?;
        self.gpu
            .moe_combine_on_device(&y, &grouping, &routing, &mut out, x.cols)?;
        Ok(self.act(out, rows, x.cols))
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
