//! Remote targets end to end against the project's scripted loopback server
//! (the `scripted` crate): timing accuracy against the schedule the server logged,
//! every fault case with its error class and nothing else lost, the Anthropic
//! protocol, reasoning tokens, per-chunk usage, unstreamed responses, and secrets.
//!
//! Each test runs the real `infermeter` binary against a server on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use scripted::{Behaviour, Pace, Script, ScriptedServer};
use serde_json::Value;

fn infermeter() -> Command {
    let mut cmd = Command::cargo_bin("infermeter").unwrap();
    cmd.env_remove("INFERMETER_LOG");
    cmd
}

/// A closed-loop workload of `requests` single calls, `input` tokens in and
/// `output` out, `concurrency` in flight.
fn workload(dir: &Path, requests: u32, concurrency: u32, output: u32) -> String {
    let path = dir.join("remote.toml");
    std::fs::write(
        &path,
        format!(
            "format = 1\nname = \"remote-test\"\nversion = 1\ndescription = \"scripted-server test\"\nseed = 3\n[load]\narrival = \"closed\"\nconcurrency = {concurrency}\nrequests = {requests}\nwarmup_requests = 0\n[input]\ndist = \"fixed\"\nvalue = 48.0\n[output]\ndist = \"fixed\"\nvalue = {output}.0\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

struct Run {
    report: Value,
    records: Vec<Value>,
    stdout: String,
    stderr: String,
    files: String,
}

fn run(target: &str, workload: &str, out: &Path, envs: &[(&str, &str)]) -> Run {
    let mut cmd = infermeter();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = cmd
        .args(["run", "--quiet", "--target", target, "--workload", workload])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report_text = std::fs::read_to_string(out.join("report.json")).unwrap();
    let jsonl = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let report: Value = serde_json::from_str(&report_text).unwrap();
    results::schema::validate_report_json(&report).unwrap();
    let records = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run {
        report,
        records,
        stdout,
        stderr,
        files: format!("{report_text}\n{jsonl}"),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    assert!(n > 0);
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn target(server: &ScriptedServer, extra: &str) -> String {
    format!(
        "openai,base_url={},model=scripted,preflight=false{extra}",
        server.base_url()
    )
}

/// Checks measured TTFT (median over records, against the script and against the
/// server's log of when it sent each first token), ITL (the report's p50) and TPOT
/// (median over records) against the expected values.
fn check_timing(
    run: &Run,
    server: &ScriptedServer,
    (ttft_ms, itl_ms, tpot_ms): (f64, f64, f64),
    label: &str,
) {
    let log = server.log();
    let server_ttft = median(log.iter().filter_map(|l| l.ttft_ms()).collect());
    let measured_ttft = median(
        run.records
            .iter()
            .map(|r| r["ttft_ms"].as_f64().unwrap())
            .collect(),
    );
    let tpot = median(
        run.records
            .iter()
            .map(|r| r["tpot_ms"].as_f64().unwrap())
            .collect(),
    );
    let itl_p50 = run.report["results"][0]["latency"]["itl_ms"]["p50"]
        .as_f64()
        .unwrap();
    eprintln!(
        "{label}: TTFT median measured {measured_ttft:.3} ms, server log {server_ttft:.3} ms, scripted {ttft_ms}; ITL p50 {itl_p50:.3} ms, TPOT median {tpot:.3} ms, scripted {itl_ms}"
    );
    // The stated bound: medians within 1 ms of what the server did (its own log), and
    // of the script plus however late the server's own sleeps ran (a busy 2-core
    // machine makes the fixture late too: seen 0.8 ms late in CI).
    let server_late_ms = (server_ttft - ttft_ms).max(0.0);
    assert!(
        (measured_ttft - ttft_ms).abs() < 1.0 + server_late_ms,
        "{label}: TTFT {measured_ttft} (server {server_late_ms:.3} ms late)"
    );
    assert!(
        (measured_ttft - server_ttft).abs() < 1.0,
        "{label}: TTFT {measured_ttft} vs server {server_ttft}"
    );
    assert!((itl_p50 - itl_ms).abs() < 1.0, "{label}: ITL p50 {itl_p50}");
    assert!((tpot - tpot_ms).abs() < 1.0, "{label}: TPOT {tpot}");
}

#[test]
fn timings_match_the_servers_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 12, 2, 24);
    let pace = Pace {
        ttft_ms: 40.0,
        itl_ms: 8.0,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let r = run(&target(&server, ""), &wl, &dir.path().join("a"), &[]);
    let res = &r.report["results"][0];
    assert_eq!(res["requests"]["ok"], 12);
    assert_eq!(res["tokens"]["output"], 12 * 24);
    assert_eq!(res["tokens"]["output_source"], "server_usage");
    let prov = &res["tokens"]["provenance"];
    assert_eq!(prov["requests_with_usage"], 12);
    assert_eq!(prov["tokenizer_output"], 12 * 24, "{prov}");
    assert_eq!(prov["output_disagreement_pct"], 0.0);
    assert_eq!(prov["chunk_counts"]["tokenizer"], 12);
    check_timing(&r, &server, (40.0, 8.0, 8.0), "one token per chunk");
    // Keep-alive: 12 requests, 2 in flight, over a few connections (a connection is
    // back in the pool a moment after its body ends, so a busy machine can open one
    // more now and then; without reuse there would be 12).
    assert!(
        server.connections() <= 6,
        "{} connections",
        server.connections()
    );
    // The server saw what the target spec asked for.
    let body = &server.log()[0].body;
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_tokens"], 24);
    assert!(body.get("ignore_eos").is_none());
}

#[test]
fn coalesced_chunks_give_per_token_itl() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 8, 2, 24);
    let pace = Pace {
        ttft_ms: 30.0,
        itl_ms: 6.0,
        tokens_per_chunk: 4,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let r = run(
        &target(&server, ",api=completions,exact_output=true"),
        &wl,
        &dir.path().join("a"),
        &[],
    );
    let res = &r.report["results"][0];
    assert_eq!(res["requests"]["ok"], 8);
    // A chunk of 4 tokens after 24 ms: four gaps of 6 ms; chunk gaps of 24 ms.
    let chunk_gap = res["latency"]["chunk_gap_ms"]["p50"].as_f64().unwrap();
    assert!((chunk_gap - 24.0).abs() < 1.0, "{chunk_gap}");
    // The first chunk carries 4 tokens: it is sent at 30 + 3 x 6 ms. TPOT spreads the
    // 5 later chunks (120 ms) over 23 tokens.
    check_timing(&r, &server, (48.0, 6.0, 120.0 / 23.0), "4 tokens per chunk");
    let body = &server.log()[0].body;
    assert_eq!(body["ignore_eos"], true);
    assert_eq!(body["min_tokens"], 24);
    assert!(body.get("prompt").is_some());
}

#[test]
fn usage_on_every_chunk_counts_tokens_and_reasoning_is_timed_apart() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 6, 2, 20);
    let pace = Pace {
        ttft_ms: 25.0,
        itl_ms: 5.0,
        tokens_per_chunk: 2,
        reasoning_tokens: 8,
        usage_every_chunk: true,
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let r = run(&target(&server, ""), &wl, &dir.path().join("a"), &[]);
    let res = &r.report["results"][0];
    assert_eq!(
        res["tokens"]["provenance"]["chunk_counts"]["usage_delta"],
        6
    );
    assert_eq!(res["tokens"]["provenance"]["server_reasoning"], 6 * 8);
    let mut gaps = Vec::new();
    for rec in &r.records {
        assert_eq!(rec["reasoning_tokens"], 8);
        assert_eq!(rec["reconciled"], false);
        gaps.push(rec["ttft_answer_ms"].as_f64().unwrap() - rec["ttft_ms"].as_f64().unwrap());
    }
    // First token at 25 + 5 ms, the answer 8 tokens (4 chunks) later, checked against
    // the server's log (its sleeps run late on a busy VM: 1.4 ms in CI).
    let log = server.log();
    let at = |l: &scripted::RequestLog| l.chunks[4].0.duration_since(l.arrived).as_secs_f64() * 1e3;
    let server_gap = median(log.iter().map(|l| at(l) - l.ttft_ms().unwrap()).collect());
    let (server_answer, gap) = (median(log.iter().map(at).collect()), median(gaps));
    let ok = (gap - server_gap).abs() < 1.0 && (server_gap - 40.0).abs() < 5.0;
    assert!(ok, "{gap} (server {server_gap})");
    let answer_p50 = res["latency"]["ttft_answer_ms"]["p50"].as_f64().unwrap();
    let ok = (answer_p50 - server_answer).abs() < 1.0 && (server_answer - 70.0).abs() < 5.0;
    assert!(ok, "{answer_p50} (server {server_answer})");
}

#[test]
fn anthropic_streams_are_timed_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 8, 2, 16);
    let pace = Pace {
        ttft_ms: 35.0,
        itl_ms: 7.0,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let spec = format!(
        "anthropic,base_url={},model=claude-test,api_key_env=INFERMETER_TEST_ANTHROPIC_KEY,preflight=false",
        server.base_url()
    );
    let r = run(
        &spec,
        &wl,
        &dir.path().join("a"),
        &[("INFERMETER_TEST_ANTHROPIC_KEY", "ak-test-key-0000")],
    );
    let res = &r.report["results"][0];
    assert_eq!(res["requests"]["ok"], 8);
    assert_eq!(res["target"]["kind"], "anthropic");
    assert_eq!(res["tokens"]["output_source"], "server_usage");
    check_timing(&r, &server, (35.0, 7.0, 7.0), "anthropic");
    assert_eq!(server.log()[0].path, "/v1/messages");
    assert!(!r.files.contains("ak-test-key-0000"));
}

#[test]
fn unstreamed_responses_are_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 4, 2, 10);
    let pace = Pace {
        ttft_ms: 20.0,
        itl_ms: 3.0,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).unwrap();
    let r = run(
        &target(&server, ",stream=false"),
        &wl,
        &dir.path().join("a"),
        &[],
    );
    let res = &r.report["results"][0];
    assert_eq!(res["requests"]["ok"], 4);
    assert_eq!(res["tokens"]["output"], 40);
    for rec in &r.records {
        let (ttft, e2e) = (
            rec["ttft_ms"].as_f64().unwrap(),
            rec["e2e_ms"].as_f64().unwrap(),
        );
        assert!(ttft >= 20.0 + 9.0 * 3.0 - 0.5 && e2e - ttft < 1.0, "{rec}");
        // The tokens did not arrive one by one: TPOT and ITL were not measured.
        assert!(rec["tpot_ms"].is_null(), "{rec}");
    }
    assert!(
        res["latency"]["tpot_ms"]["p50"].is_null(),
        "{}",
        res["latency"]
    );
    let notes = res["notes"].to_string();
    assert!(notes.contains("not streamed"), "{notes}");
}

/// Every fault of the matrix in one run of 20 requests: each fault hits exactly one
/// arrival, so the counts per class are exact whatever the interleaving.
#[test]
fn each_fault_gets_its_class_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 20, 3, 12);
    let pace = Pace {
        ttft_ms: 5.0,
        itl_ms: 2.0,
        ..Pace::default()
    };
    let status = |status, retry_after: Option<&str>| Behaviour::Status {
        status,
        retry_after: retry_after.map(str::to_string),
        body: r#"{"error":{"message":"scripted failure","type":"test"}}"#.into(),
    };
    let by_arrival = BTreeMap::from([
        (1, status(429, Some("0"))),
        (2, status(503, Some("0"))),
        (3, status(500, None)),
        (5, Behaviour::Disconnect { after_tokens: 3 }),
        (7, Behaviour::Stall { after_tokens: 2 }),
        (9, Behaviour::Malformed { after_tokens: 4 }),
        (11, Behaviour::NoTerminator),
        (13, Behaviour::Oversized { bytes: 4 << 20 }),
        (15, Behaviour::ErrorEvent { after_tokens: 1 }),
        (17, status(400, None)),
        (19, Behaviour::LingerAfterDone { ms: 800 }),
    ]);
    let server = ScriptedServer::start(Script {
        default: Behaviour::Normal(pace),
        by_arrival,
    })
    .unwrap();
    let r = run(
        &target(&server, ",idle_timeout_s=1,max_event_bytes=65536"),
        &wl,
        &dir.path().join("a"),
        &[],
    );
    let res = &r.report["results"][0];
    let reqs = &res["requests"];
    eprintln!("fault matrix run: {reqs}");
    assert_eq!(reqs["sent"], 20, "every request was recorded");
    let classes: BTreeMap<String, u64> = serde_json::from_value(reqs["by_class"].clone()).unwrap();
    let want = BTreeMap::from([
        ("http_status".to_string(), 2),  // 500 and 400
        ("connection".to_string(), 1),   // mid-stream disconnect
        ("timeout".to_string(), 1),      // stall past the idle timeout
        ("protocol".to_string(), 2),     // malformed event, oversized event
        ("server_error".to_string(), 1), // error event
    ]);
    assert_eq!(classes, want);
    assert_eq!(reqs["failed"], 7);
    assert_eq!(reqs["ok"], 13);
    assert_eq!(reqs["retries"], 2, "429 and 503 were retried once each");
    assert_eq!(reqs["protocol_warnings"], 1, "the missing terminator");
    // 20 requests + 2 retries reached the server.
    assert_eq!(server.arrivals(), 22);
    // Failures keep their partial measurements and say what happened.
    let failed: Vec<&Value> = r
        .records
        .iter()
        .filter(|r| r["status"] == "error")
        .collect();
    let by = |class: &str| -> &Value {
        failed
            .iter()
            .find(|r| r["error_class"] == class)
            .unwrap_or_else(|| panic!("no {class}"))
    };
    let disconnect = by("connection");
    assert_eq!(disconnect["output_tokens"], 3, "{disconnect}");
    assert!(disconnect["ttft_ms"].as_f64().is_some());
    assert!(
        disconnect["error"]
            .as_str()
            .unwrap()
            .contains("after 3 tokens")
    );
    let stall = by("timeout");
    assert_eq!(stall["output_tokens"], 2);
    assert!(
        stall["error"].as_str().unwrap().contains("stalled"),
        "{stall}"
    );
    assert!(failed.iter().any(|r| {
        r["error"]
            .as_str()
            .unwrap()
            .contains("larger than 65536 bytes")
    }));
    assert!(
        failed
            .iter()
            .any(|r| r["error"].as_str().unwrap().contains("malformed event"))
    );
    // The body is summarised in one line (the 500 may have met a retried request).
    let http500 = failed.iter().find(|r| r["http_status"] == 500).unwrap();
    let msg = http500["error"].as_str().unwrap();
    assert!(
        msg.starts_with("HTTP 500") && msg.ends_with(": scripted failure"),
        "{msg}"
    );
    let no_done = r.records.iter().find(|r| r["warnings"].is_array()).unwrap();
    assert_eq!(no_done["status"], "ok");
    // A body held open after its terminator: the response ended at the terminator.
    let lingered = r
        .records
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| r["e2e_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        lingered < 400.0,
        "an E2E of {lingered} ms includes the linger"
    );
    // The run's report is complete: latencies of the successful requests are there.
    assert_eq!(res["latency"]["ttft_ms"]["count"], 13);
    assert_eq!(r.report["run"]["status"], "complete");
}

#[test]
fn a_429_beyond_the_retry_budget_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 3, 1, 4);
    let limited = Behaviour::Status {
        status: 429,
        retry_after: Some("0".into()),
        body: "slow down".into(),
    };
    let server = ScriptedServer::start(Script {
        default: Behaviour::Normal(Pace::default()),
        by_arrival: BTreeMap::from([(0, limited.clone()), (1, limited.clone()), (2, limited)]),
    })
    .unwrap();
    let r = run(
        &target(&server, ",max_retries=2"),
        &wl,
        &dir.path().join("a"),
        &[],
    );
    let reqs = &r.report["results"][0]["requests"];
    assert_eq!(reqs["by_class"]["rate_limited"], 1, "{reqs}");
    assert_eq!(reqs["ok"], 2);
    assert_eq!(reqs["retries"], 2);
    let rec = &r.records[0];
    assert_eq!(rec["error"], "HTTP 429 after 2 retries: slow down");
    assert_eq!(rec["retries"], 2);
    assert_eq!(rec["retried"][1]["http_status"], 429, "{rec}");
    assert_eq!(rec["retried"][1]["class"], "rate_limited");
}

/// A server asking to be retried after 1e20 s (or after the request's deadline) is not
/// waited for: those requests fail at once as rate-limited, saying why, and the run
/// completes with every other request measured.
#[test]
fn a_retry_after_past_any_budget_or_deadline_is_classed_and_the_rest_measured() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 6, 1, 4);
    let wait = |s: &str| Behaviour::Status {
        status: 429,
        retry_after: Some(s.into()),
        body: "come back later".into(),
    };
    let server = ScriptedServer::start(Script {
        default: Behaviour::Normal(Pace::default()),
        by_arrival: BTreeMap::from([(1, wait("1e20")), (3, wait("inf")), (4, wait("30"))]),
    })
    .unwrap();
    // The last one asks for 30 s, within retry_max_wait_s but past the request's
    // deadline of 5 s.
    let mut cmd = infermeter();
    let out = dir.path().join("a");
    let o = cmd
        .args(["run", "--quiet", "--request-timeout", "5", "--target"])
        .arg(target(&server, ""))
        .args(["--workload", &wl, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let reqs = &report["results"][0]["requests"];
    assert_eq!(reqs["sent"], 6, "{reqs}");
    assert_eq!(reqs["by_class"]["rate_limited"], 3, "{reqs}");
    assert_eq!(
        (reqs["ok"].as_u64(), reqs["retries"].as_u64()),
        (Some(3), Some(0))
    );
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let errors: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r["error"].as_str().map(str::to_string))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains("not retried: Retry-After 1e20 is longer than retry_max_wait_s"),
        "{errors:?}"
    );
    assert!(errors[1].contains("Retry-After inf"), "{errors:?}");
    assert!(
        errors[2].contains("not retried: Retry-After 30 would end past the request's deadline"),
        "{errors:?}"
    );
    // Failed at once, not after waiting: the run took far less than the deadline.
    assert!(report["results"][0]["load"]["measured_s"].as_f64().unwrap() < 5.0);
}

#[test]
fn the_api_key_never_leaves_the_request_header() {
    const KEY: &str = "sk-infermeter-test-9f8e7d6c5b4a";
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 6, 2, 4);
    let server = ScriptedServer::start(Script {
        default: Behaviour::Normal(Pace::default()),
        by_arrival: BTreeMap::from([
            (1, Behaviour::EchoCredentials),
            (3, Behaviour::EchoCredentials),
        ]),
    })
    .unwrap();
    let spec = target(&server, ",api_key_env=INFERMETER_TEST_KEY");
    let r = run(
        &spec,
        &wl,
        &dir.path().join("a"),
        &[("INFERMETER_TEST_KEY", KEY), ("INFERMETER_LOG", "debug")],
    );
    let reqs = &r.report["results"][0]["requests"];
    assert_eq!(reqs["by_class"]["http_status"], 2, "{reqs}");
    // The server did get the key (it echoed it back), and the error says so, scrubbed.
    let echoed = r.records.iter().find(|r| r["http_status"] == 401).unwrap();
    assert!(
        echoed["error"].as_str().unwrap().contains("[redacted]"),
        "{echoed}"
    );
    for (what, text) in [
        ("report.json + requests.jsonl", &r.files),
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
    ] {
        assert!(!text.contains(KEY), "the key is in {what}");
        assert!(!text.contains(&KEY[..12]), "part of the key is in {what}");
    }
    // A missing variable is bad input, named without any value.
    let out = infermeter()
        .env_remove("INFERMETER_TEST_KEY")
        .args(["run", "--quiet", "--target", &spec, "--workload", &wl])
        .arg("--out")
        .arg(dir.path().join("b"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("INFERMETER_TEST_KEY") && err.contains("not set"),
        "{err}"
    );
    assert!(!dir.path().join("b").exists(), "no report for bad input");
}

#[test]
fn named_targets_from_a_file_compare_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 4, 2, 8);
    let fast = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 10.0,
        itl_ms: 2.0,
        ..Pace::default()
    }))
    .unwrap();
    let slow = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 60.0,
        itl_ms: 4.0,
        ..Pace::default()
    }))
    .unwrap();
    let file = dir.path().join("targets.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[targets.fast]
kind = "openai"
base_url = "{}"
model = "fast-model"
preflight = false
[targets.fast.body]
temperature = 0
[targets.fast.prices]
input_usd_per_m = 0.15
output_usd_per_m = 0.60
source = "test"

[targets.slow]
kind = "anthropic"
base_url = "{}"
model = "slow-model"
"#,
            fast.base_url(),
            slow.base_url()
        ),
    )
    .unwrap();
    let out = dir.path().join("a");
    infermeter()
        .args(["run", "--quiet", "--targets"])
        .arg(&file)
        .args([
            "--target",
            "@fast",
            "--target",
            "@slow",
            "--max-connections",
            "1",
            "--workload",
            &wl,
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["target"]["model"], "fast-model");
    assert_eq!(results[0]["target"]["prices"]["output_usd_per_m"], 0.6);
    // Priced from the rate card and the report's own token counts.
    let cost = &results[0]["cost"];
    let tokens = &results[0]["tokens"];
    let (input, output) = (
        tokens["input"].as_f64().unwrap(),
        tokens["output"].as_f64().unwrap(),
    );
    assert_eq!(output, 4.0 * 8.0);
    let want = input * 0.15e-6 + output * 0.60e-6;
    assert!(
        (cost["usd_total"].as_f64().unwrap() - want).abs() < 2e-6,
        "{cost}"
    );
    assert_eq!(cost["source"], "rate-card");
    assert_eq!(cost["tokens_basis"], "server_usage");
    assert_eq!(cost["usd_per_m_blended_3_1"], 0.2625);
    assert!(
        (cost["usd_per_m_output"].as_f64().unwrap() - 0.6).abs() < 1e-6,
        "{cost}"
    );
    assert!((cost["usd_per_request"].as_f64().unwrap() - want / 4.0).abs() < 2e-6);
    // No rate card: not priced, and said why.
    assert!(results[1]["cost"]["usd_total"].is_null());
    assert!(
        results[1]["cost"]["reason"]
            .as_str()
            .unwrap()
            .contains("no rate card")
    );
    assert_eq!(results[1]["target"]["kind"], "anthropic");
    assert_eq!(results[1]["target"]["settings"]["max_connections"], "1");
    let ttft = |i: usize| results[i]["latency"]["ttft_ms"]["p50"].as_f64().unwrap();
    assert!(ttft(0) < 20.0 && ttft(1) > 55.0, "{} {}", ttft(0), ttft(1));
    assert_eq!(fast.log()[0].body["temperature"], 0);
    // One connection: the slow target's requests queued for it (visible in queue_ms).
    let queue_max = results[1]["latency"]["queue_ms"]["max"].as_f64().unwrap();
    assert!(queue_max > 50.0, "{queue_max}");
}

#[test]
fn an_unreachable_server_fails_every_request_as_connection_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 3, 1, 4);
    // A port that was free a moment ago: nothing listens there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    drop(l);
    let spec = format!("openai,base_url={url},model=m,preflight=false,max_retries=1");
    let r = run(&spec, &wl, &dir.path().join("a"), &[]);
    let reqs = &r.report["results"][0]["requests"];
    // Each refused connection is retried once (the budget), then classed.
    assert_eq!(reqs["by_class"]["connection"], 3, "{reqs}");
    assert_eq!(reqs["retries"], 3, "{reqs}");
    let msg = r.records[0]["error"].as_str().unwrap();
    assert!(msg.contains("request (after 1 retries)"), "{msg}");
    assert_eq!(r.report["run"]["status"], "complete");
}

#[test]
fn cold_start_probes_are_reported_apart() {
    let dir = tempfile::tempdir().unwrap();
    let wl = dir.path().join("cold.toml");
    std::fs::write(
        &wl,
        r#"format = 1
name = "cold-test"
version = 1
[load]
arrival = "closed"
concurrency = 1
requests = 3
cold_start = { idle_s = 0.3, probes = 2 }
[input]
dist = "fixed"
value = 16.0
[output]
dist = "fixed"
value = 4.0
"#,
    )
    .unwrap();
    let server = ScriptedServer::start(Script::normal(Pace {
        ttft_ms: 15.0,
        itl_ms: 2.0,
        ..Pace::default()
    }))
    .unwrap();
    let r = run(
        &target(&server, ""),
        wl.to_str().unwrap(),
        &dir.path().join("a"),
        &[],
    );
    let res = &r.report["results"][0];
    let cold = &res["cold_start"];
    assert_eq!(cold["probes"], 2, "{cold}");
    assert_eq!(cold["ok"], 2);
    assert_eq!(cold["idle_s"], 0.3);
    let ttft = cold["ttft_ms"]["p50"].as_f64().unwrap();
    assert!((ttft - 15.0).abs() < 2.0, "{ttft}");
    assert_eq!(
        res["requests"]["sent"], 3,
        "probes stay out of the load point"
    );
    assert_eq!(
        r.records.iter().filter(|r| r["cold_start"] == true).count(),
        2
    );
    // The server saw a silence of 0.3 s before each probe.
    let log = server.log();
    let gap = log[1]
        .received
        .duration_since(log[0].received)
        .as_secs_f64();
    assert!(gap >= 0.3, "{gap}");
}

#[test]
fn a_tokenizer_file_counts_what_the_server_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path(), 4, 2, 10);
    // The served model's tokenizer.json (here SmolLM2's own, written out).
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, workloads::text::tokenizer().to_string(false).unwrap()).unwrap();
    let server = ScriptedServer::start(Script::normal(Pace::default())).unwrap();
    // The completions API without include_usage honoured: no usage, so the file counts.
    let spec = format!(
        "{},body.stream_options={{\"include_usage\":false}},tokenizer={}",
        target(&server, ""),
        tok.display()
    );
    let r = run(&spec, &wl, &dir.path().join("a"), &[]);
    let res = &r.report["results"][0];
    assert_eq!(
        res["tokens"]["output_source"], "tokenizer",
        "{}",
        res["tokens"]
    );
    assert_eq!(res["tokens"]["output"], 40);
    assert_eq!(
        res["tokens"]["provenance"]["tokenizer"],
        tok.display().to_string()
    );
    // A file that is not a tokenizer is bad input, named.
    std::fs::write(dir.path().join("bad.json"), "{}").unwrap();
    let out = infermeter()
        .args(["run", "--quiet", "--workload", &wl, "--target"])
        .arg(format!(
            "{},tokenizer={}",
            target(&server, ""),
            dir.path().join("bad.json").display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}
