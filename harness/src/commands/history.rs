//! `infermeter history --archive DIR --metric M`: a registry metric's time series
//! over a results archive.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;

use super::args::TableFormat;
use crate::error::bad_input;

/// `history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The archive directory.
    #[arg(long)]
    pub archive: PathBuf,
    /// The metric (a registry metric: ttft_p99_ms, output_tokens_per_s, ...).
    #[arg(long)]
    pub metric: String,
    /// Only results whose `target / workload / load` contains this text.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

/// Runs `infermeter history`.
pub fn run(args: &HistoryArgs) -> Result<()> {
    let a = results::archive::Archive::at(&args.archive);
    let points =
        results::archive::history(&a, &args.metric, &args.filter).map_err(|e| bad_input(e.0))?;
    if points.is_empty() {
        return Err(bad_input(format!(
            "--archive {}: no result matches `{}`",
            args.archive.display(),
            args.filter
        )));
    }
    match args.format {
        TableFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&points).map_err(|e| anyhow!("serializing: {e}"))?
        ),
        f => {
            let mut b = tabled::builder::Builder::default();
            b.push_record([
                "started_at",
                "run",
                "hardware",
                "result",
                args.metric.as_str(),
            ]);
            for p in &points {
                b.push_record([
                    p.started_at.clone(),
                    p.run_id.clone(),
                    p.hardware.clone(),
                    p.result.clone(),
                    p.value.map_or("-".into(), |v| format!("{v:.6}")),
                ]);
            }
            let mut t = b.build();
            if f == TableFormat::Md {
                t.with(tabled::settings::Style::markdown());
            } else {
                t.with(tabled::settings::Style::rounded());
            }
            println!("{t}");
        }
    }
    Ok(())
}
