//! The metrics registry: every published metric is declared once, here, with its name
//! (unit included), unit, better direction, how to read it from a result, how it
//! comes out of a merge, its default regression gate, and its column in the summary
//! table. `compare`, `history`, repeat spreads, SLOs and every renderer (table,
//! Markdown, CSV, HTML) read this table; adding a metric is adding one entry.
//!
//! SLO objectives bound a percentile of a latency [`Family`]: `ttft_p99_ms=2000` is the
//! family `ttft` at [`Percentile::P99`].

use crate::histogram::LatencySummary;
use crate::report::ResultEntry;

/// Which direction is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller is better (latency, cost, errors).
    Lower,
    /// Larger is better (throughput, tokens per joule, cache hits).
    Higher,
}

/// A metric's unit: how it is written and how a change of it is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Per second (requests or tokens).
    PerS,
    /// A fraction, 0-1.
    Ratio,
    /// Percent; a change is in percentage points, not percent of percent.
    Pct,
    /// US dollars.
    Usd,
    /// Tokens per joule.
    TokensPerJ,
    /// Nats (natural-log information), per token.
    Nats,
    /// A ratio of two like figures (1 = the same).
    Times,
    /// Joules.
    Joules,
}

impl Unit {
    /// The unit as the README's metrics table writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::PerS => "1/s",
            Unit::Ratio => "0-1",
            Unit::Pct => "%",
            Unit::Usd => "USD",
            Unit::TokensPerJ => "tokens/J",
            Unit::Nats => "nats",
            Unit::Times => "x",
            Unit::Joules => "J",
        }
    }

    /// Whether a change is a difference in points (percent metrics) rather than a
    /// relative change in percent.
    pub fn delta_in_points(self) -> bool {
        self == Unit::Pct
    }
}

/// How a metric comes out of `merge` (shards, or machines running the same load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeRule {
    /// A percentile of the merged HDR histogram: exactly what one machine would have
    /// measured from all the requests.
    Histogram,
    /// Summed counts over the union of the measured windows.
    SumOverUnionWindow,
    /// A ratio of summed counts (failed / sent, cached / prompt tokens, ...).
    RatioOfSums,
    /// Summed dollars over summed tokens, requests or tasks.
    CostOfSums,
    /// Summed tokens over summed joules.
    EnergyOfSums,
    /// Summed engine figures judged against the mean of the parts' measured limits
    /// (parts on the same kind of device); dropped when the devices differ.
    RooflineOfSums,
    /// Measured once per target (`--quality`), not per request: kept when every part
    /// has the same, dropped otherwise.
    PerTarget,
}

impl MergeRule {
    /// What the rule does, for the README.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeRule::Histogram => "percentile of the merged histogram",
            MergeRule::SumOverUnionWindow => "summed counts over the union of the windows",
            MergeRule::RatioOfSums => "ratio of summed counts",
            MergeRule::CostOfSums => "summed dollars over summed counts",
            MergeRule::EnergyOfSums => "summed tokens over summed joules",
            MergeRule::RooflineOfSums => {
                "summed engine figures against the mean of the parts' limits (same device kind)"
            }
            MergeRule::PerTarget => "measured once per target: kept when the parts agree",
        }
    }

    /// The factor a metric changes by when a result is merged with an identical copy
    /// of itself (the same requests measured twice over the same window): counts
    /// double, so sums over the same window double and every ratio stays.
    pub fn self_merge_factor(self) -> f64 {
        match self {
            MergeRule::SumOverUnionWindow => 2.0,
            _ => 1.0,
        }
    }
}

/// The default regression gate of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DefaultGate {
    /// Threshold: percent change, or percentage points for [`Unit::Pct`] metrics.
    pub threshold: f64,
    /// Whether `compare` gates it when no `--metrics` are named.
    pub by_default: bool,
}

/// A published metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Name, with its unit (`ttft_p99_ms`).
    pub name: &'static str,
    /// What it is, for the README and `--help`.
    pub definition: &'static str,
    /// Unit.
    pub unit: Unit,
    /// Which direction is better.
    pub better: Better,
    /// Reads it from a result; `None` when the result did not measure it.
    pub get: fn(&ResultEntry) -> Option<f64>,
    /// Its 95% confidence interval in a result, where one is computed.
    pub ci95: fn(&ResultEntry) -> Option<[f64; 2]>,
    /// How it comes out of a merge.
    pub merge: MergeRule,
    /// Default regression gate.
    pub gate: DefaultGate,
    /// Header of its column in the summary table (table, Markdown, CSV, HTML);
    /// `None`: not a column.
    pub column: Option<&'static str>,
}

/// A percentile of a latency summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    /// Median.
    P50,
    /// 90th.
    P90,
    /// 95th.
    P95,
    /// 99th.
    P99,
    /// 99.9th.
    P99_9,
}

impl Percentile {
    /// Every percentile a summary holds.
    pub const ALL: [Percentile; 5] = [
        Percentile::P50,
        Percentile::P90,
        Percentile::P95,
        Percentile::P99,
        Percentile::P99_9,
    ];

    /// Its name in metric names (`p99`, `p99_9`).
    pub fn as_str(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::P99_9 => "p99_9",
        }
    }

    /// The fraction of values at or below it.
    pub fn fraction(self) -> f64 {
        match self {
            Percentile::P50 => 0.50,
            Percentile::P90 => 0.90,
            Percentile::P95 => 0.95,
            Percentile::P99 => 0.99,
            Percentile::P99_9 => 0.999,
        }
    }

    /// The percentile named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Its value in `s`.
    pub fn of(self, s: &LatencySummary) -> Option<f64> {
        match self {
            Percentile::P50 => s.p50,
            Percentile::P90 => s.p90,
            Percentile::P95 => s.p95,
            Percentile::P99 => s.p99,
            Percentile::P99_9 => s.p99_9,
        }
    }

    /// Its bootstrap 95% interval in `s` (computed for p50 to p99).
    pub fn ci95_of(self, s: &LatencySummary) -> Option<[f64; 2]> {
        let c = s.ci95.as_ref()?;
        match self {
            Percentile::P50 => Some(c.p50),
            Percentile::P90 => Some(c.p90),
            Percentile::P95 => Some(c.p95),
            Percentile::P99 => Some(c.p99),
            Percentile::P99_9 => None,
        }
    }
}

/// Which per-request latency a [`Family`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyField {
    /// First token minus actual send.
    Ttft,
    /// (completion - first token) / (tokens - 1).
    Tpot,
    /// Gaps between output tokens (many per request).
    Itl,
    /// Completion minus actual send.
    E2e,
}

/// A latency distribution of every result, whose percentiles SLOs bound and whose
/// CDF the HTML report draws.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Name in metric and objective names (`ttft`).
    pub name: &'static str,
    /// Which per-request figure it is.
    pub field: LatencyField,
    /// Whether one value per request (an SLO then bounds each request, and goodput
    /// counts the requests within it); ITL has many values per request.
    pub per_request: bool,
    /// Chart title.
    pub title: &'static str,
    /// Reads its summary from a result.
    pub summary: fn(&ResultEntry) -> &LatencySummary,
}

/// The latency families, in chart order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "ttft",
        field: LatencyField::Ttft,
        per_request: true,
        title: "TTFT: first token minus send (ms)",
        summary: |e| &e.latency.ttft_ms,
    },
    Family {
        name: "itl",
        field: LatencyField::Itl,
        per_request: false,
        title: "ITL: gap between output tokens (ms)",
        summary: |e| &e.latency.itl_ms,
    },
    Family {
        name: "tpot",
        field: LatencyField::Tpot,
        per_request: true,
        title: "TPOT per request (ms)",
        summary: |e| &e.latency.tpot_ms,
    },
    Family {
        name: "e2e",
        field: LatencyField::E2e,
        per_request: true,
        title: "E2E: completion minus send (ms)",
        summary: |e| &e.latency.e2e_ms,
    },
];

/// The family called `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

const fn gated(threshold: f64) -> DefaultGate {
    DefaultGate {
        threshold,
        by_default: true,
    }
}

const fn watched(threshold: f64) -> DefaultGate {
    DefaultGate {
        threshold,
        by_default: false,
    }
}

fn no_ci(_: &ResultEntry) -> Option<[f64; 2]> {
    None
}

/// Every metric, in table order.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "ttft_p50_ms",
        definition: "median time to first token (first token minus actual send)",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.ttft_ms.p50,
        ci95: |e| Percentile::P50.ci95_of(&e.latency.ttft_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("ttft_p50_ms"),
    },
    Metric {
        name: "ttft_p90_ms",
        definition: "90th percentile of time to first token",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.ttft_ms.p90,
        ci95: |e| Percentile::P90.ci95_of(&e.latency.ttft_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("ttft_p90_ms"),
    },
    Metric {
        name: "ttft_p99_ms",
        definition: "99th percentile of time to first token",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.ttft_ms.p99,
        ci95: |e| Percentile::P99.ci95_of(&e.latency.ttft_ms),
        merge: MergeRule::Histogram,
        gate: gated(10.0),
        column: Some("ttft_p99_ms"),
    },
    Metric {
        name: "tpot_p50_ms",
        definition: "median time per output token after the first, per request",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.tpot_ms.p50,
        ci95: |e| Percentile::P50.ci95_of(&e.latency.tpot_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("tpot_p50_ms"),
    },
    Metric {
        name: "tpot_p99_ms",
        definition: "99th percentile of time per output token",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.tpot_ms.p99,
        ci95: |e| Percentile::P99.ci95_of(&e.latency.tpot_ms),
        merge: MergeRule::Histogram,
        gate: gated(10.0),
        column: None,
    },
    Metric {
        name: "itl_p50_ms",
        definition: "median gap between successive output tokens (pooled over requests)",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.itl_ms.p50,
        ci95: |e| Percentile::P50.ci95_of(&e.latency.itl_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: None,
    },
    Metric {
        name: "itl_p99_ms",
        definition: "99th percentile of the gap between successive output tokens",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.itl_ms.p99,
        ci95: |e| Percentile::P99.ci95_of(&e.latency.itl_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("itl_p99_ms"),
    },
    Metric {
        name: "e2e_p50_ms",
        definition: "median end-to-end latency (completion minus actual send)",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.e2e_ms.p50,
        ci95: |e| Percentile::P50.ci95_of(&e.latency.e2e_ms),
        merge: MergeRule::Histogram,
        gate: gated(10.0),
        column: Some("e2e_p50_ms"),
    },
    Metric {
        name: "e2e_p99_ms",
        definition: "99th percentile of end-to-end latency",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.latency.e2e_ms.p99,
        ci95: |e| Percentile::P99.ci95_of(&e.latency.e2e_ms),
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: None,
    },
    Metric {
        name: "output_tokens_per_s",
        definition: "output tokens of every request per second of the measured window",
        unit: Unit::PerS,
        better: Better::Higher,
        get: |e| Some(e.throughput.output_tokens_per_s),
        ci95: |e| e.throughput.ci95.as_ref().map(|c| c.output_tokens_per_s),
        merge: MergeRule::SumOverUnionWindow,
        gate: gated(5.0),
        column: Some("out_tok_per_s"),
    },
    Metric {
        name: "requests_per_s",
        definition: "successful requests per second of the measured window",
        unit: Unit::PerS,
        better: Better::Higher,
        get: |e| Some(e.throughput.requests_per_s),
        ci95: |e| e.throughput.ci95.as_ref().map(|c| c.requests_per_s),
        merge: MergeRule::SumOverUnionWindow,
        gate: watched(5.0),
        column: None,
    },
    Metric {
        name: "output_tokens_per_s_per_user",
        definition: "interactivity: 1000 / median TPOT",
        unit: Unit::PerS,
        better: Better::Higher,
        get: |e| e.throughput.output_tokens_per_s_per_user,
        ci95: no_ci,
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("tok_per_s_per_user"),
    },
    Metric {
        name: "task_p50_ms",
        definition: "median wall time of a completed task (multi-call workloads)",
        unit: Unit::Ms,
        better: Better::Lower,
        get: |e| e.tasks.as_ref().and_then(|t| t.task_ms.p50),
        ci95: |e| {
            e.tasks
                .as_ref()
                .and_then(|t| Percentile::P50.ci95_of(&t.task_ms))
        },
        merge: MergeRule::Histogram,
        gate: watched(10.0),
        column: Some("task_p50_ms"),
    },
    Metric {
        name: "batch_occupancy_ratio",
        definition: "a local engine's mean sequences per step over its batch limit",
        unit: Unit::Ratio,
        better: Better::Higher,
        get: |e| e.engine.as_ref().map(|x| x.mean_batch_occupancy),
        ci95: no_ci,
        merge: MergeRule::RatioOfSums,
        gate: watched(10.0),
        column: Some("batch_occupancy"),
    },
    Metric {
        name: "cache_hit_ratio",
        definition: "a local engine's prompt tokens found in its prefix cache over all prompt tokens",
        unit: Unit::Ratio,
        better: Better::Higher,
        get: |e| e.engine.as_ref().and_then(|x| x.cache_hit_ratio),
        ci95: no_ci,
        merge: MergeRule::RatioOfSums,
        gate: watched(10.0),
        column: Some("cache_hit_ratio"),
    },
    Metric {
        name: "decode_roofline_ratio",
        definition: "a local engine's decode tokens per second of decode time over the decode ceiling its device's measured limits allow at the result's batch and context (`roofline` in the README)",
        unit: Unit::Ratio,
        better: Better::Higher,
        get: |e| e.roofline.as_ref().and_then(|r| r.decode_ratio),
        ci95: no_ci,
        merge: MergeRule::RooflineOfSums,
        gate: watched(10.0),
        column: None,
    },
    Metric {
        name: "prefill_roofline_ratio",
        definition: "a local engine's prompt tokens computed per second of prefill time over the prefill ceiling of its device's measured matmul throughput",
        unit: Unit::Ratio,
        better: Better::Higher,
        get: |e| e.roofline.as_ref().and_then(|r| r.prefill_ratio),
        ci95: no_ci,
        merge: MergeRule::RooflineOfSums,
        gate: watched(10.0),
        column: None,
    },
    Metric {
        name: "usd_per_m_blended_workload",
        definition: "total cost per million input plus output tokens of the workload's own mix",
        unit: Unit::Usd,
        better: Better::Lower,
        get: |e| e.cost.as_ref().and_then(|c| c.usd_per_m_blended_workload),
        ci95: no_ci,
        merge: MergeRule::CostOfSums,
        gate: gated(5.0),
        column: Some("usd_per_m_tokens"),
    },
    Metric {
        name: "usd_per_m_output",
        definition: "output cost per million output tokens",
        unit: Unit::Usd,
        better: Better::Lower,
        get: |e| e.cost.as_ref().and_then(|c| c.usd_per_m_output),
        ci95: no_ci,
        merge: MergeRule::CostOfSums,
        gate: watched(5.0),
        column: None,
    },
    Metric {
        name: "usd_per_task",
        definition: "total cost per task started (failed calls and tasks included)",
        unit: Unit::Usd,
        better: Better::Lower,
        get: |e| e.cost.as_ref().and_then(|c| c.usd_per_task),
        ci95: no_ci,
        merge: MergeRule::CostOfSums,
        gate: watched(5.0),
        column: None,
    },
    Metric {
        name: "tokens_per_j_output",
        definition: "output tokens per joule over the energy window",
        unit: Unit::TokensPerJ,
        better: Better::Higher,
        get: |e| e.energy.as_ref().and_then(|x| x.tokens_per_j_output),
        ci95: no_ci,
        merge: MergeRule::EnergyOfSums,
        gate: gated(5.0),
        column: Some("tok_per_j_output"),
    },
    Metric {
        name: "error_rate_pct",
        definition: "failed requests per sent request, percent",
        unit: Unit::Pct,
        better: Better::Lower,
        get: |e| e.requests.error_rate_pct(),
        ci95: no_ci,
        merge: MergeRule::RatioOfSums,
        gate: gated(1.0),
        column: None,
    },
    Metric {
        name: "kl_mean_nats",
        definition: "mean per-token KL divergence of the configuration's next-token distribution from the reference precision's, teacher-forced over the evaluation text (`--quality`)",
        unit: Unit::Nats,
        better: Better::Lower,
        get: |e| fidelity(e).map(|f| f.kl_mean_nats),
        ci95: no_ci,
        merge: MergeRule::PerTarget,
        gate: gated(10.0),
        column: None,
    },
    Metric {
        name: "kl_p99_nats",
        definition: "99th percentile of the per-token KL divergence from the reference (nearest rank)",
        unit: Unit::Nats,
        better: Better::Lower,
        get: |e| fidelity(e).map(|f| f.kl_p99_nats),
        ci95: no_ci,
        merge: MergeRule::PerTarget,
        gate: watched(10.0),
        column: None,
    },
    Metric {
        name: "top1_agreement_pct",
        definition: "positions of the evaluation text where the configuration's most likely next token is the reference's, percent",
        unit: Unit::Pct,
        better: Better::Higher,
        get: |e| fidelity(e).map(|f| f.top1_agreement * 100.0),
        ci95: no_ci,
        merge: MergeRule::PerTarget,
        gate: gated(1.0),
        column: None,
    },
    Metric {
        name: "perplexity_ratio",
        definition: "the configuration's perplexity over the evaluation text divided by the reference's",
        unit: Unit::Times,
        better: Better::Lower,
        get: |e| fidelity(e).map(|f| f.perplexity_ratio),
        ci95: no_ci,
        merge: MergeRule::PerTarget,
        gate: gated(1.0),
        column: None,
    },
    Metric {
        name: "success_rate_pct",
        definition: "verified tasks per checked task, percent: tasks (sessions) whose every checked call passed its checker (workloads with checkers; README, \"Verified tasks\"); its interval is the Wilson score interval",
        unit: Unit::Pct,
        better: Better::Higher,
        get: |e| e.verification.as_ref().map(|v| v.success_rate * 100.0),
        ci95: |e| {
            e.verification.as_ref().map(|v| {
                [
                    v.success_rate_ci95[0] * 100.0,
                    v.success_rate_ci95[1] * 100.0,
                ]
            })
        },
        merge: MergeRule::RatioOfSums,
        gate: gated(5.0),
        column: None,
    },
    Metric {
        name: "usd_per_verified_task",
        definition: "total cost per verified task: what a right answer costs, failed and wrong ones paid for",
        unit: Unit::Usd,
        better: Better::Lower,
        get: |e| e.cost.as_ref().and_then(|c| c.usd_per_verified_task),
        ci95: no_ci,
        merge: MergeRule::CostOfSums,
        gate: watched(5.0),
        column: None,
    },
    Metric {
        name: "j_per_verified_task",
        definition: "joules over the energy window per verified task in it",
        unit: Unit::Joules,
        better: Better::Lower,
        get: |e| e.energy.as_ref().and_then(|x| x.j_per_verified_task),
        ci95: no_ci,
        merge: MergeRule::EnergyOfSums,
        gate: watched(5.0),
        column: None,
    },
];

/// Metrics whose change is noise while the two results' 95% intervals overlap
/// (`compare`): proportions of a few dozen trials move by chance more than any fixed
/// threshold.
pub const NOISE_BY_INTERVAL: &[&str] = &["success_rate_pct"];

/// A result's fidelity figures, when `--quality` measured them.
fn fidelity(e: &ResultEntry) -> Option<&crate::report::Fidelity> {
    e.quality.as_ref()?.fidelity.as_ref()
}

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The names of every metric, comma-separated.
pub fn metric_names() -> String {
    METRICS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The metrics that are columns of the summary table, in column order.
pub fn columns() -> impl Iterator<Item = &'static Metric> {
    METRICS.iter().filter(|m| m.column.is_some())
}

/// The README's metrics table: name, unit, better, merge rule, default gate, column.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| metric | unit | better | after merge | default gate | summary column | definition |\n|---|---|---|---|---|---|---|\n",
    );
    for m in METRICS {
        let gate = match (m.gate.by_default, m.unit.delta_in_points()) {
            (true, true) => format!("{} points", m.gate.threshold),
            (true, false) => format!("{}%", m.gate.threshold),
            (false, _) => "not gated".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {gate} | {} | {} |\n",
            m.name,
            m.unit.as_str(),
            match m.better {
                Better::Lower => "lower",
                Better::Higher => "higher",
            },
            m.merge.as_str(),
            m.column.map_or("-".to_string(), |c| format!("`{c}`")),
            m.definition
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_carry_units_and_gates_exist() {
        assert!(METRICS.iter().filter(|m| m.gate.by_default).count() >= 5);
        for (i, m) in METRICS.iter().enumerate() {
            assert!(
                METRICS[i + 1..].iter().all(|o| o.name != m.name),
                "{} twice",
                m.name
            );
            let suffixes = match m.unit {
                Unit::Ms => &["_ms"][..],
                Unit::PerS => &["_per_s", "_per_user"][..],
                Unit::Ratio => &["_ratio"][..],
                Unit::Pct => &["_pct"][..],
                Unit::Usd => &["_output", "_workload", "_task"][..],
                Unit::TokensPerJ => &["_output"][..],
                Unit::Nats => &["_nats"][..],
                Unit::Times => &["_ratio"][..],
                Unit::Joules => &["_task"][..],
            };
            assert!(
                suffixes.iter().any(|s| m.name.ends_with(s)),
                "{} does not end in its unit",
                m.name
            );
        }
        let columns: Vec<&str> = columns().filter_map(|m| m.column).collect();
        for (i, c) in columns.iter().enumerate() {
            assert!(!columns[i + 1..].contains(c), "column {c} twice");
        }
    }

    #[test]
    fn every_family_percentile_reads_its_summary() {
        let mut h = crate::histogram::LatencyHistogram::new();
        for x in 1..=1000 {
            h.record_ms(f64::from(x));
        }
        let s = h.summary();
        for p in Percentile::ALL {
            let v = p.of(&s).unwrap();
            assert!((v - 1000.0 * p.fraction()).abs() <= 1.0, "{p:?}: {v}");
            assert_eq!(Percentile::parse(p.as_str()), Some(p));
        }
        assert_eq!(Percentile::P99_9.ci95_of(&s), None);
        assert!(Percentile::P99.ci95_of(&s).is_some());
        assert!(family("ttft").is_some() && family("queue").is_none());
    }
}
