//! CSV: the summary with a header row, fields quoted where they need it (RFC 4180).

use std::fmt::Write as _;

use super::summary;
use crate::report::Report;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report's summary as CSV.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary::header().join(","));
    for row in summary::rows(report) {
        let line: Vec<String> = row.iter().map(|c| field(c)).collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}
