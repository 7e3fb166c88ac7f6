//! The report reader on arbitrary bytes: the version check, an older report's upgrade
//! or a newer one's pruning, the schema check and deserializing either succeed or
//! return an error, and what reads can be merged and rendered; nothing panics (a
//! histogram that does not decode is an error, never a crash).
#![no_main]

use infermeter_results::render::{Format, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok((report, _warnings)) = infermeter_results::schema::read_report_value(doc) else {
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
