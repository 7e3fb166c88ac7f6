//! `infermeter recover DIR`: rebuilds the report of a run that was killed (kill -9, a
//! lost node) from what it left on disk, without its command line and without loading
//! a model. `report.json` holds every finished load point; `run.json` the run's
//! configuration, its targets as they described themselves and every load point
//! started (a sweep's too); `requests.jsonl` every request that finished, one flushed
//! line each. The load point in progress is the next one `run.json` lists past the
//! finished ones: its result is built from the lines past theirs by the same builder a
//! live run uses. The report's status is `interrupted`; what the lines cannot give
//! back (the engine's counters, energy) is `null` and a note says so.

use std::path::Path;

use anyhow::{Context, Result};
use results::{EnergyStats, RunStatus};
use workloads::generate::generate;

use super::builder::{PointBuilder, PointFacts};
use super::manifest::RunManifest;
use crate::error::bad_input;
use crate::files::{read_records, read_report, write_report};
use crate::slo::Slo;

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

/// Rebuilds `DIR/report.json` (and `report.html`) from the run's files.
pub fn recover(dir: &Path) -> Result<Recovered> {
    let report_path = dir.join("report.json");
    let mut report = read_report(&report_path)?;
    if report.run.status == RunStatus::Complete {
        return Err(bad_input(format!(
            "{}: the run completed; there is nothing to recover",
            report_path.display()
        )));
    }
    let jsonl = dir.join("requests.jsonl");
    let (records, torn) = read_records(&jsonl)?;
    let finished: usize = report
        .results
        .iter()
        .map(|e| (e.requests.sent + e.cold_start.as_ref().map_or(0, |c| c.probes)) as usize)
        .sum();
    if records.len() < finished {
        return Err(bad_input(format!(
            "{}: {} request lines, but the report's finished load points sent {finished}",
            jsonl.display(),
            records.len()
        )));
    }
    let rest = &records[finished..];
    let mut rebuilt = 0;
    if !rest.is_empty() {
        let manifest_path = dir.join("run.json");
        if !manifest_path.is_file() {
            return Err(bad_input(format!(
                "{}: no run.json (written by infermeter since report schema 1.6): the {} request lines past the finished load points cannot be rebuilt without it",
                dir.display(),
                rest.len()
            )));
        }
        let manifest = RunManifest::read(&manifest_path)?;
        let at = report.results.len();
        if manifest.points.len() > at + 1 {
            return Err(bad_input(format!(
                "{}: lists {} load points started, but {} holds {at} finished: a point's result is written before the next starts, so these files are not of one run",
                manifest_path.display(),
                manifest.points.len(),
                report_path.display()
            )));
        }
        let mut plan = manifest.points.get(at).cloned().ok_or_else(|| {
            bad_input(format!(
                "{}: lists {} load points started, the report holds {at} finished, and requests.jsonl has lines past them",
                manifest_path.display(),
                manifest.points.len()
            ))
        })?;
        let target = manifest.targets.get(plan.target).cloned().ok_or_else(|| {
            bad_input(format!(
                "{}: load point {} names target {}, which it does not list",
                manifest_path.display(),
                at + 1,
                plan.target
            ))
        })?;
        // Lines of one load point are contiguous: the driver finishes one before the
        // next; the lines past the finished points are the next point's.
        if let Some(r) = rest
            .iter()
            .find(|r| r.workload != plan.spec.name || r.target != target.label())
        {
            return Err(bad_input(format!(
                "{}: a line of workload `{}` and target `{}` follows the finished load points, but run.json says the next was `{}` on `{}`",
                jsonl.display(),
                r.workload,
                r.target,
                plan.spec.name,
                target.label()
            )));
        }
        let cfg = &manifest.config;
        // A file on disk is input: what it names is checked as a run's flags are.
        plan.spec
            .validate(&manifest_path.display().to_string())
            .map_err(|e| bad_input(e.to_string()))?;
        // A replay reads its trace again (its path is absolute, its digest pinned).
        plan.spec
            .load_trace(Path::new("/"), &manifest_path.display().to_string())
            .map_err(|e| bad_input(e.to_string()))?;
        if let Some(s) = cfg.shard
            && !(1..=s.count).contains(&s.index)
        {
            return Err(bad_input(format!(
                "{}: shard {}/{} does not exist",
                manifest_path.display(),
                s.index,
                s.count
            )));
        }
        let slo = manifest
            .slo
            .as_ref()
            .map(|s| Slo::parse(&s.0))
            .transpose()?;
        let whole = generate(&plan.spec, plan.seed);
        let digest = whole.digest();
        let stream = match cfg.shard {
            None => whole,
            Some(s) => whole.shard(s.index - 1, s.count).map_err(bad_input)?,
        };
        let quality = manifest.quality.get(plan.target).cloned().flatten();
        let mut builder = PointBuilder::new(plan, &stream, digest, target, slo, cfg.shard);
        for r in rest {
            builder.add(r);
        }
        let facts = PointFacts::recovered(builder.planned(), rest.len(), builder.sent());
        let mut e = builder.finish(facts).entry;
        e.quality = quality;
        e.energy = Some(EnergyStats::unavailable(
            "recovered from requests.jsonl: energy samples are not kept on disk",
        ));
        // Priced as the run would have priced it: its catalog, tier and region.
        let catalog = cfg.pricing.catalog()?;
        let pricing = cfg.pricing.pricing(&catalog, false)?;
        e.cost = Some(results::cost::price(&e, &report.hardware, Some(&pricing)));
        report.results.push(e);
        rebuilt += 1;
    }
    report.repeat_spread = results::spread::repeat_spread(&report.results);
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
