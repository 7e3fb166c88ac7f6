//! One measured request: a [`RequestRecord`] is a line of `requests.jsonl`, built from
//! the request's [`RequestTimer`] and outcome when it finishes. Every later figure
//! (histograms, throughput, tasks, steady state, a recovered report) is derived from
//! these records alone.
//!
//! Metric definitions (README, "Metrics"): queue = actual send - intended send;
//! TTFT = first token - actual send; TTFT from intended = first token - intended send;
//! ITL = every gap between successive tokens, a chunk of k tokens after a gap g giving
//! k gaps of g/k (tokens of the first chunk give none: their time is TTFT); chunk gap =
//! gap between successive chunks; TPOT = (completion - first token) / (tokens - 1);
//! E2E = completion - actual send.

use results::{ErrorClass, TokenSource};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use workloads::{ChunkTokens, ServerUsage};

use crate::clock::{ms, us};
use crate::timer::{RequestTimer, RetriedAttempt};

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
    /// The shared prefix the request started with (a replay of this file rebuilds
    /// it: `trace.format = "requests-jsonl"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<workloads::PrefixRef>,
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
    /// The grade of a checked request's reply (verifiable tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckRecord>,
}

/// The most characters of a graded reply kept in `requests.jsonl`.
pub const REPLY_KEPT_CHARS: usize = 2000;

/// A checked request's grade, and the reply it was given for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckRecord {
    /// The checker's kind (`exact`, `label`, `regex`, `number`, `json_schema`).
    pub kind: String,
    /// The group it is counted under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether the reply was right.
    pub passed: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<results::CheckFailure>,
    /// What was read and what was expected.
    pub detail: String,
    /// The reply's text (its first [`REPLY_KEPT_CHARS`] characters), for audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

impl CheckRecord {
    /// Grades the outcome of `req` (which carries `check`); a prompt cut to fit the
    /// context is not graded (`input_capped`).
    pub fn grade(
        check: &workloads::check::TaskCheck,
        outcome: Result<&workloads::Completion, &workloads::BackendError>,
        input_capped: bool,
    ) -> Self {
        use workloads::check::Verdict;
        let (verdict, reply) = match outcome {
            Ok(c) if input_capped => (
                Verdict::not_graded(
                    results::CheckFailure::InputCapped,
                    "the prompt was cut to fit the target's context: the task may be gone",
                ),
                c.output_text.as_deref().map(|t| clip(t, REPLY_KEPT_CHARS)),
            ),
            Err(e) => (
                Verdict::not_graded(
                    results::CheckFailure::RequestError,
                    format!("the request failed: {}", e.class.as_str()),
                ),
                None,
            ),
            Ok(c) => match &c.output_text {
                None => (
                    Verdict::not_graded(
                        results::CheckFailure::NoText,
                        "the target returned no text to grade",
                    ),
                    None,
                ),
                Some(text) => (check.grade(text), Some(clip(text, REPLY_KEPT_CHARS))),
            },
        };
        Self {
            kind: check.checker.kind().to_string(),
            group: check.group.clone(),
            passed: verdict.passed,
            failure: verdict.failure,
            detail: verdict.detail,
            reply,
        }
    }
}

fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
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
        // TPOT needs the tokens' own arrivals: an unstreamed body arrives at once, so
        // its TPOT was not measured (null, as ITL), not 0.
        let tpot_ms = match (timer.first_token, ok) {
            (Some(first), Some(c))
                if output_tokens >= 2 && c.chunk_tokens != ChunkTokens::Unstreamed =>
            {
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
            prefix: f.request.prefix.clone(),
            input_cached_tokens: ok.and_then(|c| c.input_cached_tokens),
            engine: ok.and_then(|c| c.engine.map(round_engine)),
            cold_start: false,
            chunk_gap_ms: timer.chunk_gaps_ms(),
            itl_ms,
            check: f
                .request
                .check
                .as_ref()
                .map(|c| CheckRecord::grade(c, outcome, f.input_capped)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> workloads::Completion {
        workloads::Completion {
            input_tokens: 10,
            input_source: TokenSource::Engine,
            output_tokens: 2,
            output_source: TokenSource::Engine,
            finish: workloads::FinishReason::Length,
            output_token_ids: None,
            output_text: Some(text.into()),
            input_cached_tokens: None,
            engine: None,
            server_usage: None,
            tokenizer_output_tokens: None,
            chunk_tokens: ChunkTokens::Engine,
            finish_reason: None,
        }
    }

    #[test]
    fn a_reply_is_graded_unless_its_prompt_was_cut_or_it_has_no_text() {
        use workloads::check::{Checker, TaskCheck};
        let check = TaskCheck::new(
            Checker::Number {
                answer: 42.0,
                tolerance: 0.0,
            },
            Some("op=mul".into()),
        )
        .unwrap();
        let ok = CheckRecord::grade(&check, Ok(&reply(" 42\nmore")), false);
        assert!(ok.passed && ok.failure.is_none(), "{ok:?}");
        assert_eq!(ok.reply.as_deref(), Some(" 42\nmore"));
        assert_eq!(
            (ok.kind.as_str(), ok.group.as_deref()),
            ("number", Some("op=mul"))
        );
        let capped = CheckRecord::grade(&check, Ok(&reply(" 42")), true);
        assert_eq!(capped.failure, Some(results::CheckFailure::InputCapped));
        assert!(!capped.passed);
        let mut silent = reply("");
        silent.output_text = None;
        let none = CheckRecord::grade(&check, Ok(&silent), false);
        assert_eq!(none.failure, Some(results::CheckFailure::NoText));
        let err = workloads::BackendError::new(results::ErrorClass::Timeout, "slow");
        let failed = CheckRecord::grade(&check, Err(&err), false);
        assert_eq!(failed.failure, Some(results::CheckFailure::RequestError));
        let long = "7".repeat(REPLY_KEPT_CHARS + 50);
        let kept = CheckRecord::grade(&check, Ok(&reply(&long)), false);
        assert_eq!(kept.reply.unwrap().chars().count(), REPLY_KEPT_CHARS);
    }
}
