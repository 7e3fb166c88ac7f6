//! What a configuration gives up against a reference precision of the same model on
//! the same engine (`--quality`): teacher-forced over the project's evaluation text,
//! the per-token KL divergence of the configuration's next-token distribution from
//! the reference's, how often their most likely next tokens agree, and both
//! perplexities. Measured once per target (not per load point) and copied into each
//! of its results.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A result's quality section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitySection {
    /// The precision the configuration is compared with (`f32`, `f16`, ...).
    pub reference_precision: String,
    /// The evaluation text's name and version (`infermeter-eval-en-v1`).
    pub eval_text: String,
    /// SHA-256 of the evaluation text's token ids as scored.
    pub eval_sha256: String,
    /// The figures; `null` with a `reason` when they were not measured.
    pub fidelity: Option<Fidelity>,
    /// Why `fidelity` is `null` (a remote target returns no logits over a forced
    /// text).
    pub reason: Option<String>,
}

/// Teacher-forced figures: both models are fed the same evaluation tokens, and at
/// every position their distributions over the next token are compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fidelity {
    /// The configuration's precision as loaded.
    pub precision: String,
    /// SHA-256 of the configuration's weights (the digest results are cached by).
    pub weights_sha256: String,
    /// SHA-256 of the reference's weights.
    pub reference_weights_sha256: String,
    /// Windows of the evaluation text, each scored from a fresh context.
    pub windows: u32,
    /// Positions scored (each window's tokens after its first).
    pub tokens_scored: u64,
    /// Mean over positions of KL(reference || configuration), nats per token.
    pub kl_mean_nats: f64,
    /// 99th percentile of the per-position KL divergence, nats (nearest rank).
    pub kl_p99_nats: f64,
    /// Largest per-position KL divergence, nats.
    pub kl_max_nats: f64,
    /// Share of positions where both models' most likely next token is the same, 0-1.
    pub top1_agreement: f64,
    /// exp(mean negative log-likelihood of the text's next token), configuration.
    pub perplexity: f64,
    /// The same, reference.
    pub reference_perplexity: f64,
    /// `perplexity / reference_perplexity`.
    pub perplexity_ratio: f64,
    /// Whether these figures came from the cache (same weights, reference and text
    /// measured before: `~/.cache/infermeter/quality`).
    pub cached: bool,
    /// Seconds the measurement took when it was made (both models loaded and fed).
    pub compute_s: f64,
}
