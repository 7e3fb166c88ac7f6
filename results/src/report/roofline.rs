//! The roofline section of a local result: the limits measured on the device with the
//! project's own kernels, the model's shape as the device holds it, and what the load
//! point achieved against the ceilings they give. Since 1.7. The maths that fills it
//! is in the crate's `roofline` module, above this one.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A device's measured limits: memory bandwidth and matrix-multiply throughput, each
/// the best of several passes over buffers far larger than its caches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLimits {
    /// The device as the command line names it (`cpu`, `cuda:0`).
    pub device: String,
    /// What it is (CPU model, GPU name).
    pub name: String,
    /// Threads the CPU measurements ran on (the engine's pool); `null` on a GPU.
    pub threads: Option<u32>,
    /// Bytes of each buffer the bandwidth passes stream through.
    pub buffer_bytes: u64,
    /// Copy: bytes read plus bytes written per second, GB/s (1e9).
    pub copy_gb_per_s: f64,
    /// Read-only (a sum over the buffer): bytes read per second, GB/s. The decode
    /// ceiling's bandwidth (a decode step reads weights and KV, it writes little).
    pub read_gb_per_s: f64,
    /// STREAM triad `a = b + s*c`: three buffers' bytes per second, GB/s; `null`
    /// where not measured.
    pub triad_gb_per_s: Option<f64>,
    /// The device's own matrix multiply (the engine's kernels, or cuBLAS where the
    /// engine uses it), billions of multiply-adds x 2 per second, per weight
    /// precision (`f32`, `bf16`, `q4_0`, ...), at `matmul_shape`.
    pub matmul_gflop_per_s: BTreeMap<String, f64>,
    /// The multiply measured: `rows x out x in` (a prefill step's tokens x weight).
    pub matmul_shape: String,
    /// Whose matrix multiply it is (`infermeter cpu kernels`, `cuBLAS`).
    pub matmul_engine: String,
}

/// What one decode step of a model reads, and what a token computes, on a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Model (preset) name.
    pub model: String,
    /// Weight precision.
    pub precision: String,
    /// Bytes of the matrices every step reads whatever the batch: attention, dense
    /// MLPs, MoE routers and the output head, as the device holds them.
    pub shared_weight_bytes: u64,
    /// Bytes of one expert's three matrices in one layer; 0 for a dense model.
    pub expert_weight_bytes: u64,
    /// Experts per MoE layer (0 for dense).
    pub experts: u32,
    /// Experts each token uses.
    pub experts_per_token: u32,
    /// Layers with experts.
    pub moe_layers: u32,
    /// KV-cache bytes per cached token, at the device's KV element size.
    pub kv_bytes_per_token: u64,
    /// Floating-point operations per token of the layers' matrices (2 x active
    /// matrix parameters, the output head excluded).
    pub matrix_flop_per_token: f64,
    /// Operations of the output head per sampled token (2 x vocab x hidden).
    pub head_flop_per_token: f64,
    /// Attention operations per token per position it attends to (4 x layers x query
    /// heads x head dim: scores and the weighted sum).
    pub attention_flop_per_position: f64,
}

/// Which limit a ceiling comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Bytes moved over the read bandwidth.
    Bandwidth,
    /// Operations over the matrix-multiply throughput.
    Compute,
}

/// A load point judged against its device's roofline. Since 1.7.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RooflineStats {
    /// The limits it was judged against.
    pub limits: DeviceLimits,
    /// The model as the device holds it.
    pub shape: ModelShape,
    /// Mean sequences per step of decode tokens only (mean sequences per step of any
    /// kind when there were none).
    pub decode_batch: f64,
    /// Mean tokens in a sequence's context while it decodes (mean input plus half the
    /// mean output, over every request sent).
    pub decode_context_tokens: f64,
    /// Bytes a decode step reads per token it produces at that batch and context:
    /// shared weights, the experts the batch touches, and the KV cache.
    pub bytes_per_decode_token: f64,
    /// The most decode tokens per second the limits allow at that batch and context.
    pub decode_ceiling_tokens_per_s: f64,
    /// Which limit sets the decode ceiling.
    pub decode_bound: Bound,
    /// Tokens of the steps of decode tokens only, per second of those steps; `null`
    /// when there were none.
    pub decode_tokens_per_s: Option<f64>,
    /// `decode_tokens_per_s / decode_ceiling_tokens_per_s`: at most 1 where the
    /// model's bytes and operations are what the formula counts.
    pub decode_ratio: Option<f64>,
    /// Prompt tokens per second the matrix-multiply throughput allows at the mean
    /// positions a computed prompt token attends over (cached prefix included).
    pub prefill_ceiling_tokens_per_s: f64,
    /// Prompt tokens computed per second of engine prefill time; `null` when no
    /// prompt was computed.
    pub prefill_tokens_per_s: Option<f64>,
    /// `prefill_tokens_per_s / prefill_ceiling_tokens_per_s`: at most 1 as above.
    pub prefill_ratio: Option<f64>,
}

/// The `schema` field of `infermeter roofline --json` documents.
pub const ROOFLINE_SCHEMA: &str = "infermeter.roofline";
/// Their version (`major.minor`, as reports).
pub const ROOFLINE_SCHEMA_VERSION: &str = "1.0";

/// One model x precision x batch x context on a device: what its limits allow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RooflineProjection {
    /// The model as the device holds it.
    pub shape: ModelShape,
    /// Sequences per decode step.
    pub batch: u32,
    /// Tokens of context per sequence while it decodes; the prompt length of the
    /// prefill ceiling.
    pub context_tokens: u32,
    /// Bytes one decode step reads per token it produces.
    pub bytes_per_decode_token: f64,
    /// The most decode tokens per second (all sequences together).
    pub decode_ceiling_tokens_per_s: f64,
    /// Which limit sets it.
    pub decode_bound: Bound,
    /// The most prompt tokens per second at that prompt length.
    pub prefill_ceiling_tokens_per_s: f64,
}

/// What `infermeter roofline` measured and projected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RooflineDoc {
    /// Always [`ROOFLINE_SCHEMA`].
    pub schema: String,
    /// [`ROOFLINE_SCHEMA_VERSION`].
    pub schema_version: String,
    /// The infermeter version that measured it.
    pub tool_version: String,
    /// The device's measured limits.
    pub limits: DeviceLimits,
    /// Ceilings per model, precision, batch and context.
    pub projections: Vec<RooflineProjection>,
}
