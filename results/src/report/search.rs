//! The outcome of an SLO search (`sweep --search`), one per target: the levels it
//! ran with their verdicts, the bracket it ended on, and whether it claims a limit.
//! Since 1.9.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an SLO search found for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchOutcome {
    /// The target's label (`kind model precision`).
    pub target: String,
    /// What was searched.
    pub axis: SearchAxis,
    /// The unit of every level: `sessions_per_s` (rate) or `sessions` (concurrency).
    pub unit: String,
    /// The searched range, in `unit`.
    pub range_lo: f64,
    /// The top of the searched range, in `unit`.
    pub range_hi: f64,
    /// Relative gap between passing and failing levels that ends the bisection.
    pub tolerance: f64,
    /// Runs per level; a level passes only when every run passes.
    pub repeats: u32,
    /// How the search ended.
    pub end: SearchEnd,
    /// The highest level measured to meet the SLO (below the lowest failing one);
    /// the limit when `end` is `bracketed`, a lower bound otherwise.
    pub highest_passing: Option<f64>,
    /// The lowest level that missed it.
    pub lowest_failing: Option<f64>,
    /// Every level run, in the order run.
    pub levels: Vec<SearchLevel>,
    /// The outcome in words, as `sweep` prints it.
    pub conclusion: String,
}

/// The axis of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchAxis {
    /// Open-loop rate, sessions per second.
    Rate,
    /// Closed-loop concurrency, sessions in flight.
    Concurrency,
}

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchEnd {
    /// A passing and a failing level within the tolerance: the limit is claimed.
    Bracketed,
    /// Every level up to the range's top passed: the limit is above the range.
    AboveRange,
    /// The lowest level failed: no level meets the SLO.
    NoneMet,
    /// A point the client may have limited decided nothing: no limit is claimed.
    ClientBound,
    /// Nothing was measured (interrupted before the first point).
    NothingMeasured,
}

/// One searched level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLevel {
    /// The level, in the outcome's `unit`.
    pub value: f64,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: LevelVerdict,
    /// Why it failed or decided nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The verdict of one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelVerdict {
    /// Met the SLO in every run.
    Pass,
    /// Missed it, had over 5% failed requests, or was over-saturated.
    Fail,
    /// Decided nothing (client-bound).
    Inconclusive,
}
