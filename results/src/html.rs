//! The HTML report: one self-contained page (no network at view time) with the summary
//! table, latency CDFs per metric, throughput against interactivity with its Pareto
//! front and SLO line, cost per million tokens, energy per token, and what was not
//! measured. Charts are inline SVG drawn here; a few lines of script only count what
//! drew (`data-charts`, `data-marks`) and record script errors (`data-errors`), which
//! the browser test reads.

use std::fmt::Write as _;

use crate::merge::pair_key as label;
use crate::render::{HEADERS, cells, summary_rows};
use crate::{LatencySummary, Report, ResultEntry};

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 640.0;
const H: f64 = 300.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 16.0;
const PAD_B: f64 = 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else if a >= 0.0001 {
        format!("{v:.5}")
    } else {
        format!("{v:.2e}")
    }
}

/// Axis mapping, linear or log10.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Self {
        let vs: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let mut lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            (lo, hi) = (if log { 1.0 } else { 0.0 }, 1.0);
        }
        if from_zero && !log {
            lo = lo.min(0.0);
        }
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil().max(lo.log10() + 1.0));
        } else if hi - lo < 1e-12 {
            hi = lo + lo.abs().max(1.0);
        } else {
            hi += (hi - lo) * 0.05;
        }
        Self { lo, hi, log }
    }

    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.log10() as i32, self.hi.log10() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=4)
                .map(|i| self.lo + (self.hi - self.lo) * f64::from(i) / 4.0)
                .collect()
        }
    }
}

fn x_px(a: &Axis, v: f64) -> f64 {
    PAD_L + a.frac(v) * (W - PAD_L - PAD_R)
}

fn y_px(a: &Axis, v: f64) -> f64 {
    H - PAD_B - a.frac(v) * (H - PAD_T - PAD_B)
}

fn frame(out: &mut String, id: &str, title: &str, xa: &Axis, ya: &Axis, xl: &str, yl: &str) {
    let _ = write!(
        out,
        r#"<figure><figcaption>{}</figcaption><svg class="chart" id="{id}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    let _ = write!(
        out,
        r##"<rect x="{PAD_L}" y="{PAD_T}" width="{}" height="{}" fill="#fff" stroke="#999"/>"##,
        W - PAD_L - PAD_R,
        H - PAD_T - PAD_B
    );
    for t in xa.ticks() {
        let x = x_px(xa, t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{PAD_T}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            H - PAD_B,
            H - PAD_B + 14.0,
            fmt_num(t)
        );
    }
    for t in ya.ticks() {
        let y = y_px(ya, t);
        let _ = write!(
            out,
            r##"<line x1="{PAD_L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - PAD_R,
            PAD_L - 4.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        (PAD_L + W - PAD_R) / 2.0,
        H - 6.0,
        esc(xl),
        (PAD_T + H - PAD_B) / 2.0,
        (PAD_T + H - PAD_B) / 2.0,
        esc(yl)
    );
}

fn legend(out: &mut String, names: &[String]) {
    out.push_str(r#"<div class="legend">"#);
    for (i, n) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            PALETTE[i % PALETTE.len()],
            esc(n)
        );
    }
    out.push_str("</div>");
}

/// A CDF chart of one latency metric, one line per result.
fn cdf_chart(out: &mut String, id: &str, title: &str, series: &[(String, &LatencySummary)]) {
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .filter_map(|(n, s)| {
            let h = s.histogram(id).ok()?;
            (!h.is_empty()).then(|| (n.clone(), h.cdf_ms()))
        })
        .collect();
    if curves.is_empty() {
        let _ = write!(
            out,
            r#"<p class="missing">{}: no values recorded.</p>"#,
            esc(title)
        );
        return;
    }
    let xa = Axis::new(
        curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)),
        true,
        false,
    );
    let ya = Axis {
        lo: 0.0,
        hi: 1.0,
        log: false,
    };
    frame(
        out,
        id,
        title,
        &xa,
        &ya,
        "milliseconds (log scale)",
        "fraction of values at or below",
    );
    for (i, (n, c)) in curves.iter().enumerate() {
        let mut d = String::new();
        let mut prev = 0.0;
        for (k, &(x, q)) in c.iter().enumerate() {
            let px = x_px(&xa, x);
            if k == 0 {
                let _ = write!(d, "M{px:.1},{:.1}", y_px(&ya, 0.0));
            }
            let _ = write!(
                d,
                " L{px:.1},{:.1} L{px:.1},{:.1}",
                y_px(&ya, prev),
                y_px(&ya, q)
            );
            prev = q;
        }
        let _ = write!(
            out,
            r#"<path class="mark" d="{d}" fill="none" stroke="{}" stroke-width="2"><title>{}</title></path>"#,
            PALETTE[i % PALETTE.len()],
            esc(n)
        );
    }
    out.push_str("</svg>");
    legend(
        out,
        &curves.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    );
    out.push_str("</figure>");
}

/// Output tokens per second per billed unit: per GPU for GPU targets, per host
/// otherwise.
fn per_unit(e: &ResultEntry) -> (f64, &'static str) {
    match e.cost.as_ref().and_then(|c| c.hardware.as_ref()) {
        Some(h) if h.unit == crate::catalog::PartUnit::Gpu => (
            e.throughput.output_tokens_per_s / f64::from(h.units.max(1)),
            "output tokens/s per GPU",
        ),
        _ => (
            e.throughput.output_tokens_per_s,
            "output tokens/s per target",
        ),
    }
}

/// The points not dominated in both interactivity and throughput.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut front: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(x, y)| {
            !points
                .iter()
                .any(|&(a, b)| a >= x && b >= y && (a > x || b > y))
        })
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup();
    front
}

fn throughput_chart(out: &mut String, r: &Report) {
    let pts: Vec<(f64, f64, &ResultEntry)> = r
        .results
        .iter()
        .filter_map(|e| {
            let x = e.throughput.output_tokens_per_s_per_user?;
            Some((x, per_unit(e).0, e))
        })
        .collect();
    if pts.is_empty() {
        out.push_str(r#"<p class="missing">Throughput vs interactivity: no result had 2+ output tokens per request.</p>"#);
        return;
    }
    let ylabel = per_unit(pts[0].2).1;
    let tpot_slo: Vec<f64> = pts
        .iter()
        .filter_map(|p| {
            p.2.slo
                .as_ref()
                .and_then(|s| s.objectives.iter().find(|(k, _)| k.starts_with("tpot_")))
                .map(|(_, v)| 1000.0 / v)
        })
        .collect();
    let xa = Axis::new(
        pts.iter().map(|p| p.0).chain(tpot_slo.iter().copied()),
        false,
        true,
    );
    let ya = Axis::new(pts.iter().map(|p| p.1), false, true);
    frame(
        out,
        "throughput",
        "Throughput vs interactivity (Pareto front dashed)",
        &xa,
        &ya,
        "interactivity: output tokens/s per user (1000 / median TPOT)",
        ylabel,
    );
    let front = pareto_front(&pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
    if front.len() > 1 {
        let d: Vec<String> = front
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_px(&xa, x), y_px(&ya, y)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline class="mark" points="{}" fill="none" stroke="#555" stroke-dasharray="5,4" stroke-width="1.5"/>"##,
            d.join(" ")
        );
    }
    if let Some(x) = tpot_slo.first() {
        let px = x_px(&xa, *x);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" y1="{PAD_T}" x2="{px:.1}" y2="{}" stroke="#d62728" stroke-dasharray="2,3"/><text x="{:.1}" y="{}" font-size="11" fill="#d62728">TPOT SLO</text>"##,
            H - PAD_B,
            px + 3.0,
            PAD_T + 12.0
        );
    }
    for (i, (x, y, e)) in pts.iter().enumerate() {
        let fill = match e.slo.as_ref().map(|s| s.pass) {
            Some(true) => "#2ca02c",
            Some(false) => "#d62728",
            None => PALETTE[i % PALETTE.len()],
        };
        let _ = write!(
            out,
            r##"<circle class="mark" cx="{:.1}" cy="{:.1}" r="5" fill="{fill}" stroke="#222"><title>{}: {} tok/s/user, {} {}</title></circle>"##,
            x_px(&xa, *x),
            y_px(&ya, *y),
            esc(&label(e)),
            fmt_num(*x),
            fmt_num(*y),
            esc(ylabel)
        );
    }
    out.push_str("</svg>");
    out.push_str(r#"<div class="legend">green: met its SLO, red: missed it, other colours: no SLO given</div></figure>"#);
}

/// Horizontal bars, one per result with a value; the rest listed with their reason.
fn bar_chart(
    out: &mut String,
    id: &str,
    title: &str,
    unit: &str,
    bars: &[(String, Option<f64>, Option<String>)],
) {
    let have: Vec<(&String, f64)> = bars
        .iter()
        .filter_map(|(n, v, _)| v.map(|v| (n, v)))
        .collect();
    if have.is_empty() {
        let _ = write!(
            out,
            r#"<p class="missing">{}: not measured.</p>"#,
            esc(title)
        );
    } else {
        let row = 26.0;
        let h = PAD_T + row * have.len() as f64 + 30.0;
        let max = have.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-300);
        // Labels are as wide as the longest (about 6.2 px a character at 11 px), bars
        // get the chart's usual plotting width beside them.
        let longest = have.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
        let label_w = (longest as f64 * 6.2 + 12.0).max(120.0);
        let width = label_w + W - 300.0;
        let _ = write!(
            out,
            r#"<figure><figcaption>{}</figcaption><svg class="chart" id="{id}" viewBox="0 0 {width:.0} {h}" width="{width:.0}" height="{h}" role="img" aria-label="{}">"#,
            esc(title),
            esc(title)
        );
        for (i, (n, v)) in have.iter().enumerate() {
            let y = PAD_T + row * i as f64;
            let w = (v / max) * (width - label_w - 110.0);
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect class="mark" x="{label_w}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11">{} {}</text>"#,
                label_w - 6.0,
                y + 15.0,
                esc(n),
                w.max(1.0),
                row - 6.0,
                PALETTE[i % PALETTE.len()],
                esc(n),
                fmt_num(*v),
                esc(unit),
                label_w + w.max(1.0) + 4.0,
                y + 15.0,
                fmt_num(*v),
                esc(unit)
            );
        }
        out.push_str("</svg></figure>");
    }
    let missing: Vec<String> = bars
        .iter()
        .filter(|(_, v, _)| v.is_none())
        .map(|(n, _, why)| {
            format!(
                "{}: {}",
                esc(n),
                esc(why.as_deref().unwrap_or("not measured"))
            )
        })
        .collect();
    if !missing.is_empty() {
        let _ = write!(
            out,
            r#"<ul class="missing">{}</ul>"#,
            missing
                .iter()
                .map(|m| format!("<li>{m}</li>"))
                .collect::<String>()
        );
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}\
td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}th{background:#f4f4f4}\
figure{display:inline-block;margin:8px 16px 16px 0;vertical-align:top}figcaption{font-weight:600;margin-bottom:4px}\
.legend{font-size:11px;max-width:640px}.legend span{margin-right:12px;display:inline-block}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
.missing{color:#8a6d3b;font-size:13px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}";

const SCRIPT: &str = "(function(){var errors=0;window.addEventListener('error',function(){errors++;document.body.dataset.errors=errors;});\
var ce=console.error;console.error=function(){errors++;document.body.dataset.errors=errors;ce.apply(console,arguments);};\
var charts=document.querySelectorAll('svg.chart');var drawn=0,marks=0;charts.forEach(function(c){var m=c.querySelectorAll('.mark').length;marks+=m;if(m>0)drawn++;});\
document.body.dataset.charts=drawn;document.body.dataset.marks=marks;document.body.dataset.errors=errors;})();";

/// The report as one self-contained HTML page.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let title = format!("infermeter report {}", r.run.id);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>{STYLE}</style></head><body data-charts="0" data-errors="0"><h1>{}</h1>"#,
        esc(&title),
        esc(&title)
    );
    let gpus: Vec<String> = r.hardware.gpus.iter().map(|g| g.name.clone()).collect();
    let _ = write!(
        out,
        "<dl><dt>status</dt><dd>{:?}</dd><dt>started</dt><dd>{}</dd><dt>finished</dt><dd>{}</dd><dt>tool</dt><dd>infermeter {} ({})</dd><dt>schema</dt><dd>{} {}</dd><dt>hardware</dt><dd>{} ({} logical CPUs, {:.1} GiB){}</dd><dt>seed</dt><dd>{}</dd></dl>",
        r.run.status,
        esc(&r.run.started_at),
        esc(&r.run.finished_at),
        esc(&r.tool.version),
        esc(r.tool.git_sha.as_deref().unwrap_or("unknown commit")),
        esc(&r.schema),
        esc(&r.schema_version),
        esc(&r.hardware.cpu_model),
        r.hardware.cpu_logical_cores,
        r.hardware.memory_bytes as f64 / (1u64 << 30) as f64,
        if gpus.is_empty() {
            String::from(", no GPU")
        } else {
            format!(", GPUs: {}", esc(&gpus.join(", ")))
        },
        r.run.seed
    );

    out.push_str("<h2>Summary</h2><div class=\"scroll\"><table><thead><tr>");
    for h in HEADERS {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in summary_rows(r) {
        out.push_str("<tr>");
        for c in cells(&row) {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    let notes: Vec<String> = r
        .results
        .iter()
        .flat_map(|e| e.notes.iter().map(move |n| format!("{}: {n}", label(e))))
        .collect();
    if !notes.is_empty() {
        out.push_str("<h3>Notes</h3><ul>");
        for n in notes {
            let _ = write!(out, "<li>{}</li>", esc(&n));
        }
        out.push_str("</ul>");
    }

    out.push_str("<h2>Latency distributions</h2>");
    let names: Vec<String> = r.results.iter().map(label).collect();
    let metric = |f: fn(&ResultEntry) -> &LatencySummary| {
        names
            .iter()
            .cloned()
            .zip(r.results.iter().map(f))
            .collect::<Vec<_>>()
    };
    cdf_chart(
        &mut out,
        "ttft_ms",
        "TTFT: first token minus send (ms)",
        &metric(|e| &e.latency.ttft_ms),
    );
    cdf_chart(
        &mut out,
        "itl_ms",
        "ITL: gap between output tokens (ms)",
        &metric(|e| &e.latency.itl_ms),
    );
    cdf_chart(
        &mut out,
        "tpot_ms",
        "TPOT per request (ms)",
        &metric(|e| &e.latency.tpot_ms),
    );
    cdf_chart(
        &mut out,
        "e2e_ms",
        "E2E: completion minus send (ms)",
        &metric(|e| &e.latency.e2e_ms),
    );

    out.push_str("<h2>Throughput and interactivity</h2>");
    throughput_chart(&mut out, r);

    out.push_str("<h2>Cost</h2>");
    let cost: Vec<(String, Option<f64>, Option<String>)> = r
        .results
        .iter()
        .map(|e| {
            let c = e.cost.as_ref();
            (
                label(e),
                c.and_then(|c| c.usd_per_m_blended_workload),
                c.and_then(|c| c.reason.clone()),
            )
        })
        .collect();
    bar_chart(
        &mut out,
        "usd_per_m",
        "Cost per million tokens of each workload's mix (USD)",
        "USD/M",
        &cost,
    );

    out.push_str("<h2>Energy</h2>");
    let energy: Vec<(String, Option<f64>, Option<String>)> = r
        .results
        .iter()
        .map(|e| {
            let x = e.energy.as_ref();
            (
                label(e),
                x.and_then(|x| x.j_per_output_token),
                x.and_then(|x| x.reason.clone()),
            )
        })
        .collect();
    bar_chart(
        &mut out,
        "j_per_token",
        "Energy per output token (J)",
        "J",
        &energy,
    );
    out.push_str(r#"<p class="missing">Power time series: reports do not store power samples (only window statistics: average, peak and idle power); no chart.</p>"#);
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pareto_front_keeps_only_undominated_points() {
        let pts = [
            (10.0, 100.0),
            (20.0, 80.0),
            (15.0, 70.0),
            (30.0, 10.0),
            (5.0, 90.0),
        ];
        assert_eq!(
            pareto_front(&pts),
            vec![(10.0, 100.0), (20.0, 80.0), (30.0, 10.0)]
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
