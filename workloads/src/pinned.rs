//! Files a workload spec names (a replay's trace, a task file): resolved from the spec's
//! folder, read as UTF-8, and checked against a SHA-256 the spec may pin.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::WorkloadError;
use crate::digest::hex;

/// A file read for a spec.
pub struct PinnedFile {
    /// Its absolute path, as shown in errors and kept in the spec.
    pub shown: String,
    /// SHA-256 (hex) of its bytes.
    pub sha256: String,
    /// Its text.
    pub text: String,
}

/// Reads `path` (relative paths from `base`) for the spec `origin`'s table `table`
/// (`trace`, `tasks`): an unreadable file, a digest other than `pinned` or bytes that
/// are not UTF-8 are refused naming `table.path` or `table.sha256`.
pub fn read(
    path: &str,
    pinned: Option<&str>,
    base: &Path,
    origin: &str,
    table: &str,
) -> Result<PinnedFile, WorkloadError> {
    let mut p = PathBuf::from(path);
    if p.is_relative() {
        p = base.join(p);
    }
    let p = std::path::absolute(&p).unwrap_or(p);
    let shown = p.display().to_string();
    let invalid = |field: &str, message: String| WorkloadError::Invalid {
        origin: origin.to_string(),
        field: format!("{table}.{field}"),
        message,
    };
    let bytes = std::fs::read(&p).map_err(|source| WorkloadError::Io {
        path: format!("{origin}: {table} {shown}"),
        source,
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    if let Some(pinned) = pinned
        && !pinned.eq_ignore_ascii_case(&sha256)
    {
        return Err(invalid(
            "sha256",
            format!("{shown} has SHA-256 {sha256}, the spec pins {pinned}"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid("path", format!("{shown} is not UTF-8 text")))?;
    Ok(PinnedFile {
        shown,
        sha256,
        text,
    })
}
