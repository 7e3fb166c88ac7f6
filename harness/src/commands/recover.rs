//! `infermeter recover DIR`: rebuilds a killed run's report ([`crate::run::recover`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// `recover` arguments.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The run's output directory.
    pub dir: PathBuf,
}

/// Runs `infermeter recover`.
pub fn run(args: &RecoverArgs) -> Result<()> {
    let r = crate::run::recover::recover(&args.dir)?;
    println!(
        "recovered {}: {} finished load points kept, {} rebuilt from {} request lines{}",
        args.dir.join("report.json").display(),
        r.finished_points,
        r.rebuilt_points,
        r.lines,
        if r.torn_last_line {
            "; a last line cut by the kill was ignored"
        } else {
            ""
        }
    );
    Ok(())
}
