//! Cost derived from a result's own figures and a price, so any report can be priced
//! again (another rate card, another date) without running anything.
//!
//! Remote targets are priced from their rate card (`target.prices`): tokens of every
//! sent request (failed ones included: providers bill what they processed; retried
//! 429s are not billed and not counted) times the list prices, cached input and
//! reasoning output at their own prices where the server reported them. Local targets
//! need a hardware price catalog, which this build does not have: their cost says so.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{RateCard, ResultEntry};

/// Where cost figures came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CostSource {
    /// A provider's list prices times tokens.
    RateCard,
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
        }
    }
}

fn usd(x: f64) -> f64 {
    // Micro-dollar resolution: exact enough for prices per token.
    (x * 1e6).round() / 1e6
}

/// Prices `entry` with `card` (its own `target.prices` by default).
pub fn price_with_rate_card(entry: &ResultEntry, card: &RateCard) -> CostStats {
    let t = &entry.tokens;
    let prov = t.provenance.as_ref();
    let cached = prov
        .map(|p| p.server_cached_input)
        .or(t.input_cached)
        .unwrap_or(0)
        .min(t.input);
    let reasoning = prov.map_or(0, |p| p.server_reasoning).min(t.output);
    let basis = match prov {
        Some(p) if p.requests_without_usage == 0 && p.requests_with_usage > 0 => "server_usage",
        _ => "report_counts",
    };
    let per_token = |per_m: f64| per_m / 1e6;
    let usd_input = (t.input - cached) as f64 * per_token(card.input_usd_per_m);
    let usd_cached =
        cached as f64 * per_token(card.cached_input_usd_per_m.unwrap_or(card.input_usd_per_m));
    let usd_output = (t.output - reasoning) as f64 * per_token(card.output_usd_per_m);
    let usd_reasoning =
        reasoning as f64 * per_token(card.reasoning_usd_per_m.unwrap_or(card.output_usd_per_m));
    let total = usd_input + usd_cached + usd_output + usd_reasoning;
    let per_m =
        |dollars: f64, tokens: u64| (tokens > 0).then(|| usd(dollars / tokens as f64 * 1e6));
    let sent = entry.requests.sent;
    let (started, completed) = entry
        .tasks
        .as_ref()
        .map_or((0, 0), |k| (k.started, k.completed));
    CostStats {
        source: Some(CostSource::RateCard),
        reason: None,
        tokens_basis: Some(basis.to_string()),
        input_tokens: t.input - cached,
        cached_input_tokens: cached,
        output_tokens: t.output - reasoning,
        reasoning_tokens: reasoning,
        usd_total: Some(usd(total)),
        usd_input: Some(usd(usd_input)),
        usd_cached_input: Some(usd(usd_cached)),
        usd_output: Some(usd(usd_output)),
        usd_reasoning: Some(usd(usd_reasoning)),
        usd_per_m_input: per_m(usd_input + usd_cached, t.input),
        usd_per_m_output: per_m(usd_output + usd_reasoning, t.output),
        usd_per_m_blended_3_1: Some(usd(
            (3.0 * card.input_usd_per_m + card.output_usd_per_m) / 4.0
        )),
        usd_per_m_blended_workload: per_m(total, t.input + t.output),
        usd_per_request: (sent > 0).then(|| usd(total / sent as f64)),
        usd_per_task: (started > 0).then(|| usd(total / started as f64)),
        usd_per_successful_task: (completed > 0).then(|| usd(total / completed as f64)),
    }
}

/// The cost of `entry` as a report carries it: its rate card's when it has one, else
/// why it is not priced.
pub fn cost_of(entry: &ResultEntry) -> CostStats {
    match &entry.target.prices {
        Some(card) => price_with_rate_card(entry, card),
        None if entry.target.kind.starts_with("local") => CostStats::unpriced(
            "local target: needs a hardware price catalog ($/hour), which this build does not have",
        ),
        None => CostStats::unpriced(
            "no rate card: give the target's prices (price.input_usd_per_m, price.output_usd_per_m)",
        ),
    }
}
