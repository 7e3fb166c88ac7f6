//! One load point's result, built from its request records: the same builder runs
//! live (fed by the driver as requests finish) and in `recover` (fed by the lines of
//! `requests.jsonl`), so both compute every figure alike: counts and histograms,
//! throughput over the measured window, the steady state, tasks (sessions whose every
//! call was made and succeeded), the engine's view, cold-start probes, the SLO
//! verdict and the notes a reader must see.

use std::collections::BTreeMap;

use results::derive::TaskSums;
use results::stats::RepeatRef;
use results::{
    LoadInfo, NotSentReason, ResultEntry, ShardRef, TargetInfo, TokenSource, WorkloadRef,
};
use serde::{Deserialize, Serialize};
use workloads::EngineCounters;
use workloads::generate::RequestStream;
use workloads::spec::WorkloadSpec;

use crate::clock::Anchor;
use crate::collector::Aggregate;
use crate::driver::Outcome;
use crate::record::RequestRecord;
use crate::slo::Slo;
use crate::steady::steady_window;

/// Shortest steady-state window, seconds (an energy counter needs about a second to
/// move by a reliable amount).
pub const STEADY_MIN_S: f64 = 1.0;

/// A load point as it is planned: which target, which workload (overrides applied)
/// with which seed, and which repeat. `run.json` lists every point as it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointPlan {
    /// Index of the target in the run's targets.
    pub target: usize,
    /// The workload, fully resolved.
    pub spec: WorkloadSpec,
    /// Seed of its request stream.
    pub seed: u64,
    /// Which repeat of the point this is (`--repeat N`).
    pub repeat: Option<RepeatRef>,
}

/// What the driver knows about a load point besides its records (`recover` knows
/// less: see [`PointFacts::recovered`]).
#[derive(Clone, Debug, Default)]
pub struct PointFacts {
    /// The start of measurement on both clocks; `None` when not known (a recovered
    /// point).
    pub anchor: Option<Anchor>,
    /// Calls of the stream that were not sent, by reason.
    pub not_sent: BTreeMap<NotSentReason, u64>,
    /// Sessions never started.
    pub sessions_not_started: u64,
    /// Warm-up requests that failed.
    pub warmup_failed: u64,
    /// Whether the duration bound stopped sending.
    pub duration_hit: bool,
    /// Whether the drain deadline cancelled requests.
    pub drain_cancelled: bool,
    /// A local engine's counters at the start and end of the window.
    pub engine_counters: (Option<EngineCounters>, Option<EngineCounters>),
    /// Lines of `requests.jsonl` a recovered point was rebuilt from.
    pub recovered_lines: Option<usize>,
}

impl PointFacts {
    /// What the driver's `outcome` tells of a point it ran.
    pub fn of(outcome: &Outcome) -> Self {
        Self {
            anchor: Some(outcome.anchor),
            not_sent: outcome.not_sent.clone(),
            sessions_not_started: outcome.sessions_not_started,
            warmup_failed: outcome.warmup_failed,
            duration_hit: outcome.duration_hit,
            drain_cancelled: outcome.drain_cancelled,
            engine_counters: outcome.engine_counters,
            recovered_lines: None,
        }
    }

    /// The facts of a point rebuilt by `recover`: what was planned and not in the
    /// file was never sent, because the run was killed.
    pub fn recovered(planned: u64, lines: usize, sent: u64) -> Self {
        let mut not_sent = BTreeMap::new();
        if planned > sent {
            not_sent.insert(NotSentReason::RunKilled, planned - sent);
        }
        Self {
            not_sent,
            recovered_lines: Some(lines),
            ..Self::default()
        }
    }
}

/// One session's calls as they finish.
#[derive(Clone, Copy, Debug, Default)]
struct Session {
    planned_calls: u32,
    calls: u32,
    all_ok: bool,
    first_sent_s: f64,
    last_end_s: f64,
    input_tokens: u64,
    output_tokens: u64,
    /// Calls graded by a checker.
    checked: u32,
    /// Whether a graded call did not pass.
    check_failed: bool,
}

/// The graded calls of a load point.
#[derive(Default)]
struct Checked {
    calls: u64,
    passed: u64,
    failures: BTreeMap<results::CheckFailure, u64>,
    by_group: BTreeMap<String, results::GroupCounts>,
}

/// A result and the windows its energy is measured over.
#[derive(Clone, Debug)]
pub struct Built {
    /// The result (energy, cost and the client's own figures are the caller's).
    pub entry: ResultEntry,
    /// Seconds from the start of measurement to the last completion.
    pub measured_s: f64,
    /// The steady-state window, seconds from the start of measurement.
    pub steady_s: Option<(f64, f64)>,
}

/// Builds one load point's result from its records.
pub struct PointBuilder {
    plan: PointPlan,
    stream_sha256: String,
    target: TargetInfo,
    shard: Option<ShardRef>,
    planned: u64,
    agg: Aggregate,
    cold: Aggregate,
    sessions: BTreeMap<u64, Session>,
    flight: Vec<(f64, i32)>,
    /// `(intended send s, TTFT from intended ms)` of successful requests (the
    /// over-saturation check).
    ttft_by_schedule: Vec<(f64, f64)>,
    last_end_s: f64,
    checked: Checked,
}

impl PointBuilder {
    /// A builder for `plan` sent as `stream` (its shard's part; `stream_sha256` is the
    /// whole stream's digest) to `target`, judged by `slo`.
    pub fn new(
        plan: PointPlan,
        stream: &RequestStream,
        stream_sha256: String,
        target: TargetInfo,
        slo: Option<Slo>,
        shard: Option<ShardRef>,
    ) -> Self {
        let sessions = stream
            .sessions
            .iter()
            .map(|s| {
                (
                    s.index,
                    Session {
                        planned_calls: s.calls.len() as u32,
                        all_ok: true,
                        ..Session::default()
                    },
                )
            })
            .collect();
        let mut agg = Aggregate::default();
        agg.slo = slo;
        Self {
            plan,
            stream_sha256,
            target,
            shard,
            planned: stream.request_count() as u64,
            agg,
            cold: Aggregate::default(),
            sessions,
            flight: Vec::new(),
            ttft_by_schedule: Vec::new(),
            last_end_s: 0.0,
            checked: Checked::default(),
        }
    }

    /// Requests added so far (cold-start probes excluded).
    pub fn sent(&self) -> u64 {
        self.agg.sent()
    }

    /// The requests the stream plans.
    pub fn planned(&self) -> u64 {
        self.planned
    }

    /// Adds a finished request (a cold-start probe goes to its own figures).
    pub fn add(&mut self, r: &RequestRecord) {
        if r.cold_start {
            self.cold.add(r);
            return;
        }
        self.agg.add(r);
        let end_s = r.sent_s + r.e2e_ms / 1000.0;
        self.last_end_s = self.last_end_s.max(end_s);
        self.flight.extend([(r.sent_s, 1), (end_s, -1)]);
        if let (true, Some(t)) = (r.ok(), r.ttft_from_intended_ms) {
            self.ttft_by_schedule.push((r.scheduled_s, t));
        }
        let s = self.sessions.entry(r.session).or_insert(Session {
            all_ok: true,
            ..Session::default()
        });
        if let Some(c) = &r.check {
            s.checked += 1;
            s.check_failed |= !c.passed;
            let k = &mut self.checked;
            k.calls += 1;
            k.passed += u64::from(c.passed);
            if let Some(f) = c.failure {
                *k.failures.entry(f).or_insert(0) += 1;
            }
            let g = k
                .by_group
                .entry(c.group.clone().unwrap_or_else(|| c.kind.clone()))
                .or_default();
            g.checked += 1;
            g.passed += u64::from(c.passed);
        }
        if s.calls == 0 {
            s.first_sent_s = r.sent_s;
        }
        s.calls += 1;
        s.all_ok &= r.ok();
        s.first_sent_s = s.first_sent_s.min(r.sent_s);
        s.last_end_s = s.last_end_s.max(end_s);
        s.input_tokens += u64::from(r.input_tokens);
        s.output_tokens += u64::from(r.output_tokens);
    }

    fn tasks(&self) -> TaskSums {
        let mut t = TaskSums::default();
        for s in self.sessions.values().filter(|s| s.calls > 0) {
            t.started += 1;
            if s.all_ok && s.calls == s.planned_calls {
                t.completed += 1;
                t.calls += u64::from(s.calls);
                t.input_tokens += s.input_tokens;
                t.output_tokens += s.output_tokens;
                t.task_ms
                    .record_ms((s.last_end_s - s.first_sent_s).max(0.0) * 1000.0);
            }
        }
        t
    }

    /// The verification figures: a task (session) is verified when every call it
    /// planned was made and every checked one passed. `None` when nothing was checked
    /// and the workload has no tasks.
    fn verification(&self) -> Option<results::VerificationStats> {
        if self.checked.calls == 0 && self.plan.spec.tasks.is_none() {
            return None;
        }
        let checked: Vec<&Session> = self.sessions.values().filter(|s| s.checked > 0).collect();
        let verified = checked
            .iter()
            .filter(|s| !s.check_failed && s.calls == s.planned_calls)
            .count() as u64;
        let k = &self.checked;
        Some(results::VerificationStats::from_counts(
            checked.len() as u64,
            verified,
            k.calls,
            k.passed,
            k.failures.clone(),
            k.by_group.clone(),
        ))
    }

    /// The result.
    pub fn finish(self, facts: PointFacts) -> Built {
        let spec = &self.plan.spec;
        let l = &spec.load;
        let target = &self.target;
        let local = target.is_local();
        let measured_s = (self.last_end_s * 1000.0).round() / 1000.0;
        let steady_s = steady_window(&self.flight, STEADY_MIN_S);
        let mut tokens = self.agg.tokens(if local {
            TokenSource::Engine
        } else {
            TokenSource::Tokenizer
        });
        if !local {
            tokens.provenance = self.agg.provenance(&target.token_counter);
        }
        let mut requests = self.agg.requests();
        requests.planned = Some(self.planned);
        requests.not_sent = facts.not_sent.clone();
        let notes = notes(&self, &facts, &requests, &tokens);
        let mut entry = ResultEntry {
            repeat: self.plan.repeat,
            workload: WorkloadRef {
                name: spec.name.clone(),
                version: spec.version,
                spec_sha256: spec.sha256(),
                stream_sha256: self.stream_sha256.clone(),
                seed: self.plan.seed,
                shard: self.shard,
            },
            target: target.clone(),
            load: LoadInfo {
                pattern: l.arrival,
                rate_rps: l.rate_rps,
                concurrency: l.concurrency,
                burstiness: l.burstiness,
                warmup_requests: l.warmup_requests,
                max_requests: Some(l.requests),
                max_duration_s: l.duration_s,
                measured_s,
                window_start: facts.anchor.map(|a| a.wall_at(0.0)),
                window_end: facts.anchor.map(|a| a.wall_at(measured_s)),
            },
            requests,
            tokens,
            latency: self.agg.latency(),
            throughput: self.agg.throughput(measured_s, steady_s),
            tasks: spec.reports_tasks().then(|| self.tasks().stats()),
            engine: self
                .agg
                .engine(facts.engine_counters.0, facts.engine_counters.1),
            cold_start: l
                .cold_start
                .as_ref()
                .and_then(|c| self.cold.cold_start(c.idle_s)),
            energy: None,
            cost: None,
            roofline: None,
            quality: None,
            verification: self.verification(),
            server: None,
            // A trace's arrival rate changes through the point by design: the thirds
            // would compare different loads.
            saturation: (l.arrival.is_open_loop() && l.arrival != results::ArrivalPattern::Trace)
                .then(|| results::saturation::check(&self.ttft_by_schedule, &self.flight))
                .flatten(),
            client: None,
            slo: None,
            notes,
        };
        entry.slo = self
            .agg
            .slo
            .as_ref()
            .map(|s| s.judge(&entry, self.agg.slo_met));
        Built {
            entry,
            measured_s,
            steady_s,
        }
    }
}

/// What a reader of the result must know: retries, early stops, caps, bounds hit,
/// calls not sent and why, shards, recovery.
fn notes(
    b: &PointBuilder,
    f: &PointFacts,
    requests: &results::RequestCounts,
    tokens: &results::TokenCounts,
) -> Vec<String> {
    let l = &b.plan.spec.load;
    let mut notes = Vec::new();
    if requests.retries > 0 {
        notes.push(format!(
            "{} attempts were retried (HTTP 429/502/503/504); retry waits are inside TTFT and E2E",
            requests.retries
        ));
    }
    if requests.stopped_early > 0 {
        notes.push(format!(
            "{} requests stopped before their requested output length (end of sequence); set exact_output=true where the server accepts ignore_eos",
            requests.stopped_early
        ));
    }
    if requests.protocol_warnings > 0 {
        notes.push(format!(
            "{} protocol warnings (see `warnings` in requests.jsonl)",
            requests.protocol_warnings
        ));
    }
    if !b.target.streamed {
        notes.push(
            "responses were not streamed: TTFT is the whole response's arrival (equal to E2E) and ITL is not measured"
                .into(),
        );
    }
    if tokens.input_capped_requests > 0 {
        notes.push(format!(
            "{} requests had their input capped to fit the target's context of {} tokens",
            tokens.input_capped_requests,
            b.target.context_limit_tokens.unwrap_or(0)
        ));
    }
    if b.shard.is_none() && b.planned > l.requests {
        notes.push(format!(
            "{} requests planned for the {} asked: sessions are sent whole",
            b.planned, l.requests
        ));
    }
    let not_sent = |r: NotSentReason| f.not_sent.get(&r).copied().unwrap_or(0);
    if f.duration_hit {
        notes.push(format!(
            "duration bound of {} s reached: {} sessions not started, {} planned calls not sent",
            l.duration_s.unwrap_or(0.0),
            f.sessions_not_started,
            not_sent(NotSentReason::DurationBound)
        ));
    } else if not_sent(NotSentReason::DurationBound) > 0 {
        notes.push(format!(
            "{} planned calls not sent: their think time ended after the duration bound of {} s",
            not_sent(NotSentReason::DurationBound),
            l.duration_s.unwrap_or(0.0)
        ));
    }
    if not_sent(NotSentReason::Interrupted) > 0 {
        notes.push(format!(
            "interrupted: {} sessions not started, {} planned calls not sent",
            f.sessions_not_started,
            not_sent(NotSentReason::Interrupted)
        ));
    }
    if not_sent(NotSentReason::AfterFailedCall) > 0 {
        notes.push(format!(
            "{} planned calls not sent: an earlier call of their session failed, which ends the session",
            not_sent(NotSentReason::AfterFailedCall)
        ));
    }
    if f.drain_cancelled {
        notes.push("drain deadline reached: in-flight requests were cancelled".into());
    }
    if f.warmup_failed > 0 {
        notes.push(format!(
            "{} of {} warm-up requests failed",
            f.warmup_failed, l.warmup_requests
        ));
    }
    if let Some(s) = b.shard {
        notes.push(format!(
            "shard {} of {}: this report holds part of the stream; merge all {} shards for the whole run",
            s.index, s.count, s.count
        ));
    }
    if let Some(lines) = f.recovered_lines {
        notes.push(format!(
            "recovered by `infermeter recover` from {lines} lines of requests.jsonl: the run was killed during this load point, and {} planned calls were not sent; the engine's counters and energy are not in that file",
            not_sent(NotSentReason::RunKilled)
        ));
    }
    notes
}
