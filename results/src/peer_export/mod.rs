//! Reports written as other tools' own result files, so that dashboards built on those
//! tools read infermeter's runs unchanged (`infermeter export --format`):
//!
//! - `vllm-bench`: the JSON `vllm bench serve --save-result` writes (vLLM 0.32/0.33),
//!   one file per load point;
//! - `aiperf`: AIPerf 0.13's `profile_export_aiperf.json`, one per load point;
//! - `guidellm`: GuideLLM 0.8.1's `benchmarks.json`, one for the report, built from
//!   the run's requests (a [`PeerRequest`] per line of `requests.jsonl`): GuideLLM's
//!   report holds every request and distributions a summary cannot give back.
//!
//! Each figure keeps the peer's name, unit and definition; where infermeter's figure has
//! another definition (README, "Compared with other tools") the peer's field holds the
//! infermeter figure that matches the peer's definition, or is left out or null when
//! infermeter has none. Nothing is invented: what infermeter did not measure stays
//! null, and what only infermeter has goes in an `infermeter` extras object where the
//! format allows one. Percentiles are linear interpolations between order statistics,
//! as vLLM and AIPerf compute them, read from the report's histograms (0.1%
//! resolution); GuideLLM's are its own (lower nearest rank of a weighted
//! distribution), computed from the requests.

mod aiperf;
mod dist;
mod extras;
mod guidellm;
mod vllm_bench;

use std::path::PathBuf;

use serde_json::Value;

use crate::error::ResultsError;
use crate::report::{Report, ResultEntry};

/// The peer formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFormat {
    /// `vllm bench serve --save-result` JSON.
    VllmBench,
    /// AIPerf's profile export.
    Aiperf,
    /// GuideLLM's benchmarks report.
    Guidellm,
}

impl PeerFormat {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PeerFormat::VllmBench => "vllm-bench",
            PeerFormat::Aiperf => "aiperf",
            PeerFormat::Guidellm => "guidellm",
        }
    }

    /// Whether the format needs the run's requests, not only its report.
    pub fn needs_requests(self) -> bool {
        self == PeerFormat::Guidellm
    }
}

/// One measured request of a load point, as the GuideLLM export reads it (a line of
/// the run's `requests.jsonl`; cold-start probes left out). Times are from the start
/// of the load point's measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRequest {
    /// Stream seed.
    pub seed: u64,
    /// Request index in the stream.
    pub request: u64,
    /// Session index.
    pub session: u64,
    /// Call index within the session (0 for a session's first).
    pub call: u32,
    /// Intended send, seconds.
    pub scheduled_s: f64,
    /// Actual send, seconds.
    pub sent_s: f64,
    /// First token minus actual send, ms (none without streaming or a token).
    pub ttft_ms: Option<f64>,
    /// First answer token (reasoning excluded) minus actual send, ms.
    pub ttft_answer_ms: Option<f64>,
    /// Completion (or the failure) minus actual send, ms.
    pub e2e_ms: f64,
    /// Last token minus first, ms (the sum of the gaps between stream chunks); none
    /// when the line does not say.
    pub chunk_gaps_ms: Option<f64>,
    /// Stream chunks that carried tokens.
    pub chunks: u32,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens received.
    pub output_tokens: u32,
    /// Output tokens asked for.
    pub max_output_tokens: u32,
    /// The error of a failed request (none for a successful one).
    pub error: Option<String>,
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
/// `requests[i]` are load point i's requests, which [`PeerFormat::needs_requests`]
/// formats need (the others ignore them).
pub fn export(
    report: &Report,
    format: PeerFormat,
    requests: Option<&[Vec<PeerRequest>]>,
) -> Result<Vec<ExportFile>, ResultsError> {
    let mut files = files(report, format, requests)?;
    // Two load points may share a name (two targets of one label, say): the later ones
    // get `-2`, `-3`, ... rather than overwrite the first.
    let mut seen = std::collections::BTreeMap::<PathBuf, u32>::new();
    for f in &mut files {
        let n = seen.entry(f.path.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            f.path = numbered(&f.path, *n);
        }
    }
    Ok(files)
}

/// `path` with `-n` after its first component (the load point's name).
fn numbered(path: &std::path::Path, n: u32) -> PathBuf {
    let mut parts = path.components();
    let first = parts
        .next()
        .map_or_else(String::new, |c| c.as_os_str().to_string_lossy().to_string());
    let rest: PathBuf = parts.collect();
    let first = match first.strip_suffix(".json") {
        Some(stem) => format!("{stem}-{n}.json"),
        None => format!("{first}-{n}"),
    };
    if rest.as_os_str().is_empty() {
        PathBuf::from(first)
    } else {
        PathBuf::from(first).join(rest)
    }
}

fn files(
    report: &Report,
    format: PeerFormat,
    requests: Option<&[Vec<PeerRequest>]>,
) -> Result<Vec<ExportFile>, ResultsError> {
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
        PeerFormat::Guidellm => {
            let requests = requests.ok_or_else(|| {
                ResultsError::Export("the guidellm format needs the run's requests".into())
            })?;
            Ok(vec![ExportFile {
                path: PathBuf::from("benchmarks.json"),
                json: guidellm::export(report, requests)?,
            }])
        }
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
