//! What a model needs in memory on a device, checked before anything is loaded: a
//! preset that does not fit is refused with the bytes needed and available.

use crate::EngineError;
use crate::config::ModelConfig;
use crate::format::Precision;

/// Bytes a model will hold on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Weights as the device holds them.
    pub weights: u64,
    /// The KV cache.
    pub kv_cache: u64,
}

impl MemoryPlan {
    /// The CPU engine's needs: quantized matrices keep their blocks (scales widened
    /// to f32, [`crate::cpu::qmatmul::held_bytes`]); float matrices are held as f32;
    /// the embedding table is f32 for lookups; norms f32; the KV cache f32
    /// (`kv_tokens` slots).
    pub fn cpu(cfg: &ModelConfig, precision: Precision, kv_tokens: usize) -> Self {
        let p = cfg.params();
        let matrices =
            crate::cpu::qmatmul::held_bytes(precision.ggml(), p.matrix).unwrap_or(4 * p.matrix);
        let embed_table = 4 * (cfg.vocab * cfg.hidden) as u64;
        Self {
            weights: matrices + embed_table + 4 * p.vector,
            kv_cache: cfg.kv_bytes_per_token(4) * kv_tokens as u64,
        }
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache
    }

    /// Refuses when the total exceeds `available` (when known).
    pub fn check(&self, available: Option<u64>) -> Result<(), EngineError> {
        match available {
            Some(avail) if self.total() > avail => Err(EngineError::DoesNotFit {
                needed: self.total(),
                weights: self.weights,
                kv_cache: self.kv_cache,
                available: avail,
            }),
            _ => Ok(()),
        }
    }
}

/// Memory available to a new allocation on this host, if the OS says.
pub fn available_memory_bytes() -> Option<u64> {
    let mut s = sysinfo::System::new();
    s.refresh_memory();
    let a = s.available_memory();
    (a > 0).then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::{LLAMA3_8B, TINY_MOE};

    #[test]
    fn a_model_larger_than_memory_is_refused_with_figures() {
        let plan = MemoryPlan::cpu(&LLAMA3_8B, Precision::Bf16, 8192);
        let err = plan.check(Some(24 << 30)).unwrap_err().to_string();
        assert!(err.contains("needs"), "{err}");
        assert!(err.contains("available"), "{err}");
        assert!(plan.weights > 30 << 30);
        MemoryPlan::cpu(&TINY_MOE, Precision::Q4_0, 8192)
            .check(Some(24 << 30))
            .unwrap();
        // Llama 3 8B at Q4_0: 7.0e9 matrix weights in 24-byte blocks of 32.
        let q4 = MemoryPlan::cpu(&LLAMA3_8B, Precision::Q4_0, 0);
        let matrix = LLAMA3_8B.params().matrix;
        assert!(q4.weights >= matrix / 32 * 24 && q4.weights < matrix / 32 * 24 + (5 << 30));
    }
}
