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
//! This file holds one test, so that it runs alone (test binaries run one at a time).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

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

fn measure(dir: &Path, load: &str, requests: u32, label: &str) {
    let pace = Pace {
        ttft_ms: 12.0,
        itl_ms: 3.0,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let wl = workload(dir, load, requests, 12);
    let out = dir.join(label);
    let target = format!(
        "openai,base_url={},model=scripted,preflight=false",
        server.base_url()
    );
    run_ok(
        infermeter()
            .args(["run", "--quiet", "--target", &target, "--workload", &wl])
            .arg("--out")
            .arg(&out),
    );
    let records: Vec<Value> = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), requests as usize);
    let (ttft, itl, e2e) = errors(&server, &records, 2);
    eprintln!(
        "{label}: {} connections for {} requests",
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
    for (name, xs) in [
        ("TTFT", &ttft),
        ("ITL", &itl),
        ("E2E", &e2e),
        ("send vs schedule", &lag),
    ] {
        let (p50, p99) = (pct(xs, 0.5), pct(xs, 0.99));
        eprintln!(
            "{label}: {name} absolute error over {} samples: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            xs.len(),
            p50,
            p99,
            pct(xs, 1.0)
        );
        assert!(p50 < P50_BOUND_MS, "{label}: {name} error p50 {p50} ms");
        assert!(p99 < P99_BOUND_MS, "{label}: {name} error p99 {p99} ms");
    }
}

#[test]
fn measured_timings_match_the_servers_log_within_stated_bounds() {
    let dir = tempfile::tempdir().unwrap();
    // One request at a time: 150 requests, 1,650 per-token gaps. Enough requests that
    // a p99 is not simply the largest value (one stall of the VM would decide it).
    measure(
        dir.path(),
        "arrival = \"closed\"\nconcurrency = 1",
        150,
        "closed loop",
    );
    // Open loop: a send every 20 ms, each request lasting about 45 ms, so two or
    // three are in flight and their chunks interleave.
    measure(
        dir.path(),
        "arrival = \"constant\"\nrate_rps = 50.0",
        200,
        "open loop",
    );
}
