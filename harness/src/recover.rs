//! `infermeter recover DIR`: rebuilds the report of a run that was killed (kill -9, a
//! lost node) from what it left on disk. `report.json` is written when a run starts
//! and after every finished load point, so it holds every finished load point;
//! `requests.jsonl` holds every request that finished, one flushed line each, so the
//! load point in progress is rebuilt from the lines past the finished ones. The result
//! has status `interrupted`; what the lines cannot give back (task figures, the
//! engine's counters, energy) is `null` and a note says so.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;
use results::{ResultEntry, RunStatus};

use crate::cli::{Cli, Command, read_report};
use crate::collector::{Aggregate, RequestRecord};
use crate::driver::Outcome;
use crate::error::bad_input;
use crate::output::write_report;
use crate::plan::resolve;
use crate::target::{TargetSpec, TargetsFile};

/// What `recover` found and did.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Load points the report already held.
    pub finished_points: usize,
    /// Load points rebuilt from `requests.jsonl`.
    pub rebuilt_points: usize,
    /// Request lines read.
    pub lines: usize,
    /// A last line cut short by the kill (ignored).
    pub torn_last_line: bool,
}

/// Reads every complete line of `requests.jsonl`; a cut last line is reported, any
/// other bad line is bad input.
pub fn read_records(path: &Path) -> Result<(Vec<RequestRecord>, bool)> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut torn = false;
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        match serde_json::from_str::<RequestRecord>(line.trim_end()) {
            Ok(r) => out.push(r),
            Err(_) if last && !line.ends_with('\n') => torn = true,
            Err(e) => {
                return Err(bad_input(format!(
                    "{}:{}: not a request record: {e}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok((out, torn))
}

/// Rebuilds `DIR/report.json` (and `report.html`) from the run's files.
pub async fn recover(dir: &Path) -> Result<Recovered> {
    let report_path = dir.join("report.json");
    let mut report = read_report(&report_path)?;
    if report.run.status == RunStatus::Complete {
        return Err(bad_input(format!(
            "{}: the run completed; there is nothing to recover",
            report_path.display()
        )));
    }
    let (records, torn) = read_records(&dir.join("requests.jsonl"))?;
    let finished: usize = report
        .results
        .iter()
        .map(|e| (e.requests.sent + e.cold_start.as_ref().map_or(0, |c| c.probes)) as usize)
        .sum();
    if records.len() < finished {
        return Err(bad_input(format!(
            "{}: {} request lines, but the report's finished load points sent {finished}",
            dir.join("requests.jsonl").display(),
            records.len()
        )));
    }
    let rest = &records[finished..];
    let mut rebuilt = 0;
    if !rest.is_empty() {
        let args = match Cli::try_parse_from(&report.run.command) {
            Ok(Cli {
                command: Command::Run(args),
                ..
            }) => args,
            _ => {
                return Err(bad_input(format!(
                    "{}: only `infermeter run` can be recovered past its finished load points; this report's command is `{}`",
                    report_path.display(),
                    report.run.command.join(" ")
                )));
            }
        };
        // Lines of one load point are contiguous: the driver finishes one before the next.
        let mut groups: Vec<Vec<&RequestRecord>> = Vec::new();
        for r in rest {
            match groups.last_mut() {
                Some(g) if g[0].workload == r.workload && g[0].target == r.target => g.push(r),
                _ => groups.push(vec![r]),
            }
        }
        // Priced as the run would have priced them: its catalog, tier and region.
        let catalog = args.pricing.catalog()?;
        let pricing = args.pricing.pricing(&catalog, false)?;
        for g in groups {
            let mut e = rebuild(&args, &report.results, &g).await?;
            e.cost = Some(results::cost::price(&e, &report.hardware, Some(&pricing)));
            report.results.push(e);
            rebuilt += 1;
        }
    }
    report.repeat_spread = results::stats::repeat_spread(&report.results);
    report.run.status = RunStatus::Interrupted;
    write_report(&report_path, &report)?;
    let html = dir.join("report.html");
    std::fs::write(
        &html,
        results::render::render(&report, results::render::Format::Html),
    )
    .with_context(|| format!("writing {}", html.display()))?;
    Ok(Recovered {
        finished_points: report.results.len() - rebuilt,
        rebuilt_points: rebuilt,
        lines: records.len(),
        torn_last_line: torn,
    })
}

/// One load point from its request lines.
async fn rebuild(
    args: &crate::cli::RunArgs,
    finished: &[ResultEntry],
    lines: &[&RequestRecord],
) -> Result<ResultEntry> {
    let first = lines[0];
    let plan = resolve(
        args.suite.as_deref(),
        &args.workloads,
        &crate::cli::overrides(args),
    )?;
    let (spec, seed) = plan
        .workloads
        .iter()
        .find(|(s, _)| s.name == first.workload)
        .cloned()
        .ok_or_else(|| {
            bad_input(format!(
                "workload `{}` of requests.jsonl is not in the run's plan",
                first.workload
            ))
        })?;
    let target = match finished.iter().find(|e| e.target.label() == first.target) {
        Some(e) => e.target.clone(),
        None => {
            let file = match &args.targets_file {
                Some(p) => Some(TargetsFile::read(p)?),
                None => None,
            };
            let mut found = None;
            for t in &args.targets {
                // A target describes its model and precision once prepared (a local
                // engine loads its weights; remote targets send nothing).
                let target = TargetSpec::resolve(t, file.as_ref())?.build(args.max_connections)?;
                target
                    .prepare()
                    .await
                    .with_context(|| format!("preparing target {t}"))?;
                let info = target.describe();
                if info.label() == first.target {
                    found = Some(info);
                    break;
                }
            }
            found.ok_or_else(|| {
                bad_input(format!(
                    "target `{}` of requests.jsonl is not among the run's targets",
                    first.target
                ))
            })?
        }
    };
    let mut agg = Aggregate::default();
    let mut cold = Aggregate::default();
    // Send times are seconds from the start of measurement, so the measured window
    // (start to last completion) ends at the latest send plus its E2E, and the
    // requests in flight (for the steady state) are known at every moment.
    let mut end_s: f64 = 0.0;
    let mut flight: Vec<(f64, i32)> = Vec::new();
    for r in lines {
        if r.cold_start {
            cold.add(r);
        } else {
            agg.add(r);
            let end = r.sent_s + r.e2e_ms / 1000.0;
            end_s = end_s.max(end);
            flight.extend([(r.sent_s, 1), (end, -1)]);
        }
    }
    let outcome = Outcome {
        measured_s: end_s,
        ..Outcome::default()
    };
    let whole = workloads::generate::generate(&spec, seed);
    let mut e = crate::cli::entry(&spec, seed, whole.digest(), target, &agg, &outcome);
    e.workload.shard = args.shard;
    // The same rule as the driver's, over the requests that finished.
    e.throughput.steady_state = crate::steady::steady_window(&flight, crate::driver::STEADY_MIN_S)
        .and_then(|(a, b)| results::stats::SteadyState::of(agg.completions(), a, b));
    // A `--repeat` run: this is the next repeat of its load point.
    if args.repeat > 1 {
        let before = finished
            .iter()
            .filter(|f| f.workload.name == spec.name && f.target.label() == first.target)
            .count();
        e.repeat = Some(results::stats::RepeatRef {
            index: u32::try_from(before + 1).unwrap_or(u32::MAX),
            count: args.repeat,
        });
    }
    e.cold_start = spec
        .load
        .cold_start
        .as_ref()
        .and_then(|c| cold.cold_start(c.idle_s));
    e.energy = Some(results::EnergyStats::unavailable(
        "recovered from requests.jsonl: energy samples are not kept on disk",
    ));
    e.notes.push(format!(
        "recovered by `infermeter recover` from {} lines of requests.jsonl: the run was killed during this load point; tasks, the engine's counters and energy are not in that file",
        lines.len()
    ));
    Ok(e)
}
