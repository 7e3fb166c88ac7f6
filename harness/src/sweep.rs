//! `infermeter sweep`: one workload against one target at a series of load points —
//! an explicit list of concurrencies or rates, or automatic (closed loop at 1, 2, 4,
//! ... sessions until throughput stops rising or errors climb) — each judged against
//! an SLO. Prints the throughput-vs-interactivity curve with its Pareto front, goodput,
//! and the cost per million tokens at the best point that meets the SLO.

use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use results::{ArrivalPattern, Report, ResultEntry};

use crate::cli::{RunArgs, execute};
use crate::error::bad_input;
use crate::plan::{Overrides, resolve};
use crate::slo::Slo;

/// Throughput gain below which the automatic sweep calls the target saturated.
pub const SATURATION_GAIN: f64 = 0.05;
/// Error rate above which the automatic sweep stops.
pub const MAX_ERROR_RATE: f64 = 0.05;

/// `sweep` arguments.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The run's settings: one --workload, one --target, and the bounds of each point.
    #[command(flatten)]
    pub run: RunArgs,
    /// Closed-loop concurrencies to run, comma-separated (e.g. 1,2,4,8).
    #[arg(long, value_delimiter = ',')]
    pub concurrencies: Vec<u32>,
    /// Open-loop session rates to run, sessions per second, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Closed loop at 1, 2, 4, ... sessions until output throughput rises less than 5%
    /// or more than 5% of requests fail (at most --max-points points).
    #[arg(long)]
    pub auto: bool,
    /// Most load points of an automatic sweep.
    #[arg(long, default_value_t = 8)]
    pub max_points: usize,
    /// Service-level objective, e.g. ttft_p99_ms=2000,tpot_p99_ms=100.
    #[arg(long)]
    pub slo: Option<String>,
}

/// A load level.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Concurrency(u32),
    Rate(f64),
}

/// The next load level of an automatic sweep from the points measured so far; `None`
/// ends it.
fn next_level(max_points: usize, done: &[ResultEntry]) -> Option<Level> {
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
    Some(Level::Concurrency(
        last.load.concurrency.unwrap_or(1).saturating_mul(2),
    ))
}

/// Runs the sweep.
pub async fn sweep_command(args: SweepArgs) -> Result<()> {
    let run = &args.run;
    if run.suite.is_some() || run.workloads.len() != 1 {
        return Err(bad_input("sweep runs exactly one --workload (no --suite)"));
    }
    if run.targets.len() != 1 {
        return Err(bad_input("sweep runs against exactly one --target"));
    }
    if run.concurrency.is_some() || run.rate.is_some() {
        return Err(bad_input(
            "sweep sets the load itself: use --concurrencies, --rates or --auto, not --concurrency or --rate",
        ));
    }
    let explicit: Vec<Level> = match (
        args.concurrencies.is_empty(),
        args.rates.is_empty(),
        args.auto,
    ) {
        (false, true, false) => args
            .concurrencies
            .iter()
            .map(|&c| Level::Concurrency(c))
            .collect(),
        (true, false, false) => args.rates.iter().map(|&r| Level::Rate(r)).collect(),
        (true, true, true) => Vec::new(),
        _ => {
            return Err(bad_input(
                "give exactly one of --concurrencies, --rates or --auto",
            ));
        }
    };
    if explicit.iter().any(|l| match *l {
        Level::Concurrency(c) => c == 0,
        Level::Rate(r) => !(r.is_finite() && r > 0.0),
    }) {
        return Err(bad_input("concurrencies must be >= 1 and rates positive"));
    }
    if args.auto && args.max_points < 2 {
        return Err(bad_input("--max-points must be at least 2"));
    }
    let slo = args.slo.as_deref().map(Slo::parse).transpose()?;
    let base = Overrides {
        seed: run.seed,
        requests: run.requests,
        duration_s: run.duration,
        rate_rps: None,
        concurrency: None,
        arrival: run.arrival.map(Into::into),
        burstiness: run.burstiness,
        warmup: run.warmup,
        scale: run.scale,
    };
    let point = |level: Level| -> Result<(workloads::spec::WorkloadSpec, u64)> {
        let mut o = base.clone();
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
        let plan = resolve(None, &run.workloads, &o)?;
        plan.workloads
            .into_iter()
            .next()
            .ok_or_else(|| bad_input("the workload resolved to nothing"))
    };
    // Every explicit point is resolved before anything runs, so a bad one fails first.
    let resolved = explicit
        .iter()
        .map(|l| point(*l))
        .collect::<Result<Vec<_>>>()?;
    let first = match resolved.first() {
        Some(p) => p.clone(),
        None => point(Level::Concurrency(1))?,
    };
    let label = format!("sweep-{}", first.0.name.replace('/', "-"));
    let seed = first.1;
    let mut failed: Option<anyhow::Error> = None;
    let mut next = |_t: usize, done: &[ResultEntry]| {
        if !args.auto {
            return resolved.get(done.len()).cloned();
        }
        let level = next_level(args.max_points, done)?;
        match point(level) {
            Ok(p) => Some(p),
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    };
    let report = execute(run, &label, seed, slo.as_ref(), &mut next).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    print!("{}", summary(&report));
    Ok(())
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
    let front = results::html::pareto_front(&pts);
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
            results::merge::load_label(e),
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
                    results::merge::load_label(e),
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
        let published: Report = serde_json::from_str(include_str!(
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
    }
}
