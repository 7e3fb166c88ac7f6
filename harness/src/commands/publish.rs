//! `infermeter publish REPORT... --archive DIR`: reports stored content-addressed in a
//! results archive, with an index by date, hardware, target and workload.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::error::bad_input;
use crate::files::read_report;

/// `publish` arguments.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The reports.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// The archive directory.
    #[arg(long)]
    pub archive: PathBuf,
}

/// Runs `infermeter publish`.
pub fn run(args: &PublishArgs) -> Result<()> {
    let a = results::archive::Archive::at(&args.archive);
    for p in &args.reports {
        let report = read_report(p)?;
        let bytes = std::fs::read(p).map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
        let (sha, new) = a
            .publish(&bytes, &report)
            .map_err(|e| bad_input(format!("--archive {}: {e}", args.archive.display())))?;
        println!(
            "{} {}: {} ({})",
            if new { "published" } else { "already archived" },
            p.display(),
            sha,
            report.run.id
        );
    }
    Ok(())
}
