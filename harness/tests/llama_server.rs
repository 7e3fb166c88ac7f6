//! The `openai` target against a real llama.cpp server (`llama-cpp-python[server]`,
//! installed by `ci/setup.sh --reference`) serving the SmolLM2-135M GGUF on loopback:
//! the standard `chat-short` workload streamed through the chat API, the completions
//! API unstreamed, token counts checked against the server's own tokenizer and
//! usage, and the preflight that stops a wrong model, a rejected key or an unreachable
//! server before any load.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{free_port, http};
use serde_json::{Value, json};

fn python() -> PathBuf {
    let p = std::env::var_os("INFERMETER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/infermeter/venv/bin/python")
        });
    assert!(
        p.exists(),
        "{}: llama-cpp-python's Python not found: run ci/setup.sh --reference",
        p.display()
    );
    p
}

fn gguf() -> PathBuf {
    kernels::weights::find_gguf(
        &kernels::default_model_dirs(),
        &kernels::preset::SMOLLM2_135M,
        None,
    )
    .expect("SmolLM2-135M GGUF not found: run ci/setup.sh")
}

/// A llama.cpp server on a free loopback port, killed when dropped.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with `extra` arguments (`--api_key K`).
    fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let child = Process::new(python())
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(gguf())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--n_ctx",
                "4096",
                "--n_threads",
                "2",
                "--model_alias",
                "smollm2",
            ])
            // By default a new request aborts the one being served; queue them instead,
            // as production servers do.
            .args(["--interrupt_requests", "False"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Up: answering, with or without the key.
            if let Some((200 | 401 | 403, _)) = http(port, "GET", "/v1/models", None) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the llama.cpp server exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the llama.cpp server did not start"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's own token count of `text`.
    fn count(&self, text: &str) -> u64 {
        let (status, body) = http(
            self.port,
            "POST",
            "/extras/tokenize/count",
            Some(&json!({ "input": text })),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["count"]
            .as_u64()
            .unwrap()
    }
}

fn run(args: &[&str], out: &Path) -> (Value, Vec<Value>) {
    run_env(args, &[], out)
}

/// [`run`] with environment variables set (an API key).
fn run_env(args: &[&str], env: &[(&str, &str)], out: &Path) -> (Value, Vec<Value>) {
    let mut cmd = Command::cargo_bin("infermeter").unwrap();
    cmd.env_remove("INFERMETER_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd
        .args(["run", "--quiet"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    results::schema::validate_report_json(&report).unwrap();
    let records = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (report, records)
}

#[test]
fn the_openai_target_measures_a_real_llama_cpp_server() {
    let server = LlamaServer::start();
    let dir = tempfile::tempdir().unwrap();

    // The prompts' token counts agree with the server's own tokenizer (same SmolLM2
    // vocabulary): the synthetic words are one token each on both sides.
    for text in [
        "the model answers the question",
        " alpha beta gamma delta epsilon",
    ] {
        assert_eq!(
            server.count(text),
            workloads::text::count_tokens(text) as u64,
            "{text}"
        );
    }

    // 1. The standard chat workload, streamed through the chat API.
    let target = format!(
        "openai,base_url={},model=smollm2,context_limit=4096",
        server.base_url()
    );
    let (report, records) = run(
        &[
            "--target",
            &target,
            "--workload",
            "chat-short",
            "--requests",
            "3",
            "--warmup",
            "0",
            "--rate",
            "10",
        ],
        &dir.path().join("chat"),
    );
    let res = &report["results"][0];
    eprintln!(
        "chat-short on llama.cpp: {} {} {}",
        res["requests"], res["tokens"], res["latency"]["ttft_ms"]
    );
    assert_eq!(res["requests"]["sent"], 3);
    assert_eq!(res["requests"]["ok"], 3, "{}", res["requests"]);
    assert_eq!(res["target"]["kind"], "openai");
    // llama-cpp-python sends no usage in streams: the client counted (the tokenizer,
    // or one token per chunk where that is what the stream showed; which one depends
    // on the text sampled), and says so.
    let source = res["tokens"]["output_source"].as_str().unwrap();
    assert!(
        ["tokenizer", "chunk_count", "mixed"].contains(&source),
        "{source}"
    );
    let prov = &res["tokens"]["provenance"];
    assert_eq!(prov["requests_without_usage"], 3, "{prov}");
    let counted: u64 = prov["chunk_counts"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "server_usage")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 3, "{prov}");
    for rec in &records {
        let out = rec["output_tokens"].as_u64().unwrap();
        assert!(out > 0 && rec["chunks"].as_u64().unwrap() > 0, "{rec}");
        assert!(rec["ttft_ms"].as_f64().unwrap() > 0.0);
        if rec["finish_reason"] == "length" {
            // Re-tokenizing the streamed text gives back the length generated, within
            // a token (a merge across chunk boundaries).
            let want = rec["max_output_tokens"].as_u64().unwrap();
            assert!(out.abs_diff(want) <= 1, "{rec}");
        }
    }
    assert!(res["latency"]["itl_ms"]["p50"].as_f64().unwrap() > 0.0);

    // 2. The completions API without streaming: usage counts; the prompt's count
    // agrees with ours exactly (one message, no chat template).
    let wl = dir.path().join("small.toml");
    std::fs::write(
        &wl,
        r#"format = 1
name = "llama-small"
version = 1
description = "small completions"
seed = 5
[load]
arrival = "closed"
concurrency = 2
requests = 4
warmup_requests = 0
[input]
dist = "fixed"
value = 40.0
[output]
dist = "fixed"
value = 12.0
"#,
    )
    .unwrap();
    let target = format!(
        "openai,base_url={},model=smollm2,api=completions,stream=false",
        server.base_url()
    );
    let (report, _) = run(
        &["--target", &target, "--workload", wl.to_str().unwrap()],
        &dir.path().join("completions"),
    );
    let res = &report["results"][0];
    eprintln!("completions on llama.cpp: {}", res["tokens"]);
    assert_eq!(res["requests"]["ok"], 4, "{}", res["requests"]);
    assert_eq!(res["tokens"]["output_source"], "server_usage");
    assert_eq!(res["tokens"]["input_source"], "server_usage");
    let prov = &res["tokens"]["provenance"];
    assert_eq!(prov["requests_with_usage"], 4);
    assert_eq!(prov["chunk_counts"]["unstreamed"], 4);
    assert_eq!(prov["server_input"], prov["tokenizer_input"], "{prov}");
    assert_eq!(prov["input_disagreement_pct"], 0.0);
    let out_disagreement = prov["output_disagreement_pct"].as_f64().unwrap();
    assert!(out_disagreement.abs() <= 5.0, "{prov}");
}

/// `infermeter run` that must fail before any load: exit 2, one line, naming `want`.
fn refused(target: &str, env: &[(&str, &str)], want: &str, out: &Path) -> String {
    let mut cmd = Command::cargo_bin("infermeter").unwrap();
    cmd.env_remove("INFERMETER_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .args([
            "run",
            "--quiet",
            "--target",
            target,
            "--workload",
            "classify-tiny",
        ])
        .args(["--requests", "2", "--warmup", "0", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("preflight") && stderr.contains(want),
        "{want}: {stderr}"
    );
    // Nothing was measured.
    assert!(
        !out.join("requests.jsonl").exists()
            || std::fs::read_to_string(out.join("requests.jsonl"))
                .unwrap()
                .is_empty()
    );
    stderr
}

#[test]
fn preflight_stops_a_wrong_model_a_rejected_key_and_an_unreachable_server() {
    let key = "sk-llama-9f3b2c7d1e4a";
    let server = LlamaServer::start_with(&["--api_key", key]);
    let dir = tempfile::tempdir().unwrap();
    let base = server.base_url();
    let good = [("INFERMETER_TEST_LLAMA_KEY", key)];
    refused(
        &format!(
            "openai,base_url={base},model=no-such-model,api_key_env=INFERMETER_TEST_LLAMA_KEY"
        ),
        &good,
        "does not serve this model (it serves: smollm2)",
        &dir.path().join("model"),
    );
    let wrong = "wrong-key-but-long-enough-9";
    let stderr = refused(
        &format!("openai,base_url={base},model=smollm2,api_key_env=INFERMETER_TEST_LLAMA_KEY"),
        &[("INFERMETER_TEST_LLAMA_KEY", wrong)],
        "rejected the API key",
        &dir.path().join("key"),
    );
    assert!(!stderr.contains(wrong) && !stderr.contains(key), "{stderr}");
    let closed = free_port();
    refused(
        &format!("openai,base_url=http://127.0.0.1:{closed}/v1,model=smollm2,connect_timeout_s=2"),
        &[],
        "unreachable",
        &dir.path().join("down"),
    );
    // With the key and the served model, the preflight passes and the run measures.
    let target =
        format!("openai,base_url={base},model=smollm2,api_key_env=INFERMETER_TEST_LLAMA_KEY");
    let args = [
        "--target",
        &target,
        "--workload",
        "classify-tiny",
        "--requests",
        "2",
        "--warmup",
        "0",
    ];
    let (report, _) = run_env(&args, &good, &dir.path().join("ok"));
    assert_eq!(report["results"][0]["requests"]["ok"], 2);
}
