//! The HTML report's charts, drawn with plotters' SVG backend: latency CDFs on a log
//! scale, throughput against interactivity with its Pareto front and SLO line, and
//! horizontal bars. Each chart is one `<svg class="chart">` element, inlined (no
//! namespace URL, so the page names no network address); data marks are drawn in the
//! palette's colours, which the page's script counts.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Colours of data marks, one per series (axes and grids are grey or black).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// A met SLO.
pub const PASS: RGBColor = PALETTE[2];
/// A missed SLO.
pub const MISS: RGBColor = PALETTE[1];

const W: u32 = 640;
const H: u32 = 300;

/// The CSS colour of `c` (`#1f77b4`).
pub fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The palette's colour for series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn font() -> TextStyle<'static> {
    ("sans-serif", 12).into_font().into()
}

/// Refuses an axis that does not end at a finite, drawable number (plotters would
/// never finish laying out its ticks).
fn finite_axis(what: &str, lo: f64, hi: f64) -> Result<(), String> {
    if lo.is_finite() && hi.is_finite() && hi > lo && hi < 1e300 {
        Ok(())
    } else {
        Err(format!("its {what} axis would run from {lo} to {hi}"))
    }
}

/// Draws into an SVG of `w` x `h`; `Err` carries plotters' message.
fn svg(
    id: &str,
    title: &str,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    // Inlined in HTML the namespace is implied; the chart gets its class, id and name.
    let out = out.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1);
    Ok(out.replacen(
        "<svg ",
        &format!(
            r#"<svg class="chart" id="{}" role="img" aria-label="{}" "#,
            attr(id),
            attr(title)
        ),
        1,
    ))
}

fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

/// Step CDFs of several series (`(ms, fraction at or below)`), x on a log scale.
pub fn cdf(id: &str, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<String, String> {
    let xs = || {
        series
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.0))
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo = xs().fold(f64::INFINITY, f64::min);
    let hi = xs().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() {
        let lo = 10f64.powf(lo.log10().floor());
        (lo, 10f64.powf(hi.log10().ceil().max(lo.log10() + 1.0)))
    } else {
        (1.0, 10.0)
    };
    finite_axis("x", lo, hi)?;
    svg(id, title, (W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("milliseconds (log scale)")
            .y_desc("fraction of values at or below")
            .x_label_formatter(&|v| fmt_num(*v))
            .label_style(font())
            .axis_desc_style(font())
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (_, c)) in series.iter().enumerate() {
            let mut pts = Vec::with_capacity(2 * c.len() + 1);
            let mut prev = 0.0;
            for &(x, q) in c {
                let x = x.max(lo);
                pts.push((x, prev));
                pts.push((x, q));
                prev = q;
            }
            chart
                .draw_series(LineSeries::new(pts, colour(i).stroke_width(2)))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// A point of the throughput chart.
pub struct Point {
    /// Interactivity, output tokens/s per user.
    pub x: f64,
    /// Throughput, in the chart's unit.
    pub y: f64,
    /// Its colour.
    pub colour: RGBColor,
}

/// Throughput against interactivity: the points, the Pareto front (dashed) and a
/// vertical line at the TPOT SLO's interactivity.
pub fn throughput(
    id: &str,
    title: &str,
    ylabel: &str,
    points: &[Point],
    front: &[(f64, f64)],
    slo_x: Option<f64>,
) -> Result<String, String> {
    let hi_x = points
        .iter()
        .map(|p| p.x)
        .chain(slo_x)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.08;
    let hi_y = points.iter().map(|p| p.y).fold(0.0, f64::max).max(1e-9) * 1.08;
    finite_axis("x", 0.0, hi_x)?;
    finite_axis("y", 0.0, hi_y)?;
    svg(id, title, (W, H), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..hi_x, 0f64..hi_y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("interactivity: output tokens/s per user (1000 / median TPOT)")
            .y_desc(ylabel)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style(font())
            .axis_desc_style(font())
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(|e| e.to_string())?;
        if front.len() > 1 {
            chart
                .draw_series(DashedLineSeries::new(
                    front.iter().copied(),
                    5,
                    4,
                    RGBColor(0x55, 0x55, 0x55).stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        if let Some(x) = slo_x {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x, 0.0), (x, hi_y)],
                    2,
                    3,
                    MISS.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    "TPOT SLO",
                    (x, hi_y * 0.97),
                    font().color(&MISS),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(points.iter().map(|p| {
                EmptyElement::at((p.x, p.y))
                    + Circle::new((0, 0), 5, p.colour.filled())
                    + Circle::new((0, 0), 5, BLACK.stroke_width(1))
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Horizontal bars, one per `(name, value)`, each in its own colour, with its value
/// and `unit` written beside it.
pub fn bars(id: &str, title: &str, unit: &str, bars: &[(String, f64)]) -> Result<String, String> {
    let longest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
    let label_w = ((longest as f64 * 6.6) as u32 + 16).max(120);
    let (w, h) = (label_w + W - 260, 40 + 28 * bars.len() as u32);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-300);
    let n = bars.len();
    finite_axis("value", 0.0, max * 1.35)?;
    svg(id, title, (w, h), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0f64..max * 1.35, (0..n).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => bars[n - 1 - *i].0.clone(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| fmt_num(*v))
            .label_style(font())
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(|e| e.to_string())?;
        // Bar i is drawn in the segment n - 1 - i, so the first bar is on top.
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let seg = n - 1 - i;
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(seg)),
                        (*v, SegmentValue::Exact(seg + 1)),
                    ],
                    colour(i).filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Text::new(
                    format!(" {} {unit}", fmt_num(*v)),
                    (*v, SegmentValue::CenterOf(n - 1 - i)),
                    font(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}
