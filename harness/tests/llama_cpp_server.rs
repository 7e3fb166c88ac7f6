//! The `openai` target against llama.cpp's own C++ `llama-server` (built by
//! `ci/setup.sh --reference` from the source in the `llama-cpp-python` sdist), started
//! with `--metrics` on loopback and serving the SmolLM2-135M GGUF: the server's
//! Prometheus metrics scraped through each load point and reconciled with the client,
//! exact output counts without usage, a Mooncake trace replayed with its shared
//! prefixes, the preflight, and the SLO search.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use common::{free_port, gguf, infermeter, read_json, read_jsonl, wait_healthy};
use serde_json::Value;

fn binary() -> PathBuf {
    let p = std::env::var_os("INFERMETER_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/infermeter/llama-server-0.3.36/llama-server")
        });
    assert!(
        p.exists(),
        "{}: llama-server not found: run ci/setup.sh --reference",
        p.display()
    );
    p
}

/// A `llama-server --metrics` on a free port, killed when dropped. One at a time:
/// two servers sharing the 2 cores would time each other out.
struct Server {
    child: Child,
    port: u16,
    _alone: std::sync::MutexGuard<'static, ()>,
}

static ONE_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Self {
        Self::start_with_threads(2)
    }

    /// A server computing on `threads` of the machine's cores.
    fn start_with_threads(threads: u32) -> Self {
        let alone = ONE_SERVER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = free_port();
        let child = Process::new(binary())
            .arg("-m")
            .arg(gguf())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--metrics", "-c", "8192", "-np", "4"])
            .args(["-t", &threads.to_string()])
            .args(["--alias", "smollm2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            port,
            _alone: alone,
        };
        wait_healthy(
            &mut server.child,
            port,
            "llama-server",
            Duration::from_secs(60),
        );
        server
    }

    fn target(&self, extra: &str) -> String {
        format!(
            "openai,base_url=http://127.0.0.1:{}/v1,model=smollm2,api=completions,context_limit=8192{extra}",
            self.port
        )
    }
}

/// `infermeter ARGS --out OUT`, which must succeed: the report (schema-checked).
fn run(args: &[&str], out: &Path) -> (Value, String) {
    let o = infermeter()
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    results::schema::validate_report_json(&report).unwrap();
    (report, stdout)
}

/// A chat workload of `input` prompt tokens and exactly `output` output tokens, in
/// `dir`; returns its path.
fn workload(dir: &Path, input: u32, output: u32) -> String {
    let path = dir.join(format!("w-{input}-{output}.toml"));
    std::fs::write(
        &path,
        format!(
            "format = 1\nname = \"small\"\nversion = 1\n[load]\narrival = \"closed\"\nconcurrency = 1\nrequests = 8\n[input]\ndist = \"uniform\"\nmin = {}\nmax = {input}\n[output]\ndist = \"fixed\"\nvalue = {output}\n",
            input / 2
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn server_metrics_are_scraped_and_reconciled_with_the_client() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let target = server.target(",exact_output=true,metrics_interval_s=0.25");
    let w = workload(dir.path(), 200, 24);
    let (report, _) = run(
        &[
            "run",
            "--quiet",
            "--target",
            &target,
            "--workload",
            &w,
            "--requests",
            "12",
            "--warmup",
            "2",
            "--concurrency",
            "3",
        ],
        &out,
    );
    let r = &report["results"][0];
    let s = &r["server"];
    assert_eq!(s["server"], "llamacpp", "{s}");
    assert!(s["scrapes"].as_u64().unwrap() >= 2, "{s}");
    let rec = &s["reconciliation"];
    // Warm-up and the preflight fall before the window: the counters' deltas are the
    // measured requests' tokens, exactly.
    assert_eq!(
        rec["server_output_tokens"].as_f64().unwrap(),
        r["tokens"]["output"].as_f64().unwrap(),
        "{rec}"
    );
    assert_eq!(rec["agree"], true, "{rec}");
    // The server tokenizes the same prompt text with the same vocabulary; its prompt
    // counters (computed plus cached) come close to the client's count but are not
    // exact: now and then one request's prompt is missing from them (seen: 1,594 of
    // 1,707), which is why prompt tokens are shown and not judged.
    let server_in = rec["server_input_tokens"].as_f64().unwrap();
    let client_in = rec["client_input_tokens"].as_f64().unwrap();
    assert!(
        (server_in - client_in).abs() <= 0.1 * client_in,
        "{server_in} vs {client_in}"
    );
    assert!(s["requests_running"]["max"].as_f64().unwrap() >= 1.0, "{s}");
    assert!(
        s["raw"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("llamacpp:"))
    );
    // The raw samples are kept, the first before the first measured send.
    let raw = read_jsonl(&out.join("server_metrics.jsonl"));
    assert_eq!(raw.len() as u64, s["scrapes"].as_u64().unwrap());
    assert!(raw[0]["t_s"].as_f64().unwrap() <= 0.0, "{}", raw[0]);
    assert!(raw[0]["values"]["llamacpp:tokens_predicted_total"].is_number());
}

#[test]
fn exact_output_counts_without_usage_come_from_the_requested_length() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // No usage in the stream (llama-server's chat API sends it only when asked); the
    // request fixed its length (ignore_eos).
    let target = server
        .target(",exact_output=true,body.stream_options={\"include_usage\":false}")
        .replace("api=completions", "api=chat");
    let w = workload(dir.path(), 64, 64);
    let (report, _) = run(
        &[
            "run",
            "--quiet",
            "--target",
            &target,
            "--workload",
            &w,
            "--requests",
            "4",
            "--warmup",
            "0",
            "--concurrency",
            "2",
        ],
        dir.path(),
    );
    let r = &report["results"][0];
    assert_eq!(
        r["tokens"]["output_source"], "requested_length",
        "{}",
        r["tokens"]
    );
    let records = read_jsonl(&dir.path().join("requests.jsonl"));
    for rec in &records {
        assert_eq!(rec["output_tokens"], rec["max_output_tokens"], "{rec}");
        assert_eq!(rec["finish_reason"], "length");
    }
    // The server's own counter agrees with the count.
    assert_eq!(
        r["server"]["reconciliation"]["agree"], true,
        "{}",
        r["server"]
    );
}

#[test]
fn a_mooncake_trace_replays_with_its_shared_prefixes() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let workload =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces/replay-mooncake.toml");
    // The first 12 requests of the fixture (6,640 prompt tokens in 6.6 s), at the
    // trace's times.
    let spec = dir.path().join("replay.toml");
    let text = std::fs::read_to_string(&workload)
        .unwrap()
        .replace("arrival = \"trace\"", "arrival = \"trace\"\nrequests = 12")
        .replace(
            "path = \"mooncake-sample.jsonl\"",
            &format!(
                "path = \"{}\"",
                workload.with_file_name("mooncake-sample.jsonl").display()
            ),
        );
    std::fs::write(&spec, text).unwrap();
    let target = server.target(",exact_output=true,idle_timeout_s=120");
    let (report, _) = run(
        &[
            "run",
            "--quiet",
            "--target",
            &target,
            "--workload",
            spec.to_str().unwrap(),
        ],
        &dir.path().join("out"),
    );
    let r = &report["results"][0];
    assert_eq!(r["load"]["pattern"], "trace");
    assert_eq!(r["requests"]["sent"], 12);
    assert_eq!(r["requests"]["failed"], 0, "{}", r["requests"]);
    let trace: Vec<Value> =
        std::fs::read_to_string(workload.with_file_name("mooncake-sample.jsonl"))
            .unwrap()
            .lines()
            .take(12)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let records = read_jsonl(&dir.path().join("out/requests.jsonl"));
    for rec in &records {
        let t = &trace[rec["request"].as_u64().unwrap() as usize];
        assert_eq!(rec["tokenizer_input_tokens"], t["input_length"], "{rec}");
        assert_eq!(rec["output_tokens"], t["output_length"], "{rec}");
        // Sent at the trace's time, scaled.
        let at = t["timestamp"].as_f64().unwrap() / 1000.0;
        assert!(
            (rec["scheduled_s"].as_f64().unwrap() - at).abs() < 1e-3,
            "{rec}"
        );
    }
    // Requests that share leading blocks hit the server's prompt cache.
    let cached = r["server"]["prompt_tokens_cached"].as_f64().unwrap();
    assert!(cached > 0.0, "{}", r["server"]);
}

/// `infermeter run` of `target` that must exit 2 before any load: its stderr.
fn refused(target: &str, out: &Path) -> String {
    let o = infermeter()
        .args(["run", "--quiet", "--target", target])
        .args(["--workload", "classify-tiny", "--requests", "2", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_named_metrics_endpoint_that_does_not_answer_is_refused_before_load() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let target = server.target(&format!(
        ",metrics_url=http://127.0.0.1:{}/nothing",
        server.port
    ));
    let stderr = refused(&target, dir.path());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("metrics_url") && stderr.contains("/nothing"),
        "{stderr}"
    );
    assert!(!dir.path().join("requests.jsonl").exists());
    // A model the server does not serve stops the preflight.
    let wrong = server.target("").replace("model=smollm2", "model=gpt-9");
    let stderr = refused(&wrong, &dir.path().join("w"));
    assert!(
        stderr.contains("preflight") && stderr.contains("gpt-9"),
        "{stderr}"
    );
}

#[test]
fn the_slo_search_finds_the_concurrency_the_server_sustains() {
    // One core for the server, one for the client: with both on the server, the
    // client's event loop runs late and the search rightly claims no limit.
    let server = Server::start_with_threads(1);
    let dir = tempfile::tempdir().unwrap();
    // Every level sends the same seeded prompts: with llama-server's prompt cache on,
    // each level after the first finds them cached (TTFT 30 ms instead of 350 ms here)
    // and every level passed the bound measured cold. The search measures serving, so
    // the cache is off.
    let target = server.target(",exact_output=true,body.cache_prompt=false");
    let w = workload(dir.path(), 128, 16);
    // 16 requests: at 32 sessions in flight, 16 wait on 4 slots in 4 waves.
    let common_args = ["--workload", &w, "--requests", "16", "--warmup", "1"];
    // The bound from what one session sees alone, by medians (a p99 of 16 requests is
    // their slowest one, and one slow request alone must not lift the bound above the
    // range). Past 4 sessions a request waits for a slot: at 32 the last wave's TTFT is
    // at least three whole requests served 4 at a time, each no faster than one alone,
    // so a bound of two alone-requests must fail there, while one session alone waits
    // only for its prefill.
    let (alone, _) = run(
        &[
            &["run", "--quiet", "--target", &target, "--concurrency", "1"][..],
            &common_args[..],
        ]
        .concat(),
        &dir.path().join("alone"),
    );
    let latency = &alone["results"][0]["latency"];
    let e2e_p50 = latency["e2e_ms"]["p50"].as_f64().unwrap();
    let ttft_p50 = latency["ttft_ms"]["p50"].as_f64().unwrap();
    assert!(ttft_p50 < e2e_p50, "{latency}");
    let slo = format!("ttft_p99_ms={:.0}", 2.0 * e2e_p50);
    let (report, stdout) = run(
        &[
            &[
                "sweep",
                "--quiet",
                "--target",
                &target,
                "--search",
                "concurrency:1..32",
            ][..],
            &["--slo", &slo][..],
            &common_args[..],
        ]
        .concat(),
        &dir.path().join("search"),
    );
    let results = report["results"].as_array().unwrap();
    let seen: Vec<String> = results
        .iter()
        .map(|e| {
            format!(
                "{}: ttft p99 {} ms",
                e["load"]["concurrency"], e["latency"]["ttft_ms"]["p99"]
            )
        })
        .collect();
    let seen = format!("{slo}; {}", seen.join(", "));
    let levels: Vec<u64> = results
        .iter()
        .map(|e| e["load"]["concurrency"].as_u64().unwrap())
        .collect();
    assert_eq!(levels[0], 1, "{levels:?}");
    if levels.len() > 1 {
        assert_eq!(levels[1], 2, "doubling from 1: {levels:?}");
    }
    // The outcome is in the report (one per target) and printed.
    let outcome = &report["search"][0];
    let line = stdout.lines().find(|l| l.starts_with("search (")).unwrap();
    assert!(
        line.ends_with(outcome["conclusion"].as_str().unwrap()),
        "{line}; {seen}"
    );
    assert_eq!(
        outcome["levels"].as_array().unwrap().len(),
        results.len(),
        "{outcome}"
    );
    // Whatever the machine, the answer is consistent with the points measured: the
    // level named passed, every level above it that ran failed or was client-bound.
    if outcome["end"] == "bracketed" {
        let limit = outcome["highest_passing"].as_f64().unwrap() as u64;
        assert!(
            line.contains(&format!("highest load meeting the SLO: {limit} ")),
            "{line}"
        );
        for e in results {
            let c = e["load"]["concurrency"].as_u64().unwrap();
            let pass = e["slo"]["pass"].as_bool().unwrap();
            if c == limit {
                assert!(pass, "{line}: {e}");
            }
            if c > limit {
                let client_bound = e["client"]["client_bound"].as_bool().unwrap_or(false);
                let saturated = e["saturation"]["oversaturated"].as_bool().unwrap_or(false);
                assert!(
                    !pass || client_bound || saturated,
                    "{line}: level {c} passed"
                );
            }
        }
        // With 4 slots, 32 sessions queue: the search stops below the top.
        assert!(limit < 32, "{line}; {seen}");
    } else {
        assert!(
            ["client_bound", "none_met"].contains(&outcome["end"].as_str().unwrap()),
            "{outcome}; {seen}"
        );
    }
}

/// The server's replies, through the chat API, are graded by the same checkers as the
/// embedded engine's: a task file of checkers any reply passes, none can pass, and
/// JSON the model does not write; each kept reply graded again by the file's own
/// checker gives the same verdict, and the section counts them.
#[test]
fn the_servers_replies_are_graded_by_the_same_checkers() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let tasks = [
        r#"{"prompt": "Say one short sentence about the sea.", "check": {"kind": "regex", "pattern": "\\S"}, "group": "any"}"#,
        r#"{"prompt": "What is 2 + 2?", "check": {"kind": "number", "answer": 123456789.5}, "group": "never"}"#,
        r#"{"prompt": "Name a colour.", "check": {"kind": "json_schema", "schema": {"type": "object", "required": ["never_there"]}}, "group": "never"}"#,
    ]
    .join("\n");
    std::fs::write(dir.path().join("tasks.jsonl"), &tasks).unwrap();
    let wl = dir.path().join("graded.toml");
    std::fs::write(
        &wl,
        "format = 1\nname = \"graded\"\nversion = 1\n[load]\narrival = \"closed\"\nconcurrency = 2\nrequests = 6\n[tasks]\nkind = \"file\"\npath = \"tasks.jsonl\"\n[output]\ndist = \"fixed\"\nvalue = 24\n",
    )
    .unwrap();
    let target = format!(
        "openai,base_url=http://127.0.0.1:{}/v1,model=smollm2,api=chat,context_limit=8192,body.temperature=0",
        server.port
    );
    let out = dir.path().join("run");
    let (report, _) = run(
        &[
            "run",
            "--quiet",
            "--target",
            &target,
            "--warmup",
            "0",
            "--workload",
        ]
        .into_iter()
        .chain([wl.to_str().unwrap()])
        .collect::<Vec<_>>(),
        &out,
    );
    let res = &report["results"][0];
    let v = &res["verification"];
    eprintln!("graded on llama-server: {v}");
    assert_eq!(res["requests"]["ok"], 6, "{}", res["requests"]);
    let file = workloads::tasks::parse_file(&tasks).unwrap();
    let records = read_jsonl(&out.join("requests.jsonl"));
    let mut passed = 0;
    for r in &records {
        let c = &r["check"];
        let reply = c["reply"].as_str().expect("the server's text is kept");
        let task = &file[r["session"].as_u64().unwrap() as usize % file.len()];
        let again = task.check.grade(reply);
        assert_eq!(c["passed"], again.passed, "{r}");
        assert_eq!(c["detail"], again.detail.as_str(), "{r}");
        match c["group"].as_str().unwrap() {
            "any" => assert_eq!(c["passed"], !reply.trim().is_empty(), "{r}"),
            _ => {
                assert_eq!(c["passed"], false, "{r}");
                let kind = c["failure"].as_str().unwrap();
                assert!(["wrong_answer", "malformed"].contains(&kind), "{r}");
            }
        }
        passed += usize::from(c["passed"] == true);
    }
    assert_eq!(v["calls_checked"], 6);
    assert_eq!(v["calls_passed"], passed);
    assert_eq!(v["tasks_verified"], passed);
    assert_eq!(v["by_group"]["any"]["checked"], 2);
    assert_eq!(
        v["by_group"]["never"],
        serde_json::json!({"checked": 4, "passed": 0})
    );
}
