//! The harness measuring itself during a load point: its process's CPU time and peak
//! memory, and, at most every 50 ms while responses are arriving, how long a ready task
//! waits for the driver's event loop. When the loop or the schedule ran late, or the
//! process used (nearly) every CPU its event loop can use, the result is flagged
//! `client_bound`: its latencies may include the client's own delays.
//!
//! A late loop is not always the client's doing: a server on the same machine can take
//! every CPU while the client idles. The probe also reads the machine's CPU time
//! (`/proc/stat`) over the point and names the cause ([`results::BoundBy`]): the
//! client's own work (it used at least half the CPUs its loop can use; more
//! event-loop threads may help), the machine (other processes used at least half of
//! its CPUs while the client used little; more threads would not help), or unclear
//! (neither was busy: stolen VM time, the scheduler). Only the first is advised
//! `--client-threads`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use results::{ClientStats, LatencyHistogram};
use tokio::sync::{Notify, watch};

/// Shortest time between two samples of the event loop's lag: at most 20 a second
/// (1,200 a minute, enough for a p99).
pub const TICK: Duration = Duration::from_millis(50);

/// Rung by the client's own work (a response's bytes or an engine's tokens arriving),
/// at most every [`TICK`]. The lag sample is the time from the ring to the sampler
/// task running: how long a task made ready by the client's work waited for the event
/// loop. A timer would wake an idle runtime just to sample it, and each such wake cost
/// about 0.12 ms of CPU on a VM (at 100 a second, half the client's CPU in slow
/// streaming runs), while an idle loop has no lag to measure.
static ACTIVITY: Notify = Notify::const_new();
/// When the sampler was last rung, and when it may be rung next: nanoseconds after
/// [`origin`].
static RUNG_NS: AtomicU64 = AtomicU64::new(0);
static DUE_NS: AtomicU64 = AtomicU64::new(0);

fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// Says the client is at work: when a sample is due, stamps the moment and wakes the
/// lag sampler. Cheap enough to call per read (a clock read and an atomic load).
pub fn active() {
    let now = now_ns();
    if now >= DUE_NS.load(Ordering::Relaxed) {
        DUE_NS.store(now + TICK.as_nanos() as u64, Ordering::Relaxed);
        RUNG_NS.store(now, Ordering::Relaxed);
        ACTIVITY.notify_one();
    }
}

/// Event-loop lag p99 (ms) above which the client is said to have limited the run.
pub const LAG_LIMIT_MS: f64 = 1.0;
/// Schedule lag p99 (ms) above which the client is said to have limited the run.
/// Open-loop sends are woken by a dedicated thread (tens of microseconds late), but
/// a session's later calls wait on tokio's timer, which fires up to 1 ms after its
/// deadline by design; beyond 2 ms the client was held up.
pub const SCHEDULE_LIMIT_MS: f64 = 2.0;
/// Share of the machine's CPUs above which the client is said to have limited it.
pub const CPU_LIMIT: f64 = 0.9;
/// Share of the CPUs its event loop can use from which a late client is said to be
/// late by its own work.
pub const CLIENT_BUSY: f64 = 0.5;
/// Share of the machine's CPUs that other processes used from which a late client
/// (not itself busy) is said to be late because the machine was busy.
pub const OTHERS_BUSY: f64 = 0.5;

/// The machine's CPU time since boot from `/proc/stat`'s `cpu` line, seconds of
/// (busy, all, stolen) summed over every CPU; busy counts user, nice, system, irq,
/// softirq and steal, all adds idle and iowait.
pub fn machine_cpu_s() -> Option<MachineCpu> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// CPU seconds of the whole machine (see [`machine_cpu_s`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MachineCpu {
    /// Time some task ran, or the hypervisor took the CPU (steal).
    pub busy_s: f64,
    /// All time, idle included.
    pub all_s: f64,
    /// Time the hypervisor ran something else.
    pub steal_s: f64,
}

fn parse_proc_stat(text: &str) -> Option<MachineCpu> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse::<f64>().ok().map(|t| t / 100.0))
        .collect::<Option<_>>()?;
    if f.len() < 8 {
        return None;
    }
    let (idle, iowait) = (f[3], f[4]);
    let all: f64 = f.iter().sum();
    Some(MachineCpu {
        busy_s: all - idle - iowait,
        all_s: all,
        steal_s: f[7],
    })
}

/// Why a late client was late: `client_share` of the CPUs its loop can use,
/// `others_share` of the machine's CPUs used by other processes.
pub fn bound_by(client_share: f64, others_share: Option<f64>) -> results::BoundBy {
    if client_share >= CLIENT_BUSY {
        results::BoundBy::Client
    } else if others_share.is_some_and(|o| o >= OTHERS_BUSY) {
        results::BoundBy::Machine
    } else {
        results::BoundBy::Unclear
    }
}

/// CPU time of this process, seconds (user + system, every thread, those that have
/// ended included), to the nanosecond: the scheduler's own account
/// (`CLOCK_PROCESS_CPUTIME_ID`), where `/proc/self/stat` counts 10 ms ticks.
pub fn process_cpu_s() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
}

/// CPU time of process `pid` (user + system, its threads included), seconds.
pub fn process_cpu_s_of(pid: u32) -> Option<f64> {
    cpu_s_from(&format!("/proc/{pid}/stat"))
}

fn cpu_s_from(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // The kernel reports USER_HZ ticks, 100 per second on Linux.
    Some(ticks as f64 / 100.0)
}

/// Worker threads of the current tokio runtime (1 for a current-thread runtime);
/// `None` outside one.
pub fn event_loop_threads() -> Option<u32> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    u32::try_from(handle.metrics().num_workers()).ok()
}

/// Peak resident memory of this process (VmHWM), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A running self-measurement.
pub struct ClientProbe {
    cpu_start: Option<f64>,
    machine_start: Option<MachineCpu>,
    lag: Arc<Mutex<LatencyHistogram>>,
    stop: watch::Sender<bool>,
}

impl ClientProbe {
    /// Starts the lag sampler on the current runtime.
    pub fn start() -> Self {
        let lag = Arc::new(Mutex::new(LatencyHistogram::new()));
        let (stop, mut stopped) = watch::channel(false);
        let l = Arc::clone(&lag);
        DUE_NS.store(0, Ordering::Relaxed);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = ACTIVITY.notified() => {}
                    _ = stopped.changed() => break,
                }
                let waited_ns = now_ns().saturating_sub(RUNG_NS.load(Ordering::Relaxed));
                l.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record_ms(waited_ns as f64 / 1e6);
            }
        });
        Self {
            cpu_start: process_cpu_s(),
            machine_start: machine_cpu_s(),
            lag,
            stop,
        }
    }

    /// Stops the sampler and judges the load point: `requests` sent, `output_tokens`,
    /// its schedule lag p99 (ms), its window (s), and whether a local engine shares
    /// the process.
    pub fn finish(
        self,
        requests: u64,
        output_tokens: u64,
        queue_p99_ms: Option<f64>,
        window_s: f64,
        local_engine: bool,
    ) -> ClientStats {
        let _ = self.stop.send(true);
        let cpu_s = match (self.cpu_start, process_cpu_s()) {
            (Some(a), Some(b)) => Some(((b - a) * 1000.0).round() / 1000.0),
            _ => None,
        };
        let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner()).summary();
        let mut reasons = Vec::new();
        if let Some(p) = lag.p99.filter(|&p| p > LAG_LIMIT_MS) {
            reasons.push(format!(
                "the driver's event loop ran late: event-loop lag p99 {p} ms (over {LAG_LIMIT_MS} ms)"
            ));
        }
        if let Some(q) = queue_p99_ms.filter(|&q| q > SCHEDULE_LIMIT_MS) {
            reasons.push(format!(
                "requests were sent late: schedule lag p99 {q} ms (over {SCHEDULE_LIMIT_MS} ms; includes waits for a connection slot)"
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = event_loop_threads();
        // The CPUs the client's event loop can use: its threads, at most the machine's.
        let usable = threads.map_or(cpus, |t| (t as usize).clamp(1, cpus)) as f64;
        let client_share = cpu_s
            .filter(|_| window_s > 0.0 && !local_engine)
            .map(|c| c / window_s / usable);
        if let Some(share) = client_share.filter(|&s| s >= CPU_LIMIT) {
            reasons.push(format!(
                "the client used {:.0}% of the {usable} CPUs its event loop can use",
                share * 100.0
            ));
        }
        // The machine over the same span: its busy share, and what others used of it.
        let machine = match (self.machine_start, machine_cpu_s()) {
            (Some(a), Some(b)) if b.all_s > a.all_s => Some((
                (b.busy_s - a.busy_s) / (b.all_s - a.all_s),
                (b.steal_s - a.steal_s) / (b.all_s - a.all_s),
            )),
            _ => None,
        };
        let machine_busy = machine.map(|(busy, _)| round3(busy.clamp(0.0, 1.0)));
        let others = match (machine_busy, cpu_s) {
            (Some(busy), Some(c)) if window_s > 0.0 => {
                Some(round3((busy - c / window_s / cpus as f64).clamp(0.0, 1.0)))
            }
            _ => None,
        };
        let cause = (!reasons.is_empty() && !local_engine)
            .then(|| bound_by(client_share.unwrap_or(0.0), others));
        if let Some(c) = cause {
            let client =
                client_share.map_or("an unknown share".into(), |s| format!("{:.1}%", s * 100.0));
            reasons.push(match c {
                results::BoundBy::Client => format!(
                    "cause: the client's own work ({client} of the CPUs its event loop can use)"
                ),
                results::BoundBy::Machine => format!(
                    "cause: the machine, not the client: other processes used {:.0}% of its \
                     {cpus} CPUs, the client {client} of the CPUs its loop can use; more \
                     client threads would not help (run the client where the server does not \
                     take its CPUs, or give the server fewer threads)",
                    others.unwrap_or(0.0) * 100.0
                ),
                results::BoundBy::Unclear => format!(
                    "cause unclear: the client used {client} of the CPUs its loop can use and \
                     other processes {} of the machine's{}",
                    others.map_or("an unknown share".into(), |o| format!("{:.0}%", o * 100.0)),
                    machine.map_or(String::new(), |(_, steal)| format!(
                        " (stolen by the hypervisor: {:.0}%)",
                        steal * 100.0
                    ))
                ),
            });
        }
        let per = |n: u64| cpu_s.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
        ClientStats {
            cpu_s,
            cpu_includes_engine: local_engine,
            cpu_us_per_request: per(requests),
            cpu_us_per_output_token: per(output_tokens),
            peak_rss_bytes: peak_rss_bytes(),
            loop_lag_ms: lag,
            client_bound: !reasons.is_empty(),
            bound_by: cause,
            client_cpu_share: client_share.map(round3),
            machine_cpu_busy_share: machine_busy,
            reasons,
            event_loop_threads: threads,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_of_a_late_client_is_named() {
        use results::BoundBy;
        // The case a user met: the client at 0.65% of a core, a server on the same
        // machine using it all.
        assert_eq!(bound_by(0.0065, Some(0.97)), BoundBy::Machine);
        assert_eq!(bound_by(0.8, Some(0.97)), BoundBy::Client);
        assert_eq!(bound_by(0.6, None), BoundBy::Client);
        assert_eq!(bound_by(0.1, Some(0.2)), BoundBy::Unclear);
        assert_eq!(bound_by(0.1, None), BoundBy::Unclear);
    }

    #[test]
    fn proc_stat_is_read_in_seconds() {
        let text = "cpu  100 20 30 800 50 5 5 10 0 0\ncpu0 50 10 15 400 25 2 3 5 0 0\n";
        let m = parse_proc_stat(text).unwrap();
        assert!((m.all_s - 10.2).abs() < 1e-9, "{m:?}");
        assert!((m.busy_s - 1.7).abs() < 1e-9, "{m:?}");
        assert!((m.steal_s - 0.1).abs() < 1e-9, "{m:?}");
        assert_eq!(parse_proc_stat("cpu 1 2\n"), None);
        assert_eq!(parse_proc_stat("intr 5\n"), None);
        let live = machine_cpu_s().expect("/proc/stat");
        assert!(live.all_s >= live.busy_s && live.busy_s > 0.0, "{live:?}");
    }

    #[test]
    fn the_process_reports_its_cpu_and_memory() {
        let a = process_cpu_s().expect("the process clock");
        let ticks_a = process_cpu_s_of(std::process::id()).expect("/proc/PID/stat");
        // Burn 60 ms of CPU on this thread.
        let wall = std::time::Instant::now();
        let mut x = 0u64;
        let busy = rustix::time::ClockId::ThreadCPUTime;
        let cpu = |t: rustix::time::Timespec| t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9;
        let t0 = cpu(rustix::time::clock_gettime(busy));
        while cpu(rustix::time::clock_gettime(busy)) - t0 < 0.06 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = process_cpu_s().unwrap();
        let ticks_b = process_cpu_s_of(std::process::id()).unwrap();
        // The process clock saw this thread's 60 ms, and no more than the threads
        // of this test binary could have used meanwhile.
        let used = b - a;
        let most = wall.elapsed().as_secs_f64()
            * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(
            used >= 0.06 && used <= most + 0.001,
            "{used} s of CPU, at most {most}"
        );
        // The 10 ms ticks of /proc move too.
        assert!(ticks_b > ticks_a, "{ticks_a} -> {ticks_b}");
        assert!(peak_rss_bytes().unwrap() > 1 << 20);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_event_loop_is_flagged_client_bound() {
        let probe = ClientProbe::start();
        // Another task that keeps the only runtime thread busy 5 ms at a time while
        // responses "arrive": a ready task waits behind it.
        let busy = tokio::spawn(async {
            let end = std::time::Instant::now() + Duration::from_millis(400);
            while std::time::Instant::now() < end {
                active();
                let t = std::time::Instant::now();
                while t.elapsed() < Duration::from_millis(5) {
                    std::hint::spin_loop();
                }
                tokio::task::yield_now().await;
            }
        });
        busy.await.unwrap();
        let s = probe.finish(10, 100, Some(0.1), 0.4, false);
        assert!(s.client_bound, "{s:?}");
        // A current-thread runtime: one event-loop thread, recorded.
        assert_eq!(s.event_loop_threads, Some(1), "{s:?}");
        assert!(s.reasons[0].contains("event loop ran late"), "{s:?}");
        assert!(s.loop_lag_ms.max.unwrap() >= 4.0, "{s:?}");
        // Samples are at least TICK apart: 400 ms of activity, at most 9.
        assert!(s.loop_lag_ms.count <= 9, "{s:?}");
        // A schedule lag over 1 ms is a reason of its own.
        let late = ClientProbe::start().finish(10, 100, Some(3.0), 1.0, false);
        assert!(
            late.reasons.iter().any(|r| r.contains("sent late")),
            "{late:?}"
        );

        // Activity on an idle loop: sampled, no lag.
        let quiet = ClientProbe::start();
        for _ in 0..6 {
            active();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let s = quiet.finish(10, 100, Some(0.1), 0.36, false);
        assert!(s.loop_lag_ms.count >= 5, "{s:?}");
        assert!(!s.client_bound, "{s:?}");
    }
}
