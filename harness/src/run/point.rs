//! Runs one load point: generates its stream (this shard's part), starts the energy
//! sampler and the client's self-measurement, drives the target, writes every record
//! to `requests.jsonl` as it arrives and feeds it to the [`PointBuilder`], then adds
//! the energy over the steady state (or the measured window) and the client's figures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use results::{EnergyStats, ResultEntry, TargetInfo, TokenSource};
use tokio::sync::{mpsc, watch};
use workloads::Backend;
use workloads::generate::generate;

use super::builder::{PointBuilder, PointFacts, PointPlan};
use super::scrape::{MetricsPlan, PointLabel, Scraper};
use crate::client::ClientProbe;
use crate::config::RunConfig;
use crate::driver::{Interrupt, Launcher, LoadPoint, Measurement, run_load_point};
use crate::energy::{self, Sampler, Work};
use crate::error::bad_input;
use crate::files::JsonLines;
use crate::progress::Progress;
use crate::slo::Slo;
use results::server_metrics::ClientSide;

/// How often energy probes are read during a load point.
pub const ENERGY_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Mean power over 1 s with no load, from the probes that measure `target`; `None`
/// when there are none.
pub async fn idle_power(target: &TargetInfo) -> Option<f64> {
    let probes = energy::probes_for(target.device).ok()?;
    let sampler = Sampler::start(probes, ENERGY_SAMPLE_INTERVAL);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recorded = tokio::task::spawn_blocking(move || sampler.stop())
        .await
        .ok()?;
    energy::mean_power_w(&recorded)
}

/// What one load point runs with.
pub struct PointRun<'a> {
    /// The target.
    pub target: &'a Arc<dyn Backend>,
    /// What it said it is, once prepared.
    pub info: &'a TargetInfo,
    /// The run's configuration.
    pub cfg: &'a RunConfig,
    /// The SLO each point is judged by.
    pub slo: Option<&'a Slo>,
    /// The target's idle power, watts.
    pub idle_power_w: Option<f64>,
    /// Whether and where the target's server metrics are scraped.
    pub metrics: &'a MetricsPlan,
}

/// Runs `plan`, writing its records to `jsonl`.
pub async fn run_point(
    run: &PointRun<'_>,
    plan: PointPlan,
    jsonl: &mut JsonLines,
    irq: watch::Receiver<Interrupt>,
) -> Result<ResultEntry> {
    let spec = plan.spec.clone();
    let whole = generate(&spec, plan.seed);
    let stream_sha256 = whole.digest();
    let stream = match run.cfg.shard {
        None => whole,
        Some(s) => whole.shard(s.index - 1, s.count).map_err(|e| {
            bad_input(format!(
                "--shard {}/{}: {}: {e}",
                s.index, s.count, spec.name
            ))
        })?,
    };
    let local = run.info.is_local();
    let mut builder = PointBuilder::new(
        plan,
        &stream,
        stream_sha256,
        run.info.clone(),
        run.slo.cloned(),
        run.cfg.shard,
    );
    let lp = LoadPoint {
        workload: spec.name.clone(),
        target_label: run.info.label(),
        stream,
        max_duration: spec
            .load
            .duration_s
            .and_then(|d| Duration::try_from_secs_f64(d).ok()),
        drain_timeout: run.cfg.drain_timeout,
        request_timeout: run.cfg.request_timeout,
        context_limit: run.info.context_limit_tokens,
        fallback_source: if local {
            TokenSource::Engine
        } else {
            TokenSource::Tokenizer
        },
        launcher: Launcher::Thread,
        measure_gate: None,
    };
    let mut lp = lp;
    let scraper = match run.metrics {
        MetricsPlan::Scrape { endpoint, .. } => {
            let (scraper, gate) = Scraper::start(Arc::clone(run.target), endpoint.clone());
            lp.measure_gate = Some(gate);
            Some(scraper)
        }
        _ => None,
    };
    // Energy: the probes that measure this target, sampled through the load point.
    let (sampler, energy_reason) = match energy::probes_for(run.info.device) {
        Ok(p) => (Some(Sampler::start(p, ENERGY_SAMPLE_INTERVAL)), None),
        Err(reason) => (None, Some(reason)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let probe = ClientProbe::start();
    let driver = tokio::spawn(run_load_point(Arc::clone(run.target), lp, tx, irq));
    let mut progress = Progress::new(&spec.name, builder.planned(), run.cfg.quiet);
    while let Some(m) = rx.recv().await {
        let r = match m {
            Measurement::Request(r) => {
                progress.request_done(r.ok());
                r
            }
            Measurement::ColdStart(r) => r,
        };
        jsonl.append(&*r)?;
        builder.add(&r);
    }
    progress.finish();
    let outcome = driver.await.context("the load driver panicked")?;
    let recorded = match sampler {
        Some(s) => tokio::task::spawn_blocking(move || s.stop())
            .await
            .context("the energy sampler panicked")?,
        None => Vec::new(),
    };
    let anchor = outcome.anchor;
    let built = builder.finish(PointFacts::of(&outcome));
    let mut e = built.entry;
    let client = probe.finish(
        e.requests.sent,
        e.tokens.output,
        e.latency.queue_ms.p99,
        e.load.measured_s,
        local,
    );
    if client.client_bound {
        // More threads help only a client late by its own work.
        let hint = match (client.event_loop_threads, client.bound_by) {
            (Some(1), Some(results::BoundBy::Client)) => {
                " (one event-loop thread: --client-threads N gives it more)"
            }
            _ => "",
        };
        e.notes.push(format!(
            "WARNING client-bound: {}; latencies may include the client's own delays{hint}",
            client.reasons.join("; ")
        ));
    }
    e.client = Some(client);
    match (scraper, run.metrics) {
        (Some(scraper), MetricsPlan::Scrape { log, .. }) => {
            let load = match &e.repeat {
                Some(r) => format!("{} repeat {}/{}", e.load_label(), r.index, r.count),
                None => e.load_label(),
            };
            let label = PointLabel {
                load: &load,
                workload: &spec.name,
                target: &e.target.label(),
            };
            let side = ClientSide {
                requests: e.requests.sent,
                failed: e.requests.failed,
                ttft_mean_ms: e.latency.ttft_ms.mean,
                output_tokens: e.tokens.output,
                input_tokens: e.tokens.input,
            };
            let server = scraper.finish(anchor.at, log, &label, &side).await?;
            if server.reconciliation.agree == Some(false) {
                e.notes.push(format!(
                    "server metrics disagree with the client: {}",
                    server.reconciliation.disagreements.join("; ")
                ));
            }
            e.server = Some(server);
        }
        (_, MetricsPlan::Unavailable(why)) => e.notes.push(why.clone()),
        _ => {}
    }
    // A local result against its device's measured limits.
    e.roofline = run
        .target
        .roofline_basis()
        .and_then(|(limits, shape)| results::roofline::judge(&limits, &shape, &e));
    if let Some(r) = &e.roofline {
        for (what, ratio) in [("decode", r.decode_ratio), ("prefill", r.prefill_ratio)] {
            if let Some(v) = ratio.filter(|v| *v > 1.05) {
                e.notes.push(format!(
                    "roofline: the {what} ratio is {v:.2}, above 1: this model ran faster than the ceiling its bytes and operations give (weights the caches hold, uneven expert use, or a matmul faster at its shapes than at the one measured)"
                ));
            }
        }
    }
    // Energy over the steady state when there is one, else the measured window; the
    // work it is divided by is the share of the load point's work done in it, taken
    // as proportional to time.
    let window = built
        .steady_s
        .map(|w| (w, "steady-state"))
        .or((built.measured_s > 0.0).then_some(((0.0, built.measured_s), "measured")));
    e.energy = Some(match (energy_reason, window) {
        (Some(reason), _) => EnergyStats::unavailable(&reason),
        (None, None) => EnergyStats::unavailable("the load point measured nothing"),
        (None, Some(((a, b), kind))) => {
            let share = if built.measured_s > 0.0 {
                (b - a) / built.measured_s
            } else {
                1.0
            };
            let scaled = |n: u64| (n as f64 * share).round() as u64;
            let mut stats = energy::stats(
                &recorded,
                (anchor.instant_at(a), anchor.instant_at(b)),
                run.idle_power_w,
                Work {
                    output_tokens: scaled(e.tokens.output),
                    total_tokens: scaled(e.tokens.input + e.tokens.output),
                    requests_ok: scaled(e.requests.ok),
                    // Scaled to the window like the others: the energy of the window
                    // over the verified tasks it holds.
                    tasks_verified: e.verification.as_ref().map(|v| scaled(v.tasks_verified)),
                },
            );
            stats.window_kind = stats.energy_j.map(|_| kind.to_string());
            if kind == "measured" && stats.energy_j.is_some() {
                stats.flags.push(
                    "no steady state (load too short or too uneven): the whole measured window, ramp-up and drain included".into(),
                );
            }
            stats
        }
    });
    Ok(e)
}
