//! A CUDA GPU as a local target's device (`local-cuda`, key `device`: the GPU's
//! ordinal). Weights stay in their storage format on the device; the KV cache is f16.

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

    fn memory_plan(
        cfg: &ModelConfig,
        precision: Precision,
        kv_tokens: usize,
        kv_elem_bytes: u64,
    ) -> MemoryPlan {
        let p = cfg.params();
        MemoryPlan {
            weights: Self::matrix_bytes(precision, p.matrix)
                + 4 * (cfg.vocab * cfg.hidden) as u64
                + 4 * p.vector,
            kv_cache: cfg
                .kv_bytes_per_token(kv_elem_bytes)
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

    /// The default f16 cache ([`CudaOps::open`]).
    const KV_ELEM_BYTES: u64 = 2;
    fn kernels_label() -> String {
        "infermeter CUDA kernels (NVRTC)".into()
    }
    fn matmul_engine(&self, rows: usize) -> String {
        // The threshold of the float formats; quantized ones switch at 64 rows.
        let gemm = rows >= crate::cuda::geometry::gemm_min_rows(Precision::Bf16);
        match (gemm, self.gpu().blas().is_some()) {
            (true, true) => {
                "cuBLAS GemmEx (f32 accumulation; quantized weights dequantized to bf16)".into()
            }
            (true, false) => {
                "infermeter CUDA GEMV kernels, 8 rows per launch (libcublas not found)".into()
            }
            (false, _) => "infermeter CUDA GEMV kernels, 8 rows per launch".into(),
        }
    }

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
