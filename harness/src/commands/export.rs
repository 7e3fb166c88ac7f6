//! `infermeter export`: a report written as other tools' own result files (vLLM's
//! `bench serve` JSON, AIPerf's profile export), so that dashboards built on those tools
//! read infermeter's runs (README, "Exports in other tools' formats").

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use results::peer_export::{self, PeerFormat};

use crate::error::bad_input;
use crate::files::{read_report, write_json};

/// The formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `vllm bench serve --save-result` JSON (vLLM 0.32/0.33), one file per load point.
    VllmBench,
    /// AIPerf 0.13's `profile_export_aiperf.json`, one folder per load point.
    Aiperf,
}

impl ExportFormat {
    fn peer(self) -> PeerFormat {
        match self {
            ExportFormat::VllmBench => PeerFormat::VllmBench,
            ExportFormat::Aiperf => PeerFormat::Aiperf,
        }
    }
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The report (report.json of a run, sweep or merge).
    pub report: PathBuf,
    /// The other tool's format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Folder to write into (created when missing): one file per load point, named by
    /// workload, load and target.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `infermeter export`.
pub fn run(a: &ExportArgs) -> Result<()> {
    let report = read_report(&a.report)?;
    let format = a.format.peer();
    let files = peer_export::export(&report, format)
        .map_err(|e| bad_input(format!("{}: {e}", a.report.display())))?;
    for f in &files {
        let path = a.out.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| bad_input(format!("--out {}: {e}", dir.display())))?;
        }
        write_json(&path, &f.json)?;
        println!("{}", path.display());
    }
    eprintln!(
        "{} {} file(s) from {} under {}",
        files.len(),
        format.name(),
        a.report.display(),
        a.out.display()
    );
    Ok(())
}
