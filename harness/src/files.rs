//! The files of a run and how they are read and written: `report.json` and
//! `run.json`, written atomically (temp file + rename) so a reader never sees half of
//! one; `requests.jsonl`, one line per request, flushed as each request finishes so a
//! killed run keeps every measurement; reports read back through their schema
//! version; and the free-space check made before a run starts.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use results::Report;
use results::schema::SchemaVersion;

use crate::error::bad_input;
use crate::record::RequestRecord;

/// Writes `report` to `path` atomically.
pub fn write_report(path: &Path, report: &Report) -> Result<()> {
    write_json(path, report).context("writing the report")
}

/// Reads a report and checks its version and its schema; every problem is bad input
/// naming the file. A newer minor version is read with a warning on standard error.
pub fn read_report(path: &Path) -> Result<Report> {
    Ok(read_report_as_written(path)?.0)
}

/// [`read_report`], and the schema version the file itself says (the report read is
/// of this build's version).
pub fn read_report_as_written(path: &Path) -> Result<(Report, SchemaVersion)> {
    let at = |e: &dyn std::fmt::Display| bad_input(format!("{}: {e}", path.display()));
    let text = fs::read_to_string(path).map_err(|e| at(&e))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| at(&e))?;
    let written = results::schema::check_version(&doc).map_err(|e| at(&e))?;
    let (report, warnings) = results::schema::read_report_value(doc).map_err(|e| at(&e))?;
    for w in warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok((report, written))
}

/// Reads every complete line of `requests.jsonl`; a cut last line is reported, any
/// other bad line is bad input.
pub fn read_records(path: &Path) -> Result<(Vec<RequestRecord>, bool)> {
    let text =
        fs::read_to_string(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
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

/// Writes `value` as pretty JSON to `path` atomically (and synced).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("serializing")?;
    text.push('\n');
    write_text(path, &text)
}

/// Writes `text` to `path` atomically (a synced temp file, then a rename).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
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

    /// Appends a record and flushes it. A write that fails (a full disk) is an error
    /// naming the file; what was written before stays.
    pub fn append<T: serde::Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record).context("serializing a request record")?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Free bytes a run needs on its output file system before it starts, unless
/// `INFERMETER_MIN_FREE_BYTES` says otherwise: 64 MiB (a request line is 1-10 KiB).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

/// Refuses to start a run whose output directory's file system has less than the
/// minimum free (bad input, naming the mount point and both figures).
pub fn check_free_space(dir: &Path) -> Result<()> {
    let need = match std::env::var("INFERMETER_MIN_FREE_BYTES") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| {
            bad_input(format!(
                "INFERMETER_MIN_FREE_BYTES must be a number of bytes, got `{v}`"
            ))
        })?,
        Err(_) => DEFAULT_MIN_FREE_BYTES,
    };
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let disks = sysinfo::Disks::new_with_refreshed_list();
    // The file system holding `dir`: the mount point that is its longest prefix.
    let Some(disk) = disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
    else {
        return Ok(()); // Not found (an unusual mount): the write checks still apply.
    };
    let free = disk.available_space();
    if free < need {
        return Err(bad_input(format!(
            "--out {}: only {:.1} MiB free on {}, and a run needs {:.1} MiB (INFERMETER_MIN_FREE_BYTES)",
            dir.display(),
            free as f64 / (1 << 20) as f64,
            disk.mount_point().display(),
            need as f64 / (1 << 20) as f64
        )));
    }
    Ok(())
}
