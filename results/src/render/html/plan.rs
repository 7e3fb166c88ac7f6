//! The plan as one self-contained HTML page (`infermeter plan --html FILE`): the
//! report page's template and chart code, with the candidates' projected throughput
//! against interactivity (one colour per candidate, the objective's TPOT as a line),
//! the monthly cost of each carrying candidate per traffic level, the scenarios and the
//! sensitivity table.

use super::charts::{self, Point, colour, css};
use super::{Figure, Section, page};
use crate::plan::doc::{CandidateKind, PlanDoc};

fn money(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// Renders `doc`.
pub fn render_plan(doc: &PlanDoc) -> String {
    let title = format!(
        "infermeter plan: {} {} for {}",
        doc.model, doc.precision, doc.workload.name
    );
    let meta = vec![
        ("tool", format!("infermeter {}", doc.tool_version)),
        ("schema", format!("{} {}", doc.schema, doc.schema_version)),
        ("hardware catalog", doc.hardware_catalog.clone()),
        (
            "price catalog",
            format!("{} ({}, {})", doc.price_catalog, doc.tier, doc.region),
        ),
        (
            "requests",
            format!(
                "{:.0} prompt tokens (p99 {:.0}), {:.0} output, {:.0}% cached, {:.1} per task; {}",
                doc.workload.input_tokens_mean,
                doc.workload.input_tokens_p99,
                doc.workload.output_tokens_mean,
                doc.workload.cached_fraction * 100.0,
                doc.workload.calls_per_task,
                doc.workload.source
            ),
        ),
        (
            "objective",
            doc.slo.as_ref().map_or("none".into(), |s| {
                format!(
                    "p99 TTFT <= {} ms, TPOT <= {} ms",
                    s.ttft_p99_ms.map_or("-".into(), |v| v.to_string()),
                    s.tpot_p99_ms.map_or("-".into(), |v| v.to_string())
                )
            }),
        ),
        (
            "traffic at 1x",
            format!("{:.3} requests/s", doc.traffic.requests_per_s),
        ),
    ];
    let header: Vec<String> = [
        "level",
        "candidate",
        "figures",
        "units",
        "sessions/unit",
        "TTFT p99 ms",
        "TPOT ms",
        "USD/month",
        "USD/M in",
        "USD/M out",
        "USD/M cached",
        "USD/task",
        "out tok/J",
        "note",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = Vec::new();
    for (i, lvl) in doc.levels.iter().enumerate() {
        for c in &doc.candidates {
            let l = &c.levels[i];
            let op = c.operating_point.as_ref();
            rows.push(vec![
                format!("{}x", lvl.multiplier),
                c.name.clone(),
                match (c.projected, c.calibrated) {
                    (false, _) => "measured".into(),
                    (true, true) => format!(
                        "projected, calibrated{}",
                        c.error_band
                            .map_or(String::new(), |b| format!(" ±{:.0}%", b * 100.0))
                    ),
                    (true, false) => "projected, uncalibrated".into(),
                },
                l.units.map_or("-".into(), |u| u.to_string()),
                op.map_or("-".into(), |o| o.concurrency.to_string()),
                op.map_or("-".into(), |o| format!("{:.0}", o.ttft_p99_ms)),
                op.map_or("-".into(), |o| format!("{:.1}", o.tpot_ms)),
                money(l.monthly_usd),
                money(l.usd_per_m_input),
                money(l.usd_per_m_output),
                money(l.usd_per_m_cached_input),
                l.usd_per_task.map_or("-".into(), |v| format!("{v:.5}")),
                l.output_tokens_per_j
                    .map_or("-".into(), |v| format!("{v:.2}")),
                l.reason
                    .clone()
                    .or_else(|| c.unpriced.clone())
                    .unwrap_or_default(),
            ]);
        }
    }
    let mut sections = Vec::new();
    // Curves: every device candidate with a curve, and remotes as their one point.
    let drawn: Vec<_> = doc
        .candidates
        .iter()
        .filter(|c| !c.curve.is_empty())
        .collect();
    let mut points = Vec::new();
    let mut legend = Vec::new();
    for (i, c) in drawn.iter().enumerate() {
        let col = colour(i);
        legend.push((css(col), c.name.clone()));
        points.extend(
            c.curve
                .iter()
                .filter(|p| {
                    p.output_tokens_per_s.is_finite() && p.output_tokens_per_s_per_user.is_finite()
                })
                .map(|p| Point {
                    x: p.output_tokens_per_s_per_user,
                    y: p.output_tokens_per_s,
                    colour: col,
                }),
        );
    }
    let slo_x = doc
        .slo
        .as_ref()
        .and_then(|s| s.tpot_p99_ms)
        .map(|ms| 1000.0 / ms);
    let curve = if points.is_empty() {
        Figure::empty("Throughput vs interactivity", "no candidate has a curve")
    } else {
        let mut f = Figure::drawn(
            "Throughput vs interactivity, per unit (projected for devices)",
            charts::throughput(
                "plan-curves",
                "per unit",
                "output tokens/s per unit",
                &points,
                &[],
                slo_x,
            ),
            legend,
        );
        f.note = Some("one point per concurrency 1, 2, 4, ... up to what memory holds; remote targets as measured".into());
        f
    };
    sections.push(Section {
        title: "Curves".into(),
        figures: vec![curve],
        paragraphs: Vec::new(),
    });
    let mut cost_figs = Vec::new();
    for (i, lvl) in doc.levels.iter().enumerate() {
        let bars: Vec<(String, f64)> = doc
            .candidates
            .iter()
            .filter_map(|c| {
                let l = &c.levels[i];
                Some((c.name.clone(), l.monthly_usd.filter(|_| l.carried)?))
            })
            .collect();
        let t = format!(
            "USD per month at {}x ({:.3} requests/s)",
            lvl.multiplier, lvl.requests_per_s
        );
        cost_figs.push(if bars.is_empty() {
            Figure::empty(
                &t,
                lvl.reason
                    .as_deref()
                    .unwrap_or("no priced candidate carries it"),
            )
        } else {
            Figure::drawn(
                &t,
                charts::bars(&format!("plan-cost-{i}"), &t, "USD/month", &bars),
                Vec::new(),
            )
        });
    }
    let mut paragraphs: Vec<String> = doc
        .levels
        .iter()
        .filter_map(|l| {
            let b = l.break_even.as_ref()?;
            Some(format!("{}x: {}", l.multiplier, b.sentence()))
        })
        .collect();
    for s in &doc.scenarios {
        paragraphs.push(format!(
            "scenario {}: {}",
            s.name,
            s.levels
                .iter()
                .map(|l| format!(
                    "{}x {} ({} USD/month)",
                    l.multiplier,
                    l.cheapest.as_deref().unwrap_or("none"),
                    money(l.monthly_usd)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    sections.push(Section {
        title: "Cost and scenarios".into(),
        figures: cost_figs,
        paragraphs,
    });
    sections.push(Section {
        title: "Sensitivity".into(),
        figures: Vec::new(),
        paragraphs: doc
            .sensitivity
            .iter()
            .map(|s| {
                format!(
                    "{}: {} USD/month at {}x, {} at {}x (swing {})",
                    s.input,
                    money(s.monthly_usd_low),
                    s.low_factor,
                    money(s.monthly_usd_high),
                    s.high_factor,
                    s.swing.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
                )
            })
            .collect(),
    });
    let mut notes = doc.notes.clone();
    if doc
        .candidates
        .iter()
        .any(|c| c.kind == CandidateKind::Device)
    {
        notes.insert(0, "device figures are projections, not measurements: each names its calibration and, where back-tested, its error band".into());
    }
    page("plan", &title, &meta, &header, &rows, &notes, &sections)
}
