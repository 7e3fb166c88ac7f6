//! The report reader on arbitrary bytes: JSON that passes the schema deserializes, and
//! what reads can be merged and rendered; nothing panics (a histogram that does not
//! decode is an error, never a crash).
#![no_main]

use infermeter_results::Report;
use infermeter_results::render::{Format, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if infermeter_results::schema::validate_report_json(&doc).is_err() {
        return;
    }
    let Ok(report) = serde_json::from_value::<Report>(doc) else {
        return;
    };
    for e in &report.results {
        let _ = e.latency.ttft_ms.histogram("ttft_ms");
    }
    let _ = infermeter_results::merge::merge(&[report.clone(), report.clone()], vec![]);
    for f in [Format::Table, Format::Markdown, Format::Csv, Format::Html] {
        let _ = render(&report, f);
    }
});
