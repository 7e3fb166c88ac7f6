//! Renderers of a report for people and spreadsheets: a terminal table, Markdown, CSV,
//! JSON and one self-contained HTML page. Every format shows the same summary
//! columns ([`summary`]), which come from the metrics registry.
//!
//! - [`summary`]: the summary's header and rows, and how each unit is written.
//! - [`notes`]: the lines under the table (intervals, failures, notes, cost, energy,
//!   run-to-run spreads).
//! - [`table`], [`markdown`], [`csv`], [`html`]: one format each.

pub mod csv;
pub mod html;
pub mod markdown;
pub mod notes;
pub mod summary;
pub mod table;

use crate::report::Report;

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
    /// One self-contained HTML page with charts ([`html`]).
    Html,
}

/// Renders a report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut out = serde_json::to_string_pretty(report).expect("a report serializes");
            out.push('\n');
            out
        }
        Format::Table => table::render(report),
        Format::Markdown => markdown::render(report),
        Format::Csv => csv::render(report),
        Format::Html => html::render(report),
    }
}
