//! Snapshot tests of every export format, on a report built from known values, and the
//! schema check of a full report.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use infermeter_results::render::{Format, render};
use infermeter_results::schema::validate_report_json;
use infermeter_results::*;

mod common;
use common::{entry, report};

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!(render(&report(), Format::Markdown));
}

#[test]
fn csv_snapshot() {
    insta::assert_snapshot!(render(&report(), Format::Csv));
}

#[test]
fn table_snapshot() {
    insta::assert_snapshot!(render(&report(), Format::Table));
}

#[test]
fn the_html_page_is_one_offline_file_with_its_charts_and_escaped_text() {
    let mut r = report();
    r.results[0]
        .notes
        .push("<script>alert(1)</script> & more".into());
    let page = render(&r, Format::Html);
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..80]);
    assert!(!page.contains("http://") && !page.contains("https://"));
    // Notes are text, never markup.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; more"));
    assert!(!page.contains("<script>alert(1)"));
    // One chart per latency family, the throughput chart; every chart has data
    // marks in the palette's colours.
    for id in ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "throughput"] {
        let at = page
            .find(&format!(r#"<svg class="chart" id="{id}""#))
            .unwrap_or_else(|| panic!("no chart {id}"));
        let svg = &page[at..at + page[at..].find("</svg>").unwrap()];
        assert!(
            svg.contains(r##"stroke="#1F77B4""##) || svg.contains(r##"fill="#1F77B4""##),
            "{id}"
        );
    }
    // Neither priced nor measured: said, not drawn.
    assert!(
        page.contains("Cost per million tokens of each workload&#x27;s mix (USD): not measured.")
    );
    // The summary table carries the registry's columns.
    for h in infermeter_results::render::summary::header() {
        let escaped = h.replace('/', "&#x2f;");
        assert!(page.contains(&format!("<th>{escaped}</th>")), "{h}");
    }
}

/// Figures no axis can hold (a throughput past f64's range, an SLO bound of 0) never
/// hang the page's layout: the chart says it could not be drawn.
#[test]
fn charts_of_figures_no_axis_can_hold_are_refused_not_drawn() {
    let mut r = report();
    r.results[0].throughput.output_tokens_per_s = f64::MAX;
    r.results[1].slo = Some(SloVerdict {
        objectives: BTreeMap::from([("tpot_p99_ms".to_string(), 0.0)]),
        pass: false,
        missed: vec![],
        requests_meeting: 0,
        goodput_rps: 0.0,
        goodput_ratio: None,
    });
    let page = render(&r, Format::Html);
    assert!(
        page.contains("the chart could not be drawn: its y axis would run from 0 to inf"),
        "{}",
        &page[page.find("Throughput and").unwrap_or(0)..][..400]
    );
    // The latency charts are unaffected.
    assert!(page.contains(r#"<svg class="chart" id="ttft_ms""#));
}

#[test]
fn json_round_trips_and_validates_against_the_committed_schema() {
    let r = report();
    let text = render(&r, Format::Json);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    validate_report_json(&doc).unwrap();
    let back: Report = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(back, r);

    // A report with a field of the wrong type or unit-less extra field is refused.
    let mut bad = doc.clone();
    bad["results"][0]["latency"]["ttft_ms"]["p50"] = serde_json::json!("fast");
    assert!(validate_report_json(&bad).is_err());
    let mut extra = doc;
    extra["results"][0]["throughput"]["speed"] = serde_json::json!(3);
    assert!(validate_report_json(&extra).is_err());
}

#[test]
fn merged_summaries_in_a_report_equal_the_union() {
    let r = report();
    let a = &r.results[0].latency.ttft_ms;
    let b = &r.results[1].latency.ttft_ms;
    let m = a.merged(b, "ttft_ms").unwrap();
    assert_eq!(m.count, 8);
    // HDR reports the top of a value's bucket: 400 ms is within 0.1% of it.
    assert_eq!(m.max, a.max);
    assert!((m.max.unwrap() - 400.0).abs() <= 0.4);
}

/// Cached input and reasoning output at their own prices; per-task figures over tasks
/// started and completed; local targets without a catalog are not priced.
#[test]
fn rate_cards_price_cached_input_and_reasoning_apart() {
    use infermeter_results::CostSource;
    use infermeter_results::cost::{price, price_with_rate_card};
    use infermeter_results::{RateCard, TokenProvenance};
    let mut e = entry("agent-loop", 1, true);
    let hw = report().hardware;
    let cost_of = |e: &ResultEntry| price(e, &hw, None);
    assert!(cost_of(&e).reason.unwrap().contains("local target"));
    e.target.kind = "openai".into();
    e.target.locality = Locality::Remote;
    e.target.device = None;
    e.target.api = Some(Api::Chat);
    e.tokens.input = 800;
    e.tokens.output = 120;
    e.tokens.provenance = Some(TokenProvenance {
        tokenizer: "smollm2-135m".into(),
        requests_with_usage: 3,
        requests_without_usage: 0,
        server_input: 800,
        server_output: 120,
        server_cached_input: 600,
        server_reasoning: 20,
        tokenizer_input: 780,
        tokenizer_output: Some(118),
        output_disagreement_pct: Some(-1.667),
        input_disagreement_pct: Some(-2.5),
        chunk_counts: BTreeMap::new(),
        reconciled_requests: 0,
    });
    let card = RateCard {
        input_usd_per_m: 3.0,
        cached_input_usd_per_m: Some(0.3),
        output_usd_per_m: 15.0,
        reasoning_usd_per_m: Some(30.0),
        source: None,
        as_of: None,
    };
    let c = price_with_rate_card(&e, &card);
    assert_eq!(c.source, Some(CostSource::RateCard));
    assert_eq!((c.input_tokens, c.cached_input_tokens), (200, 600));
    assert_eq!((c.output_tokens, c.reasoning_tokens), (100, 20));
    // 200 x 3 + 600 x 0.3 + 100 x 15 + 20 x 30 = 600 + 180 + 1500 + 600 micro-dollars.
    assert_eq!(c.usd_total, Some(0.00288));
    assert_eq!(c.usd_cached_input, Some(0.00018));
    assert_eq!(c.usd_per_m_input, Some(0.975)); // (600 + 180) / 800 tokens
    assert_eq!(c.usd_per_m_blended_3_1, Some(6.0));
    let tasks = e.tasks.as_ref().unwrap();
    assert_eq!(
        c.usd_per_task,
        Some(((0.00288 / tasks.started as f64) * 1e9).round() / 1e9)
    );
    // With a rate card on the target, the report's own cost is this one.
    e.target.prices = Some(card);
    assert_eq!(cost_of(&e), c);
}
