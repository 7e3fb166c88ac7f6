//! The load driver on tokio's paused clock: deterministic tests of when requests are
//! sent and what is measured, against a scripted target whose timing is exact.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

mod common;

use async_trait::async_trait;
use infermeter::driver::{Interrupt, Measurement, run_load_point};
use infermeter::record::RequestRecord;
use infermeter::run::builder::{PointBuilder, PointFacts, PointPlan};
use results::{ErrorClass, NotSentReason, ResultEntry, TargetInfo, TokenSource};
use tokio::sync::{mpsc, watch};
use workloads::generate::generate;
use workloads::spec::WorkloadSpec;
use workloads::{Backend, BackendError, Completion, PrepareError, Request, StreamSink};

/// Answers after `ttft`, then one token every `itl`, tracking requests in flight.
struct Scripted {
    ttft: Duration,
    itl: Duration,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
}

impl Scripted {
    fn new(ttft_ms: u64, itl_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            ttft: Duration::from_millis(ttft_ms),
            itl: Duration::from_millis(itl_ms),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
        })
    }
}

struct InFlight<'a>(&'a AtomicU32);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for Scripted {
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
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        tokio::time::sleep(self.ttft).await;
        sink.on_tokens(1);
        for _ in 1..req.max_output_tokens {
            tokio::time::sleep(self.itl).await;
            sink.on_tokens(1);
        }
        Ok(common::completion(req))
    }
}

/// Whether an HDR summary value is `want` within the histogram's 0.1% resolution.
fn hdr_eq(got: Option<f64>, want: f64) -> bool {
    got.is_some_and(|g| g >= want && g <= want * 1.001)
}

fn spec(load: &str, session: &str) -> WorkloadSpec {
    let text = format!(
        "format = 1\nname = \"t\"\nversion = 1\n[load]\n{load}\n{session}\n[input]\ndist = \"fixed\"\nvalue = 8.0\n[output]\ndist = \"fixed\"\nvalue = 5.0\n"
    );
    WorkloadSpec::from_toml(&text, "test").unwrap()
}

async fn run(
    backend: Arc<dyn Backend>,
    spec: &WorkloadSpec,
    max_duration: Option<Duration>,
    drain: Duration,
) -> (Vec<RequestRecord>, ResultEntry, infermeter::driver::Outcome) {
    let stream = generate(spec, 1);
    let plan = PointPlan {
        target: 0,
        spec: spec.clone(),
        seed: 1,
        repeat: None,
    };
    let mut builder = PointBuilder::new(
        plan,
        &stream,
        stream.digest(),
        common::scripted_info(),
        None,
        None,
    );
    let lp = common::load_point(spec, stream, max_duration, drain);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_irq_tx, irq_rx) = watch::channel(Interrupt::None);
    let outcome = run_load_point(backend, lp, tx, irq_rx).await;
    let mut records = Vec::new();
    while let Ok(m) = rx.try_recv() {
        // Cold-start probes come back as records flagged `cold_start`, which the
        // builder keeps apart.
        let (Measurement::Request(r) | Measurement::ColdStart(r)) = m;
        builder.add(&r);
        records.push(*r);
    }
    records.sort_by_key(|r| r.request);
    let entry = builder.finish(PointFacts::of(&outcome)).entry;
    (records, entry, outcome)
}

#[tokio::test(start_paused = true)]
async fn open_loop_sends_are_not_delayed_by_slow_responses() {
    // 2 sessions/s, each response takes 10 s: 20 requests are in flight at once, and
    // every send still happens exactly on schedule.
    let backend = Scripted::new(10_000, 10);
    let spec = spec("arrival = \"constant\"\nrate_rps = 2.0\nrequests = 20", "");
    let (records, e, _) = run(backend.clone(), &spec, None, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 20);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.scheduled_s, i as f64 * 0.5, "request {i}");
        assert_eq!(r.sent_s, r.scheduled_s, "request {i} was sent late");
        assert_eq!(r.queue_ms, 0.0);
        assert_eq!(r.status, "ok");
    }
    assert_eq!(backend.max_in_flight.load(Ordering::SeqCst), 20);
    assert_eq!(e.requests.ok, 20);
    assert_eq!(
        (e.requests.planned, e.requests.not_sent.len()),
        (Some(20), 0)
    );
    // Last send at 9.5 s, + 10 s to first token + 4 x 10 ms.
    assert!(
        (e.load.measured_s - 19.54).abs() < 1e-6,
        "{}",
        e.load.measured_s
    );
}

#[tokio::test(start_paused = true)]
async fn timings_are_exact_against_a_scripted_target() {
    let backend = Scripted::new(250, 40);
    let spec = spec("arrival = \"constant\"\nrate_rps = 1.0\nrequests = 3", "");
    let (records, e, _) = run(backend, &spec, None, Duration::from_secs(30)).await;
    for r in &records {
        assert_eq!(r.ttft_ms, Some(250.0));
        assert_eq!(r.ttft_from_intended_ms, Some(250.0));
        assert_eq!(r.e2e_ms, 250.0 + 4.0 * 40.0);
        assert_eq!(r.tpot_ms, Some(40.0));
        assert_eq!(r.output_tokens, 5);
        assert_eq!(r.output_source, TokenSource::ServerUsage);
    }
    let lat = &e.latency;
    assert_eq!(lat.itl_ms.count, 12); // 3 requests x 4 gaps
    assert!(hdr_eq(lat.itl_ms.p50, 40.0), "{:?}", lat.itl_ms.p50);
    assert!(hdr_eq(lat.ttft_ms.p99, 250.0), "{:?}", lat.ttft_ms.p99);
    let per_user = e.throughput.output_tokens_per_s_per_user.unwrap();
    assert!((per_user - 25.0).abs() < 25.0 * 0.001, "{per_user}");
}

#[tokio::test(start_paused = true)]
async fn closed_loop_keeps_exactly_concurrency_in_flight() {
    let backend = Scripted::new(100, 10);
    let spec = spec("arrival = \"closed\"\nconcurrency = 3\nrequests = 12", "");
    let (records, e, _) = run(backend.clone(), &spec, None, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 12);
    assert_eq!(backend.max_in_flight.load(Ordering::SeqCst), 3);
    // 12 requests of 140 ms, 3 at a time: 4 rounds.
    assert!(
        (e.load.measured_s - 0.56).abs() < 1e-6,
        "{}",
        e.load.measured_s
    );
    // Under a second from the first to the last send: no steady state.
    assert_eq!(e.throughput.steady_state, None);
}

#[tokio::test(start_paused = true)]
async fn session_calls_follow_completion_plus_think_time() {
    let backend = Scripted::new(100, 10);
    let spec = spec(
        "arrival = \"constant\"\nrate_rps = 1.0\nrequests = 3",
        "[session]\ncalls = { min = 3, max = 3 }\nthink_time_ms = { dist = \"fixed\", value = 500.0 }\nreport_tasks = true",
    );
    let (records, e, _) = run(backend, &spec, None, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 3);
    // Each call takes 140 ms; the next is intended 500 ms after it.
    assert_eq!(
        records.iter().map(|r| r.scheduled_s).collect::<Vec<_>>(),
        vec![0.0, 0.64, 1.28]
    );
    let tasks = e.tasks.unwrap();
    assert_eq!((tasks.started, tasks.completed), (1, 1));
    assert!(hdr_eq(tasks.task_ms.max, 1420.0), "{:?}", tasks.task_ms.max);
    assert_eq!(tasks.calls_per_task, Some(3.0));
}

#[tokio::test(start_paused = true)]
async fn duration_bound_stops_sending_and_the_drain_deadline_cancels() {
    // Responses take 100 s; sending stops at 3 s; in-flight work gets 5 s more.
    let backend = Scripted::new(100_000, 10);
    let spec = spec("arrival = \"constant\"\nrate_rps = 1.0\nrequests = 50", "");
    let (records, e, outcome) = run(
        backend,
        &spec,
        Some(Duration::from_secs(3)),
        Duration::from_secs(5),
    )
    .await;
    assert!(outcome.duration_hit);
    assert!(outcome.drain_cancelled);
    assert_eq!(records.len(), 3, "sends at 0, 1, 2 s; none at or after 3 s");
    assert_eq!(outcome.sessions_not_started, 47);
    for r in &records {
        assert_eq!(r.error_class, Some(ErrorClass::Cancelled));
        assert_eq!(r.ttft_ms, None);
        assert!(
            (r.sent_s + r.e2e_ms / 1000.0 - 8.0).abs() < 1e-6,
            "cancelled at 3 + 5 s"
        );
    }
    assert_eq!(e.requests.by_class.get(&ErrorClass::Cancelled), Some(&3));
    // Nothing is dropped unsaid: the 47 calls never sent are counted with their reason.
    assert_eq!(e.requests.planned, Some(50));
    assert_eq!(
        e.requests.not_sent.get(&NotSentReason::DurationBound),
        Some(&47)
    );
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("47 sessions not started, 47 planned calls not sent")),
        "{:?}",
        e.notes
    );
}

#[tokio::test(start_paused = true)]
async fn cold_start_probes_wait_out_their_idle_period_and_stay_apart() {
    let backend = Scripted::new(100, 10);
    let spec = spec(
        "arrival = \"constant\"\nrate_rps = 1.0\nrequests = 2\ncold_start = { idle_s = 30.0, probes = 2 }",
        "",
    );
    let (records, e, _) = run(backend, &spec, None, Duration::from_secs(30)).await;
    let (cold, warm): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.cold_start);
    assert_eq!((cold.len(), warm.len()), (2, 2));
    // Probe 1 at 30 s; it takes 140 ms; probe 2 after another 30 s of silence.
    assert_eq!(cold[0].sent_s, 30.0);
    assert_eq!(cold[1].sent_s, 60.14);
    assert!(
        cold.iter()
            .all(|r| r.ttft_ms == Some(100.0) && r.queue_ms == 0.0)
    );
    // The measured load point never saw them; its cold-start figures did.
    assert_eq!(e.requests.sent, 2);
    assert_eq!(e.cold_start.unwrap().probes, 2);
}

#[tokio::test(start_paused = true)]
async fn calls_a_run_cannot_send_are_counted_with_their_reason() {
    // Sessions of 3 calls, 20 requests asked: 7 whole sessions, 21 planned. A think
    // time of 10 s against a duration bound of 5 s: only each session's first call
    // is sent, and the calls after it are counted, not waited for.
    let backend = Scripted::new(100, 10);
    let spec = spec(
        "arrival = \"constant\"\nrate_rps = 10.0\nrequests = 20",
        "[session]\ncalls = { min = 3, max = 3 }\nthink_time_ms = { dist = \"fixed\", value = 10000.0 }",
    );
    let (records, e, outcome) = run(
        backend,
        &spec,
        Some(Duration::from_secs(5)),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 7);
    assert_eq!(e.load.max_requests, Some(20));
    assert_eq!(e.requests.planned, Some(21));
    assert_eq!(
        e.requests.not_sent.get(&NotSentReason::DurationBound),
        Some(&14)
    );
    assert_eq!(e.requests.sent + 14, 21);
    // Not waited for: the run ends with its last response, not at the bound.
    assert!(!outcome.duration_hit, "the bound was not waited out");
    let said = e.notes.join(" | ");
    assert!(
        said.contains("21 requests planned for the 20 asked"),
        "{said}"
    );
    assert!(
        said.contains("14 planned calls not sent: their think time ended after the duration bound"),
        "{said}"
    );
}

/// A target whose every second request fails.
struct Flaky(AtomicU32);

#[async_trait]
impl Backend for Flaky {
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
        tokio::time::sleep(Duration::from_millis(10)).await;
        if self.0.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
            return Err(BackendError::new(ErrorClass::HttpStatus, "HTTP 500"));
        }
        sink.on_tokens(req.max_output_tokens);
        Ok(common::completion(req))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_ends_its_session_and_its_other_calls_are_counted() {
    // One session of 4 calls: call 1 succeeds, call 2 fails, calls 3 and 4 are never
    // sent, and the task is started but not completed.
    let spec = spec(
        "arrival = \"closed\"\nconcurrency = 1\nrequests = 4",
        "[session]\ncalls = { min = 4, max = 4 }\nthink_time_ms = { dist = \"fixed\", value = 0.0 }\nreport_tasks = true",
    );
    let backend = Arc::new(Flaky(AtomicU32::new(0)));
    let (_, e, _) = run(backend, &spec, None, Duration::from_secs(30)).await;
    assert_eq!((e.requests.sent, e.requests.failed), (2, 1));
    assert_eq!(
        e.requests.not_sent.get(&NotSentReason::AfterFailedCall),
        Some(&2)
    );
    let t = e.tasks.unwrap();
    assert_eq!((t.started, t.completed, t.failed), (1, 0, 1));
}
