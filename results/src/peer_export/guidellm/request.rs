//! One request as GuideLLM 0.8.1's `GenerativeRequestStats`: infermeter's timings of
//! it placed on the Unix clock, and the figures GuideLLM derives from them (its
//! `computed_field`s), each computed as GuideLLM computes it so that the metrics of
//! the benchmark are GuideLLM's metrics of these requests.
//!
//! The timings GuideLLM keeps and infermeter has: the targeted start (the intended
//! send), the request's start (the actual send), the first token, the first answer
//! token (reasoning excluded), the last token (the first plus every gap between
//! chunks; unknown for lines of older runs that kept no gaps) and the end. GuideLLM's scheduler hops (queued, dequeued, resolve start)
//! infermeter does not have: left null; GuideLLM's resolve end, which it requires, is
//! the request's end. Token iterations are infermeter's stream chunks that carried
//! tokens; GuideLLM's request iterations also count events without tokens, which
//! infermeter does not count: the same number is written.

use serde_json::{Value, json};

use crate::peer_export::PeerRequest;

/// A request placed on the Unix clock, with GuideLLM's derived figures.
#[derive(Clone, Debug)]
pub(super) struct Stats<'a> {
    pub req: &'a PeerRequest,
    /// Intended send, Unix seconds.
    pub targeted_start: f64,
    /// Actual send, Unix seconds.
    pub start: f64,
    /// First token, Unix seconds.
    pub first_token: Option<f64>,
    /// First answer token, Unix seconds.
    pub first_output_token: Option<f64>,
    /// Last token, Unix seconds.
    pub last_token: Option<f64>,
    /// End, Unix seconds.
    pub end: f64,
}

impl<'a> Stats<'a> {
    /// `req` on the Unix clock, its times measured from `t0_s`.
    pub(super) fn new(req: &'a PeerRequest, t0_s: f64) -> Stats<'a> {
        let start = t0_s + req.sent_s;
        let first_token = req.ttft_ms.map(|t| start + t / 1000.0);
        Stats {
            req,
            targeted_start: t0_s + req.scheduled_s,
            start,
            first_token,
            first_output_token: req.ttft_answer_ms.map(|t| start + t / 1000.0),
            last_token: first_token.and_then(|f| req.chunk_gaps_ms.map(|g| f + g / 1000.0)),
            end: start + req.e2e_ms / 1000.0,
        }
    }

    /// `output_tokens`: the server's or the engine's count (never absent here).
    pub(super) fn output_tokens(&self) -> f64 {
        f64::from(self.req.output_tokens)
    }

    /// `prompt_tokens`.
    pub(super) fn prompt_tokens(&self) -> f64 {
        f64::from(self.req.input_tokens)
    }

    /// `token_iterations`.
    pub(super) fn token_iterations(&self) -> u32 {
        self.req.chunks
    }

    /// `request_latency`, seconds.
    pub(super) fn latency_s(&self) -> f64 {
        self.end - self.start
    }

    /// `request_dispatch_delay`, seconds.
    pub(super) fn dispatch_delay_s(&self) -> f64 {
        self.start - self.targeted_start
    }

    /// `request_scheduled_latency`, seconds.
    pub(super) fn scheduled_latency_s(&self) -> f64 {
        self.end - self.targeted_start
    }

    /// `time_to_first_token_ms`.
    pub(super) fn ttft_ms(&self) -> Option<f64> {
        self.first_token.map(|f| 1000.0 * (f - self.start))
    }

    /// `time_to_first_output_token_ms`.
    pub(super) fn ttfot_ms(&self) -> Option<f64> {
        self.first_output_token.map(|f| 1000.0 * (f - self.start))
    }

    /// `time_per_output_token_ms`: (last token, or the end, - start) / output tokens.
    pub(super) fn tpot_ms(&self) -> Option<f64> {
        let n = self.output_tokens();
        let last = self.last_token.unwrap_or(self.end);
        (n > 0.0).then(|| 1000.0 * (last - self.start) / n)
    }

    /// `inter_token_latency_ms`: (last - first token) / (output tokens - 1).
    pub(super) fn itl_ms(&self) -> Option<f64> {
        let n = self.output_tokens();
        match (self.first_token, self.last_token) {
            (Some(f), Some(l)) if n > 1.0 => Some(1000.0 * (l - f) / (n - 1.0)),
            _ => None,
        }
    }

    /// `tokens_per_second` over the request's latency.
    fn tokens_per_s(&self, tokens: f64) -> Option<f64> {
        let l = self.latency_s();
        (l != 0.0).then(|| tokens / l)
    }

    /// `iter_tokens_per_iteration`.
    pub(super) fn iter_tokens_per_iteration(&self) -> Option<f64> {
        let (n, it) = (self.output_tokens(), self.token_iterations());
        (n > 1.0 && it > 1).then(|| (n - 1.0) / (f64::from(it) - 1.0))
    }

    /// `output_tokens_per_iteration`.
    fn output_tokens_per_iteration(&self) -> Option<f64> {
        let it = self.token_iterations();
        (it >= 1).then(|| self.output_tokens() / f64::from(it))
    }

    /// `prompt_tokens_timing`: (first token, or the end; prompt tokens).
    pub(super) fn prompt_tokens_timing(&self) -> (f64, f64) {
        (self.first_token.unwrap_or(self.end), self.prompt_tokens())
    }

    /// `iter_tokens_timings`: the iterations after the first, evenly spaced between
    /// the first and last token (numpy's linspace), each with the mean tokens of one.
    pub(super) fn iter_tokens_timings(&self) -> Vec<(f64, f64)> {
        let (Some(first), Some(last), Some(per)) = (
            self.first_token,
            self.last_token,
            self.iter_tokens_per_iteration(),
        ) else {
            return Vec::new();
        };
        let num = self.token_iterations() as usize;
        if num <= 1 {
            return Vec::new();
        }
        // numpy.linspace: i * step + start, the last set to stop exactly.
        let step = (last - first) / (num - 1) as f64;
        (1..num)
            .map(|i| {
                let t = if i == num - 1 {
                    last
                } else if step == 0.0 {
                    (i as f64 / (num - 1) as f64) * (last - first) + first
                } else {
                    i as f64 * step + first
                };
                (t, per)
            })
            .collect()
    }

    /// `output_tokens_timings`: the first token as one token, then the iterations;
    /// without iterations, every token at the last token (or the end).
    pub(super) fn output_tokens_timings(&self) -> Vec<(f64, f64)> {
        match (self.first_token, self.last_token) {
            (Some(first), Some(_)) if self.token_iterations() > 1 => {
                let mut v = vec![(first, if self.output_tokens() > 0.0 { 1.0 } else { 0.0 })];
                v.extend(self.iter_tokens_timings());
                v
            }
            _ => vec![(self.last_token.unwrap_or(self.end), self.output_tokens())],
        }
    }

    /// `total_tokens_timings`: the prompt's timing, then the output's.
    pub(super) fn total_tokens_timings(&self) -> Vec<(f64, f64)> {
        let mut v = vec![self.prompt_tokens_timing()];
        v.extend(self.output_tokens_timings());
        v
    }

    /// The request as GuideLLM's JSON.
    pub(super) fn json(&self, benchmark_start_s: f64) -> Value {
        let r = self.req;
        let id = format!("{}-{}", r.seed, r.request);
        let errored = r.error.is_some();
        let usage = |tokens: u32| {
            json!({
                "text_tokens": tokens, "cached_tokens": null, "text_words": null,
                "text_characters": null, "image_tokens": null, "image_count": null,
                "image_pixels": null, "image_bytes": null, "video_tokens": null,
                "video_frames": null, "video_seconds": null, "video_bytes": null,
                "audio_tokens": null, "audio_samples": null, "audio_seconds": null,
                "audio_bytes": null, "tool_call_tokens": null,
                "mixed_content_tool_tokens": null, "tool_call_count": null,
                "total_tokens": tokens,
            })
        };
        let ms = |v: Option<f64>| v.map_or(Value::Null, |x| json!(x));
        let timings = json!({
            "targeted_start": self.targeted_start,
            "predecessor_completed": null,
            "queued": null,
            "dequeued": null,
            "scheduled_at": null,
            "resolve_start": null,
            "request_start": self.start,
            "first_request_iteration": ms(self.first_token),
            "first_token_iteration": ms(self.first_token),
            "first_output_token_iteration": ms(self.first_output_token),
            "last_token_iteration": ms(self.last_token),
            "last_request_iteration": ms(self.last_token),
            "request_iterations": r.chunks,
            "token_iterations": r.chunks,
            "last_request_sent": null,
            "request_sent_sum": 0.0,
            "request_sent_count": 0,
            "token_received_sum": 0.0,
            "token_received_count": 0,
            "request_end": self.end,
            "resolve_end": self.end,
            "finalized": null,
        });
        let info = json!({
            "request_id": id,
            "conversation_id": format!("{}-session-{}", r.seed, r.session),
            "history_len": r.call,
            "turn_index": r.call,
            "preceding_nodes": r.call,
            "node_id": format!("turn_{}", r.call),
            "agent_id": null,
            "parent_node_ids": [],
            "status": if errored { "errored" } else { "completed" },
            "scheduler_node_id": -1,
            "scheduler_process_id": -1,
            "scheduler_start_time": benchmark_start_s,
            "timings": timings,
            "settings": {"relative_timestamp": null, "requeue_delay": null, "trace_duration": null},
            "error": r.error,
            "traceback": null,
            "started_at": self.start,
            "completed_at": self.end,
        });
        json!({
            "type_": "generative_request_stats",
            "request_id": id,
            "response_id": null,
            "request_args": null,
            "output": null,
            "reasoning_output": null,
            "tool_calls": null,
            "info": info,
            "input_metrics": usage(r.input_tokens),
            "response_metrics": null,
            "output_metrics": usage(r.output_tokens),
            "request_start_time": self.start,
            "request_end_time": self.end,
            "request_latency": self.latency_s(),
            "request_dispatch_delay": self.dispatch_delay_s(),
            "turn_predecessor_delay": 0.0,
            "turn_scheduling_delay": self.dispatch_delay_s(),
            "request_scheduled_latency": self.scheduled_latency_s(),
            "prompt_tokens": r.input_tokens,
            "cached_tokens": null,
            "output_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "time_to_first_token_ms": ms(self.ttft_ms()),
            "time_to_last_round_trip_ms": null,
            "avg_round_trip_time_ms": null,
            "time_per_output_token_ms": ms(self.tpot_ms()),
            "inter_token_latency_ms": ms(self.itl_ms()),
            "tokens_per_second": ms(self.tokens_per_s(self.prompt_tokens() + self.output_tokens())),
            "output_tokens_per_second": ms(self.tokens_per_s(self.output_tokens())),
            "time_to_first_output_token_ms": ms(self.ttfot_ms()),
            "iter_tokens_per_iteration": ms(self.iter_tokens_per_iteration()),
            "output_tokens_per_iteration": ms(self.output_tokens_per_iteration()),
        })
    }
}
