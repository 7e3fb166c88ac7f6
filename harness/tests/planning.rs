//! The planner end to end: `backtest` and `plan` on a fresh run of the embedded
//! engine and on the published CPU back-test set, their JSON against the committed
//! schemas, and the bad inputs that must end in one clear line and exit code 2.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{infermeter, read_json, run_ok};
use predicates::prelude::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A closed-loop sweep of the tiny dense preset at fixed lengths, 1, 2 and 4 sessions.
fn fresh_sweep(dir: &Path) -> PathBuf {
    let out = dir.join("sweep");
    run_ok(infermeter().args([
        "sweep",
        "--target",
        "local-cpu,model=tiny-dense,precision=q8_0,prefix_cache=off",
        "--workload",
        repo().join("ci/backtest/bt-p128.toml").to_str().unwrap(),
        "--concurrencies",
        "1,2,4",
        "--requests",
        "8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]));
    out.join("report.json")
}

fn one_line_error(cmd: &mut assert_cmd::Command, want: &str) {
    let o = cmd.assert().code(2).get_output().clone();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(stderr.contains(want), "{want}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn backtest_and_plan_run_on_a_fresh_run_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let report = fresh_sweep(dir.path());
    let r = report.to_str().unwrap();

    let bt = dir.path().join("backtest.json");
    let out = run_ok(infermeter().args([
        "backtest",
        "--calibrate",
        r,
        "--calibrate-concurrency",
        "1,4",
        "--json",
        bt.to_str().unwrap(),
    ]));
    assert!(out.contains("1 predictions"), "{out}");
    let doc = read_json(&bt);
    let p = &doc["predictions"][0];
    assert_eq!(p["concurrency"], 2);
    assert!(p["decode_tokens_per_s_projected"].as_f64().unwrap() > 0.0);
    assert!(p["ttft_error"].as_f64().unwrap().is_finite());
    run_ok(infermeter().args(["validate", bt.to_str().unwrap()]));

    let plan = dir.path().join("plan.json");
    let html = dir.path().join("plan.html");
    let out = run_ok(infermeter().args([
        "plan",
        "--report",
        r,
        "--model",
        "llama3-8b",
        "--precision",
        "q4_0",
        "--workload",
        "chat-short",
        "--tasks-per-day",
        "100000",
        "--slo",
        "ttft_p99_ms=2000,tpot_p99_ms=100",
        "--devices",
        "h100-sxm,l40s,l4,cpu-x86_64-8vcpu",
        "--json",
        plan.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]));
    assert!(
        out.contains("## Scenarios") && out.contains("## Sensitivity"),
        "{out}"
    );
    let v = run_ok(infermeter().args(["validate", plan.to_str().unwrap()]));
    assert!(v.contains("valid infermeter.plan 1.0"), "{v}");
    let doc = read_json(&plan);
    // The CPU class is calibrated by the fresh run (3 points: no back-test band);
    // the GPUs are not, and say so.
    let cands = doc["candidates"].as_array().unwrap();
    let by = |n: &str| cands.iter().find(|c| c["name"] == n).unwrap();
    assert_eq!(by("cpu-x86_64-8vcpu")["calibrated"], true);
    assert_eq!(by("h100-sxm")["calibrated"], false);
    assert!(
        by("l4")["unpriced"]
            .as_str()
            .unwrap()
            .contains("no part `l4`")
    );
    assert_eq!(doc["levels"].as_array().unwrap().len(), 3);
    assert_eq!(doc["workload"]["name"], "chat-short");
    // The page draws its curves and cost bars in a browser, with no script error and
    // nothing fetched at view time.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains("projected, uncalibrated"));
    let attr = common::page_counters(&html, &dir.path().join("chromium-profile"));
    assert_eq!(attr("errors"), 0);
    // The curves and the three levels' cost bars.
    assert!(attr("charts") >= 4, "charts drawn: {}", attr("charts"));

    // Bad inputs: one line, exit 2.
    one_line_error(
        infermeter().args(["plan", "--report", r, "--rps", "1", "--devices", "tpu-v9"]),
        "no device `tpu-v9`",
    );
    one_line_error(
        infermeter().args(["plan", "--report", r, "--rps", "1", "--slo", "itl_p50_ms=5"]),
        "ttft_p99_ms and tpot_p99_ms only",
    );
    one_line_error(
        infermeter().args(["plan", "--report", r]),
        "--rps or --tasks-per-day",
    );
    one_line_error(
        infermeter().args(["plan", "--report", r, "--rps", "0"]),
        "traffic must be above 0",
    );
    one_line_error(
        infermeter().args([
            "backtest",
            "--calibrate",
            r,
            "--calibrate-concurrency",
            "64",
        ]),
        "no calibration result",
    );
    let bad = dir.path().join("hw.toml");
    std::fs::write(
        &bad,
        "format = 1\nname = \"x\"\nversion = \"1\"\n[[device]]\nname = \"d\"\n",
    )
    .unwrap();
    one_line_error(
        infermeter().args([
            "plan",
            "--report",
            r,
            "--rps",
            "1",
            "--hardware",
            bad.to_str().unwrap(),
        ]),
        "hw.toml",
    );
    infermeter()
        .args(["validate", bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hw.toml"));
    // An objective nobody meets is an answer, not an error.
    let out = run_ok(infermeter().args([
        "plan",
        "--report",
        r,
        "--model",
        "llama3-8b",
        "--rps",
        "1",
        "--slo",
        "ttft_p99_ms=0.1",
        "--devices",
        "h100-sxm",
    ]));
    assert!(out.contains("no concurrency meets the objective"), "{out}");
}

/// The published back-test is what this build computes from the published reports.
#[test]
fn the_published_cpu_backtest_is_reproduced_from_its_reports() {
    let dir = repo().join("results/published/cpu-amd-epyc-2core/plan-backtest");
    let published = read_json(&dir.join("backtest.json"));
    let mut cal = Vec::new();
    let mut pred = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path().join("report.json");
        if !p.exists() {
            continue;
        }
        let name = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if name == "smollm2-q4_1-p128" || name == "smollm2-q4_1-p1024" {
            cal.push(p);
        } else {
            pred.push(p);
        }
    }
    cal.sort();
    pred.sort();
    assert_eq!((cal.len(), pred.len()), (2, 7));
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("bt.json");
    let mut cmd = infermeter();
    cmd.arg("backtest").arg("--calibrate").args(&cal);
    cmd.args(["--calibrate-concurrency", "1,8", "--predict"])
        .args(&pred);
    cmd.arg("--json").arg(&json);
    run_ok(&mut cmd);
    let got = read_json(&json);
    assert_eq!(got["summary"], published["summary"]);
    assert_eq!(got["predictions"], published["predictions"]);
}

/// A remote target enters as measured, priced by the catalog's rate card when its
/// report has none, and the plan says where self-hosting breaks even.
#[test]
fn a_remote_result_is_a_measured_candidate_with_a_break_even() {
    let dir = tempfile::tempdir().unwrap();
    let published = repo().join("results/published/cpu-amd-epyc-2core");
    let remote = published.join("openai-llamacpp-chat-short/report.json");
    let local = published.join("plan-backtest/smollm2-q4_1-p512/report.json");
    let catalog = dir.path().join("prices.toml");
    let mut text = std::fs::read_to_string(repo().join("results/catalog/default.toml")).unwrap();
    text.push_str(
        "\n[[rate_card]]\nprovider = \"openai\"\nmodel = \"smollm2\"\ninput_usd_per_m = 0.10\noutput_usd_per_m = 0.40\nsource = \"test\"\nas_of = \"2026-12\"\n",
    );
    std::fs::write(&catalog, text).unwrap();
    let json = dir.path().join("plan.json");
    run_ok(infermeter().args([
        "plan",
        "--report",
        remote.to_str().unwrap(),
        local.to_str().unwrap(),
        "--model",
        "smollm2-135m",
        "--precision",
        "q4_1",
        "--rps",
        "2",
        "--devices",
        "h100-sxm",
        "--catalog",
        catalog.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]));
    let doc = read_json(&json);
    let cands = doc["candidates"].as_array().unwrap();
    let api = cands.iter().find(|c| c["kind"] == "remote").unwrap();
    assert_eq!(api["projected"], false);
    let w = &doc["workload"];
    let per_req = (w["input_tokens_mean"].as_f64().unwrap() * 0.10
        + w["output_tokens_mean"].as_f64().unwrap() * 0.40)
        / 1e6;
    let l = &api["levels"][0];
    assert!((l["usd_per_request"].as_f64().unwrap() - per_req).abs() < 1e-15);
    let monthly = per_req * 2.0 * 730.0 * 3600.0;
    assert!((l["monthly_usd"].as_f64().unwrap() - monthly).abs() / monthly < 1e-12);
    let b = &doc["levels"][0]["break_even"];
    assert_eq!(b["device"], "h100-sxm");
    let h100 = cands.iter().find(|c| c["name"] == "h100-sxm").unwrap();
    let hourly = h100["price"]["usd_per_unit_hour"].as_f64().unwrap();
    let want = hourly / 3600.0 / per_req;
    assert!((b["break_even_requests_per_s"].as_f64().unwrap() - want).abs() / want < 1e-12);
}
