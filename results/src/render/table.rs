//! The terminal table: the summary with rounded borders, then the notes.

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{notes, summary};
use crate::report::Report;

/// The report as a terminal table and its notes.
pub fn render(report: &Report) -> String {
    let mut b = Builder::default();
    b.push_record(summary::header());
    for row in summary::rows(report) {
        b.push_record(row);
    }
    let mut out = b.build().with(Style::rounded()).to_string();
    out.push('\n');
    out.push_str(&notes::lines(report));
    out
}
