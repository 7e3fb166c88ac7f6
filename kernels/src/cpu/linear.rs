//! A weight matrix on the CPU: quantized formats keep their blocks for decode (GEMV,
//! bandwidth bound) plus an exact f32 dequantization for prompt chunks; float formats
//! are held as f32 (f16/bf16 -> f32 is exact; the CPU engine computes in f32).

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{Device, Tensor};

use crate::EngineError;

/// A matrix `[out, in]`.
pub struct Linear {
    q: Option<QMatMul>,
    dense_t: Tensor,
    bytes: u64,
}

impl Linear {
    /// Rows from which the dense path is used for quantized formats. Measured on 2
    /// cores with SmolLM2 Q4_1 (`examples/engine_speed`): at 4 rows dense decode was
    /// slower (47 vs 63 tok/s); from prompt chunks of 16+ rows dense GEMM is 3-4x
    /// faster.
    pub const DENSE_MIN_ROWS: usize = 16;

    /// Wraps a matrix.
    pub fn new(t: Arc<QTensor>) -> Result<Self, EngineError> {
        let dense_t = t.dequantize(&Device::Cpu)?.t()?.contiguous()?;
        let f32_bytes = (dense_t.elem_count() * 4) as u64;
        let quantized = t.dtype().block_size() > 1;
        let (q, bytes) = if quantized {
            let qbytes = t.storage_size_in_bytes() as u64;
            (Some(QMatMul::from_arc(t)?), qbytes + f32_bytes)
        } else {
            (None, f32_bytes)
        };
        Ok(Self { q, dense_t, bytes })
    }

    /// Bytes held (quantized blocks plus the f32 copy).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `x [rows, in]` times the matrix transposed: `[rows, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        match &self.q {
            Some(q) if x.dim(0)? < Self::DENSE_MIN_ROWS => Ok(candle_core::Module::forward(q, x)?),
            _ => Ok(x.matmul(&self.dense_t)?),
        }
    }
}
