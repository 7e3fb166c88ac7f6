//! Snapshot tests of the router price tables, on a report priced from known values.

#![allow(clippy::unwrap_used)]

use infermeter_results::catalog::{Catalog, HardwareQuery};
use infermeter_results::cost::price_with_hardware;
use infermeter_results::export::{litellm, routing};
use infermeter_results::*;

mod common;

/// The common report, its results priced for 2 vCPUs on the shipped catalog.
fn priced() -> Report {
    let mut r = common::report();
    let catalog = Catalog::default_catalog();
    let q = HardwareQuery {
        gpu_name: None,
        arch: "x86_64",
        units: 2,
    };
    let hw = catalog.hardware_price(&q, "on-demand", "us").unwrap();
    for e in &mut r.results {
        e.cost = Some(price_with_hardware(e, &hw));
    }
    r
}

/// The second result has no engine figures (no busy-time split): it is skipped with
/// the reason, never exported with a guessed split.
fn only_the_split_result(skipped: &[String]) {
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("quick/classify-tiny: the cost has no input/output split"));
}

#[test]
fn litellm_snapshot() {
    let (doc, skipped) = litellm(&[priced()]);
    only_the_split_result(&skipped);
    insta::assert_json_snapshot!(doc);
}

#[test]
fn routing_snapshot() {
    let (doc, skipped) = routing(&[priced()]);
    only_the_split_result(&skipped);
    insta::assert_json_snapshot!(doc);
}

/// The exported per-token prices reproduce the measured total for the measured mix:
/// uncached input x input price + output x output price (+ cached x 0) = usd_total.
#[test]
fn exported_prices_reproduce_the_measured_cost() {
    let r = priced();
    let (doc, _) = litellm(std::slice::from_ref(&r));
    for e in r.results.iter().filter(|e| e.engine.is_some()) {
        let key = infermeter_results::export::litellm_key(e);
        let x = &doc[&key];
        let c = e.cost.as_ref().unwrap();
        let got = c.input_tokens as f64 * x["input_cost_per_token"].as_f64().unwrap()
            + c.cached_input_tokens as f64
                * x["cache_read_input_token_cost"].as_f64().unwrap_or(0.0)
            + c.output_tokens as f64 * x["output_cost_per_token"].as_f64().unwrap();
        let want = c.usd_total.unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want + 1e-9,
            "{key}: {got} vs {want}"
        );
    }
}

#[test]
fn unpriced_results_are_skipped_with_their_reason() {
    let r = common::report();
    let (doc, skipped) = litellm(&[r]);
    assert_eq!(doc, serde_json::json!({}));
    assert!(skipped[0].contains("not priced"), "{skipped:?}");
}
