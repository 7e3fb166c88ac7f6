//! Renderers of a report for people and spreadsheets: a terminal table, Markdown, CSV
//! and JSON. Every format shows the same columns, taken from [`summary_rows`].

use std::fmt::Write as _;

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::Report;
use crate::merge::load_label;

/// Output formats of `infermeter report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table for terminals.
    Table,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// Comma-separated values with a header row.
    Csv,
    /// The report itself, pretty-printed.
    Json,
    /// One self-contained HTML page with charts ([`crate::html`]).
    Html,
}

/// One row of the summary: one result entry.
#[derive(Clone, Debug, PartialEq, Tabled)]
pub struct SummaryRow {
    /// Target kind and model.
    #[tabled(rename = "target")]
    pub target: String,
    /// Workload name.
    #[tabled(rename = "workload")]
    pub workload: String,
    /// Load point.
    #[tabled(rename = "load")]
    pub load: String,
    /// ok/sent.
    #[tabled(rename = "ok/sent")]
    pub ok_sent: String,
    /// Median TTFT.
    #[tabled(rename = "ttft_p50_ms")]
    pub ttft_p50_ms: String,
    /// p99 TTFT.
    #[tabled(rename = "ttft_p99_ms")]
    pub ttft_p99_ms: String,
    /// Median TPOT.
    #[tabled(rename = "tpot_p50_ms")]
    pub tpot_p50_ms: String,
    /// p99 ITL.
    #[tabled(rename = "itl_p99_ms")]
    pub itl_p99_ms: String,
    /// Median E2E.
    #[tabled(rename = "e2e_p50_ms")]
    pub e2e_p50_ms: String,
    /// Output tokens per second.
    #[tabled(rename = "out_tok_per_s")]
    pub output_tokens_per_s: String,
    /// Output tokens per second per user.
    #[tabled(rename = "tok_per_s_per_user")]
    pub tokens_per_s_per_user: String,
    /// Median task time, for multi-call workloads.
    #[tabled(rename = "task_p50_ms")]
    pub task_p50_ms: String,
    /// A local engine's mean batch occupancy (0-1).
    #[tabled(rename = "batch_occupancy")]
    pub batch_occupancy: String,
    /// A local engine's prefix-cache hit ratio (0-1).
    #[tabled(rename = "cache_hit_ratio")]
    pub cache_hit_ratio: String,
    /// Cost per million tokens of the workload's mix, USD.
    #[tabled(rename = "usd_per_m_tokens")]
    pub usd_per_m_tokens: String,
    /// Output tokens per joule.
    #[tabled(rename = "tok_per_j_output")]
    pub tokens_per_j_output: String,
}

pub(crate) const HEADERS: [&str; 16] = [
    "target",
    "workload",
    "load",
    "ok/sent",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "itl_p99_ms",
    "e2e_p50_ms",
    "out_tok_per_s",
    "tok_per_s_per_user",
    "task_p50_ms",
    "batch_occupancy",
    "cache_hit_ratio",
    "usd_per_m_tokens",
    "tok_per_j_output",
];

fn num(x: Option<f64>) -> String {
    match x {
        None => "-".to_string(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The summary rows of a report, one per result entry.
pub fn summary_rows(report: &Report) -> Vec<SummaryRow> {
    report
        .results
        .iter()
        .map(|r| SummaryRow {
            target: r.target.label(),
            workload: r.workload.name.clone(),
            load: load_label(r),
            ok_sent: format!("{}/{}", r.requests.ok, r.requests.sent),
            ttft_p50_ms: num(r.latency.ttft_ms.p50),
            ttft_p99_ms: num(r.latency.ttft_ms.p99),
            tpot_p50_ms: num(r.latency.tpot_ms.p50),
            itl_p99_ms: num(r.latency.itl_ms.p99),
            e2e_p50_ms: num(r.latency.e2e_ms.p50),
            output_tokens_per_s: num(Some(r.throughput.output_tokens_per_s)),
            tokens_per_s_per_user: num(r.throughput.output_tokens_per_s_per_user),
            task_p50_ms: num(r.tasks.as_ref().and_then(|t| t.task_ms.p50)),
            batch_occupancy: num(r.engine.as_ref().map(|e| e.mean_batch_occupancy)),
            cache_hit_ratio: num(r.engine.as_ref().and_then(|e| e.cache_hit_ratio)),
            usd_per_m_tokens: usd(r.cost.as_ref().and_then(|c| c.usd_per_m_blended_workload)),
            tokens_per_j_output: num(r.energy.as_ref().and_then(|e| e.tokens_per_j_output)),
        })
        .collect()
}

/// Dollars with four significant digits (cents to micro-dollars).
fn usd(x: Option<f64>) -> String {
    match x {
        None => "-".to_string(),
        Some(v) if v >= 1.0 || v <= 0.0 => format!("{v:.2}"),
        Some(v) => format!(
            "{v:.*}",
            (3 - v.log10().floor() as i32).clamp(2, 12) as usize
        ),
    }
}

pub(crate) fn cells(row: &SummaryRow) -> [&str; 16] {
    [
        &row.target,
        &row.workload,
        &row.load,
        &row.ok_sent,
        &row.ttft_p50_ms,
        &row.ttft_p99_ms,
        &row.tpot_p50_ms,
        &row.itl_p99_ms,
        &row.e2e_p50_ms,
        &row.output_tokens_per_s,
        &row.tokens_per_s_per_user,
        &row.task_p50_ms,
        &row.batch_occupancy,
        &row.cache_hit_ratio,
        &row.usd_per_m_tokens,
        &row.tokens_per_j_output,
    ]
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Renders a report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    let rows = summary_rows(report);
    let mut out = String::new();
    match format {
        Format::Json => {
            out = serde_json::to_string_pretty(report).expect("a report serializes");
            out.push('\n');
        }
        Format::Table => {
            out = Table::new(&rows).with(Style::rounded()).to_string();
            out.push('\n');
            out.push_str(&notes(report));
        }
        Format::Markdown => {
            let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
            for row in &rows {
                let _ = writeln!(out, "| {} |", cells(row).join(" | ").replace('\n', " "));
            }
            out.push_str(&notes(report));
        }
        Format::Html => out = crate::html::render(report),
        Format::Csv => {
            let _ = writeln!(out, "{}", HEADERS.join(","));
            for row in &rows {
                let line: Vec<String> = cells(row).iter().map(|c| csv_field(c)).collect();
                let _ = writeln!(out, "{}", line.join(","));
            }
        }
    }
    out
}

/// `[low, high]` at the precision of the table.
fn interval(i: [f64; 2]) -> String {
    format!("[{}, {}]", num(Some(i[0])), num(Some(i[1])))
}

/// A result's confidence intervals and steady state, one line each.
fn intervals(label: &str, r: &crate::ResultEntry) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &r.latency.ttft_ms.ci95 {
        parts.push(format!(
            "ttft_p50_ms {}, ttft_p99_ms {}",
            interval(c.p50),
            interval(c.p99)
        ));
    }
    if let Some(c) = &r.latency.itl_ms.ci95 {
        parts.push(format!("itl_p50_ms {}", interval(c.p50)));
    }
    if let Some(c) = &r.throughput.ci95 {
        parts.push(format!("out_tok_per_s {}", interval(c.output_tokens_per_s)));
    }
    let mut out = String::new();
    if !parts.is_empty() {
        let _ = writeln!(out, "{label}: ci95 {}", parts.join(", "));
    }
    if let Some(s) = &r.throughput.steady_state {
        let _ = writeln!(
            out,
            "{label}: steady state {}-{} s: {} req/s, {} out tok/s",
            num(Some(s.start_s)),
            num(Some(s.end_s)),
            num(Some(s.requests_per_s)),
            num(Some(s.output_tokens_per_s))
        );
    }
    out
}

/// Each repeated load point's run-to-run spread, one line per point.
fn spreads(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.repeat_spread {
        let shown: Vec<String> = [
            "ttft_p50_ms",
            "ttft_p99_ms",
            "itl_p50_ms",
            "e2e_p50_ms",
            "output_tokens_per_s",
        ]
        .iter()
        .filter_map(|m| {
            let x = s.metrics.get(*m)?;
            Some(format!(
                "{m} {} ± {}{}",
                num(Some(x.mean)),
                num(Some(x.sd)),
                x.cv_pct.map_or(String::new(), |c| format!(" (cv {c:.1}%)"))
            ))
        })
        .collect();
        let _ = writeln!(
            out,
            "{}: run-to-run over {} repeats (mean ± sd): {}",
            s.key,
            s.repeats,
            shown.join(", ")
        );
    }
    out
}

/// Failures by class and every result's notes, one line each.
fn notes(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        let repeat = r.repeat.map_or(String::new(), |p| {
            format!(" / repeat {}/{}", p.index, p.count)
        });
        let label = format!("{} / {}{repeat}", r.workload.name, load_label(r));
        let _ = write!(out, "{}", intervals(&label, r));
        if r.requests.failed > 0 {
            let classes: Vec<String> = r
                .requests
                .by_class
                .iter()
                .map(|(c, n)| format!("{}={n}", c.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "{label}: {} failed ({})",
                r.requests.failed,
                classes.join(", ")
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "{label}: {note}");
        }
        if let Some(c) = &r.cost {
            match (c.usd_total, &c.reason) {
                (Some(total), _) => {
                    let blended = c
                        .usd_per_m_blended_workload
                        .map_or(String::new(), |b| format!(", ${b:.4}/M tokens of this mix"));
                    let task = c
                        .usd_per_task
                        .map_or(String::new(), |t| format!(", ${t:.6} per task"));
                    let basis = match (&c.hardware, &c.rate_card) {
                        (Some(h), _) => format!(
                            "{} {} x ${}/h: {}, {}, {}, catalog {}",
                            h.units,
                            match h.unit {
                                crate::catalog::PartUnit::Gpu => "GPU",
                                crate::catalog::PartUnit::Vcpu => "vCPU",
                            },
                            h.usd_per_unit_hour,
                            h.part,
                            h.tier,
                            h.region,
                            h.catalog
                        ),
                        _ => "rate card".to_string(),
                    };
                    let _ = writeln!(out, "{label}: cost ${total:.6}{blended}{task} ({basis})");
                }
                (None, Some(reason)) => {
                    let _ = writeln!(out, "{label}: cost not priced: {reason}");
                }
                (None, None) => {}
            }
        }
        if let Some(e) = &r.energy {
            match (e.energy_j, &e.reason) {
                (Some(j), _) => {
                    let per = e
                        .tokens_per_j_output
                        .map_or(String::new(), |t| format!(", {t:.2} output tokens/J"));
                    let _ = writeln!(
                        out,
                        "{label}: energy {j:.1} J over {:.1} s{per}",
                        e.window_s.unwrap_or(0.0)
                    );
                }
                (None, Some(reason)) => {
                    let _ = writeln!(out, "{label}: energy not measured: {reason}");
                }
                (None, None) => {}
            }
            for flag in &e.flags {
                let _ = writeln!(out, "{label}: WARNING energy: {flag}");
            }
        }
    }
    out.push_str(&spreads(report));
    out
}
