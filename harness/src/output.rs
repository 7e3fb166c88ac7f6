//! Files a run writes: `report.json`, written atomically (temp file + rename) so a
//! reader never sees half a report, and `requests.jsonl`, one line per request,
//! flushed as each request finishes so a killed run keeps every measurement.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use results::Report;

/// Writes `report` to `path` atomically.
pub fn write_report(path: &Path, report: &Report) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Appends one JSON object per line.
pub struct JsonLines {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonLines {
    /// Creates (or truncates) the file.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(f),
            path: path.to_path_buf(),
        })
    }

    /// Appends a record and flushes it.
    pub fn append<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
