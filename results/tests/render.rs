//! Snapshot tests of every export format, on a report built from known values, and the
//! schema check of a full report.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use infermeter_results::render::{Format, render};
use infermeter_results::schema::validate_report_json;
use infermeter_results::*;

fn hist(values: &[f64]) -> LatencySummary {
    let mut h = LatencyHistogram::new();
    values.iter().for_each(|&v| h.record_ms(v));
    h.summary()
}

fn entry(name: &str, failed: u64, tasks: bool) -> ResultEntry {
    let mut by_class = BTreeMap::new();
    if failed > 0 {
        by_class.insert(ErrorClass::Timeout, failed);
    }
    ResultEntry {
        workload: WorkloadRef {
            name: name.into(),
            version: 1,
            spec_sha256: "ab".repeat(32),
            stream_sha256: "cd".repeat(32),
            seed: 7,
        },
        target: TargetInfo {
            kind: "local-cpu".into(),
            model: "smollm2-135m".into(),
            precision: "q4_1".into(),
            context_limit_tokens: Some(8192),
            weights: Some(WeightsInfo {
                source: WeightsSource::Gguf,
                path: Some("/models/smollm2.gguf".into()),
                sha256: "ef".repeat(32),
                seed: None,
                bytes: 98_000_000,
            }),
            settings: BTreeMap::from([("max_batch".to_string(), "16".to_string())]),
            prices: None,
        },
        load: LoadInfo {
            pattern: ArrivalPattern::Poisson,
            rate_rps: Some(2.0),
            concurrency: None,
            burstiness: None,
            warmup_requests: 1,
            max_requests: Some(4),
            max_duration_s: None,
            measured_s: 3.5,
        },
        engine: tasks.then(|| EngineStats {
            steps: 130,
            max_batch: 16,
            mean_seqs_per_step: 3.2,
            mean_batch_occupancy: 0.2,
            mean_tokens_per_step: 9.5,
            prompt_tokens: 800,
            prompt_tokens_cached: 600,
            prompt_tokens_computed: 200,
            cache_hit_ratio: Some(0.75),
            kv_block_tokens: 16,
            kv_blocks_total: 4096,
            kv_blocks_used_peak: 70,
            kv_evictions: 0,
            engine_queue_ms: hist(&[0.1, 0.2]),
            prefill_ms: hist(&[20.0, 30.0]),
            request_mean_batch: 3.1,
        }),
        requests: RequestCounts {
            sent: 4,
            ok: 4 - failed,
            failed,
            by_class,
            retries: 0,
            protocol_warnings: 0,
            stopped_early: 0,
        },
        tokens: TokenCounts {
            input: 800,
            output: 120,
            input_source: TokenSource::Engine,
            output_source: TokenSource::Engine,
            input_capped_requests: 0,
            input_cached: tasks.then_some(600),
            provenance: None,
        },
        latency: Latency {
            queue_ms: hist(&[0.01, 0.02, 0.02, 0.05]),
            ttft_ms: hist(&[120.0, 130.0, 150.0, 400.0]),
            ttft_from_intended_ms: hist(&[120.0, 130.0, 150.0, 400.0]),
            itl_ms: hist(&[15.0, 16.0, 17.0, 40.0]),
            chunk_gap_ms: hist(&[15.0, 16.0, 17.0, 40.0]),
            tpot_ms: hist(&[16.0, 16.5, 17.0, 18.0]),
            e2e_ms: hist(&[600.0, 640.0, 700.0, 900.0]),
            ttft_answer_ms: None,
        },
        throughput: Throughput {
            requests_per_s: 1.142857,
            input_tokens_per_s: 228.571,
            output_tokens_per_s: 34.2857,
            output_tokens_per_s_per_user: Some(60.6),
        },
        tasks: tasks.then(|| TaskStats {
            started: 2,
            completed: 2,
            failed: 0,
            task_ms: hist(&[2000.0, 2500.0]),
            calls_per_task: Some(2.0),
            input_tokens_per_task: Some(400.0),
            output_tokens_per_task: Some(60.0),
        }),
        cold_start: None,
        energy: None,
        cost: None,
        notes: if failed > 0 {
            vec!["a note, with a comma".into()]
        } else {
            vec![]
        },
    }
}

fn report() -> Report {
    Report {
        schema: REPORT_SCHEMA.into(),
        schema_version: REPORT_SCHEMA_VERSION.into(),
        tool: ToolInfo {
            version: "0.1.0".into(),
            git_sha: None,
        },
        run: RunInfo {
            id: "20261124T000000Z-quick".into(),
            started_at: "2026-11-24T00:00:00.000Z".into(),
            finished_at: "2026-11-24T00:01:00.000Z".into(),
            status: RunStatus::Complete,
            command: vec!["infermeter".into(), "run".into()],
            seed: 7,
        },
        hardware: Hardware {
            cpu_model: "test cpu".into(),
            cpu_logical_cores: 2,
            cpu_physical_cores: Some(2),
            memory_bytes: 1 << 34,
            os: "Linux".into(),
            kernel: None,
            arch: "x86_64".into(),
            gpus: vec![],
            gpu_probe: None,
            virtualization: vec![],
        },
        results: vec![
            entry("quick/chat-short", 0, true),
            entry("quick/classify-tiny", 1, false),
        ],
    }
}

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
    use infermeter_results::cost::{CostSource, cost_of, price_with_rate_card};
    use infermeter_results::{RateCard, TokenProvenance};
    let mut e = entry("agent-loop", 1, true);
    assert!(cost_of(&e).reason.unwrap().contains("local target"));
    e.target.kind = "openai".into();
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
        Some(((0.00288 / tasks.started as f64) * 1e6).round() / 1e6)
    );
    // With a rate card on the target, the report's own cost is this one.
    e.target.prices = Some(card);
    assert_eq!(cost_of(&e), c);
}
