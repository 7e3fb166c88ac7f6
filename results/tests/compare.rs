//! `compare`: a run against itself passes; a slower run fails naming the metric; a
//! difference inside the run-to-run spread is noise; other hardware is flagged.

#![allow(clippy::unwrap_used)]

use infermeter_results::compare::{Gate, Verdict, compare, render};
use infermeter_results::*;

mod common;
use common::{hist, report};

fn slowed(r: &Report, factor: f64) -> Report {
    let mut s = r.clone();
    for e in &mut s.results {
        e.latency.ttft_ms = hist(&[
            120.0 * factor,
            130.0 * factor,
            150.0 * factor,
            400.0 * factor,
        ]);
        e.throughput.output_tokens_per_s /= factor;
    }
    s
}

#[test]
fn a_run_against_itself_has_no_regression() {
    let r = report();
    let c = compare(
        std::slice::from_ref(&r),
        std::slice::from_ref(&r),
        &Gate::default(),
    );
    assert!(c.regressions().is_empty());
    assert!(c.not_comparable.is_empty());
    assert!(c.rows.iter().all(|r| matches!(r.verdict, Verdict::Ok)));
    assert!(!c.rows.is_empty());
}

#[test]
fn a_slower_run_regresses_on_the_gated_metrics_only() {
    let r = report();
    let c = compare(
        std::slice::from_ref(&r),
        &[slowed(&r, 1.5)],
        &Gate::default(),
    );
    let names: Vec<&str> = c.regressions().iter().map(|r| r.metric).collect();
    assert!(names.contains(&"ttft_p99_ms"), "{names:?}");
    assert!(names.contains(&"output_tokens_per_s"), "{names:?}");
    // ttft_p50_ms got worse too but is not gated by default.
    assert!(
        c.rows
            .iter()
            .any(|r| r.metric == "ttft_p50_ms" && r.verdict == Verdict::Worse)
    );
    // A looser threshold lets it pass.
    let loose = Gate {
        threshold_all: Some(60.0),
        ..Gate::default()
    };
    assert!(
        compare(std::slice::from_ref(&r), &[slowed(&r, 1.5)], &loose)
            .regressions()
            .is_empty()
    );
    // Naming metrics gates only those.
    let only_e2e = Gate {
        metrics: vec!["e2e_p50_ms".into()],
        ..Gate::default()
    };
    assert!(
        compare(std::slice::from_ref(&r), &[slowed(&r, 1.5)], &only_e2e)
            .regressions()
            .is_empty()
    );
    let text = render(&c, false);
    assert!(text.contains("REGRESSED"), "{text}");
}

#[test]
fn differences_within_the_run_to_run_spread_are_noise() {
    let r = report();
    // Baseline repeats: throughput 34.3 and 34.3 / 1.3; the candidate is 10% below the
    // mean, inside that spread.
    let base = [r.clone(), slowed(&r, 1.3)];
    let c = compare(&base, &[slowed(&r, 1.25)], &Gate::default());
    let row = c
        .rows
        .iter()
        .find(|x| x.metric == "output_tokens_per_s")
        .unwrap();
    assert_eq!(row.verdict, Verdict::Noise, "{row:?}");
    assert!(row.spread.unwrap() > 0.0);
}

#[test]
fn other_hardware_or_another_stream_is_not_comparable() {
    let r = report();
    let mut other = r.clone();
    other.hardware.cpu_model = "Another CPU".into();
    other.results[0].workload.stream_sha256 = "00".repeat(32);
    let c = compare(&[r], &[other], &Gate::default());
    assert!(
        c.not_comparable.iter().any(|w| w.contains("cpu_model")),
        "{:?}",
        c.not_comparable
    );
    assert!(
        c.not_comparable
            .iter()
            .any(|w| w.contains("request streams differ"))
    );
    assert!(render(&c, false).contains("NOT COMPARABLE"));
}

/// `r` with every result's quality section holding `kl` and `top1`.
fn with_quality(r: &Report, kl: f64, top1: f64) -> Report {
    let mut s = r.clone();
    for e in &mut s.results {
        e.quality = Some(QualitySection {
            reference_precision: "f32".into(),
            eval_text: "infermeter-eval-en-v1".into(),
            eval_sha256: "e".repeat(64),
            fidelity: Some(Fidelity {
                precision: "q4_0".into(),
                weights_sha256: "a".repeat(64),
                reference_weights_sha256: "b".repeat(64),
                windows: 4,
                tokens_scored: 508,
                kl_mean_nats: kl,
                kl_p99_nats: 4.0 * kl,
                kl_max_nats: 8.0 * kl,
                top1_agreement: top1,
                perplexity: 12.0 * (1.0 + kl),
                reference_perplexity: 12.0,
                perplexity_ratio: 1.0 + kl,
                cached: false,
                compute_s: 1.0,
            }),
            reason: None,
        });
    }
    s
}

#[test]
fn a_quality_loss_regresses_like_a_slowdown() {
    let r = report();
    let base = with_quality(&r, 0.020, 0.95);
    // The same configuration measured again: no change.
    let same = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&base),
        &Gate::default(),
    );
    assert!(same.regressions().is_empty());
    // KL up 50%, top-1 agreement down 4 points: both gated by default.
    let worse = with_quality(&r, 0.030, 0.91);
    let c = compare(std::slice::from_ref(&base), &[worse], &Gate::default());
    let names: Vec<&str> = c.regressions().iter().map(|r| r.metric).collect();
    assert!(names.contains(&"kl_mean_nats"), "{names:?}");
    assert!(names.contains(&"top1_agreement_pct"), "{names:?}");
    // A smaller KL is an improvement, never a regression.
    let better = with_quality(&r, 0.010, 0.97);
    let c = compare(std::slice::from_ref(&base), &[better], &Gate::default());
    assert!(c.regressions().is_empty());
    assert!(
        c.rows
            .iter()
            .any(|r| r.metric == "kl_mean_nats" && r.verdict == Verdict::Improved)
    );
    // Quality on one side only is missing, not a regression.
    let c = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&r),
        &Gate::default(),
    );
    assert!(
        c.rows
            .iter()
            .any(|r| r.metric == "kl_mean_nats" && r.verdict == Verdict::Missing)
    );
}

fn with_success(r: &Report, checked: u64, verified: u64) -> Report {
    let mut s = r.clone();
    for e in &mut s.results {
        e.verification = Some(VerificationStats::from_counts(
            checked,
            verified,
            checked,
            verified,
            std::collections::BTreeMap::from([(CheckFailure::WrongAnswer, checked - verified)]),
            std::collections::BTreeMap::new(),
        ));
    }
    s
}

#[test]
fn a_success_rate_drop_regresses_only_beyond_its_interval() {
    let r = report();
    let base = with_success(&r, 400, 320);
    let run = |cand: Report| {
        let c = compare(std::slice::from_ref(&base), &[cand], &Gate::default());
        c.rows
            .iter()
            .find(|row| row.metric == "success_rate_pct")
            .map(|row| row.verdict)
    };
    // 80% -> 60% of 400 tasks: far outside both intervals.
    assert_eq!(run(with_success(&r, 400, 240)), Some(Verdict::Regressed));
    // 80% -> 70% of 10 tasks: the intervals overlap, whatever the threshold says.
    assert_eq!(run(with_success(&r, 10, 7)), Some(Verdict::Noise));
    assert_eq!(run(with_success(&r, 400, 380)), Some(Verdict::Improved));
    assert_eq!(run(r.clone()), Some(Verdict::Missing));
}
