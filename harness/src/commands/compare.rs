//! `infermeter compare BASE CAND`: deltas per result and registry metric, a verdict
//! per gated metric; exit 1 when a gated metric regressed beyond its threshold.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::Args;
use results::Report;
use results::compare::{Gate, compare, render};

use super::args::TableFormat;
use crate::error::bad_input;
use crate::files::read_report;

/// `compare` arguments.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Baseline: a report.json, or a directory of repeated runs' reports.
    pub base: PathBuf,
    /// Candidate: a report.json, or a directory of repeated runs' reports.
    pub cand: PathBuf,
    /// Regression threshold: PCT for every gated metric, or METRIC=PCT
    /// (repeatable; percentage points for percent metrics such as error_rate_pct).
    #[arg(long)]
    pub threshold: Vec<String>,
    /// Metrics to gate, comma-separated (default: the registry's gated metrics:
    /// ttft_p99_ms, tpot_p99_ms, e2e_p50_ms, output_tokens_per_s,
    /// usd_per_m_blended_workload, tokens_per_j_output, error_rate_pct).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

/// Reads the reports at `path`: a report file, or a directory whose `report.json`
/// files (its own and its subdirectories', one level down) are repeats of one run.
pub fn read_side(path: &Path) -> Result<Vec<Report>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = Vec::new();
        if path.join("report.json").is_file() {
            files.push(path.join("report.json"));
        }
        let entries =
            std::fs::read_dir(path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        for d in entries.flatten() {
            let f = d.path().join("report.json");
            if f.is_file() {
                files.push(f);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(bad_input(format!(
                "{}: no report.json in it or in its subdirectories",
                path.display()
            )));
        }
        files.iter().map(|f| read_report(f)).collect()
    } else {
        Ok(vec![read_report(path)?])
    }
}

/// Parses `--threshold` values: `PCT` for every gated metric, or `METRIC=PCT`.
pub fn gate(metrics: &[String], thresholds: &[String]) -> Result<Gate> {
    let mut g = Gate {
        metrics: metrics.to_vec(),
        ..Gate::default()
    };
    for t in thresholds {
        let parse = |v: &str| {
            v.trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    bad_input(format!(
                        "--threshold {t}: expected PCT or METRIC=PCT with PCT a number >= 0"
                    ))
                })
        };
        match t.split_once('=') {
            Some((m, v)) => {
                g.thresholds.insert(m.trim().to_string(), parse(v)?);
            }
            None => g.threshold_all = Some(parse(t)?),
        }
    }
    g.check().map_err(bad_input)?;
    Ok(g)
}

/// Runs `infermeter compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    let gate = gate(&args.metrics, &args.threshold)?;
    let (b, c) = (read_side(&args.base)?, read_side(&args.cand)?);
    let cmp = compare(&b, &c, &gate);
    match args.format {
        TableFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&cmp).map_err(|e| anyhow!("serializing: {e}"))?
        ),
        TableFormat::Md => print!("{}", render(&cmp, true)),
        TableFormat::Table => print!("{}", render(&cmp, false)),
    }
    for w in &cmp.not_comparable {
        eprintln!("WARNING: NOT COMPARABLE: {w}");
    }
    if cmp.rows.is_empty() {
        return Err(bad_input(format!(
            "{} and {} have no result in common (same target, workload and load point)",
            args.base.display(),
            args.cand.display()
        )));
    }
    let regressed = cmp.regressions();
    if regressed.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = regressed
        .iter()
        .map(|r| {
            let unit = r.unit_suffix();
            format!(
                "{} {:+.2}{unit} (threshold {}{unit}) in {}",
                r.metric,
                r.delta.unwrap_or(0.0),
                r.threshold,
                r.result
            )
        })
        .collect();
    Err(anyhow!("regression: {}", list.join("; ")))
}
