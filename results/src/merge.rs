//! Exact merging of reports: shards of one run, or the same workload run against the
//! same target on several machines. Counts are summed, HDR histograms are added (so
//! merged percentiles are the ones one machine would have measured from all the
//! requests), and throughput is taken over the union of the measured windows.
//!
//! Results are matched by (target kind, model, precision, workload name, workload
//! spec digest, load point). Every input must hold the same set of results; anything
//! else is refused with the field that differs.

use std::collections::BTreeMap;

use crate::cost::CostBasis;
use crate::derive::{TaskSums, ThroughputCounts, throughput};
use crate::histogram::{LatencyHistogram, LatencySummary};
use crate::report::{
    ColdStartStats, CostStats, DeviceLimits, EnergyStats, EngineStats, Latency, Report,
    ResultEntry, RooflineStats, RunStatus, ShardRef, TaskStats, TokenCounts, TokenProvenance,
    TokenSource,
};

/// Why reports cannot be merged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// Merges `reports` into one; `command` is recorded as the merged report's command.
/// Shards must form complete sets (each of 1/N .. N/N once).
pub fn merge(reports: &[Report], command: Vec<String>) -> Result<Report, MergeError> {
    merge_with(reports, command, false)
}

/// [`merge`], where `allow_partial_shards` accepts a shard set with shards missing (a
/// lone shard included, which [`merge`] refuses): the merged report is `interrupted`,
/// and each result names the shards it holds and lacks, whose requests it does not count.
pub fn merge_with(
    reports: &[Report],
    command: Vec<String>,
    allow_partial_shards: bool,
) -> Result<Report, MergeError> {
    let Some(first) = reports.first() else {
        return Err(MergeError("nothing to merge".into()));
    };
    // One report is its own merge, unless it is a lone shard of several.
    let whole = |e: &ResultEntry| e.workload.shard.is_none_or(|s| s.count == 1);
    if reports.len() == 1 && !allow_partial_shards && first.results.iter().all(whole) {
        return Ok(first.clone());
    }
    let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
    for (i, r) in reports.iter().enumerate() {
        if major(&r.schema_version) != major(&first.schema_version) {
            return Err(MergeError(format!(
                "report {} has schema {} and report 1 has {}: major versions differ",
                i + 1,
                r.schema_version,
                first.schema_version
            )));
        }
        let keys: Vec<String> = r.results.iter().map(ResultEntry::result_key).collect();
        let first_keys: Vec<String> = first.results.iter().map(ResultEntry::result_key).collect();
        if let Some(k) = keys.iter().find(|k| !first_keys.contains(k)) {
            return Err(MergeError(format!(
                "report {} has a result report 1 lacks: {k} (merge needs the same workload, target and load point in every report)",
                i + 1
            )));
        }
        if let Some(k) = first_keys.iter().find(|k| !keys.contains(k)) {
            return Err(MergeError(format!(
                "report {} lacks a result report 1 has: {k} (merge needs the same workload, target and load point in every report)",
                i + 1
            )));
        }
    }
    let mut results = Vec::new();
    for e in &first.results {
        let key = e.result_key();
        let group: Vec<&ResultEntry> = reports
            .iter()
            .filter_map(|r| r.results.iter().find(|x| x.result_key() == key))
            .collect();
        results.push(merge_entries(&group, allow_partial_shards)?);
    }
    let partial = results
        .iter()
        .any(|e| e.notes.iter().any(|n| n.starts_with(PARTIAL_NOTE)));
    let mut out = first.clone();
    out.run.id = format!("merge-of-{}", reports.len());
    out.run.started_at = reports
        .iter()
        .map(|r| r.run.started_at.clone())
        .min()
        .unwrap_or_default();
    out.run.finished_at = reports
        .iter()
        .map(|r| r.run.finished_at.clone())
        .max()
        .unwrap_or_default();
    out.run.status = reports
        .iter()
        .map(|r| r.run.status)
        .max_by_key(|s| match s {
            RunStatus::Complete => 0,
            RunStatus::Interrupted => 1,
            RunStatus::Failed => 2,
        })
        .unwrap_or(RunStatus::Complete);
    if partial && out.run.status == RunStatus::Complete {
        out.run.status = RunStatus::Interrupted;
    }
    out.run.command = command;
    let ids: Vec<&str> = reports.iter().map(|r| r.run.id.as_str()).collect();
    let mut notes = vec![format!("merged from runs {}", ids.join(", "))];
    if reports.windows(2).any(|w| w[0].hardware != w[1].hardware) {
        let machines: std::collections::BTreeSet<String> =
            reports.iter().map(Report::hardware_label).collect();
        notes.push(format!(
            "merged across machines that differ ({}); `hardware` is the first report's",
            machines.into_iter().collect::<Vec<_>>().join("; ")
        ));
    }
    out.results = results
        .into_iter()
        .map(|mut m| {
            m.notes.extend(notes.iter().cloned());
            m
        })
        .collect();
    Ok(out)
}

fn err(key: &str, what: String) -> MergeError {
    MergeError(format!("{key}: {what}"))
}

fn hist(parts: &[&LatencySummary], field: &str) -> Result<LatencySummary, MergeError> {
    let mut it = parts.iter();
    let Some(first) = it.next() else {
        return Ok(LatencyHistogram::new().summary());
    };
    let mut acc = (*first).clone();
    for p in it {
        acc = acc
            .merged(p, field)
            .map_err(|e| MergeError(e.to_string()))?;
    }
    Ok(acc)
}

fn sum_map<K: Ord + Clone>(maps: impl Iterator<Item = BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k).or_insert(0) += v;
        }
    }
    out
}

fn all_some<T: Copy, R>(xs: &[Option<T>], f: impl FnOnce(Vec<T>) -> R) -> Option<R> {
    xs.iter().copied().collect::<Option<Vec<T>>>().map(f)
}

/// The union window of `group`, seconds, and its bounds; `None` when a result has no
/// window times (reports before 1.3).
fn union_window(group: &[&ResultEntry]) -> Option<(f64, String, String)> {
    let mut start: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut end: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    for e in group {
        let s = chrono::DateTime::parse_from_rfc3339(e.load.window_start.as_deref()?).ok()?;
        let t = chrono::DateTime::parse_from_rfc3339(e.load.window_end.as_deref()?).ok()?;
        start = Some(start.map_or(s, |x| x.min(s)));
        end = Some(end.map_or(t, |x| x.max(t)));
    }
    let (s, t) = (start?, end?);
    let secs = (t - s).num_microseconds()? as f64 / 1e6;
    Some((
        secs,
        s.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    ))
}

/// How a result merged from an incomplete shard set begins its note.
const PARTIAL_NOTE: &str = "partial merge:";

fn merge_entries(group: &[&ResultEntry], allow_partial: bool) -> Result<ResultEntry, MergeError> {
    let first = group[0];
    let key = first.result_key();
    for e in group {
        if e.workload.version != first.workload.version {
            return Err(err(&key, "workload versions differ".into()));
        }
        if e.load.pattern != first.load.pattern
            || e.load.rate_rps != first.load.rate_rps
            || e.load.concurrency != first.load.concurrency
        {
            return Err(err(&key, "load points differ".into()));
        }
        // Replicas of one endpoint may differ in their address; any other setting
        // makes them different configurations.
        let differing: Vec<&String> = e
            .target
            .settings
            .iter()
            .filter(|(k, v)| k.as_str() != "base_url" && first.target.settings.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(
                first
                    .target
                    .settings
                    .keys()
                    .filter(|k| k.as_str() != "base_url" && !e.target.settings.contains_key(*k)),
            )
            .collect();
        if !differing.is_empty() {
            return Err(err(
                &key,
                format!(
                    "target settings differ: {}",
                    differing
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let sha = |x: &ResultEntry| x.target.weights.as_ref().map(|w| w.sha256.clone());
        if sha(e) != sha(first) {
            return Err(err(&key, "target weights differ (weights.sha256)".into()));
        }
    }
    let shards: Vec<ShardRef> = group.iter().filter_map(|e| e.workload.shard).collect();
    if !shards.is_empty() {
        let n = shards[0].count;
        let mut got: Vec<u32> = shards.iter().map(|s| s.index).collect();
        got.sort_unstable();
        let one_set = shards.len() == group.len() && shards.iter().all(|s| s.count == n);
        let mut unique = got.clone();
        unique.dedup();
        let complete = one_set && got == (1..=n).collect::<Vec<_>>();
        let in_range = got.iter().all(|i| (1..=n).contains(i));
        let partial = one_set && unique.len() == got.len() && in_range;
        if !(complete || (allow_partial && partial)) {
            let list: Vec<String> = group
                .iter()
                .map(|e| {
                    e.workload.shard.map_or("the whole stream".into(), |s| {
                        format!("{}/{}", s.index, s.count)
                    })
                })
                .collect();
            return Err(err(
                &key,
                format!(
                    "shards {} are not one complete set (each of 1/N .. N/N once; --allow-partial merges a set with shards missing)",
                    list.join(", ")
                ),
            ));
        }
    }
    let mut out = first.clone();
    if !shards.is_empty() {
        out.workload.shard = None;
        out.notes.retain(|n| !n.starts_with("shard "));
        let n = shards[0].count;
        let mut got: Vec<u32> = shards.iter().map(|s| s.index).collect();
        got.sort_unstable();
        let missing: Vec<String> = (1..=n)
            .filter(|i| !got.contains(i))
            .map(|i| format!("{i}/{n}"))
            .collect();
        if !missing.is_empty() {
            let held: Vec<String> = got.iter().map(|i| format!("{i}/{n}")).collect();
            out.notes.push(format!(
                "{PARTIAL_NOTE} shards {} of {n}; {} missing: their requests are not in these figures",
                held.join(", "),
                missing.join(", ")
            ));
        }
    }
    let sum = |f: &dyn Fn(&ResultEntry) -> u64| group.iter().map(|e| f(e)).sum::<u64>();

    // Requests.
    out.requests.sent = sum(&|e| e.requests.sent);
    out.requests.ok = sum(&|e| e.requests.ok);
    out.requests.failed = sum(&|e| e.requests.failed);
    out.requests.retries = sum(&|e| e.requests.retries);
    out.requests.protocol_warnings = sum(&|e| e.requests.protocol_warnings);
    out.requests.stopped_early = sum(&|e| e.requests.stopped_early);
    out.requests.by_class = sum_map(group.iter().map(|e| e.requests.by_class.clone()));
    out.requests.planned = all_some(
        &group.iter().map(|e| e.requests.planned).collect::<Vec<_>>(),
        |v| v.iter().sum(),
    );
    out.requests.not_sent = sum_map(group.iter().map(|e| e.requests.not_sent.clone()));

    // Tokens.
    out.tokens = merge_tokens(group);

    // Latency.
    let l = |f: &dyn Fn(&Latency) -> &LatencySummary, name: &str| {
        hist(
            &group.iter().map(|e| f(&e.latency)).collect::<Vec<_>>(),
            name,
        )
    };
    out.latency = Latency {
        queue_ms: l(&|x| &x.queue_ms, "queue_ms")?,
        ttft_ms: l(&|x| &x.ttft_ms, "ttft_ms")?,
        ttft_from_intended_ms: l(&|x| &x.ttft_from_intended_ms, "ttft_from_intended_ms")?,
        itl_ms: l(&|x| &x.itl_ms, "itl_ms")?,
        chunk_gap_ms: l(&|x| &x.chunk_gap_ms, "chunk_gap_ms")?,
        tpot_ms: l(&|x| &x.tpot_ms, "tpot_ms")?,
        e2e_ms: l(&|x| &x.e2e_ms, "e2e_ms")?,
        ttft_answer_ms: {
            let parts: Vec<&LatencySummary> = group
                .iter()
                .filter_map(|e| e.latency.ttft_answer_ms.as_ref())
                .collect();
            if parts.is_empty() {
                None
            } else {
                Some(hist(&parts, "ttft_answer_ms")?)
            }
        },
    };

    // Window and throughput.
    let window_s = match union_window(group) {
        Some((secs, start, end)) => {
            out.load.window_start = Some(start);
            out.load.window_end = Some(end);
            secs
        }
        None => {
            out.notes.push(
                "some merged reports carry no window times (written before schema 1.3): throughput is over the longest window".into(),
            );
            out.load.window_start = None;
            out.load.window_end = None;
            group.iter().map(|e| e.load.measured_s).fold(0.0, f64::max)
        }
    };
    out.load.measured_s = (window_s * 1000.0).round() / 1000.0;
    out.load.max_requests = all_some(
        &group
            .iter()
            .map(|e| e.load.max_requests)
            .collect::<Vec<_>>(),
        |v| v.iter().sum(),
    );
    // Input tokens of successful requests are not stored: each part's rate times
    // its window gives them back.
    let ok_input_tokens: f64 = group
        .iter()
        .map(|e| e.throughput.input_tokens_per_s * e.load.measured_s)
        .sum();
    out.throughput = throughput(
        ThroughputCounts {
            ok_requests: out.requests.ok,
            ok_input_tokens: ok_input_tokens.round() as u64,
            output_tokens: out.tokens.output,
        },
        window_s,
        out.latency.tpot_ms.p50,
    );
    // Intervals and the steady state need the requests' end times, which a report
    // does not keep: a merged result has neither.

    // Tasks.
    out.tasks = match group
        .iter()
        .map(|e| e.tasks.as_ref())
        .collect::<Option<Vec<_>>>()
    {
        Some(ts) => Some(merge_tasks(&ts)?),
        None => None,
    };
    out.engine = match group
        .iter()
        .map(|e| e.engine.as_ref())
        .collect::<Option<Vec<_>>>()
    {
        Some(es) => Some(merge_engine(&es)?),
        None => None,
    };
    out.cold_start = match group
        .iter()
        .map(|e| e.cold_start.as_ref())
        .collect::<Option<Vec<_>>>()
    {
        Some(cs) => Some(merge_cold(&cs)?),
        None => None,
    };
    // Disjoint tasks: the counts add up (a part without checkers makes the merge
    // claim none).
    out.verification = group
        .iter()
        .map(|e| e.verification.as_ref())
        .collect::<Option<Vec<_>>>()
        .map(|vs| crate::report::VerificationStats::merged(&vs));
    out.energy = merge_energy(group);
    if let Some(e) = out.energy.as_mut() {
        // Each part's window held `j / j_per_verified_task` verified tasks (scaled to
        // its window as a live run scales them); the merge divides the summed joules
        // by their sum, as `j_per_request` is merged.
        // A part that verified none has no figure and adds its joules only.
        let parts: Option<Vec<(f64, Option<f64>)>> = group
            .iter()
            .map(|p| {
                let pe = p.energy.as_ref()?;
                Some((pe.energy_j?, pe.j_per_verified_task))
            })
            .collect();
        e.j_per_verified_task = match (parts, out.verification.as_ref()) {
            (Some(ps), Some(_)) => {
                let joules: f64 = ps.iter().map(|(j, _)| j).sum();
                let tasks: f64 = ps
                    .iter()
                    .filter_map(|(j, x)| x.filter(|&x| x > 0.0).map(|x| j / x))
                    .sum();
                (tasks > 0.0).then(|| joules / tasks)
            }
            _ => None,
        };
    }
    out.cost = merge_cost(&out, group);
    out.roofline = merge_roofline(&out, group);
    // Measured once per target: the parts agree, or the merge does not claim it.
    // How it was obtained (`cached`, `compute_s`) may differ between the parts.
    let figures = |e: &ResultEntry| {
        e.quality.clone().map(|mut q| {
            if let Some(f) = q.fidelity.as_mut() {
                f.cached = false;
                f.compute_s = 0.0;
            }
            q
        })
    };
    out.quality = group
        .iter()
        .all(|e| figures(e) == figures(group[0]))
        .then(|| group[0].quality.clone())
        .flatten();
    Ok(out)
}

/// The merged figures judged against the mean of the parts' measured limits, when
/// every part was judged on the same kind of device for the same model shape;
/// `None` otherwise.
fn merge_roofline(merged: &ResultEntry, group: &[&ResultEntry]) -> Option<RooflineStats> {
    let rs: Vec<&RooflineStats> = group
        .iter()
        .map(|e| e.roofline.as_ref())
        .collect::<Option<_>>()?;
    let first = rs.first()?;
    // The kind of device (`cuda` of `cuda:1`), its name, and the same matmul measured
    // the same way.
    let kind = |d: &str| d.split(':').next().unwrap_or(d).to_string();
    let same = |r: &&RooflineStats| {
        r.shape == first.shape
            && kind(&r.limits.device) == kind(&first.limits.device)
            && r.limits.name == first.limits.name
            && r.limits.matmul_shape == first.limits.matmul_shape
            && r.limits.matmul_engine == first.limits.matmul_engine
    };
    if !rs.iter().all(same) {
        return None;
    }
    let n = rs.len() as f64;
    let mean = |f: &dyn Fn(&DeviceLimits) -> f64| rs.iter().map(|r| f(&r.limits)).sum::<f64>() / n;
    let mut limits = first.limits.clone();
    if rs.iter().any(|r| r.limits.device != first.limits.device) {
        limits.device = kind(&first.limits.device);
    }
    if rs.iter().any(|r| r.limits.threads != first.limits.threads) {
        limits.threads = None;
    }
    limits.copy_gb_per_s = mean(&|l| l.copy_gb_per_s);
    limits.read_gb_per_s = mean(&|l| l.read_gb_per_s);
    limits.triad_gb_per_s = rs
        .iter()
        .map(|r| r.limits.triad_gb_per_s)
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.iter().sum::<f64>() / n);
    limits.matmul_gflop_per_s.retain(|k, _| {
        rs.iter()
            .all(|r| r.limits.matmul_gflop_per_s.contains_key(k))
    });
    for (k, v) in limits.matmul_gflop_per_s.iter_mut() {
        *v = rs
            .iter()
            .map(|r| r.limits.matmul_gflop_per_s[k])
            .sum::<f64>()
            / n;
    }
    crate::roofline::judge(&limits, &first.shape, merged)
}

fn merge_tokens(group: &[&ResultEntry]) -> TokenCounts {
    let t0 = &group[0].tokens;
    let same_src = |f: &dyn Fn(&TokenCounts) -> TokenSource| {
        let s = f(t0);
        if group.iter().all(|e| f(&e.tokens) == s) {
            s
        } else {
            TokenSource::Mixed
        }
    };
    TokenCounts {
        input: group.iter().map(|e| e.tokens.input).sum(),
        output: group.iter().map(|e| e.tokens.output).sum(),
        input_source: same_src(&|t| t.input_source),
        output_source: same_src(&|t| t.output_source),
        input_capped_requests: group.iter().map(|e| e.tokens.input_capped_requests).sum(),
        input_cached: all_some(
            &group
                .iter()
                .map(|e| e.tokens.input_cached)
                .collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        provenance: group
            .iter()
            .map(|e| e.tokens.provenance.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|ps| merge_provenance(&ps)),
    }
}

/// Disagreement percentages are combined weighted by the server's counts, which is
/// exact when the same requests carried both counts.
fn merge_provenance(ps: &[&TokenProvenance]) -> TokenProvenance {
    let weighted = |pct: &dyn Fn(&TokenProvenance) -> Option<f64>,
                    w: &dyn Fn(&TokenProvenance) -> u64| {
        let parts: Vec<(f64, f64)> = ps
            .iter()
            .filter_map(|p| pct(p).map(|x| (x, w(p) as f64)))
            .collect();
        let total: f64 = parts.iter().map(|(_, w)| w).sum();
        (total > 0.0).then(|| {
            let v = parts.iter().map(|(x, w)| x * w).sum::<f64>() / total;
            (v * 1000.0).round() / 1000.0
        })
    };
    TokenProvenance {
        tokenizer: ps[0].tokenizer.clone(),
        requests_with_usage: ps.iter().map(|p| p.requests_with_usage).sum(),
        requests_without_usage: ps.iter().map(|p| p.requests_without_usage).sum(),
        server_input: ps.iter().map(|p| p.server_input).sum(),
        server_output: ps.iter().map(|p| p.server_output).sum(),
        server_cached_input: ps.iter().map(|p| p.server_cached_input).sum(),
        server_reasoning: ps.iter().map(|p| p.server_reasoning).sum(),
        tokenizer_input: ps.iter().map(|p| p.tokenizer_input).sum(),
        tokenizer_output: all_some(
            &ps.iter().map(|p| p.tokenizer_output).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        output_disagreement_pct: weighted(&|p| p.output_disagreement_pct, &|p| p.server_output),
        input_disagreement_pct: weighted(&|p| p.input_disagreement_pct, &|p| p.server_input),
        chunk_counts: sum_map(ps.iter().map(|p| p.chunk_counts.clone())),
        reconciled_requests: ps.iter().map(|p| p.reconciled_requests).sum(),
    }
}

fn merge_tasks(ts: &[&TaskStats]) -> Result<TaskStats, MergeError> {
    let mut sums = TaskSums::default();
    for t in ts {
        sums.add(&TaskSums::of(t).map_err(|e| MergeError(e.to_string()))?);
    }
    Ok(sums.stats())
}

fn merge_engine(es: &[&EngineStats]) -> Result<EngineStats, MergeError> {
    let steps: u64 = es.iter().map(|e| e.steps).sum();
    let per_step = |f: &dyn Fn(&EngineStats) -> f64| {
        if steps > 0 {
            es.iter().map(|e| f(e) * e.steps as f64).sum::<f64>() / steps as f64
        } else {
            0.0
        }
    };
    let prompt: u64 = es.iter().map(|e| e.prompt_tokens).sum();
    let cached: u64 = es.iter().map(|e| e.prompt_tokens_cached).sum();
    let requests: Vec<u64> = es.iter().map(|e| e.prefill_ms.count).collect();
    let n: u64 = requests.iter().sum();
    let max_batch = es.iter().map(|e| e.max_batch).max().unwrap_or(0);
    let seqs = per_step(&|e| e.mean_seqs_per_step);
    Ok(EngineStats {
        steps,
        max_batch,
        mean_seqs_per_step: seqs,
        mean_batch_occupancy: per_step(&|e| e.mean_batch_occupancy),
        mean_tokens_per_step: per_step(&|e| e.mean_tokens_per_step),
        prompt_tokens: prompt,
        prompt_tokens_cached: cached,
        prompt_tokens_computed: prompt - cached,
        cache_hit_ratio: (prompt > 0).then(|| cached as f64 / prompt as f64),
        kv_block_tokens: es[0].kv_block_tokens,
        kv_blocks_total: es.iter().map(|e| e.kv_blocks_total).sum(),
        kv_blocks_used_peak: es.iter().map(|e| e.kv_blocks_used_peak).max().unwrap_or(0),
        kv_evictions: es.iter().map(|e| e.kv_evictions).sum(),
        engine_queue_ms: hist(
            &es.iter().map(|e| &e.engine_queue_ms).collect::<Vec<_>>(),
            "engine_queue_ms",
        )?,
        prefill_ms: hist(
            &es.iter().map(|e| &e.prefill_ms).collect::<Vec<_>>(),
            "prefill_ms",
        )?,
        request_mean_batch: if n > 0 {
            es.iter()
                .zip(&requests)
                .map(|(e, &k)| e.request_mean_batch * k as f64)
                .sum::<f64>()
                / n as f64
        } else {
            0.0
        },
        prefill_busy_s: all_some(
            &es.iter().map(|e| e.prefill_busy_s).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        decode_busy_s: all_some(
            &es.iter().map(|e| e.decode_busy_s).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        decode_steps: all_some(
            &es.iter().map(|e| e.decode_steps).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        decode_step_tokens: all_some(
            &es.iter().map(|e| e.decode_step_tokens).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
        decode_step_busy_s: all_some(
            &es.iter().map(|e| e.decode_step_busy_s).collect::<Vec<_>>(),
            |v| v.iter().sum(),
        ),
    })
}

fn merge_cold(cs: &[&ColdStartStats]) -> Result<ColdStartStats, MergeError> {
    Ok(ColdStartStats {
        idle_s: cs[0].idle_s,
        probes: cs.iter().map(|c| c.probes).sum(),
        ok: cs.iter().map(|c| c.ok).sum(),
        by_class: sum_map(cs.iter().map(|c| c.by_class.clone())),
        ttft_ms: hist(
            &cs.iter().map(|c| &c.ttft_ms).collect::<Vec<_>>(),
            "cold_start.ttft_ms",
        )?,
        e2e_ms: hist(
            &cs.iter().map(|c| &c.e2e_ms).collect::<Vec<_>>(),
            "cold_start.e2e_ms",
        )?,
    })
}

/// Energy of several machines (or shards) over their windows: joules add up; per-token
/// figures are recomputed from the work each window covered.
fn merge_energy(group: &[&ResultEntry]) -> Option<EnergyStats> {
    let es: Vec<&EnergyStats> = group.iter().filter_map(|e| e.energy.as_ref()).collect();
    if es.is_empty() {
        return None;
    }
    let measured: Option<Vec<(&EnergyStats, f64)>> =
        es.iter().map(|e| e.energy_j.map(|j| (*e, j))).collect();
    let Some(measured) = measured.filter(|m| m.len() == group.len()) else {
        let reason = es
            .iter()
            .find_map(|e| e.reason.clone())
            .unwrap_or_else(|| "not every merged report measured energy".into());
        return Some(EnergyStats::unavailable(&reason));
    };
    let joules: f64 = measured.iter().map(|(_, j)| j).sum();
    let out_tokens: f64 = measured
        .iter()
        .map(|(e, j)| e.tokens_per_j_output.unwrap_or(0.0) * j)
        .sum();
    let all_tokens: f64 = measured
        .iter()
        .map(|(e, j)| e.tokens_per_j_total.unwrap_or(0.0) * j)
        .sum();
    let requests: f64 = measured
        .iter()
        .filter_map(|(e, j)| e.j_per_request.filter(|&x| x > 0.0).map(|x| j / x))
        .sum();
    let mut out = es[0].clone();
    out.devices = es.iter().flat_map(|e| e.devices.clone()).collect();
    out.energy_j = Some(joules);
    out.window_s = es.iter().filter_map(|e| e.window_s).reduce(f64::max);
    out.avg_power_w = Some(es.iter().filter_map(|e| e.avg_power_w).sum());
    out.peak_power_w = es.iter().filter_map(|e| e.peak_power_w).reduce(f64::max);
    out.idle_power_w = all_some(
        &es.iter().map(|e| e.idle_power_w).collect::<Vec<_>>(),
        |v| v.iter().sum(),
    );
    out.tokens_per_j_output = (joules > 0.0).then(|| out_tokens / joules);
    out.tokens_per_j_total = (joules > 0.0).then(|| all_tokens / joules);
    out.j_per_output_token = (out_tokens > 0.0).then(|| joules / out_tokens);
    out.j_per_request = (requests > 0.0).then(|| joules / requests);
    out.integrated_power_j = all_some(
        &es.iter().map(|e| e.integrated_power_j).collect::<Vec<_>>(),
        |v| v.iter().sum(),
    );
    out.disagreement_pct = out
        .integrated_power_j
        .map(|i| (i - joules) / joules * 100.0);
    out.throttled = es
        .iter()
        .try_fold(false, |acc, e| e.throttled.map(|t| acc || t));
    out.throttle_reasons = es.iter().flat_map(|e| e.throttle_reasons.clone()).collect();
    out.throttle_reasons.sort();
    out.throttle_reasons.dedup();
    out.flags = es.iter().flat_map(|e| e.flags.clone()).collect();
    out.flags.sort();
    out.flags.dedup();
    Some(out)
}

/// Dollars add up; per-token, per-request and per-task figures are recomputed from
/// the merged counts. Unpriced when any input is.
fn merge_cost(merged: &ResultEntry, group: &[&ResultEntry]) -> Option<CostStats> {
    let cs: Vec<&CostStats> = group.iter().filter_map(|e| e.cost.as_ref()).collect();
    if cs.is_empty() {
        return None;
    }
    if cs.len() < group.len() || cs.iter().any(|c| c.usd_total.is_none()) {
        let reason = cs
            .iter()
            .find_map(|c| c.reason.clone())
            .unwrap_or_else(|| "not every merged report was priced".into());
        return Some(CostStats::unpriced(&reason));
    }
    let sum_opt = |f: &dyn Fn(&CostStats) -> Option<f64>| {
        all_some(&cs.iter().map(|c| f(c)).collect::<Vec<_>>(), |v| {
            v.iter().sum::<f64>()
        })
    };
    let r9 = crate::cost::usd;
    let total = sum_opt(&|c| c.usd_total).unwrap_or(0.0);
    let mut out = cs[0].clone();
    out.input_tokens = cs.iter().map(|c| c.input_tokens).sum();
    out.cached_input_tokens = cs.iter().map(|c| c.cached_input_tokens).sum();
    out.output_tokens = cs.iter().map(|c| c.output_tokens).sum();
    out.reasoning_tokens = cs.iter().map(|c| c.reasoning_tokens).sum();
    out.usd_total = Some(r9(total));
    out.usd_input = sum_opt(&|c| c.usd_input).map(r9);
    out.usd_cached_input = sum_opt(&|c| c.usd_cached_input).map(r9);
    out.usd_output = sum_opt(&|c| c.usd_output).map(r9);
    out.usd_reasoning = sum_opt(&|c| c.usd_reasoning).map(r9);
    out.billed_unit_s = sum_opt(&|c| c.billed_unit_s);
    let t = &merged.tokens;
    let input_dollars = match (out.usd_input, out.usd_cached_input) {
        (Some(a), Some(b)) => Some(a + b),
        (Some(a), None) => Some(a),
        _ => None,
    };
    let output_dollars = match (out.usd_output, out.usd_reasoning) {
        (Some(a), Some(b)) => Some(a + b),
        (Some(a), None) => Some(a),
        _ => None,
    };
    let u = CostBasis::of(merged, total, input_dollars, output_dollars).per_unit();
    out.usd_per_m_input = u.usd_per_m_input;
    out.usd_per_m_output = u.usd_per_m_output;
    out.input_time_share = input_dollars.filter(|_| total > 0.0).map(|d| d / total);
    if out.hardware.is_some() {
        out.usd_per_m_blended_3_1 = out
            .usd_per_m_input
            .zip(out.usd_per_m_output)
            .map(|(i, o)| r9((3.0 * i + o) / 4.0));
        let computed = merged
            .engine
            .as_ref()
            .map_or(t.input, |e| e.prompt_tokens_computed);
        out.usd_per_m_uncached_input = out
            .usd_input
            .and_then(|d| crate::cost::per_million(d, computed));
    }
    out.usd_per_m_blended_workload = u.usd_per_m_blended_workload;
    out.usd_per_request = u.usd_per_request;
    out.usd_per_task = u.usd_per_task;
    out.usd_per_successful_task = u.usd_per_successful_task;
    out.usd_per_verified_task = u.usd_per_verified_task;
    Some(out)
}
