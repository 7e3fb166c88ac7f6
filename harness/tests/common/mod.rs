//! Helpers shared by the `infermeter` binary's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The binary, with logging off.
pub fn infermeter() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("infermeter").unwrap();
    cmd.env_remove("INFERMETER_LOG");
    cmd
}

/// Runs `cmd`, asserts it succeeded (showing its output if not) and returns its
/// standard output.
pub fn run_ok(cmd: &mut assert_cmd::Command) -> String {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `~/.cache/infermeter` (or under `XDG_CACHE_HOME`): where `ci/setup.sh` puts the
/// venvs, the model and the builds.
pub fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"))
        .join("infermeter")
}

/// Whether `a` is within 0.1% of `b` (absolutely, for |b| < 1): a figure read back
/// from another tool against the report's rounded one.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * b.abs().max(1.0)
}

/// vLLM's and AIPerf's latency names for infermeter's fields (vLLM's short names).
pub const PEER_LATENCIES: [(&str, &str); 4] = [
    ("ttft", "ttft_ms"),
    ("tpot", "tpot_ms"),
    ("itl", "chunk_gap_ms"),
    ("e2el", "e2e_ms"),
];

/// The SmolLM2-135M GGUF that `ci/setup.sh` unpacks; fails (never skips) without it.
pub fn gguf() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    let dir = std::env::var_os("INFERMETER_MODELS")
        .map(PathBuf::from)
        .unwrap_or(home.join(".cache/infermeter/models"));
    let f = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(f.exists(), "{}: not found: run ci/setup.sh", f.display());
    f
}

/// A JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON-lines file (`requests.jsonl`, `server_metrics.jsonl`), one value per line.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How the scripted test targets (driver tests on tokio's paused clock) describe
/// themselves.
pub fn scripted_info() -> results::TargetInfo {
    results::TargetInfo {
        kind: "scripted".into(),
        model: "none".into(),
        precision: "none".into(),
        context_limit_tokens: None,
        weights: None,
        settings: Default::default(),
        prices: None,
        locality: results::Locality::Remote,
        device: None,
        streamed: true,
        token_counter: "none".into(),
        api: Some(results::Api::Chat),
    }
}

/// A scripted target's completion of `req`: every requested token, counted by the
/// "server".
pub fn completion(req: &workloads::Request) -> workloads::Completion {
    workloads::Completion {
        input_tokens: req.input_tokens(),
        input_source: results::TokenSource::Tokenizer,
        output_tokens: req.max_output_tokens,
        output_source: results::TokenSource::ServerUsage,
        finish: workloads::FinishReason::Length,
        output_token_ids: None,
        output_text: None,
        input_cached_tokens: None,
        engine: None,
        server_usage: None,
        tokenizer_output_tokens: None,
        chunk_tokens: workloads::ChunkTokens::OnePerChunk,
        finish_reason: None,
    }
}

/// A load point of `stream` for the driver tests: tokio's timer (paused clock), no
/// context limit, a request deadline of an hour.
pub fn load_point(
    spec: &workloads::spec::WorkloadSpec,
    stream: workloads::generate::RequestStream,
    max_duration: Option<std::time::Duration>,
    drain: std::time::Duration,
) -> infermeter::driver::LoadPoint {
    infermeter::driver::LoadPoint {
        workload: spec.name.clone(),
        target_label: "scripted".into(),
        stream,
        max_duration,
        drain_timeout: drain,
        request_timeout: std::time::Duration::from_secs(3600),
        context_limit: None,
        fallback_source: results::TokenSource::Tokenizer,
        launcher: infermeter::driver::Launcher::Tokio,
        measure_gate: None,
    }
}

/// Debian's chromium (`ci/setup.sh --reference` installs it); fails without it.
pub fn chromium() -> PathBuf {
    let p = std::env::var_os("INFERMETER_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "{} not found: run ci/setup.sh --reference (it installs Debian's chromium)",
        p.display()
    );
    p
}

/// Headless chromium with a throw-away profile.
pub fn chromium_cmd(profile: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The `data-NAME` attribute of the page at `html` once chromium ran its script: the
/// report pages count the charts that drew data, their marks and script errors.
pub fn page_counters(html: &Path, profile: &Path) -> impl Fn(&str) -> u64 + use<> {
    let dom = chromium_cmd(profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let text = String::from_utf8_lossy(&dom.stdout).to_string();
    move |name: &str| -> u64 {
        let key = format!("data-{name}=\"");
        let at = text
            .find(&key)
            .unwrap_or_else(|| panic!("no {key} in the DOM"))
            + key.len();
        text[at..].split('"').next().unwrap().parse().unwrap()
    }
}

/// One HTTP/1.1 exchange with `Connection: close` on loopback: the status and body
/// (`None` when nothing answers).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server `child` answers `GET /health` on `port` with 200; panics
/// naming `what` if it exits first or does not answer within `limit`.
#[allow(dead_code)]
pub fn wait_healthy(
    child: &mut std::process::Child,
    port: u16,
    what: &str,
    limit: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + limit;
    while !matches!(http(port, "GET", "/health", None), Some((200, _))) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start in {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
