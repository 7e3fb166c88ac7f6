//! A test-sized soak: 20,000 streamed requests, open loop at 1,000 per second, against
//! the project's scripted loopback server. Nothing is lost (every request is in the
//! report, in requests.jsonl and at the server) and memory stays bounded: the peak RSS
//! of the 20,000-request run stays under 120 MiB and within 12 MiB of a 2,000-request
//! run (measured here: 48 and 54 MiB; what grows is the pre-generated request stream,
//! about 0.3 KiB a request, whose sessions the driver drops as they finish, and a few
//! numbers per request for the in-flight and over-saturation figures; the report keeps
//! histograms, never per-request data, and finished sessions are reaped as the run
//! goes). Before the driver moved the sessions out of the stream it held them twice,
//! to the end: 13-21 MiB of growth.
//! The full-size soak is `ci/tools/soak.sh`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use scripted::{Pace, Script, ScriptedServer};

mod common;
use common::read_json;

/// Peak RSS so far (VmHWM) of a live process, KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `requests` requests at 1,000/s against `server`; returns the peak RSS in KiB.
fn soak(dir: &Path, server: &ScriptedServer, requests: u32) -> u64 {
    let spec = dir.join(format!("soak-{requests}.toml"));
    std::fs::write(
        &spec,
        format!(
            "format = 1\nname = \"soak\"\nversion = 1\nseed = 1\n[load]\narrival = \"constant\"\nrate_rps = 1000.0\nrequests = {requests}\nwarmup_requests = 0\n[input]\ndist = \"fixed\"\nvalue = 16.0\n[output]\ndist = \"fixed\"\nvalue = 4.0\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("run-{requests}"));
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("infermeter"))
        .args(["run", "--quiet", "--workload"])
        .arg(&spec)
        .args([
            "--target",
            &format!(
                "openai,base_url={},model=soak,tokenizer=none,preflight=false",
                server.base_url()
            ),
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = read_json(&out.join("report.json"));
    let e = &r["results"][0];
    assert_eq!(r["run"]["status"], "complete");
    assert_eq!(
        e["requests"]["sent"],
        u64::from(requests),
        "{}",
        e["requests"]
    );
    assert_eq!(
        e["requests"]["ok"],
        u64::from(requests),
        "{}",
        e["requests"]
    );
    assert_eq!(e["latency"]["e2e_ms"]["count"], u64::from(requests));
    let lines = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, requests as usize, "every request is on disk");
    // The report measures the client too.
    let c = &e["client"];
    assert!(c["cpu_s"].as_f64().unwrap() > 0.0, "{c}");
    assert!(c["cpu_us_per_request"].as_f64().unwrap() > 0.0, "{c}");
    assert_eq!(c["cpu_includes_engine"], false);
    assert!(c["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{c}");
    assert!(c["loop_lag_ms"]["count"].as_u64().unwrap() > 0, "{c}");
    peak
}

#[test]
fn twenty_thousand_requests_lose_nothing_in_bounded_memory() {
    let server = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 0.5,
        itl_ms: 0.2,
        ..Pace::default()
    }))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let small = soak(tmp.path(), &server, 2_000);
    let big = soak(tmp.path(), &server, 20_000);
    assert_eq!(
        server.arrivals(),
        22_000,
        "the server saw every request once"
    );
    eprintln!("peak RSS: 2,000 requests {small} KiB, 20,000 requests {big} KiB");
    assert!(big < 120 * 1024, "peak RSS {big} KiB over 120 MiB");
    assert!(
        big < small + 12 * 1024,
        "peak RSS grew from {small} KiB to {big} KiB with 10x the requests"
    );
}
