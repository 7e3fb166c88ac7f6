//! The figures of one load point folded from its records: an [`Aggregate`] holds the
//! histograms and counts that every figure of a result is derived from (live, in
//! `recover`, and for cold-start probes).

use std::collections::BTreeMap;

use results::derive::{ThroughputCounts, throughput, with_intervals};
use results::stats::Completion;
use results::{
    ColdStartStats, EngineStats, ErrorClass, Latency, LatencyHistogram, RequestCounts, Throughput,
    TokenCounts, TokenProvenance, TokenSource,
};
use workloads::{ChunkTokens, EngineCounters};

use crate::record::RequestRecord;
use crate::slo::Slo;

/// Histograms and counts of one load point.
#[derive(Debug, Default)]
pub struct Aggregate {
    /// The SLO whose per-request bounds are counted in `slo_met`.
    pub slo: Option<Slo>,
    /// Successful requests that met every per-request bound of `slo`.
    pub slo_met: u64,
    completions: Vec<Completion>,
    queue: LatencyHistogram,
    ttft: LatencyHistogram,
    ttft_intended: LatencyHistogram,
    itl: LatencyHistogram,
    chunk_gap: LatencyHistogram,
    tpot: LatencyHistogram,
    e2e: LatencyHistogram,
    sent: u64,
    ok: u64,
    by_class: BTreeMap<ErrorClass, u64>,
    input_ok: u64,
    input_all: u64,
    output_all: u64,
    output_sources: Vec<TokenSource>,
    capped: u64,
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
        self.completions.push(Completion {
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

    /// Requests recorded.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Failed requests recorded.
    pub fn failed(&self) -> u64 {
        self.sent - self.ok
    }

    /// Request counts (the planned and not-sent counts are the caller's: the records
    /// hold only what was sent).
    pub fn requests(&self) -> RequestCounts {
        RequestCounts {
            sent: self.sent,
            ok: self.ok,
            failed: self.failed(),
            by_class: self.by_class.clone(),
            retries: self.retries,
            protocol_warnings: self.protocol_warnings,
            stopped_early: self.stopped_early,
            planned: None,
            not_sent: BTreeMap::new(),
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
            decode_steps: Some(a.decode_steps - b.decode_steps),
            decode_step_tokens: Some(a.decode_step_tokens - b.decode_step_tokens),
            decode_step_busy_s: Some((a.decode_step_ns - b.decode_step_ns) as f64 / 1e9),
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
    pub fn completions(&self) -> &[Completion] {
        &self.completions
    }

    /// Throughput over `window_s` seconds, with its bootstrap intervals and, given
    /// the steady window (seconds from the start of measurement), its steady state.
    pub fn throughput(&self, window_s: f64, steady_s: Option<(f64, f64)>) -> Throughput {
        let t = throughput(
            ThroughputCounts {
                ok_requests: self.ok,
                ok_input_tokens: self.input_ok,
                output_tokens: self.output_all,
            },
            window_s,
            self.tpot.quantile_ms(0.5),
        );
        with_intervals(t, &self.completions, window_s, steady_s)
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
}
