//! Parsing, window deltas, bucket quantiles and reconciliation on exposition text of
//! the shape vLLM and llama.cpp serve (series names as FIELD.md lists them).

use super::*;

fn vllm(
    running: f64,
    hits: f64,
    queries: f64,
    gen_tokens: f64,
    ttft: [f64; 4],
    extra: f64,
) -> String {
    // ttft: cumulative counts at le 0.1, 0.5, 1, +Inf.
    format!(
        r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} 0.25
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {queries}
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen_tokens}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {queries}
# TYPE vllm:request_success_total counter
vllm:request_success_total{{engine="0",finished_reason="length",model_name="m"}} {}
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="m"}} 1.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="m"}} {}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.5",model_name="m"}} {}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="1.0",model_name="m"}} {}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {}
vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} {}
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{{block_size="16"}} 1.0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {extra}
"#,
        ttft[3] - 1.0,
        ttft[0],
        ttft[1],
        ttft[2],
        ttft[3],
        ttft[3],
        ttft[3] * 0.3,
    )
}

#[test]
fn vllm_window_deltas_quantiles_and_reconciliation() {
    // Before the window: 5 requests (warm-up); in it: 20 more.
    let a = parse(
        &vllm(0.0, 100.0, 1000.0, 80.0, [2.0, 4.0, 5.0, 5.0], 3.0),
        0.0,
    )
    .unwrap();
    let mid = parse(
        &vllm(6.0, 300.0, 2000.0, 200.0, [4.0, 10.0, 12.0, 14.0], 4.0),
        1.0,
    )
    .unwrap();
    let b = parse(
        &vllm(2.0, 900.0, 5000.0, 720.0, [6.0, 16.0, 22.0, 25.0], 7.5),
        2.5,
    )
    .unwrap();
    assert_eq!(
        a.kinds["vllm:time_to_first_token_seconds"],
        SeriesKind::Histogram
    );
    let src = Source {
        url: "http://h/metrics".into(),
        interval_s: 1.0,
        failed: 0,
        edge_failed: (false, false),
    };
    let client = ClientSide {
        failed: 0,
        requests: 20,
        ttft_mean_ms: Some(420.0),
        output_tokens: 640,
        input_tokens: 4000,
    };
    let m = summarise(&[a, mid, b], &src, &client);
    assert_eq!(m.server, "vllm");
    assert_eq!(m.window_s, 2.5);
    let running = m.requests_running.unwrap();
    // The one scrape inside the window (the edges are left out of gauges).
    assert_eq!((running.mean, running.max, running.last), (6.0, 6.0, 6.0));
    assert_eq!(m.generation_tokens, Some(640.0));
    assert_eq!(
        m.requests_finished,
        Some(20.0),
        "both finished reasons, summed"
    );
    assert_eq!(
        m.prefix_cache_hit_ratio,
        Some(0.2),
        "800 hits over 4000 queries"
    );
    let ttft = m.ttft_ms.unwrap();
    assert_eq!(ttft.count, 20.0);
    // Window buckets: 4 at <= 0.1, 12 at <= 0.5, 17 at <= 1, 20 in all.
    // p50: rank 10 in (0.1, 0.5]: 0.1 + 0.4 * (10 - 4) / 8 = 0.4 s.
    assert!((ttft.p50.unwrap() - 400.0).abs() < 1e-6, "{ttft:?}");
    // p99: rank 19.8 in (1, +Inf]: the highest finite bound.
    assert_eq!(ttft.p99, Some(1000.0));
    assert!((ttft.mean.unwrap() - 300.0).abs() < 1e-6, "sum 6 s over 20");
    let r = &m.reconciliation;
    assert_eq!(r.ttft_client_minus_server_ms, Some(120.0));
    assert_eq!(r.output_tokens_diff_pct, Some(0.0));
    assert_eq!(r.agree, Some(true), "{:?}", r.disagreements);
    // Outside the vocabulary: a counter as its delta, a gauge as its value.
    assert_eq!(m.raw["process_cpu_seconds_total_delta"], 4.5);
    assert_eq!(m.raw["vllm:cache_config_info{block_size=\"16\"}"], 1.0);
    assert!(!m.raw.keys().any(|k| k.contains("time_to_first_token")));
}

#[test]
fn disagreements_are_named() {
    let a = parse(&vllm(0.0, 0.0, 0.0, 0.0, [0.0, 0.0, 0.0, 1.0], 0.0), 0.0).unwrap();
    let b = parse(&vllm(0.0, 0.0, 10.0, 500.0, [0.0, 0.0, 1.0, 9.0], 0.0), 1.0).unwrap();
    let src = Source {
        url: "u".into(),
        interval_s: 1.0,
        failed: 1,
        edge_failed: (true, false),
    };
    let client = ClientSide {
        failed: 0,
        requests: 10,
        ttft_mean_ms: Some(10.0),
        output_tokens: 400,
        input_tokens: 10,
    };
    let m = summarise(&[a, b], &src, &client);
    let r = &m.reconciliation;
    assert_eq!(r.agree, Some(false));
    assert!(
        r.disagreements
            .iter()
            .any(|d| d.contains("finished 8 requests")),
        "{:?}",
        r.disagreements
    );
    assert!(
        r.disagreements
            .iter()
            .any(|d| d.contains("output tokens") && d.contains("+25.0%"))
    );
    assert!(
        r.disagreements
            .iter()
            .any(|d| d.contains("do not time the same span"))
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("1 scrapes of the window failed"))
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("at the window's start failed"))
    );
}

#[test]
fn llamacpp_prompt_tokens_add_the_cached_ones() {
    let text = |uncached: f64, cached: f64, predicted: f64, busy: f64| {
        format!(
            "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total {uncached}\n# TYPE llamacpp:prompt_tokens_cached_total counter\nllamacpp:prompt_tokens_cached_total {cached}\n# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total {predicted}\n# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing {busy}\n"
        )
    };
    let a = parse(&text(10.0, 0.0, 1.0, 0.0), 0.0).unwrap();
    let b = parse(&text(310.0, 100.0, 65.0, 1.0), 2.0).unwrap();
    let src = Source {
        url: "u".into(),
        interval_s: 0.5,
        failed: 0,
        edge_failed: (false, false),
    };
    let m = summarise(&[a, b], &src, &ClientSide::default());
    assert_eq!(m.server, "llamacpp");
    assert_eq!(m.prompt_tokens, Some(400.0));
    assert_eq!(m.prompt_tokens_cached, Some(100.0));
    assert_eq!(m.prefix_cache_hit_ratio, Some(0.25));
    assert_eq!(m.generation_tokens, Some(64.0));
    assert_eq!(m.ttft_ms, None, "llama.cpp has no histograms");
    assert_eq!(m.reconciliation.agree, None, "the client counted nothing");
}

#[test]
fn resets_bad_text_and_empty_windows_are_reported_not_guessed() {
    assert!(parse("<html>not metrics</html>", 0.0).is_err());
    assert!(parse("", 0.0).is_err());
    let a = parse("# TYPE x_total counter\nx_total 50\n", 0.0).unwrap();
    let b = parse("# TYPE x_total counter\nx_total 3\n", 1.0).unwrap();
    let src = Source {
        url: "u".into(),
        interval_s: 1.0,
        failed: 0,
        edge_failed: (false, false),
    };
    let m = summarise(&[a, b], &src, &ClientSide::default());
    assert_eq!(m.server, "unknown");
    assert_eq!(
        m.raw["x_total_delta"], -47.0,
        "raw deltas are kept as measured"
    );
    let none = summarise(&[], &src, &ClientSide::default());
    assert!(none.notes[0].contains("no scrape of the window answered"));
}

#[test]
fn quantiles_interpolate_within_buckets() {
    let d = [(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
    assert_eq!(quantile(&d, 0.5), Some(1.0));
    assert_eq!(quantile(&d, 0.75), Some(1.5));
    assert_eq!(quantile(&d, 0.25), Some(0.5));
    assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
}

#[test]
fn quantiles_never_exceed_the_markov_bound() {
    // vLLM's queue times: 17 requests all in the first bucket (0.3 s), mean 18 us.
    let d = [(0.3, 17.0), (0.5, 17.0), (f64::INFINITY, 17.0)];
    let interpolated = quantile(&d, 0.5).unwrap();
    assert!((interpolated - 0.15).abs() < 1e-12);
    let mean = Some(0.000018);
    assert_eq!(markov_capped(Some(interpolated), mean, 0.5), Some(0.000036));
    assert!((markov_capped(quantile(&d, 0.99), mean, 0.99).unwrap() - 0.0018).abs() < 1e-12);
    // A bound above the interpolation changes nothing; no mean, no cap.
    assert_eq!(markov_capped(Some(0.15), Some(1.0), 0.5), Some(0.15));
    assert_eq!(markov_capped(Some(0.15), None, 0.5), Some(0.15));
}
