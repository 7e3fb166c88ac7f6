//! A device's roofline, measured with the engine's own kernels: memory bandwidth
//! (copy, read and a STREAM triad, each the best of several passes over buffers far
//! larger than the caches, as STREAM reports) and the matrix-multiply throughput of
//! the device's `matmul` per weight precision at a prefill-sized shape; and a model's
//! shape as the device holds it (bytes per matrix, KV element size), which
//! [`results::roofline`] turns into ceilings.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use results::{DeviceLimits, ModelShape};

use crate::EngineError;
use crate::config::{Ffn, ModelConfig};
use crate::device::LocalDevice;
use crate::format::Precision;
pub use crate::measure::{Bandwidth, best_of};
use crate::ops::DeviceOps;

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeasureOptions {
    /// Bytes of each bandwidth buffer.
    pub buffer_bytes: u64,
    /// Timed passes of each measurement (the best counts), after one untimed.
    pub passes: u32,
    /// The multiply measured: rows (tokens) x out x in.
    pub matmul: (usize, usize, usize),
}

impl MeasureOptions {
    /// What a run measures before its first load point (about a second on a CPU); the
    /// matmul at the default prefill chunk's 256 rows.
    pub const QUICK: Self = Self {
        buffer_bytes: 256 << 20,
        passes: 3,
        matmul: (256, 1024, 1024),
    };
    /// What `infermeter roofline` measures.
    pub const FULL: Self = Self {
        buffer_bytes: 256 << 20,
        passes: 5,
        matmul: (256, 2048, 2048),
    };
    /// The matmul at `cfg`'s own MLP shape (`[intermediate, hidden]`, an expert's
    /// for MoE), so that a run's ceilings are the device's speed at the shapes its
    /// model uses.
    pub fn at_model_shape(self, cfg: &ModelConfig) -> Self {
        let out = match &cfg.ffn {
            Ffn::Dense { intermediate } => *intermediate,
            Ffn::Moe(m) => m.expert_intermediate,
        };
        Self {
            matmul: (self.matmul.0, out, cfg.hidden),
            ..self
        }
    }

    /// The larger buffers a GPU needs (its L2 holds tens of MB).
    pub fn for_gpu(self) -> Self {
        Self {
            buffer_bytes: self.buffer_bytes.max(1 << 30),
            matmul: (self.matmul.0.max(512), 4096, 4096),
            ..self
        }
    }
}

/// A seeded `[rows, cols]` matrix drawn from N(0, 0.02), quantized to `precision`.
pub fn seeded_matrix(
    rows: usize,
    cols: usize,
    precision: Precision,
    seed: u64,
) -> Result<Arc<QTensor>, EngineError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).map_err(|e| EngineError::Tensor(e.to_string()))?;
    let data: Vec<f32> = (0..rows * cols).map(|_| normal.sample(&mut rng)).collect();
    let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu)?;
    Ok(Arc::new(QTensor::quantize(&t, precision.ggml())?))
}

/// GFLOP/s (2 x multiply-adds) of `dev`'s `matmul` at `opts.matmul` for `precision`.
pub fn measure_matmul<D: DeviceOps>(
    dev: &D,
    precision: Precision,
    opts: MeasureOptions,
) -> Result<f64, EngineError> {
    let (rows, out, inp) = opts.matmul;
    let w = dev.weight(seeded_matrix(out, inp, precision, 7)?)?;
    // Activations through the embedding op: a seeded table, one row per token.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0f32, 1.0).map_err(|e| EngineError::Tensor(e.to_string()))?;
    let table = dev.table(
        (0..rows * inp).map(|_| normal.sample(&mut rng)).collect(),
        rows,
        inp,
    )?;
    let ids: Vec<u32> = (0..rows as u32).collect();
    let x = dev.embed(&table, &ids)?;
    let s = best_of(opts.passes, || {
        dev.matmul(&x, &w)?;
        dev.synchronize()
    })?;
    Ok(2.0 * (rows * out * inp) as f64 / s / 1e9)
}

/// Measures `dev`'s limits: bandwidth, and its matmul for each of `precisions`.
pub fn measure<D: LocalDevice>(
    dev: &D,
    precisions: &[Precision],
    opts: MeasureOptions,
) -> Result<DeviceLimits, EngineError> {
    let bw = dev.measure_bandwidth(opts.buffer_bytes, opts.passes)?;
    let mut matmul = std::collections::BTreeMap::new();
    for &p in precisions {
        matmul.insert(p.to_string(), measure_matmul(dev, p, opts)?);
    }
    let (rows, out, inp) = opts.matmul;
    Ok(DeviceLimits {
        device: dev.device_label(),
        name: dev.device_name(),
        threads: dev.threads(),
        buffer_bytes: opts.buffer_bytes,
        copy_gb_per_s: bw.copy_gb_per_s,
        read_gb_per_s: bw.read_gb_per_s,
        triad_gb_per_s: bw.triad_gb_per_s,
        matmul_gflop_per_s: matmul,
        matmul_shape: format!("{rows}x{out}x{inp}"),
        matmul_engine: dev.matmul_engine(rows),
    })
}

/// A loaded model's shape: [`model_shape`] with the matrix bytes the device really
/// holds (a GGUF's embedding, and so a tied output head, may be in another format than
/// the layers).
pub fn held_shape<D: LocalDevice>(model: &crate::runtime::Model<D>) -> ModelShape {
    let mut shape = model_shape::<D>(&model.config, model.precision);
    let held = model.held_bytes();
    shape.shared_weight_bytes = held.shared;
    shape.expert_weight_bytes = held.per_expert;
    shape
}

/// `cfg` at `precision` as device `D` holds it, every matrix in `precision` (what
/// `infermeter roofline` projects; a run judges by [`held_shape`]).
pub fn model_shape<D: LocalDevice>(cfg: &ModelConfig, precision: Precision) -> ModelShape {
    let (h, hd) = (cfg.hidden as u64, cfg.head_dim as u64);
    let (q, kv) = (cfg.heads as u64 * hd, cfg.kv_heads as u64 * hd);
    let layers = cfg.layers as u64;
    let bytes = |n: u64| D::matrix_bytes(precision, n);
    let attn = bytes(h * q) * 2 + bytes(h * kv) * 2;
    let head = bytes(cfg.vocab as u64 * h);
    let (shared_ffn, expert, experts, top_k, moe_layers, ffn_active) = match &cfg.ffn {
        Ffn::Dense { intermediate } => {
            let i = *intermediate as u64;
            (bytes(h * i) * 3, 0, 0, 0, 0, 3 * h * i)
        }
        Ffn::Moe(m) => {
            let i = m.expert_intermediate as u64;
            // The router is f32 on every device (the quantizer keeps it so).
            (
                4 * h * m.experts as u64,
                bytes(h * i) * 3,
                m.experts as u32,
                m.top_k as u32,
                cfg.layers as u32,
                3 * h * i * m.top_k as u64 + h * m.experts as u64,
            )
        }
    };
    ModelShape {
        model: cfg.name.into(),
        precision: precision.to_string(),
        shared_weight_bytes: (attn + shared_ffn) * layers + head,
        expert_weight_bytes: expert,
        experts,
        experts_per_token: top_k,
        moe_layers,
        kv_bytes_per_token: cfg.kv_bytes_per_token(D::KV_ELEM_BYTES),
        matrix_flop_per_token: 2.0 * ((2 * h * q + 2 * h * kv + ffn_active) * layers) as f64,
        head_flop_per_token: 2.0 * (cfg.vocab as u64 * h) as f64,
        attention_flop_per_position: 4.0 * (layers * q) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuOps;
    use crate::preset::{LLAMA3_8B, QWEN3_30B_A3B};

    #[test]
    fn llama3_8b_reads_its_matrices_once_per_decode_step() {
        // Quantized matrices keep their blocks on the CPU; Q8_0 is 34 bytes per 32
        // weights on disk and as held.
        let s = model_shape::<CpuOps>(&LLAMA3_8B, Precision::Q8_0);
        let matrices = LLAMA3_8B.params().matrix - LLAMA3_8B.vocab as u64 * 4096;
        assert_eq!(s.expert_weight_bytes, 0);
        let per_weight = s.shared_weight_bytes as f64 / matrices as f64;
        assert!((per_weight - 34.0 / 32.0).abs() < 1e-9, "{per_weight}");
        // 32 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes (the default f16 cache).
        assert_eq!(s.kv_bytes_per_token, 32 * 8 * 128 * 2 * 2);
        // ~7e9 matrix parameters in the layers, 2 operations each.
        assert!(s.matrix_flop_per_token > 13.0e9 && s.matrix_flop_per_token < 14.5e9);
    }

    #[test]
    fn a_moe_model_splits_its_experts_from_the_shared_weights() {
        let s = model_shape::<CpuOps>(&QWEN3_30B_A3B, Precision::Q4_0);
        assert_eq!((s.experts, s.experts_per_token, s.moe_layers), (128, 8, 48));
        let held = |n: u64| crate::cpu::qmatmul::held_bytes(Precision::Q4_0.ggml(), n).unwrap();
        // One expert: gate, up and down of 2048 x 768.
        assert_eq!(s.expert_weight_bytes, 3 * held(2048 * 768));
        // Shared: attention (q, o of 2048 x 4096; k, v of 2048 x 512), the f32 router,
        // and the output head.
        let attn = 2 * held(2048 * 4096) + 2 * held(2048 * 512);
        let router = 4 * 2048 * 128;
        let head = held(QWEN3_30B_A3B.vocab as u64 * 2048);
        assert_eq!(s.shared_weight_bytes, (attn + router) * 48 + head);
    }

    #[test]
    fn the_cpu_measures_positive_limits() {
        let opts = MeasureOptions {
            buffer_bytes: 8 << 20,
            passes: 1,
            matmul: (8, 64, 64),
        };
        let l = measure(&CpuOps::default(), &[Precision::Q4_0, Precision::F32], opts).unwrap();
        assert_eq!(l.device, "cpu");
        assert!(l.copy_gb_per_s > 0.1 && l.read_gb_per_s > 0.1, "{l:?}");
        assert!(l.triad_gb_per_s.is_some_and(|t| t > 0.1));
        assert_eq!(l.matmul_gflop_per_s.len(), 2);
        assert!(l.matmul_gflop_per_s.values().all(|g| *g > 0.0));
        assert_eq!(l.matmul_shape, "8x64x64");
    }
}
