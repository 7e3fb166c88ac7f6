//! The command line: argument definitions (clap) and the commands behind them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use results::render::{self, Format};
use results::{
    ArrivalPattern, LoadInfo, REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Report, ResultEntry, RunInfo,
    RunStatus, TokenSource, ToolInfo, WorkloadRef,
};
use tokio::sync::{mpsc, watch};
use workloads::generate::generate;
use workloads::spec::WorkloadSpec;
use workloads::{Backend, suite};

use crate::collector::Aggregate;
use crate::driver::{Interrupt, LoadPoint, Measurement, Outcome, run_load_point};
use crate::error::bad_input;
use crate::output::{JsonLines, write_report};
use crate::plan::{Overrides, resolve};
use crate::progress::Progress;
use crate::target::{DEFAULT_TARGET, TargetSpec, TargetsFile};

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
    Run(Box<RunArgs>),
    /// List or show workloads and suites.
    #[command(subcommand)]
    Workloads(WorkloadsCommand),
    /// List the model presets of the local engines.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Render a saved report (table, Markdown, CSV, JSON, or one self-contained HTML
    /// page with charts).
    Report {
        /// Path to a report.json.
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = FormatArg::Table)]
        format: FormatArg,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a workload at a series of load points (or up to saturation) and judge each
    /// against an SLO: throughput vs interactivity, Pareto front, goodput.
    Sweep(Box<crate::sweep::SweepArgs>),
    /// Compare a candidate run with a baseline; exit 1 when a gated metric regressed.
    Compare {
        /// Baseline: a report.json, or a directory of repeated runs' reports.
        base: PathBuf,
        /// Candidate: a report.json, or a directory of repeated runs' reports.
        cand: PathBuf,
        /// Regression threshold: PCT for every gated metric, or METRIC=PCT
        /// (repeatable; percentage points for error_rate_pct).
        #[arg(long)]
        threshold: Vec<String>,
        /// Metrics to gate, comma-separated (default: ttft_p99_ms, tpot_p99_ms,
        /// e2e_p50_ms, output_tokens_per_s, tokens_per_j_output,
        /// usd_per_m_blended_workload, error_rate_pct).
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
        format: CompareFormat,
    },
    /// Merge reports of the same workloads and targets (shards, machines) exactly.
    Merge {
        /// The reports.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long)]
        out: PathBuf,
    },
    /// Price reports again, or export router price tables.
    #[command(subcommand)]
    Prices(PricesCommand),
    /// Store reports in a results archive, content-addressed (sha256), with an index
    /// by date, hardware, target and workload.
    Publish {
        /// The reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// The archive directory.
        #[arg(long)]
        archive: PathBuf,
    },
    /// Print a metric's time series from a results archive.
    History {
        /// The archive directory.
        #[arg(long)]
        archive: PathBuf,
        /// The metric (a `compare` metric: ttft_p99_ms, output_tokens_per_s, ...).
        #[arg(long)]
        metric: String,
        /// Only results whose `target / workload / load` contains this text.
        #[arg(long, default_value = "")]
        filter: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CompareFormat::Table)]
        format: CompareFormat,
    },
    /// Rebuild the report of a killed run from its directory (report.json and
    /// requests.jsonl); the result has status `interrupted`.
    Recover {
        /// The run's output directory.
        dir: PathBuf,
    },
    /// Measure the client itself: drive the scripted loopback server (a child
    /// process) at rising open-loop rates and report the highest rate held with
    /// schedule and event-loop lag p99 under 1 ms, CPU per request and per token, and
    /// memory per in-flight request.
    BenchClient(Box<crate::bench_client::BenchClientArgs>),
    /// Serve the scripted loopback server until standard input closes (used by
    /// bench-client and by tools that measure a client against a known schedule).
    #[command(hide = true)]
    ServeScripted(crate::bench_client::ServeScriptedArgs),
    /// Print this machine's hardware fingerprint (CPU, memory, OS, virtualisation,
    /// GPUs through NVML) as JSON: the `hardware` section of every report.
    Hw,
    /// Check a report (JSON) against its schema, or a workload, targets or price
    /// catalog file (TOML).
    Validate {
        /// The file.
        file: PathBuf,
    },
}

/// `compare` output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// Terminal table.
    Table,
    /// Markdown table.
    Md,
    /// JSON.
    Json,
}

/// Router price table formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// LiteLLM's model_prices_and_context_window.json entries.
    Litellm,
    /// infermeter's routing table (prices, latency, interactivity, energy).
    Routing,
}

/// `prices` subcommands.
#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Price a report again with a catalog, tier and region, without running anything.
    Apply {
        /// The report.
        report: PathBuf,
        /// Catalog, tier and region.
        #[command(flatten)]
        pricing: PricingArgs,
        /// Write the re-priced report here (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export router price tables from reports.
    Export {
        /// The reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Table format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every preset: shape, parameters total and active, bytes per weight format, KV
    /// bytes per token.
    List,
}

/// `workloads` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkloadsCommand {
    /// List the embedded workloads and suites.
    List,
    /// Print a workload's fully resolved spec and the digest of its request stream.
    Show {
        /// Workload name (`agent-loop`, `quick/agent-loop`) or path to a TOML file.
        name: String,
        /// Seed of the request stream (default: the spec's).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print the measured requests of a workload's stream as JSON lines (warm-up
    /// excluded), so that another tool can send exactly the same prompts: `session`,
    /// `call`, `messages` (role, content), `prompt` (the messages joined as the
    /// completions API receives them), `prompt_tokens_count`, `output_tokens_count`,
    /// `think_ms`.
    Export {
        /// Workload name or path to a TOML file.
        name: String,
        /// Seed of the request stream (default: the spec's).
        #[arg(long)]
        seed: Option<u64>,
        /// Measured requests (default: the spec's).
        #[arg(long)]
        requests: Option<u64>,
    },
}

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Terminal table.
    Table,
    /// Markdown table.
    Md,
    /// CSV.
    Csv,
    /// The report JSON.
    Json,
    /// One self-contained HTML page with charts.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Md => Format::Markdown,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
        }
    }
}

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
    /// Measured requests per workload.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Stop sending after this many seconds per workload.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Session arrival rate, sessions per second (open loop).
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Sessions in flight (closed loop).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Arrival process.
    #[arg(long, value_enum)]
    pub arrival: Option<ArrivalArg>,
    /// Coefficient of variation of gamma inter-arrival times (1 = Poisson).
    #[arg(long)]
    pub burstiness: Option<f64>,
    /// Warm-up requests per workload (excluded from every figure).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Multiply every workload's request count.
    #[arg(long, allow_negative_numbers = true)]
    pub scale: Option<f64>,
    /// Seconds in-flight requests may run after sending stops.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Seconds one request may take before it counts as a timeout.
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
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
}

/// Parses `--shard I/N`.
pub fn parse_shard(text: &str) -> std::result::Result<results::ShardRef, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: expected I/N, e.g. 2/4"))?;
    let parse = |x: &str| x.trim().parse::<u32>().ok();
    match (parse(i), parse(n)) {
        (Some(index), Some(count)) if count >= 1 && (1..=count).contains(&index) => {
            Ok(results::ShardRef { index, count })
        }
        _ => Err(format!("`{text}`: expected I/N with 1 <= I <= N, e.g. 2/4")),
    }
}

/// Which catalog, tier and region price a run or a report.
#[derive(Debug, Args, Clone, Default)]
pub struct PricingArgs {
    /// Price catalog (TOML; default: the catalog shipped in results/catalog/default.toml).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Hardware price tier (`on-demand`, `spot`, `reserved-1y`, `reserved-3y`;
    /// default: the catalog's).
    #[arg(long)]
    pub tier: Option<String>,
    /// Region (default: the catalog's).
    #[arg(long)]
    pub region: Option<String>,
}

impl PricingArgs {
    /// Reads the catalog (the shipped one when none is named).
    pub fn catalog(&self) -> Result<results::catalog::Catalog> {
        match &self.catalog {
            None => Ok(results::catalog::Catalog::default_catalog()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| bad_input(format!("--catalog {}: {e}", p.display())))?;
                results::catalog::Catalog::parse(&text, &p.display().to_string())
                    .map_err(|e| bad_input(e.0))
            }
        }
    }

    /// The pricing these flags ask for, checked against `catalog`.
    pub fn pricing<'a>(
        &'a self,
        catalog: &'a results::catalog::Catalog,
        catalog_rate_cards_first: bool,
    ) -> Result<results::cost::Pricing<'a>> {
        let p = results::cost::Pricing {
            catalog,
            tier: self.tier.as_deref().unwrap_or(&catalog.default_tier),
            region: self.region.as_deref().unwrap_or(&catalog.default_region),
            catalog_rate_cards_first,
        };
        p.check().map_err(|e| bad_input(e.0))?;
        Ok(p)
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_command(*args).await,
        Command::Workloads(WorkloadsCommand::List) => {
            for l in suite::list()? {
                println!("{:<9} {:<22} {}", l.kind, l.name, l.description);
            }
            Ok(())
        }
        Command::Workloads(WorkloadsCommand::Show { name, seed }) => {
            print!("{}", show_workload(&name, seed)?);
            Ok(())
        }
        Command::Workloads(WorkloadsCommand::Export {
            name,
            seed,
            requests,
        }) => {
            print!("{}", export_workload(&name, seed, requests)?);
            Ok(())
        }
        Command::Models(ModelsCommand::List) => {
            print!("{}", crate::models::list());
            Ok(())
        }
        Command::Report { path, format, out } => {
            let report = read_report(&path)?;
            let text = render::render(&report, format.into());
            match out {
                None => print!("{text}"),
                Some(o) => std::fs::write(&o, text)
                    .map_err(|e| bad_input(format!("--out {}: {e}", o.display())))?,
            }
            Ok(())
        }
        Command::Sweep(args) => crate::sweep::sweep_command(*args).await,
        Command::BenchClient(args) => {
            tokio::task::spawn_blocking(move || crate::bench_client::bench_client_command(&args))
                .await
                .context("bench-client stopped")?
        }
        Command::ServeScripted(args) => crate::bench_client::serve_scripted_command(&args),
        Command::Compare {
            base,
            cand,
            threshold,
            metrics,
            format,
        } => {
            let gate = crate::analysis::gate(&metrics, &threshold)?;
            let format = match format {
                CompareFormat::Table => "table",
                CompareFormat::Md => "md",
                CompareFormat::Json => "json",
            };
            crate::analysis::compare_command(&base, &cand, &gate, format)
        }
        Command::Merge { reports, out } => crate::analysis::merge_command(&reports, &out),
        Command::Publish { reports, archive } => {
            crate::analysis::publish_command(&reports, &archive)
        }
        Command::History {
            archive,
            metric,
            filter,
            format,
        } => crate::analysis::history_command(&archive, &metric, &filter, format),
        Command::Recover { dir } => {
            let r = crate::recover::recover(&dir).await?;
            println!(
                "recovered {}: {} finished load points kept, {} rebuilt from {} request lines{}",
                dir.join("report.json").display(),
                r.finished_points,
                r.rebuilt_points,
                r.lines,
                if r.torn_last_line {
                    "; a last line cut by the kill was ignored"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Prices(PricesCommand::Apply {
            report,
            pricing,
            out,
        }) => crate::analysis::apply_command(&report, &pricing, out.as_deref()),
        Command::Prices(PricesCommand::Export {
            reports,
            format,
            out,
        }) => {
            let f = match format {
                ExportFormat::Litellm => "litellm",
                ExportFormat::Routing => "routing",
            };
            crate::analysis::export_command(&reports, f, &out)
        }
        Command::Hw => {
            let hw = crate::hardware::fingerprint();
            println!(
                "{}",
                serde_json::to_string_pretty(&hw).context("writing the fingerprint")?
            );
            Ok(())
        }
        Command::Validate { file } => {
            println!("{}", validate(&file)?);
            Ok(())
        }
    }
}

/// The measured requests of a workload's stream as JSON lines (`workloads export`).
pub fn export_workload(name: &str, seed: Option<u64>, requests: Option<u64>) -> Result<String> {
    let mut spec = suite::workload(name)?;
    if let Some(n) = requests {
        if n == 0 {
            return Err(bad_input("--requests must be at least 1"));
        }
        spec.load.requests = n;
    }
    let seed = seed.unwrap_or(spec.seed);
    let stream = generate(&spec, seed);
    let mut out = String::new();
    for r in stream.sessions.iter().flat_map(|s| &s.calls) {
        let line = serde_json::json!({
            "session": r.session,
            "call": r.call,
            "messages": providers::codec::chat_messages(r),
            "prompt": providers::codec::prompt_text(r),
            "prompt_tokens_count": r.input_tokens(),
            "output_tokens_count": r.max_output_tokens,
            "think_ms": r.think_ms,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// `workloads show`: the resolved spec as TOML, then facts about the stream and its
/// digest.
pub fn show_workload(name: &str, seed: Option<u64>) -> Result<String> {
    let spec = suite::workload(name)?;
    let seed = seed.unwrap_or(spec.seed);
    let stream = generate(&spec, seed);
    let inputs: Vec<u64> = stream
        .sessions
        .iter()
        .flat_map(|s| &s.calls)
        .map(|r| u64::from(r.input_tokens()))
        .collect();
    let outputs: u64 = stream
        .sessions
        .iter()
        .flat_map(|s| &s.calls)
        .map(|r| u64::from(r.max_output_tokens))
        .sum();
    let mut out = format!("# {} (resolved)\n{}\n", spec.name, spec.to_toml());
    out.push_str(&format!(
        "# request stream\nseed = {seed}\nsessions = {}\nrequests = {}\n",
        stream.sessions.len(),
        inputs.len()
    ));
    out.push_str(&format!("warmup_requests = {}\n", stream.warmup.len()));
    if let (Some(min), Some(max)) = (inputs.iter().min(), inputs.iter().max()) {
        let mean = inputs.iter().sum::<u64>() as f64 / inputs.len() as f64;
        out.push_str(&format!(
            "input_tokens = {{ min = {min}, mean = {mean:.1}, max = {max}, total = {} }}\n",
            inputs.iter().sum::<u64>()
        ));
    }
    out.push_str(&format!("output_tokens_total = {outputs}\n"));
    out.push_str(&format!(
        "spec_sha256 = \"{}\"\nstream_sha256 = \"{}\"\n",
        spec.sha256(),
        stream.digest()
    ));
    Ok(out)
}

/// Reads a report and checks it against the schema; every problem is bad input.
pub fn read_report(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad_input(format!("{}: not JSON: {e}", path.display())))?;
    results::schema::validate_report_json(&doc)
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    serde_json::from_value(doc).map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

/// `validate`: a report (`.json`) against the committed schema, or a workload or targets file.
pub fn validate(file: &Path) -> Result<String> {
    let is_json = file.extension().is_some_and(|e| e == "json");
    if is_json {
        let r = read_report(file)?;
        if r.schema != REPORT_SCHEMA {
            return Err(bad_input(format!(
                "{}: schema is `{}`, not {REPORT_SCHEMA}",
                file.display(),
                r.schema
            )));
        }
        Ok(format!(
            "ok: {} is a valid {REPORT_SCHEMA} {} with {} results",
            file.display(),
            r.schema_version,
            r.results.len()
        ))
    } else {
        let text = std::fs::read_to_string(file)
            .map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
        // A targets file has [targets.NAME] tables, a catalog [[hardware_price]] or
        // [[rate_card]] arrays; anything else is a workload spec.
        let table = toml::from_str::<toml::Table>(&text).ok();
        let is_targets = table
            .as_ref()
            .is_some_and(|t| t.contains_key("targets") && !t.contains_key("format"));
        if is_targets {
            return validate_targets(&text, file);
        }
        let is_catalog = table.as_ref().is_some_and(|t| {
            ["hardware_price", "rate_card", "part", "region"]
                .iter()
                .any(|k| t.contains_key(*k))
        });
        if is_catalog {
            let c = results::catalog::Catalog::parse(&text, &file.display().to_string())
                .map_err(|e| bad_input(e.0))?;
            return Ok(format!(
                "ok: {} is a valid price catalog {} with {} hardware prices, {} rate cards, regions: {}",
                file.display(),
                c.label(),
                c.hardware_price.len(),
                c.rate_card.len(),
                c.region
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let spec = WorkloadSpec::from_toml(&text, &file.display().to_string())?;
        Ok(format!(
            "ok: {} is a valid workload spec (format {}) named {}",
            file.display(),
            spec.format,
            spec.name
        ))
    }
}

/// Checks every target of a targets file as it would be built, except that API keys
/// are not read (validation must work where the keys are not set).
fn validate_targets(text: &str, file: &Path) -> Result<String> {
    let f = TargetsFile::parse(text, &file.display().to_string())?;
    for (name, t) in &f.targets {
        let kind = match t.kind.as_str() {
            "openai" => Some(providers::Kind::OpenAi),
            "anthropic" => Some(providers::Kind::Anthropic),
            _ => None,
        };
        if let Some(kind) = kind {
            providers::HttpTargetConfig::from_settings(kind, &t.settings)
                .map_err(|e| bad_input(format!("{}: [targets.{name}]: {e}", file.display())))?;
        }
    }
    Ok(format!(
        "ok: {} is a valid targets file with {} targets: {}",
        file.display(),
        f.targets.len(),
        f.targets.keys().cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// The load overrides a `run` command line gives.
pub fn overrides(a: &RunArgs) -> Overrides {
    Overrides {
        seed: a.seed,
        requests: a.requests,
        duration_s: a.duration,
        rate_rps: a.rate,
        concurrency: a.concurrency,
        arrival: a.arrival.map(Into::into),
        burstiness: a.burstiness,
        warmup: a.warmup,
        scale: a.scale,
    }
}

fn positive_secs(name: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad_input(format!(
            "--{name} must be a positive number of seconds, got {v}"
        )))
    }
}

async fn run_command(args: RunArgs) -> Result<()> {
    let plan = resolve(args.suite.as_deref(), &args.workloads, &overrides(&args))?;
    let seed = args
        .seed
        .unwrap_or_else(|| plan.workloads.first().map_or(1, |(_, s)| *s));
    if let Some(sh) = args.shard {
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
    let mut next = move |_target: usize, done: &[ResultEntry]| points.get(done.len()).cloned();
    execute(&args, &plan.label, seed, None, &mut next).await?;
    Ok(())
}

/// Chooses the next load point of a target from the results it has so far; `None`
/// ends the target's run.
pub type NextPoint<'a> = dyn FnMut(usize, &[ResultEntry]) -> Option<(WorkloadSpec, u64)> + 'a;

/// Builds and prepares the targets of `args`, then runs the load points `next` gives
/// each, writing the report after every load point; prints the table and returns the
/// report.
pub(crate) async fn execute(
    args: &RunArgs,
    label: &str,
    seed: u64,
    slo: Option<&crate::slo::Slo>,
    next: &mut NextPoint<'_>,
) -> Result<Report> {
    let catalog = args.pricing.catalog()?;
    let pricing = args.pricing.pricing(&catalog, false)?;
    let drain_timeout = positive_secs("drain-timeout", args.drain_timeout)?;
    let request_timeout = positive_secs("request-timeout", args.request_timeout)?;
    if args.max_connections == Some(0) {
        return Err(bad_input("--max-connections must be at least 1"));
    }
    let file = match &args.targets_file {
        Some(p) => Some(TargetsFile::read(p)?),
        None => None,
    };
    let specs = args
        .targets
        .iter()
        .map(|t| TargetSpec::resolve(t, file.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let targets = specs
        .iter()
        .map(|s| s.build(args.max_connections))
        .collect::<Result<Vec<_>>>()?;
    // Load every model before any file is written: a bad model file leaves nothing
    // behind, and loading is never timed.
    for target in &targets {
        prepare(target.as_ref(), args.quiet).await?;
    }

    let started = chrono::Utc::now();
    let run_id = format!("{}-{}", started.format("%Y%m%dT%H%M%SZ"), label);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/runs").join(&run_id));
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| bad_input(format!("--out {}: {e}", out_dir.display())))?;
    crate::output::check_free_space(&out_dir)?;
    let report_path = out_dir.join("report.json");
    let mut jsonl = JsonLines::create(&out_dir.join("requests.jsonl"))?;

    let (irq_tx, irq_rx) = watch::channel(Interrupt::None);
    tokio::spawn(async move {
        // SIGTERM (a pre-empted runner, `kill`, Kubernetes) is Ctrl-C: stop sending,
        // drain, write the report as `interrupted`; a second signal cancels.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupted = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => true,
            }
        };
        if interrupted().await {
            eprintln!(
                "interrupt: no new requests; draining (Ctrl-C or SIGTERM again to cancel in-flight requests)"
            );
            let _ = irq_tx.send(Interrupt::Stop);
            if interrupted().await {
                let _ = irq_tx.send(Interrupt::Cancel);
            }
        }
    });

    let mut report = Report {
        schema: REPORT_SCHEMA.into(),
        schema_version: REPORT_SCHEMA_VERSION.into(),
        tool: ToolInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            git_sha: option_env!("INFERMETER_GIT_SHA").map(Into::into),
        },
        run: RunInfo {
            id: run_id,
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            status: RunStatus::Interrupted,
            command: std::env::args().collect(),
            seed,
        },
        hardware: crate::hardware::fingerprint(),
        results: Vec::new(),
        repeat_spread: Vec::new(),
    };
    // On disk from the start, as `interrupted` until the run ends: a killed run leaves
    // what `infermeter recover` needs.
    write_report(&report_path, &report)?;
    let mut status = RunStatus::Complete;
    'targets: for (i, target) in targets.iter().enumerate() {
        let idle = idle_power(&target.describe().kind).await;
        // `next` plans from the first repeat of each point.
        let mut done: Vec<ResultEntry> = Vec::new();
        let mut again: Option<(WorkloadSpec, u64, u32)> = None;
        loop {
            let (spec, seed, index) = match again.take() {
                Some(point) => point,
                None => match next(i, &done) {
                    Some((spec, seed)) => (spec, seed, 1),
                    None => break,
                },
            };
            if *irq_rx.borrow() != Interrupt::None {
                break 'targets;
            }
            let mut entry = run_workload(
                target,
                &spec,
                seed,
                args,
                drain_timeout,
                request_timeout,
                &mut jsonl,
                irq_rx.clone(),
                idle,
                slo,
            )
            .await?;
            entry.cost = Some(results::cost::price(
                &entry,
                &report.hardware,
                Some(&pricing),
            ));
            if args.repeat > 1 {
                entry.repeat = Some(results::stats::RepeatRef {
                    index,
                    count: args.repeat,
                });
                if index > 1 && target.engine_counters().is_some() {
                    entry.notes.push(format!(
                        "repeat {index} of {}: the engine kept its state (prefix cache) from the repeats before",
                        args.repeat
                    ));
                }
            }
            if index == 1 {
                done.push(entry.clone());
            }
            if index < args.repeat {
                again = Some((spec, seed, index + 1));
            }
            report.results.push(entry);
            report.repeat_spread = results::stats::repeat_spread(&report.results);
            // Every finished load point is on disk at once: a killed run loses nothing.
            report.run.finished_at =
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            write_report(&report_path, &report)?;
        }
    }
    if *irq_rx.borrow() != Interrupt::None {
        status = RunStatus::Interrupted;
    }
    finish(&mut report, status, &report_path)?;
    print!("{}", render::render(&report, Format::Table));
    let html_path = out_dir.join("report.html");
    std::fs::write(&html_path, render::render(&report, Format::Html))
        .with_context(|| format!("writing {}", html_path.display()))?;
    println!("html: {}", html_path.display());
    println!("report: {}", report_path.display());
    Ok(report)
}

/// How often energy probes are read during a load point.
const ENERGY_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Mean power over 1 s with no load, from the probes that measure targets of `kind`;
/// `None` when there are none.
async fn idle_power(kind: &str) -> Option<f64> {
    let probes = crate::energy::probes_for(kind).ok()?;
    let sampler = crate::energy::Sampler::start(probes, ENERGY_SAMPLE_INTERVAL);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recorded = tokio::task::spawn_blocking(move || sampler.stop())
        .await
        .ok()?;
    crate::energy::mean_power_w(&recorded)
}

fn finish(report: &mut Report, status: RunStatus, path: &Path) -> Result<()> {
    report.run.status = status;
    report.run.finished_at =
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    write_report(path, report)
}

async fn prepare(target: &dyn Backend, quiet: bool) -> Result<()> {
    let t = std::time::Instant::now();
    let kind = target.describe().kind;
    target
        .prepare()
        .await
        .with_context(|| format!("preparing target {kind}"))?;
    if !quiet {
        let info = target.describe();
        let weights = info.weights.as_ref().map_or(String::new(), |w| {
            let src = match w.source {
                results::WeightsSource::Gguf => {
                    format!("GGUF {}", w.path.as_deref().unwrap_or("?"))
                }
                results::WeightsSource::Synthetic => {
                    format!("synthetic weights (seed {})", w.seed.unwrap_or(0))
                }
            };
            format!(", {src}, sha256 {}", &w.sha256[..12.min(w.sha256.len())])
        });
        eprintln!(
            "target {} {} {} ready in {:.1} s{weights}",
            info.kind,
            info.model,
            info.precision,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_workload(
    target: &Arc<dyn Backend>,
    spec: &WorkloadSpec,
    seed: u64,
    args: &RunArgs,
    drain_timeout: Duration,
    request_timeout: Duration,
    jsonl: &mut JsonLines,
    irq: watch::Receiver<Interrupt>,
    idle_power_w: Option<f64>,
    slo: Option<&crate::slo::Slo>,
) -> Result<ResultEntry> {
    let info = target.describe();
    let whole = generate(spec, seed);
    let stream_sha256 = whole.digest();
    let stream = match args.shard {
        None => whole,
        Some(s) => whole.shard(s.index - 1, s.count).map_err(|e| {
            bad_input(format!(
                "--shard {}/{}: {}: {e}",
                s.index, s.count, spec.name
            ))
        })?,
    };
    let total = stream.request_count() as u64;
    let target_label = info.label();
    let local = info.kind.starts_with("local");
    let lp = LoadPoint {
        workload: spec.name.clone(),
        target_label,
        stream,
        max_duration: spec.load.duration_s.map(Duration::from_secs_f64),
        drain_timeout,
        request_timeout,
        context_limit: info.context_limit_tokens,
        fallback_source: if local {
            TokenSource::Engine
        } else {
            TokenSource::Tokenizer
        },
        launcher: crate::driver::Launcher::Thread,
    };
    // Energy: the probes that measure this target, sampled through the load point.
    let probes = crate::energy::probes_for(&info.kind);
    let (sampler, energy_reason) = match probes {
        Ok(p) => (
            Some(crate::energy::Sampler::start(p, ENERGY_SAMPLE_INTERVAL)),
            None,
        ),
        Err(reason) => (None, Some(reason)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = crate::client::ClientProbe::start();
    let driver = tokio::spawn(run_load_point(Arc::clone(target), lp, tx, irq));
    let mut agg = Aggregate::default();
    agg.slo = slo.cloned();
    let mut cold = Aggregate::default();
    let mut progress = Progress::new(&spec.name, total, args.quiet);
    while let Some(m) = rx.recv().await {
        match m {
            Measurement::Request(r) => {
                jsonl.append(&*r)?;
                progress.request_done(r.ok());
                agg.add(&r);
            }
            Measurement::Task(t) => agg.add_task(&t),
            Measurement::ColdStart(r) => {
                jsonl.append(&*r)?;
                cold.add(&r);
            }
        }
    }
    progress.finish();
    let outcome = driver.await.context("the load driver panicked")?;
    let recorded = match sampler {
        Some(s) => tokio::task::spawn_blocking(move || s.stop())
            .await
            .context("the energy sampler panicked")?,
        None => Vec::new(),
    };
    let mut e = entry(spec, seed, stream_sha256, info, &agg, &outcome);
    let client = probe.finish(
        e.requests.sent,
        e.tokens.output,
        e.latency.queue_ms.p99,
        e.load.measured_s,
        local,
    );
    if client.client_bound {
        let hint = match client.event_loop_threads {
            Some(1) if !local => " (one event-loop thread: --client-threads N gives it more)",
            _ => "",
        };
        e.notes.push(format!(
            "WARNING client-bound: {}; latencies may include the client's own delays{hint}",
            client.reasons.join("; ")
        ));
    }
    e.client = Some(client);
    // Energy over the steady state when there is one, else the measured window; the
    // work it is divided by is the share of the load point's work done in it, taken
    // as proportional to time.
    let window = outcome
        .steady
        .map(|w| (w, "steady-state"))
        .or(outcome.window.map(|w| (w, "measured")));
    e.energy = Some(match (energy_reason, window) {
        (Some(reason), _) => results::EnergyStats::unavailable(&reason),
        (None, None) => results::EnergyStats::unavailable("the load point measured nothing"),
        (None, Some((w, kind))) => {
            let share = match outcome.window {
                Some(m) if kind == "steady-state" => {
                    let whole = m.1.saturating_duration_since(m.0).as_secs_f64();
                    let part = w.1.saturating_duration_since(w.0).as_secs_f64();
                    if whole > 0.0 { part / whole } else { 1.0 }
                }
                _ => 1.0,
            };
            let scaled = |n: u64| (n as f64 * share).round() as u64;
            let mut stats = crate::energy::stats(
                &recorded,
                w,
                idle_power_w,
                crate::energy::Work {
                    output_tokens: scaled(e.tokens.output),
                    total_tokens: scaled(e.tokens.input + e.tokens.output),
                    requests_ok: scaled(e.requests.ok),
                },
            );
            stats.window_kind = stats.energy_j.map(|_| kind.to_string());
            if kind == "measured" && stats.energy_j.is_some() {
                stats.flags.push(
                    "no steady state (load too short or too uneven): the whole measured window, ramp-up and drain included".into(),
                );
            }
            stats
        }
    });
    e.cold_start = spec
        .load
        .cold_start
        .as_ref()
        .and_then(|c| cold.cold_start(c.idle_s));
    e.slo = slo.map(|s| s.judge(&e, agg.slo_met));
    e.workload.shard = args.shard;
    if let Some(s) = args.shard {
        e.notes.push(format!(
            "shard {} of {}: this report holds part of the stream; merge all {} shards for the whole run",
            s.index, s.count, s.count
        ));
    }
    Ok(e)
}

/// A monotonic instant as RFC 3339 UTC wall time with microseconds.
fn wall_clock(at: std::time::Instant) -> String {
    let now = std::time::Instant::now();
    let wall = chrono::Utc::now();
    let t = if at <= now {
        wall - chrono::Duration::from_std(now - at).unwrap_or_default()
    } else {
        wall + chrono::Duration::from_std(at - now).unwrap_or_default()
    };
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The result entry of one load point from its aggregate and outcome (cost, energy and
/// SLO are added by the caller).
pub fn entry(
    spec: &WorkloadSpec,
    seed: u64,
    stream_sha256: String,
    target: results::TargetInfo,
    agg: &Aggregate,
    o: &Outcome,
) -> ResultEntry {
    let l = &spec.load;
    let mut notes = Vec::new();
    let local = target.kind.starts_with("local");
    let mut tokens = agg.tokens(if local {
        TokenSource::Engine
    } else {
        TokenSource::Tokenizer
    });
    if !local {
        let tokenizer = match target.settings.get("tokenizer").map(String::as_str) {
            None | Some("embedded") => workloads::text::TOKENIZER_NAME,
            Some(other) => other,
        };
        tokens.provenance = agg.provenance(tokenizer);
    }
    let requests = agg.requests();
    if requests.retries > 0 {
        notes.push(format!(
            "{} attempts were retried (HTTP 429/502/503/504); retry waits are inside TTFT and E2E",
            requests.retries
        ));
    }
    if requests.stopped_early > 0 {
        notes.push(format!(
            "{} requests stopped before their requested output length (end of sequence); set exact_output=true where the server accepts ignore_eos",
            requests.stopped_early
        ));
    }
    if requests.protocol_warnings > 0 {
        notes.push(format!(
            "{} protocol warnings (see `warnings` in requests.jsonl)",
            requests.protocol_warnings
        ));
    }
    if target.settings.get("stream").is_some_and(|v| v == "false") {
        notes.push(
            "responses were not streamed: TTFT is the whole response's arrival (equal to E2E) and ITL is not measured"
                .into(),
        );
    }
    if tokens.input_capped_requests > 0 {
        notes.push(format!(
            "{} requests had their input capped to fit the target's context of {} tokens",
            tokens.input_capped_requests,
            target.context_limit_tokens.unwrap_or(0)
        ));
    }
    if o.duration_hit {
        notes.push(format!(
            "duration bound of {} s reached: {} sessions not started",
            l.duration_s.unwrap_or(0.0),
            o.sessions_not_started
        ));
    } else if o.sessions_not_started > 0 {
        notes.push(format!(
            "interrupted: {} sessions not started",
            o.sessions_not_started
        ));
    }
    if o.drain_cancelled {
        notes.push("drain deadline reached: in-flight requests were cancelled".into());
    }
    if o.warmup_failed > 0 {
        notes.push(format!(
            "{} of {} warm-up requests failed",
            o.warmup_failed, l.warmup_requests
        ));
    }
    ResultEntry {
        repeat: None,
        workload: WorkloadRef {
            name: spec.name.clone(),
            version: spec.version,
            spec_sha256: spec.sha256(),
            stream_sha256,
            seed,
            shard: None,
        },
        target,
        load: LoadInfo {
            pattern: l.arrival,
            rate_rps: l.rate_rps,
            concurrency: l.concurrency,
            burstiness: l.burstiness,
            warmup_requests: l.warmup_requests,
            max_requests: Some(l.requests),
            max_duration_s: l.duration_s,
            measured_s: (o.measured_s * 1000.0).round() / 1000.0,
            window_start: o.window.map(|w| wall_clock(w.0)),
            window_end: o.window.map(|w| wall_clock(w.1)),
        },
        requests,
        tokens,
        latency: agg.latency(),
        throughput: {
            let mut t = agg.throughput(o.measured_s);
            t.steady_state = match (o.window, o.steady) {
                (Some((t0, _)), Some((a, b))) => results::stats::SteadyState::of(
                    agg.completions(),
                    a.saturating_duration_since(t0).as_secs_f64(),
                    b.saturating_duration_since(t0).as_secs_f64(),
                ),
                _ => None,
            };
            t
        },
        tasks: spec.reports_tasks().then(|| agg.tasks()),
        engine: agg.engine(o.engine_counters.0, o.engine_counters.1),
        cold_start: None,
        energy: None,
        cost: None,
        client: None,
        slo: None,
        notes,
    }
}
