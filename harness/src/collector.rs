//! The measurement side: a [`RequestTimer`] is the [`StreamSink`] of one request and
//! stamps the monotonic clock as bytes and tokens arrive; a finished request becomes a
//! [`RequestRecord`] (one line of `requests.jsonl`); an [`Aggregate`] folds records
//! into the histograms and counts of one load point.
//!
//! Metric definitions (README, "Metrics"): queue = actual send - intended send;
//! TTFT = first token - actual send; TTFT from intended = first token - intended send;
//! ITL = every gap between successive tokens, a chunk of k tokens after a gap g giving
//! k gaps of g/k (tokens of the first chunk give none: their time is TTFT); chunk gap =
//! gap between successive chunks; TPOT = (completion - first token) / (tokens - 1);
//! E2E = completion - actual send.

use std::collections::BTreeMap;

use results::{
    ColdStartStats, EngineStats, ErrorClass, Latency, LatencyHistogram, RequestCounts, TaskStats,
    Throughput, TokenCounts, TokenProvenance, TokenSource,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use workloads::{ChunkTokens, EngineCounters, ServerUsage};

pub use crate::timer::{RequestTimer, RetriedAttempt, ms};

/// Rounds milliseconds to the microsecond, for records meant to be read.
pub(crate) fn us(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One finished (or failed) request: a line of `requests.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// Workload name.
    pub workload: String,
    /// Target label (`kind model precision`).
    pub target: String,
    /// Stream seed; with the workload and `session` it regenerates the request.
    pub seed: u64,
    /// Request index in the stream.
    pub request: u64,
    /// Session index.
    pub session: u64,
    /// Call index within the session.
    pub call: u32,
    /// Intended send, seconds after the start of measurement.
    pub scheduled_s: f64,
    /// Actual send, seconds after the start of measurement.
    pub sent_s: f64,
    /// Actual minus intended send.
    pub queue_ms: f64,
    /// First token minus actual send.
    pub ttft_ms: Option<f64>,
    /// First answer token (reasoning excluded) minus actual send.
    pub ttft_answer_ms: Option<f64>,
    /// First token minus intended send.
    pub ttft_from_intended_ms: Option<f64>,
    /// Completion minus actual send (also for failures: when the failure was seen).
    pub e2e_ms: f64,
    /// (completion - first token) / (tokens - 1).
    pub tpot_ms: Option<f64>,
    /// Prompt tokens, as counted by `input_source`.
    pub input_tokens: u32,
    /// Where `input_tokens` came from.
    pub input_source: TokenSource,
    /// Prompt tokens of the request as sent, by the embedded tokenizer or the engine.
    pub tokenizer_input_tokens: u32,
    /// Whether the prompt was shortened to fit the target's context.
    pub input_capped: bool,
    /// Whether the model stopped (end of sequence) before `max_output_tokens`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
    /// Output tokens asked for.
    pub max_output_tokens: u32,
    /// Output tokens received, as counted by `output_source`.
    pub output_tokens: u32,
    /// Where the output count came from.
    pub output_source: TokenSource,
    /// The tokenizer's count of the received text (remote targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_output_tokens: Option<u32>,
    /// What the server reported, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_usage: Option<ServerUsage>,
    /// How each chunk's tokens were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_tokens: Option<ChunkTokens>,
    /// Whether per-chunk counts were rescaled to the server's total.
    pub reconciled: bool,
    /// Reasoning tokens among the received (per-chunk counts).
    pub reasoning_tokens: u32,
    /// Stream chunks that carried tokens.
    pub chunks: u32,
    /// The server's finish reason, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Attempts retried before the last one.
    pub retries: u32,
    /// Time spent waiting to retry, ms (inside `ttft_ms` and `e2e_ms`).
    pub retry_wait_ms: f64,
    /// Each retried attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried: Vec<RetriedAttempt>,
    /// Protocol rules the response broke without losing its measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `ok` or `error`.
    pub status: String,
    /// Error class, for failures.
    pub error_class: Option<ErrorClass>,
    /// Error message, for failures.
    pub error: Option<String>,
    /// HTTP status of a failed HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Input tokens the target served from its prefix cache, when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cached_tokens: Option<u32>,
    /// A local engine's figures for the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<workloads::EngineRequestStats>,
    /// A cold-start probe (sent after an idle period, reported apart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold_start: bool,
    /// Every inter-token gap, ms (see `itl_ms` in the README), so that a report can be
    /// rebuilt from this file alone (`infermeter recover`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub itl_ms: Vec<f64>,
    /// Every gap between stream chunks, ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunk_gap_ms: Vec<f64>,
}

/// What the driver knows about a request besides its timer.
pub struct Finished<'a> {
    /// Workload name.
    pub workload: &'a str,
    /// Target label.
    pub target: &'a str,
    /// Stream seed.
    pub seed: u64,
    /// The request as sent.
    pub request: &'a workloads::Request,
    /// Whether it was capped to fit.
    pub input_capped: bool,
    /// Start of measurement.
    pub t0: Instant,
    /// Intended send.
    pub scheduled: Instant,
    /// When the response completed or failed.
    pub ended: Instant,
    /// Who counts tokens when the target reports nothing (`engine` for local
    /// engines, `tokenizer` for remote targets).
    pub fallback_source: TokenSource,
}

impl RequestRecord {
    /// Builds the record of a request from its timer and outcome.
    pub fn new(
        f: Finished<'_>,
        timer: RequestTimer,
        outcome: Result<&workloads::Completion, &workloads::BackendError>,
    ) -> Self {
        let since = |a: Instant, b: Instant| ms(a.saturating_duration_since(b));
        // A successful response ends when its terminator arrived, not when the target
        // was done with the connection.
        let f = Finished {
            ended: match (outcome, timer.completed) {
                (Ok(_), Some(at)) => at.min(f.ended),
                _ => f.ended,
            },
            ..f
        };
        let tokenizer_input = f.request.input_tokens();
        let ok = outcome.ok();
        let (status, error_class, error, http_status) = match outcome {
            Ok(_) => ("ok", None, None, None),
            Err(e) => (
                "error",
                Some(e.class),
                Some(e.message.clone()),
                e.http_status,
            ),
        };
        let (input_tokens, input_source) = ok.map_or((tokenizer_input, f.fallback_source), |c| {
            (c.input_tokens, c.input_source)
        });
        let (output_tokens, output_source) = ok.map_or((timer.tokens, f.fallback_source), |c| {
            (c.output_tokens, c.output_source)
        });
        let tpot_ms = match (timer.first_token, ok) {
            (Some(first), Some(_)) if output_tokens >= 2 => {
                Some(since(f.ended, first) / f64::from(output_tokens - 1))
            }
            _ => None,
        };
        // Per-chunk counts are reconciled to a count the server reported.
        let total = ok
            .and_then(|c| (c.output_source == TokenSource::ServerUsage).then_some(c.output_tokens));
        let (itl_ms, reconciled) = timer.itl(total);
        // Only the server's own finish reason says the model stopped: a tokenizer's
        // count below the length asked for is a counting difference, not a stop.
        let stopped_early = ok.is_some_and(|c| {
            c.finish == workloads::FinishReason::Stop
                && c.output_tokens < f.request.max_output_tokens
        });
        RequestRecord {
            workload: f.workload.to_string(),
            target: f.target.to_string(),
            seed: f.seed,
            request: f.request.id,
            session: f.request.session,
            call: f.request.call,
            scheduled_s: us(f.scheduled.saturating_duration_since(f.t0).as_secs_f64() * 1000.0)
                / 1000.0,
            sent_s: us(timer.sent.saturating_duration_since(f.t0).as_secs_f64() * 1000.0) / 1000.0,
            queue_ms: us(since(timer.sent, f.scheduled)),
            ttft_ms: timer.first_token.map(|t| us(since(t, timer.sent))),
            ttft_answer_ms: timer.first_answer.map(|t| us(since(t, timer.sent))),
            ttft_from_intended_ms: timer.first_token.map(|t| us(since(t, f.scheduled))),
            e2e_ms: us(since(f.ended, timer.sent)),
            tpot_ms: tpot_ms.map(us),
            input_tokens,
            input_source,
            tokenizer_input_tokens: tokenizer_input,
            input_capped: f.input_capped,
            stopped_early,
            max_output_tokens: f.request.max_output_tokens,
            output_tokens,
            output_source,
            tokenizer_output_tokens: ok.and_then(|c| c.tokenizer_output_tokens),
            server_usage: ok.and_then(|c| c.server_usage),
            chunk_tokens: ok.map(|c| c.chunk_tokens),
            reconciled,
            reasoning_tokens: timer.reasoning_tokens,
            chunks: timer.chunks(),
            finish_reason: ok.and_then(|c| c.finish_reason.clone()),
            retries: timer.retries,
            retry_wait_ms: us(timer.retry_wait_ms),
            retried: timer.retried.clone(),
            warnings: timer.warnings.clone(),
            status: status.to_string(),
            error_class,
            error,
            http_status,
            input_cached_tokens: ok.and_then(|c| c.input_cached_tokens),
            engine: ok.and_then(|c| c.engine.map(round_engine)),
            cold_start: false,
            chunk_gap_ms: timer.chunk_gaps_ms(),
            itl_ms,
        }
    }

    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        self.error_class.is_none()
    }
}

fn round_engine(e: workloads::EngineRequestStats) -> workloads::EngineRequestStats {
    workloads::EngineRequestStats {
        queue_ms: us(e.queue_ms),
        prefill_ms: us(e.prefill_ms),
        mean_batch: (e.mean_batch * 1000.0).round() / 1000.0,
        ..e
    }
}

/// One finished session (task).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Calls made.
    pub calls: u32,
    /// Whether every call of the session was made and succeeded.
    pub completed: bool,
    /// First actual send to last completion, ms.
    pub task_ms: f64,
    /// Input tokens over every call.
    pub input_tokens: u64,
    /// Output tokens over every call.
    pub output_tokens: u64,
}

/// Histograms and counts of one load point.
#[derive(Debug, Default)]
pub struct Aggregate {
    /// The SLO whose per-request bounds are counted in `slo_met`.
    pub slo: Option<crate::slo::Slo>,
    /// Successful requests that met every per-request bound of `slo`.
    pub slo_met: u64,
    completions: Vec<results::stats::Completion>,
    queue: LatencyHistogram,
    ttft: LatencyHistogram,
    ttft_intended: LatencyHistogram,
    itl: LatencyHistogram,
    chunk_gap: LatencyHistogram,
    tpot: LatencyHistogram,
    e2e: LatencyHistogram,
    task: LatencyHistogram,
    sent: u64,
    ok: u64,
    by_class: BTreeMap<ErrorClass, u64>,
    input_ok: u64,
    input_all: u64,
    output_all: u64,
    output_sources: Vec<TokenSource>,
    capped: u64,
    tasks_started: u64,
    tasks_completed: u64,
    task_calls: u64,
    task_input: u64,
    task_output: u64,
    input_cached: Option<u64>,
    engine_queue: LatencyHistogram,
    engine_prefill: LatencyHistogram,
    engine_batch_sum: f64,
    engine_requests: u64,
    ttft_answer: LatencyHistogram,
    input_sources: Vec<TokenSource>,
    retries: u64,
    protocol_warnings: u64,
    stopped_early: u64,
    prov: ProvenanceSums,
}

/// Running sums behind [`TokenProvenance`].
#[derive(Debug, Default)]
struct ProvenanceSums {
    seen: bool,
    with_usage: u64,
    without_usage: u64,
    server_input: u64,
    server_output: u64,
    server_cached: u64,
    server_reasoning: u64,
    tokenizer_input: u64,
    tokenizer_output: Option<u64>,
    both_out: (u64, u64),
    both_in: (u64, u64),
    chunk_counts: BTreeMap<String, u64>,
    reconciled: u64,
}

fn pct(tokenizer: u64, server: u64) -> Option<f64> {
    (server > 0).then(|| {
        let p = (tokenizer as f64 - server as f64) / server as f64 * 100.0;
        (p * 1000.0).round() / 1000.0
    })
}

impl Aggregate {
    /// Adds a request.
    pub fn add(&mut self, r: &RequestRecord) {
        self.sent += 1;
        self.completions.push(results::stats::Completion {
            end_s: r.sent_s + r.e2e_ms / 1000.0,
            ok: r.error_class.is_none(),
            output_tokens: r.output_tokens,
        });
        self.queue.record_ms(r.queue_ms);
        self.retries += u64::from(r.retries);
        self.protocol_warnings += r.warnings.len() as u64;
        if !self.input_sources.contains(&r.input_source) {
            self.input_sources.push(r.input_source);
        }
        self.input_all += u64::from(r.input_tokens);
        self.output_all += u64::from(r.output_tokens);
        self.capped += u64::from(r.input_capped);
        if !self.output_sources.contains(&r.output_source) && r.output_tokens > 0 {
            self.output_sources.push(r.output_source);
        }
        for &x in &r.chunk_gap_ms {
            self.chunk_gap.record_ms(x);
        }
        if let Some(class) = r.error_class {
            *self.by_class.entry(class).or_default() += 1;
            return;
        }
        self.ok += 1;
        if self.slo.as_ref().is_some_and(|s| s.request_meets(r)) {
            self.slo_met += 1;
        }
        self.stopped_early += u64::from(r.stopped_early);
        self.add_provenance(r);
        if let Some(x) = r.ttft_answer_ms {
            self.ttft_answer.record_ms(x);
        }
        self.input_ok += u64::from(r.input_tokens);
        if let Some(c) = r.input_cached_tokens {
            *self.input_cached.get_or_insert(0) += u64::from(c);
        }
        if let Some(e) = &r.engine {
            self.engine_queue.record_ms(e.queue_ms);
            self.engine_prefill.record_ms(e.prefill_ms);
            self.engine_batch_sum += e.mean_batch;
            self.engine_requests += 1;
        }
        if let Some(x) = r.ttft_ms {
            self.ttft.record_ms(x);
        }
        if let Some(x) = r.ttft_from_intended_ms {
            self.ttft_intended.record_ms(x);
        }
        for &x in &r.itl_ms {
            self.itl.record_ms(x);
        }
        if let Some(x) = r.tpot_ms {
            self.tpot.record_ms(x);
        }
        self.e2e.record_ms(r.e2e_ms);
    }

    fn add_provenance(&mut self, r: &RequestRecord) {
        let Some(chunks) = r.chunk_tokens.filter(|c| *c != ChunkTokens::Engine) else {
            return;
        };
        let p = &mut self.prov;
        p.seen = true;
        let name = serde_json::to_value(chunks)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *p.chunk_counts.entry(name).or_default() += 1;
        p.reconciled += u64::from(r.reconciled);
        p.tokenizer_input += u64::from(r.tokenizer_input_tokens);
        if let Some(t) = r.tokenizer_output_tokens {
            *p.tokenizer_output.get_or_insert(0) += u64::from(t);
        }
        match r.server_usage {
            Some(u) => {
                p.with_usage += 1;
                p.server_input += u64::from(u.input_tokens.unwrap_or(0));
                p.server_output += u64::from(u.output_tokens.unwrap_or(0));
                p.server_cached += u64::from(u.cached_input_tokens.unwrap_or(0));
                p.server_reasoning += u64::from(u.reasoning_tokens.unwrap_or(0));
                if let (Some(s), Some(t)) = (u.output_tokens, r.tokenizer_output_tokens) {
                    p.both_out.0 += u64::from(s);
                    p.both_out.1 += u64::from(t);
                }
                if let Some(s) = u.input_tokens {
                    p.both_in.0 += u64::from(s);
                    p.both_in.1 += u64::from(r.tokenizer_input_tokens);
                }
            }
            None => p.without_usage += 1,
        }
    }

    /// Token provenance for remote targets; `None` when no request reported through
    /// a remote protocol (local engines count exactly).
    pub fn provenance(&self, tokenizer: &str) -> Option<TokenProvenance> {
        let p = &self.prov;
        p.seen.then(|| TokenProvenance {
            tokenizer: if p.tokenizer_output.is_some() {
                tokenizer.to_string()
            } else {
                "none".into()
            },
            requests_with_usage: p.with_usage,
            requests_without_usage: p.without_usage,
            server_input: p.server_input,
            server_output: p.server_output,
            server_cached_input: p.server_cached,
            server_reasoning: p.server_reasoning,
            tokenizer_input: p.tokenizer_input,
            tokenizer_output: p.tokenizer_output,
            output_disagreement_pct: pct(p.both_out.1, p.both_out.0),
            input_disagreement_pct: pct(p.both_in.1, p.both_in.0),
            chunk_counts: p.chunk_counts.clone(),
            reconciled_requests: p.reconciled,
        })
    }

    /// Adds a finished session.
    pub fn add_task(&mut self, t: &TaskRecord) {
        self.tasks_started += 1;
        if t.completed {
            self.tasks_completed += 1;
            self.task.record_ms(t.task_ms);
            self.task_calls += u64::from(t.calls);
            self.task_input += t.input_tokens;
            self.task_output += t.output_tokens;
        }
    }

    /// Requests recorded.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Failed requests recorded.
    pub fn failed(&self) -> u64 {
        self.sent - self.ok
    }

    /// Request counts.
    pub fn requests(&self) -> RequestCounts {
        RequestCounts {
            sent: self.sent,
            ok: self.ok,
            failed: self.failed(),
            by_class: self.by_class.clone(),
            retries: self.retries,
            protocol_warnings: self.protocol_warnings,
            stopped_early: self.stopped_early,
        }
    }

    /// Token totals; `fallback` names the source when no request was recorded.
    pub fn tokens(&self, fallback: TokenSource) -> TokenCounts {
        let one = |sources: &[TokenSource]| match sources {
            [one] => *one,
            [] => fallback,
            _ => TokenSource::Mixed,
        };
        let (input_source, output_source) = (one(&self.input_sources), one(&self.output_sources));
        TokenCounts {
            input: self.input_all,
            output: self.output_all,
            input_source,
            output_source,
            input_capped_requests: self.capped,
            input_cached: self.input_cached,
            provenance: None,
        }
    }

    /// A local engine's view of the load point from its counters at the start and
    /// end of the window; `None` when the target has none.
    pub fn engine(
        &self,
        before: Option<EngineCounters>,
        after: Option<EngineCounters>,
    ) -> Option<EngineStats> {
        let (b, a) = (before?, after?);
        let steps = a.steps - b.steps;
        let per_step = |x: u64| {
            if steps > 0 {
                x as f64 / steps as f64
            } else {
                0.0
            }
        };
        let seqs = per_step(a.seqs_sum - b.seqs_sum);
        let prompt = a.prompt_tokens - b.prompt_tokens;
        let cached = a.cached_tokens - b.cached_tokens;
        Some(EngineStats {
            steps,
            max_batch: a.max_batch,
            mean_seqs_per_step: seqs,
            mean_batch_occupancy: seqs / f64::from(a.max_batch.max(1)),
            mean_tokens_per_step: per_step(a.tokens_sum - b.tokens_sum),
            prompt_tokens: prompt,
            prompt_tokens_cached: cached,
            prompt_tokens_computed: prompt - cached,
            cache_hit_ratio: (prompt > 0).then(|| cached as f64 / prompt as f64),
            kv_block_tokens: a.block_tokens,
            kv_blocks_total: a.blocks_total,
            kv_blocks_used_peak: a.blocks_peak,
            kv_evictions: a.evictions - b.evictions,
            engine_queue_ms: self.engine_queue.summary(),
            prefill_ms: self.engine_prefill.summary(),
            request_mean_batch: if self.engine_requests > 0 {
                self.engine_batch_sum / self.engine_requests as f64
            } else {
                0.0
            },
            prefill_busy_s: Some((a.prefill_busy_ns - b.prefill_busy_ns) as f64 / 1e9),
            decode_busy_s: Some((a.decode_busy_ns - b.decode_busy_ns) as f64 / 1e9),
        })
    }

    /// Latency summaries.
    pub fn latency(&self) -> Latency {
        Latency {
            queue_ms: self.queue.summary(),
            ttft_ms: self.ttft.summary(),
            ttft_from_intended_ms: self.ttft_intended.summary(),
            itl_ms: self.itl.summary(),
            chunk_gap_ms: self.chunk_gap.summary(),
            tpot_ms: self.tpot.summary(),
            e2e_ms: self.e2e.summary(),
            ttft_answer_ms: (!self.ttft_answer.is_empty()).then(|| self.ttft_answer.summary()),
        }
    }

    /// Every finished request's end, outcome and output tokens, for throughput
    /// intervals and the steady state.
    pub fn completions(&self) -> &[results::stats::Completion] {
        &self.completions
    }

    /// Throughput over `window_s` seconds, with its bootstrap interval.
    pub fn throughput(&self, window_s: f64) -> Throughput {
        let per_s = |x: u64| {
            if window_s > 0.0 {
                x as f64 / window_s
            } else {
                0.0
            }
        };
        Throughput {
            requests_per_s: per_s(self.ok),
            input_tokens_per_s: per_s(self.input_ok),
            output_tokens_per_s: per_s(self.output_all),
            output_tokens_per_s_per_user: self
                .tpot
                .quantile_ms(0.5)
                .filter(|&t| t > 0.0)
                .map(|t| 1000.0 / t),
            ci95: results::stats::throughput_ci95(&self.completions, window_s),
            steady_state: None,
        }
    }

    /// Cold-start figures, when probes were recorded into this aggregate.
    pub fn cold_start(&self, idle_s: f64) -> Option<ColdStartStats> {
        (self.sent > 0).then(|| ColdStartStats {
            idle_s,
            probes: self.sent,
            ok: self.ok,
            by_class: self.by_class.clone(),
            ttft_ms: self.ttft.summary(),
            e2e_ms: self.e2e.summary(),
        })
    }

    /// Per-task figures.
    pub fn tasks(&self) -> TaskStats {
        let per =
            |x: u64| (self.tasks_completed > 0).then(|| x as f64 / self.tasks_completed as f64);
        TaskStats {
            started: self.tasks_started,
            completed: self.tasks_completed,
            failed: self.tasks_started - self.tasks_completed,
            task_ms: self.task.summary(),
            calls_per_task: per(self.task_calls),
            input_tokens_per_task: per(self.task_input),
            output_tokens_per_task: per(self.task_output),
        }
    }
}
