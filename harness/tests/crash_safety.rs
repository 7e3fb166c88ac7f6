//! Crash safety end to end: Ctrl-C and SIGTERM stop sending, drain and write an
//! interrupted report; after kill -9 every complete line of `requests.jsonl` is a
//! record and `recover` rebuilds the report (a run's or a sweep's) from the run's files;
//! a full disk is refused before the run and stops it during.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use predicates::prelude::*;

mod common;
use common::{gguf, infermeter, read_json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn ctrl_c_stops_sending_drains_and_writes_an_interrupted_report() {
    interrupted_by("-INT");
}

/// kill -9 mid-run: every complete line of requests.jsonl is a valid record, and
/// `recover` rebuilds the report (status `interrupted`) from them.
#[test]
fn kill_9_leaves_valid_lines_and_recover_rebuilds_the_report() {
    let tmp = tmp();
    let out = tmp.path().join("run");
    let mut child = spawn_run("5", "local-cpu,model=tiny-dense", &out);
    let jsonl = out.join("requests.jsonl");
    wait_for_lines(&jsonl, 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let complete: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    for l in &complete {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["e2e_ms"].as_f64().is_some(), "{l}");
    }
    // The report was on disk from the start, as interrupted, with no finished point.
    let before = read_json(&out.join("report.json"));
    assert_eq!(before["run"]["status"], "interrupted");
    assert_eq!(before["results"].as_array().unwrap().len(), 0);

    infermeter()
        .arg("recover")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("1 rebuilt from"));
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["run"]["status"], "interrupted");
    let e = &r["results"][0];
    assert_eq!(
        e["requests"]["sent"].as_u64().unwrap(),
        complete.len() as u64
    );
    assert_eq!(
        e["latency"]["e2e_ms"]["count"].as_u64().unwrap(),
        e["requests"]["ok"].as_u64().unwrap()
    );
    assert!(e["latency"]["itl_ms"]["count"].as_u64().unwrap() > 0);
    assert!(
        e["notes"]
            .to_string()
            .contains("recovered by `infermeter recover`")
    );
    assert_eq!(e["cost"]["source"], "hardware-hour");
    infermeter()
        .arg("validate")
        .arg(out.join("report.json"))
        .assert()
        .success();
    assert!(out.join("report.html").exists());
    // Recovering again changes nothing.
    infermeter().arg("recover").arg(&out).assert().success();
    assert_eq!(read_json(&out.join("report.json"))["results"], r["results"]);
}

/// Too little free space on the output's file system is refused before anything is
/// written; a disk that fills during the run stops it with an error naming the file,
/// keeping the report written so far.
#[test]
fn a_full_disk_is_refused_before_the_run_and_stops_it_during() {
    let tmp = tmp();
    let out = tmp.path().join("run");
    infermeter()
        .args(["run", "--workload", "quick/classify-tiny", "--quiet"])
        .args(["--target", "local-cpu,model=tiny-dense"])
        .arg("--out")
        .arg(&out)
        .env("INFERMETER_MIN_FREE_BYTES", "1000000000000000000")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("MiB free on"));
    assert!(!out.join("report.json").exists());

    // requests.jsonl on /dev/full: every write fails with ENOSPC.
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink("/dev/full", out.join("requests.jsonl")).unwrap();
    let assert = infermeter()
        .args([
            "run",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "3",
            "--quiet",
        ])
        .args(["--target", "local-cpu,model=tiny-dense"])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr);
    assert!(
        stderr.contains("writing") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["run"]["status"], "interrupted");
}

/// A pre-empted runner (or Kubernetes) sends SIGTERM: the same as Ctrl-C.
#[test]
fn sigterm_stops_sending_drains_and_writes_an_interrupted_report() {
    interrupted_by("-TERM");
}

/// Starts a long open-loop run (500 classify-tiny requests at `rate`/s) of `target`
/// into `out`, in the background.
fn spawn_run(rate: &str, target: &str, out: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("infermeter"))
        .args([
            "run",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "500",
        ])
        .args([
            "--rate", rate, "--warmup", "0", "--quiet", "--target", target,
        ])
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (up to 120 s) until `jsonl` has `n` lines.
fn wait_for_lines(jsonl: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(jsonl).map_or(0, |s| s.lines().count()) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} requests finished within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn interrupted_by(signal: &str) {
    let tmp = tmp();
    let out = tmp.path().join("run");
    let child = spawn_run("2", &format!("local-cpu,model={}", gguf().display()), &out);
    // Wait until some requests were measured, then interrupt.
    let jsonl = out.join("requests.jsonl");
    wait_for_lines(&jsonl, 2);
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status.code()
    );
    assert!(stderr.contains("interrupt"), "{stderr}");

    let report = read_json(&out.join("report.json"));
    assert_eq!(report["run"]["status"], "interrupted");
    let r = &report["results"][0];
    let sent = r["requests"]["sent"].as_u64().unwrap();
    assert!((2..500).contains(&sent), "sent {sent}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("interrupted"), "{notes}");
    // Every measured request is in requests.jsonl.
    assert_eq!(
        std::fs::read_to_string(&jsonl).unwrap().lines().count() as u64,
        sent
    );
    infermeter()
        .arg("validate")
        .arg(out.join("report.json"))
        .assert()
        .success();
}

/// A sweep killed with kill -9 in its second load point: `recover` keeps the first
/// and rebuilds the second from `run.json` and `requests.jsonl`, with no model load
/// and no command line.
#[test]
fn recover_rebuilds_a_sweep_killed_mid_point() {
    let tmp = tmp();
    let out = tmp.path().join("sweep");
    // Point 1: 60 requests at 60/s (a second); point 2: 2/s (30 s), killed early.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("infermeter"))
        .args([
            "sweep",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "60",
            "--warmup",
            "0",
            "--rates",
            "60,2",
            "--slo",
            "ttft_p99_ms=60000",
            "--quiet",
            "--target",
            "local-cpu,model=tiny-dense",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let report_path = out.join("report.json");
    loop {
        let done = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map_or(0, |r| r["results"].as_array().map_or(0, Vec::len));
        let lines =
            std::fs::read_to_string(out.join("requests.jsonl")).map_or(0, |s| s.lines().count());
        if done == 1 && lines >= 63 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not reach its second point"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let manifest = read_json(&out.join("run.json"));
    assert_eq!(manifest["kind"], "sweep");
    assert_eq!(manifest["points"].as_array().unwrap().len(), 2);

    let said = infermeter().arg("recover").arg(&out).assert().success();
    let said = String::from_utf8(said.get_output().stdout.clone()).unwrap();
    assert!(
        said.contains("1 finished load points kept, 1 rebuilt"),
        "{said}"
    );
    let r = read_json(&report_path);
    assert_eq!(r["run"]["status"], "interrupted");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let e = &results[1];
    assert_eq!(e["load"]["rate_rps"], 2.0);
    let sent = e["requests"]["sent"].as_u64().unwrap();
    let lines = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(sent, lines - 60);
    assert_eq!(e["requests"]["planned"], 60);
    assert_eq!(
        e["requests"]["not_sent"]["run_killed"].as_u64(),
        Some(60 - sent)
    );
    // Judged by the sweep's SLO and priced by its catalog, as a live point is.
    assert_eq!(e["slo"]["objectives"]["ttft_p99_ms"], 60000.0);
    assert_eq!(e["cost"]["source"], "hardware-hour");
    assert!(
        e["notes"]
            .to_string()
            .contains("recovered by `infermeter recover`")
    );
    infermeter()
        .arg("validate")
        .arg(&report_path)
        .assert()
        .success();
}
