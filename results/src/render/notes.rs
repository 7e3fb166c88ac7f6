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

/// A result's quality section in one line.
fn quality_line(q: &crate::report::QualitySection) -> String {
    match (&q.fidelity, &q.reason) {
        (Some(f), _) => format!(
            "quality vs {}: KL mean {:.4} nats (p99 {:.4}), top-1 agreement {:.1}%, perplexity {} vs {} (ratio {:.3}) over {} tokens of {}{}",
            q.reference_precision,
            f.kl_mean_nats,
            f.kl_p99_nats,
            f.top1_agreement * 100.0,
            num(Some(f.perplexity)),
            num(Some(f.reference_perplexity)),
            f.perplexity_ratio,
            f.tokens_scored,
            q.eval_text,
            if f.cached { " (cached)" } else { "" }
        ),
        (None, reason) => format!(
            "quality not measured: {}",
            reason.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// A result's verification in one line: tasks verified with the interval, calls,
/// failures by kind, and the cost and energy per verified task.
fn verification_line(
    r: &crate::report::ResultEntry,
    v: &crate::report::VerificationStats,
) -> String {
    let failures: Vec<String> = v
        .failures
        .iter()
        .map(|(k, n)| format!("{} {n}", k.as_str()))
        .collect();
    let usd = r.cost.as_ref().and_then(|c| c.usd_per_verified_task);
    let j = r.energy.as_ref().and_then(|e| e.j_per_verified_task);
    let mut line = format!(
        "verified {}/{} tasks ({:.1}%, 95% CI {:.1}-{:.1}%), {}/{} calls passed",
        v.tasks_verified,
        v.tasks_checked,
        v.success_rate * 100.0,
        v.success_rate_ci95[0] * 100.0,
        v.success_rate_ci95[1] * 100.0,
        v.calls_passed,
        v.calls_checked
    );
    if !failures.is_empty() {
        line.push_str(&format!("; failed: {}", failures.join(", ")));
    }
    match usd {
        Some(x) => line.push_str(&format!("; ${} per verified task", num(Some(x)))),
        None if v.tasks_verified == 0 => {
            line.push_str("; no task verified: no cost per verified task")
        }
        None => {}
    }
    if let Some(x) = j {
        line.push_str(&format!(", {} J per verified task", num(Some(x))));
    }
    line
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
        if let Some(q) = &r.quality {
            let _ = writeln!(out, "{label}: {}", quality_line(q));
        }
        if let Some(v) = &r.verification {
            let _ = writeln!(out, "{label}: {}", verification_line(r, v));
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
