//! The summary every format shows: one row per result, identity columns (target,
//! workload, load point, ok/sent) then one column per registry metric that has one,
//! written in its unit's style.

use crate::metrics::{Unit, columns};
use crate::report::Report;

/// Identity columns, before the metrics.
pub const IDENTITY: [&str; 4] = ["target", "workload", "load", "ok/sent"];

/// The header row.
pub fn header() -> Vec<&'static str> {
    IDENTITY
        .into_iter()
        .chain(columns().filter_map(|m| m.column))
        .collect()
}

/// One row of cells per result, in the header's order.
pub fn rows(report: &Report) -> Vec<Vec<String>> {
    report
        .results
        .iter()
        .map(|r| {
            let mut row = vec![
                r.target.label(),
                r.workload.name.clone(),
                r.load_label(),
                format!("{}/{}", r.requests.ok, r.requests.sent),
            ];
            row.extend(columns().map(|m| value(m.unit, (m.get)(r))));
            row
        })
        .collect()
}

/// A metric's value as the summary writes it.
pub fn value(unit: Unit, x: Option<f64>) -> String {
    match unit {
        Unit::Usd => usd(x),
        _ => num(x),
    }
}

/// A figure with three significant digits or so: 0 decimals from 100, 1 from 10,
/// else 2.
pub fn num(x: Option<f64>) -> String {
    match x {
        None => "-".to_string(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Dollars with four significant digits (cents to micro-dollars).
pub fn usd(x: Option<f64>) -> String {
    match x {
        None => "-".to_string(),
        Some(v) if v >= 1.0 || v <= 0.0 => format!("{v:.2}"),
        Some(v) => format!(
            "{v:.*}",
            (3 - v.log10().floor() as i32).clamp(2, 12) as usize
        ),
    }
}
