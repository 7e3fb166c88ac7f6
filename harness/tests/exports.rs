//! `infermeter export`: published reports written in other tools' formats and loaded
//! by those tools' own readers where they import here: AIPerf's (venv-aiperf, from
//! `ci/setup.sh --reference`). vLLM's `bench sweep` readers import torch through vLLM's
//! package and are not run (the vLLM export's keys and figures are checked instead).
//! The figures both tools define must equal the report's after the unit mapping.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{PEER_LATENCIES, cache, close, infermeter, read_json, repo, run_ok};

/// Published, measured reports: a remote vLLM-CPU run (one load point, completions
/// API) and a sweep of the local engine (six load points).
fn published() -> Vec<PathBuf> {
    let dir = repo().join("results/published/cpu-amd-epyc-2core");
    vec![
        dir.join("openai-vllm-cpu-chat-short/report.json"),
        dir.join("sweep-quick-chat-short/report.json"),
    ]
}

fn venv_python(name: &str, package: &str) -> PathBuf {
    let p = cache().join(format!("{name}/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run ci/setup.sh --reference (it installs {package})",
        p.display()
    );
    p
}

/// `infermeter export REPORT --format FORMAT` into a new folder; the files written.
fn export(report: &Path, format: &str, out: &Path) -> Vec<PathBuf> {
    let stdout = run_ok(
        infermeter()
            .arg("export")
            .arg(report)
            .args(["--format", format, "--out"])
            .arg(out),
    );
    stdout.lines().map(PathBuf::from).collect()
}

#[test]
fn aiperf_reads_the_aiperf_export_with_the_reports_figures() {
    let python = venv_python("venv-aiperf", "aiperf");
    let tmp = tempfile::tempdir().unwrap();
    for report_path in published() {
        let report = read_json(&report_path);
        let results = report["results"].as_array().unwrap();
        let out = tmp
            .path()
            .join(report_path.parent().unwrap().file_name().unwrap());
        let files = export(&report_path, "aiperf", &out);
        assert_eq!(files.len(), results.len(), "{}", report_path.display());
        for (file, e) in files.iter().zip(results) {
            let o = Command::new(&python)
                .arg(repo().join("ci/tools/peer_readers.py"))
                .arg("aiperf")
                .arg(file)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "AIPerf's reader refused {}: {}",
                file.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let what = file.display();
            let f = |tag: &str, k: &str| got[tag][k].as_f64().unwrap_or(f64::NAN);
            assert_eq!(
                f("request_count", "avg"),
                e["requests"]["ok"].as_f64().unwrap(),
                "{what}"
            );
            assert_eq!(got["request_count"]["unit"], "requests");
            assert_eq!(
                f("request_throughput", "avg"),
                e["throughput"]["requests_per_s"].as_f64().unwrap()
            );
            assert_eq!(
                f("output_token_throughput", "avg"),
                e["throughput"]["output_tokens_per_s"].as_f64().unwrap()
            );
            assert_eq!(got["benchmark_duration"]["unit"], "sec");
            assert_eq!(
                f("benchmark_duration", "avg"),
                e["load"]["measured_s"].as_f64().unwrap()
            );
            for (tag, field) in [
                ("request_latency", "e2e_ms"),
                ("time_to_first_token", "ttft_ms"),
                ("inter_token_latency", "tpot_ms"),
                ("inter_chunk_latency", "chunk_gap_ms"),
            ] {
                let s = &e["latency"][field];
                assert_eq!(got[tag]["unit"], "ms", "{what} {tag}");
                assert_eq!(got[tag]["count"], s["count"], "{what} {tag}");
                let (avg, mean) = (f(tag, "avg"), s["mean"].as_f64().unwrap());
                assert!(close(avg, mean), "{what} {tag}: avg {avg} vs mean {mean}");
                assert_eq!(f(tag, "min"), s["min"].as_f64().unwrap(), "{what} {tag}");
                assert_eq!(f(tag, "max"), s["max"].as_f64().unwrap(), "{what} {tag}");
                let p50 = f(tag, "p50");
                assert!(p50 >= f(tag, "min") && p50 <= f(tag, "max"), "{what} {tag}");
            }
            assert_eq!(got["_was_cancelled"], false);
            if e["target"]["locality"] == "remote" {
                assert_eq!(got["_model"], e["target"]["model"], "{what}");
            }
        }
    }
}

#[test]
fn the_vllm_bench_export_has_vllms_keys_and_the_reports_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let report_path = &published()[0];
    let report = read_json(report_path);
    let e = &report["results"][0];
    let files = export(report_path, "vllm-bench", tmp.path());
    assert_eq!(files.len(), 1);
    let v = read_json(&files[0]);
    assert_eq!(v["backend"], "openai");
    assert_eq!(v["completed"], e["requests"]["ok"]);
    assert_eq!(v["max_concurrency"], e["load"]["concurrency"]);
    assert_eq!(v["request_rate"], "inf");
    for (name, field) in PEER_LATENCIES {
        let mean = v[format!("mean_{name}_ms")].as_f64().unwrap();
        assert!(
            close(mean, e["latency"][field]["mean"].as_f64().unwrap()),
            "{name}"
        );
        for p in ["median", "std"] {
            assert!(v[format!("{p}_{name}_ms")].is_number(), "{p}_{name}_ms");
        }
        for p in ["90", "95", "99", "99.9"] {
            assert!(v[format!("p{p}_{name}_ms")].is_number(), "p{p}_{name}_ms");
        }
    }
    // Not in a report: null, never made up.
    assert!(v["latencies"].is_null() && v["max_concurrent_requests"].is_null());
}

#[test]
fn a_file_that_is_not_a_report_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"results\": 3}").unwrap();
    let o = infermeter()
        .arg("export")
        .arg(&bad)
        .args(["--format", "aiperf", "--out"])
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.json"), "{err}");
    assert!(!tmp.path().join("out").exists());
}
