//! `infermeter export`: a report written as other tools' own result files (vLLM's
//! `bench serve` JSON, AIPerf's profile export, GuideLLM's benchmarks report), so that
//! dashboards built on those tools read infermeter's runs (README, "Exports in other
//! tools' formats"). GuideLLM's report holds every request: it is built from the run's
//! `requests.jsonl`, split into the report's load points.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use results::Report;
use results::peer_export::{self, PeerFormat, PeerRequest};

use crate::error::bad_input;
use crate::files::{read_records, read_report, write_json};
use crate::record::RequestRecord;

/// The formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `vllm bench serve --save-result` JSON (vLLM 0.32/0.33), one file per load point.
    VllmBench,
    /// AIPerf 0.13's `profile_export_aiperf.json`, one folder per load point.
    Aiperf,
    /// GuideLLM 0.8.1's `benchmarks.json`, one for the report (needs the run's
    /// requests.jsonl).
    Guidellm,
}

impl ExportFormat {
    fn peer(self) -> PeerFormat {
        match self {
            ExportFormat::VllmBench => PeerFormat::VllmBench,
            ExportFormat::Aiperf => PeerFormat::Aiperf,
            ExportFormat::Guidellm => PeerFormat::Guidellm,
        }
    }
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The report (report.json of a run, sweep or merge).
    pub report: PathBuf,
    /// The other tool's format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Folder to write into (created when missing): one file per load point, named by
    /// workload, load and target.
    #[arg(long)]
    pub out: PathBuf,
    /// The run's requests.jsonl, for formats built from requests (guidellm); default:
    /// the one beside the report.
    #[arg(long)]
    pub requests: Option<PathBuf>,
}

/// The run's requests by load point: `requests.jsonl` holds each load point's lines
/// together, in the report's order (a point's cold-start probes among them), so the
/// report's counts cut it.
fn requests_by_point(report: &Report, path: &Path) -> Result<Vec<Vec<PeerRequest>>> {
    let (records, torn) = read_records(path)?;
    if torn {
        return Err(bad_input(format!(
            "{}: its last line is cut short (a killed run: `infermeter recover` its folder first)",
            path.display()
        )));
    }
    let mut rest = records.as_slice();
    let mut out = Vec::with_capacity(report.results.len());
    for (i, e) in report.results.iter().enumerate() {
        let n = (e.requests.sent + e.cold_start.as_ref().map_or(0, |c| c.probes)) as usize;
        if rest.len() < n {
            return Err(bad_input(format!(
                "{}: {} request lines, fewer than the report's load points sent: not this report's requests",
                path.display(),
                records.len()
            )));
        }
        let (point, after) = rest.split_at(n);
        rest = after;
        if let Some(r) = point
            .iter()
            .find(|r| r.workload != e.workload.name || r.target != e.target.label())
        {
            return Err(bad_input(format!(
                "{}: load point {} is `{}` on `{}`, but its lines include `{}` on `{}`: not this report's requests",
                path.display(),
                i + 1,
                e.workload.name,
                e.target.label(),
                r.workload,
                r.target
            )));
        }
        out.push(
            point
                .iter()
                .filter(|r| !r.cold_start)
                .map(peer_request)
                .collect(),
        );
    }
    if !rest.is_empty() {
        return Err(bad_input(format!(
            "{}: {} request lines, more than the report's load points sent: not this report's requests",
            path.display(),
            records.len()
        )));
    }
    Ok(out)
}

/// A request line as the peer exports read it.
fn peer_request(r: &RequestRecord) -> PeerRequest {
    PeerRequest {
        seed: r.seed,
        request: r.request,
        session: r.session,
        call: r.call,
        scheduled_s: r.scheduled_s,
        sent_s: r.sent_s,
        ttft_ms: r.ttft_ms,
        ttft_answer_ms: r.ttft_answer_ms,
        e2e_ms: r.e2e_ms,
        // Lines of older runs keep no gaps: the last token is then TPOT x
        // (tokens - 1) after the first (TPOT's definition), when TPOT was measured.
        chunk_gaps_ms: if !r.chunk_gap_ms.is_empty() || r.chunks <= 1 {
            Some(r.chunk_gap_ms.iter().sum())
        } else {
            r.tpot_ms
                .map(|t| t * f64::from(r.output_tokens.saturating_sub(1)))
        },
        chunks: r.chunks,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        max_output_tokens: r.max_output_tokens,
        error: (!r.ok()).then(|| r.error.clone().unwrap_or_else(|| r.status.clone())),
    }
}

/// Runs `infermeter export`.
pub fn run(a: &ExportArgs) -> Result<()> {
    let report = read_report(&a.report)?;
    let format = a.format.peer();
    let requests = if format.needs_requests() {
        let path = a.requests.clone().unwrap_or_else(|| {
            a.report
                .parent()
                .unwrap_or(Path::new("."))
                .join("requests.jsonl")
        });
        if !path.is_file() {
            return Err(bad_input(format!(
                "{}: not found: the {} format is built from the run's requests (--requests FILE); a merged report has none",
                path.display(),
                format.name()
            )));
        }
        Some(requests_by_point(&report, &path)?)
    } else {
        None
    };
    let files = peer_export::export(&report, format, requests.as_deref())
        .map_err(|e| bad_input(format!("{}: {e}", a.report.display())))?;
    for f in &files {
        let path = a.out.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| bad_input(format!("--out {}: {e}", dir.display())))?;
        }
        write_json(&path, &f.json)?;
        println!("{}", path.display());
    }
    eprintln!(
        "{} {} file(s) from {} under {}",
        files.len(),
        format.name(),
        a.report.display(),
        a.out.display()
    );
    Ok(())
}
