//! A benchmark's `metrics` object as GuideLLM 0.8.1's `GenerativeMetrics.compile`
//! builds it from its requests: every distribution GuideLLM requires, by status, with
//! GuideLLM's weights (TPOT by output tokens, ITL by output tokens - 1, token rates
//! by tokens), windows (TTFT by the first token, rates inside the measured window)
//! and fallbacks (a figure GuideLLM cannot compute for a request counts as 0, as in
//! GuideLLM; round-trip times, which only GuideLLM's websocket backend records, are
//! therefore 0 here as in any of GuideLLM's HTTP runs). Text words and characters
//! are null: infermeter keeps no request text. Image, video, audio and tool-call
//! figures are null, as GuideLLM writes them for a text workload. Per-turn figures
//! (a session's calls are its turns) are written for multi-call workloads.

use serde_json::{Map, Value, json};

use super::request::Stats;
use super::stats::{ByStatus, Summary, by_status};

/// The measured window, Unix seconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    pub start_s: f64,
    pub end_s: f64,
}

impl Window {
    /// GuideLLM's `get_within_range` (partial overlap) with a request's start and end
    /// events; a request without a start event counts as instantaneous at its end.
    fn holds(&self, start: Option<f64>, end: Option<f64>) -> bool {
        let Some(end) = end else {
            return false;
        };
        let start = start.unwrap_or(end);
        end >= self.start_s && start <= self.end_s
    }
}

/// The requests of one benchmark, by status, inside a window chosen by `events`.
fn within<'a>(
    reqs: &ByStatus<Stats<'a>>,
    w: Window,
    events: impl Fn(&Stats) -> (Option<f64>, Option<f64>),
) -> ByStatus<Stats<'a>> {
    let keep = |v: &[Stats<'a>]| {
        v.iter()
            .filter(|s| {
                let (a, b) = events(s);
                w.holds(a, b)
            })
            .cloned()
            .collect()
    };
    ByStatus {
        successful: keep(&reqs.successful),
        errored: keep(&reqs.errored),
    }
}

/// The requests of `reqs` at call (turn) `turn`.
fn at_turn<'a>(reqs: &ByStatus<Stats<'a>>, turn: u32) -> ByStatus<Stats<'a>> {
    let keep = |v: &[Stats<'a>]| v.iter().filter(|s| s.req.call == turn).cloned().collect();
    ByStatus {
        successful: keep(&reqs.successful),
        errored: keep(&reqs.errored),
    }
}

/// `GenerativeTurnMetrics.compile_by_turn`: latency, prompt tokens, TTFT and ITL at
/// each turn; null when every request is a first turn.
fn turns(
    r: &ByStatus<Stats>,
    first_token: &ByStatus<Stats>,
    after_first: &ByStatus<Stats>,
) -> Value {
    let mut indices: Vec<u32> = [r, first_token, after_first]
        .iter()
        .flat_map(|g| g.successful.iter().chain(&g.errored).map(|s| s.req.call))
        .collect();
    indices.sort_unstable();
    indices.dedup();
    if indices.is_empty() || indices == [0] {
        return Value::Null;
    }
    let per_turn: Vec<Value> = indices
        .iter()
        .map(|&t| {
            let (all, ft, af) = (at_turn(r, t), at_turn(first_token, t), at_turn(after_first, t));
            let (ok, err) = (all.successful.len(), all.errored.len());
            json!({
                "turn_index": t,
                "request_totals": {"successful": ok, "incomplete": 0, "errored": err, "total": ok + err},
                "request_latency": dist(&all, |s| s.latency_s()),
                "prompt_token_count": dist(&all, |s| s.prompt_tokens()),
                "time_to_first_token_ms": dist(&ft, |s| s.ttft_ms().unwrap_or(0.0)),
                "inter_token_latency_ms": itl(&af),
            })
        })
        .collect();
    Value::Array(per_turn)
}

/// ITL weighted by each request's output tokens - 1 (GuideLLM's `(n or 1) - 1`).
fn itl(reqs: &ByStatus<Stats>) -> Value {
    by_status(
        &values(reqs, |s| {
            let n = s.output_tokens();
            vec![(
                s.itl_ms().unwrap_or(0.0),
                if n == 0.0 { 0.0 } else { n - 1.0 },
            )]
        }),
        |x| Summary::from_values(x, None),
    )
}

/// Per-status values of `f` (each request's weighted values).
fn values(reqs: &ByStatus<Stats>, f: impl Fn(&Stats) -> Vec<(f64, f64)>) -> ByStatus<(f64, f64)> {
    ByStatus {
        successful: reqs.successful.iter().flat_map(&f).collect(),
        errored: reqs.errored.iter().flat_map(&f).collect(),
    }
}

/// A value distribution: one value of weight 1 per request.
fn dist(reqs: &ByStatus<Stats>, f: impl Fn(&Stats) -> f64) -> Value {
    let v = values(reqs, |s| vec![(f(s), 1.0)]);
    by_status(&v, |x| Summary::from_values(x, None))
}

/// A rate distribution of weighted event times, in `window` or unbounded.
fn rate(
    reqs: &ByStatus<Stats>,
    window: Option<Window>,
    f: impl Fn(&Stats) -> Vec<(f64, f64)>,
) -> Value {
    let v = values(reqs, f);
    by_status(&v, |x| {
        Summary::rate(x, window.map(|w| (w.start_s, w.end_s)))
    })
}

/// A concurrency distribution of weighted intervals, in `window` or unbounded.
fn concurrency(
    reqs: &ByStatus<Stats>,
    window: Option<Window>,
    f: impl Fn(&Stats) -> (f64, f64, f64),
) -> Value {
    let v = ByStatus {
        successful: reqs.successful.iter().map(&f).collect::<Vec<_>>(),
        errored: reqs.errored.iter().map(&f).collect(),
    };
    by_status(&v, |x| {
        Summary::concurrency(x, window.map(|w| (w.start_s, w.end_s)))
    })
}

/// `text.tokens`: prompt, output and all tokens per request, their rates at each
/// request's end and their concurrency over each request (no window, as GuideLLM).
fn text_tokens(reqs: &ByStatus<Stats>) -> Value {
    let side = |f: &dyn Fn(&Stats) -> f64| {
        (
            dist(reqs, f),
            rate(reqs, None, |s| vec![(s.end, f(s))]),
            concurrency(reqs, None, |s| (s.start, s.end, f(s))),
        )
    };
    let (input, input_rate, input_conc) = side(&|s| s.prompt_tokens());
    let (output, output_rate, output_conc) = side(&|s| s.output_tokens());
    let both = |f: &dyn Fn(&Stats, bool) -> (f64, f64, f64)| {
        let pick = |v: &[Stats]| -> Vec<(f64, f64, f64)> {
            let mut out: Vec<_> = v.iter().map(|s| f(s, true)).collect();
            out.extend(v.iter().map(|s| f(s, false)));
            out
        };
        ByStatus {
            successful: pick(&reqs.successful),
            errored: pick(&reqs.errored),
        }
    };
    let tokens = |s: &Stats, prompt: bool| {
        if prompt {
            s.prompt_tokens()
        } else {
            s.output_tokens()
        }
    };
    let all = both(&|s, p| (s.start, s.end, tokens(s, p)));
    let values = ByStatus {
        successful: all
            .successful
            .iter()
            .map(|v| (v.2, 1.0))
            .collect::<Vec<_>>(),
        errored: all.errored.iter().map(|v| (v.2, 1.0)).collect(),
    };
    let rates = ByStatus {
        successful: all
            .successful
            .iter()
            .map(|v| (v.1, v.2))
            .collect::<Vec<_>>(),
        errored: all.errored.iter().map(|v| (v.1, v.2)).collect(),
    };
    json!({
        "input": input, "input_per_second": input_rate, "input_concurrency": input_conc,
        "output": output, "output_per_second": output_rate, "output_concurrency": output_conc,
        "total": by_status(&values, |x| Summary::from_values(x, None)),
        "total_per_second": by_status(&rates, |x| Summary::rate(x, None)),
        "total_concurrency": by_status(&all, |x| Summary::concurrency(x, None)),
    })
}

/// A modality GuideLLM has and a text workload does not use: every figure null.
fn nulls(groups: &[&str]) -> Value {
    let keys = [
        "input",
        "input_per_second",
        "input_concurrency",
        "output",
        "output_per_second",
        "output_concurrency",
        "total",
        "total_per_second",
        "total_concurrency",
    ];
    let mut m = Map::new();
    for g in groups {
        m.insert(
            (*g).into(),
            Value::Object(
                keys.iter()
                    .map(|k| ((*k).to_string(), Value::Null))
                    .collect(),
            ),
        );
    }
    Value::Object(m)
}

/// The `metrics` object of one benchmark. `schedule`: whether the load defines an
/// arrival schedule (open loop), for which GuideLLM adds the dispatch delays.
pub(super) fn metrics(reqs: &ByStatus<Stats>, w: Window, schedule: bool) -> Value {
    let inside = within(reqs, w, |s| (Some(s.start), Some(s.end)));
    let first_token = within(reqs, w, |s| (Some(s.start), s.first_token));
    let after_first = within(reqs, w, |s| (s.first_token, Some(s.end)));
    let first_output = within(reqs, w, |s| (Some(s.start), s.first_output_token));
    let r = &inside;
    let n = |v: &[Stats]| v.len();
    let (ok, err) = (n(&r.successful), n(&r.errored));
    let scheduled = |f: fn(&Stats) -> f64| if schedule { dist(r, f) } else { Value::Null };
    let root_dispatch = {
        let delays: Vec<(f64, f64)> = r
            .successful
            .iter()
            .chain(&r.errored)
            .filter(|s| s.req.call == 0)
            .map(|s| (s.dispatch_delay_s(), 1.0))
            .collect();
        if delays.is_empty() {
            Value::Null
        } else {
            Summary::from_values(&delays, None).json()
        }
    };
    json!({
        "request_totals": {"successful": ok, "incomplete": 0, "errored": err, "total": ok + err},
        "requests_per_second": rate(r, Some(w), |s| vec![(s.end, 1.0)]),
        "request_concurrency": concurrency(r, Some(w), |s| (s.start, s.end, 1.0)),
        "request_latency": dist(r, |s| s.latency_s()),
        "request_dispatch_delay": scheduled(|s| s.dispatch_delay_s()),
        "request_scheduled_latency": scheduled(|s| s.scheduled_latency_s()),
        "turn_predecessor_delay": scheduled(|_| 0.0),
        "turn_scheduling_delay": scheduled(|s| s.dispatch_delay_s()),
        "root_dispatch_delay": root_dispatch,
        "request_streaming_iterations_count": dist(r, |s| f64::from(s.token_iterations())),
        "prompt_token_count": dist(r, |s| s.prompt_tokens()),
        "output_token_count": dist(r, |s| s.output_tokens()),
        "total_token_count": dist(r, |s| s.prompt_tokens() + s.output_tokens()),
        "time_to_first_token_ms": dist(&first_token, |s| s.ttft_ms().unwrap_or(0.0)),
        "time_to_last_round_trip_ms": dist(r, |_| 0.0),
        "avg_round_trip_time_ms": dist(r, |_| 0.0),
        "time_to_first_output_token_ms": dist(&first_output, |s| s.ttfot_ms().unwrap_or(0.0)),
        "time_per_output_token_ms": by_status(
            &values(r, |s| vec![(s.tpot_ms().unwrap_or(0.0), s.output_tokens())]),
            |x| Summary::from_values(x, None),
        ),
        "inter_token_latency_ms": itl(&after_first),
        "prompt_tokens_per_second": rate(r, Some(w), |s| vec![s.prompt_tokens_timing()]),
        "output_tokens_per_second": rate(r, Some(w), |s| s.output_tokens_timings()),
        "tokens_per_second": rate(r, Some(w), |s| s.total_tokens_timings()),
        "output_tokens_per_iteration": by_status(
            &values(r, |s| s.output_tokens_timings().iter().map(|t| (t.1, 1.0)).collect()),
            |x| Summary::from_values(x, None),
        ),
        "iter_tokens_per_iteration": by_status(
            &values(r, |s| s.iter_tokens_timings().iter().map(|t| (t.1, 1.0)).collect()),
            |x| Summary::from_values(x, None),
        ),
        "text": {
            "tokens": text_tokens(r),
            "words": nulls(&["words"])["words"],
            "characters": nulls(&["characters"])["characters"],
        },
        "image": nulls(&["tokens", "images", "pixels", "bytes"]),
        "video": nulls(&["tokens", "frames", "seconds", "bytes"]),
        "audio": nulls(&["tokens", "samples", "seconds", "bytes"]),
        "tool_call": nulls(&["tokens", "mixed_tokens", "count"]),
        "turns": turns(r, &first_token, &after_first),
        "slo_attainment": null,
        "slo_determined_requests": 0,
        "request_goodput": null,
    })
}
