//! Model configuration: the shape of a decoder (dense or mixture-of-experts), its
//! attention layout and RoPE parameters, and the sizes derived from them (parameters
//! total and active, bytes per weight format, KV bytes per token).

use crate::format::Precision;

/// How the feed-forward block of every layer is built.
#[derive(Clone, Debug, PartialEq)]
pub enum Ffn {
    /// One SwiGLU MLP of `intermediate` width.
    Dense {
        /// MLP intermediate size.
        intermediate: usize,
    },
    /// A router choosing `top_k` of `experts` SwiGLU MLPs per token.
    Moe(MoeConfig),
}

/// Mixture-of-experts feed-forward.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeConfig {
    /// Experts per layer.
    pub experts: usize,
    /// Experts chosen per token.
    pub top_k: usize,
    /// Intermediate size of one expert.
    pub expert_intermediate: usize,
    /// Whether the chosen experts' softmax weights are renormalised to sum to one
    /// (Mixtral always; Qwen3-MoE's `norm_topk_prob`).
    pub norm_topk_prob: bool,
}

/// Which pairs of a head's dimensions RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): GGUF's layout for `llama` models, whose q/k weights
    /// the converter permutes.
    Interleaved,
    /// Halves (i, i + d/2): GPT-NeoX's layout, used by Qwen models.
    Neox,
}

/// RoPE frequency scaling for contexts beyond the pretraining length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Frequencies as given by the base.
    None,
    /// Positions divided by `factor` (linear interpolation).
    Linear {
        /// Interpolation factor.
        factor: f32,
    },
    /// Llama 3.1's rule: low frequencies divided by `factor`, high ones kept, a smooth
    /// ramp in between.
    Llama3 {
        /// Scale of the low frequencies.
        factor: f32,
        /// Wavelengths above `original_context / low_freq_factor` are scaled fully.
        low_freq_factor: f32,
        /// Wavelengths below `original_context / high_freq_factor` are kept.
        high_freq_factor: f32,
        /// Pretraining context length.
        original_context: usize,
    },
}

/// The shape of a decoder-only transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Preset name.
    pub name: &'static str,
    /// The real model this shape is taken from.
    pub source: &'static str,
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Dimension of one head (not always hidden / heads: Qwen3 uses 128 at 2048).
    pub head_dim: usize,
    /// Feed-forward block.
    pub ffn: Ffn,
    /// Per-head RMSNorm of queries and keys before RoPE (Qwen3).
    pub qk_norm: bool,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RoPE pair layout.
    pub rope_style: RopeStyle,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Context length (input + output tokens).
    pub context: usize,
    /// Whether the output projection shares the token embedding.
    pub tied_embeddings: bool,
}

/// Parameter counts of a model, split by how they are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamCounts {
    /// Every parameter (the embedding counted once when tied).
    pub total: u64,
    /// Parameters used per token (MoE: the chosen experts only; the embedding lookup
    /// counted, as is usual in model cards).
    pub active: u64,
    /// Parameters in matrices (stored in the weight format).
    pub matrix: u64,
    /// Parameters in norms (always f32).
    pub vector: u64,
}

impl ModelConfig {
    /// Query heads sharing one KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// The MoE config, if the model is one.
    pub fn moe(&self) -> Option<&MoeConfig> {
        match &self.ffn {
            Ffn::Moe(m) => Some(m),
            Ffn::Dense { .. } => None,
        }
    }

    /// Checks the shape is internally consistent.
    pub fn validate(&self) -> Result<(), String> {
        if self.heads == 0 || self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} query heads are not a multiple of {} KV heads",
                self.heads, self.kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} is odd", self.head_dim));
        }
        if let Some(m) = self.moe()
            && (m.top_k == 0 || m.top_k > m.experts)
        {
            return Err(format!("top_k {} of {} experts", m.top_k, m.experts));
        }
        Ok(())
    }

    /// Parameter counts.
    pub fn params(&self) -> ParamCounts {
        let h = self.hidden as u64;
        let q = (self.heads * self.head_dim) as u64;
        let kv = (self.kv_heads * self.head_dim) as u64;
        let attn = h * q * 2 + h * kv * 2;
        let (ffn_total, ffn_active) = match &self.ffn {
            Ffn::Dense { intermediate } => {
                let m = 3 * h * *intermediate as u64;
                (m, m)
            }
            Ffn::Moe(m) => {
                let expert = 3 * h * m.expert_intermediate as u64;
                let router = h * m.experts as u64;
                (
                    expert * m.experts as u64 + router,
                    expert * m.top_k as u64 + router,
                )
            }
        };
        let norms = 2 * h
            + if self.qk_norm {
                2 * self.head_dim as u64
            } else {
                0
            };
        let layers = self.layers as u64;
        let embed = self.vocab as u64 * h;
        let head = if self.tied_embeddings { 0 } else { embed };
        let vector = norms * layers + h;
        ParamCounts {
            total: embed + head + (attn + ffn_total) * layers + vector,
            active: embed + head + (attn + ffn_active) * layers + vector,
            matrix: embed + head + (attn + ffn_total) * layers,
            vector,
        }
    }

    /// Bytes of every weight with matrices stored in `precision` and norms in f32.
    pub fn weight_bytes(&self, precision: Precision) -> u64 {
        let p = self.params();
        precision.bytes_for(p.matrix) + 4 * p.vector
    }

    /// KV-cache bytes per token with elements of `elem_bytes` bytes (2 for f16/bf16,
    /// 4 for the CPU engine's f32).
    pub fn kv_bytes_per_token(&self, elem_bytes: u64) -> u64 {
        (2 * self.layers * self.kv_heads * self.head_dim) as u64 * elem_bytes
    }

    /// RoPE inverse frequencies, one per rotated pair, with the scaling applied.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let half = self.head_dim / 2;
        (0..half)
            .map(|i| {
                let base = 1.0 / self.rope_theta.powf(2.0 * i as f32 / self.head_dim as f32);
                match self.rope_scaling {
                    RopeScaling::None => base,
                    RopeScaling::Linear { factor } => base / factor,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_context,
                    } => {
                        let orig = original_context as f32;
                        let wavelen = 2.0 * std::f32::consts::PI / base;
                        if wavelen < orig / high_freq_factor {
                            base
                        } else if wavelen > orig / low_freq_factor {
                            base / factor
                        } else {
                            let smooth = (orig / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * base / factor + smooth * base
                        }
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::preset::{LLAMA3_8B, MIXTRAL_8X7B, QWEN3_30B_A3B, SMOLLM2_135M};

    use super::*;

    fn within(x: u64, want: f64, rel: f64) -> bool {
        (x as f64 - want).abs() / want < rel
    }

    #[test]
    fn parameter_counts_match_the_model_cards() {
        // Published sizes: SmolLM2 134.5M, Llama 3.1 8.03B, Mixtral 46.7B total /
        // 12.9B active, Qwen3-30B-A3B 30.5B total / 3.3B active.
        assert!(within(SMOLLM2_135M.params().total, 134.5e6, 0.01));
        assert!(within(LLAMA3_8B.params().total, 8.03e9, 0.01));
        assert!(within(MIXTRAL_8X7B.params().total, 46.7e9, 0.01));
        assert!(within(MIXTRAL_8X7B.params().active, 12.9e9, 0.01));
        assert!(within(QWEN3_30B_A3B.params().total, 30.5e9, 0.01));
        assert!(within(QWEN3_30B_A3B.params().active, 3.3e9, 0.03));
    }

    #[test]
    fn kv_bytes_per_token() {
        // 2 (k,v) x 30 layers x 3 heads x 64 dims x 4 bytes.
        assert_eq!(SMOLLM2_135M.kv_bytes_per_token(4), 46_080);
        // Llama 3 8B at f16: 128 KiB per token.
        assert_eq!(LLAMA3_8B.kv_bytes_per_token(2), 131_072);
    }

    #[test]
    fn llama3_rope_scaling_keeps_high_and_scales_low_frequencies() {
        let f = LLAMA3_8B.rope_inv_freq();
        let mut unscaled = LLAMA3_8B.clone();
        unscaled.rope_scaling = RopeScaling::None;
        let g = unscaled.rope_inv_freq();
        assert_eq!(f[0], g[0]);
        assert!((f[63] - g[63] / 8.0).abs() < 1e-12);
        assert!(f.iter().zip(&g).all(|(a, b)| a <= b && *a >= b / 8.0));
    }

    #[test]
    fn presets_are_consistent() {
        for p in crate::preset::PRESETS {
            p.validate().unwrap();
        }
    }
}
