//! Timing accuracy against ground truth: the scripted loopback server logs when each
//! request reached its socket (the kernel's receive timestamp), when it wrote each
//! token chunk and when it wrote the last bytes; the real `infermeter` binary measures
//! the same requests. Per request, the absolute error of TTFT, of every per-token ITL
//! and of E2E is the difference between the client's figure and the server's (both
//! are durations on one machine's monotonic clock, so no clock is shared between the
//! processes). The schedule lag (actual minus intended send) is held to the same
//! bounds.
//!
//! Stated bounds (README, "Timing accuracy"), on a 2-core machine, for TTFT, ITL and
//! E2E, in a closed loop and in an open loop: p50 absolute error under 0.3 ms and p99
//! under 1 ms with a release build (`cargo test --release --test timing_accuracy`, the
//! build users run); p50 under 0.5 ms and p99 under 2 ms with the test suite's debug
//! build, whose client does the same work several times slower. What the error
//! contains: the client's dispatch of the request to its connection, loopback transit,
//! and the client's wake-up and reading when the bytes arrive (the server's own
//! wake-up is outside it: the truth starts at the kernel's receive time). On an idle
//! VM the client's wake-up after idling dominates (release, development VM, 5 runs:
//! TTFT p50 0.084-0.092 ms in the open loop, 0.160-0.197 ms in the closed loop, where
//! the client idles through each TTFT).
//!
//! The bounds hold on a quiet machine. What the machine itself adds is measured in the
//! same run: a canary thread of the test process sleeps 1 ms at a time and keeps how
//! late it woke (other processes on the 2 cores, time the hypervisor took). Each bound
//! widens by the canary's delay at the same percentile, once per wake-up the figure
//! contains (one for a response's bytes; two for a scheduled send: the launch thread,
//! then the event loop). A run that still breaks a bound while the canary stalled for
//! longer than the p99 bound is measured again, at most 3 runs; on a quiet machine the
//! first broken bound fails the test.
//!
//! This file holds one test, so that it runs alone (test binaries run one at a time).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{infermeter, run_ok};
use scripted::{Pace, Script, ScriptedServer};
use serde_json::Value;

/// p50 and p99 bounds on the absolute error, ms, by build.
const P50_BOUND_MS: f64 = if cfg!(debug_assertions) { 0.5 } else { 0.3 };
const P99_BOUND_MS: f64 = if cfg!(debug_assertions) { 2.0 } else { 1.0 };

fn workload(dir: &Path, load: &str, requests: u32, output: u32) -> String {
    let path = dir.join(format!("timing-{requests}.toml"));
    std::fs::write(
        &path,
        format!(
            "format = 1\nname = \"timing\"\nversion = 1\nseed = 5\n[load]\n{load}\nrequests = {requests}\nwarmup_requests = 2\n[input]\ndist = \"fixed\"\nvalue = 32.0\n[output]\ndist = \"fixed\"\nvalue = {output}.0\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Nearest-rank percentile.
fn pct(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Absolute errors of one run: (TTFT, ITL per token, E2E), ms.
fn errors(
    server: &ScriptedServer,
    records: &[Value],
    warmup: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    // Warm-up requests arrive first; the rest arrive in the order they were sent
    // (sends are spaced far apart compared with loopback transit).
    let log = server.log();
    let log = &log[warmup..];
    let mut recs: Vec<&Value> = records.iter().collect();
    recs.sort_by(|a, b| {
        f64::total_cmp(
            &a["sent_s"].as_f64().unwrap(),
            &b["sent_s"].as_f64().unwrap(),
        )
    });
    assert_eq!(
        log.len(),
        recs.len(),
        "the server saw every measured request once"
    );
    let (mut ttft, mut itl, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    for (l, r) in log.iter().zip(recs) {
        assert_eq!(r["status"], "ok", "{r}");
        ttft.push((r["ttft_ms"].as_f64().unwrap() - l.ttft_ms().unwrap()).abs());
        e2e.push((r["e2e_ms"].as_f64().unwrap() - l.e2e_ms().unwrap()).abs());
        let measured: Vec<f64> = r["itl_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let truth = l.chunk_gaps_ms();
        assert_eq!(measured.len(), truth.len(), "one token per chunk: {r}");
        itl.extend(measured.iter().zip(&truth).map(|(m, t)| (m - t).abs()));
    }
    (ttft, itl, e2e)
}

/// A thread that sleeps 1 ms at a time while a run is measured and keeps how late
/// each wake-up was: what the machine itself did to a thread of this process (other
/// processes on its 2 cores, the hypervisor), beside the client's errors.
struct Canary {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl Canary {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut late_ms = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let asked = Duration::from_millis(1);
                let t = Instant::now();
                std::thread::sleep(asked);
                late_ms.push((t.elapsed().saturating_sub(asked)).as_secs_f64() * 1e3);
            }
            late_ms
        });
        Self { stop, thread }
    }

    /// Every wake-up delay seen, ms.
    fn stop(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// One measured run: the bounds it broke (empty when it met them all) and the
/// canary's longest stall over the run, ms.
fn measure(dir: &Path, load: &str, requests: u32, label: &str) -> (Vec<String>, f64) {
    let pace = Pace {
        ttft_ms: 12.0,
        itl_ms: 3.0,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let wl = workload(dir, load, requests, 12);
    let out = dir.join(label);
    let _ = std::fs::remove_dir_all(&out);
    let target = format!(
        "openai,base_url={},model=scripted,preflight=false",
        server.base_url()
    );
    let canary = Canary::start();
    run_ok(
        infermeter()
            .args(["run", "--quiet", "--target", &target, "--workload", &wl])
            .arg("--out")
            .arg(&out),
    );
    let late = canary.stop();
    let stall_ms = pct(&late, 1.0);
    eprintln!(
        "{label}: canary wake-up delay over {} sleeps: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {stall_ms:.3} ms",
        late.len(),
        pct(&late, 0.5),
        pct(&late, 0.99),
        pct(&late, 0.999)
    );
    let records: Vec<Value> = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), requests as usize);
    let (ttft, itl, e2e) = errors(&server, &records, 2);
    eprintln!(
        "{label}: {} connections for {} requests; the machine's longest stall of a \
         sleeping thread {stall_ms:.3} ms",
        server.connections(),
        server.arrivals()
    );
    // Sends go when scheduled: the open loop's launch thread wakes tens of
    // microseconds late, where tokio's 1 ms timer would make every send up to 1 ms
    // late.
    let lag: Vec<f64> = records
        .iter()
        .map(|r| r["queue_ms"].as_f64().unwrap())
        .collect();
    // What the machine adds: a thread of this process that only sleeps wakes this
    // late at the same percentile. A response's bytes wake the client once; a
    // scheduled send wakes the launch thread, and it the event loop.
    let (noise50, noise99) = (pct(&late, 0.5), pct(&late, 0.99));
    let mut broken = Vec::new();
    for (name, xs, wakes) in [
        ("TTFT", &ttft, 1.0),
        ("ITL", &itl, 1.0),
        ("E2E", &e2e, 1.0),
        ("send vs schedule", &lag, 2.0),
    ] {
        let (p50, p99) = (pct(xs, 0.5), pct(xs, 0.99));
        let (bound50, bound99) = (
            P50_BOUND_MS + wakes * noise50,
            P99_BOUND_MS + wakes * noise99,
        );
        eprintln!(
            "{label}: {name} absolute error over {} samples: p50 {:.3} ms (bound {bound50:.3}), p99 {:.3} ms (bound {bound99:.3}), max {:.3} ms",
            xs.len(),
            p50,
            p99,
            pct(xs, 1.0)
        );
        if p50 >= bound50 {
            broken.push(format!(
                "{label}: {name} error p50 {p50:.3} ms >= {bound50:.3}"
            ));
        }
        if p99 >= bound99 {
            broken.push(format!(
                "{label}: {name} error p99 {p99:.3} ms >= {bound99:.3}"
            ));
        }
    }
    (broken, stall_ms)
}

/// Runs `label` until it meets its bounds. A run that breaks them fails the test
/// unless the machine stalled a sleeping thread of this process for longer than the
/// p99 bound during it (the client's delays then include the machine's); such a run
/// is repeated, at most [`ATTEMPTS`] runs in all. A client that is late by its own
/// doing fails on a quiet machine at once, and on a busy one after every attempt.
fn within_bounds(dir: &Path, load: &str, requests: u32, label: &str) {
    for attempt in 1..=ATTEMPTS {
        let (broken, stall_ms) = measure(dir, load, requests, label);
        if broken.is_empty() {
            return;
        }
        let disturbed = stall_ms >= P99_BOUND_MS;
        assert!(
            disturbed && attempt < ATTEMPTS,
            "{} (attempt {attempt} of {ATTEMPTS}; the machine's longest stall {stall_ms:.3} ms)",
            broken.join("; ")
        );
        eprintln!(
            "{label}: attempt {attempt} broke a bound while the machine stalled a sleeping \
             thread {stall_ms:.3} ms: {}; measuring again",
            broken.join("; ")
        );
    }
}

/// Runs of a load measured at most, when the machine disturbs them.
const ATTEMPTS: u32 = 3;

#[test]
fn measured_timings_match_the_servers_log_within_stated_bounds() {
    let dir = tempfile::tempdir().unwrap();
    // One request at a time: 150 requests, 1,650 per-token gaps. Enough requests that
    // a p99 is not simply the largest value (one stall of the VM would decide it).
    within_bounds(
        dir.path(),
        "arrival = \"closed\"\nconcurrency = 1",
        150,
        "closed loop",
    );
    // Open loop: a send every 20 ms, each request lasting about 45 ms, so two or
    // three are in flight and their chunks interleave.
    within_bounds(
        dir.path(),
        "arrival = \"constant\"\nrate_rps = 50.0",
        200,
        "open loop",
    );
}
