//! Comparing a candidate run with a baseline: deltas per result and metric, a verdict
//! per gated metric against its threshold, and a judgement of whether the two runs can
//! be compared at all (same hardware, same workload digests and seeds).
//!
//! Either side may hold several reports of the same runs (repeats). Then each figure is
//! the mean over repeats, and a difference no larger than the run-to-run spread (the
//! larger of the two sides' max - min) is reported as noise, never as a regression; so is
//! a change of a success rate whose two 95% intervals overlap.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::{Better, METRICS, Metric, metric, metric_names};
use crate::report::{Report, ResultEntry};

/// What to gate and how strictly.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    /// Metrics gated; empty = the default set.
    pub metrics: Vec<String>,
    /// A threshold for every gated metric, overriding the defaults.
    pub threshold_all: Option<f64>,
    /// Thresholds per metric, overriding everything else.
    pub thresholds: BTreeMap<String, f64>,
}

impl Gate {
    fn gated(&self, m: &Metric) -> bool {
        if self.metrics.is_empty() {
            m.gate.by_default
        } else {
            self.metrics.iter().any(|n| n == m.name)
        }
    }

    fn threshold(&self, m: &Metric) -> f64 {
        self.thresholds
            .get(m.name)
            .copied()
            .or(self.threshold_all)
            .unwrap_or(m.gate.threshold)
    }

    /// Checks every named metric exists.
    pub fn check(&self) -> Result<(), String> {
        for n in self.metrics.iter().chain(self.thresholds.keys()) {
            if metric(n).is_none() {
                return Err(format!(
                    "unknown metric `{n}` (metrics: {})",
                    metric_names()
                ));
            }
        }
        Ok(())
    }
}

/// The verdict on one metric of one result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the threshold.
    Ok,
    /// Better beyond the threshold.
    Improved,
    /// Worse beyond the threshold, on a gated metric.
    Regressed,
    /// Worse beyond the threshold on a metric that is not gated.
    Worse,
    /// The difference is within the run-to-run spread.
    Noise,
    /// Not measured on one side.
    Missing,
}

/// One row: a metric of a result on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The result's key (target / workload / load point).
    pub result: String,
    /// Metric name.
    pub metric: &'static str,
    /// Baseline value (mean over repeats).
    pub base: Option<f64>,
    /// Candidate value (mean over repeats).
    pub cand: Option<f64>,
    /// Change, percent (percentage points for percent metrics such as
    /// `error_rate_pct`).
    pub delta: Option<f64>,
    /// The larger side's max - min over repeats, in the metric's unit; `null` with a
    /// single run per side.
    pub spread: Option<f64>,
    /// Whether the metric is gated.
    pub gated: bool,
    /// Threshold used.
    pub threshold: f64,
    /// Verdict.
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Rows, by result then metric.
    pub rows: Vec<Row>,
    /// Why the runs are not comparable; empty when they are.
    pub not_comparable: Vec<String>,
    /// Differences worth knowing that do not prevent comparing (tool versions,
    /// target settings).
    pub notes: Vec<String>,
    /// Results on one side only.
    pub unmatched: Vec<String>,
}

impl Comparison {
    /// Gated rows that regressed.
    pub fn regressions(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .collect()
    }
}

fn hardware_fingerprint(r: &Report) -> Vec<(&'static str, String)> {
    let h = &r.hardware;
    vec![
        ("cpu_model", h.cpu_model.clone()),
        ("cpu_logical_cores", h.cpu_logical_cores.to_string()),
        ("memory_bytes", h.memory_bytes.to_string()),
        ("arch", h.arch.clone()),
        (
            "gpus",
            h.gpus
                .iter()
                .map(|g| g.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn range(xs: &[f64]) -> Option<f64> {
    (xs.len() > 1).then(|| {
        xs.iter().copied().fold(f64::MIN, f64::max) - xs.iter().copied().fold(f64::MAX, f64::min)
    })
}

fn by_pair_key(side: &[Report]) -> BTreeMap<String, Vec<&ResultEntry>> {
    let mut m: BTreeMap<String, Vec<&ResultEntry>> = BTreeMap::new();
    for r in side {
        for e in &r.results {
            m.entry(e.pair_key()).or_default().push(e);
        }
    }
    m
}

/// Compares `cand` with `base` (each one or more repeats of a run).
pub fn compare(base: &[Report], cand: &[Report], gate: &Gate) -> Comparison {
    let mut not_comparable = Vec::new();
    let mut notes = Vec::new();
    if let (Some(b), Some(c)) = (base.first(), cand.first()) {
        for ((field, x), (_, y)) in hardware_fingerprint(b)
            .into_iter()
            .zip(hardware_fingerprint(c))
        {
            if x != y {
                not_comparable.push(format!("hardware differs: {field} `{x}` vs `{y}`"));
            }
        }
        let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
        if major(&b.schema_version) != major(&c.schema_version) {
            not_comparable.push(format!(
                "schema major versions differ: {} vs {}",
                b.schema_version, c.schema_version
            ));
        }
        if b.tool.version != c.tool.version || b.tool.git_sha != c.tool.git_sha {
            notes.push(format!(
                "tool versions differ: {} ({}) vs {} ({})",
                b.tool.version,
                b.tool.git_sha.as_deref().unwrap_or("unknown commit"),
                c.tool.version,
                c.tool.git_sha.as_deref().unwrap_or("unknown commit")
            ));
        }
    }
    let (bm, cm) = (by_pair_key(base), by_pair_key(cand));
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    for (key, bs) in &bm {
        let Some(cs) = cm.get(key) else {
            unmatched.push(format!("only in the baseline: {key}"));
            continue;
        };
        let (b0, c0) = (bs[0], cs[0]);
        if b0.workload.spec_sha256 != c0.workload.spec_sha256 {
            not_comparable.push(format!("{key}: workload spec differs (spec_sha256)"));
        }
        if b0.workload.stream_sha256 != c0.workload.stream_sha256 {
            not_comparable.push(format!(
                "{key}: request streams differ (seed {} vs {})",
                b0.workload.seed, c0.workload.seed
            ));
        }
        if b0.target.settings != c0.target.settings {
            let diff: Vec<String> = b0
                .target
                .settings
                .iter()
                .filter(|(k, v)| c0.target.settings.get(*k) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{k} {v} -> {}",
                        c0.target.settings.get(k).map_or("unset", String::as_str)
                    )
                })
                .chain(
                    c0.target
                        .settings
                        .iter()
                        .filter(|(k, _)| !b0.target.settings.contains_key(*k))
                        .map(|(k, v)| format!("{k} unset -> {v}")),
                )
                .collect();
            notes.push(format!(
                "{key}: target settings differ: {}",
                diff.join(", ")
            ));
        }
        let short = key.clone();
        for m in METRICS {
            let bv: Vec<f64> = bs.iter().filter_map(|e| (m.get)(e)).collect();
            let cv: Vec<f64> = cs.iter().filter_map(|e| (m.get)(e)).collect();
            let (b, c) = (mean(&bv), mean(&cv));
            let gated = gate.gated(m);
            let threshold = gate.threshold(m);
            let points = m.unit.delta_in_points();
            let delta = match (b, c) {
                (Some(b), Some(c)) if points => Some(c - b),
                (Some(b), Some(c)) if b != 0.0 => Some((c - b) / b.abs() * 100.0),
                (Some(b), Some(c)) if b == c => Some(0.0),
                _ => None,
            };
            let spread = match (range(&bv), range(&cv)) {
                (None, None) => None,
                (x, y) => Some(x.unwrap_or(0.0).max(y.unwrap_or(0.0))),
            };
            let verdict = match (b, c, delta) {
                (Some(b), Some(c), Some(d)) => {
                    let worse = match m.better {
                        Better::Lower => d > threshold,
                        Better::Higher => -d > threshold,
                    };
                    let better = match m.better {
                        Better::Lower => -d > threshold,
                        Better::Higher => d > threshold,
                    };
                    // A proportion from few trials (a success rate) moves by chance
                    // more than its threshold: while the two intervals overlap, it is noise.
                    let overlap = crate::metrics::NOISE_BY_INTERVAL.contains(&m.name)
                        && match (&bs[..], &cs[..]) {
                            ([be], [ce]) => match ((m.ci95)(be), (m.ci95)(ce)) {
                                (Some(x), Some(y)) => x[0] <= y[1] && y[0] <= x[1],
                                _ => false,
                            },
                            _ => false,
                        };
                    if (worse || better) && (overlap || spread.is_some_and(|s| (c - b).abs() <= s))
                    {
                        Verdict::Noise
                    } else if worse && gated {
                        Verdict::Regressed
                    } else if worse {
                        Verdict::Worse
                    } else if better {
                        Verdict::Improved
                    } else {
                        Verdict::Ok
                    }
                }
                (None, None, _) => continue,
                _ => Verdict::Missing,
            };
            rows.push(Row {
                result: short.clone(),
                metric: m.name,
                base: b,
                cand: c,
                delta,
                spread,
                gated,
                threshold,
                verdict,
            });
        }
    }
    for k in cm.keys() {
        if !bm.contains_key(k) {
            unmatched.push(format!("only in the candidate: {k}"));
        }
    }
    not_comparable.dedup();
    Comparison {
        rows,
        not_comparable,
        notes,
        unmatched,
    }
}

/// The comparison as a table (or Markdown): one row per result and metric.
pub fn render(c: &Comparison, markdown: bool) -> String {
    use std::fmt::Write as _;
    use tabled::builder::Builder;
    let mut b = Builder::default();
    b.push_record([
        "result",
        "metric",
        "base",
        "cand",
        "delta",
        "threshold",
        "verdict",
    ]);
    let num = |x: Option<f64>| {
        x.map_or("-".into(), |v| {
            if v == 0.0 || v.abs() >= 0.01 {
                format!("{v:.4}")
            } else {
                format!("{v:.3e}")
            }
        })
    };
    for r in &c.rows {
        let unit = r.unit_suffix();
        b.push_record([
            r.result.clone(),
            r.metric.to_string(),
            num(r.base),
            num(r.cand),
            r.delta.map_or("-".into(), |d| format!("{d:+.2}{unit}")),
            if r.gated {
                format!("{}{unit}", r.threshold)
            } else {
                "not gated".into()
            },
            match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Improved => "improved",
                Verdict::Regressed => "REGRESSED",
                Verdict::Worse => "worse",
                Verdict::Noise => "noise",
                Verdict::Missing => "missing",
            }
            .to_string(),
        ]);
    }
    let mut t = b.build();
    if markdown {
        t.with(tabled::settings::Style::markdown());
    } else {
        t.with(tabled::settings::Style::rounded());
    }
    let mut out = String::new();
    for w in &c.not_comparable {
        let _ = writeln!(out, "WARNING: NOT COMPARABLE: {w}");
    }
    let _ = writeln!(out, "{t}");
    for n in &c.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for u in &c.unmatched {
        let _ = writeln!(out, "unmatched: {u}");
    }
    out
}

impl Row {
    /// How `delta` and `threshold` are written: ` pt` (points) or `%`.
    pub fn unit_suffix(&self) -> &'static str {
        if metric(self.metric).is_some_and(|m| m.unit.delta_in_points()) {
            " pt"
        } else {
            "%"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_metric_is_refused_naming_the_known_ones() {
        let g = Gate {
            metrics: vec!["nope".into()],
            ..Gate::default()
        };
        let err = g.check().unwrap_err();
        assert!(err.contains("unknown metric `nope`"), "{err}");
        assert!(err.contains("ttft_p90_ms"), "{err}");
    }
}
