//! Commands that work on saved reports, never on a target: `compare`, `merge`,
//! `prices apply`, `prices export`, `publish` and `history`.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use results::Report;
use results::compare::{Gate, compare, render};

use crate::cli::{PricingArgs, read_report};
use crate::error::bad_input;
use crate::output::write_report;

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

/// `compare BASE CAND`: prints the deltas; fails (exit 1) when a gated metric
/// regressed beyond its threshold.
pub fn compare_command(base: &Path, cand: &Path, gate: &Gate, format: &str) -> Result<()> {
    let (b, c) = (read_side(base)?, read_side(cand)?);
    let cmp = compare(&b, &c, gate);
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&cmp).map_err(|e| anyhow!("serializing: {e}"))?
        ),
        "md" => print!("{}", render(&cmp, true)),
        _ => print!("{}", render(&cmp, false)),
    }
    for w in &cmp.not_comparable {
        eprintln!("WARNING: NOT COMPARABLE: {w}");
    }
    if cmp.rows.is_empty() {
        return Err(bad_input(format!(
            "{} and {} have no result in common (same target, workload and load point)",
            base.display(),
            cand.display()
        )));
    }
    let regressed = cmp.regressions();
    if regressed.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = regressed
        .iter()
        .map(|r| {
            let unit = if r.metric == "error_rate_pct" {
                " pt"
            } else {
                "%"
            };
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

/// `merge REPORT... --out FILE`.
pub fn merge_command(paths: &[PathBuf], out: &Path) -> Result<()> {
    if paths.len() < 2 {
        return Err(bad_input("merge needs at least two reports"));
    }
    let reports = paths
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let merged = results::merge::merge(&reports, std::env::args().collect())
        .map_err(|e| bad_input(format!("cannot merge: {e}")))?;
    write_report(out, &merged)?;
    print!(
        "{}",
        results::render::render(&merged, results::render::Format::Table)
    );
    println!("merged report: {}", out.display());
    Ok(())
}

/// `prices apply REPORT`: the report priced again with a catalog, tier and region.
pub fn apply_command(path: &Path, pricing: &PricingArgs, out: Option<&Path>) -> Result<()> {
    let mut report = read_report(path)?;
    let catalog = pricing.catalog()?;
    let p = pricing.pricing(&catalog, true)?;
    let hardware = report.hardware.clone();
    for e in &mut report.results {
        let cost = results::cost::price(e, &hardware, Some(&p));
        if let (None, Some(reason)) = (cost.usd_total, &cost.reason) {
            return Err(bad_input(format!(
                "cannot price {}: {reason}",
                results::merge::pair_key(e)
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

/// `prices export REPORT... --format F --out FILE`.
pub fn export_command(paths: &[PathBuf], format: &str, out: &Path) -> Result<()> {
    let reports = paths
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>>>()?;
    let (doc, skipped) = match format {
        "litellm" => results::export::litellm(&reports),
        "routing" => results::export::routing(&reports),
        other => {
            return Err(bad_input(format!(
                "unknown export format `{other}` (formats: {})",
                results::export::FORMATS.join(", ")
            )));
        }
    };
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    let entries = match &doc {
        serde_json::Value::Object(m) if format == "litellm" => m.len(),
        v => v["routes"].as_array().map_or(0, Vec::len),
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
    println!("{entries} {format} entries: {}", out.display());
    Ok(())
}

/// `publish REPORT... --archive DIR`.
pub fn publish_command(paths: &[PathBuf], archive: &Path) -> Result<()> {
    let a = results::archive::Archive::at(archive);
    for p in paths {
        let report = read_report(p)?;
        let bytes = std::fs::read(p).map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
        let (sha, new) = a
            .publish(&bytes, &report)
            .map_err(|e| bad_input(format!("--archive {}: {e}", archive.display())))?;
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

/// `history --archive DIR --metric M [--filter TEXT]`.
pub fn history_command(
    archive: &Path,
    metric: &str,
    filter: &str,
    format: crate::cli::CompareFormat,
) -> Result<()> {
    let a = results::archive::Archive::at(archive);
    let points = results::archive::history(&a, metric, filter).map_err(|e| bad_input(e.0))?;
    if points.is_empty() {
        return Err(bad_input(format!(
            "--archive {}: no result matches `{filter}`",
            archive.display()
        )));
    }
    match format {
        crate::cli::CompareFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&points).map_err(|e| anyhow!("serializing: {e}"))?
        ),
        f => {
            let mut b = tabled::builder::Builder::default();
            b.push_record(["started_at", "run", "hardware", "result", metric]);
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
            if f == crate::cli::CompareFormat::Md {
                t.with(tabled::settings::Style::markdown());
            } else {
                t.with(tabled::settings::Style::rounded());
            }
            println!("{t}");
        }
    }
    Ok(())
}
