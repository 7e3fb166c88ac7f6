//! A load point as the JSON `vllm bench serve --save-result` writes (vLLM 0.32 and 0.33,
//! `vllm/benchmarks/serve.py`), with the `e2el` figures `vllm bench sweep` reads.
//!
//! vLLM's names and units: times in `*_ms` keys are milliseconds, `duration` seconds,
//! throughputs per second. Its `itl` is the gap between chunks (infermeter's
//! `chunk_gap_ms`), its `tpot` is per request (latency - TTFT) / (tokens - 1)
//! (infermeter's `tpot_ms`), its `e2el` infermeter's `e2e_ms`. Percentiles are written
//! at 90, 95, 99 and 99.9 (as `--metric-percentiles 90,95,99,99.9` would). Left null
//! because a report does not hold them: the per-request lists (`latencies`,
//! `queue_times`), `max_output_tokens_per_s`, `max_concurrent_requests`, and the TTFT
//! of a run without streaming; where vLLM writes 0.0 for an empty figure, this writes
//! null.

use serde_json::{Map, Value, json};

use super::dist::Dist;
use crate::error::ResultsError;
use crate::histogram::LatencySummary;
use crate::report::{Api, ArrivalPattern, Report, ResultEntry};

/// The percentiles written for every metric, and their key spelling in vLLM
/// (`str(int(p))` for whole numbers).
const PERCENTILES: &[(f64, &str)] = &[(90.0, "90"), (95.0, "95"), (99.0, "99"), (99.9, "99.9")];

/// vLLM's `backend` for a target: the API it speaks, or the local engine's kind.
fn backend(e: &ResultEntry) -> String {
    match e.target.api {
        Some(Api::Completions) => "openai".into(),
        Some(Api::Chat) => "openai-chat".into(),
        Some(Api::Messages) => "anthropic-messages".into(),
        None => format!("infermeter-{}", e.target.kind),
    }
}

/// `mean_M_ms`, `median_M_ms`, `std_M_ms` and `pP_M_ms` of one distribution.
fn metric(
    out: &mut Map<String, Value>,
    name: &str,
    summary: &LatencySummary,
    field: &str,
) -> Result<(), ResultsError> {
    let d = Dist::of(summary, field)?;
    let v = |f: &dyn Fn(&Dist) -> f64| d.as_ref().map_or(Value::Null, |d| json!(f(d)));
    out.insert(format!("mean_{name}_ms"), v(&|d| d.mean()));
    out.insert(format!("median_{name}_ms"), v(&|d| d.percentile(50.0)));
    out.insert(format!("std_{name}_ms"), v(&|d| d.std()));
    for (p, key) in PERCENTILES {
        out.insert(format!("p{key}_{name}_ms"), v(&|d| d.percentile(*p)));
    }
    Ok(())
}

/// The result file of one load point.
pub(super) fn result(report: &Report, e: &ResultEntry) -> Result<Value, ResultsError> {
    let date = chrono::DateTime::parse_from_rfc3339(&report.run.started_at)
        .map(|t| t.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|_| report.run.started_at.clone());
    let backend = backend(e);
    let burstiness = match e.load.pattern {
        ArrivalPattern::Poisson => Some(1.0),
        ArrivalPattern::Gamma => e.load.burstiness,
        _ => None,
    };
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("date", json!(date));
    put("endpoint_type", json!(backend));
    put("backend", json!(backend));
    put("label", json!(e.target.label()));
    put("model_id", json!(e.target.model));
    // The tokenizer that counted tokens, when one did (not the server's usage, not
    // one token per chunk).
    let tokenizer = e
        .tokens
        .provenance
        .as_ref()
        .filter(|p| p.requests_without_usage > 0 && p.tokenizer != "none");
    put(
        "tokenizer_id",
        json!(tokenizer.map(|p| p.tokenizer.clone())),
    );
    put("num_prompts", json!(e.requests.sent));
    put(
        "request_rate",
        e.load.rate_rps.map_or(json!("inf"), |r| json!(r)),
    );
    put("burstiness", json!(burstiness));
    put("max_concurrency", json!(e.load.concurrency));
    put("duration", json!(e.load.measured_s));
    put("completed", json!(e.requests.ok));
    put("failed", json!(e.requests.failed));
    put("total_input_tokens", json!(e.tokens.input));
    put("total_output_tokens", json!(e.tokens.output));
    put("request_throughput", json!(e.throughput.requests_per_s));
    put(
        "request_goodput",
        json!(e.slo.as_ref().map(|s| s.goodput_rps)),
    );
    put("output_throughput", json!(e.throughput.output_tokens_per_s));
    put(
        "total_token_throughput",
        json!(e.throughput.input_tokens_per_s + e.throughput.output_tokens_per_s),
    );
    put("latencies", Value::Null);
    put("queue_times", Value::Null);
    put("max_output_tokens_per_s", Value::Null);
    put("max_concurrent_requests", Value::Null);
    let l = &e.latency;
    // Without streaming, infermeter's TTFT is the whole response's arrival: not vLLM's.
    if e.target.streamed {
        metric(&mut out, "ttft", &l.ttft_ms, "ttft_ms")?;
    } else {
        let none = crate::histogram::LatencyHistogram::new().summary();
        metric(&mut out, "ttft", &none, "ttft_ms")?;
    }
    metric(&mut out, "tpot", &l.tpot_ms, "tpot_ms")?;
    metric(&mut out, "itl", &l.chunk_gap_ms, "chunk_gap_ms")?;
    metric(&mut out, "e2el", &l.e2e_ms, "e2e_ms")?;
    out.insert("infermeter".into(), super::extras::extras(report, e));
    Ok(Value::Object(out))
}
