//! Weight formats: the element types and GGUF block layouts matrices are stored in.

use std::fmt;
use std::str::FromStr;

use candle_core::quantized::GgmlDType;

use crate::EngineError;

/// Storage format of weight matrices (norms always stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// GGUF Q8_0: blocks of 32 int8 with one f16 scale (34 bytes per 32 weights).
    Q8_0,
    /// GGUF Q4_0: blocks of 32 int4 with one f16 scale (18 bytes per 32 weights).
    Q4_0,
    /// GGUF Q4_1: blocks of 32 int4 with an f16 scale and minimum (20 bytes per 32).
    Q4_1,
}

impl Precision {
    /// Every format, widest first.
    pub const ALL: [Precision; 6] = [
        Precision::F32,
        Precision::F16,
        Precision::Bf16,
        Precision::Q8_0,
        Precision::Q4_0,
        Precision::Q4_1,
    ];

    /// candle's dtype for it.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Precision::F32 => GgmlDType::F32,
            Precision::F16 => GgmlDType::F16,
            Precision::Bf16 => GgmlDType::BF16,
            Precision::Q8_0 => GgmlDType::Q8_0,
            Precision::Q4_0 => GgmlDType::Q4_0,
            Precision::Q4_1 => GgmlDType::Q4_1,
        }
    }

    /// The format of a candle dtype, if supported.
    pub fn from_ggml(d: GgmlDType) -> Option<Self> {
        Some(match d {
            GgmlDType::F32 => Precision::F32,
            GgmlDType::F16 => Precision::F16,
            GgmlDType::BF16 => Precision::Bf16,
            GgmlDType::Q8_0 => Precision::Q8_0,
            GgmlDType::Q4_0 => Precision::Q4_0,
            GgmlDType::Q4_1 => Precision::Q4_1,
            _ => return None,
        })
    }

    /// (weights per block, bytes per block).
    pub fn block(self) -> (u64, u64) {
        match self {
            Precision::F32 => (1, 4),
            Precision::F16 | Precision::Bf16 => (1, 2),
            Precision::Q8_0 => (32, 34),
            Precision::Q4_0 => (32, 18),
            Precision::Q4_1 => (32, 20),
        }
    }

    /// Bytes of `n` weights (a multiple of the block size) in this format.
    pub fn bytes_for(self, n: u64) -> u64 {
        let (per, bytes) = self.block();
        n.div_ceil(per) * bytes
    }

    /// Bits per weight, block overhead included.
    pub fn bits_per_weight(self) -> f64 {
        let (per, bytes) = self.block();
        bytes as f64 * 8.0 / per as f64
    }

    /// Names of the supported formats, for messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Q8_0 => "q8_0",
            Precision::Q4_0 => "q4_0",
            Precision::Q4_1 => "q4_1",
        })
    }
}

impl FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| EngineError::UnknownPrecision(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
            assert_eq!(Precision::from_ggml(p.ggml()), Some(p));
        }
        assert!("q3_k".parse::<Precision>().is_err());
    }

    #[test]
    fn block_sizes_match_candle() {
        for p in Precision::ALL {
            let d = p.ggml();
            assert_eq!(p.block(), (d.block_size() as u64, d.type_size() as u64));
        }
        assert_eq!(Precision::Q4_1.bits_per_weight(), 5.0);
    }
}
