//! `--shard I/N` on tokio's paused clock: N shards of a seeded stream, run against a
//! deterministic target (each request's timing depends on the request alone), merge
//! into exactly the counts and histograms of one unsharded run.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

mod common;

use async_trait::async_trait;
use infermeter::driver::{Interrupt, Measurement, run_load_point};
use infermeter::run::builder::{PointBuilder, PointFacts, PointPlan};
use results::{
    REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Report, ResultEntry, RunInfo, RunStatus, ShardRef,
    TargetInfo, ToolInfo,
};
use tokio::sync::{mpsc, watch};
use workloads::generate::{RequestStream, generate};
use workloads::spec::WorkloadSpec;
use workloads::{Backend, BackendError, Completion, PrepareError, Request, StreamSink};

/// First token after 20 + (input tokens mod 37) ms, then a token every
/// 2 + (session mod 5) ms: the same for a request whoever else is in flight.
struct PerRequest;

#[async_trait]
impl Backend for PerRequest {
    fn describe(&self) -> TargetInfo {
        common::scripted_info()
    }
    async fn prepare(&self) -> Result<(), PrepareError> {
        Ok(())
    }
    async fn generate(
        &self,
        req: &Request,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, BackendError> {
        let ttft = 20 + u64::from(req.input_tokens() % 37);
        tokio::time::sleep(Duration::from_millis(ttft)).await;
        sink.on_tokens(1);
        for _ in 1..req.max_output_tokens {
            tokio::time::sleep(Duration::from_millis(2 + req.session % 5)).await;
            sink.on_tokens(1);
        }
        Ok(common::completion(req))
    }
}

fn spec() -> WorkloadSpec {
    let text = "format = 1\nname = \"sharded\"\nversion = 1\n[load]\narrival = \"poisson\"\nrate_rps = 5.0\nrequests = 60\nwarmup_requests = 0\n[session.calls]\nmin = 1\nmax = 3\n[session.think_time_ms]\ndist = \"fixed\"\nvalue = 50.0\n[input]\ndist = \"uniform\"\nmin = 20.0\nmax = 400.0\n[output]\ndist = \"uniform\"\nmin = 2.0\nmax = 40.0\n";
    WorkloadSpec::from_toml(text, "test").unwrap()
}

async fn run(
    spec: &WorkloadSpec,
    stream: RequestStream,
    digest: &str,
    shard: Option<ShardRef>,
) -> Report {
    let plan = PointPlan {
        target: 0,
        spec: spec.clone(),
        seed: 9,
        repeat: None,
    };
    let mut builder = PointBuilder::new(
        plan,
        &stream,
        digest.into(),
        PerRequest.describe(),
        None,
        shard,
    );
    let lp = common::load_point(spec, stream, None, Duration::from_secs(60));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_irq_tx, irq_rx) = watch::channel(Interrupt::None);
    let outcome = run_load_point(Arc::new(PerRequest), lp, tx, irq_rx).await;
    while let Ok(m) = rx.try_recv() {
        if let Measurement::Request(r) = m {
            builder.add(&r);
        }
    }
    let e: ResultEntry = builder.finish(PointFacts::of(&outcome)).entry;
    Report {
        schema: REPORT_SCHEMA.into(),
        schema_version: REPORT_SCHEMA_VERSION.into(),
        tool: ToolInfo {
            version: "test".into(),
            git_sha: None,
        },
        run: RunInfo {
            id: format!("shard-{shard:?}"),
            started_at: "2026-11-25T00:00:00Z".into(),
            finished_at: "2026-11-25T00:00:01Z".into(),
            status: RunStatus::Complete,
            command: vec![],
            seed: 9,
        },
        hardware: infermeter::hardware::fingerprint(),
        results: vec![e],
        repeat_spread: vec![],
        search: vec![],
    }
}

#[tokio::test(start_paused = true)]
async fn three_shards_merge_into_exactly_the_whole_run() {
    let spec = spec();
    let whole_stream = generate(&spec, 9);
    let digest = whole_stream.digest();
    let whole = run(&spec, whole_stream.clone(), &digest, None).await;
    let mut shards = Vec::new();
    for i in 0..3 {
        let part = whole_stream.shard(i, 3).unwrap();
        shards.push(
            run(
                &spec,
                part,
                &digest,
                Some(ShardRef {
                    index: i + 1,
                    count: 3,
                }),
            )
            .await,
        );
    }
    let merged = results::merge::merge(&shards, vec![]).unwrap();
    let (m, w) = (&merged.results[0], &whole.results[0]);
    assert_eq!(m.workload.shard, None);
    assert_eq!(m.requests, w.requests);
    assert_eq!(m.tokens, w.tokens);
    assert_eq!(
        m.tasks.as_ref().unwrap().started,
        w.tasks.as_ref().unwrap().started
    );
    let pairs = [
        (&m.latency.ttft_ms, &w.latency.ttft_ms),
        (&m.latency.itl_ms, &w.latency.itl_ms),
        (&m.latency.tpot_ms, &w.latency.tpot_ms),
        (&m.latency.e2e_ms, &w.latency.e2e_ms),
        (&m.latency.queue_ms, &w.latency.queue_ms),
    ];
    for (a, b) in pairs {
        assert!(a.count > 0);
        // Every bucket: the merged histogram re-encodes to the whole run's bytes.
        assert_eq!(a, b);
    }

    // An incomplete or repeated set of shards is refused.
    let e = results::merge::merge(&shards[..2], vec![]).unwrap_err();
    assert!(e.0.contains("not one complete set"), "{e}");
    let e = results::merge::merge(
        &[shards[0].clone(), shards[0].clone(), shards[1].clone()],
        vec![],
    )
    .unwrap_err();
    assert!(e.0.contains("not one complete set"), "{e}");
}
