//! The load driver: runs one load point (a workload's request stream against one
//! target) on tokio.
//!
//! - Warm-up requests run first, one at a time, and are excluded from every figure.
//! - Open loop (poisson, constant, gamma, all): each session is launched at its
//!   scheduled instant however many requests are in flight; nothing is dropped or
//!   delayed by a cap, and the lag between intended and actual send is recorded.
//! - Closed loop: `concurrency` workers each run one session at a time.
//! - Within a session, call k+1 is intended at call k's completion plus its think time.
//! - Bounds: the stream's request count, and optionally a duration after which no new
//!   request is sent. Then in-flight requests drain until the drain deadline, after
//!   which they are cancelled (class `cancelled`, partial timings kept).
//! - An interrupt (Ctrl-C) stops sending at once; a second one cancels what is in
//!   flight.
//! - Nothing planned is dropped unsaid: every call of the stream that was not sent is
//!   counted with its reason (the duration bound, an interrupt, or a failed earlier
//!   call of its session, which ends the session).
//!
//! The driver reports each request as a [`RequestRecord`] the moment it finishes;
//! every figure of the load point is derived from those records
//! (the run's `PointBuilder`), so a live run and `recover` compute them
//! alike. Times are kept as offsets from the load point's [`Anchor`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use results::{ErrorClass, NotSentReason};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use workloads::generate::{RequestStream, SessionPlan, fit_to_context};
use workloads::{Backend, BackendError, Request};

use crate::clock::Anchor;
use crate::record::{Finished, RequestRecord};
use crate::timer::RequestTimer;

/// Interrupt level shared by a whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interrupt {
    /// Keep going.
    None,
    /// Stop sending; drain what is in flight.
    Stop,
    /// Cancel what is in flight.
    Cancel,
}

/// A measurement sent to the collector as it happens.
#[derive(Debug)]
pub enum Measurement {
    /// A request finished or failed.
    Request(Box<RequestRecord>),
    /// A cold-start probe finished or failed (reported apart).
    ColdStart(Box<RequestRecord>),
}

/// How an open loop's sessions are started at their scheduled instants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Launcher {
    /// A dedicated thread sleeps to each instant (`nanosleep`: tens of microseconds
    /// late) and hands the session to the runtime. tokio's timer rounds deadlines up
    /// to its next 1 ms tick, which would make every send up to 1 ms late.
    #[default]
    Thread,
    /// tokio's timer: follows tokio's paused clock, for deterministic tests.
    Tokio,
}

/// Settings of one load point.
pub struct LoadPoint {
    /// Workload name.
    pub workload: String,
    /// Target label for records.
    pub target_label: String,
    /// The request stream.
    pub stream: RequestStream,
    /// Stop sending after this long.
    pub max_duration: Option<Duration>,
    /// How long in-flight requests may run after sending stops.
    pub drain_timeout: Duration,
    /// Deadline of each request.
    pub request_timeout: Duration,
    /// The target's context limit (requests are capped to fit it).
    pub context_limit: Option<u32>,
    /// Who counts tokens when the target reports nothing.
    pub fallback_source: results::TokenSource,
    /// How an open loop's sessions are started.
    pub launcher: Launcher,
    /// Opened just before measurement starts (after warm-up and cold-start probes),
    /// so a server-metrics scraper takes the window's first scrape before any measured
    /// request is sent.
    pub measure_gate: Option<MeasureGate>,
}

/// A handshake at the start of measurement: the driver says it is ready, then waits
/// for `go` (or for the other side to go away) before the first measured send.
pub struct MeasureGate {
    /// The driver is about to measure.
    pub ready: tokio::sync::oneshot::Sender<()>,
    /// Measuring may start.
    pub go: tokio::sync::oneshot::Receiver<()>,
}

/// What happened, besides the measurements.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The start of measurement (after warm-up and cold-start probes): every record's
    /// times are seconds after it.
    pub anchor: Anchor,
    /// Sessions never started (the run stopped first).
    pub sessions_not_started: u64,
    /// Calls of the stream that were not sent, by reason.
    pub not_sent: BTreeMap<NotSentReason, u64>,
    /// Warm-up requests that failed.
    pub warmup_failed: u64,
    /// Whether the duration bound stopped sending.
    pub duration_hit: bool,
    /// Whether the drain deadline cancelled requests.
    pub drain_cancelled: bool,
    /// A local engine's counters when measurement started (after warm-up) and when
    /// the drain ended.
    pub engine_counters: (
        Option<workloads::EngineCounters>,
        Option<workloads::EngineCounters>,
    ),
}

struct Ctx {
    backend: Arc<dyn Backend>,
    lp: LoadPoint,
    tx: mpsc::UnboundedSender<Measurement>,
    stop: watch::Receiver<bool>,
    cancel: watch::Receiver<bool>,
    interrupt: watch::Receiver<Interrupt>,
    t0: Instant,
    /// No request is sent at or after this instant (the duration bound).
    send_deadline: Option<Instant>,
    /// Requests sent (records made).
    sent: AtomicU64,
    /// Calls of started sessions that were not sent, by reason.
    not_sent: Mutex<BTreeMap<NotSentReason, u64>>,
    /// What stopped sending first: an interrupt or the duration bound.
    stopped_by: Arc<OnceLock<NotSentReason>>,
}

impl Ctx {
    fn may_send(&self, at: Instant) -> bool {
        !*self.stop.borrow() && self.send_deadline.is_none_or(|d| at < d)
    }

    /// Why sending has stopped: what stopped it first; before its helper has said
    /// (a call due just at the bound), an interrupt if there was one, else the bound.
    fn stop_reason(&self) -> NotSentReason {
        match self.stopped_by.get() {
            Some(r) => *r,
            None if *self.interrupt.borrow() != Interrupt::None => NotSentReason::Interrupted,
            None => NotSentReason::DurationBound,
        }
    }

    fn not_sent(&self, reason: NotSentReason, calls: usize) {
        if calls > 0 {
            let mut m = self.not_sent.lock().unwrap_or_else(|p| p.into_inner());
            *m.entry(reason).or_default() += calls as u64;
        }
    }
}

async fn flag(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means the load point is over; waiting forever is then right.
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Fits a request to the context, if the target has a limit.
fn fit(req: &Request, limit: Option<u32>) -> Result<(Request, bool), BackendError> {
    let Some(limit) = limit else {
        return Ok((req.clone(), false));
    };
    match fit_to_context(req, limit) {
        Ok(None) => Ok((req.clone(), false)),
        Ok(Some(capped)) => Ok((capped, true)),
        Err(e) => Err(BackendError::new(
            ErrorClass::Other,
            format!(
                "{} output tokens cannot fit the context of {}",
                e.output_tokens, e.context_tokens
            ),
        )),
    }
}

async fn send_one(ctx: &Ctx, req: &Request, scheduled: Instant) -> RequestRecord {
    let mut cancel = ctx.cancel.clone();
    let sent = Instant::now();
    ctx.sent.fetch_add(1, Ordering::Relaxed);
    let mut timer = RequestTimer::new(sent).with_timeout(ctx.lp.request_timeout);
    let (req, capped) = match fit(req, ctx.lp.context_limit) {
        Ok(x) => x,
        Err(e) => {
            let f = finished(ctx, req, false, scheduled);
            return RequestRecord::new(f, timer, Err(&e));
        }
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(ctx.lp.request_timeout, ctx.backend.generate(&req, &mut timer)) => match r {
            Ok(r) => r,
            Err(_) => Err(BackendError::new(ErrorClass::Timeout, format!("no completion within {:?}", ctx.lp.request_timeout))),
        },
        _ = flag(&mut cancel) => Err(BackendError::new(ErrorClass::Cancelled, "cancelled by the harness (drain deadline or interrupt)")),
    };
    let f = finished(ctx, &req, capped, scheduled);
    RequestRecord::new(f, timer, outcome.as_ref())
}

fn finished<'a>(ctx: &'a Ctx, req: &'a Request, capped: bool, scheduled: Instant) -> Finished<'a> {
    Finished {
        workload: &ctx.lp.workload,
        target: &ctx.lp.target_label,
        seed: ctx.lp.stream.seed,
        request: req,
        input_capped: capped,
        t0: ctx.t0,
        scheduled,
        ended: Instant::now(),
        fallback_source: ctx.lp.fallback_source,
    }
}

async fn run_session(ctx: Arc<Ctx>, session: SessionPlan, start: Instant) {
    let mut stop = ctx.stop.clone();
    let mut intended = start;
    let mut end = start;
    let n = session.calls.len();
    for (k, req) in session.calls.iter().enumerate() {
        if k > 0 {
            // Think times are bounded (a day) when the workload is validated.
            let think = Duration::try_from_secs_f64(req.think_ms / 1000.0).unwrap_or(Duration::MAX);
            match end.checked_add(think) {
                Some(at) => intended = at,
                None => {
                    ctx.not_sent(NotSentReason::DurationBound, n - k);
                    return;
                }
            }
            // A call intended after the duration bound is never sent: no need to
            // wait for it.
            if ctx.send_deadline.is_some_and(|d| intended >= d) {
                ctx.not_sent(NotSentReason::DurationBound, n - k);
                return;
            }
        }
        // A due call goes at once: tokio's timer would hold even a past deadline
        // until its next tick.
        if Instant::now() < intended {
            tokio::select! {
                _ = sleep_until(intended) => {}
                _ = flag(&mut stop) => {}
            }
        }
        if !ctx.may_send(Instant::now()) {
            ctx.not_sent(ctx.stop_reason(), n - k);
            return;
        }
        let rec = send_one(&ctx, req, intended).await;
        end = Instant::now();
        let ok = rec.ok();
        let cancelled = rec.error_class == Some(ErrorClass::Cancelled);
        let _ = ctx.tx.send(Measurement::Request(Box::new(rec)));
        if !ok {
            // A call cancelled by the harness (drain deadline, second interrupt) did
            // not fail of itself: the rest of its session goes unsent for what stopped
            // the run.
            let why = if cancelled {
                ctx.stop_reason()
            } else {
                NotSentReason::AfterFailedCall
            };
            ctx.not_sent(why, n - k - 1);
            return;
        }
    }
}

/// `s` seconds after `t0` (a schedule's offset), saturating far in the future: never a
/// panic, whatever the schedule holds.
fn after(t0: std::time::Instant, s: f64) -> std::time::Instant {
    let d = Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
    t0.checked_add(d)
        .or_else(|| t0.checked_add(FAR))
        .unwrap_or(t0)
}

/// A century: "never" for a schedule.
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Sets its flag when dropped: tells the launch thread to stop however the send loop
/// ends.
struct QuitOnDrop(Arc<AtomicBool>);

impl Drop for QuitOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Longest single sleep of the launch thread, so that it sees `quit` soon.
const LAUNCH_POLL: Duration = Duration::from_millis(50);

/// Starts the thread that wakes at each scheduled instant (`t0` + offset, seconds)
/// and sends a tick; `None` if no thread could be started (the caller then uses
/// tokio's timer). The thread ends after the last tick, when the receiver is gone or
/// when `quit` is set.
fn launch_thread(
    t0: Instant,
    offsets: &[f64],
) -> Option<(mpsc::UnboundedReceiver<()>, Arc<AtomicBool>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let quit = Arc::new(AtomicBool::new(false));
    let t0 = t0.into_std();
    let offsets = offsets.to_vec();
    let q = Arc::clone(&quit);
    let spawned = std::thread::Builder::new()
        .name("infermeter-launch".into())
        .spawn(move || {
            for off in offsets {
                let at = after(t0, off);
                loop {
                    if q.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = std::time::Instant::now();
                    if now >= at {
                        break;
                    }
                    std::thread::sleep((at - now).min(LAUNCH_POLL));
                }
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some((rx, quit)),
        Err(e) => {
            tracing::warn!("no launch thread ({e}); open-loop sends use tokio's 1 ms timer");
            None
        }
    }
}

/// Runs one load point; measurements go to `tx` as they happen.
pub async fn run_load_point(
    backend: Arc<dyn Backend>,
    mut lp: LoadPoint,
    tx: mpsc::UnboundedSender<Measurement>,
    interrupt: watch::Receiver<Interrupt>,
) -> Outcome {
    let mut warmup_failed = 0;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let cancel_tx = Arc::new(cancel_tx);

    // Warm-up: one at a time, measured nowhere.
    for req in &lp.stream.warmup {
        if *interrupt.borrow() != Interrupt::None {
            break;
        }
        let mut sink = RequestTimer::new(Instant::now()).with_timeout(lp.request_timeout);
        let res = match fit(req, lp.context_limit) {
            Ok((r, _)) => tokio::time::timeout(lp.request_timeout, backend.generate(&r, &mut sink))
                .await
                .ok(),
            Err(_) => None,
        };
        if !matches!(res, Some(Ok(_))) {
            warmup_failed += 1;
        }
    }

    // Cold-start probes: each after its idle period, one at a time, reported apart.
    let cold_t0 = Instant::now();
    for req in &lp.stream.cold {
        let mut irq = interrupt.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::try_from_secs_f64(lp.stream.cold_idle_s).unwrap_or(Duration::MAX)) => {}
            _ = irq.wait_for(|i| *i != Interrupt::None) => {}
        }
        if *interrupt.borrow() != Interrupt::None {
            break;
        }
        let scheduled = Instant::now();
        let mut timer = RequestTimer::new(scheduled).with_timeout(lp.request_timeout);
        let (r, capped) = match fit(req, lp.context_limit) {
            Ok(x) => x,
            Err(_) => (req.clone(), false),
        };
        let res = match tokio::time::timeout(lp.request_timeout, backend.generate(&r, &mut timer))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(BackendError::new(
                ErrorClass::Timeout,
                format!("no completion within {:?}", lp.request_timeout),
            )),
        };
        let f = Finished {
            workload: &lp.workload,
            target: &lp.target_label,
            seed: lp.stream.seed,
            request: &r,
            input_capped: capped,
            t0: cold_t0,
            scheduled,
            ended: Instant::now(),
            fallback_source: lp.fallback_source,
        };
        let mut rec = RequestRecord::new(f, timer, res.as_ref());
        rec.cold_start = true;
        let _ = tx.send(Measurement::ColdStart(Box::new(rec)));
    }

    if let Some(gate) = lp.measure_gate.take()
        && gate.ready.send(()).is_ok()
    {
        let _ = gate.go.await;
    }
    let counters_before = backend.engine_counters();
    // tokio's clock (paused in deterministic tests), on both clocks.
    let t0 = Instant::now();
    let anchor = Anchor {
        at: t0.into_std(),
        wall: chrono::Utc::now(),
    };
    // Forward interrupts and the duration bound to this load point's stop/cancel; the
    // first to stop sending names why calls were left unsent.
    let stopped_by = Arc::new(OnceLock::new());
    let mut helpers = JoinSet::new();
    {
        let (stop_tx, cancel_tx, mut irq, by) = (
            Arc::clone(&stop_tx),
            Arc::clone(&cancel_tx),
            interrupt.clone(),
            Arc::clone(&stopped_by),
        );
        helpers.spawn(async move {
            if irq.wait_for(|i| *i >= Interrupt::Stop).await.is_ok() {
                let _ = by.set(NotSentReason::Interrupted);
                let _ = stop_tx.send(true);
                if irq.wait_for(|i| *i >= Interrupt::Cancel).await.is_ok() {
                    let _ = cancel_tx.send(true);
                }
            }
        });
    }
    let duration_deadline = lp.max_duration.map(|d| t0 + d);
    if let Some(deadline) = duration_deadline {
        let (stop_tx, by) = (Arc::clone(&stop_tx), Arc::clone(&stopped_by));
        helpers.spawn(async move {
            sleep_until(deadline).await;
            let _ = by.set(NotSentReason::DurationBound);
            let _ = stop_tx.send(true);
        });
    }

    // The sessions move out of the stream: an open loop drops each once it has run,
    // so the requests of a long run are not all held to its end (nor twice).
    let planned = lp.stream.request_count() as u64;
    let session_count = lp.stream.sessions.len();
    let sessions = std::mem::take(&mut lp.stream.sessions);
    let schedule = lp.stream.schedule.take();
    let concurrency = match lp.stream.arrival {
        workloads::arrival::Arrival::Closed { concurrency } => concurrency as usize,
        _ => 0,
    };
    let ctx = Arc::new(Ctx {
        backend,
        lp,
        tx,
        stop: stop_rx.clone(),
        cancel: cancel_rx,
        interrupt: interrupt.clone(),
        t0,
        send_deadline: duration_deadline,
        sent: AtomicU64::new(0),
        not_sent: Mutex::new(BTreeMap::new()),
        stopped_by,
    });
    let mut running = JoinSet::new();
    let mut stop = stop_rx.clone();
    let started = Arc::new(AtomicUsize::new(0));
    match schedule {
        Some(offsets) => {
            let launches = match ctx.lp.launcher {
                Launcher::Thread => launch_thread(t0, &offsets),
                Launcher::Tokio => None,
            };
            let mut launches = launches.map(|(rx, quit)| (rx, QuitOnDrop(quit)));
            for (session, offset) in sessions.into_iter().zip(offsets) {
                let at = Instant::from_std(after(t0.into_std(), offset));
                match launches.as_mut() {
                    Some((rx, _)) => tokio::select! {
                        _ = rx.recv() => {}
                        _ = flag(&mut stop) => {}
                    },
                    None => tokio::select! {
                        _ = sleep_until(at) => {}
                        _ = flag(&mut stop) => {}
                    },
                }
                if !ctx.may_send(at) {
                    break;
                }
                started.fetch_add(1, Ordering::Relaxed);
                running.spawn(run_session(Arc::clone(&ctx), session, at));
                // Reap finished sessions as we go: a JoinSet keeps every finished
                // task until it is joined, which would make memory grow with the
                // number of requests of an open-loop run.
                while running.try_join_next().is_some() {}
            }
        }
        None => {
            let sessions = Arc::new(sessions);
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency.max(1) {
                let (ctx, sessions, next, started) = (
                    Arc::clone(&ctx),
                    Arc::clone(&sessions),
                    Arc::clone(&next),
                    Arc::clone(&started),
                );
                running.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= sessions.len() || !ctx.may_send(Instant::now()) {
                            break;
                        }
                        started.fetch_add(1, Ordering::Relaxed);
                        run_session(Arc::clone(&ctx), sessions[i].clone(), Instant::now()).await;
                    }
                });
            }
        }
    }

    // Drain: wait for everything; once sending has stopped, in-flight work has until
    // the drain deadline.
    let mut drain_deadline: Option<Instant> = None;
    let mut drain_cancelled = false;
    loop {
        let deadline = drain_deadline;
        tokio::select! {
            r = running.join_next() => if r.is_none() { break },
            _ = flag(&mut stop), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + ctx.lp.drain_timeout);
            }
            _ = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() && !*cancel_tx.borrow() => {
                drain_cancelled = true;
                let _ = cancel_tx.send(true);
            }
        }
    }
    helpers.abort_all();
    let duration_hit = duration_deadline.is_some_and(|d| Instant::now() >= d);
    // What was neither sent nor counted by its session was never started.
    let mut not_sent = std::mem::take(&mut *ctx.not_sent.lock().unwrap_or_else(|p| p.into_inner()));
    let accounted = ctx.sent.load(Ordering::Relaxed) + not_sent.values().sum::<u64>();
    if planned > accounted {
        *not_sent.entry(ctx.stop_reason()).or_default() += planned - accounted;
    }
    Outcome {
        anchor,
        sessions_not_started: (session_count - started.load(Ordering::Relaxed)) as u64,
        not_sent,
        warmup_failed,
        duration_hit,
        drain_cancelled,
        engine_counters: (counters_before, ctx.backend.engine_counters()),
    }
}
