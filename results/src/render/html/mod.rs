//! The HTML report: one self-contained page (no network at view time) from a template
//! (`results/templates/report.html`, minijinja), with the summary table, latency CDFs
//! per family, throughput against interactivity with its Pareto front and SLO line,
//! cost per million tokens, energy per token, and what was not measured. Charts are
//! SVG drawn by plotters ([`charts`]); a few lines of script only count the charts that
//! drew data (`data-charts`), their data marks (`data-marks`) and script errors
//! (`data-errors`), which the browser test reads.

pub mod charts;
pub mod plan;

use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::metrics::FAMILIES;
use crate::render::summary;
use crate::report::{PartUnit, Report, ResultEntry};
use charts::{MISS, PASS, Point, colour, css};

/// The page's template.
pub const TEMPLATE: &str = include_str!("../../../templates/report.html");

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}\
td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}th{background:#f4f4f4}\
figure{display:inline-block;margin:8px 16px 16px 0;vertical-align:top}figcaption{font-weight:600;margin-bottom:4px}\
.legend{font-size:11px;max-width:640px}.legend span{margin-right:12px;display:inline-block}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
.missing{color:#8a6d3b;font-size:13px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}";

/// Counts, per chart, the elements drawn in a palette colour (data marks).
fn script() -> String {
    let colours: Vec<String> = charts::PALETTE
        .iter()
        .map(|c| format!("{:02X}{:02X}{:02X}", c.0, c.1, c.2))
        .collect();
    format!(
        "(function(){{var errors=0;window.addEventListener('error',function(){{errors++;document.body.dataset.errors=errors;}});\
var ce=console.error;console.error=function(){{errors++;document.body.dataset.errors=errors;ce.apply(console,arguments);}};\
var data=['{}'];var sel=data.map(function(c){{return '[stroke=\"#'+c+'\"],[fill=\"#'+c+'\"]';}}).join(',');\
var drawn=0,marks=0;document.querySelectorAll('svg.chart').forEach(function(c){{var m=c.querySelectorAll(sel).length;marks+=m;if(m>0)drawn++;}});\
document.body.dataset.charts=drawn;document.body.dataset.marks=marks;document.body.dataset.errors=errors;}})();",
        colours.join("','")
    )
}

fn label(e: &ResultEntry) -> String {
    e.pair_key()
}

/// One chart, or why there is none.
#[derive(Serialize)]
struct Figure {
    title: String,
    svg: Option<Value>,
    empty: String,
    legend: Vec<(String, String)>,
    note: Option<String>,
    missing: Vec<String>,
}

impl Figure {
    fn drawn(title: &str, svg: Result<String, String>, legend: Vec<(String, String)>) -> Self {
        match svg {
            Ok(s) => Self {
                title: title.into(),
                svg: Some(Value::from_safe_string(s)),
                empty: String::new(),
                legend,
                note: None,
                missing: Vec::new(),
            },
            Err(e) => Self::empty(title, &format!("the chart could not be drawn: {e}")),
        }
    }

    fn empty(title: &str, why: &str) -> Self {
        Self {
            title: title.into(),
            svg: None,
            empty: why.into(),
            legend: Vec::new(),
            note: None,
            missing: Vec::new(),
        }
    }
}

/// A section of the page.
#[derive(Serialize)]
struct Section {
    title: String,
    figures: Vec<Figure>,
    paragraphs: Vec<String>,
}

/// Output tokens per second per billed unit: per GPU for GPU targets, per host
/// otherwise.
fn per_unit(e: &ResultEntry) -> (f64, &'static str) {
    match e.cost.as_ref().and_then(|c| c.hardware.as_ref()) {
        Some(h) if h.unit == PartUnit::Gpu => (
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

fn latency(r: &Report) -> Section {
    let names: Vec<String> = r.results.iter().map(label).collect();
    let figures = FAMILIES
        .iter()
        .map(|f| {
            let id = format!("{}_ms", f.name);
            let curves: Vec<(String, Vec<(f64, f64)>)> = names
                .iter()
                .zip(&r.results)
                .filter_map(|(n, e)| {
                    let h = (f.summary)(e).histogram(&id).ok()?;
                    (!h.is_empty()).then(|| (n.clone(), h.cdf_ms()))
                })
                .collect();
            if curves.is_empty() {
                return Figure::empty(f.title, "no values recorded.");
            }
            let legend = curves
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (css(colour(i)), n.clone()))
                .collect();
            Figure::drawn(f.title, charts::cdf(&id, f.title, &curves), legend)
        })
        .collect();
    Section {
        title: "Latency distributions".into(),
        figures,
        paragraphs: Vec::new(),
    }
}

fn throughput(r: &Report) -> Section {
    let title = "Throughput vs interactivity (Pareto front dashed)";
    let pts: Vec<(f64, f64, &ResultEntry)> = r
        .results
        .iter()
        .filter_map(|e| Some((e.throughput.output_tokens_per_s_per_user?, per_unit(e).0, e)))
        .filter(|(x, y, _)| x.is_finite() && y.is_finite())
        .collect();
    let figure = if pts.is_empty() {
        Figure::empty(
            "Throughput vs interactivity",
            "no result had 2+ output tokens per request.",
        )
    } else {
        let slo_x = pts.iter().find_map(|p| {
            p.2.slo
                .as_ref()
                .and_then(|s| s.objectives.iter().find(|(k, _)| k.starts_with("tpot_")))
                .map(|(_, v)| 1000.0 / v)
                .filter(|x| x.is_finite())
        });
        let points: Vec<Point> = pts
            .iter()
            .enumerate()
            .map(|(i, (x, y, e))| Point {
                x: *x,
                y: *y,
                colour: match e.slo.as_ref().map(|s| s.pass) {
                    Some(true) => PASS,
                    Some(false) => MISS,
                    None => colour(i),
                },
            })
            .collect();
        let front = pareto_front(&pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
        let legend = pts
            .iter()
            .zip(&points)
            .map(|((_, _, e), p)| (css(p.colour), label(e)))
            .collect();
        let mut f = Figure::drawn(
            title,
            charts::throughput(
                "throughput",
                title,
                per_unit(pts[0].2).1,
                &points,
                &front,
                slo_x,
            ),
            legend,
        );
        f.note = Some("green: met its SLO, red: missed it, other colours: no SLO given".into());
        f
    };
    Section {
        title: "Throughput and interactivity".into(),
        figures: vec![figure],
        paragraphs: Vec::new(),
    }
}

/// Horizontal bars of one figure per result, the results without it listed with
/// their reason.
fn bar_figure(
    id: &str,
    title: &str,
    unit: &str,
    values: Vec<(String, Option<f64>, Option<String>)>,
) -> Figure {
    let have: Vec<(String, f64)> = values
        .iter()
        .filter_map(|(n, v, _)| v.filter(|v| v.is_finite()).map(|v| (n.clone(), v)))
        .collect();
    let mut f = if have.is_empty() {
        Figure::empty(title, "not measured.")
    } else {
        let legend = have
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (css(colour(i)), n.clone()))
            .collect();
        Figure::drawn(title, charts::bars(id, title, unit, &have), legend)
    };
    f.missing = values
        .into_iter()
        .filter(|(_, v, _)| v.is_none())
        .map(|(n, _, why)| format!("{n}: {}", why.as_deref().unwrap_or("not measured")))
        .collect();
    f
}

/// The report as one self-contained HTML page.
pub fn render(r: &Report) -> String {
    let title = format!("infermeter report {}", r.run.id);
    let gpus: Vec<&str> = r.hardware.gpus.iter().map(|g| g.name.as_str()).collect();
    let meta = vec![
        ("status", r.run.status.as_str().to_string()),
        ("started", r.run.started_at.clone()),
        ("finished", r.run.finished_at.clone()),
        (
            "tool",
            format!(
                "infermeter {} ({})",
                r.tool.version,
                r.tool.git_sha.as_deref().unwrap_or("unknown commit")
            ),
        ),
        ("schema", format!("{} {}", r.schema, r.schema_version)),
        (
            "hardware",
            format!(
                "{} ({} logical CPUs, {:.1} GiB){}",
                r.hardware.cpu_model,
                r.hardware.cpu_logical_cores,
                r.hardware.memory_bytes as f64 / (1u64 << 30) as f64,
                if gpus.is_empty() {
                    ", no GPU".to_string()
                } else {
                    format!(", GPUs: {}", gpus.join(", "))
                }
            ),
        ),
        ("seed", r.run.seed.to_string()),
    ];
    let notes: Vec<String> = r
        .results
        .iter()
        .flat_map(|e| e.notes.iter().map(move |n| format!("{}: {n}", label(e))))
        .collect();
    let cost = bar_figure(
        "usd_per_m",
        "Cost per million tokens of each workload's mix (USD)",
        "USD/M",
        r.results
            .iter()
            .map(|e| {
                let c = e.cost.as_ref();
                (
                    label(e),
                    c.and_then(|c| c.usd_per_m_blended_workload),
                    c.and_then(|c| c.reason.clone()),
                )
            })
            .collect(),
    );
    let energy = bar_figure(
        "j_per_token",
        "Energy per output token (J)",
        "J",
        r.results
            .iter()
            .map(|e| {
                let x = e.energy.as_ref();
                (
                    label(e),
                    x.and_then(|x| x.j_per_output_token),
                    x.and_then(|x| x.reason.clone()),
                )
            })
            .collect(),
    );
    let sections = vec![
        latency(r),
        throughput(r),
        Section {
            title: "Cost".into(),
            figures: vec![cost],
            paragraphs: Vec::new(),
        },
        Section {
            title: "Energy".into(),
            figures: vec![energy],
            paragraphs: vec![
                "Power time series: reports do not store power samples (only window statistics: average, peak and idle power); no chart.".into(),
            ],
        },
    ];
    page(
        "report",
        &title,
        &meta,
        &summary::header(),
        &summary::rows(r),
        &notes,
        &sections,
    )
}

/// The page of `what` (`report`, `plan`) from the template.
fn page(
    what: &str,
    title: &str,
    meta: &impl Serialize,
    header: &impl Serialize,
    rows: &impl Serialize,
    notes: &impl Serialize,
    sections: &[Section],
) -> String {
    let mut env = Environment::new();
    let page = env
        .add_template("report.html", TEMPLATE)
        .and_then(|()| env.get_template("report.html"))
        .and_then(|t| {
            t.render(context! {
                title,
                style => Value::from_safe_string(STYLE.to_string()),
                script => Value::from_safe_string(script()),
                meta,
                header,
                rows,
                notes,
                sections,
            })
        });
    match page {
        Ok(p) => p,
        // The template is the crate's own and its context typed: this cannot happen
        // with a built crate, and a test renders it; still, never a panic.
        Err(e) => format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>infermeter {what}</title></head><body><p>The {what} page could not be rendered: {}</p></body></html>\n",
            e.to_string().replace('<', "&lt;")
        ),
    }
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
}
