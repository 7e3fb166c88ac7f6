//! Merging is exact: reports of two parts of a stream of requests merge into the
//! figures one report of the whole stream has.

#![allow(clippy::unwrap_used)]

use infermeter_results::merge::merge;
use infermeter_results::*;
use proptest::prelude::*;

mod common;
use common::{entry, hist};

/// One request's figures: (ttft ms, tpot ms, e2e ms, output tokens).
type Sample = (f64, f64, f64, u64);

fn at(offset_s: f64) -> String {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap();
    (t0 + chrono::Duration::microseconds((offset_s * 1e6) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A result of `samples` measured over `[start_s, end_s]`.
fn part(samples: &[Sample], start_s: f64, end_s: f64) -> Report {
    let mut e = entry("chat-short", 0, false);
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    e.latency.ttft_ms = hist(&col(|s| s.0));
    e.latency.tpot_ms = hist(&col(|s| s.1));
    e.latency.e2e_ms = hist(&col(|s| s.2));
    let n = samples.len() as u64;
    e.requests.sent = n;
    e.requests.ok = n;
    e.requests.failed = 0;
    e.requests.by_class.clear();
    e.tokens.output = samples.iter().map(|s| s.3).sum();
    e.tokens.input = 100 * n;
    let window = end_s - start_s;
    e.load.measured_s = window;
    e.load.window_start = Some(at(start_s));
    e.load.window_end = Some(at(end_s));
    e.throughput.requests_per_s = n as f64 / window;
    e.throughput.input_tokens_per_s = e.tokens.input as f64 / window;
    e.throughput.output_tokens_per_s = e.tokens.output as f64 / window;
    e.throughput.output_tokens_per_s_per_user = e.latency.tpot_ms.p50.map(|t| 1000.0 / t);
    let mut r = common::report();
    r.results = vec![e];
    r
}

fn same_summary(a: &LatencySummary, b: &LatencySummary) {
    assert_eq!(
        (
            a.count, a.mean, a.min, a.p50, a.p90, a.p95, a.p99, a.p99_9, a.max
        ),
        (
            b.count, b.mean, b.min, b.p50, b.p90, b.p95, b.p99, b.p99_9, b.max
        )
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn two_halves_merge_into_the_whole(
        samples in prop::collection::vec((1.0f64..20_000.0, 0.5f64..200.0, 10.0f64..60_000.0, 1u64..512), 2..120),
        cut in any::<prop::sample::Index>(),
        first_end in 1.0f64..50.0,
        second_start in 0.0f64..50.0,
        second_len in 1.0f64..50.0,
    ) {
        let k = cut.index(samples.len());
        let end = second_start + second_len;
        let a = part(&samples[..k], 0.0, first_end);
        let b = part(&samples[k..], second_start, end);
        let whole = part(&samples, 0.0, first_end.max(end));
        let m = merge(&[a, b], vec!["test".into()]).unwrap();
        let (m, w) = (&m.results[0], &whole.results[0]);
        same_summary(&m.latency.ttft_ms, &w.latency.ttft_ms);
        same_summary(&m.latency.tpot_ms, &w.latency.tpot_ms);
        same_summary(&m.latency.e2e_ms, &w.latency.e2e_ms);
        prop_assert_eq!(m.requests.sent, w.requests.sent);
        prop_assert_eq!(m.tokens.output, w.tokens.output);
        prop_assert!((m.load.measured_s - w.load.measured_s).abs() < 1e-3);
        let rel = |x: f64, y: f64| ((x - y) / y).abs();
        prop_assert!(rel(m.throughput.output_tokens_per_s, w.throughput.output_tokens_per_s) < 1e-4);
        prop_assert!(rel(m.throughput.requests_per_s, w.throughput.requests_per_s) < 1e-4);
        prop_assert_eq!(m.throughput.output_tokens_per_s_per_user, w.throughput.output_tokens_per_s_per_user);
    }
}

#[test]
fn different_workloads_or_load_points_are_refused_by_name() {
    let a = part(&[(1.0, 1.0, 1.0, 1)], 0.0, 1.0);
    let mut b = a.clone();
    b.results[0].workload.name = "rag-long".into();
    let e = merge(&[a.clone(), b], vec![]).unwrap_err();
    assert!(e.0.contains("report 2 has a result report 1 lacks"), "{e}");
    assert!(e.0.contains("rag-long"), "{e}");
    let mut c = a.clone();
    c.results[0].target.weights.as_mut().unwrap().sha256 = "00".repeat(32);
    let e = merge(&[a.clone(), c], vec![]).unwrap_err();
    assert!(e.0.contains("target weights differ"), "{e}");
    let mut d = a.clone();
    d.schema_version = "2.0".into();
    let e = merge(&[a, d], vec![]).unwrap_err();
    assert!(e.0.contains("major versions differ"), "{e}");
}

#[test]
fn costs_add_up_and_are_divided_by_the_merged_counts() {
    use infermeter_results::cost::price_with_rate_card;
    let mut a = part(&[(1.0, 1.0, 1.0, 100), (2.0, 1.0, 1.0, 100)], 0.0, 1.0);
    a.results[0].target.kind = "openai".into();
    let card = RateCard {
        input_usd_per_m: 1.0,
        cached_input_usd_per_m: None,
        output_usd_per_m: 2.0,
        reasoning_usd_per_m: None,
        source: None,
        as_of: None,
    };
    a.results[0].cost = Some(price_with_rate_card(&a.results[0], &card));
    let m = merge(&[a.clone(), a.clone()], vec![]).unwrap();
    let c = m.results[0].cost.as_ref().unwrap();
    let one = a.results[0].cost.as_ref().unwrap();
    assert_eq!(c.usd_total, Some(2.0 * one.usd_total.unwrap()));
    assert_eq!(c.usd_per_request, one.usd_per_request);
    assert_eq!(c.usd_per_m_output, one.usd_per_m_output);
}

/// Every registry metric comes out of `merge` as its declared merge rule says: a
/// result merged with an identical copy of itself (the same requests measured twice
/// over the same window) doubles what is summed over the window and keeps every
/// percentile and ratio.
#[test]
fn every_metric_merges_as_the_registry_declares() {
    use infermeter_results::cost::{Pricing, price};
    use infermeter_results::metrics::METRICS;
    let mut r = common::report();
    for e in &mut r.results {
        e.load.window_start = Some(at(0.0));
        e.load.window_end = Some(at(e.load.measured_s));
        // Throughput as a run derives it from its counts (the fixture's are round
        // figures).
        e.throughput = infermeter_results::derive::throughput(
            infermeter_results::derive::ThroughputCounts {
                ok_requests: e.requests.ok,
                ok_input_tokens: 100 * e.requests.ok,
                output_tokens: e.tokens.output,
            },
            e.load.measured_s,
            e.latency.tpot_ms.p50,
        );
        let mut energy = EnergyStats::unavailable("");
        energy.reason = None;
        energy.energy_j = Some(50.0);
        energy.tokens_per_j_output = Some(e.tokens.output as f64 / 50.0);
        energy.tokens_per_j_total = Some((e.tokens.input + e.tokens.output) as f64 / 50.0);
        e.energy = Some(energy);
        let (limits, shape) = common::roofline_basis("cpu");
        e.roofline = infermeter_results::roofline::judge(&limits, &shape, e);
    }
    assert!(r.results.iter().any(|e| e.roofline.is_some()));
    let catalog = infermeter_results::catalog::Catalog::default_catalog();
    let hw = r.hardware.clone();
    for e in &mut r.results {
        e.cost = Some(price(e, &hw, Some(&Pricing::defaults(&catalog))));
    }
    let merged = merge(&[r.clone(), r.clone()], vec![]).unwrap();
    let mut checked = 0;
    for (one, two) in r.results.iter().zip(&merged.results) {
        for m in METRICS {
            let (Some(a), Some(b)) = ((m.get)(one), (m.get)(two)) else {
                assert_eq!((m.get)(one).is_some(), (m.get)(two).is_some(), "{}", m.name);
                continue;
            };
            let want = a * m.merge.self_merge_factor();
            assert!(
                // Within the nano-dollar rounding of summed costs.
                (b - want).abs() <= want.abs() * 1e-5 + 1e-9,
                "{}: merged {b}, one {a}, rule {:?}",
                m.name,
                m.merge
            );
            checked += 1;
        }
    }
    assert!(checked >= 32, "only {checked} metric values checked");
}

/// Parts judged on the same kind of device merge against the mean of their limits;
/// parts of different devices lose the roofline (no limit is both of theirs).
#[test]
fn a_merged_roofline_needs_parts_of_one_device_kind() {
    let mut a = common::report();
    a.results.retain(|e| e.engine.is_some());
    let (mut limits, shape) = common::roofline_basis("cpu");
    for e in &mut a.results {
        e.roofline = infermeter_results::roofline::judge(&limits, &shape, e);
    }
    let mut b = a.clone();
    limits.read_gb_per_s = 45.0;
    for e in &mut b.results {
        e.roofline = infermeter_results::roofline::judge(&limits, &shape, e);
    }
    let merged = merge(&[a.clone(), b.clone()], vec![]).unwrap();
    let r = merged.results[0].roofline.as_ref().unwrap();
    assert!(
        (r.limits.read_gb_per_s - 40.0).abs() < 1e-9,
        "{}",
        r.limits.read_gb_per_s
    );
    assert!(r.decode_ratio.is_some() && r.prefill_ratio.is_some());
    let (other, _) = common::roofline_basis("cuda:0");
    for e in &mut b.results {
        e.roofline = infermeter_results::roofline::judge(&other, &shape, e);
    }
    let merged = merge(&[a, b], vec![]).unwrap();
    assert!(merged.results[0].roofline.is_none());
}

/// Shards with checkers: counts add up, the rate and its interval are derived again,
/// and cost and energy per verified task are the sums over the summed verified tasks.
#[test]
fn verified_tasks_add_up_across_shards() {
    use infermeter_results::cost::price_with_rate_card;
    use std::collections::BTreeMap;
    let card = RateCard {
        input_usd_per_m: 1.0,
        cached_input_usd_per_m: None,
        output_usd_per_m: 2.0,
        reasoning_usd_per_m: None,
        source: None,
        as_of: None,
    };
    let shard = |verified: u64, joules: f64| {
        let mut r = part(&[(1.0, 1.0, 1.0, 100), (2.0, 1.0, 1.0, 100)], 0.0, 1.0);
        let e = &mut r.results[0];
        e.target.kind = "openai".into();
        e.verification = Some(VerificationStats::from_counts(
            2,
            verified,
            2,
            verified,
            BTreeMap::from([(CheckFailure::WrongAnswer, 2 - verified)]),
            BTreeMap::new(),
        ));
        let mut en = EnergyStats::unavailable("x");
        en.source = Some(EnergySource::Rapl);
        en.reason = None;
        en.energy_j = Some(joules);
        en.j_per_verified_task = (verified > 0).then(|| joules / verified as f64);
        e.energy = Some(en);
        e.cost = Some(price_with_rate_card(e, &card));
        r
    };
    let (a, b) = (shard(2, 10.0), shard(1, 30.0));
    let m = merge(&[a.clone(), b.clone()], vec![]).unwrap();
    let e = &m.results[0];
    let v = e.verification.as_ref().unwrap();
    assert_eq!((v.tasks_checked, v.tasks_verified), (4, 3));
    assert_eq!(v.success_rate, 0.75);
    assert_eq!(Some(v.success_rate_ci95), stats::wilson_ci95(3, 4));
    let total = e.cost.as_ref().unwrap().usd_total.unwrap();
    let per = e.cost.as_ref().unwrap().usd_per_verified_task.unwrap();
    assert!((per - total / 3.0).abs() < 1e-9, "{per} vs {total}");
    let j = e.energy.as_ref().unwrap().j_per_verified_task.unwrap();
    assert!((j - 40.0 / 3.0).abs() < 1e-9, "{j}");
    // A part without checkers: the merge claims none, and no energy per verified task.
    let mut plain = shard(1, 30.0);
    plain.results[0].verification = None;
    let m = merge(&[a, plain], vec![]).unwrap();
    assert!(m.results[0].verification.is_none());
    assert_eq!(
        m.results[0].energy.as_ref().unwrap().j_per_verified_task,
        None
    );
}

/// Shards 1/3 and 3/3 without 2/3: refused, unless a partial merge is asked for, which
/// is `interrupted` and names what it holds and lacks; a shard given twice is refused
/// either way.
#[test]
fn a_partial_shard_set_merges_only_when_asked_and_says_so() {
    let shard = |i: u32| {
        let mut r = part(&[(1.0, 1.0, 1.0, 10), (2.0, 1.0, 1.0, 10)], 0.0, 1.0);
        r.results[0].workload.shard = Some(ShardRef { index: i, count: 3 });
        r
    };
    let (a, c) = (shard(1), shard(3));
    let refused = merge(&[a.clone(), c.clone()], vec![])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("shards 1/3, 3/3 are not one complete set"),
        "{refused}"
    );
    assert!(refused.contains("--allow-partial"), "{refused}");

    let m = merge::merge_with(&[a.clone(), c.clone()], vec![], true).unwrap();
    assert_eq!(m.run.status, RunStatus::Interrupted);
    let e = &m.results[0];
    assert_eq!(e.requests.sent, 4);
    assert!(e.workload.shard.is_none());
    assert!(
        e.notes
            .iter()
            .any(|n| n == "partial merge: shards 1/3, 3/3 of 3; 2/3 missing: their requests are not in these figures"),
        "{:?}",
        e.notes
    );
    // One shard alone: refused, unless asked for.
    let alone = merge(std::slice::from_ref(&a), vec![])
        .unwrap_err()
        .to_string();
    assert!(
        alone.contains("shards 1/3 are not one complete set"),
        "{alone}"
    );
    let lone = merge::merge_with(std::slice::from_ref(&a), vec![], true).unwrap();
    assert_eq!(lone.run.status, RunStatus::Interrupted);
    // A shard twice, or one outside 1..N, is refused even when asked.
    assert!(merge::merge_with(&[a.clone(), a], vec![], true).is_err());
    let zero = shard(0);
    assert!(merge::merge_with(&[zero, c], vec![], true).is_err());
}
