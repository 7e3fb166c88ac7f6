//! Service-level objectives: `ttft_p99_ms=2000,tpot_p99_ms=100`. A load point passes
//! when every objective's percentile is within its bound; goodput counts the requests
//! that met every per-request bound (TTFT, TPOT and E2E objectives bound each request;
//! ITL objectives only the percentile), failed requests counting as misses.

use std::collections::BTreeMap;

use anyhow::Result;
use results::{LatencySummary, ResultEntry, SloVerdict};

use crate::collector::RequestRecord;
use crate::error::bad_input;

/// Metrics an objective may bound.
const METRICS: [&str; 4] = ["ttft", "tpot", "itl", "e2e"];
/// Percentiles an objective may name.
const PERCENTILES: [&str; 5] = ["p50", "p90", "p95", "p99", "p99_9"];

/// One objective: a percentile of a latency metric at most `bound_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    /// `ttft`, `tpot`, `itl` or `e2e`.
    pub metric: String,
    /// `p50` ... `p99_9`.
    pub percentile: String,
    /// Bound, milliseconds.
    pub bound_ms: f64,
}

impl Objective {
    fn name(&self) -> String {
        format!("{}_{}_ms", self.metric, self.percentile)
    }
}

/// A parsed SLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slo {
    /// The objectives, in the order given.
    pub objectives: Vec<Objective>,
}

impl Slo {
    /// Parses `--slo`: comma-separated `METRIC_PCT_ms=BOUND`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut objectives = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                bad_input(format!(
                    "--slo {part}: expected METRIC_PERCENTILE_ms=BOUND, e.g. ttft_p99_ms=2000"
                ))
            })?;
            let key = key.trim();
            let inner = key.strip_suffix("_ms").ok_or_else(|| {
                bad_input(format!(
                    "--slo {key}: objectives are in milliseconds and end in _ms"
                ))
            })?;
            let (metric, percentile) = inner
                .split_once('_')
                .ok_or_else(|| bad_input(format!("--slo {key}: expected METRIC_PERCENTILE_ms")))?;
            if !METRICS.contains(&metric) || !PERCENTILES.contains(&percentile) {
                return Err(bad_input(format!(
                    "--slo {key}: unknown objective (metrics: {}; percentiles: {})",
                    METRICS.join(", "),
                    PERCENTILES.join(", ")
                )));
            }
            let bound_ms: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    bad_input(format!(
                        "--slo {key}: bound must be a positive number of ms, got `{value}`"
                    ))
                })?;
            objectives.push(Objective {
                metric: metric.into(),
                percentile: percentile.into(),
                bound_ms,
            });
        }
        if objectives.is_empty() {
            return Err(bad_input("--slo: no objective given"));
        }
        Ok(Self { objectives })
    }

    /// Whether one successful request met every per-request bound.
    pub fn request_meets(&self, r: &RequestRecord) -> bool {
        self.objectives.iter().all(|o| match o.metric.as_str() {
            "ttft" => r.ttft_ms.is_some_and(|v| v <= o.bound_ms),
            "tpot" => r.tpot_ms.is_none_or(|v| v <= o.bound_ms),
            "e2e" => r.e2e_ms <= o.bound_ms,
            _ => true,
        })
    }

    /// Judges a load point; `met` is its count of requests meeting every bound.
    pub fn judge(&self, e: &ResultEntry, met: u64) -> SloVerdict {
        let mut missed = Vec::new();
        let mut objectives = BTreeMap::new();
        for o in &self.objectives {
            objectives.insert(o.name(), o.bound_ms);
            let summary: &LatencySummary = match o.metric.as_str() {
                "ttft" => &e.latency.ttft_ms,
                "tpot" => &e.latency.tpot_ms,
                "itl" => &e.latency.itl_ms,
                _ => &e.latency.e2e_ms,
            };
            let value = match o.percentile.as_str() {
                "p50" => summary.p50,
                "p90" => summary.p90,
                "p95" => summary.p95,
                "p99" => summary.p99,
                _ => summary.p99_9,
            };
            match value {
                Some(v) if v <= o.bound_ms => {}
                Some(v) => missed.push(format!("{} {v} > {}", o.name(), o.bound_ms)),
                None => missed.push(format!("{} not measured", o.name())),
            }
        }
        // Failures count as misses: a p99 objective allows 1% of requests above the
        // bound, failed ones included, so a load point whose failures alone exceed the
        // strictest objective's allowance cannot pass on the survivors' latency.
        let sent = e.requests.sent;
        let fail_rate = if sent > 0 {
            e.requests.failed as f64 / sent as f64
        } else {
            1.0
        };
        let allowance = self
            .objectives
            .iter()
            .map(|o| 1.0 - percentile_fraction(&o.percentile))
            .fold(1.0, f64::min);
        if e.requests.ok == 0 {
            missed.push("no request succeeded".into());
        } else if fail_rate > allowance {
            missed.push(format!(
                "{:.2}% of requests failed (the strictest objective allows {:.2}%)",
                fail_rate * 100.0,
                allowance * 100.0
            ));
        }
        let window = e.load.measured_s;
        SloVerdict {
            objectives,
            pass: missed.is_empty(),
            missed,
            requests_meeting: met,
            goodput_rps: if window > 0.0 {
                met as f64 / window
            } else {
                0.0
            },
            goodput_ratio: (sent > 0).then(|| met as f64 / sent as f64),
        }
    }
}

fn percentile_fraction(p: &str) -> f64 {
    match p {
        "p50" => 0.50,
        "p90" => 0.90,
        "p95" => 0.95,
        "p99" => 0.99,
        _ => 0.999,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn objectives_parse_and_bad_ones_name_the_problem() {
        let s = Slo::parse("ttft_p99_ms=2000, tpot_p99_ms=100").unwrap();
        assert_eq!(s.objectives.len(), 2);
        assert_eq!(s.objectives[1].bound_ms, 100.0);
        let e = Slo::parse("ttft_p98_ms=1").unwrap_err().to_string();
        assert!(e.contains("unknown objective"), "{e}");
        let e = Slo::parse("ttft_p99=1").unwrap_err().to_string();
        assert!(e.contains("end in _ms"), "{e}");
        let e = Slo::parse("ttft_p99_ms=-1").unwrap_err().to_string();
        assert!(e.contains("positive"), "{e}");
        assert!(Slo::parse("").is_err());
    }
}
