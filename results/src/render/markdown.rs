//! GitHub-flavoured Markdown: the summary table, then the notes.

use std::fmt::Write as _;

use super::{notes, summary};
use crate::report::Report;

/// The report as a Markdown table and its notes.
pub fn render(report: &Report) -> String {
    let header = summary::header();
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in summary::rows(report) {
        let _ = writeln!(out, "| {} |", row.join(" | ").replace('\n', " "));
    }
    out.push_str(&notes::lines(report));
    out
}
