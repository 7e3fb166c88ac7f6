//! The CPU as a local target's device (`local-cpu`): host memory, one key of its own
//! (`kv_cache`: the KV cache's element type, f16 by default or f32).

use std::collections::BTreeMap;

use results::Device;
use workloads::settings::{KeySpec, KeyType};

use super::CpuOps;
use super::qmatmul::held_bytes;
use crate::EngineError;
use crate::config::ModelConfig;
use crate::device::LocalDevice;
use crate::format::Precision;
use crate::memory::{MemoryPlan, available_memory_bytes};
use crate::ops::KvDtype;

/// The KV cache element `settings` ask for (`kv_cache`).
fn kv_dtype(settings: &BTreeMap<String, String>) -> Result<KvDtype, EngineError> {
    match settings.get("kv_cache").map(String::as_str) {
        None | Some("f16") => Ok(KvDtype::F16),
        Some("f32") => Ok(KvDtype::F32),
        Some(v) => Err(EngineError::Setting {
            key: "kv_cache".into(),
            message: format!("`{v}` is not f16 or f32"),
        }),
    }
}

impl LocalDevice for CpuOps {
    const KIND: &'static str = "local-cpu";
    const DEVICE: Device = Device::Cpu;
    const KEYS: &'static [KeySpec] = crate::local_keys!(KeySpec {
        name: "kv_cache",
        ty: KeyType::Choice(&["f16", "f32"]),
        default: Some("f16"),
        help: "element type of the KV cache: f16 (half the bytes each decode step reads) or f32 (exact)",
    });
    const DEVICE_KEYS: &'static [&'static str] = &["kv_cache"];

    fn open(settings: &BTreeMap<String, String>) -> Result<Self, EngineError> {
        Ok(CpuOps::with_kv(kv_dtype(settings)?))
    }

    /// Quantized matrices keep their blocks (f16 scales; Q4_0 with its offset, [`held_bytes`]);
    /// float matrices are held as f32; the embedding table is f32 for lookups; norms
    /// f32; the KV cache `kv_tokens` slots of `kv_elem_bytes`-byte elements.
    fn memory_plan(
        cfg: &ModelConfig,
        precision: Precision,
        kv_tokens: usize,
        kv_elem_bytes: u64,
    ) -> MemoryPlan {
        let p = cfg.params();
        let matrices = Self::matrix_bytes(precision, p.matrix);
        let embed_table = 4 * (cfg.vocab * cfg.hidden) as u64;
        MemoryPlan {
            weights: matrices + embed_table + 4 * p.vector,
            kv_cache: cfg
                .kv_bytes_per_token(kv_elem_bytes)
                .saturating_mul(kv_tokens as u64),
        }
    }

    fn available_bytes(&self) -> Option<u64> {
        available_memory_bytes()
    }

    /// Quantized matrices keep their blocks ([`held_bytes`]: 20 bytes per 32 Q4 weights,
    /// 34 per 32 Q8 weights); float
    /// matrices are held as f32.
    fn matrix_bytes(precision: Precision, weights: u64) -> u64 {
        held_bytes(precision.ggml(), weights).unwrap_or(4 * weights)
    }

    /// The default f16 cache.
    const KV_ELEM_BYTES: u64 = 2;

    fn kv_elem_bytes(settings: &BTreeMap<String, String>) -> Result<u64, EngineError> {
        Ok(kv_dtype(settings)?.bytes())
    }

    fn kernels_label() -> String {
        // The quantized products' kernel, and attention's arithmetic.
        format!(
            "{}, attention {}",
            super::qmatmul::Kernel::detect().name(),
            super::kvdot::name()
        )
    }

    fn matmul_engine(&self, _rows: usize) -> String {
        "infermeter CPU kernels (own quantized products; candle-core GEMM for float weights)".into()
    }

    fn device_label(&self) -> String {
        "cpu".into()
    }

    fn device_name(&self) -> String {
        let mut s = sysinfo::System::new();
        s.refresh_cpu_all();
        s.cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown CPU".into())
    }

    fn threads(&self) -> Option<u32> {
        Some(rayon::current_num_threads() as u32)
    }

    fn measure_bandwidth(
        &self,
        buffer_bytes: u64,
        passes: u32,
    ) -> Result<crate::measure::Bandwidth, EngineError> {
        Ok(super::bandwidth::measure(buffer_bytes, passes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::{LLAMA3_8B, TINY_MOE};

    #[test]
    fn a_model_larger_than_memory_is_refused_with_figures() {
        let plan = CpuOps::memory_plan(&LLAMA3_8B, Precision::Bf16, 8192, 2);
        let err = plan.check(Some(24 << 30)).unwrap_err().to_string();
        assert!(err.contains("needs"), "{err}");
        assert!(err.contains("available"), "{err}");
        assert!(plan.weights > 30 << 30);
        CpuOps::memory_plan(&TINY_MOE, Precision::Q4_0, 8192, 2)
            .check(Some(24 << 30))
            .unwrap();
        // Llama 3 8B at Q4_0: 7.0e9 matrix weights in 20-byte blocks of 32.
        let q4 = CpuOps::memory_plan(&LLAMA3_8B, Precision::Q4_0, 0, 2);
        let matrix = LLAMA3_8B.params().matrix;
        assert!(q4.weights >= matrix / 32 * 20 && q4.weights < matrix / 32 * 20 + (5 << 30));
    }
}
