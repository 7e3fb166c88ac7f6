//! A result judged against its device's limits: decode on the steps of decode tokens
//! only, prefill on every prompt token computed, nothing without a successful request.

#![allow(clippy::unwrap_used)]

use infermeter_results::roofline::{decode_ceiling, judge, prefill_ceiling_attending};

mod common;

#[test]
fn decode_is_judged_on_decode_only_steps_at_their_batch() {
    let e = common::entry("chat-short", 0, true);
    let (limits, shape) = common::roofline_basis("cpu");
    let r = judge(&limits, &shape, &e).unwrap();
    // The fixture: 90 decode-only steps of 100 tokens in 1.0 s; 4 requests sent, 800
    // input and 120 output tokens.
    assert!((r.decode_batch - 100.0 / 90.0).abs() < 1e-12);
    assert_eq!(r.decode_tokens_per_s, Some(100.0));
    assert!((r.decode_context_tokens - (200.0 + 15.0)).abs() < 1e-12);
    let c = decode_ceiling(&limits, &shape, 100.0 / 90.0, 215.0).unwrap();
    assert!((r.decode_ceiling_tokens_per_s - c.tokens_per_s).abs() < 1e-9);
    assert!((r.decode_ratio.unwrap() - 100.0 / c.tokens_per_s).abs() < 1e-12);
    // Prefill: 200 of 800 prompt tokens computed over 4 requests (the rest cached), in
    // 0.4 s; each computed token attends over 200 - 50/2 positions.
    assert_eq!(r.prefill_tokens_per_s, Some(500.0));
    let p = prefill_ceiling_attending(&limits, &shape, 200.0 - 25.0).unwrap();
    assert!((r.prefill_ceiling_tokens_per_s - p).abs() < 1e-9);
}

#[test]
fn no_successful_request_or_no_decode_step_gives_no_decode_figure() {
    let (limits, shape) = common::roofline_basis("cpu");
    let mut e = common::entry("chat-short", 0, true);
    e.requests.ok = 0;
    assert!(judge(&limits, &shape, &e).is_none());
    let mut e = common::entry("chat-short", 0, true);
    let engine = e.engine.as_mut().unwrap();
    engine.decode_steps = Some(0);
    engine.decode_step_tokens = Some(0);
    engine.decode_step_busy_s = Some(0.0);
    let r = judge(&limits, &shape, &e).unwrap();
    assert_eq!((r.decode_tokens_per_s, r.decode_ratio), (None, None));
    assert!(r.prefill_ratio.is_some());
    // A remote result has no engine figures: nothing to judge.
    e.engine = None;
    assert!(judge(&limits, &shape, &e).is_none());
}
