//! The lines under a summary table: each result's confidence intervals and steady
//! state, failures by class, notes, cost and energy, and the run-to-run spread of
//! repeated load points.

use std::fmt::Write as _;

use super::summary::num;
use crate::metrics::columns;
use crate::report::{PartUnit, Report, ResultEntry};

/// `[low, high]` at the precision of the table.
fn interval(i: [f64; 2]) -> String {
    format!("[{}, {}]", num(Some(i[0])), num(Some(i[1])))
}

/// A result's confidence intervals (every summary column that has one) and steady
/// state, one line each.
fn intervals(label: &str, r: &ResultEntry) -> String {
    let parts: Vec<String> = columns()
        .filter_map(|m| Some(format!("{} {}", m.column?, interval((m.ci95)(r)?))))
        .collect();
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

/// A result's server metrics in one line: who, how many scrapes, the queue, the
/// cache, and whether the client and the server agree.
fn server_line(label: &str, s: &crate::report::ServerMetrics) -> String {
    let mut parts = vec![format!(
        "{} ({} scrapes over {} s)",
        s.server,
        s.scrapes,
        num(Some(s.window_s))
    )];
    if let Some(g) = &s.requests_running {
        parts.push(format!(
            "running mean {} max {}",
            num(Some(g.mean)),
            num(Some(g.max))
        ));
    }
    if let Some(g) = &s.requests_waiting {
        parts.push(format!("waiting max {}", num(Some(g.max))));
    }
    if let Some(h) = s.prefix_cache_hit_ratio {
        parts.push(format!("prefix-cache hits {}", num(Some(h))));
    }
    let rec = &s.reconciliation;
    if let Some(gap) = rec.ttft_client_minus_server_ms {
        parts.push(format!("client TTFT - server TTFT {} ms", num(Some(gap))));
    }
    if let Some(d) = rec.output_tokens_diff_pct {
        parts.push(format!("output tokens server vs client {d:+.1}%"));
    }
    parts.push(match rec.agree {
        Some(true) => "agree".into(),
        Some(false) => "DISAGREE".into(),
        None => "nothing to reconcile".into(),
    });
    format!("{label}: server {}\n", parts.join(", "))
}

/// Each repeated load point's run-to-run spread, one line per point.
fn spreads(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.repeat_spread {
        let shown: Vec<String> = columns()
            .filter_map(|m| {
                let x = s.metrics.get(m.name)?;
                Some(format!(
                    "{} {} ± {}{}",
                    m.name,
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

/// The lines under the summary: per result its intervals, failures by class, notes,
/// cost and energy; then each repeated load point's run-to-run spread.
pub fn lines(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        let repeat = r.repeat.map_or(String::new(), |p| {
            format!(" / repeat {}/{}", p.index, p.count)
        });
        let label = format!("{} / {}{repeat}", r.workload.name, r.load_label());
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
                                PartUnit::Gpu => "GPU",
                                PartUnit::Vcpu => "vCPU",
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
        if let Some(s) = &r.server {
            let _ = write!(out, "{}", server_line(&label, s));
        }
        if let Some(s) = r.saturation.as_ref().filter(|s| s.oversaturated) {
            let _ = writeln!(
                out,
                "{label}: over-saturated: TTFT from the intended send {} -> {} ms, in flight {} -> {} (first to last third)",
                num(Some(s.ttft_first_third_ms)),
                num(Some(s.ttft_last_third_ms)),
                num(Some(s.in_flight_first_third)),
                num(Some(s.in_flight_last_third))
            );
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
