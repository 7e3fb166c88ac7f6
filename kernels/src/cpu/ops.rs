//! [`DeviceOps`] on candle-core's CPU device.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{D, DType, Device, Tensor};

use half::f16;

use super::attention::{KvElem, LayerKv, attention};
use super::linear::Linear;
use crate::EngineError;
use crate::config::RopeStyle;
use crate::ops::{AttnSeq, DeviceOps, ExpertWeights, KvDtype, KvLayout, Routing};

/// The CPU device, with the element type of the KV caches it allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOps {
    /// Element type of the KV cache: f16 by default, f32 for exactness tests.
    pub kv_dtype: KvDtype,
}

impl Default for CpuOps {
    fn default() -> Self {
        Self::with_kv(KvDtype::F16)
    }
}

impl CpuOps {
    /// The CPU with a KV cache of `kv_dtype`.
    pub const fn with_kv(kv_dtype: KvDtype) -> Self {
        Self { kv_dtype }
    }
}

/// The paged KV cache in host memory: per layer, keys and values slot-major
/// `[slots, kv_heads, head_dim]`.
pub struct CpuKv {
    layout: KvLayout,
    store: KvStore,
}

/// Keys and values of every layer, in the cache's element type.
enum KvStore {
    F32(Layers<f32>),
    F16(Layers<f16>),
}

/// Per layer, keys and values.
struct Layers<E> {
    k: Vec<Vec<E>>,
    v: Vec<Vec<E>>,
}

impl<E: KvElem> Layers<E> {
    fn new(layers: usize, n: usize) -> Self {
        Self {
            k: (0..layers).map(|_| vec![E::default(); n]).collect(),
            v: (0..layers).map(|_| vec![E::default(); n]).collect(),
        }
    }

    /// Stores rows `k`, `v` (`[slots.len(), row]`) at `slots` of `layer`.
    fn write(&mut self, layer: usize, row: usize, k: &[f32], v: &[f32], slots: &[u32]) {
        for (i, &s) in slots.iter().enumerate() {
            let s = s as usize;
            E::store(
                &k[i * row..(i + 1) * row],
                &mut self.k[layer][s * row..(s + 1) * row],
            );
            E::store(
                &v[i * row..(i + 1) * row],
                &mut self.v[layer][s * row..(s + 1) * row],
            );
        }
    }

    fn layer(&self, layer: usize) -> LayerKv<'_, E> {
        LayerKv {
            k: &self.k[layer],
            v: &self.v[layer],
        }
    }
}

impl CpuKv {
    /// Element type of its keys and values.
    pub fn dtype(&self) -> KvDtype {
        match self.store {
            KvStore::F32(_) => KvDtype::F32,
            KvStore::F16(_) => KvDtype::F16,
        }
    }
}

fn dims2(x: &Tensor) -> Result<(usize, usize), EngineError> {
    Ok(x.dims2()?)
}

impl DeviceOps for CpuOps {
    type Act = Tensor;
    type Weight = Linear;
    type Table = Tensor;
    type Kv = CpuKv;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| f())
    }

    fn weight(&self, host: Arc<QTensor>) -> Result<Linear, EngineError> {
        Linear::new(host)
    }

    fn table(&self, data: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor, EngineError> {
        Ok(Tensor::from_vec(data, (rows, cols), &Device::Cpu)?)
    }

    fn weight_bytes(&self, w: &Linear) -> u64 {
        w.bytes()
    }

    fn embed(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor, EngineError> {
        let ids = Tensor::new(ids, &Device::Cpu)?;
        Ok(table.index_select(&ids, 0)?)
    }

    fn matmul(&self, x: &Tensor, w: &Linear) -> Result<Tensor, EngineError> {
        w.forward(x)
    }

    fn matmul_many(&self, x: &Tensor, ws: &[&Linear]) -> Result<Vec<Tensor>, EngineError> {
        Linear::forward_many(ws, x)
    }

    fn rms_norm(
        &self,
        x: &Tensor,
        weight: &Tensor,
        eps: f32,
        width: usize,
    ) -> Result<Tensor, EngineError> {
        let (rows, cols) = dims2(x)?;
        let w = weight.flatten_all()?;
        if width == cols {
            return Ok(candle_nn::ops::rms_norm(x, &w, eps)?);
        }
        let grouped = x.reshape((rows * cols / width, width))?;
        Ok(candle_nn::ops::rms_norm(&grouped, &w, eps)?.reshape((rows, cols))?)
    }

    fn rope(
        &self,
        x: &Tensor,
        head_dim: usize,
        positions: &[u32],
        cos_sin: &(Tensor, Tensor),
        style: RopeStyle,
    ) -> Result<Tensor, EngineError> {
        let (t, cols) = dims2(x)?;
        let heads = cols / head_dim;
        let pos = Tensor::new(positions, &Device::Cpu)?;
        let cos = cos_sin
            .0
            .index_select(&pos, 0)?
            .reshape((t, 1, head_dim / 2))?;
        let sin = cos_sin
            .1
            .index_select(&pos, 0)?
            .reshape((t, 1, head_dim / 2))?;
        // (batch = token, heads, seq = 1, head_dim): each token at its own position.
        let x4 = x.reshape((t, heads, 1, head_dim))?;
        let y = match style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x4, &cos, &sin)?,
            RopeStyle::Neox => candle_nn::rotary_emb::rope(&x4, &cos, &sin)?,
        };
        Ok(y.reshape((t, cols))?)
    }

    fn swiglu(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor, EngineError> {
        Ok((candle_nn::ops::silu(gate)? * up)?)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, EngineError> {
        Ok((a + b)?)
    }

    fn kv_alloc(&self, layout: KvLayout) -> Result<CpuKv, EngineError> {
        let n = layout.slots() * layout.kv_heads * layout.head_dim;
        let store = match self.kv_dtype {
            KvDtype::F32 => KvStore::F32(Layers::new(layout.layers, n)),
            KvDtype::F16 => KvStore::F16(Layers::new(layout.layers, n)),
        };
        Ok(CpuKv { layout, store })
    }

    fn kv_write(
        &self,
        kv: &mut CpuKv,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        slots: &[u32],
    ) -> Result<(), EngineError> {
        let row = kv.layout.kv_heads * kv.layout.head_dim;
        let k = k.flatten_all()?.to_vec1::<f32>()?;
        let v = v.flatten_all()?.to_vec1::<f32>()?;
        if k.len() != slots.len() * row || v.len() != k.len() {
            return Err(EngineError::Tensor(format!(
                "kv_write of {} values for {} slots of {row}",
                k.len(),
                slots.len()
            )));
        }
        if let Some(s) = slots.iter().find(|&&s| s as usize >= kv.layout.slots()) {
            return Err(EngineError::Tensor(format!("KV slot {s} out of range")));
        }
        match &mut kv.store {
            KvStore::F32(l) => l.write(layer, row, &k, &v, slots),
            KvStore::F16(l) => l.write(layer, row, &k, &v, slots),
        }
        Ok(())
    }

    fn attention(
        &self,
        kv: &CpuKv,
        layer: usize,
        q: &Tensor,
        heads: usize,
        seqs: &[AttnSeq<'_>],
    ) -> Result<Tensor, EngineError> {
        let (t, cols) = dims2(q)?;
        let qv = q.flatten_all()?.to_vec1::<f32>()?;
        let out = match &kv.store {
            KvStore::F32(l) => attention(&kv.layout, &l.layer(layer), &qv, heads, seqs)?,
            KvStore::F16(l) => attention(&kv.layout, &l.layer(layer), &qv, heads, seqs)?,
        };
        Ok(Tensor::from_vec(out, (t, cols), &Device::Cpu)?)
    }

    fn moe_route(
        &self,
        logits: &Tensor,
        top_k: usize,
        renormalise: bool,
    ) -> Result<Routing, EngineError> {
        let (_, e) = dims2(logits)?;
        let all = logits.flatten_all()?.to_vec1::<f32>()?;
        Ok(Routing::from_logits(&all, e, top_k, renormalise))
    }

    fn expert_dispatch(
        &self,
        x: &Tensor,
        routing: &Routing,
        experts: &[ExpertWeights<Linear>],
    ) -> Result<Tensor, EngineError> {
        let dev = Device::Cpu;
        let mut out = x.zeros_like()?;
        for (e, ew) in experts.iter().enumerate() {
            let (rows, weights) = routing.rows_of(e);
            if rows.is_empty() {
                continue;
            }
            let n = rows.len();
            let idx = Tensor::from_vec(rows, n, &dev)?;
            let xe = x.index_select(&idx, 0)?;
            let h = match Linear::forward_many(&[&ew.gate, &ew.up], &xe)?.as_slice() {
                [g, u] => self.swiglu(g, u)?,
                _ => return Err(EngineError::Tensor("gate/up products".into())),
            };
            let y =
                ew.down
                    .forward(&h)?
                    .broadcast_mul(&Tensor::from_vec(weights, (n, 1), &dev)?)?;
            out = out.index_add(&idx, &y, 0)?;
        }
        Ok(out)
    }

    fn select_rows(&self, x: &Tensor, rows: &[u32]) -> Result<Tensor, EngineError> {
        Ok(x.index_select(&Tensor::new(rows, &Device::Cpu)?, 0)?)
    }

    fn argmax(&self, x: &Tensor) -> Result<Vec<u32>, EngineError> {
        Ok(x.argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?)
    }

    fn to_host(&self, x: &Tensor) -> Result<Vec<f32>, EngineError> {
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
    }
}
