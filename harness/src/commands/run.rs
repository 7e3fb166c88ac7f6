//! `infermeter run`: workloads against targets, a report from the first second.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use results::{ArrivalPattern, ResultEntry};

use super::args::{PricingArgs, parse_shard};
use crate::config::{MAX_REPEAT, RunConfig, flag_connections, flag_seconds};
use crate::error::bad_input;
use crate::plan::{Overrides, resolve};
use crate::run::manifest::RunKind;
use crate::run::{Execution, execute};
use crate::targets::{DEFAULT_TARGET, TargetSpec, TargetsFile};

/// Arrival processes on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArrivalArg {
    /// Exponential inter-arrival times.
    Poisson,
    /// Fixed inter-arrival time.
    Constant,
    /// Gamma inter-arrival times (see --burstiness).
    Gamma,
    /// Closed loop at --concurrency.
    Closed,
    /// Everything at once.
    All,
}

impl From<ArrivalArg> for ArrivalPattern {
    fn from(a: ArrivalArg) -> Self {
        match a {
            ArrivalArg::Poisson => ArrivalPattern::Poisson,
            ArrivalArg::Constant => ArrivalPattern::Constant,
            ArrivalArg::Gamma => ArrivalPattern::Gamma,
            ArrivalArg::Closed => ArrivalPattern::Closed,
            ArrivalArg::All => ArrivalPattern::All,
        }
    }
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Suite to run (default: quick, when no --workload is given).
    #[arg(long)]
    pub suite: Option<String>,
    /// Workload name or TOML file (repeatable).
    #[arg(long = "workload")]
    pub workloads: Vec<String>,
    /// Target spec KIND[,key=value]* or @NAME[,key=value]* from --targets (repeatable).
    #[arg(long = "target", default_value = DEFAULT_TARGET)]
    pub targets: Vec<String>,
    /// TOML file of named targets ([targets.NAME] tables), used by --target @NAME.
    #[arg(long = "targets")]
    pub targets_file: Option<PathBuf>,
    /// Most connections per remote target (requests wait for one; the wait shows in
    /// queue_ms). Default: unbounded.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Output directory (default: results/runs/<UTC timestamp>-<suite>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of every request stream (default: each workload's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Measured requests per workload (at most 1,000,000).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Stop sending after this many seconds per workload (at most 7 days).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Session arrival rate, sessions per second (open loop; at most 1,000,000).
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Sessions in flight (closed loop; at most 100,000).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Arrival process.
    #[arg(long, value_enum)]
    pub arrival: Option<ArrivalArg>,
    /// Coefficient of variation of gamma inter-arrival times (1 = Poisson; at most 100).
    #[arg(long)]
    pub burstiness: Option<f64>,
    /// Warm-up requests per workload (excluded from every figure).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Multiply every workload's request count (at most 10,000).
    #[arg(long, allow_negative_numbers = true)]
    pub scale: Option<f64>,
    /// Seconds in-flight requests may run after sending stops (at most 7 days).
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Seconds one request may take before it counts as a timeout (at most 7 days).
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Pricing: price catalog, tier and region (default: the shipped catalog's).
    #[command(flatten)]
    pub pricing: PricingArgs,
    /// Send only shard I of N (1-based) of every request stream: the sessions whose
    /// index is I-1 modulo N, at the times the whole run would send them (a closed
    /// loop's concurrency is divided by N). `merge` of all N shard reports gives the
    /// whole run's figures.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<results::ShardRef>,
    /// Run every load point N times back to back, with the same requests, and report
    /// the run-to-run spread of its figures (`repeat_spread`); `compare` then treats
    /// differences within that spread as noise.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_REPEAT as i64))]
    pub repeat: u32,
    /// Measure what each local target gives up against a reference precision of the
    /// same model on the same engine (default f32): KL divergence, top-1 agreement and
    /// perplexity, teacher-forced over the project's evaluation text, cached by the
    /// weights' digest (`quality` in each result).
    #[arg(
        long,
        value_name = "REFERENCE",
        num_args = 0..=1,
        default_missing_value = "f32",
        value_parser = clap::builder::PossibleValuesParser::new(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"])
    )]
    pub quality: Option<String>,
}

impl RunArgs {
    /// The load overrides these flags give.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            seed: self.seed,
            requests: self.requests,
            duration_s: self.duration,
            rate_rps: self.rate,
            concurrency: self.concurrency,
            arrival: self.arrival.map(Into::into),
            burstiness: self.burstiness,
            warmup: self.warmup,
            scale: self.scale,
        }
    }
}

impl RunConfig {
    /// Validates `run`'s flags once: every number against its bound, every target
    /// spec resolved to a known kind (its settings are checked against the kind's keys
    /// when it is built, before anything is written).
    pub fn from_args(a: &RunArgs) -> Result<Self> {
        let overrides = a.overrides();
        overrides.validate()?;
        let file = match &a.targets_file {
            Some(p) => Some(TargetsFile::read(p)?),
            None => None,
        };
        let targets = a
            .targets
            .iter()
            .map(|t| TargetSpec::resolve(t, file.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            suite: a.suite.clone(),
            workloads: a.workloads.clone(),
            targets,
            overrides,
            drain_timeout: flag_seconds("--drain-timeout", a.drain_timeout)?,
            request_timeout: flag_seconds("--request-timeout", a.request_timeout)?,
            build: crate::targets::BuildOptions {
                max_connections: flag_connections(a.max_connections)?,
            },
            out: a.out.clone(),
            quiet: a.quiet,
            pricing: a.pricing.choice(),
            shard: a.shard,
            repeat: a.repeat,
            quality: a.quality.clone(),
        })
    }
}

/// Runs `infermeter run`.
pub async fn run(args: RunArgs) -> Result<()> {
    let cfg = RunConfig::from_args(&args)?;
    let plan = resolve(cfg.suite.as_deref(), &cfg.workloads, &cfg.overrides)?;
    let seed = cfg
        .overrides
        .seed
        .unwrap_or_else(|| plan.workloads.first().map_or(1, |(_, s)| *s));
    if let Some(sh) = cfg.shard {
        for (spec, _) in &plan.workloads {
            if let Some(c) = spec
                .load
                .concurrency
                .filter(|_| spec.load.arrival == ArrivalPattern::Closed)
                && c % sh.count != 0
            {
                return Err(bad_input(format!(
                    "--shard {}/{}: {}: a closed loop of {c} sessions cannot be split into {} equal shards",
                    sh.index, sh.count, spec.name, sh.count
                )));
            }
        }
    }
    let points = plan.workloads.clone();
    let mut next = move |_target: usize, done: &[ResultEntry]| Ok(points.get(done.len()).cloned());
    let x = Execution {
        config: &cfg,
        kind: RunKind::Run,
        label: &plan.label,
        seed,
        slo: None,
        conclude: None,
    };
    execute(&x, &mut next).await?;
    Ok(())
}
