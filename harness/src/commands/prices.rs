//! `infermeter prices apply|export`: price a report again, or export router price
//! tables (LiteLLM's format, infermeter's routing table).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::{Subcommand, ValueEnum};

use super::args::PricingArgs;
use crate::error::bad_input;
use crate::files::{read_report, write_report};

/// Router price table formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// LiteLLM's model_prices_and_context_window.json entries.
    Litellm,
    /// infermeter's routing table (prices, latency, interactivity, energy).
    Routing,
}

/// `prices` subcommands.
#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Price a report again with a catalog, tier and region, without running anything.
    Apply {
        /// The report.
        report: PathBuf,
        /// Catalog, tier and region.
        #[command(flatten)]
        pricing: PricingArgs,
        /// Write the re-priced report here (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export router price tables from reports.
    Export {
        /// The reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Table format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `infermeter prices`.
pub fn run(cmd: &PricesCommand) -> Result<()> {
    match cmd {
        PricesCommand::Apply {
            report,
            pricing,
            out,
        } => apply(report, pricing, out.as_deref()),
        PricesCommand::Export {
            reports,
            format,
            out,
        } => export(reports, *format, out),
    }
}

fn apply(path: &Path, pricing: &PricingArgs, out: Option<&Path>) -> Result<()> {
    let mut report = read_report(path)?;
    let choice = pricing.choice();
    let catalog = choice.catalog()?;
    let p = choice.pricing(&catalog, true)?;
    let hardware = report.hardware.clone();
    for e in &mut report.results {
        let cost = results::cost::price(e, &hardware, Some(&p));
        if let (None, Some(reason)) = (cost.usd_total, &cost.reason) {
            return Err(bad_input(format!(
                "cannot price {}: {reason}",
                e.pair_key()
            )));
        }
        e.cost = Some(cost);
    }
    match out {
        Some(o) => {
            write_report(o, &report)?;
            eprintln!(
                "priced with {} ({}, {}): {}",
                catalog.label(),
                p.tier,
                p.region,
                o.display()
            );
        }
        None => print!(
            "{}",
            results::render::render(&report, results::render::Format::Json)
        ),
    }
    Ok(())
}

fn export(paths: &[PathBuf], format: ExportFormat, out: &Path) -> Result<()> {
    let reports = paths
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let (doc, skipped, name) = match format {
        ExportFormat::Litellm => {
            let (d, s) = results::export::litellm(&reports);
            (d, s, "litellm")
        }
        ExportFormat::Routing => {
            let (d, s) = results::export::routing(&reports);
            (d, s, "routing")
        }
    };
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    let entries = match (&doc, format) {
        (serde_json::Value::Object(m), ExportFormat::Litellm) => m.len(),
        (v, _) => v["routes"].as_array().map_or(0, Vec::len),
    };
    if entries == 0 {
        return Err(bad_input(format!(
            "nothing to export: no priced result in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| anyhow!("serializing: {e}"))?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| bad_input(format!("--out {}: {e}", out.display())))?;
    println!("{entries} {name} entries: {}", out.display());
    Ok(())
}
