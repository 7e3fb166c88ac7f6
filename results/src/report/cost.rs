//! The cost section of a result: what it was priced with (a rate card or a hardware
//! price) and the dollars, in total and per million tokens, request and task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::target::RateCard;

/// Where cost figures came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CostSource {
    /// A provider's list prices times tokens.
    RateCard,
    /// Hardware $/hour times the measured window (local targets). Since 1.3.
    HardwareHour,
}

/// Cost of one load point, USD. Every figure is `null` when not priced, with
/// `reason` saying why. Since 1.2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostStats {
    /// How it was priced; `null` when it was not.
    pub source: Option<CostSource>,
    /// Why it was not priced.
    pub reason: Option<String>,
    /// Which token counts were priced (`server_usage` where every successful request
    /// reported usage, else the report's own counts with their sources).
    pub tokens_basis: Option<String>,
    /// Uncached input tokens priced.
    pub input_tokens: u64,
    /// Cached input tokens priced.
    pub cached_input_tokens: u64,
    /// Output tokens priced at the output price (reasoning excluded).
    pub output_tokens: u64,
    /// Reasoning tokens priced.
    pub reasoning_tokens: u64,
    /// Total over the load point.
    pub usd_total: Option<f64>,
    /// Of which uncached input.
    pub usd_input: Option<f64>,
    /// Of which cached input.
    pub usd_cached_input: Option<f64>,
    /// Of which output.
    pub usd_output: Option<f64>,
    /// Of which reasoning.
    pub usd_reasoning: Option<f64>,
    /// Input cost per million input tokens, cached ones included (effective price).
    pub usd_per_m_input: Option<f64>,
    /// Output cost per million output tokens, reasoning included (effective price).
    pub usd_per_m_output: Option<f64>,
    /// List price blended 3:1 input:output, per million tokens.
    pub usd_per_m_blended_3_1: Option<f64>,
    /// Total per million tokens of this workload's own mix.
    pub usd_per_m_blended_workload: Option<f64>,
    /// Total per sent request.
    pub usd_per_request: Option<f64>,
    /// Total per task started (multi-call workloads; failed calls and tasks included).
    pub usd_per_task: Option<f64>,
    /// Total per task completed.
    pub usd_per_successful_task: Option<f64>,
    /// Total per verified task (every checked call of the task passed; workloads with
    /// checkers): what a right answer costs, failed and wrong ones paid for. `null`
    /// when no task was verified or the workload has no checkers. Since 1.11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_verified_task: Option<f64>,
    /// The rate card priced with (remote targets), from the target spec or a
    /// catalog. Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_card: Option<RateCard>,
    /// The hardware price priced with (local targets). Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwarePriceRef>,
    /// Unit-seconds billed: the measured window times the units (local). Since 1.3.
    #[serde(default)]
    pub billed_unit_s: Option<f64>,
    /// Share of the engine's busy time spent on prompt tokens, 0-1 (local). Since 1.3.
    #[serde(default)]
    pub input_time_share: Option<f64>,
    /// Input cost per million prompt tokens the engine computed (cache hits
    /// excluded): what an input token costs without a prefix cache hit (local).
    /// Since 1.3.
    #[serde(default)]
    pub usd_per_m_uncached_input: Option<f64>,
    /// Cost per million cached input tokens: the rate card's price (remote);
    /// `null` for local targets, whose cache hits cost no step time of their own (their
    /// saving shows as `usd_per_m_input` below `usd_per_m_uncached_input`). Since 1.3.
    #[serde(default)]
    pub usd_per_m_cached_input: Option<f64>,
    /// Electricity for the measured energy, USD per million output tokens: joules
    /// per output token x PUE x the region's $/kWh (local targets with measured
    /// energy). Informational: rented hardware's $/hour already includes power, so it
    /// is not added to `usd_total`. Since 1.3.
    #[serde(default)]
    pub energy_usd_per_m_output: Option<f64>,
    /// The same per million input plus output tokens. Since 1.3.
    #[serde(default)]
    pub energy_usd_per_m_total: Option<f64>,
}

impl CostStats {
    /// Not priced, because of `reason`.
    pub fn unpriced(reason: &str) -> Self {
        Self {
            source: None,
            reason: Some(reason.to_string()),
            tokens_basis: None,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            usd_total: None,
            usd_input: None,
            usd_cached_input: None,
            usd_output: None,
            usd_reasoning: None,
            usd_per_m_input: None,
            usd_per_m_output: None,
            usd_per_m_blended_3_1: None,
            usd_per_m_blended_workload: None,
            usd_per_request: None,
            usd_per_task: None,
            usd_per_successful_task: None,
            usd_per_verified_task: None,
            rate_card: None,
            hardware: None,
            billed_unit_s: None,
            input_time_share: None,
            usd_per_m_uncached_input: None,
            usd_per_m_cached_input: None,
            energy_usd_per_m_output: None,
            energy_usd_per_m_total: None,
        }
    }
}

/// How a part is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PartUnit {
    /// Per GPU.
    Gpu,
    /// Per logical CPU of the host.
    Vcpu,
}

/// The hardware price a cost was computed with, copied into the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardwarePriceRef {
    /// Catalog name and version.
    pub catalog: String,
    /// Part name.
    pub part: String,
    /// Billing unit.
    pub unit: PartUnit,
    /// Units billed (GPUs, or the host's logical CPUs).
    pub units: u32,
    /// Tier.
    pub tier: String,
    /// Region.
    pub region: String,
    /// USD per unit-hour after the region's multiplier.
    pub usd_per_unit_hour: f64,
    /// The region multiplier applied (1 when the price was given for the region).
    pub region_multiplier: f64,
    /// Electricity, USD per kWh, in the region.
    pub electricity_usd_per_kwh: f64,
    /// The region's PUE.
    pub pue: f64,
    /// Sources of the hardware price and the region's figures.
    pub source: String,
    /// As-of of the hardware price.
    pub as_of: String,
}
