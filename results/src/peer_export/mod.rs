//! Reports written as other tools' own result files, so that dashboards built on those
//! tools read infermeter's runs unchanged (`infermeter export --format`):
//!
//! - `vllm-bench`: the JSON `vllm bench serve --save-result` writes (vLLM 0.32/0.33),
//!   one file per load point;
//! - `aiperf`: AIPerf 0.13's `profile_export_aiperf.json`, one per load point.
//!
//! Each figure keeps the peer's name, unit and definition; where infermeter's figure has
//! another definition (README, "Compared with other tools") the peer's field holds the
//! infermeter figure that matches the peer's definition, or is left out or null when
//! infermeter has none. Nothing is invented: what infermeter did not measure stays
//! null, and what only infermeter has goes in an `infermeter` extras object where the
//! format allows one. Percentiles are linear interpolations between order statistics,
//! as the peers compute them, read from the report's histograms (0.1% resolution).

mod aiperf;
mod dist;
mod vllm_bench;

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::ResultsError;
use crate::report::{Report, ResultEntry};

/// The peer formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFormat {
    /// `vllm bench serve --save-result` JSON.
    VllmBench,
    /// AIPerf's profile export.
    Aiperf,
}

impl PeerFormat {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PeerFormat::VllmBench => "vllm-bench",
            PeerFormat::Aiperf => "aiperf",
        }
    }
}

/// One file of an export: where it goes under the output folder, and its JSON.
#[derive(Debug)]
pub struct ExportFile {
    /// Path relative to the output folder.
    pub path: PathBuf,
    /// Its content.
    pub json: Value,
}

/// Writes `report` in `format`: the files to write, relative to an output folder.
pub fn export(report: &Report, format: PeerFormat) -> Result<Vec<ExportFile>, ResultsError> {
    if report.results.is_empty() {
        return Err(ResultsError::Export(
            "the report has no results to export".into(),
        ));
    }
    match format {
        PeerFormat::VllmBench => report
            .results
            .iter()
            .map(|e| {
                Ok(ExportFile {
                    path: PathBuf::from(format!("{}.json", slug(e))),
                    json: vllm_bench::result(report, e)?,
                })
            })
            .collect(),
        PeerFormat::Aiperf => report
            .results
            .iter()
            .map(|e| {
                Ok(ExportFile {
                    path: PathBuf::from(slug(e)).join("profile_export_aiperf.json"),
                    json: aiperf::export(report, e)?,
                })
            })
            .collect(),
    }
}

/// A file name for one load point: workload, load and target, in file-safe characters.
fn slug(e: &ResultEntry) -> String {
    let mut s = format!(
        "{}-{}-{}",
        e.workload.name,
        e.load_label(),
        e.target.label()
    );
    if let Some(r) = &e.repeat {
        s.push_str(&format!("-repeat{}", r.index));
    }
    if let Some(sh) = &e.workload.shard {
        s.push_str(&format!("-shard{}of{}", sh.index, sh.count));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let c = if keep { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out
}

/// What only infermeter has, kept beside a peer's fields: the run and the figures the
/// peer does not define (per-token ITL, schedule lag, cost, energy).
fn extras(report: &Report, e: &ResultEntry) -> Value {
    let summary = |s: &crate::histogram::LatencySummary| json!({"count": s.count, "mean": s.mean, "p50": s.p50, "p90": s.p90, "p99": s.p99});
    json!({
        "schema": report.schema_version,
        "tool_version": report.tool.version,
        "git_sha": report.tool.git_sha,
        "run_id": report.run.id,
        "run_status": report.run.status.as_str(),
        "workload": e.workload.name,
        "workload_sha256": e.workload.spec_sha256,
        "target": e.target.label(),
        "load": e.load_label(),
        "itl_ms": summary(&e.latency.itl_ms),
        "queue_ms": summary(&e.latency.queue_ms),
        "usd_per_m_tokens_workload_mix": e.cost.as_ref().and_then(|c| c.usd_per_m_blended_workload),
        "usd_per_request": e.cost.as_ref().and_then(|c| c.usd_per_request),
        "output_tokens_per_j": e.energy.as_ref().and_then(|x| x.tokens_per_j_output),
    })
}
