//! `infermeter report PATH`: a saved report as a table, Markdown, CSV, JSON or one
//! self-contained HTML page.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use results::render;

use super::args::FormatArg;
use crate::error::bad_input;
use crate::files::read_report;

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Path to a report.json.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `infermeter report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    let report = read_report(&args.path)?;
    let text = render::render(&report, args.format.into());
    match &args.out {
        None => print!("{text}"),
        Some(o) => {
            std::fs::write(o, text).map_err(|e| bad_input(format!("--out {}: {e}", o.display())))?
        }
    }
    Ok(())
}
