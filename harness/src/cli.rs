//! The command line: the top-level arguments and one line per subcommand; each
//! subcommand's arguments and work are in [`crate::commands`].

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands::{self as c};

/// infermeter: benchmark and profile LLM inference (latency, throughput, tokens).
#[derive(Debug, Parser)]
#[command(name = "infermeter", version, about, long_about = None)]
pub struct Cli {
    /// Threads of the event loop that sends requests and reads responses; 0: one per
    /// CPU. One thread (the default) costs the least CPU per token and adds the least
    /// timing error, and holds about 5,000 short streamed requests/s on a 2-core VM;
    /// a report flags `client_bound` when its loop ran late.
    #[arg(
        long,
        global = true,
        env = "INFERMETER_CLIENT_THREADS",
        default_value_t = 1
    )]
    pub client_threads: usize,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run workloads against targets and write a report.
    Run(Box<c::run::RunArgs>),
    /// Run a workload at a series of load points (or up to saturation) and judge each
    /// against an SLO: throughput vs interactivity, Pareto front, goodput.
    Sweep(Box<c::sweep::SweepArgs>),
    /// Rebuild the report of a killed run from its directory (report.json, run.json
    /// and requests.jsonl); the result has status `interrupted`.
    Recover(c::recover::RecoverArgs),
    /// List or show workloads and suites.
    #[command(subcommand)]
    Workloads(c::workloads::WorkloadsCommand),
    /// List the model presets of the local engines.
    #[command(subcommand)]
    Models(c::models::ModelsCommand),
    /// List the target kinds and the keys of their specs.
    #[command(subcommand)]
    Targets(c::targets::TargetsCommand),
    /// Render a saved report (table, Markdown, CSV, JSON, or one self-contained HTML
    /// page with charts).
    Report(c::report::ReportArgs),
    /// Compare a candidate run with a baseline; exit 1 when a gated metric regressed.
    Compare(c::compare::CompareArgs),
    /// Merge reports of the same workloads and targets (shards, machines) exactly.
    Merge(c::merge::MergeArgs),
    /// Write a report as other tools' result files (vLLM's `bench serve` JSON, AIPerf's
    /// profile export) for the dashboards built on them.
    Export(c::export::ExportArgs),
    /// Price reports again, or export router price tables.
    #[command(subcommand)]
    Prices(c::prices::PricesCommand),
    /// Store reports in a results archive, content-addressed (sha256), with an index
    /// by date, hardware, target and workload.
    Publish(c::publish::PublishArgs),
    /// Print a metric's time series from a results archive.
    History(c::history::HistoryArgs),
    /// Measure the client itself: drive the scripted loopback server (a child
    /// process) at rising open-loop rates and report the highest rate held with
    /// schedule and event-loop lag p99 under 1 ms, CPU per request and per token, and
    /// memory per in-flight request.
    BenchClient(Box<c::bench_client::BenchClientArgs>),
    /// Serve the scripted loopback server until standard input closes (used by
    /// bench-client and by tools that measure a client against a known schedule).
    #[command(hide = true)]
    ServeScripted(c::serve_scripted::ServeScriptedArgs),
    /// Print this machine's hardware fingerprint (CPU, memory, OS, virtualisation,
    /// GPUs through NVML) as JSON: the `hardware` section of every report.
    Hw,
    /// Measure a device's limits with the engine's own kernels (copy, read and triad
    /// bandwidth; matmul throughput per precision) and print, per model x precision x
    /// batch x context, the bytes a decode step reads per token and the decode and
    /// prefill ceilings.
    Roofline(c::roofline::RooflineArgs),
    /// Project measured runs onto hardware you do not own: per catalog device and
    /// traffic level (1x, 10x, 100x), the fit, the operating point under an SLO, the
    /// fleet, $/M tokens, $/task and tokens/J, with price scenarios and a sensitivity
    /// table; every projected figure names its calibration and back-tested error.
    Plan(Box<c::plan::PlanArgs>),
    /// Back-test the planner: calibrate on some measured local load points, predict
    /// the others, and print the error of every prediction.
    Backtest(c::backtest::BacktestArgs),
    /// Check a report, plan or back-test (JSON) against its schema, or a workload,
    /// targets, price catalog or hardware catalog file (TOML).
    Validate(c::validate::ValidateArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => c::run::run(*a).await,
        Command::Sweep(a) => c::sweep::run(*a).await,
        Command::Recover(a) => c::recover::run(&a),
        Command::Workloads(a) => c::workloads::run(&a),
        Command::Models(a) => c::models::run(&a),
        Command::Targets(a) => c::targets::run(&a),
        Command::Report(a) => c::report::run(&a),
        Command::Compare(a) => c::compare::run(&a),
        Command::Merge(a) => c::merge::run(&a),
        Command::Export(a) => c::export::run(&a),
        Command::Prices(a) => c::prices::run(&a),
        Command::Publish(a) => c::publish::run(&a),
        Command::History(a) => c::history::run(&a),
        Command::BenchClient(a) => c::bench_client::run(*a).await,
        Command::ServeScripted(a) => c::serve_scripted::run(&a),
        Command::Hw => c::hw::run(),
        Command::Roofline(a) => c::roofline::run(&a),
        Command::Plan(a) => c::plan::run(&a),
        Command::Backtest(a) => c::backtest::run(&a),
        Command::Validate(a) => c::validate::run(&a),
    }
}
