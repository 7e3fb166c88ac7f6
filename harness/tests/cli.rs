//! The `infermeter` binary end to end: deterministic workload streams, every class of
//! bad input (exit code 2, one line naming what is wrong, no report), and a real run
//! of the embedded engine on SmolLM2 whose report validates against the schema.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use predicates::prelude::*;

mod common;
use common::{gguf, infermeter, read_json};

fn stdout_of(args: &[&str]) -> String {
    let out = infermeter()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn digest(show: &str) -> String {
    show.lines()
        .find(|l| l.starts_with("stream_sha256"))
        .unwrap()
        .to_string()
}

#[test]
fn workloads_export_prints_the_requests_another_tool_can_send() {
    const EXPORT: [&str; 7] = [
        "workloads",
        "export",
        "agent-loop",
        "--requests",
        "6",
        "--seed",
        "3",
    ];
    let out = stdout_of(&EXPORT);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Whole sessions are exported: at least the 6 requests asked for.
    assert!(lines.len() >= 6, "{}", lines.len());
    for l in &lines {
        let prompt = l["prompt"].as_str().unwrap();
        assert!(!prompt.is_empty());
        // The prompt is the messages joined as the completions API receives them.
        let joined: Vec<&str> = l["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(prompt, joined.join("\n\n"));
        assert!(l["prompt_tokens_count"].as_u64().unwrap() > 0);
        assert!(l["output_tokens_count"].as_u64().unwrap() > 0);
    }
    // Seeded: the same stream every time.
    assert_eq!(out, stdout_of(&EXPORT));
    infermeter()
        .args(["workloads", "export", "no-such-workload"])
        .assert()
        .code(2);
}

#[test]
fn workloads_show_is_deterministic_and_seeded() {
    let a = stdout_of(&["workloads", "show", "agent-loop", "--seed", "7"]);
    let b = stdout_of(&["workloads", "show", "agent-loop", "--seed", "7"]);
    assert_eq!(a, b);
    assert!(
        a.contains("name = \"agent-loop\"") && a.contains("tokens = 2000"),
        "{a}"
    );
    let c = stdout_of(&["workloads", "show", "agent-loop", "--seed", "8"]);
    assert_ne!(digest(&a), digest(&c));
}

#[test]
fn workloads_list_names_every_workload_and_suite() {
    let out = stdout_of(&["workloads", "list"]);
    for name in [
        "chat-short",
        "rag-long",
        "agent-loop",
        "batch-offline",
        "classify-tiny",
        "quick",
        "standard",
    ] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs with `args`, expects exit code 2, one line of error containing `needle`, and
/// no report in the output directory.
fn bad_input(args: &[&str], needle: &str) {
    let out = tmp();
    let out_dir = out.path().join("run");
    let assert = infermeter()
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .arg("--quiet")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(needle));
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(error_lines.len(), 1, "one error line expected:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !out_dir.join("report.json").exists(),
        "no report may be written for bad input"
    );
}

#[test]
fn bad_names_and_flags_exit_2() {
    bad_input(
        &["run", "--workload", "chat-long"],
        "unknown workload `chat-long`",
    );
    bad_input(&["run", "--suite", "nightly"], "unknown workload `nightly`");
    bad_input(
        &["run", "--target", "local-cpu,model=gpt-9"],
        "unknown model preset `gpt-9`",
    );
    bad_input(
        &["run", "--target", "tpu-v9,model=x"],
        "unknown kind `tpu-v9`",
    );
    bad_input(
        &["run", "--target", "local-cpu,precision=q3_k"],
        "unsupported precision `q3_k`",
    );
    bad_input(&["run", "--target", "local-cpu,batch=3"], "setting `batch`");
    bad_input(&["run", "--rate", "-1"], "--rate must be");
    bad_input(&["run", "--requests", "0"], "--requests must be");
    bad_input(&["run", "--scale", "0"], "--scale");
    bad_input(
        &["run", "--arrival", "sometimes"],
        "invalid value 'sometimes'",
    );
    bad_input(&["run", "--concurrency", "2", "--rate", "3"], "not both");
    bad_input(&["run", "--shard", "0/2"], "expected I/N with 1 <= I <= N");
    bad_input(&["run", "--shard", "half"], "expected I/N");
    bad_input(
        &[
            "run",
            "--workload",
            "chat-short",
            "--concurrency",
            "3",
            "--shard",
            "1/2",
        ],
        "a closed loop of 3 sessions cannot be split into 2 equal shards",
    );
    // Every duration, rate and count has an upper bound: past it, one line naming the
    // flag, its bound and what was given, never a panic.
    for (args, needle) in [
        (
            &["run", "--drain-timeout", "1e20"][..],
            "--drain-timeout must be a number above 0 and at most 604800 seconds, got 100000000000000000000",
        ),
        (&["run", "--duration", "1e20"][..], "--duration must be"),
        (
            &["run", "--request-timeout", "1e30"][..],
            "--request-timeout must be",
        ),
        (
            &[
                "run",
                "--arrival",
                "gamma",
                "--rate",
                "1",
                "--burstiness",
                "1e200",
            ][..],
            "--burstiness must be a number above 0 and at most 100",
        ),
        (&["run", "--rate", "1e300"][..], "--rate must be"),
        (&["run", "--scale", "1e300"][..], "--scale must be"),
        (
            &["run", "--requests", "100000000000"][..],
            "--requests must be at least 1 and at most 1000000",
        ),
        (
            &["run", "--max-connections", "0"][..],
            "--max-connections must be",
        ),
        (
            &["run", "--concurrency", "4000000000"][..],
            "--concurrency must be",
        ),
    ] {
        bad_input(args, needle);
    }
}

/// Reports of another major schema version are refused by every command that reads
/// reports; a newer minor is read with a warning, without the fields this build does
/// not know; an older one is read as it is.
#[test]
fn report_versions_are_checked_by_every_reader() {
    let tmp = tmp();
    let published = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../results/published/cpu-amd-epyc-2core/quick-smollm2-q4_1/report.json"
    );
    infermeter()
        .arg("validate")
        .arg(published)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "valid infermeter.report 1.3 (read as {})",
            results::REPORT_SCHEMA_VERSION
        )));
    let mut doc = read_json(Path::new(published));
    doc["schema_version"] = "99.0".into();
    let major = tmp.path().join("major.json");
    std::fs::write(&major, doc.to_string()).unwrap();
    let out = tmp.path().join("merged.json");
    for args in [
        vec!["validate", major.to_str().unwrap()],
        vec!["report", major.to_str().unwrap()],
        vec!["compare", major.to_str().unwrap(), published],
        vec![
            "merge",
            published,
            major.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let a = infermeter().args(&args).assert().code(2);
        let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(
            stderr.contains(
                "schema_version 99.0 has major version 99; this build reads major version 1"
            ),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("Error:")).count(),
            1
        );
    }
    // A newer minor: this build's report (the published one, read and written back
    // as this version) with fields a later build added.
    let current = infermeter()
        .args(["report", published, "--format", "json"])
        .assert()
        .success();
    let mut doc: serde_json::Value = serde_json::from_slice(&current.get_output().stdout).unwrap();
    assert_eq!(doc["schema_version"], results::REPORT_SCHEMA_VERSION);
    assert_eq!(doc["results"][0]["target"]["locality"], "local");
    doc["schema_version"] = "1.99".into();
    doc["written_by_the_future"] = true.into();
    doc["results"][0]["target"]["new_fact"] = "x".into();
    let minor = tmp.path().join("minor.json");
    std::fs::write(&minor, doc.to_string()).unwrap();
    let a = infermeter()
        .args(["report", minor.to_str().unwrap(), "--format", "json"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(
        stderr.contains(&format!("schema_version 1.99 is newer than this build's {}: read without the 2 fields it does not know (the first: /results/0/target/new_fact)", results::REPORT_SCHEMA_VERSION)),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(!stdout.contains("written_by_the_future") && !stdout.contains("new_fact"));
    assert!(stdout.contains(&format!(
        "\"schema_version\": \"{}\"",
        results::REPORT_SCHEMA_VERSION
    )));
}

#[test]
fn bad_files_exit_2_naming_the_file() {
    let tmp = tmp();
    let dir = tmp.path();
    let malformed = dir.join("malformed.toml");
    std::fs::write(&malformed, "format = 1\nname = \"x\"\n[load\n").unwrap();
    bad_input(
        &["run", "--workload", malformed.to_str().unwrap()],
        "malformed.toml",
    );

    let out_of_range = dir.join("range.toml");
    std::fs::write(
        &out_of_range,
        "format = 1\nname = \"x\"\nversion = 1\n[load]\narrival = \"poisson\"\nrate_rps = -2.0\nrequests = 3\n[input]\ndist = \"fixed\"\nvalue = 8.0\n[output]\ndist = \"fixed\"\nvalue = 4.0\n",
    )
    .unwrap();
    bad_input(
        &["run", "--workload", out_of_range.to_str().unwrap()],
        "load.rate_rps",
    );

    let missing = dir.join("missing.gguf");
    bad_input(
        &[
            "run",
            "--target",
            &format!("local-cpu,model={}", missing.display()),
        ],
        "missing.gguf: not found",
    );

    let not_gguf = dir.join("not-a-model.gguf");
    std::fs::write(&not_gguf, b"GGUX and then nothing").unwrap();
    bad_input(
        &[
            "run",
            "--target",
            &format!("local-cpu,model={}", not_gguf.display()),
        ],
        "not a GGUF file",
    );

    let think = dir.join("think.toml");
    std::fs::write(
        &think,
        "format = 1\nname = \"x\"\nversion = 1\n[load]\narrival = \"closed\"\nconcurrency = 1\nrequests = 3\n[session]\ncalls = { min = 2, max = 2 }\nthink_time_ms = { dist = \"fixed\", value = 1e300 }\n[input]\ndist = \"fixed\"\nvalue = 8.0\n[output]\ndist = \"fixed\"\nvalue = 4.0\n",
    )
    .unwrap();
    bad_input(
        &["run", "--workload", think.to_str().unwrap()],
        "field `session.think_time_ms`: at most 86400000 ms (a day) between two calls",
    );

    let report = dir.join("report.json");
    std::fs::write(&report, "{\"schema\": \"infermeter.report\"}").unwrap();
    infermeter()
        .arg("validate")
        .arg(&report)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("report.json"));
}

#[test]
fn a_truncated_model_file_exits_2_before_anything_is_written() {
    let tmp = tmp();
    let dir = tmp.path();
    let bytes = std::fs::read(gguf()).unwrap();
    let truncated = dir.join("SmolLM2-truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    bad_input(
        &[
            "run",
            "--workload",
            "quick/classify-tiny",
            "--target",
            &format!("local-cpu,model={}", truncated.display()),
        ],
        "SmolLM2-truncated.gguf",
    );
}

#[test]
fn a_real_run_on_smollm2_writes_a_valid_report() {
    let tmp = tmp();
    let out = tmp.path().join("run");
    let assert = infermeter()
        .args([
            "run",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "3",
            "--warmup",
            "1",
            "--seed",
            "5",
        ])
        .args(["--target", &format!("local-cpu,model={}", gguf().display())])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let report_path = out.join("report.json");
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("report: {}", report_path.display())
    );
    assert!(stdout.contains("quick/classify-tiny"), "{stdout}");
    // The HTML report is written beside it when the run ends.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(stdout.contains(&format!("html: {}", out.join("report.html").display())));
    assert!(html.contains("quick/classify-tiny") && html.contains("<svg class=\"chart\""));

    infermeter()
        .arg("validate")
        .arg(&report_path)
        .assert()
        .success()
        .stdout(predicate::str::contains("valid infermeter.report"));
    let report = read_json(&report_path);
    assert_eq!(report["run"]["status"], "complete");
    assert_eq!(report["run"]["seed"], 5);
    let r = &report["results"][0];
    assert_eq!(r["requests"]["sent"], 3);
    assert_eq!(r["requests"]["ok"], 3);
    assert_eq!(r["target"]["precision"], "q4_1");
    assert_eq!(r["target"]["weights"]["source"], "gguf");
    assert_eq!(r["tokens"]["output_source"], "engine");
    assert!(r["latency"]["ttft_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(r["latency"]["e2e_ms"]["count"], 3);
    // A local target is priced from the shipped catalog: the measured window times
    // the host's logical CPUs times the catalog's on-demand $/vCPU-hour, split into
    // input and output by the engine's busy time.
    let c = &r["cost"];
    assert_eq!(c["source"], "hardware-hour", "{c}");
    let cores = report["hardware"]["cpu_logical_cores"].as_f64().unwrap();
    assert_eq!(c["hardware"]["units"].as_f64().unwrap(), cores);
    assert_eq!(c["hardware"]["tier"], "on-demand");
    let per_hour = c["hardware"]["usd_per_unit_hour"].as_f64().unwrap();
    let want = r["load"]["measured_s"].as_f64().unwrap() * cores * per_hour / 3600.0;
    let total = c["usd_total"].as_f64().unwrap();
    assert!((total - want).abs() < 1e-8, "{total} vs {want}");
    let split = c["usd_input"].as_f64().unwrap() + c["usd_output"].as_f64().unwrap();
    assert!((split - total).abs() < 2e-9, "{c}");
    let share = c["input_time_share"].as_f64().unwrap();
    assert!(share > 0.0 && share < 1.0, "{c}");
    // Energy: measured where RAPL is readable, else null figures with the reason.
    let e = &r["energy"];
    assert!(
        e["energy_j"].as_f64().is_some() || e["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{e}"
    );
    if e["energy_j"].is_null() {
        assert!(
            e["source"].is_null() && e["tokens_per_j_output"].is_null(),
            "{e}"
        );
    }

    // The result is judged against the CPU's limits, measured when it was prepared.
    let rf = &r["roofline"];
    assert_eq!(rf["limits"]["device"], "cpu", "{rf}");
    assert!(
        rf["limits"]["read_gb_per_s"].as_f64().unwrap() > 0.0,
        "{rf}"
    );
    assert!(
        rf["limits"]["matmul_gflop_per_s"]["q4_1"].as_f64().unwrap() > 0.0,
        "{rf}"
    );
    assert_eq!(rf["shape"]["model"], "smollm2-135m");
    for k in ["decode_ratio", "prefill_ratio"] {
        let f = rf[k].as_f64().unwrap();
        assert!(f > 0.0 && f.is_finite(), "{k} {f}: {rf}");
    }
    assert!(rf["bytes_per_decode_token"].as_f64().unwrap() > 1e7, "{rf}");
    // The shape is what the engine holds: this GGUF keeps its (tied) embedding in
    // Q8_0, so its shared bytes exceed an all-Q4_1 projection of the same preset.
    let proj = tmp.path().join("proj.json");
    stdout_of(&[
        "roofline",
        "--quick",
        "--precision",
        "q4_1",
        "--batch",
        "1",
        "--context",
        "0",
        "--json",
        proj.to_str().unwrap(),
    ]);
    let uniform = read_json(&proj)["projections"][0]["shape"]["shared_weight_bytes"]
        .as_u64()
        .unwrap();
    let held = rf["shape"]["shared_weight_bytes"].as_u64().unwrap();
    assert!(held > uniform, "held {held} vs uniform q4_1 {uniform}");

    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        3,
        "warm-up requests are not recorded"
    );
    for line in lines.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(rec["status"], "ok");
        assert_eq!(rec["seed"], 5);
        assert_eq!(rec["output_tokens"], rec["max_output_tokens"]);
    }

    for (format, needle) in [
        ("md", "| target |"),
        ("csv", "target,workload"),
        ("json", "\"schema\""),
    ] {
        infermeter()
            .args(["report", report_path.to_str().unwrap(), "--format", format])
            .assert()
            .success()
            .stdout(predicate::str::contains(needle));
    }
}

#[test]
fn synthetic_weights_run_when_asked_and_say_so() {
    let tmp = tmp();
    let out = tmp.path().join("run");
    infermeter()
        .args([
            "run",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "2",
            "--warmup",
            "0",
            "--quiet",
        ])
        .args([
            "--target",
            "local-cpu,model=smollm2-135m,weights=synthetic,precision=q8_0,seed=3,roofline=off",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let report = read_json(&out.join("report.json"));
    let t = &report["results"][0]["target"];
    assert_eq!(t["weights"]["source"], "synthetic");
    assert_eq!(t["weights"]["seed"], 3);
    assert_eq!(t["precision"], "q8_0");
    // roofline=off measures nothing and says nothing.
    assert!(report["results"][0].get("roofline").is_none());
}

#[test]
fn roofline_on_the_cpu_measures_limits_and_projects_ceilings() {
    let tmp = tmp();
    let json = tmp.path().join("roofline.json");
    let stdout = stdout_of(&[
        "roofline",
        "--quick",
        "--model",
        "smollm2-135m,qwen3-30b-a3b",
        "--precision",
        "q4_0",
        "--batch",
        "1,32",
        "--context",
        "0,2048",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("read_gb_per_s") && stdout.contains("| qwen3-30b-a3b |"),
        "{stdout}"
    );
    let doc = read_json(&json);
    assert_eq!(doc["schema"], "infermeter.roofline");
    assert!(doc["limits"]["copy_gb_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        doc["limits"]["matmul_gflop_per_s"]["q4_0"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let p = doc["projections"].as_array().unwrap();
    assert_eq!(p.len(), 8);
    let find = |model: &str, batch: u64, context: u64| {
        p.iter()
            .find(|x| {
                x["shape"]["model"] == model
                    && x["batch"] == batch
                    && x["context_tokens"] == context
            })
            .unwrap()
            .clone()
    };
    let bytes = |x: &serde_json::Value| x["bytes_per_decode_token"].as_f64().unwrap();
    // A dense model's weights are shared by the batch: 32 sequences read 1/32 each.
    let (one, many) = (find("smollm2-135m", 1, 0), find("smollm2-135m", 32, 0));
    assert!(
        (bytes(&one) / bytes(&many) - 32.0).abs() < 1e-6,
        "{one} {many}"
    );
    // A MoE batch touches more experts: less than 32 times less per token.
    let (one, many) = (find("qwen3-30b-a3b", 1, 0), find("qwen3-30b-a3b", 32, 0));
    let gain = bytes(&one) / bytes(&many);
    assert!(gain > 1.0 && gain < 32.0, "{gain}");
    // Context adds KV bytes.
    assert!(bytes(&find("smollm2-135m", 1, 2048)) > bytes(&find("smollm2-135m", 1, 0)));
}

#[test]
fn roofline_refuses_an_unknown_device_or_a_missing_driver() {
    let mut cases = vec![
        (
            vec!["--device", "tpu"],
            "--device `tpu` is not `cpu` or `cuda:N`",
        ),
        (vec!["--model", "gpt-9"], "gpt-9"),
        (vec!["--batch", "0"], "--batch"),
    ];
    if !infermeter_kernels_driver_present() {
        cases.push((vec!["--device", "cuda:0"], "no CUDA driver found"));
    }
    for (args, needle) in cases {
        let assert = infermeter().arg("roofline").args(&args).assert().code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn local_cuda_without_a_driver_exits_2_saying_so() {
    if infermeter_kernels_driver_present() {
        eprintln!("a CUDA driver is present: the no-driver message is not exercised here");
        return;
    }
    let dir = tmp();
    let out = dir.path().join("run");
    let assert = infermeter()
        .args([
            "run",
            "--target",
            "local-cuda",
            "--workload",
            "classify-tiny",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("no CUDA driver found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists(), "nothing is written");
}

fn infermeter_kernels_driver_present() -> bool {
    kernels::cuda::probe::driver_present()
}

#[test]
fn hw_prints_the_fingerprint_as_json() {
    let out = stdout_of(&["hw"]);
    let hw: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(hw["cpu_logical_cores"].as_u64().unwrap() >= 1, "{hw}");
    assert!(hw["memory_bytes"].as_u64().unwrap() > 0);
    assert!(!hw["cpu_model"].as_str().unwrap().is_empty());
    // This machine has no GPU: the list is empty and says why.
    if hw["gpus"].as_array().unwrap().is_empty() {
        assert!(hw["gpu_probe"].as_str().unwrap().contains("NVML"), "{hw}");
    }
    assert!(hw["virtualization"].is_array());
}

/// A RAPL tree in a temporary folder, its package counter driven at a constant 20 W by
/// a thread (written atomically every 5 ms, wrapping at its range): the run's energy
/// comes from the real sampler and window arithmetic, and must be 20 W x its window.
#[test]
fn a_cpu_run_reports_rapl_energy_when_the_machine_exposes_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const WATTS: f64 = 20.0;
    const RANGE_UJ: u64 = 262_143_328_850;
    let tmp = tmp();
    let pkg = tmp.path().join("powercap/intel-rapl:0");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("name"), "package-0\n").unwrap();
    std::fs::write(
        pkg.join("max_energy_range_uj"),
        format!("{}\n", RANGE_UJ - 1),
    )
    .unwrap();
    // Start near the end of the range, so the run sees the counter wrap.
    let start_uj = RANGE_UJ - 30_000_000;
    std::fs::write(pkg.join("energy_uj"), format!("{start_uj}\n")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, pkg) = (Arc::clone(&stop), pkg.clone());
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            // The longest time the file went without an update: a reading can be this
            // stale, which a real counter (updated by the hardware) never is.
            let (mut last_write_s, mut max_gap_s) = (0.0f64, 0.0f64);
            while !stop.load(Ordering::Relaxed) {
                let now_s = t0.elapsed().as_secs_f64();
                let uj = start_uj + (now_s * WATTS * 1e6) as u64;
                let part = pkg.join("energy_uj.part");
                std::fs::write(&part, format!("{}\n", uj % RANGE_UJ)).unwrap();
                std::fs::rename(&part, pkg.join("energy_uj")).unwrap();
                max_gap_s = max_gap_s.max(t0.elapsed().as_secs_f64() - last_write_s);
                last_write_s = t0.elapsed().as_secs_f64();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            max_gap_s
        })
    };
    let out = tmp.path().join("run");
    infermeter()
        .env("INFERMETER_POWERCAP", tmp.path().join("powercap"))
        .args([
            "run",
            "--workload",
            "quick/classify-tiny",
            "--requests",
            "8",
        ])
        .args(["--concurrency", "2", "--warmup", "0", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
    stop.store(true, Ordering::Relaxed);
    let max_gap_s = writer.join().unwrap();
    let report = read_json(&out.join("report.json"));
    let e = &report["results"][0]["energy"];
    assert_eq!(e["source"], "rapl", "{e}");
    let (j, window) = (
        e["energy_j"].as_f64().unwrap(),
        e["window_s"].as_f64().unwrap(),
    );
    assert!(window > 0.5, "{e}");
    // Two workers busy from the start to the last send: a steady window inside the
    // measured one.
    assert_eq!(e["window_kind"], "steady-state", "{e}");
    let measured = report["results"][0]["load"]["measured_s"].as_f64().unwrap();
    assert!(window < measured, "{window} vs {measured}");
    // On a busy 2-core machine the writer thread can be starved: each end of a window
    // may read a value up to `max_gap_s` old, so the bound widens by that much energy.
    let stale_j = WATTS * max_gap_s;
    assert!(
        (j - WATTS * window).abs() < WATTS * window * 0.05 + stale_j,
        "{j} J over {window} s (writer's longest gap {max_gap_s} s): {e}"
    );
    // The idle reading is the mean over 1 s (its samples span at least 0.8 s).
    let idle = e["idle_power_w"].as_f64().unwrap();
    assert!(
        (idle - WATTS).abs() < WATTS * 0.05 + stale_j / 0.8,
        "idle {idle} W (writer's longest gap {max_gap_s} s): {e}"
    );
    assert!(e["tokens_per_j_output"].as_f64().unwrap() > 0.0);
    assert_eq!(e["reason"], serde_json::Value::Null);
}
