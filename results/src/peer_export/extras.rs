//! What only infermeter has, kept beside a peer's fields in an `infermeter` object: the
//! run, workload and target, and the figures the peers do not define.

use serde_json::{Value, json};

use crate::histogram::LatencySummary;
use crate::report::{Report, ResultEntry};

/// What only infermeter has, kept beside a peer's fields: the run and the figures the
/// peer does not define (per-token ITL, schedule lag, cost, energy).
pub(super) fn extras(report: &Report, e: &ResultEntry) -> Value {
    let summary = |s: &LatencySummary| json!({"count": s.count, "mean": s.mean, "p50": s.p50, "p90": s.p90, "p99": s.p99});
    json!({
        "schema": report.schema_version,
        "tool_version": report.tool.version,
        "git_sha": report.tool.git_sha,
        "run_id": report.run.id,
        "run_status": report.run.status.as_str(),
        "workload": e.workload.name,
        "workload_sha256": e.workload.spec_sha256,
        "target": e.target.label(),
        "load": e.load_label(),
        "itl_ms": summary(&e.latency.itl_ms),
        "queue_ms": summary(&e.latency.queue_ms),
        "usd_per_m_tokens_workload_mix": e.cost.as_ref().and_then(|c| c.usd_per_m_blended_workload),
        "usd_per_request": e.cost.as_ref().and_then(|c| c.usd_per_request),
        "output_tokens_per_j": e.energy.as_ref().and_then(|x| x.tokens_per_j_output),
    })
}
