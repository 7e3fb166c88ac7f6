//! The target contract: what the harness gives a target, what it gets back, and how
//! the target reports tokens as they arrive so that every target is timed the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use results::{ErrorClass, TargetInfo, TokenSource};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The shared system prompt (system text and tool schemas).
    System,
    /// The user, or a tool result handed back to the model.
    User,
    /// A previous answer of the model (synthetic, of the requested length).
    Assistant,
}

/// One message of a prompt: its text and its exact token ids under the embedded
/// tokenizer (`text` encodes to exactly `token_ids`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Text, for targets that take text.
    pub text: String,
    /// Token ids, for local engines that take ids.
    pub token_ids: Vec<u32>,
}

/// Identity of a prefix shared by many requests (for prefix-cache accounting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixRef {
    /// Short hash of the prefix's token ids.
    pub id: String,
    /// Length of the prefix in tokens.
    pub tokens: u32,
}

/// One request, fully resolved: everything a target needs to serve it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Position in the request stream (0-based, over all sessions).
    pub id: u64,
    /// Session (task) this request belongs to.
    pub session: u64,
    /// Call index within the session (0-based).
    pub call: u32,
    /// Seed of the session; with the workload spec it regenerates this request.
    pub session_seed: u64,
    /// The prompt, oldest message first. Shared messages are reference-counted.
    pub messages: Vec<Arc<Message>>,
    /// Exact number of output tokens to generate.
    pub max_output_tokens: u32,
    /// The shared prefix this request starts with, if any.
    pub prefix: Option<PrefixRef>,
    /// Think/tool time to wait after the previous call of the session, in ms.
    pub think_ms: f64,
    /// What a right reply is (verifiable tasks); the reply is graded after it is
    /// timed.
    pub check: Option<Arc<crate::check::TaskCheck>>,
}

impl Request {
    /// A lone request of one user message `text` asking for `max_output_tokens`
    /// (probes and tests; the workloads' requests come from their generators).
    pub fn single(text: &str, max_output_tokens: u32) -> Self {
        Self {
            id: 0,
            session: 0,
            call: 0,
            session_seed: 0,
            messages: vec![Arc::new(Message {
                role: Role::User,
                text: text.into(),
                token_ids: Vec::new(),
            })],
            max_output_tokens,
            prefix: None,
            think_ms: 0.0,
            check: None,
        }
    }

    /// Total prompt tokens (sum over messages).
    pub fn input_tokens(&self) -> u32 {
        self.messages.iter().map(|m| m.token_ids.len() as u32).sum()
    }

    /// The prompt as one token-id sequence, messages concatenated without a chat
    /// template (what local engines receive).
    pub fn prompt_token_ids(&self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.input_tokens() as usize);
        for m in &self.messages {
            ids.extend_from_slice(&m.token_ids);
        }
        ids
    }
}

/// Receives a response's stream as it arrives. The harness implements it and stamps a
/// monotonic time on every call, so targets never read the clock themselves, except
/// in-process engines, which pass the instant a token was produced.
pub trait StreamSink: Send {
    /// `n` bytes of response arrived from the transport (stamped now).
    fn on_bytes(&mut self, n: usize);
    /// `count` output tokens arrived in one chunk (stamped now).
    fn on_tokens(&mut self, count: u32);
    /// `count` output tokens were produced at `at` (in-process engines).
    fn on_tokens_at(&mut self, at: Instant, count: u32);
    /// The request is going on the wire now (remote targets call it once per
    /// attempt, after any wait for a connection slot; the first call is the actual
    /// send).
    fn on_send(&mut self) {}
    /// `count` reasoning (thinking) tokens arrived in one chunk: tokens like any
    /// other for TTFT and ITL, but not answer tokens.
    fn on_reasoning_tokens(&mut self, count: u32) {
        self.on_tokens(count);
    }
    /// An attempt failed with `class` (HTTP `status`) and will be retried after
    /// `wait`.
    fn on_retry(&mut self, _class: ErrorClass, _status: Option<u16>, _wait: Duration) {}
    /// The response is complete: its last event arrived with the latest bytes
    /// (remote targets call it when the terminator arrives, before draining the
    /// connection for reuse, so the drain is not timed).
    fn on_complete(&mut self) {}
    /// The response broke a protocol rule that did not cost its measurement (for
    /// example a stream that ended after its finish reason without `[DONE]`).
    fn on_protocol_warning(&mut self, _what: &str) {}
    /// When the harness gives up on this request (its total deadline); a target
    /// never waits past it (a server's `Retry-After` that would is not followed).
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// A server's Prometheus endpoint, scraped through each load point.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsEndpoint {
    /// The URL (`http://host:port/metrics`).
    pub url: String,
    /// Whether the user named it (a named endpoint that does not answer is refused
    /// before load; the default one is skipped, with a note).
    pub explicit: bool,
    /// Time between two scrapes.
    pub interval: Duration,
}

/// Token counts a server reported for one request, verbatim (`None` = not reported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// Prompt tokens, as the server counted them (its chat template included).
    pub input_tokens: Option<u32>,
    /// Output tokens, reasoning included.
    pub output_tokens: Option<u32>,
    /// Prompt tokens served from the server's prefix cache.
    pub cached_input_tokens: Option<u32>,
    /// Of the output, reasoning tokens.
    pub reasoning_tokens: Option<u32>,
}

/// How the tokens of each stream chunk were counted (ITL needs per-chunk counts;
/// when the request's total is known they are reconciled to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkTokens {
    /// The engine produced them itself (exact).
    Engine,
    /// The server's cumulative usage on each chunk (vLLM `continuous_usage_stats`).
    UsageDelta,
    /// The chunk's logprobs, one entry per token (exact).
    Logprobs,
    /// The tokenizer applied to each chunk's text.
    Tokenizer,
    /// One token per token-bearing chunk (no usage, no tokenizer).
    OnePerChunk,
    /// Not streamed: the whole output arrived at once, counted by the server's usage
    /// or else the tokenizer.
    Unstreamed,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The requested number of output tokens was produced.
    Length,
    /// The model stopped by itself (end-of-sequence).
    Stop,
}

/// A finished response.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Prompt tokens as counted by `input_source`.
    pub input_tokens: u32,
    /// Where `input_tokens` came from.
    pub input_source: TokenSource,
    /// Output tokens as counted by `output_source`.
    pub output_tokens: u32,
    /// Where `output_tokens` came from.
    pub output_source: TokenSource,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Output token ids, when the target exposes them.
    pub output_token_ids: Option<Vec<u32>>,
    /// The answer's text (reasoning excluded), when the target returns text and the
    /// request carries a checker (local engines decode it only then).
    pub output_text: Option<String>,
    /// Input tokens served from the target's prefix cache, when it reports them.
    pub input_cached_tokens: Option<u32>,
    /// A local engine's figures for this request.
    pub engine: Option<EngineRequestStats>,
    /// What the server reported, verbatim (remote targets).
    pub server_usage: Option<ServerUsage>,
    /// The tokenizer's count of the output text (remote targets with a tokenizer).
    pub tokenizer_output_tokens: Option<u32>,
    /// How each chunk's tokens were counted.
    pub chunk_tokens: ChunkTokens,
    /// The server's finish reason, verbatim (`length`, `stop`, `max_tokens`, ...).
    pub finish_reason: Option<String>,
}

/// A local engine's own figures for one request.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineRequestStats {
    /// Submission to admission (waiting for a batch slot or KV blocks), ms.
    pub queue_ms: f64,
    /// Admission to the first token, ms.
    pub prefill_ms: f64,
    /// Steps the request took part in.
    pub steps: u32,
    /// Mean sequences per step over those steps.
    pub mean_batch: f64,
    /// Largest step it took part in.
    pub max_batch: u32,
}

/// A local engine's counters since it started (monotonic except the peak, which
/// covers the window since the previous call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Steps run.
    pub steps: u64,
    /// Sum over steps of the sequences per step.
    pub seqs_sum: u64,
    /// Sum over steps of the tokens per step.
    pub tokens_sum: u64,
    /// Prompt tokens admitted.
    pub prompt_tokens: u64,
    /// Of those, found cached.
    pub cached_tokens: u64,
    /// Cached KV blocks evicted.
    pub evictions: u64,
    /// Most KV blocks in use since the previous call.
    pub blocks_peak: u64,
    /// KV blocks in the cache.
    pub blocks_total: u64,
    /// Tokens per KV block.
    pub block_tokens: u32,
    /// The batch limit.
    pub max_batch: u32,
    /// Step time spent on prompt tokens, nanoseconds (mixed steps split by token
    /// share).
    pub prefill_busy_ns: u64,
    /// Step time spent on decode tokens, nanoseconds.
    pub decode_busy_ns: u64,
    /// Steps of decode tokens only (no prompt chunk).
    pub decode_steps: u64,
    /// Tokens of those steps.
    pub decode_step_tokens: u64,
    /// Time of those steps, nanoseconds.
    pub decode_step_ns: u64,
}

/// A failed request: its class and a one-line message. The timings of whatever
/// arrived before the failure stay in the sink: a failure is a measurement too.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}: {message}", class.as_str())]
pub struct BackendError {
    /// The class it is counted under.
    pub class: ErrorClass,
    /// What happened (never contains secrets).
    pub message: String,
    /// HTTP status, for HTTP targets.
    pub http_status: Option<u16>,
}

impl BackendError {
    /// An error of `class` with `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            http_status: None,
        }
    }
}

/// Why a target could not be prepared.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PrepareError {
    /// The target's configuration is wrong (a bad model file, an unknown model): the
    /// user's input, reported as such.
    #[error("{0}")]
    Config(String),
    /// The target could not be prepared for another reason.
    #[error("{0}")]
    Failed(String),
}

/// A target: a local engine or a remote provider.
#[async_trait]
pub trait Backend: Send + Sync {
    /// What the target is; copied into every result it produces.
    fn describe(&self) -> TargetInfo;
    /// Loads weights, connects, warms caches. Untimed.
    async fn prepare(&self) -> Result<(), PrepareError>;
    /// Serves one request, reporting tokens to `sink` as they arrive.
    async fn generate(
        &self,
        req: &Request,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, BackendError>;
    /// A local engine's counters, read at the start and end of each load point (the
    /// peak restarts at each call); `None` for targets without them.
    fn engine_counters(&self) -> Option<EngineCounters> {
        None
    }
    /// A local engine's device limits (measured when it was prepared) and its model's
    /// shape there, which each of its results is judged against (`roofline`); `None`
    /// for remote targets and when the limits were not measured.
    fn roofline_basis(&self) -> Option<(results::DeviceLimits, results::ModelShape)> {
        None
    }
    /// Teacher-forced fidelity against `reference` (a precision of the same model on
    /// the same engine) over `windows` of token ids (`--quality`); the reason when the
    /// target cannot measure it. Blocking work runs off the async threads.
    async fn fidelity(
        &self,
        _reference: &str,
        _windows: &[Vec<u32>],
    ) -> Result<results::Fidelity, String> {
        Err("a remote target returns no logits over a forced text: fidelity is measured on local engines".into())
    }
    /// The server's Prometheus endpoint; `None` for targets without one.
    fn metrics_endpoint(&self) -> Option<MetricsEndpoint> {
        None
    }
    /// Fetches the endpoint's exposition text once, within `timeout` (the target's
    /// own HTTP client, so its TLS settings apply).
    async fn fetch_metrics(&self, _timeout: Duration) -> Result<String, String> {
        Err("this target has no metrics endpoint".into())
    }
}
