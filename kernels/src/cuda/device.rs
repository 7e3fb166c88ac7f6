//! A CUDA GPU as a local target's device (`local-cuda`, key `device`: the GPU's
//! ordinal). Weights stay in their storage format on the device; the KV cache is f32.

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
            weights: precision.bytes_for(p.matrix)
                + 4 * (cfg.vocab * cfg.hidden) as u64
                + 4 * p.vector,
            kv_cache: cfg.kv_bytes_per_token(4).saturating_mul(kv_tokens as u64),
        }
    }

    /// Not read yet: the device's free memory comes with the GPU engine (its loads
    /// report a device out-of-memory as such).
    fn available_bytes(&self) -> Option<u64> {
        None
    }
}
