//! `infermeter sweep`: one workload against one target at a series of load points,
//! each judged against an SLO ([`crate::sweep`]).

use anyhow::Result;
use clap::Args;

use super::run::RunArgs;
use crate::config::RunConfig;
use crate::error::bad_input;
use crate::run::manifest::RunKind;
use crate::run::{Execution, execute};
use crate::slo::Slo;
use crate::sweep::{Level, Levels, Sweep, summary};

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
    /// Search for the highest load meeting --slo: `rate:LO..HI` (sessions per second,
    /// open loop) or `concurrency:LO..HI` (closed loop). Doubles from LO until a level
    /// fails, then bisects; over-saturated and failing points fail, a client-bound
    /// point stops the search without claiming a limit.
    #[arg(long)]
    pub search: Option<String>,
    /// Relative gap between the highest passing and the lowest failing level that
    /// ends a search.
    #[arg(long, default_value_t = 0.1)]
    pub search_tolerance: f64,
    /// Runs of each searched level; a level passes only when every run passes.
    #[arg(long, default_value_t = 1)]
    pub search_repeats: u32,
    /// Service-level objective, e.g. ttft_p99_ms=2000,tpot_p99_ms=100.
    #[arg(long)]
    pub slo: Option<String>,
}

/// Runs `infermeter sweep`.
pub async fn run(args: SweepArgs) -> Result<()> {
    let r = &args.run;
    if r.suite.is_some() || r.workloads.len() != 1 {
        return Err(bad_input("sweep runs exactly one --workload (no --suite)"));
    }
    if r.targets.len() != 1 {
        return Err(bad_input("sweep runs against exactly one --target"));
    }
    if r.concurrency.is_some() || r.rate.is_some() {
        return Err(bad_input(
            "sweep sets the load itself: use --concurrencies, --rates or --auto, not --concurrency or --rate",
        ));
    }
    let cfg = RunConfig::from_args(r)?;
    let search = args
        .search
        .as_deref()
        .map(|t| crate::search::Search::parse(t, args.search_tolerance, args.search_repeats))
        .transpose()?;
    if search.is_some() {
        if args.slo.is_none() {
            return Err(bad_input(
                "--search needs --slo: the objective the limit meets",
            ));
        }
        if r.repeat > 1 {
            return Err(bad_input(
                "--search repeats levels itself: use --search-repeats, not --repeat",
            ));
        }
    }
    let levels = match (
        args.concurrencies.is_empty(),
        args.rates.is_empty(),
        args.auto,
    ) {
        _ if search.is_some()
            && !(args.concurrencies.is_empty() && args.rates.is_empty() && !args.auto) =>
        {
            return Err(bad_input(
                "give exactly one of --concurrencies, --rates, --auto or --search",
            ));
        }
        _ if search.is_some() => Levels::Search(search.expect("checked")),
        (false, true, false) => Levels::Explicit(
            args.concurrencies
                .iter()
                .map(|&c| Level::Concurrency(c))
                .collect(),
        ),
        (true, false, false) => {
            Levels::Explicit(args.rates.iter().map(|&r| Level::Rate(r)).collect())
        }
        (true, true, true) => Levels::Auto {
            max_points: args.max_points,
        },
        _ => {
            return Err(bad_input(
                "give exactly one of --concurrencies, --rates, --auto or --search",
            ));
        }
    };
    if let Levels::Explicit(levels) = &levels
        && levels.iter().any(|l| match *l {
            Level::Concurrency(c) => c == 0,
            Level::Rate(r) => !(r.is_finite() && r > 0.0),
        })
    {
        return Err(bad_input("concurrencies must be >= 1 and rates positive"));
    }
    let slo = args.slo.as_deref().map(Slo::parse).transpose()?;
    let sweep = Sweep {
        workload: cfg.workloads[0].clone(),
        base: cfg.overrides.clone(),
        levels,
    };
    // Every explicit point is resolved before anything runs, so a bad one fails first.
    let first = sweep.check()?.into_iter().next();
    let (name, seed) = match &first {
        Some((spec, seed)) => (spec.name.replace('/', "-"), *seed),
        None => return Err(bad_input("sweep: no load point to run")),
    };
    let label = format!("sweep-{name}");
    let mut next = |_t: usize, done: &[results::ResultEntry]| sweep.next(done);
    let conclude =
        search.map(|s| move |target: &str, own: &[results::ResultEntry]| s.outcome(target, own));
    let x = Execution {
        config: &cfg,
        kind: RunKind::Sweep,
        label: &label,
        seed,
        slo: slo.as_ref(),
        conclude: conclude.as_ref().map(|c| c as &crate::run::Conclude),
    };
    let report = execute(&x, &mut next).await?;
    print!("{}", summary(&report));
    for s in &report.search {
        println!("search ({}): {}", s.target, s.conclusion);
    }
    Ok(())
}
