//! A target as it describes itself: its identity (kind, model, precision), where its
//! weights came from, its settings (secrets redacted), list prices, and the typed
//! facts every consumer reads instead of matching on the kind's name.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The precision of a remote target whose spec states none.
pub const PRECISION_NOT_STATED: &str = "not stated";

/// A target as it describes itself; copied into every result it produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    /// Target kind (`local-cpu`, ...).
    pub kind: String,
    /// Model name or preset.
    pub model: String,
    /// Weight precision (`q4_1`, `f16`, ...; `mixed` when a file mixes formats); for a
    /// remote target what its spec states (not verified), else `not stated`.
    pub precision: String,
    /// Longest context (input + output tokens) the target accepts.
    pub context_limit_tokens: Option<u32>,
    /// Where the weights came from, for local engines.
    pub weights: Option<WeightsInfo>,
    /// The target spec's other settings, secrets redacted.
    pub settings: BTreeMap<String, String>,
    /// The target's list prices, as given in its spec (remote targets). Since 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<RateCard>,
    /// Where it computes: `local` (in this process) or `remote` (a server). Since 1.6.
    pub locality: Locality,
    /// What a local target computes on; `null` for remote targets. Since 1.6.
    pub device: Option<Device>,
    /// Whether responses were streamed; without streaming, TTFT is the whole
    /// response's arrival and ITL is not measured. Since 1.6.
    pub streamed: bool,
    /// Who counts the tokens a target does not report itself: `engine` (a local
    /// engine, exact), a tokenizer's name or file, or `none` (one token per chunk).
    /// Since 1.6.
    pub token_counter: String,
    /// The API a remote target speaks; `null` for local targets. Since 1.6.
    pub api: Option<Api>,
}

impl TargetInfo {
    /// `kind model precision`: how tables, keys and request records name a target;
    /// a precision nobody stated is left out (`openai smollm2`).
    pub fn label(&self) -> String {
        if self.precision_stated() {
            format!("{} {} {}", self.kind, self.model, self.precision)
        } else {
            format!("{} {}", self.kind, self.model)
        }
    }

    /// Whether the precision is known or stated (reports before 1.9 wrote `unknown`
    /// for a remote target's).
    pub fn precision_stated(&self) -> bool {
        !matches!(self.precision.as_str(), PRECISION_NOT_STATED | "unknown")
    }

    /// Whether the target computes in this process (its tokens are counted exactly,
    /// its hardware is priced per hour, its energy can be measured).
    pub fn is_local(&self) -> bool {
        self.locality == Locality::Local
    }
}

/// Where a target computes. Since 1.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Locality {
    /// In the harness's process (the embedded engines).
    Local,
    /// On a server reached over the network.
    Remote,
}

/// What a local target computes on. Since 1.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// The host's CPUs (priced per logical CPU, energy from RAPL).
    Cpu,
    /// A GPU (priced per GPU, energy from NVML).
    Gpu,
}

/// The API a remote target speaks. Since 1.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI-compatible `/chat/completions`.
    Chat,
    /// OpenAI-compatible `/completions`.
    Completions,
    /// Anthropic `/messages`.
    Messages,
}

impl Api {
    /// The name used in reports and target specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::Messages => "messages",
        }
    }
}

/// A provider's list prices for one model, in USD per million tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    /// Uncached input tokens.
    pub input_usd_per_m: f64,
    /// Input tokens read from the provider's prompt cache; `null` = priced as input.
    pub cached_input_usd_per_m: Option<f64>,
    /// Output tokens.
    pub output_usd_per_m: f64,
    /// Reasoning tokens; `null` = priced as output.
    pub reasoning_usd_per_m: Option<f64>,
    /// Where the prices come from (a URL or a document).
    pub source: Option<String>,
    /// When they were read (a date).
    pub as_of: Option<String>,
}

/// Where a local engine's weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsInfo {
    /// `gguf` (a model file) or `synthetic` (generated from a seed).
    pub source: WeightsSource,
    /// File the weights were read from (`gguf` only).
    pub path: Option<String>,
    /// SHA-256 of the file (`gguf`) or of the generated weights' bytes (`synthetic`).
    pub sha256: String,
    /// Seed the weights were generated from (`synthetic` only).
    pub seed: Option<u64>,
    /// Bytes of weights held by the engine.
    pub bytes: u64,
}

/// Origin of a local engine's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightsSource {
    /// Read from a GGUF file.
    Gguf,
    /// Read from a GGUF file and converted to another format when loaded
    /// (`requantize=on`; `sha256` is then of the file and the format). Since 1.10.
    GgufRequantized,
    /// Generated from a seed for a preset's shape.
    Synthetic,
}
