//! A results archive: reports stored content-addressed (by the SHA-256 of their bytes)
//! under `objects/`, with an index (`index.json`) by date, hardware, target and
//! workload, so nightly history outlives CI artifact expiry and can be read back as a
//! time series of any metric.
//!
//! Layout: `DIR/objects/<sha256>.json` (the report, byte for byte) and `DIR/index.json`
//! (`{"schema": "infermeter.archive", "schema_version": "1.0", "reports": [...]}`),
//! rewritten atomically on every publish. Publishing the same report twice stores it
//! once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::metrics::{metric, metric_names};
use crate::report::Report;

/// The `schema` of an archive index.
pub const ARCHIVE_SCHEMA: &str = "infermeter.archive";

/// One archived report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// SHA-256 of the report's bytes: its file is `objects/<sha256>.json`.
    pub sha256: String,
    /// The run's id.
    pub run_id: String,
    /// When the run started (RFC 3339); the time axis of a history.
    pub started_at: String,
    /// The run's status.
    pub status: String,
    /// Tool version and commit.
    pub tool: String,
    /// CPU model, logical cores and GPUs.
    pub hardware: String,
    /// Targets (`kind model precision`) in the report.
    pub targets: Vec<String>,
    /// Workloads in the report.
    pub workloads: Vec<String>,
}

/// The archive's index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Always `infermeter.archive`.
    pub schema: String,
    /// `major.minor`.
    pub schema_version: String,
    /// Archived reports, oldest run first.
    pub reports: Vec<IndexEntry>,
}

/// Why the archive could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ArchiveError(pub String);

fn io(path: &Path, e: std::io::Error) -> ArchiveError {
    ArchiveError(format!("{}: {e}", path.display()))
}

/// An archive directory.
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// The archive at `dir` (created on first publish).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// The index; empty when the archive does not exist yet.
    pub fn index(&self) -> Result<Index, ArchiveError> {
        let path = self.index_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let idx: Index = serde_json::from_str(&text)
                    .map_err(|e| ArchiveError(format!("{}: {e}", path.display())))?;
                if idx.schema != ARCHIVE_SCHEMA {
                    return Err(ArchiveError(format!(
                        "{}: schema is `{}`, not {ARCHIVE_SCHEMA}",
                        path.display(),
                        idx.schema
                    )));
                }
                Ok(idx)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema: ARCHIVE_SCHEMA.into(),
                schema_version: "1.0".into(),
                reports: Vec::new(),
            }),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Stores `bytes` (a report, already validated as `report`); returns its SHA-256
    /// and whether it was new.
    pub fn publish(&self, bytes: &[u8], report: &Report) -> Result<(String, bool), ArchiveError> {
        let sha = hex(&Sha256::digest(bytes));
        let objects = self.dir.join("objects");
        std::fs::create_dir_all(&objects).map_err(|e| io(&objects, e))?;
        let mut index = self.index()?;
        if index.reports.iter().any(|e| e.sha256 == sha) {
            return Ok((sha, false));
        }
        let object = objects.join(format!("{sha}.json"));
        write_atomically(&object, bytes)?;
        let mut targets: Vec<String> = report.results.iter().map(|e| e.target.label()).collect();
        targets.dedup();
        let mut workloads: Vec<String> = report
            .results
            .iter()
            .map(|e| e.workload.name.clone())
            .collect();
        workloads.dedup();
        index.reports.push(IndexEntry {
            sha256: sha.clone(),
            run_id: report.run.id.clone(),
            started_at: report.run.started_at.clone(),
            status: report.run.status.as_str().to_string(),
            tool: format!(
                "{} {}",
                report.tool.version,
                report.tool.git_sha.as_deref().unwrap_or("")
            )
            .trim()
            .to_string(),
            hardware: report.hardware_label(),
            targets,
            workloads,
        });
        index
            .reports
            .sort_by(|a, b| a.started_at.cmp(&b.started_at));
        let text = serde_json::to_string_pretty(&index)
            .map_err(|e| ArchiveError(format!("serializing the index: {e}")))?;
        write_atomically(&self.index_path(), format!("{text}\n").as_bytes())?;
        Ok((sha, true))
    }

    /// The report stored as `sha256`.
    pub fn load(&self, sha256: &str) -> Result<Report, ArchiveError> {
        let path = self.dir.join("objects").join(format!("{sha256}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        crate::schema::read_report_str(&text)
            .map(|(report, _warnings)| report)
            .map_err(|e| ArchiveError(format!("{}: {e}", path.display())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// One point of a history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// When the run started.
    pub started_at: String,
    /// The run's id.
    pub run_id: String,
    /// Its hardware.
    pub hardware: String,
    /// Target / workload / load point.
    pub result: String,
    /// The metric's value; `null` when the run did not measure it.
    pub value: Option<f64>,
}

/// The time series of `metric_name` over the archive, oldest first, for results whose
/// key contains `filter` (every result when empty).
pub fn history(
    archive: &Archive,
    metric_name: &str,
    filter: &str,
) -> Result<Vec<HistoryPoint>, ArchiveError> {
    let m = metric(metric_name).ok_or_else(|| {
        ArchiveError(format!(
            "unknown metric `{metric_name}` (metrics: {})",
            metric_names()
        ))
    })?;
    let mut out = Vec::new();
    for entry in archive.index()?.reports {
        let report = archive.load(&entry.sha256)?;
        for e in &report.results {
            let key = e.pair_key();
            if filter.is_empty() || key.contains(filter) {
                out.push(HistoryPoint {
                    started_at: entry.started_at.clone(),
                    run_id: entry.run_id.clone(),
                    hardware: entry.hardware.clone(),
                    result: key,
                    value: (m.get)(e),
                });
            }
        }
    }
    Ok(out)
}
