//! `infermeter merge REPORT... --out FILE`: shards, or machines running the same
//! load, merged exactly.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::error::bad_input;
use crate::files::{read_report, write_report};

/// `merge` arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The reports.
    #[arg(required = true, num_args = 2..)]
    pub reports: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `infermeter merge`.
pub fn run(args: &MergeArgs) -> Result<()> {
    if args.reports.len() < 2 {
        return Err(bad_input("merge needs at least two reports"));
    }
    let reports = args
        .reports
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = results::merge::merge(&reports, std::env::args().collect())
        .map_err(|e| bad_input(format!("cannot merge: {e}")))?;
    write_report(&args.out, &merged)?;
    print!(
        "{}",
        results::render::render(&merged, results::render::Format::Table)
    );
    println!("merged report: {}", args.out.display());
    Ok(())
}
