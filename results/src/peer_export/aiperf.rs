//! A load point as AIPerf 0.13's `profile_export_aiperf.json` (its `JsonExportData`,
//! schema 1.4), the file its sweep and plot commands read.
//!
//! AIPerf's tags and units: `request_latency` (infermeter's `e2e_ms`),
//! `time_to_first_token` (`ttft_ms`, streamed runs only), `inter_token_latency` (per
//! request (latency - TTFT) / (tokens - 1): infermeter's `tpot_ms`),
//! `inter_chunk_latency` (`chunk_gap_ms`), all in `ms` with AIPerf's statistics (avg,
//! min, max, p1-p99, population std, count, sum); counts, throughputs, token totals and
//! `benchmark_duration` (`sec`) as `{unit, avg}`, as AIPerf writes derived metrics. The
//! mean sequence lengths are written only when no request failed (infermeter's token
//! totals count failed requests' partial output). Left out because a report does not hold
//! them: per-request distributions of sequence lengths and of per-user throughput.
//! `input_config` (strict in AIPerf) is written only for a remote target, whose URL is
//! known; `infermeter` holds what AIPerf does not define.

use serde_json::{Map, Value, json};

use super::dist::Dist;
use crate::error::ResultsError;
use crate::histogram::LatencySummary;
use crate::report::{Api, ArrivalPattern, Report, ResultEntry, RunStatus};

/// The schema version of AIPerf's export that this writes.
const SCHEMA_VERSION: &str = "1.4";

/// AIPerf's percentiles of a record metric.
const PERCENTILES: &[(f64, &str)] = &[
    (1.0, "p1"),
    (5.0, "p5"),
    (10.0, "p10"),
    (25.0, "p25"),
    (50.0, "p50"),
    (75.0, "p75"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
];

/// A record metric in milliseconds; `None` when nothing was recorded.
fn record_ms(summary: &LatencySummary, field: &str) -> Result<Option<Value>, ResultsError> {
    let Some(d) = Dist::of(summary, field)? else {
        return Ok(None);
    };
    let mut m = Map::new();
    m.insert("unit".into(), json!("ms"));
    m.insert("avg".into(), json!(d.mean()));
    for (p, key) in PERCENTILES {
        m.insert((*key).into(), json!(d.percentile(*p)));
    }
    m.insert("min".into(), json!(d.min()));
    m.insert("max".into(), json!(d.max()));
    m.insert("std".into(), json!(d.std()));
    m.insert("count".into(), json!(d.count()));
    m.insert("sum".into(), json!(d.sum()));
    Ok(Some(Value::Object(m)))
}

/// A derived or aggregate metric: its unit and value.
fn derived(unit: &str, avg: f64) -> Value {
    json!({"unit": unit, "avg": avg})
}

/// AIPerf's phase of the load point, when its arrival pattern has one.
fn phase(e: &ResultEntry) -> Option<Value> {
    let (kind, field, value) = match (e.load.pattern, e.load.rate_rps, e.load.concurrency) {
        (ArrivalPattern::Closed, _, Some(c)) => ("concurrency", "concurrency", json!(c)),
        (ArrivalPattern::Poisson, Some(r), _) => ("poisson", "rate", json!(r)),
        (ArrivalPattern::Constant, Some(r), _) => ("constant", "rate", json!(r)),
        (ArrivalPattern::Gamma, Some(r), _) => ("gamma", "rate", json!(r)),
        _ => return None,
    };
    Some(json!({"name": "profiling", "type": kind, field: value, "requests": e.requests.sent}))
}

/// The input configuration, for a remote target with a known URL and phase.
fn input_config(e: &ResultEntry) -> Option<Value> {
    let url = without_credentials(e.target.settings.get("base_url")?);
    let kind = match e.target.api? {
        Api::Chat => "chat",
        Api::Completions => "completions",
        Api::Messages => return None,
    };
    Some(json!({
        "models": {"items": [{"name": e.target.model}]},
        "endpoint": {"urls": [url], "type": kind, "streaming": e.target.streamed},
        "datasets": [{"name": e.workload.name}],
        "phases": [phase(e)?],
    }))
}

/// `url` without a user, password, query or fragment, which can carry secrets.
pub(super) fn without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let sep = if path.is_empty() && !rest.contains('/') {
                ""
            } else {
                "/"
            };
            format!("{scheme}://{host}{sep}{path}")
        }
        None => url.to_string(),
    }
}

/// The export of one load point.
pub(super) fn export(report: &Report, e: &ResultEntry) -> Result<Value, ResultsError> {
    let mut out = Map::new();
    out.insert("schema_version".into(), json!(SCHEMA_VERSION));
    out.insert("benchmark_id".into(), json!(report.run.id));
    let l = &e.latency;
    let mut records = vec![
        ("request_latency", record_ms(&l.e2e_ms, "e2e_ms")?),
        ("inter_token_latency", record_ms(&l.tpot_ms, "tpot_ms")?),
        (
            "inter_chunk_latency",
            record_ms(&l.chunk_gap_ms, "chunk_gap_ms")?,
        ),
    ];
    if e.target.streamed {
        records.push(("time_to_first_token", record_ms(&l.ttft_ms, "ttft_ms")?));
    }
    for (tag, v) in records {
        if let Some(v) = v {
            out.insert(tag.into(), v);
        }
    }
    let r = &e.requests;
    let t = &e.throughput;
    let mut put = |tag: &str, v: Value| {
        out.insert(tag.into(), v);
    };
    put("request_count", derived("requests", r.ok as f64));
    put("error_request_count", derived("requests", r.failed as f64));
    put(
        "request_throughput",
        derived("requests/sec", t.requests_per_s),
    );
    put(
        "output_token_throughput",
        derived("tokens/sec", t.output_tokens_per_s),
    );
    put(
        "total_token_throughput",
        derived("tokens/sec", t.input_tokens_per_s + t.output_tokens_per_s),
    );
    put("benchmark_duration", derived("sec", e.load.measured_s));
    put("total_isl", derived("tokens", e.tokens.input as f64));
    put("total_osl", derived("tokens", e.tokens.output as f64));
    if r.failed == 0 && r.ok > 0 {
        let n = r.ok as f64;
        put(
            "input_sequence_length",
            derived("tokens", e.tokens.input as f64 / n),
        );
        put(
            "output_sequence_length",
            derived("tokens", e.tokens.output as f64 / n),
        );
    }
    if let Some(s) = &e.slo {
        put("goodput", derived("requests/sec", s.goodput_rps));
        put(
            "good_request_count",
            derived("requests", s.requests_meeting as f64),
        );
    }
    if let Some(c) = input_config(e) {
        put("input_config", c);
    }
    put(
        "was_cancelled",
        json!(report.run.status == RunStatus::Interrupted),
    );
    put(
        "is_complete",
        json!(report.run.status == RunStatus::Complete),
    );
    put(
        "start_time",
        json!(
            e.load
                .window_start
                .as_ref()
                .unwrap_or(&report.run.started_at)
        ),
    );
    put(
        "end_time",
        json!(
            e.load
                .window_end
                .as_ref()
                .unwrap_or(&report.run.finished_at)
        ),
    );
    put("infermeter", super::extras::extras(report, e));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_credentials_and_queries() {
        let f = super::without_credentials;
        assert_eq!(f("http://127.0.0.1:8080/v1"), "http://127.0.0.1:8080/v1");
        assert_eq!(f("https://user:tok@host/v1?key=s#x"), "https://host/v1");
        assert_eq!(f("https://host"), "https://host");
        assert_eq!(f("https://a@b@host:1/"), "https://host:1/");
    }
}
