//! A per-op profile of any device: [`Profiled`] wraps a [`DeviceOps`], runs every op
//! through it and adds the op's wall time (after the device has finished it) to a
//! table keyed by op, so a step's time can be attributed (`examples/engine_speed
//! profile=on`). The wrapper changes no result; it costs two clock reads per op, and
//! on a GPU a synchronisation per op (a profiled GPU step is slower than a plain one).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::quantized::QTensor;

use crate::EngineError;
use crate::config::RopeStyle;
use crate::ops::{AttnSeq, DeviceOps, ExpertWeights, KvLayout, Routing};

/// Calls and total time of one op.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpTime {
    /// Calls.
    pub calls: u64,
    /// Total wall time, seconds.
    pub total_s: f64,
}

/// `inner` with a time table.
pub struct Profiled<D> {
    /// The device.
    pub inner: D,
    table: Mutex<BTreeMap<String, OpTime>>,
}

impl<D: DeviceOps> Profiled<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            table: Mutex::new(BTreeMap::new()),
        }
    }

    /// The table so far, by op.
    pub fn table(&self) -> BTreeMap<String, OpTime> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Empties the table (after a warm-up).
    pub fn reset(&self) {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn timed<R>(
        &self,
        op: impl FnOnce() -> String,
        f: impl FnOnce() -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let t = Instant::now();
        let r = f();
        self.inner.synchronize()?;
        let s = t.elapsed().as_secs_f64();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let e = table.entry(op()).or_default();
        e.calls += 1;
        e.total_s += s;
        r
    }

    /// A matrix product's key: the op and the weights' size, so the output head
    /// (the largest matrix) stands apart from the layers' matrices.
    fn matmul_key(&self, op: &str, ws: &[&D::Weight]) -> String {
        let bytes: u64 = ws.iter().map(|w| self.inner.weight_bytes(w)).sum();
        format!("{op} ({:.2} MB of weights)", bytes as f64 / 1e6)
    }
}

impl<D: DeviceOps> DeviceOps for Profiled<D> {
    type Act = D::Act;
    type Weight = D::Weight;
    type Table = D::Table;
    type Kv = D::Kv;

    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.inner.scope(f)
    }
    fn synchronize(&self) -> Result<(), EngineError> {
        self.inner.synchronize()
    }
    fn weight(&self, host: Arc<QTensor>) -> Result<Self::Weight, EngineError> {
        self.inner.weight(host)
    }
    fn table(&self, data: Vec<f32>, rows: usize, cols: usize) -> Result<Self::Table, EngineError> {
        self.inner.table(data, rows, cols)
    }
    fn weight_bytes(&self, w: &Self::Weight) -> u64 {
        self.inner.weight_bytes(w)
    }
    fn embed(&self, table: &Self::Table, ids: &[u32]) -> Result<Self::Act, EngineError> {
        self.timed(|| "embed".into(), || self.inner.embed(table, ids))
    }
    fn matmul(&self, x: &Self::Act, w: &Self::Weight) -> Result<Self::Act, EngineError> {
        self.timed(
            || self.matmul_key("matmul", &[w]),
            || self.inner.matmul(x, w),
        )
    }
    fn matmul_many(
        &self,
        x: &Self::Act,
        ws: &[&Self::Weight],
    ) -> Result<Vec<Self::Act>, EngineError> {
        self.timed(
            || self.matmul_key(&format!("matmul x{}", ws.len()), ws),
            || self.inner.matmul_many(x, ws),
        )
    }
    fn rms_norm(
        &self,
        x: &Self::Act,
        weight: &Self::Table,
        eps: f32,
        width: usize,
    ) -> Result<Self::Act, EngineError> {
        self.timed(
            || "rms_norm".into(),
            || self.inner.rms_norm(x, weight, eps, width),
        )
    }
    fn rope(
        &self,
        x: &Self::Act,
        head_dim: usize,
        positions: &[u32],
        cos_sin: &(Self::Table, Self::Table),
        style: RopeStyle,
    ) -> Result<Self::Act, EngineError> {
        self.timed(
            || "rope".into(),
            || self.inner.rope(x, head_dim, positions, cos_sin, style),
        )
    }
    fn swiglu(&self, gate: &Self::Act, up: &Self::Act) -> Result<Self::Act, EngineError> {
        self.timed(|| "swiglu".into(), || self.inner.swiglu(gate, up))
    }
    fn add(&self, a: &Self::Act, b: &Self::Act) -> Result<Self::Act, EngineError> {
        self.timed(|| "add".into(), || self.inner.add(a, b))
    }
    fn kv_alloc(&self, layout: KvLayout) -> Result<Self::Kv, EngineError> {
        self.inner.kv_alloc(layout)
    }
    fn kv_write(
        &self,
        kv: &mut Self::Kv,
        layer: usize,
        k: &Self::Act,
        v: &Self::Act,
        slots: &[u32],
    ) -> Result<(), EngineError> {
        self.timed(
            || "kv_write".into(),
            || self.inner.kv_write(kv, layer, k, v, slots),
        )
    }
    fn attention(
        &self,
        kv: &Self::Kv,
        layer: usize,
        q: &Self::Act,
        heads: usize,
        seqs: &[AttnSeq<'_>],
    ) -> Result<Self::Act, EngineError> {
        self.timed(
            || "attention".into(),
            || self.inner.attention(kv, layer, q, heads, seqs),
        )
    }
    fn moe_route(
        &self,
        logits: &Self::Act,
        top_k: usize,
        renormalise: bool,
    ) -> Result<Routing, EngineError> {
        self.timed(
            || "moe_route".into(),
            || self.inner.moe_route(logits, top_k, renormalise),
        )
    }
    fn expert_dispatch(
        &self,
        x: &Self::Act,
        routing: &Routing,
        experts: &[ExpertWeights<Self::Weight>],
    ) -> Result<Self::Act, EngineError> {
        self.timed(
            || "expert_dispatch".into(),
            || self.inner.expert_dispatch(x, routing, experts),
        )
    }
    fn select_rows(&self, x: &Self::Act, rows: &[u32]) -> Result<Self::Act, EngineError> {
        self.timed(|| "select_rows".into(), || self.inner.select_rows(x, rows))
    }
    fn argmax(&self, x: &Self::Act) -> Result<Vec<u32>, EngineError> {
        self.timed(|| "argmax".into(), || self.inner.argmax(x))
    }
    fn to_host(&self, x: &Self::Act) -> Result<Vec<f32>, EngineError> {
        self.timed(|| "to_host".into(), || self.inner.to_host(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuOps;
    use crate::preset::TINY_DENSE;
    use crate::runtime::{Model, StepSeq};
    use crate::{Precision, weights};

    /// A profiled model computes what the plain one does, and its table counts one
    /// attention per layer per step.
    #[test]
    fn a_profiled_step_changes_nothing_and_counts_every_op() {
        let host = || weights::synthetic(&TINY_DENSE, Precision::Q4_1, 3).unwrap();
        let plain = Model::new(CpuOps::default(), TINY_DENSE.clone(), host()).unwrap();
        let profiled =
            Model::new(Profiled::new(CpuOps::default()), TINY_DENSE.clone(), host()).unwrap();
        let tokens: Vec<u32> = (0..9).map(|i| 100 + i * 7).collect();
        let blocks = [0u32, 1];
        let seqs = [StepSeq {
            tokens: &tokens,
            start: 0,
            blocks: &blocks,
            sample: true,
        }];
        let layout = plain.kv_layout(2, 16);
        let mut kv_a = plain.ops.kv_alloc(layout).unwrap();
        let mut kv_b = profiled.ops.kv_alloc(layout).unwrap();
        let a = plain.step(&mut kv_a, &layout, &seqs).unwrap();
        let b = profiled.step(&mut kv_b, &layout, &seqs).unwrap();
        assert_eq!(a, b);
        let table = profiled.ops.table();
        assert_eq!(table["attention"].calls, TINY_DENSE.layers as u64);
        assert!(table.values().all(|t| t.total_s >= 0.0 && t.calls > 0));
        assert!(
            table.keys().any(|k| k.starts_with("matmul x3")),
            "{table:?}"
        );
    }
}
