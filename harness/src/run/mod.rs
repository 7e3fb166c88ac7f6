//! The run pipeline, one linear path for `run` and `sweep`: build and prepare every
//! target (models load before any file is written), write the report skeleton and
//! `run.json`, then for each target run the load points a planner chooses, each
//! priced and written to the report as soon as it finishes; then the table and the
//! HTML page.
//!
//! - [`builder`]: one load point's result from its records (live and in `recover`).
//! - [`point`]: runs one load point (driver, energy, the client's self-measurement).
//! - [`manifest`]: what `run.json` holds.
//! - [`recover`]: rebuilds a killed run's report from its files.
//! - [`scrape`]: a remote server's Prometheus metrics through each load point.
//! - [`signals`]: Ctrl-C and SIGTERM.

pub mod builder;
pub mod manifest;
pub mod point;
pub mod recover;
pub mod scrape;
pub mod signals;

use std::path::PathBuf;

use anyhow::{Context, Result};
use results::render::{self, Format};
use results::stats::RepeatRef;
use results::{
    REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Report, ResultEntry, RunInfo, RunStatus, ToolInfo,
};
use workloads::Backend;
use workloads::spec::WorkloadSpec;

use crate::config::RunConfig;
use crate::driver::Interrupt;
use crate::error::bad_input;
use crate::files::{JsonLines, check_free_space, write_report};
use crate::slo::Slo;
use builder::PointPlan;
use manifest::{RunKind, RunManifest};
use point::{PointRun, idle_power, run_point};

/// Chooses the next load point of a target (by index) from the first repeats of the
/// points it ran so far: a workload and its seed, or `None` to end the target's run.
pub type NextPoint<'a> =
    dyn FnMut(usize, &[ResultEntry]) -> Result<Option<(WorkloadSpec, u64)>> + 'a;

/// One run.
pub struct Execution<'a> {
    /// Its configuration.
    pub config: &'a RunConfig,
    /// What started it.
    pub kind: RunKind,
    /// The suite or workloads, for the run's id.
    pub label: &'a str,
    /// The seed reported for the run.
    pub seed: u64,
    /// The SLO every point is judged by.
    pub slo: Option<&'a Slo>,
    /// A search's outcome for a target's label and points, put in the report.
    pub conclude: Option<&'a Conclude<'a>>,
}

/// Sums up a target's points (its label, its results) as a search outcome.
pub type Conclude<'a> = dyn Fn(&str, &[ResultEntry]) -> results::SearchOutcome + 'a;

/// Builds and prepares the targets, then runs the load points `next` gives each,
/// writing the report after every load point; prints the table and returns the
/// report.
pub async fn execute(x: &Execution<'_>, next: &mut NextPoint<'_>) -> Result<Report> {
    let cfg = x.config;
    let catalog = cfg.pricing.catalog()?;
    let pricing = cfg.pricing.pricing(&catalog, false)?;
    let targets = cfg
        .targets
        .iter()
        .map(|s| s.build(&cfg.build))
        .collect::<Result<Vec<_>>>()?;
    // Load every model before any file is written: a bad model file leaves nothing
    // behind, and loading is never timed.
    for target in &targets {
        prepare(target.as_ref(), cfg.quiet).await?;
    }
    let infos: Vec<_> = targets.iter().map(|t| t.describe()).collect();
    // Quality is measured once per target, before any load and any file.
    let mut quality = Vec::with_capacity(targets.len());
    for target in &targets {
        quality.push(match &cfg.quality {
            Some(reference) => {
                Some(crate::quality::measure(target.as_ref(), reference, cfg.quiet).await)
            }
            None => None,
        });
    }

    let started = chrono::Utc::now();
    let run_id = format!("{}-{}", started.format("%Y%m%dT%H%M%SZ"), x.label);
    let out_dir = cfg
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/runs").join(&run_id));
    // Each target's metrics endpoint is checked before any load (a named one that
    // does not answer is refused here, before any file is written).
    let mut metrics = Vec::with_capacity(targets.len());
    for target in &targets {
        metrics.push(scrape::plan(target.as_ref(), &out_dir).await?);
    }
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| bad_input(format!("--out {}: {e}", out_dir.display())))?;
    check_free_space(&out_dir)?;
    let report_path = out_dir.join("report.json");
    let manifest_path = out_dir.join("run.json");
    let mut jsonl = JsonLines::create(&out_dir.join("requests.jsonl"))?;
    let irq = signals::listen();
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut report = Report {
        schema: REPORT_SCHEMA.into(),
        schema_version: REPORT_SCHEMA_VERSION.into(),
        tool: ToolInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            git_sha: option_env!("INFERMETER_GIT_SHA").map(Into::into),
        },
        run: RunInfo {
            id: run_id.clone(),
            started_at: stamp(started),
            finished_at: stamp(started),
            status: RunStatus::Interrupted,
            command: std::env::args().collect(),
            seed: x.seed,
        },
        hardware: crate::hardware::fingerprint(),
        results: Vec::new(),
        repeat_spread: Vec::new(),
        search: Vec::new(),
    };
    // On disk from the start, as `interrupted` until the run ends: a killed run leaves
    // what `infermeter recover` needs.
    write_report(&report_path, &report)?;
    let mut manifest = RunManifest::new(
        run_id,
        x.kind,
        cfg.clone(),
        x.slo.map(Slo::text),
        infos.clone(),
    );
    manifest.quality = quality.clone();
    manifest.write(&manifest_path)?;
    // A planner that cannot give its next point ends the run as failed, with what it
    // measured reported (and the error returned).
    let mut planner_error = None;
    'targets: for (i, target) in targets.iter().enumerate() {
        let run = PointRun {
            target,
            info: &infos[i],
            cfg,
            slo: x.slo,
            idle_power_w: idle_power(&infos[i]).await,
            metrics: &metrics[i],
        };
        // The planner sees the first repeat of each point.
        let mut firsts: Vec<ResultEntry> = Vec::new();
        loop {
            let (spec, seed) = match next(i, &firsts) {
                Ok(Some(point)) => point,
                Ok(None) => break,
                Err(e) => {
                    planner_error = Some(e);
                    break 'targets;
                }
            };
            for index in 1..=cfg.repeat {
                if *irq.borrow() != Interrupt::None {
                    break 'targets;
                }
                let plan = PointPlan {
                    target: i,
                    spec: spec.clone(),
                    seed,
                    repeat: (cfg.repeat > 1).then_some(RepeatRef {
                        index,
                        count: cfg.repeat,
                    }),
                };
                manifest.points.push(plan.clone());
                manifest.write(&manifest_path)?;
                let mut entry = run_point(&run, plan, &mut jsonl, irq.clone()).await?;
                entry.quality = quality[i].clone();
                entry.cost = Some(results::cost::price(
                    &entry,
                    &report.hardware,
                    Some(&pricing),
                ));
                if index > 1 && target.engine_counters().is_some() {
                    entry.notes.push(format!(
                        "repeat {index} of {}: the engine kept its state (prefix cache) from the repeats before",
                        cfg.repeat
                    ));
                }
                if index == 1 {
                    firsts.push(entry.clone());
                }
                report.results.push(entry);
                report.repeat_spread = results::spread::repeat_spread(&report.results);
                // Every finished load point is on disk at once: a killed run loses
                // nothing.
                report.run.finished_at = stamp(chrono::Utc::now());
                write_report(&report_path, &report)?;
            }
        }
    }
    report.run.status = if planner_error.is_some() {
        RunStatus::Failed
    } else if *irq.borrow() != Interrupt::None {
        RunStatus::Interrupted
    } else {
        RunStatus::Complete
    };
    if let Some(conclude) = x.conclude {
        report.search = infos
            .iter()
            .map(|info| {
                let own: Vec<ResultEntry> = report
                    .results
                    .iter()
                    .filter(|e| &e.target == info)
                    .cloned()
                    .collect();
                conclude(&info.label(), &own)
            })
            .collect();
    }
    report.run.finished_at = stamp(chrono::Utc::now());
    write_report(&report_path, &report)?;
    print!("{}", render::render(&report, Format::Table));
    let html_path = out_dir.join("report.html");
    std::fs::write(&html_path, render::render(&report, Format::Html))
        .with_context(|| format!("writing {}", html_path.display()))?;
    println!("html: {}", html_path.display());
    println!("report: {}", report_path.display());
    match planner_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
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
                results::WeightsSource::GgufRequantized => {
                    format!(
                        "GGUF {} converted to {}",
                        w.path.as_deref().unwrap_or("?"),
                        info.precision
                    )
                }
                results::WeightsSource::Synthetic => {
                    format!("synthetic weights (seed {})", w.seed.unwrap_or(0))
                }
            };
            format!(
                ", {src}, sha256 {}",
                w.sha256.get(..12).unwrap_or(&w.sha256)
            )
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
