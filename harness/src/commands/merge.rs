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
    /// The reports (one alone is its own merge, unless it is a lone shard of several).
    #[arg(required = true, num_args = 1..)]
    pub reports: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(long)]
    pub out: PathBuf,
    /// Merge a shard set with shards missing (a failed job, say): the result is
    /// `interrupted` and names the missing shards. Without it such a set is refused.
    #[arg(long)]
    pub allow_partial: bool,
}

/// Runs `infermeter merge`.
pub fn run(args: &MergeArgs) -> Result<()> {
    let reports = args
        .reports
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let merged =
        results::merge::merge_with(&reports, std::env::args().collect(), args.allow_partial)
            .map_err(|e| bad_input(format!("cannot merge: {e}")))?;
    write_report(&args.out, &merged)?;
    print!(
        "{}",
        results::render::render(&merged, results::render::Format::Table)
    );
    println!("merged report: {}", args.out.display());
    Ok(())
}
