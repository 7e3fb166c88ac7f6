//! One result: the figures of one (target, workload, load point), section by
//! section, and the keys and labels that name it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cost::CostStats;
use super::energy::EnergyStats;
use super::kinds::{ArrivalPattern, ErrorClass, NotSentReason, TokenSource};
use super::roofline::RooflineStats;
use super::target::TargetInfo;
use crate::histogram::LatencySummary;
use crate::stats::{RepeatRef, SteadyState, ThroughputCi95};

/// Reference to the workload a result ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRef {
    /// Workload name.
    pub name: String,
    /// Workload version (bumped whenever the spec changes what is sent).
    pub version: u32,
    /// SHA-256 of the fully resolved spec (canonical JSON).
    pub spec_sha256: String,
    /// SHA-256 of the generated request stream, so two runs can be shown to have
    /// sent the same requests (of the whole stream, also in a shard's report).
    pub stream_sha256: String,
    /// Seed of the request stream.
    pub seed: u64,
    /// Which part of the stream was sent (`run --shard I/N`); `null` for all of it.
    /// Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRef>,
}

/// One of N shards of a request stream: the sessions whose index is `index - 1`
/// modulo `count`. Since 1.3.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ShardRef {
    /// 1-based shard number.
    pub index: u32,
    /// Shards the stream was split into.
    pub count: u32,
}

/// The load applied at one load point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadInfo {
    /// Arrival process.
    pub pattern: ArrivalPattern,
    /// Session arrival rate in sessions per second (open loop only).
    pub rate_rps: Option<f64>,
    /// Sessions in flight (closed loop only).
    pub concurrency: Option<u32>,
    /// Coefficient of variation of inter-arrival times (gamma only; 1 = Poisson).
    pub burstiness: Option<f64>,
    /// Requests sent before measuring, excluded from every figure.
    pub warmup_requests: u32,
    /// Request bound, when one was set.
    pub max_requests: Option<u64>,
    /// Duration bound in seconds, when one was set.
    pub max_duration_s: Option<f64>,
    /// Seconds from the first measured send to the last completion.
    pub measured_s: f64,
    /// RFC 3339 UTC time (microseconds) the measured window began; merges of reports
    /// from several machines take throughput over the union of their windows.
    /// Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// RFC 3339 UTC time (microseconds) the measured window ended. Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<String>,
}

/// Request counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestCounts {
    /// Requests sent (measured ones; warm-up excluded).
    pub sent: u64,
    /// Requests that completed with the requested output.
    pub ok: u64,
    /// Requests that failed, any class.
    pub failed: u64,
    /// Failed requests by error class.
    pub by_class: BTreeMap<ErrorClass, u64>,
    /// Attempts retried (HTTP 429/502/503/504 answered, then sent again): each is a
    /// request the provider saw, and may bill. Since 1.2.
    #[serde(default)]
    pub retries: u64,
    /// Responses that broke a protocol rule without losing their measurement (a
    /// stream without its terminator). Since 1.2.
    #[serde(default)]
    pub protocol_warnings: u64,
    /// Successful requests that stopped before the requested output length (the
    /// model's end-of-sequence; `exact_output` asks servers not to). Since 1.2.
    #[serde(default)]
    pub stopped_early: u64,
    /// Measured requests of the planned stream: whole sessions, so at least the
    /// `load.max_requests` asked for (this shard's part of it in a shard's report);
    /// equal to `sent` plus every `not_sent`. `null` in reports before 1.6. Since 1.6.
    #[serde(default)]
    pub planned: Option<u64>,
    /// Planned requests that were not sent, by reason. Since 1.6.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_sent: BTreeMap<NotSentReason, u64>,
}

/// Token totals over measured requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCounts {
    /// Input (prompt) tokens sent.
    pub input: u64,
    /// Output tokens received (failed requests' partial output included).
    pub output: u64,
    /// Where the input count came from.
    pub input_source: TokenSource,
    /// Where the output count came from.
    pub output_source: TokenSource,
    /// Requests whose input was shortened to fit the target's context.
    pub input_capped_requests: u64,
    /// Input tokens the target served from its prefix cache (not computed), as the
    /// target reports them; `null` when it does not report them. Since 1.1.
    #[serde(default)]
    pub input_cached: Option<u64>,
    /// Who counted what: the server's reported totals beside the tokenizer's, over
    /// successful requests; `null` for local engines (they count exactly). Since 1.2.
    #[serde(default)]
    pub provenance: Option<TokenProvenance>,
}

/// Token counts by source over the successful requests of a load point, and how far
/// they disagree. Nothing is substituted: a request without server usage counts in
/// `requests_without_usage` and in the tokenizer's totals only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenProvenance {
    /// Name of the tokenizer used (`smollm2-135m`), or `none`.
    pub tokenizer: String,
    /// Successful requests whose response carried usage.
    pub requests_with_usage: u64,
    /// Successful requests whose response carried none.
    pub requests_without_usage: u64,
    /// Prompt tokens the server reported (its chat template included).
    pub server_input: u64,
    /// Output tokens the server reported.
    pub server_output: u64,
    /// Prompt tokens the server reported as read from its cache.
    pub server_cached_input: u64,
    /// Output tokens the server reported as reasoning.
    pub server_reasoning: u64,
    /// Prompt tokens of the requests as sent, by the tokenizer (no chat template).
    pub tokenizer_input: u64,
    /// Output tokens by the tokenizer applied to the received text; `null` without one.
    pub tokenizer_output: Option<u64>,
    /// (tokenizer - server) / server x 100 over requests with both counts; `null`
    /// when no request had both.
    pub output_disagreement_pct: Option<f64>,
    /// (tokenizer - server) / server x 100 for prompt tokens over requests with both.
    pub input_disagreement_pct: Option<f64>,
    /// Requests by how their per-chunk counts were made (`usage_delta`, `logprobs`,
    /// `tokenizer`, `one_per_chunk`).
    pub chunk_counts: BTreeMap<String, u64>,
    /// Requests whose per-chunk counts were rescaled to the server's total.
    pub reconciled_requests: u64,
}

/// Latency summaries, all in milliseconds (see the README for exact definitions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Actual send minus intended send (client-side schedule lag).
    pub queue_ms: LatencySummary,
    /// First output token minus actual send.
    pub ttft_ms: LatencySummary,
    /// First output token minus intended send (coordinated-omission safe).
    pub ttft_from_intended_ms: LatencySummary,
    /// Gap between successive output tokens; a chunk of k tokens gives k gaps of
    /// (its gap / k).
    pub itl_ms: LatencySummary,
    /// Gap between successive stream chunks.
    pub chunk_gap_ms: LatencySummary,
    /// (completion - first token) / (output tokens - 1), per request.
    pub tpot_ms: LatencySummary,
    /// Completion minus actual send.
    pub e2e_ms: LatencySummary,
    /// First answer token (reasoning excluded) minus actual send; equals `ttft_ms`
    /// for models that do not reason aloud. Since 1.2.
    #[serde(default)]
    pub ttft_answer_ms: Option<LatencySummary>,
}

/// Throughput over the measured window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Input tokens of successful requests per second.
    pub input_tokens_per_s: f64,
    /// Output tokens (all requests) per second.
    pub output_tokens_per_s: f64,
    /// Interactivity: 1000 / median TPOT; `null` when no request had 2+ tokens.
    pub output_tokens_per_s_per_user: Option<f64>,
    /// Block-bootstrap 95% intervals of `requests_per_s` and `output_tokens_per_s`
    /// (README, "Statistics"); absent for merged reports and tiny load points. Since
    /// 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<ThroughputCi95>,
    /// The same figures over the steady state only (ramp-up and drain trimmed; README,
    /// "Statistics"); absent when the load point had none. Since 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyState>,
}

/// Per-task figures for multi-call workloads (agent loops, chat sessions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStats {
    /// Tasks started.
    pub started: u64,
    /// Tasks whose every call succeeded.
    pub completed: u64,
    /// Tasks with at least one failed call, or cut short by the run's bound.
    pub failed: u64,
    /// Wall time of completed tasks, first send to last completion, think time
    /// included.
    pub task_ms: LatencySummary,
    /// Mean calls per completed task.
    pub calls_per_task: Option<f64>,
    /// Mean input tokens per completed task (every call summed).
    pub input_tokens_per_task: Option<f64>,
    /// Mean output tokens per completed task.
    pub output_tokens_per_task: Option<f64>,
}

/// The figures of one (target, workload, load point).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultEntry {
    /// What was sent.
    pub workload: WorkloadRef,
    /// Which repeat of its load point this is (`run --repeat N`). Since 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatRef>,
    /// Where it was sent.
    pub target: TargetInfo,
    /// How it was sent.
    pub load: LoadInfo,
    /// Request counts.
    pub requests: RequestCounts,
    /// Token totals.
    pub tokens: TokenCounts,
    /// Latency summaries.
    pub latency: Latency,
    /// Throughput.
    pub throughput: Throughput,
    /// Per-task figures; `null` for single-call workloads.
    pub tasks: Option<TaskStats>,
    /// What a local engine saw inside itself over this load point; `null` for targets
    /// that do not expose it (remote providers). Since 1.1.
    #[serde(default)]
    pub engine: Option<EngineStats>,
    /// Cold-start probes (first request after an idle period), reported apart from
    /// the load point's figures; `null` when the workload sends none. Since 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStartStats>,
    /// Energy over the load point's window; `source: null` with a `reason` when it
    /// was not measured (never 0). `null` in reports before 1.2.
    pub energy: Option<EnergyStats>,
    /// Cost from the target's rate card; `source: null` with a `reason` when it was
    /// not priced. `null` in reports before 1.2.
    pub cost: Option<CostStats>,
    /// A local result judged against its device's measured limits (bandwidth and
    /// matrix-multiply throughput): bytes per decode token, the decode and prefill
    /// ceilings and the ratios achieved; absent for remote targets and when the
    /// limits were not measured. Since 1.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<RooflineStats>,
    /// What the configuration gives up against a reference precision of the same
    /// model on the same engine (`--quality`): KL divergence, top-1 agreement and
    /// perplexity, teacher-forced over the evaluation text. Since 1.10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<super::QualitySection>,
    /// How many checked requests and tasks the target got right (workloads whose
    /// requests carry checkers, README "Verified tasks"), with a 95% interval and the
    /// failures by kind; absent for workloads without checkers. Since 1.11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<super::VerificationStats>,
    /// What the target's own Prometheus metrics said over the measured window, and
    /// the client's figures reconciled with them (remote targets whose server exposes
    /// `/metrics`). Since 1.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<super::ServerMetrics>,
    /// Open loops: whether the target fell behind the arrival rate (requests in
    /// flight and TTFT from the intended send climbing through the point); `null` for
    /// closed loops and points too small to judge. Since 1.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation: Option<crate::saturation::SaturationCheck>,
    /// The harness's own cost and lateness over this load point, and whether the
    /// client may have limited it. Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientStats>,
    /// The service-level objective this load point was judged by (`sweep --slo`);
    /// `null` when none was given. Since 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloVerdict>,
    /// Things the reader must know about this result (caps applied, limits hit).
    pub notes: Vec<String>,
}

/// What the harness itself spent and how late it ran during a load point. Since 1.3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientStats {
    /// CPU time (user + system) of the infermeter process over the load point,
    /// seconds; `null` where the OS does not say.
    pub cpu_s: Option<f64>,
    /// Whether `cpu_s` includes a local engine running in the same process.
    pub cpu_includes_engine: bool,
    /// `cpu_s` per sent request, microseconds.
    pub cpu_us_per_request: Option<f64>,
    /// `cpu_s` per output token, microseconds.
    pub cpu_us_per_output_token: Option<f64>,
    /// Peak resident memory of the process so far (VmHWM), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// At most every 50 ms while responses (or a local engine's tokens) arrive: how
    /// long a task made ready by that arrival waited for the driver's event loop, ms.
    pub loop_lag_ms: LatencySummary,
    /// Whether the client may have limited the run (see `reasons`).
    pub client_bound: bool,
    /// When `client_bound`, what made the client late: its own work, the machine
    /// (other processes), or unclear; `null` otherwise or with a local engine in the
    /// process. Since 1.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_by: Option<BoundBy>,
    /// The client's CPU time over the window as a share of the CPUs its event loop can
    /// use (0-1); `null` with a local engine in the process. Since 1.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_share: Option<f64>,
    /// Share of the machine's CPU time that was busy over the window (0-1, every
    /// process, steal included; `/proc/stat`). Since 1.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpu_busy_share: Option<f64>,
    /// Why: event-loop lag p99 over 1 ms, schedule lag p99 over 2 ms, or the process
    /// using 90% or more of the CPUs its event loop could use.
    pub reasons: Vec<String>,
    /// Threads of the event loop that sent the requests and read the responses
    /// (`--client-threads`). Since 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_loop_threads: Option<u32>,
}

/// What made a client-bound load point's client late. Since 1.9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoundBy {
    /// Its own work: it used at least half the CPUs its event loop can use.
    Client,
    /// The machine: other processes used at least half its CPUs while the client
    /// used less than half of its own.
    Machine,
    /// Neither was busy (stolen VM time, the scheduler).
    Unclear,
}

/// A load point judged against a service-level objective. Since 1.3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloVerdict {
    /// The objective: `ttft_p99_ms`, `tpot_p99_ms`, `e2e_p95_ms`, ... and its bound
    /// in milliseconds.
    pub objectives: BTreeMap<String, f64>,
    /// Whether every objective was met (and at least one request succeeded).
    pub pass: bool,
    /// The objectives missed, with the measured value (`ttft_p99_ms 2412 > 2000`).
    pub missed: Vec<String>,
    /// Measured requests that met every per-request bound (failed requests miss).
    pub requests_meeting: u64,
    /// `requests_meeting` per second of the measured window: goodput.
    pub goodput_rps: f64,
    /// `requests_meeting / sent`, 0-1.
    pub goodput_ratio: Option<f64>,
}

/// A local engine's own view of one load point: batching, the KV cache and where each
/// request's time went inside the engine. Counters cover the load point's window
/// (warm-up excluded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineStats {
    /// Engine steps (one batched forward pass each).
    pub steps: u64,
    /// The batch limit (sequences per step).
    pub max_batch: u32,
    /// Mean sequences per step.
    pub mean_seqs_per_step: f64,
    /// `mean_seqs_per_step / max_batch`, 0-1.
    pub mean_batch_occupancy: f64,
    /// Mean tokens (prompt chunks plus decode tokens) per step.
    pub mean_tokens_per_step: f64,
    /// Prompt tokens admitted.
    pub prompt_tokens: u64,
    /// Of those, tokens found in the prefix cache and not computed.
    pub prompt_tokens_cached: u64,
    /// Prompt tokens computed (`prompt_tokens - prompt_tokens_cached`).
    pub prompt_tokens_computed: u64,
    /// `prompt_tokens_cached / prompt_tokens`; `null` when no prompt was admitted.
    pub cache_hit_ratio: Option<f64>,
    /// Tokens per KV block.
    pub kv_block_tokens: u32,
    /// Blocks in the KV cache.
    pub kv_blocks_total: u64,
    /// Most blocks referenced by running sequences at once.
    pub kv_blocks_used_peak: u64,
    /// Cached blocks evicted to make room.
    pub kv_evictions: u64,
    /// Submission to admission inside the engine, per request.
    pub engine_queue_ms: LatencySummary,
    /// Admission to first token inside the engine (chunked prefill), per request.
    pub prefill_ms: LatencySummary,
    /// Mean sequences per step seen by each request, over requests.
    pub request_mean_batch: f64,
    /// Seconds of engine steps spent on prompt tokens (a step of prompt chunks counts
    /// whole, a mixed step by its prompt tokens' share of its tokens). Since 1.3.
    #[serde(default)]
    pub prefill_busy_s: Option<f64>,
    /// Seconds of engine steps spent on decode tokens. Since 1.3.
    #[serde(default)]
    pub decode_busy_s: Option<f64>,
    /// Steps of decode tokens only (no prompt chunk in them). Since 1.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_steps: Option<u64>,
    /// Tokens of those steps (one per sequence). Since 1.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_step_tokens: Option<u64>,
    /// Seconds of those steps. Since 1.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_step_busy_s: Option<f64>,
}

/// The first requests after idle periods, each probe sent after `idle_s` seconds with
/// no traffic to the target (after warm-up, before the measured load).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColdStartStats {
    /// Seconds of silence before each probe.
    pub idle_s: f64,
    /// Probes sent.
    pub probes: u64,
    /// Probes that succeeded.
    pub ok: u64,
    /// Failed probes by error class.
    pub by_class: BTreeMap<ErrorClass, u64>,
    /// First token minus send, successful probes.
    pub ttft_ms: LatencySummary,
    /// Completion minus send, successful probes.
    pub e2e_ms: LatencySummary,
}

impl LoadInfo {
    /// The load point as people read it (`poisson 2 rps`, `closed c=8`).
    pub fn label(&self) -> String {
        let p = self.pattern.as_str();
        match (self.rate_rps, self.concurrency) {
            (Some(r), _) => format!("{p} {r} rps"),
            (None, Some(c)) => format!("{p} c={c}"),
            (None, None) => p.to_string(),
        }
    }
}

impl RequestCounts {
    /// Failed requests per sent request, percent; `None` when nothing was sent.
    pub fn error_rate_pct(&self) -> Option<f64> {
        (self.sent > 0).then(|| self.failed as f64 / self.sent as f64 * 100.0)
    }
}

impl ResultEntry {
    /// The load point as people read it (`poisson 2 rps`, `closed c=8`).
    pub fn load_label(&self) -> String {
        self.load.label()
    }

    /// The key results are paired by in comparisons: target / workload / load point
    /// (no spec digest, so a changed workload pairs up and is reported as not
    /// comparable).
    pub fn pair_key(&self) -> String {
        format!(
            "{} / {} / {}",
            self.target.label(),
            self.workload.name,
            self.load_label()
        )
    }

    /// The key results are matched by in merges: [`ResultEntry::pair_key`] with the
    /// spec digest and the repeat, so repeat i of one report merges with repeat i of
    /// another.
    pub fn result_key(&self) -> String {
        let repeat = self.repeat.map_or(String::new(), |r| {
            format!(" / repeat {}/{}", r.index, r.count)
        });
        format!(
            "{} / {} (spec {}) / {}{repeat}",
            self.target.label(),
            self.workload.name,
            self.workload
                .spec_sha256
                .get(..12)
                .unwrap_or(&self.workload.spec_sha256),
            self.load_label()
        )
    }
}
