//! A CUDA GPU as a local target's device (`local-cuda`, key `device`: the GPU's
//! ordinal). Weights stay in their storage format on the device; the KV cache is f32
//! (an f16 cache, the GPU default of the GPU engine issue, is not written yet).

use std::collections::BTreeMap;

use results::Device;
use workloads::settings::{KeySpec, KeyType};

use super::ops::CudaOps;
use crate::EngineError;
use crate::config::ModelConfig;
use crate::device::LocalDevice;
use crate::format::Precision;
use crate::memory::MemoryPlan;

impl LocalDevice for CudaOps {
    const KIND: &'static str = "local-cuda";
    const DEVICE: Device = Device::Gpu;
    const KEYS: &'static [KeySpec] = crate::local_keys!(KeySpec {
        name: "device",
        ty: KeyType::Integer { min: 0, max: 1024 },
        default: Some("0"),
        help: "the GPU's ordinal",
    });
    const DEVICE_KEYS: &'static [&'static str] = &["device"];

    fn open(settings: &BTreeMap<String, String>) -> Result<Self, EngineError> {
        let ordinal = match settings.get("device") {
            None => 0,
            Some(v) => v.parse::<usize>().map_err(|_| EngineError::Setting {
                key: "device".into(),
                message: format!("`{v}` is not a GPU ordinal"),
            })?,
        };
        Ok(CudaOps::open(ordinal)?)
    }

    fn memory_plan(cfg: &ModelConfig, precision: Precision, kv_tokens: usize) -> MemoryPlan {
        let p = cfg.params();
        MemoryPlan {
            weights: Self::matrix_bytes(precision, p.matrix)
                + 4 * (cfg.vocab * cfg.hidden) as u64
                + 4 * p.vector,
            kv_cache: cfg
                .kv_bytes_per_token(Self::KV_ELEM_BYTES)
                .saturating_mul(kv_tokens as u64),
        }
    }

    /// The driver's free memory on the device (what a model may take).
    fn available_bytes(&self) -> Option<u64> {
        self.gpu().memory().ok().map(|(free, _)| free)
    }

    /// Weights stay in their storage format (GGUF blocks for the quantized ones).
    fn matrix_bytes(precision: Precision, weights: u64) -> u64 {
        precision.bytes_for(weights)
    }

    const KV_ELEM_BYTES: u64 = 4;
    const MATMUL_ENGINE: &'static str = "infermeter CUDA GEMV kernels (8 rows per launch)";

    fn device_label(&self) -> String {
        format!("cuda:{}", self.ordinal())
    }

    fn device_name(&self) -> String {
        self.gpu().name().to_string()
    }

    fn threads(&self) -> Option<u32> {
        None
    }

    fn measure_bandwidth(
        &self,
        buffer_bytes: u64,
        passes: u32,
    ) -> Result<crate::measure::Bandwidth, EngineError> {
        Ok(self.gpu().measure_bandwidth(buffer_bytes, passes)?)
    }
}
