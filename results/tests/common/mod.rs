//! Reports built from known values, shared by the results crate's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use infermeter_results::*;

pub fn hist(values: &[f64]) -> LatencySummary {
    let mut h = LatencyHistogram::new();
    values.iter().for_each(|&v| h.record_ms(v));
    h.summary()
}

pub fn entry(name: &str, failed: u64, tasks: bool) -> ResultEntry {
    let mut by_class = BTreeMap::new();
    if failed > 0 {
        by_class.insert(ErrorClass::Timeout, failed);
    }
    ResultEntry {
        repeat: None,
        workload: WorkloadRef {
            name: name.into(),
            version: 1,
            spec_sha256: "ab".repeat(32),
            stream_sha256: "cd".repeat(32),
            seed: 7,
            shard: None,
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
            locality: Locality::Local,
            device: Some(Device::Cpu),
            streamed: true,
            token_counter: "engine".into(),
            api: None,
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
            window_start: None,
            window_end: None,
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
            prefill_busy_s: Some(0.4),
            decode_busy_s: Some(1.2),
            decode_steps: Some(90),
            decode_step_tokens: Some(100),
            decode_step_busy_s: Some(1.0),
        }),
        requests: RequestCounts {
            sent: 4,
            ok: 4 - failed,
            failed,
            by_class,
            retries: 0,
            protocol_warnings: 0,
            stopped_early: 0,
            planned: Some(4),
            not_sent: BTreeMap::new(),
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
            ci95: None,
            steady_state: None,
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
        roofline: None,
        quality: None,
        verification: None,
        server: None,
        saturation: None,
        client: None,
        slo: None,
        notes: if failed > 0 {
            vec!["a note, with a comma".into()]
        } else {
            vec![]
        },
    }
}

pub fn report() -> Report {
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
        repeat_spread: vec![],
        search: vec![],
    }
}

/// Limits of a made-up device and a small model's shape, for roofline figures.
#[allow(dead_code)]
pub fn roofline_basis(device: &str) -> (DeviceLimits, ModelShape) {
    (
        DeviceLimits {
            device: device.into(),
            name: "test device".into(),
            threads: Some(2),
            buffer_bytes: 256 << 20,
            copy_gb_per_s: 40.0,
            read_gb_per_s: 35.0,
            triad_gb_per_s: Some(38.0),
            matmul_gflop_per_s: BTreeMap::from([("q4_1".into(), 90.0)]),
            matmul_shape: "128x1024x1024".into(),
            matmul_engine: "test".into(),
        },
        ModelShape {
            model: "smollm2-135m".into(),
            precision: "q4_1".into(),
            shared_weight_bytes: 90_000_000,
            expert_weight_bytes: 0,
            experts: 0,
            experts_per_token: 0,
            moe_layers: 0,
            kv_bytes_per_token: 46_080,
            matrix_flop_per_token: 2.0 * 106e6,
            head_flop_per_token: 2.0 * 28e6,
            attention_flop_per_position: 4.0 * 30.0 * 576.0,
        },
    )
}
