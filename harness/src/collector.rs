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
use std::time::Instant as StdInstant;

use results::{
    EngineStats, ErrorClass, Latency, LatencyHistogram, RequestCounts, TaskStats, Throughput,
    TokenCounts, TokenSource,
};
use serde::Serialize;
use tokio::time::Instant;
use workloads::{EngineCounters, StreamSink};

/// Timings of one request, stamped as its response arrives.
#[derive(Debug)]
pub struct RequestTimer {
    /// When the request was handed to the target.
    pub sent: Instant,
    /// First response byte (remote targets).
    pub first_byte: Option<Instant>,
    /// First output token.
    pub first_token: Option<Instant>,
    /// Latest chunk.
    pub last_chunk: Option<Instant>,
    /// Output tokens received.
    pub tokens: u32,
    /// Chunks received.
    pub chunks: u32,
    /// Per-token gaps (ms).
    pub itl_ms: Vec<f64>,
    /// Per-chunk gaps (ms).
    pub chunk_gap_ms: Vec<f64>,
}

impl RequestTimer {
    /// A timer for a request sent at `sent`.
    pub fn new(sent: Instant) -> Self {
        Self {
            sent,
            first_byte: None,
            first_token: None,
            last_chunk: None,
            tokens: 0,
            chunks: 0,
            itl_ms: Vec::new(),
            chunk_gap_ms: Vec::new(),
        }
    }

    fn tokens_at(&mut self, at: Instant, count: u32) {
        if count == 0 {
            return;
        }
        match self.last_chunk {
            None => self.first_token = Some(at),
            Some(prev) => {
                let gap = ms(at.saturating_duration_since(prev));
                self.chunk_gap_ms.push(gap);
                let each = gap / f64::from(count);
                self.itl_ms
                    .extend(std::iter::repeat_n(each, count as usize));
            }
        }
        self.last_chunk = Some(at);
        self.tokens += count;
        self.chunks += 1;
    }
}

impl StreamSink for RequestTimer {
    fn on_bytes(&mut self, n: usize) {
        if n > 0 && self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
    }

    fn on_tokens(&mut self, count: u32) {
        self.tokens_at(Instant::now(), count);
    }

    fn on_tokens_at(&mut self, at: StdInstant, count: u32) {
        self.tokens_at(Instant::from_std(at), count);
    }
}

/// Milliseconds of a duration, at the clock's nanosecond resolution.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounds milliseconds to the microsecond, for records meant to be read.
fn us(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One finished (or failed) request: a line of `requests.jsonl`.
#[derive(Clone, Debug, Serialize, PartialEq)]
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
    /// First token minus intended send.
    pub ttft_from_intended_ms: Option<f64>,
    /// Completion minus actual send (also for failures: when the failure was seen).
    pub e2e_ms: f64,
    /// (completion - first token) / (tokens - 1).
    pub tpot_ms: Option<f64>,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Whether the prompt was shortened to fit the target's context.
    pub input_capped: bool,
    /// Output tokens asked for.
    pub max_output_tokens: u32,
    /// Output tokens received.
    pub output_tokens: u32,
    /// Where the output count came from.
    pub output_source: TokenSource,
    /// Stream chunks received.
    pub chunks: u32,
    /// `ok` or `error`.
    pub status: &'static str,
    /// Error class, for failures.
    pub error_class: Option<ErrorClass>,
    /// Error message, for failures.
    pub error: Option<String>,
    /// Input tokens the target served from its prefix cache, when it reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cached_tokens: Option<u32>,
    /// A local engine's figures for the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<workloads::EngineRequestStats>,
    #[serde(skip)]
    itl_ms: Vec<f64>,
    #[serde(skip)]
    chunk_gap_ms: Vec<f64>,
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
}

impl RequestRecord {
    /// Builds the record of a request from its timer and outcome.
    pub fn new(
        f: Finished<'_>,
        timer: RequestTimer,
        outcome: Result<&workloads::Completion, &workloads::BackendError>,
    ) -> Self {
        let since = |a: Instant, b: Instant| ms(a.saturating_duration_since(b));
        let (status, error_class, error, output_source) = match outcome {
            Ok(c) => ("ok", None, None, c.output_source),
            Err(e) => (
                "error",
                Some(e.class),
                Some(e.message.clone()),
                TokenSource::Engine,
            ),
        };
        let output_tokens = match outcome {
            Ok(c) => c.output_tokens,
            Err(_) => timer.tokens,
        };
        let (input_cached_tokens, engine) = match outcome {
            Ok(c) => (c.input_cached_tokens, c.engine.map(round_engine)),
            Err(_) => (None, None),
        };
        let tpot_ms = match (timer.first_token, outcome) {
            (Some(first), Ok(_)) if output_tokens >= 2 => {
                Some(since(f.ended, first) / f64::from(output_tokens - 1))
            }
            _ => None,
        };
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
            ttft_from_intended_ms: timer.first_token.map(|t| us(since(t, f.scheduled))),
            e2e_ms: us(since(f.ended, timer.sent)),
            tpot_ms: tpot_ms.map(us),
            input_tokens: f.request.input_tokens(),
            input_capped: f.input_capped,
            max_output_tokens: f.request.max_output_tokens,
            output_tokens,
            output_source,
            chunks: timer.chunks,
            status,
            error_class,
            error,
            input_cached_tokens,
            engine,
            itl_ms: timer.itl_ms,
            chunk_gap_ms: timer.chunk_gap_ms,
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
}

impl Aggregate {
    /// Adds a request.
    pub fn add(&mut self, r: &RequestRecord) {
        self.sent += 1;
        self.queue.record_ms(r.queue_ms);
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
        }
    }

    /// Token totals (input counted by the engine or the embedded tokenizer).
    pub fn tokens(&self, input_source: TokenSource) -> TokenCounts {
        let output_source = match self.output_sources.as_slice() {
            [one] => *one,
            [] => TokenSource::Engine,
            _ => TokenSource::Mixed,
        };
        TokenCounts {
            input: self.input_all,
            output: self.output_all,
            input_source,
            output_source,
            input_capped_requests: self.capped,
            input_cached: self.input_cached,
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
        }
    }

    /// Throughput over `window_s` seconds.
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn coalesced_chunks_split_their_gap_over_their_tokens() {
        let t0 = Instant::now();
        let mut timer = RequestTimer::new(t0);
        tokio::time::advance(Duration::from_millis(100)).await;
        timer.on_tokens(1); // TTFT 100 ms
        tokio::time::advance(Duration::from_millis(30)).await;
        timer.on_tokens(3); // one chunk of 3 tokens after 30 ms: 3 gaps of 10 ms
        tokio::time::advance(Duration::from_millis(20)).await;
        timer.on_tokens(1);
        timer.on_tokens(0); // empty chunks count for nothing
        assert_eq!(timer.tokens, 5);
        assert_eq!(timer.chunks, 3);
        assert_eq!(timer.first_token, Some(t0 + Duration::from_millis(100)));
        assert_eq!(timer.itl_ms, vec![10.0, 10.0, 10.0, 20.0]);
        assert_eq!(timer.chunk_gap_ms, vec![30.0, 20.0]);
        // Per-token gaps add up to last token - first token.
        assert_eq!(timer.itl_ms.iter().sum::<f64>(), 50.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_chunk_of_several_tokens_gives_no_itl() {
        let mut timer = RequestTimer::new(Instant::now());
        tokio::time::advance(Duration::from_millis(5)).await;
        timer.on_tokens(4);
        assert!(timer.itl_ms.is_empty());
        assert_eq!(timer.tokens, 4);
    }
}
