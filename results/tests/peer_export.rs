//! Snapshot tests of the exports in other tools' formats (`vllm-bench`, `aiperf`,
//! `guidellm`) on a report built from known values (and, for GuideLLM, known
//! requests), the figures both tools define checked against the report's own, and
//! what GuideLLM's report cannot hold refused.

#![allow(clippy::unwrap_used)]

use infermeter_results::peer_export::{self, PeerFormat, export};
use infermeter_results::*;

mod common;

/// A remote, streamed, closed-loop result beside the common report's local ones, so
/// that both exports' remote-only fields (AIPerf's input configuration) are covered.
fn report() -> Report {
    let mut r = common::report();
    let mut remote = common::entry("quick/chat-short", 0, false);
    remote.target.kind = "openai".into();
    remote.target.model = "SmolLM2-135M".into();
    remote.target.precision = "not stated".into();
    remote.target.api = Some(Api::Chat);
    remote.target.locality = Locality::Remote;
    remote.target.device = None;
    remote.target.settings = [(
        "base_url".to_string(),
        "http://127.0.0.1:8080/v1".to_string(),
    )]
    .into_iter()
    .collect();
    remote.load.pattern = ArrivalPattern::Closed;
    remote.load.rate_rps = None;
    remote.load.concurrency = Some(2);
    r.results.push(remote);
    r
}

fn files(format: PeerFormat) -> Vec<(String, serde_json::Value)> {
    export(&report(), format, None)
        .unwrap()
        .into_iter()
        .map(|f| (f.path.display().to_string(), f.json))
        .collect()
}

#[test]
fn vllm_bench_snapshot() {
    insta::assert_json_snapshot!(files(PeerFormat::VllmBench));
}

#[test]
fn aiperf_snapshot() {
    insta::assert_json_snapshot!(files(PeerFormat::Aiperf));
}

/// The figures both tools define equal the report's after the unit mapping: counts,
/// throughputs, the measured window (s), mean latencies (ms) and the extremes from the
/// histograms; every percentile lies between them.
#[test]
fn shared_figures_equal_the_reports() {
    let r = report();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs().max(1.0);
    assert_eq!(files(PeerFormat::VllmBench).len(), r.results.len());
    assert_eq!(files(PeerFormat::Aiperf).len(), r.results.len());
    for ((_, v), e) in files(PeerFormat::VllmBench).iter().zip(&r.results) {
        assert_eq!(v["completed"], e.requests.ok);
        assert_eq!(v["failed"], e.requests.failed);
        assert_eq!(v["duration"], e.load.measured_s);
        assert_eq!(v["request_throughput"], e.throughput.requests_per_s);
        assert_eq!(v["output_throughput"], e.throughput.output_tokens_per_s);
        assert_eq!(v["total_output_tokens"], e.tokens.output);
        let l = &e.latency;
        for (name, s) in [
            ("ttft", &l.ttft_ms),
            ("tpot", &l.tpot_ms),
            ("itl", &l.chunk_gap_ms),
            ("e2el", &l.e2e_ms),
        ] {
            let mean = v[format!("mean_{name}_ms")].as_f64().unwrap();
            assert!(
                close(mean, s.mean.unwrap()),
                "{name}: {mean} vs {:?}",
                s.mean
            );
            let p999 = v[format!("p99.9_{name}_ms")].as_f64().unwrap();
            assert!(
                p999 >= s.min.unwrap() - 1e-9 && p999 <= s.max.unwrap() + 1e-9,
                "{name}"
            );
        }
        assert_eq!(v["infermeter"]["run_id"], r.run.id.as_str());
    }
    for ((path, v), e) in files(PeerFormat::Aiperf).iter().zip(&r.results) {
        assert!(path.ends_with("/profile_export_aiperf.json"), "{path}");
        assert_eq!(v["request_count"]["avg"], e.requests.ok as f64);
        assert_eq!(v["error_request_count"]["avg"], e.requests.failed as f64);
        assert_eq!(v["benchmark_duration"]["unit"], "sec");
        assert_eq!(v["benchmark_duration"]["avg"], e.load.measured_s);
        let lat = &v["request_latency"];
        assert_eq!(lat["unit"], "ms");
        assert_eq!(lat["count"], e.latency.e2e_ms.count);
        assert!(close(
            lat["avg"].as_f64().unwrap(),
            e.latency.e2e_ms.mean.unwrap()
        ));
        assert_eq!(lat["min"].as_f64(), e.latency.e2e_ms.min);
        assert_eq!(lat["max"].as_f64(), e.latency.e2e_ms.max);
        assert_eq!(v["time_to_first_token"]["count"], e.latency.ttft_ms.count);
        // The mean lengths only where every request succeeded.
        assert_eq!(
            v.get("output_sequence_length").is_some(),
            e.requests.failed == 0,
            "{path}"
        );
    }
}

/// A remote target's export names its endpoint and phase for AIPerf; a local one has
/// no URL, and none is made up.
#[test]
fn aiperf_input_config_only_where_the_endpoint_is_known() {
    let f = files(PeerFormat::Aiperf);
    assert!(f[0].1.get("input_config").is_none());
    let c = &f[2].1["input_config"];
    assert_eq!(c["endpoint"]["urls"][0], "http://127.0.0.1:8080/v1");
    assert_eq!(c["phases"][0]["type"], "concurrency");
    assert_eq!(c["phases"][0]["concurrency"], 2);
}

#[test]
fn a_report_without_results_is_refused() {
    let mut r = common::report();
    r.results.clear();
    let err = export(&r, PeerFormat::Aiperf, None)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "the report has no results to export");
}

/// Two load points of one name (two targets with one label) are written to two files.
#[test]
fn load_points_of_one_name_get_numbered_files() {
    let mut r = common::report();
    let twin = r.results[0].clone();
    r.results.push(twin);
    let vllm: Vec<_> = export(&r, PeerFormat::VllmBench, None)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(
        vllm[0].display().to_string(),
        "quick_chat-short-poisson_2_rps-local-cpu_smollm2-135m_q4_1.json"
    );
    assert_eq!(
        vllm[2].display().to_string(),
        "quick_chat-short-poisson_2_rps-local-cpu_smollm2-135m_q4_1-2.json"
    );
    let aiperf: Vec<_> = export(&r, PeerFormat::Aiperf, None)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(
        aiperf[2].display().to_string(),
        "quick_chat-short-poisson_2_rps-local-cpu_smollm2-135m_q4_1-2/profile_export_aiperf.json"
    );
}

/// Without streaming, TTFT is the whole response's arrival: vLLM's TTFT is left null.
#[test]
fn vllm_ttft_is_null_without_streaming() {
    let mut r = common::report();
    r.results[0].target.streamed = false;
    let v = &export(&r, PeerFormat::VllmBench, None).unwrap()[0].json;
    assert!(v["mean_ttft_ms"].is_null() && v["p99_ttft_ms"].is_null());
    assert!(v["mean_e2el_ms"].is_number());
}

/// Three requests of the remote closed-loop point: a session's two calls (two turns)
/// and a failed first call.
fn guidellm_requests() -> Vec<peer_export::PeerRequest> {
    let req = |request: u64, session: u64, call: u32, sent_s: f64| peer_export::PeerRequest {
        seed: 1,
        request,
        session,
        call,
        scheduled_s: sent_s - 0.001,
        sent_s,
        ttft_ms: Some(40.0),
        ttft_answer_ms: Some(40.0),
        e2e_ms: 100.0,
        chunk_gaps_ms: Some(56.0),
        chunks: 8,
        input_tokens: 120,
        output_tokens: 8,
        max_output_tokens: 8,
        error: None,
    };
    let failed = peer_export::PeerRequest {
        ttft_ms: None,
        ttft_answer_ms: None,
        chunk_gaps_ms: None,
        chunks: 0,
        output_tokens: 0,
        e2e_ms: 3.5,
        error: Some("connection refused".into()),
        ..req(2, 1, 0, 0.05)
    };
    vec![req(0, 0, 0, 0.0), req(1, 0, 1, 0.11), failed]
}

fn guidellm_report() -> Report {
    let mut r = report();
    let mut e = r.results.pop().unwrap();
    e.load.window_start = Some("2026-12-03T10:00:00.000000Z".into());
    e.load.measured_s = 0.21;
    r.results = vec![e];
    r
}

#[test]
fn guidellm_snapshot() {
    let files = export(
        &guidellm_report(),
        PeerFormat::Guidellm,
        Some(&[guidellm_requests()]),
    )
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path.display().to_string(), "benchmarks.json");
    insta::assert_json_snapshot!(files[0].json);
}

/// What GuideLLM's report cannot hold is refused with the reason: gamma arrivals,
/// load points of two arrival patterns, a report without clock times, no requests.
#[test]
fn guidellm_refuses_what_it_cannot_say() {
    let reqs = [guidellm_requests()];
    let err = |r: &Report, q: Option<&[Vec<peer_export::PeerRequest>]>| {
        export(r, PeerFormat::Guidellm, q).unwrap_err().to_string()
    };
    let mut gamma = guidellm_report();
    gamma.results[0].load.pattern = ArrivalPattern::Gamma;
    assert!(err(&gamma, Some(&reqs)).contains("gamma"));
    let mut mixed = guidellm_report();
    let mut open = mixed.results[0].clone();
    open.load.pattern = ArrivalPattern::Poisson;
    open.load.rate_rps = Some(2.0);
    mixed.results.push(open);
    let two = [guidellm_requests(), guidellm_requests()];
    assert!(err(&mixed, Some(&two)).contains("one profile"));
    let mut no_clock = guidellm_report();
    no_clock.results[0].load.window_start = None;
    assert!(err(&no_clock, Some(&reqs)).contains("measured window"));
    assert!(err(&guidellm_report(), None).contains("requests"));
    assert!(err(&guidellm_report(), Some(&two)).contains("2 sets of requests"));
}
