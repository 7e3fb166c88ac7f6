//! Price tables that routers load, made from measured reports:
//!
//! - `litellm`: entries in the format of LiteLLM's
//!   `model_prices_and_context_window.json`, one per (target, workload), keyed
//!   `infermeter/<kind>/<model>-<precision>/<workload>`;
//! - `routing`: infermeter's own table per (model, target, workload) with prices,
//!   latency, interactivity and energy at one operating point, and the success rate
//!   where the workload's requests carry checkers.
//!
//! The operating point of a (target, workload) with several load points is the one
//! with the highest output throughput among those that met their SLO (`sweep --slo`);
//! without SLO verdicts, the one with the lowest cost per million tokens of the mix.
//! Results without a cost are left out, and the reason is returned.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::report::{Api, Report, ResultEntry};

/// Export formats of `prices export`.
pub const FORMATS: &[&str] = &["litellm", "routing"];

/// One chosen operating point.
struct Point<'a> {
    report: &'a Report,
    entry: &'a ResultEntry,
}

fn group_key(e: &ResultEntry) -> (String, String, String, String) {
    (
        e.target.kind.clone(),
        e.target.model.clone(),
        e.target.precision.clone(),
        e.workload.name.clone(),
    )
}

/// Picks one operating point per (target, workload); returns them and what was
/// skipped with why.
fn operating_points(reports: &[Report]) -> (Vec<Point<'_>>, Vec<String>) {
    let mut groups: BTreeMap<_, Vec<Point<'_>>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for r in reports {
        for e in &r.results {
            let priced = e.cost.as_ref().and_then(|c| c.usd_total).is_some();
            if !priced {
                let why = e
                    .cost
                    .as_ref()
                    .and_then(|c| c.reason.clone())
                    .unwrap_or_else(|| "no cost in the report".into());
                skipped.push(format!(
                    "{} {} / {} / {}: not priced: {why}",
                    e.target.kind,
                    e.target.model,
                    e.workload.name,
                    e.load_label()
                ));
                continue;
            }
            groups.entry(group_key(e)).or_default().push(Point {
                report: r,
                entry: e,
            });
        }
    }
    let mut out = Vec::new();
    for (_, pts) in groups {
        let judged = pts.iter().any(|p| p.entry.slo.is_some());
        let best = if judged {
            pts.into_iter()
                .filter(|p| p.entry.slo.as_ref().is_some_and(|s| s.pass))
                .max_by(|a, b| {
                    a.entry
                        .throughput
                        .output_tokens_per_s
                        .total_cmp(&b.entry.throughput.output_tokens_per_s)
                })
        } else {
            pts.into_iter().min_by(|a, b| {
                let c = |p: &Point<'_>| {
                    p.entry
                        .cost
                        .as_ref()
                        .and_then(|c| c.usd_per_m_blended_workload)
                        .unwrap_or(f64::INFINITY)
                };
                c(a).total_cmp(&c(b))
            })
        };
        match best {
            Some(p) => out.push(p),
            None => skipped.push("a (target, workload) whose load points all missed their SLO has no operating point".into()),
        }
    }
    (out, skipped)
}

/// Per-token prices, USD: (uncached input, cached input when priced, output).
type PerToken = (f64, Option<f64>, f64);

/// Per-token prices of an operating point; `None` when the cost cannot be split into
/// input and output.
fn per_token(e: &ResultEntry) -> Option<PerToken> {
    let c = e.cost.as_ref()?;
    if let Some(card) = &c.rate_card {
        return Some((
            card.input_usd_per_m / 1e6,
            card.cached_input_usd_per_m.map(|x| x / 1e6),
            card.output_usd_per_m / 1e6,
        ));
    }
    let output = c.usd_per_m_output? / 1e6;
    // Local: cache hits took no step time; the measured input cost is carried by the
    // computed tokens, so a cached token is priced 0 and the measured mix costs exactly
    // what was measured.
    let hits = e
        .engine
        .as_ref()
        .is_some_and(|g| g.prompt_tokens_cached > 0);
    if hits {
        Some((c.usd_per_m_uncached_input? / 1e6, Some(0.0), output))
    } else {
        Some((c.usd_per_m_input? / 1e6, None, output))
    }
}

fn hardware_label(r: &Report, e: &ResultEntry) -> String {
    match e.cost.as_ref().and_then(|c| c.hardware.as_ref()) {
        Some(h) => format!(
            "{} x {} ({}, {}, {})",
            h.units, h.part, h.tier, h.region, h.catalog
        ),
        None => r.hardware_label(),
    }
}

/// The LiteLLM key of a result.
pub fn litellm_key(e: &ResultEntry) -> String {
    if e.target.precision_stated() {
        format!(
            "infermeter/{}/{}-{}/{}",
            e.target.kind, e.target.model, e.target.precision, e.workload.name
        )
    } else {
        format!(
            "infermeter/{}/{}/{}",
            e.target.kind, e.target.model, e.workload.name
        )
    }
}

/// Operating points with their per-token prices (see [`per_token`]); points whose cost
/// cannot be split into input and output are skipped, and said so.
fn priced_points(reports: &[Report]) -> (Vec<(Point<'_>, PerToken)>, Vec<String>) {
    let (points, mut skipped) = operating_points(reports);
    let mut out = Vec::new();
    for p in points {
        match per_token(p.entry) {
            Some(prices) => out.push((p, prices)),
            None => skipped.push(format!(
                "{}: the cost has no input/output split",
                litellm_key(p.entry)
            )),
        }
    }
    (out, skipped)
}

/// LiteLLM `model_prices_and_context_window.json` entries, and what was skipped.
pub fn litellm(reports: &[Report]) -> (Value, Vec<String>) {
    let (points, skipped) = priced_points(reports);
    let mut out = serde_json::Map::new();
    for (p, (input, cached, output)) in points {
        let e = p.entry;
        // LiteLLM names the provider by its API; local engines are served (and
        // routed to) through an OpenAI-compatible endpoint.
        let provider = match e.target.api {
            Some(Api::Messages) => "anthropic",
            _ => "openai",
        };
        let mode = match e.target.api {
            Some(Api::Completions) => "completion",
            _ => "chat",
        };
        let mut v = json!({
            "input_cost_per_token": input,
            "output_cost_per_token": output,
            "litellm_provider": provider,
            "mode": mode,
            "supports_prompt_caching": cached.is_some(),
            "source": format!("infermeter {} run {}", p.report.tool.version, p.report.run.id),
            "metadata": {
                "run_id": p.report.run.id,
                "run_started_at": p.report.run.started_at,
                "tool_version": p.report.tool.version,
                "tool_git_sha": p.report.tool.git_sha,
                "hardware": hardware_label(p.report, e),
                "target_kind": e.target.kind,
                "model": e.target.model,
                "precision": e.target.precision,
                "workload": e.workload.name,
                "workload_spec_sha256": e.workload.spec_sha256,
                "load_point": e.load_label(),
                "slo": e.slo.as_ref().map(|s| json!({"objectives": s.objectives, "pass": s.pass, "goodput_rps": s.goodput_rps})),
                "cost_source": e.cost.as_ref().and_then(|c| c.source),
                "usd_per_m_blended_workload": e.cost.as_ref().and_then(|c| c.usd_per_m_blended_workload),
                "ttft_p50_ms": e.latency.ttft_ms.p50,
                "ttft_p95_ms": e.latency.ttft_ms.p95,
                "output_tokens_per_s_per_user": e.throughput.output_tokens_per_s_per_user,
            },
        });
        if let Some(c) = cached {
            v["cache_read_input_token_cost"] = json!(c);
        }
        // Workloads with checkers: how often the answer was right, beside the price.
        if let Some(x) = &e.verification {
            v["metadata"]["success_rate"] = json!(x.success_rate);
            v["metadata"]["success_rate_ci95"] = json!(x.success_rate_ci95);
            v["metadata"]["tasks_checked"] = json!(x.tasks_checked);
            v["metadata"]["usd_per_verified_task"] =
                json!(e.cost.as_ref().and_then(|c| c.usd_per_verified_task));
        }
        if let Some(ctx) = e.target.context_limit_tokens {
            v["max_input_tokens"] = json!(ctx);
            v["max_output_tokens"] = json!(ctx);
            v["max_tokens"] = json!(ctx);
        }
        out.insert(litellm_key(e), v);
    }
    (Value::Object(out), skipped)
}

/// One row of the routing table.
#[derive(Clone, Debug, Serialize)]
pub struct Route {
    /// Model name.
    pub model: String,
    /// Target kind.
    pub target: String,
    /// Weight precision.
    pub precision: String,
    /// Workload name.
    pub workload: String,
    /// The operating point.
    pub load_point: String,
    /// Whether it met its SLO; `null` when none was judged.
    pub slo_met: Option<bool>,
    /// The SLO's objectives, ms.
    pub slo: Option<BTreeMap<String, f64>>,
    /// USD per million uncached input tokens.
    pub usd_per_m_input: f64,
    /// USD per million cached input tokens, when priced.
    pub usd_per_m_cached_input: Option<f64>,
    /// USD per million output tokens.
    pub usd_per_m_output: f64,
    /// USD per million tokens of the workload's own mix.
    pub usd_per_m_blended_workload: Option<f64>,
    /// USD per task (multi-call workloads).
    pub usd_per_task: Option<f64>,
    /// Verified tasks per checked task, 0-1 (workloads with checkers). Since 1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    /// Its Wilson 95% interval, 0-1. Since 1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_ci95: Option<[f64; 2]>,
    /// Tasks checked. Since 1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_checked: Option<u64>,
    /// USD per verified task; absent when none was verified. Since 1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_verified_task: Option<f64>,
    /// Median TTFT, ms.
    pub ttft_p50_ms: Option<f64>,
    /// p95 TTFT, ms.
    pub ttft_p95_ms: Option<f64>,
    /// Interactivity: 1000 / median TPOT.
    pub output_tokens_per_s_per_user: Option<f64>,
    /// Output tokens per second at that point.
    pub output_tokens_per_s: f64,
    /// Output tokens per joule, when energy was measured.
    pub tokens_per_j_output: Option<f64>,
    /// Where it ran and how it was priced.
    pub hardware: String,
    /// The run it was measured in.
    pub run_id: String,
}

/// The routing table, and what was skipped.
pub fn routing(reports: &[Report]) -> (Value, Vec<String>) {
    let (points, skipped) = priced_points(reports);
    let mut routes = Vec::new();
    for (p, (input, cached, output)) in points {
        let e = p.entry;
        let c = e.cost.as_ref();
        routes.push(Route {
            model: e.target.model.clone(),
            target: e.target.kind.clone(),
            precision: e.target.precision.clone(),
            workload: e.workload.name.clone(),
            load_point: e.load_label(),
            slo_met: e.slo.as_ref().map(|s| s.pass),
            slo: e.slo.as_ref().map(|s| s.objectives.clone()),
            usd_per_m_input: input * 1e6,
            usd_per_m_cached_input: cached.map(|x| x * 1e6),
            usd_per_m_output: output * 1e6,
            usd_per_m_blended_workload: c.and_then(|c| c.usd_per_m_blended_workload),
            usd_per_task: c.and_then(|c| c.usd_per_task),
            success_rate: e.verification.as_ref().map(|v| v.success_rate),
            success_rate_ci95: e.verification.as_ref().map(|v| v.success_rate_ci95),
            tasks_checked: e.verification.as_ref().map(|v| v.tasks_checked),
            usd_per_verified_task: c.and_then(|c| c.usd_per_verified_task),
            ttft_p50_ms: e.latency.ttft_ms.p50,
            ttft_p95_ms: e.latency.ttft_ms.p95,
            output_tokens_per_s_per_user: e.throughput.output_tokens_per_s_per_user,
            output_tokens_per_s: e.throughput.output_tokens_per_s,
            tokens_per_j_output: e.energy.as_ref().and_then(|x| x.tokens_per_j_output),
            hardware: hardware_label(p.report, e),
            run_id: p.report.run.id.clone(),
        });
    }
    let v = json!({
        "schema": "infermeter.routing",
        "schema_version": "1.1",
        "routes": routes,
    });
    (v, skipped)
}
