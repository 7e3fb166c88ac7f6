//! A report as GuideLLM 0.8.1's `benchmarks.json` (`GenerativeBenchmarksReport`,
//! metadata version 2): one benchmark per load point, each with GuideLLM's metrics
//! computed from the load point's requests as GuideLLM computes them ([`metrics`],
//! [`stats`]) and the requests themselves ([`request`]), so that GuideLLM's report
//! reader, its `guidellm benchmark from-file` re-exports and dashboards built on them
//! read infermeter's runs.
//!
//! A report holds summaries, not requests: the export reads the run's
//! `requests.jsonl` beside it (the harness passes its lines as [`PeerRequest`]s).
//! Loads map to GuideLLM's strategies: closed loop at c sessions to `concurrent`
//! with c streams, everything at once to `throughput`, constant and Poisson arrivals
//! to `constant` and `poisson` at the session rate, a replayed trace to `trace`;
//! gamma arrivals have no GuideLLM strategy and are refused. GuideLLM's scheduler
//! internals (queue and worker hops) infermeter does not have: their averages are
//! -1, GuideLLM's own value for a mean it could not take.

mod metrics;
mod request;
mod stats;

use serde_json::{Value, json};

use self::metrics::Window;
use self::request::Stats;
use self::stats::ByStatus;
use super::PeerRequest;
use crate::error::ResultsError;
use crate::report::{Api, ArrivalPattern, Report, ResultEntry};

/// The GuideLLM release whose report this writes.
pub(super) const GUIDELLM_VERSION: &str = "0.8.1";

/// GuideLLM's strategy and profile of one load point.
fn strategy(e: &ResultEntry) -> Result<(Value, Value), ResultsError> {
    let l = &e.load;
    let missing = |what: &str| {
        ResultsError::Export(format!(
            "load point `{}` has a {} load without its {what}",
            e.load_label(),
            l.pattern.as_str()
        ))
    };
    Ok(match l.pattern {
        ArrivalPattern::Closed => {
            let c = l.concurrency.ok_or_else(|| missing("concurrency"))?;
            (
                json!({"type_": "concurrent", "streams": c, "worker_count": null, "max_concurrency": c, "rampup_duration": 0.0}),
                json!({"kind": "concurrent", "streams": [c]}),
            )
        }
        ArrivalPattern::All => (
            json!({"type_": "throughput", "max_concurrency": null, "rampup_duration": 0.0}),
            json!({"kind": "throughput"}),
        ),
        ArrivalPattern::Constant | ArrivalPattern::Poisson => {
            let r = l.rate_rps.ok_or_else(|| missing("rate"))?;
            let kind = l.pattern.as_str();
            (
                json!({"type_": kind, "rate": r, "max_concurrency": null, "rampup_duration": 0.0}),
                json!({"kind": kind, "rate": [r]}),
            )
        }
        ArrivalPattern::Trace => (
            json!({"type_": "trace", "time_scale": 1.0}),
            json!({"kind": "trace"}),
        ),
        ArrivalPattern::Gamma => {
            return Err(ResultsError::Export(format!(
                "load point `{}`: GuideLLM has no strategy for gamma arrivals (its constant and poisson ones have no burstiness)",
                e.load_label()
            )));
        }
    })
}

/// GuideLLM's backend of a target: an OpenAI-compatible server by its URL (without
/// credentials or `/v1`). GuideLLM's run configuration knows no backend besides HTTP,
/// websocket and vLLM's Python engine: infermeter's own engines are named by an
/// `infermeter:KIND` target (`strict`), or by their kind where GuideLLM keeps the
/// backend as a free-form record (a benchmark's configuration).
fn backend(e: &ResultEntry, strict: bool) -> Value {
    let t = &e.target;
    match (t.settings.get("base_url"), t.api) {
        (Some(url), Some(api @ (Api::Chat | Api::Completions))) => {
            let url = super::aiperf::without_credentials(url);
            let root = url.trim_end_matches('/').trim_end_matches("/v1");
            let route = if api == Api::Chat {
                "/v1/chat/completions"
            } else {
                "/v1/completions"
            };
            json!({"kind": "openai_http", "target": root, "model": t.model, "request_format": route, "stream": t.streamed})
        }
        _ if strict => {
            json!({"kind": "openai_http", "target": format!("infermeter:{}", t.kind), "model": t.model, "stream": t.streamed})
        }
        _ => {
            json!({"kind": format!("infermeter_{}", t.kind.replace('-', "_")), "target": t.label(), "model": t.model, "stream": t.streamed})
        }
    }
}

/// GuideLLM's data configuration of a load point: infermeter's workloads are
/// synthetic text of set token counts, named here by the mean prompt tokens and the
/// mean output tokens asked for, over the point's requests (the workload's name is
/// among the run's labels). GuideLLM requires both to be at least 1.
fn data(requests: &[PeerRequest]) -> Value {
    let n = requests.len().max(1) as f64;
    let mean = |f: fn(&PeerRequest) -> u32| {
        let sum: u64 = requests.iter().map(|r| u64::from(f(r))).sum();
        ((sum as f64 / n).round() as u64).max(1)
    };
    json!({
        "kind": "synthetic_text",
        "prompt_tokens": mean(|r| r.input_tokens),
        "output_tokens": mean(|r| r.max_output_tokens),
    })
}

/// Unix seconds of an RFC 3339 time.
fn unix_s(at: &str, what: &str) -> Result<f64, ResultsError> {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| ResultsError::Export(format!("{what} `{at}`: {e}")))?;
    Ok(t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6)
}

/// The mean of `f` over `v`, or -1 (GuideLLM's "could not take it") when `v` is
/// empty or the mean is 0, as GuideLLM's `mean or -1.0` gives.
fn mean_or_minus_one(v: &[Stats], f: impl Fn(&Stats) -> f64) -> f64 {
    if v.is_empty() {
        return -1.0;
    }
    let m = stats::np_sum(&v.iter().map(f).collect::<Vec<_>>()) / v.len() as f64;
    if m == 0.0 { -1.0 } else { m }
}

/// One benchmark: a load point and its requests.
fn benchmark(
    report: &Report,
    index: usize,
    e: &ResultEntry,
    requests: &[PeerRequest],
) -> Result<Value, ResultsError> {
    let label = e.load_label();
    let start = e.load.window_start.as_deref().ok_or_else(|| {
        ResultsError::Export(format!(
            "load point `{label}` has no measured window (reports before schema 1.3): GuideLLM's timings are clock times"
        ))
    })?;
    let t0 = unix_s(start, "window_start")?;
    let stats: Vec<Stats> = requests.iter().map(|r| Stats::new(r, t0)).collect();
    let last_end = stats.iter().map(|s| s.end).fold(t0, f64::max);
    let w = Window {
        start_s: t0,
        end_s: last_end.max(t0 + e.load.measured_s),
    };
    let first_start = stats.iter().map(|s| s.start).reduce(f64::min).unwrap_or(t0);
    let targeted_delay_avg = mean_or_minus_one(&stats, |s| s.dispatch_delay_s());
    let time_avg = mean_or_minus_one(&stats, |s| s.latency_s());
    let (errored, successful): (Vec<Stats>, Vec<Stats>) =
        stats.into_iter().partition(|s| s.req.error.is_some());
    let reqs = ByStatus {
        successful,
        errored,
    };
    let (strategy, profile) = strategy(e)?;
    let open_loop = matches!(
        e.load.pattern,
        ArrivalPattern::Constant | ArrivalPattern::Poisson | ArrivalPattern::Trace
    );
    let (ok, failed) = (reqs.successful.len(), reqs.errored.len());
    let constraints = match e.load.max_requests {
        Some(n) => {
            json!({"max_requests": {"type_": "max_requests", "args": {"kind": "max_requests", "count": n}}})
        }
        None => json!({}),
    };
    let none = json!({"percent": null, "value": null, "mode": "prefer_duration"});
    Ok(json!({
        "type_": "generative_benchmark",
        "config": {
            "id_": format!("{}-{index}", report.run.id),
            "run_id": report.run.id,
            "run_index": index,
            "strategy": strategy,
            "constraints": constraints,
            "sample_size": null,
            "warmup": none,
            "cooldown": none,
            "prefer_response_metrics": true,
            "slo": null,
            "confidence": null,
            "warnings": [],
            "profile": profile,
            "requests": {"kind": "infermeter_workload", "workload": e.workload.name, "seed": e.workload.seed},
            "backend": backend(e, false),
            "environment": {"type": "infermeter", "shard": e.workload.shard.as_ref().map(|s| format!("{}/{}", s.index, s.count))},
        },
        "scheduler_state": {},
        "scheduler_metrics": {
            "start_time": t0,
            "request_start_time": first_start,
            "measure_start_time": w.start_s,
            "measure_end_time": w.end_s,
            "request_end_time": last_end,
            "end_time": w.end_s,
            "requests_made": {"successful": ok, "incomplete": 0, "errored": failed, "total": ok + failed},
            "queued_time_avg": -1.0,
            "resolve_start_delay_avg": -1.0,
            "resolve_targeted_start_delay_avg": -1.0,
            "request_start_delay_avg": -1.0,
            "request_targeted_start_delay_avg": targeted_delay_avg,
            "request_time_avg": time_avg,
            "resolve_end_delay_avg": -1.0,
            "resolve_time_avg": -1.0,
            "finalized_delay_avg": -1.0,
            "processed_delay_avg": -1.0,
            "dataset_incomplete": false,
            "strategy_type": strategy_type(e),
        },
        "metrics": metrics::metrics(&reqs, w, open_loop),
        "requests": {
            "successful": reqs.successful.iter().map(|s| s.json(t0)).collect::<Vec<_>>(),
            "errored": reqs.errored.iter().map(|s| s.json(t0)).collect::<Vec<_>>(),
            "incomplete": [],
            "total": null,
        },
        "warnings": [],
        "start_time": w.start_s,
        "end_time": w.end_s,
        "duration": w.end_s - w.start_s,
        "warmup_duration": 0.0,
        "cooldown_duration": 0.0,
        "infermeter": super::extras::extras(report, e),
    }))
}

/// GuideLLM's strategy name of a load point (gamma has none and is refused before).
fn strategy_type(e: &ResultEntry) -> &'static str {
    match e.load.pattern {
        ArrivalPattern::Closed => "concurrent",
        ArrivalPattern::All => "throughput",
        ArrivalPattern::Constant => "constant",
        ArrivalPattern::Poisson | ArrivalPattern::Gamma => "poisson",
        ArrivalPattern::Trace => "trace",
    }
}

/// The run's profile: the load points' one arrival pattern with each point's
/// streams or rate.
fn run_profile(report: &Report) -> Result<Value, ResultsError> {
    let first = &report.results[0];
    if let Some(other) = report
        .results
        .iter()
        .find(|e| e.load.pattern != first.load.pattern)
    {
        return Err(ResultsError::Export(format!(
            "GuideLLM's report has one profile, and this report's load points arrive {} and {}: export them one report at a time",
            first.load.pattern.as_str(),
            other.load.pattern.as_str()
        )));
    }
    let (_, mut profile) = strategy(first)?;
    let (key, values): (&str, Vec<Value>) = match first.load.pattern {
        ArrivalPattern::Closed => (
            "streams",
            report
                .results
                .iter()
                .map(|e| json!(e.load.concurrency))
                .collect(),
        ),
        ArrivalPattern::Constant | ArrivalPattern::Poisson => (
            "rate",
            report
                .results
                .iter()
                .map(|e| json!(e.load.rate_rps))
                .collect(),
        ),
        _ => return Ok(profile),
    };
    profile[key] = Value::Array(values);
    Ok(profile)
}

/// The report as GuideLLM's `benchmarks.json`; `requests[i]` are load point i's.
pub(super) fn export(
    report: &Report,
    requests: &[Vec<PeerRequest>],
) -> Result<Value, ResultsError> {
    if requests.len() != report.results.len() {
        return Err(ResultsError::Export(format!(
            "the report has {} load points but {} sets of requests were given",
            report.results.len(),
            requests.len()
        )));
    }
    let benchmarks = report
        .results
        .iter()
        .zip(requests)
        .enumerate()
        .map(|(i, (e, r))| benchmark(report, i, e, r))
        .collect::<Result<Vec<_>, _>>()?;
    let first = &report.results[0];
    let h = &report.hardware;
    Ok(json!({
        "metadata": {
            "version": 2,
            "guidellm_version": GUIDELLM_VERSION,
            "python_version": "",
            "platform": format!("{} {} (written by infermeter {})", h.os, h.arch, report.tool.version),
        },
        "config": {
            "metadata": {"labels": {"infermeter_run_id": report.run.id, "infermeter_workload": first.workload.name}},
            "spec": {
                "backend": backend(first, true),
                "profile": run_profile(report)?,
                "data": [data(&requests[0])],
            },
            "benchmarks": vec![Value::Null; benchmarks.len()],
        },
        "benchmarks": benchmarks,
        "conclusions": [],
    }))
}
