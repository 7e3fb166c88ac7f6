//! Sweeps: one workload against one target at a series of load points — an explicit
//! list of concurrencies or rates, automatic (closed loop at 1, 2, 4, ... sessions
//! until throughput stops rising or errors climb), or a search for the highest load
//! meeting an SLO ([`crate::search`]) — each judged against an SLO; and
//! the summary: the throughput-vs-interactivity curve with its Pareto front, goodput,
//! and the cost per million tokens at the best point that meets the SLO.

use std::fmt::Write as _;

use anyhow::Result;
use results::{ArrivalPattern, Report, ResultEntry};
use workloads::spec::WorkloadSpec;

use crate::error::bad_input;
use crate::plan::{Overrides, resolve};

pub use crate::levels::{Level, MAX_ERROR_RATE, MAX_POINTS, SATURATION_GAIN};

/// Which load points a sweep runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Levels {
    /// These, in order.
    Explicit(Vec<Level>),
    /// Doubling closed-loop concurrency from 1 until saturation, at most this many.
    Auto {
        /// Most load points.
        max_points: usize,
    },
    /// The highest rate or concurrency meeting the SLO ([`crate::search`]).
    Search(crate::search::Search),
}

/// A sweep: one workload, its base overrides (no rate or concurrency: the levels set
/// those), and the levels.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The workload's name or file.
    pub workload: String,
    /// The load overrides every point shares.
    pub base: Overrides,
    /// The load points.
    pub levels: Levels,
}

impl Sweep {
    /// The workload resolved at `level`.
    pub fn point(&self, level: Level) -> Result<(WorkloadSpec, u64)> {
        let mut o = self.base.clone();
        match level {
            Level::Concurrency(c) => {
                o.concurrency = Some(c);
                o.arrival = Some(ArrivalPattern::Closed);
            }
            Level::Rate(r) => {
                o.rate_rps = Some(r);
                if matches!(
                    o.arrival,
                    None | Some(ArrivalPattern::Closed | ArrivalPattern::All)
                ) {
                    o.arrival = Some(ArrivalPattern::Poisson);
                }
            }
        }
        resolve(None, std::slice::from_ref(&self.workload), &o)?
            .workloads
            .into_iter()
            .next()
            .ok_or_else(|| bad_input("the workload resolved to nothing"))
    }

    /// Resolves every explicit point, so that a bad one fails before anything runs.
    pub fn check(&self) -> Result<Vec<(WorkloadSpec, u64)>> {
        match &self.levels {
            Levels::Explicit(levels) => levels.iter().map(|l| self.point(*l)).collect(),
            Levels::Auto { max_points } => {
                if !(2..=MAX_POINTS).contains(max_points) {
                    return Err(bad_input(format!(
                        "--max-points must be at least 2 and at most {MAX_POINTS}, got {max_points}"
                    )));
                }
                Ok(vec![self.point(Level::Concurrency(1))?])
            }
            Levels::Search(search) => Ok(search
                .next(&[])
                .map(|l| self.point(l))
                .transpose()?
                .into_iter()
                .collect()),
        }
    }

    /// The next point from the points measured so far; `None` ends the sweep.
    pub fn next(&self, done: &[ResultEntry]) -> Result<Option<(WorkloadSpec, u64)>> {
        match &self.levels {
            Levels::Explicit(levels) => levels.get(done.len()).map(|l| self.point(*l)).transpose(),
            Levels::Auto { max_points } => next_level(*max_points, done)
                .map(|l| self.point(l))
                .transpose(),
            Levels::Search(search) => search.next(done).map(|l| self.point(l)).transpose(),
        }
    }
}

/// The next load level of an automatic sweep from the points measured so far; `None`
/// ends it.
pub fn next_level(max_points: usize, done: &[ResultEntry]) -> Option<Level> {
    if done.len() >= max_points {
        return None;
    }
    let Some(last) = done.last() else {
        return Some(Level::Concurrency(1));
    };
    let sent = last.requests.sent.max(1) as f64;
    if last.requests.failed as f64 / sent > MAX_ERROR_RATE {
        return None;
    }
    if done.len() >= 2 {
        let best_before = done[..done.len() - 1]
            .iter()
            .map(|e| e.throughput.output_tokens_per_s)
            .fold(0.0, f64::max);
        if last.throughput.output_tokens_per_s < best_before * (1.0 + SATURATION_GAIN) {
            return None;
        }
    }
    // Doubling past the largest closed loop a run may have ends the sweep.
    let next = last.load.concurrency.unwrap_or(1).saturating_mul(2);
    (u64::from(next) <= workloads::bounds::MAX_CONCURRENCY).then_some(Level::Concurrency(next))
}

/// The sweep's curve, Pareto front, goodput and the best point meeting the SLO.
pub fn summary(r: &Report) -> String {
    let pts: Vec<(f64, f64)> = r
        .results
        .iter()
        .map(|e| {
            (
                e.throughput.output_tokens_per_s_per_user.unwrap_or(0.0),
                e.throughput.output_tokens_per_s,
            )
        })
        .collect();
    let front = results::render::html::pareto_front(&pts);
    let mut out = String::from(
        "\nsweep: load point | output tok/s | tok/s per user | SLO | goodput req/s | usd/M tokens | Pareto\n",
    );
    for (e, p) in r.results.iter().zip(&pts) {
        let slo = match &e.slo {
            None => "-".to_string(),
            Some(s) if s.pass => "pass".to_string(),
            Some(s) => format!("miss ({})", s.missed.join("; ")),
        };
        let _ = writeln!(
            out,
            "  {}{} | {:.1} | {:.1} | {} | {} | {} | {}",
            e.load_label(),
            e.repeat.map_or(String::new(), |r| format!(
                " (repeat {}/{})",
                r.index, r.count
            )),
            p.1,
            p.0,
            slo,
            e.slo
                .as_ref()
                .map_or("-".into(), |s| format!("{:.3}", s.goodput_rps)),
            e.cost
                .as_ref()
                .and_then(|c| c.usd_per_m_blended_workload)
                .map_or("-".into(), |c| format!("{c:.6}")),
            if front.contains(p) { "yes" } else { "" }
        );
    }
    let judged = r.results.iter().any(|e| e.slo.is_some());
    if judged {
        let best = r
            .results
            .iter()
            .filter(|e| e.slo.as_ref().is_some_and(|s| s.pass))
            .max_by(|a, b| {
                a.throughput
                    .output_tokens_per_s
                    .total_cmp(&b.throughput.output_tokens_per_s)
            });
        match best {
            Some(e) => {
                let _ = writeln!(
                    out,
                    "best point meeting the SLO: {} at {:.1} output tok/s; cost {} USD per M tokens of the mix",
                    e.load_label(),
                    e.throughput.output_tokens_per_s,
                    e.cost
                        .as_ref()
                        .and_then(|c| c.usd_per_m_blended_workload)
                        .map_or("not priced".into(), |c| format!("{c:.6}"))
                );
            }
            None => out.push_str("no load point met the SLO\n"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_sweep_doubles_until_throughput_stops_rising() {
        let (published, _) = results::schema::read_report_str(include_str!(
            "../../results/published/cpu-amd-epyc-2core/quick-smollm2-q4_1/report.json"
        ))
        .expect("the published report reads");
        let mut r = published.results[0].clone();
        r.requests.failed = 0;
        let mut done = Vec::new();
        assert_eq!(next_level(8, &done), Some(Level::Concurrency(1)));
        for (c, tput) in [(1, 10.0), (2, 19.0), (4, 30.0)] {
            r.load.concurrency = Some(c);
            r.throughput.output_tokens_per_s = tput;
            done.push(r.clone());
        }
        assert_eq!(next_level(8, &done), Some(Level::Concurrency(8)));
        r.load.concurrency = Some(8);
        r.throughput.output_tokens_per_s = 31.0; // +3%: saturated
        done.push(r.clone());
        assert_eq!(next_level(8, &done), None);
        assert_eq!(next_level(4, &done[..3]), Some(Level::Concurrency(8)));
        assert_eq!(next_level(3, &done[..3]), None);
        let mut failing = done[..1].to_vec();
        failing[0].requests.failed = failing[0].requests.sent;
        assert_eq!(next_level(8, &failing), None);
        // Still rising at 65,536 sessions: the next double is past the largest closed
        // loop a run may have, which ends the sweep.
        let mut big = done[..1].to_vec();
        r.load.concurrency = Some(65_536);
        r.throughput.output_tokens_per_s = 1000.0;
        big.push(r.clone());
        assert_eq!(next_level(32, &big), None);
        r.load.concurrency = Some(32_768);
        big[1] = r.clone();
        assert_eq!(next_level(32, &big), Some(Level::Concurrency(65_536)));
    }
}
