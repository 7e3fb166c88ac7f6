//! A weight matrix on the CPU. Q4_0, Q4_1 and Q8_0 keep their blocks and multiply
//! through [`QMatrix`] for every row count (decode and prompt chunks take one numeric
//! path); float formats are held as f32 (f16/bf16 -> f32 is exact; the CPU engine
//! computes in f32) and multiplied by candle's GEMM.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::qmatmul::QMatrix;
use crate::EngineError;

/// A matrix `[out, in]`.
pub enum Linear {
    /// Block-quantized weights.
    Quantized(QMatrix),
    /// Float weights as f32, transposed: `[in, out]`.
    Dense(Tensor),
}

impl Linear {
    /// Wraps a matrix.
    pub fn new(t: Arc<QTensor>) -> Result<Self, EngineError> {
        if QMatrix::supports(t.dtype()) {
            return Ok(Linear::Quantized(QMatrix::from_qtensor(&t)?));
        }
        Ok(Linear::Dense(
            t.dequantize(&Device::Cpu)?.t()?.contiguous()?,
        ))
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        match self {
            Linear::Quantized(q) => q.bytes(),
            Linear::Dense(t) => (t.elem_count() * 4) as u64,
        }
    }

    /// `x [rows, in]` times the matrix transposed: `[rows, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        match self {
            Linear::Quantized(_) => Self::forward_many(&[self], x)?
                .pop()
                .ok_or_else(|| EngineError::Tensor("quantized product gave no result".into())),
            Linear::Dense(t) => Ok(x.matmul(t)?),
        }
    }

    /// Products of `x` with each of `ws`: quantized matrices of one input width run in
    /// one pass ([`QMatrix::matmul_many`]), anything else one by one.
    pub fn forward_many(ws: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>, EngineError> {
        let quantized: Option<Vec<&QMatrix>> = ws
            .iter()
            .map(|w| match w {
                Linear::Quantized(q) => Some(q),
                Linear::Dense(_) => None,
            })
            .collect();
        match quantized {
            Some(qs)
                if qs
                    .iter()
                    .all(|q| Some(q.in_features()) == x.dims().get(1).copied()) =>
            {
                let rows = x.dim(0)?;
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                QMatrix::matmul_many(&qs, &xs, rows)
                    .into_iter()
                    .zip(&qs)
                    .map(|(out, q)| {
                        Ok(Tensor::from_vec(
                            out,
                            (rows, q.out_features()),
                            &Device::Cpu,
                        )?)
                    })
                    .collect()
            }
            _ => ws
                .iter()
                .map(|w| match w {
                    Linear::Dense(t) => Ok(x.matmul(t)?),
                    Linear::Quantized(q) => Err(EngineError::Tensor(format!(
                        "input of shape {:?} for a matrix of input width {}",
                        x.dims(),
                        q.in_features()
                    ))),
                })
                .collect(),
        }
    }
}
