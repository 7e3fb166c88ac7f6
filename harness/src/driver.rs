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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use results::ErrorClass;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use workloads::generate::{RequestStream, SessionPlan, fit_to_context};
use workloads::{Backend, BackendError, Request};

use crate::collector::{Finished, RequestRecord, RequestTimer, TaskRecord, ms};

/// Shortest steady-state window used for energy, seconds (an energy counter needs
/// about a second to move by a reliable amount).
pub const STEADY_MIN_S: f64 = 1.0;

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
    /// A session finished (or was cut short).
    Task(TaskRecord),
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
}

/// What happened, besides the measurements.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Seconds from the start of measurement to the last completion.
    pub measured_s: f64,
    /// Sessions never started (the run stopped first).
    pub sessions_not_started: u64,
    /// Warm-up requests that failed.
    pub warmup_failed: u64,
    /// Whether the duration bound stopped sending.
    pub duration_hit: bool,
    /// Whether the drain deadline cancelled requests.
    pub drain_cancelled: bool,
    /// The measured window on the monotonic clock: measurement start (after
    /// warm-up and cold-start probes) and the last completion.
    pub window: Option<(std::time::Instant, std::time::Instant)>,
    /// The steady-state part of it ([`crate::steady`]), when there is one.
    pub steady: Option<(std::time::Instant, std::time::Instant)>,
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
    t0: Instant,
    /// No request is sent at or after this instant (the duration bound).
    send_deadline: Option<Instant>,
    last_end: std::sync::Mutex<Instant>,
    /// Sends (+1) and completions (-1), for the steady-state window.
    flight: std::sync::Mutex<Vec<(Instant, i32)>>,
}

impl Ctx {
    fn may_send(&self, at: Instant) -> bool {
        !*self.stop.borrow() && self.send_deadline.is_none_or(|d| at < d)
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
    let mut timer = RequestTimer::new(sent);
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
    let mut first_sent = None;
    let mut end = start;
    let (mut calls, mut input, mut output) = (0u32, 0u64, 0u64);
    let mut completed = true;
    for (k, req) in session.calls.iter().enumerate() {
        if k > 0 {
            intended = end + Duration::from_secs_f64(req.think_ms / 1000.0);
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
            completed = false;
            break;
        }
        let rec = send_one(&ctx, req, intended).await;
        first_sent.get_or_insert(ctx.t0 + Duration::from_secs_f64(rec.sent_s));
        end = Instant::now();
        {
            let mut last = ctx.last_end.lock().unwrap_or_else(|p| p.into_inner());
            *last = (*last).max(end);
        }
        {
            let sent = ctx.t0 + Duration::from_secs_f64(rec.sent_s);
            let mut flight = ctx.flight.lock().unwrap_or_else(|p| p.into_inner());
            flight.push((sent, 1));
            flight.push((end, -1));
        }
        calls += 1;
        input += u64::from(rec.input_tokens);
        output += u64::from(rec.output_tokens);
        let ok = rec.ok();
        let _ = ctx.tx.send(Measurement::Request(Box::new(rec)));
        if !ok {
            completed = false;
            break;
        }
    }
    let task_ms = first_sent.map_or(0.0, |f| ms(end.saturating_duration_since(f)));
    let _ = ctx.tx.send(Measurement::Task(TaskRecord {
        calls,
        completed,
        task_ms,
        input_tokens: input,
        output_tokens: output,
    }));
}

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
                let at = t0 + Duration::from_secs_f64(off);
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
    lp: LoadPoint,
    tx: mpsc::UnboundedSender<Measurement>,
    interrupt: watch::Receiver<Interrupt>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let cancel_tx = Arc::new(cancel_tx);

    // Warm-up: one at a time, measured nowhere.
    for req in &lp.stream.warmup {
        if *interrupt.borrow() != Interrupt::None {
            break;
        }
        let mut sink = RequestTimer::new(Instant::now());
        let res = match fit(req, lp.context_limit) {
            Ok((r, _)) => tokio::time::timeout(lp.request_timeout, backend.generate(&r, &mut sink))
                .await
                .ok(),
            Err(_) => None,
        };
        if !matches!(res, Some(Ok(_))) {
            outcome.warmup_failed += 1;
        }
    }

    // Cold-start probes: each after its idle period, one at a time, reported apart.
    let cold_t0 = Instant::now();
    for req in &lp.stream.cold {
        let mut irq = interrupt.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(lp.stream.cold_idle_s)) => {}
            _ = irq.wait_for(|i| *i != Interrupt::None) => {}
        }
        if *interrupt.borrow() != Interrupt::None {
            break;
        }
        let scheduled = Instant::now();
        let mut timer = RequestTimer::new(scheduled);
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

    outcome.engine_counters.0 = backend.engine_counters();
    let t0 = Instant::now();
    // Forward interrupts and the duration bound to this load point's stop/cancel.
    let mut helpers = JoinSet::new();
    {
        let (stop_tx, cancel_tx, mut irq) = (
            Arc::clone(&stop_tx),
            Arc::clone(&cancel_tx),
            interrupt.clone(),
        );
        helpers.spawn(async move {
            if irq.wait_for(|i| *i >= Interrupt::Stop).await.is_ok() {
                let _ = stop_tx.send(true);
                if irq.wait_for(|i| *i >= Interrupt::Cancel).await.is_ok() {
                    let _ = cancel_tx.send(true);
                }
            }
        });
    }
    let duration_deadline = lp.max_duration.map(|d| t0 + d);
    if let Some(deadline) = duration_deadline {
        let stop_tx = Arc::clone(&stop_tx);
        helpers.spawn(async move {
            sleep_until(deadline).await;
            let _ = stop_tx.send(true);
        });
    }

    let sessions = lp.stream.sessions.clone();
    let schedule = lp.stream.schedule.clone();
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
        t0,
        send_deadline: duration_deadline,
        last_end: std::sync::Mutex::new(t0),
        flight: std::sync::Mutex::new(Vec::new()),
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
                let at = t0 + Duration::from_secs_f64(offset);
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
    loop {
        let deadline = drain_deadline;
        tokio::select! {
            r = running.join_next() => if r.is_none() { break },
            _ = flag(&mut stop), if drain_deadline.is_none() => {
                drain_deadline = Some(Instant::now() + ctx.lp.drain_timeout);
            }
            _ = async { sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() && !*cancel_tx.borrow() => {
                outcome.drain_cancelled = true;
                let _ = cancel_tx.send(true);
            }
        }
    }
    helpers.abort_all();
    outcome.engine_counters.1 = ctx.backend.engine_counters();
    outcome.duration_hit = duration_deadline.is_some_and(|d| Instant::now() >= d);
    outcome.sessions_not_started =
        (ctx.lp.stream.sessions.len() - started.load(Ordering::Relaxed)) as u64;
    let last_end = *ctx.last_end.lock().unwrap_or_else(|p| p.into_inner());
    outcome.measured_s = last_end.saturating_duration_since(t0).as_secs_f64();
    outcome.window = Some((t0.into_std(), last_end.into_std()));
    let events: Vec<(f64, i32)> = ctx
        .flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|&(t, d)| (t.saturating_duration_since(t0).as_secs_f64(), d))
        .collect();
    outcome.steady = crate::steady::steady_window(&events, STEADY_MIN_S).map(|(a, b)| {
        let at = |s: f64| (t0 + Duration::from_secs_f64(s)).into_std();
        (at(a), at(b))
    });
    outcome
}
