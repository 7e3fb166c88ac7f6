//! Service-level objectives: `ttft_p99_ms=2000,tpot_p99_ms=100`. An objective bounds a
//! percentile of a latency family of the metrics registry ([`results::metrics`]). A
//! load point passes when every objective's percentile is within its bound; goodput
//! counts the requests that met every per-request bound (families with one value per
//! request: TTFT, TPOT and E2E; ITL objectives bound only the percentile), failed
//! requests counting as misses.

use std::collections::BTreeMap;

use anyhow::Result;
use results::metrics::{FAMILIES, Family, LatencyField, Percentile, family};
use results::{ResultEntry, SloVerdict};
use serde::{Deserialize, Serialize};

use crate::error::bad_input;
use crate::record::RequestRecord;

/// Smallest bound of an objective, ms (a microsecond).
pub const MIN_BOUND_MS: f64 = 0.001;
/// Largest bound of an objective, ms (a day).
pub const MAX_BOUND_MS: f64 = 86_400_000.0;

/// One objective: a percentile of a latency family at most `bound_ms`.
#[derive(Clone, Copy, Debug)]
pub struct Objective {
    /// The latency family (`ttft`, `tpot`, `itl`, `e2e`).
    pub family: &'static Family,
    /// The percentile.
    pub percentile: Percentile,
    /// Bound, milliseconds.
    pub bound_ms: f64,
}

impl PartialEq for Objective {
    fn eq(&self, other: &Self) -> bool {
        self.family.name == other.family.name
            && self.percentile == other.percentile
            && self.bound_ms == other.bound_ms
    }
}

impl Objective {
    /// `ttft_p99_ms`.
    pub fn name(&self) -> String {
        format!("{}_{}_ms", self.family.name, self.percentile.as_str())
    }
}

/// A parsed SLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slo {
    /// The objectives, in the order given.
    pub objectives: Vec<Objective>,
}

/// An SLO as `run.json` keeps it: its text, parsed again when read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SloText(pub String);

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
            let (Some(fam), Some(pct)) = (family(metric), Percentile::parse(percentile)) else {
                return Err(bad_input(format!(
                    "--slo {key}: unknown objective (metrics: {}; percentiles: {})",
                    FAMILIES
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                    Percentile::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let bound_ms: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && (MIN_BOUND_MS..=MAX_BOUND_MS).contains(v))
                .ok_or_else(|| {
                    bad_input(format!(
                        "--slo {key}: bound must be a number of ms from {MIN_BOUND_MS} to {MAX_BOUND_MS}, got `{value}`"
                    ))
                })?;
            objectives.push(Objective {
                family: fam,
                percentile: pct,
                bound_ms,
            });
        }
        if objectives.is_empty() {
            return Err(bad_input("--slo: no objective given"));
        }
        Ok(Self { objectives })
    }

    /// The objectives as given on the command line.
    pub fn text(&self) -> SloText {
        SloText(
            self.objectives
                .iter()
                .map(|o| format!("{}={}", o.name(), o.bound_ms))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// Whether one successful request met every per-request bound.
    pub fn request_meets(&self, r: &RequestRecord) -> bool {
        self.objectives.iter().all(|o| match o.family.field {
            LatencyField::Ttft => r.ttft_ms.is_some_and(|v| v <= o.bound_ms),
            LatencyField::Tpot => r.tpot_ms.is_none_or(|v| v <= o.bound_ms),
            LatencyField::E2e => r.e2e_ms <= o.bound_ms,
            LatencyField::Itl => true,
        })
    }

    /// Judges a load point; `met` is its count of requests meeting every bound.
    pub fn judge(&self, e: &ResultEntry, met: u64) -> SloVerdict {
        let mut missed = Vec::new();
        let mut objectives = BTreeMap::new();
        for o in &self.objectives {
            objectives.insert(o.name(), o.bound_ms);
            let value = o.percentile.of((o.family.summary)(e));
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
            .map(|o| 1.0 - o.percentile.fraction())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn objectives_parse_and_bad_ones_name_the_problem() {
        let s = Slo::parse("ttft_p99_ms=2000, tpot_p99_ms=100").unwrap();
        assert_eq!(s.objectives.len(), 2);
        assert_eq!(s.objectives[1].bound_ms, 100.0);
        assert_eq!(s.text().0, "ttft_p99_ms=2000,tpot_p99_ms=100");
        assert_eq!(Slo::parse(&s.text().0).unwrap(), s);
        assert_eq!(
            Slo::parse("itl_p99_9_ms=5").unwrap().objectives[0].name(),
            "itl_p99_9_ms"
        );
        let e = Slo::parse("ttft_p98_ms=1").unwrap_err().to_string();
        assert!(e.contains("unknown objective"), "{e}");
        let e = Slo::parse("ttft_p99=1").unwrap_err().to_string();
        assert!(e.contains("end in _ms"), "{e}");
        for bad in ["-1", "0", "1e-306", "1e300", "inf"] {
            let e = Slo::parse(&format!("ttft_p99_ms={bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("from 0.001 to 86400000"), "{bad}: {e}");
        }
        assert!(Slo::parse("").is_err());
    }
}
