//! `run --quality` end to end: a local target's fidelity against a reference
//! precision of the same weights is in every one of its results, cached by the
//! weights' digest (a second run reads it, figures identical); the real SmolLM2
//! converted at load (`requantize=on`); a remote target says why it has none; a bad
//! reference is refused with exit 2.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use scripted::{Pace, Script, ScriptedServer};
use serde_json::Value;

mod common;
use common::{gguf, infermeter, read_json};

/// `run --quiet --quality ARGS` of 3 classify-tiny requests on `target`, with the
/// quality cache in `cache`; the report (its printed table in `stdout`).
fn run(target: &str, quality: Option<&str>, cache: &Path, out: &Path) -> Value {
    let assert = infermeter()
        .env("INFERMETER_QUALITY_CACHE", cache)
        .args([
            "run",
            "--quiet",
            "--workload",
            "classify-tiny",
            "--requests",
            "3",
        ])
        .args(["--warmup", "0", "--target", target])
        .args(quality)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
    let mut report = read_json(&out.join("report.json"));
    results::schema::validate_report_json(&report).unwrap();
    report["stdout"] = String::from_utf8_lossy(&assert.get_output().stdout).into();
    report
}

#[test]
fn a_local_target_reports_its_fidelity_and_a_second_run_reads_it_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let target = "local-cpu,model=tiny-dense,weights=synthetic,precision=q4_0,seed=5,roofline=off";
    let first = run(target, Some("--quality"), &cache, &tmp.path().join("a"));
    let q = &first["results"][0]["quality"];
    assert_eq!(q["reference_precision"], "f32", "{q}");
    assert_eq!(q["eval_text"], "infermeter-eval-en-v1");
    let f = &q["fidelity"];
    assert_eq!(f["precision"], "q4_0");
    assert_eq!(f["cached"], false);
    assert_eq!(f["tokens_scored"], 4 * 127);
    let kl = f["kl_mean_nats"].as_f64().unwrap();
    assert!(kl > 0.0 && kl.is_finite(), "{f}");
    let agree = f["top1_agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&agree), "{f}");
    assert!(f["kl_p99_nats"].as_f64().unwrap() >= kl);
    assert_eq!(
        f["weights_sha256"],
        first["results"][0]["target"]["weights"]["sha256"]
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let line = format!("quality vs f32: KL mean {kl:.4} nats");
    assert!(
        first["stdout"].as_str().unwrap().contains(&line),
        "{}",
        first["stdout"]
    );
    // The same weights again: read from the cache, the same figures.
    let second = run(target, Some("--quality"), &cache, &tmp.path().join("b"));
    let g = &second["results"][0]["quality"]["fidelity"];
    assert_eq!(g["cached"], true);
    assert_eq!(g["kl_mean_nats"], f["kl_mean_nats"]);
    assert_eq!(g["top1_agreement"], f["top1_agreement"]);
    assert!(second["stdout"].as_str().unwrap().contains("(cached)"));
    // Another reference is another measurement: f32 against f32 is exact.
    let own = run(
        &target.replace("q4_0", "f32"),
        Some("--quality=f32"),
        &cache,
        &tmp.path().join("c"),
    );
    let h = &own["results"][0]["quality"]["fidelity"];
    assert_eq!(h["kl_mean_nats"], 0.0, "{h}");
    assert_eq!(h["kl_max_nats"], 0.0, "{h}");
    assert_eq!(h["top1_agreement"], 1.0, "{h}");
    assert_eq!(h["perplexity_ratio"], 1.0, "{h}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    // Without the flag, no section.
    let d = run(target, None, &cache, &tmp.path().join("d"));
    assert!(d["results"][0].get("quality").is_none());
}

#[test]
fn smollm2_converted_to_q4_0_reports_what_it_loses() {
    let tmp = tempfile::tempdir().unwrap();
    let target = format!(
        "local-cpu,model={},precision=q4_0,requantize=on,roofline=off",
        gguf().display()
    );
    let r = run(
        &target,
        Some("--quality=f32"),
        &tmp.path().join("cache"),
        &tmp.path().join("a"),
    );
    let e = &r["results"][0];
    assert_eq!(e["target"]["precision"], "q4_0");
    assert_eq!(e["target"]["weights"]["source"], "gguf_requantized");
    let f = &e["quality"]["fidelity"];
    let kl = f["kl_mean_nats"].as_f64().unwrap();
    assert!(kl > 0.0, "{f}");
    // A real model on English prose predicts far better than chance (49,152 tokens).
    assert!(f["reference_perplexity"].as_f64().unwrap() < 200.0, "{f}");
    assert!(f["top1_agreement"].as_f64().unwrap() > 0.5, "{f}");
    assert!(e["requests"]["ok"].as_u64().unwrap() >= 3, "{e}");
}

#[test]
fn a_remote_target_says_why_it_has_no_fidelity() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 5.0,
        itl_ms: 1.0,
        ..Pace::default()
    }))
    .unwrap();
    let target = format!(
        "openai,base_url={},model=scripted,preflight=false",
        server.base_url()
    );
    let r = run(
        &target,
        Some("--quality"),
        &tmp.path().join("cache"),
        &tmp.path().join("a"),
    );
    let q = &r["results"][0]["quality"];
    assert!(q["fidelity"].is_null(), "{q}");
    assert!(q["reason"].as_str().unwrap().contains("remote"), "{q}");
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .contains("quality not measured: a remote target")
    );
}

#[test]
fn an_unknown_reference_is_refused() {
    infermeter()
        .args([
            "run",
            "--quality=f8",
            "--target",
            "local-cpu,model=tiny-dense",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("f8"));
}
