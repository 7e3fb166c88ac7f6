//! `infermeter bench-client`: the client's own capacity. It starts the scripted
//! loopback server as a child process (`infermeter serve-scripted`), drives it with
//! `infermeter run` child processes at rising open-loop rates of short streamed
//! responses, and reports for each rate the schedule lag, the event-loop lag, the
//! client's CPU per request and per streamed token, and the server's CPU, so that it
//! says which side saturated. A rate is *held* when every request succeeded, the
//! achieved rate was within 5% of the offered one, and both schedule lag p99 and
//! event-loop lag p99 stayed under 1 ms; the result is the highest rate up to which
//! every rate tried was held (a lucky rate above a miss does not count), and the
//! highest held rate of all is reported beside it.
//!
//! A second phase measures memory per in-flight request: two closed loops against a
//! slow server (each response takes about a second), at a low and a high concurrency;
//! the difference of their peak RSS over the difference of their concurrency.
//!
//! Every figure comes from the children's own reports (`client`, `latency`,
//! `throughput`), so it is what a user's run of the same shape would show.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use results::Report;
use serde::Serialize;

use crate::error::{bad_input, oob};
use crate::files::read_report;

/// What `bench-client` measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Offered open-loop rates, requests per second, in order.
    pub rates: Vec<f64>,
    /// Seconds of sending per rate.
    pub seconds: f64,
    /// Output tokens of every response (streamed one per chunk).
    pub tokens: u32,
    /// The server's time to first token, ms.
    pub ttft_ms: f64,
    /// The server's gap between tokens, ms.
    pub itl_ms: f64,
    /// Concurrencies of the memory phase: LOW,HIGH (0,0 skips it).
    pub memory_concurrency: Vec<u32>,
    /// Directory for the children's reports and `bench-client.json`.
    pub out: PathBuf,
}

/// One offered rate.
#[derive(Clone, Debug, Serialize)]
pub struct RatePoint {
    /// Offered rate, requests per second.
    pub offered_rps: f64,
    /// Successful requests per second over the measured window.
    pub achieved_rps: f64,
    /// Measured requests sent.
    pub sent: u64,
    /// Failed requests.
    pub failed: u64,
    /// Schedule lag (actual minus intended send) p50, ms.
    pub schedule_lag_p50_ms: Option<f64>,
    /// Schedule lag p99, ms.
    pub schedule_lag_p99_ms: Option<f64>,
    /// Event-loop lag p99, ms.
    pub loop_lag_p99_ms: Option<f64>,
    /// Client CPU per request, microseconds.
    pub client_cpu_us_per_request: Option<f64>,
    /// Client CPU per streamed output token, microseconds.
    pub client_cpu_us_per_output_token: Option<f64>,
    /// Client CPU over the run's wall time, in cores.
    pub client_cpu_cores: Option<f64>,
    /// Server CPU over the same wall time, in cores.
    pub server_cpu_cores: Option<f64>,
    /// The whole machine's busy CPU (every process and the kernel's network work)
    /// over the same wall time, in cores.
    pub machine_cpu_cores: Option<f64>,
    /// Client peak RSS, bytes.
    pub client_peak_rss_bytes: Option<u64>,
    /// Whether the rate was held (see the module documentation).
    pub held: bool,
    /// Why not, when not.
    pub missed: Vec<String>,
}

/// The memory phase.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPoint {
    /// Concurrency of the low and high runs.
    pub concurrency: (u32, u32),
    /// Peak RSS of the low and high runs, bytes.
    pub peak_rss_bytes: (u64, u64),
    /// (high - low RSS) / (high - low concurrency), bytes.
    pub bytes_per_in_flight_request: f64,
}

/// `bench-client.json`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchClientSummary {
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// The server's pace and the response length.
    pub server: String,
    /// Every rate tried.
    pub rates: Vec<RatePoint>,
    /// Highest offered rate up to which every rate tried was held, requests per
    /// second.
    pub max_rate_held_rps: Option<f64>,
    /// Highest offered rate held at all (at or above `max_rate_held_rps`).
    pub max_rate_held_any_rps: Option<f64>,
    /// At the first rate not held: which side used more CPU.
    pub saturated: Option<String>,
    /// The memory phase.
    pub memory: Option<MemoryPoint>,
}

/// Runs `bench-client`.
pub fn bench_client(args: &Options) -> Result<()> {
    if args.rates.is_empty() {
        return Err(bad_input("--rates: give positive requests per second"));
    }
    for &r in &args.rates {
        workloads::bounds::number(
            "--rates",
            r,
            workloads::bounds::MIN_RATE_RPS,
            workloads::bounds::MAX_RATE_RPS,
            " requests per second",
        )
        .map_err(oob)?;
    }
    workloads::bounds::seconds("--seconds", args.seconds, workloads::bounds::MAX_DURATION_S)
        .map_err(oob)?;
    if args.seconds * args.rates.iter().copied().fold(0.0, f64::max)
        > workloads::bounds::MAX_REQUESTS as f64
    {
        return Err(bad_input(format!(
            "--seconds x --rates: at most {} requests per rate",
            workloads::bounds::MAX_REQUESTS
        )));
    }
    check_pace(args.ttft_ms, args.itl_ms)?;
    if args.memory_concurrency.len() != 2 || args.memory_concurrency[0] > args.memory_concurrency[1]
    {
        return Err(bad_input(
            "--memory-concurrency: give LOW,HIGH with LOW <= HIGH",
        ));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = Server::start(args.ttft_ms, args.itl_ms)?;
    println!(
        "server: scripted, TTFT {} ms, ITL {} ms, {} tokens, one per chunk; {cpus} CPUs",
        args.ttft_ms, args.itl_ms, args.tokens
    );
    println!(
        "{:>8} {:>9} {:>7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7} {:>7} {:>8}  held",
        "offered",
        "achieved",
        "failed",
        "lag p50",
        "lag p99",
        "loop p99",
        "cpu us/r",
        "us/tok",
        "client",
        "server",
        "machine"
    );
    let mut rates = Vec::new();
    let mut misses_in_a_row = 0;
    for &rate in &args.rates {
        let requests = (rate * args.seconds).ceil() as u64;
        let wl = workload(
            &args.out,
            &format!("rate-{rate}"),
            &format!("arrival = \"constant\"\nrate_rps = {rate}"),
            (requests, 20),
            args.tokens,
        )?;
        let dir = args.out.join(format!("rate-{rate}"));
        let cpu0 = server.cpu_s();
        let idle0 = machine_idle_s();
        let t = Instant::now();
        let report = run_child(&server.base_url, &wl, &dir)?;
        let wall = t.elapsed().as_secs_f64();
        let per_s = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a) / wall),
            _ => None,
        };
        let mut p = rate_point(rate, &report, wall, per_s(cpu0, server.cpu_s()))?;
        p.machine_cpu_cores = per_s(idle0, machine_idle_s()).map(|idle| cpus as f64 - idle);
        println!(
            "{:>8.0} {:>9.1} {:>7} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7} {:>7} {:>8}  {}",
            p.offered_rps,
            p.achieved_rps,
            p.failed,
            fmt(p.schedule_lag_p50_ms, 3),
            fmt(p.schedule_lag_p99_ms, 3),
            fmt(p.loop_lag_p99_ms, 3),
            fmt(p.client_cpu_us_per_request, 1),
            fmt(p.client_cpu_us_per_output_token, 1),
            fmt(p.client_cpu_cores, 2),
            fmt(p.server_cpu_cores, 2),
            fmt(p.machine_cpu_cores, 2),
            if p.held {
                "yes".to_string()
            } else {
                format!("no: {}", p.missed.join("; "))
            }
        );
        misses_in_a_row = if p.held { 0 } else { misses_in_a_row + 1 };
        rates.push(p);
        if misses_in_a_row >= 2 {
            break;
        }
    }
    drop(server);
    let max_rate_held_rps = rates
        .iter()
        .take_while(|p| p.held)
        .map(|p| p.offered_rps)
        .reduce(f64::max);
    let max_rate_held_any_rps = rates
        .iter()
        .filter(|p| p.held)
        .map(|p| p.offered_rps)
        .reduce(f64::max);
    let saturated = rates.iter().find(|p| !p.held).map(|p| saturation(p, cpus));
    match max_rate_held_rps {
        Some(r) => println!("highest rate held (every rate up to it held): {r:.0} requests/s"),
        None => println!("no rate held"),
    }
    if let Some(any) = max_rate_held_any_rps.filter(|a| Some(*a) != max_rate_held_rps) {
        println!("highest rate held at all: {any:.0} requests/s (above a rate not held)");
    }
    if let Some(s) = &saturated {
        println!("{s}");
    }
    let memory = if args.memory_concurrency[1] > 0 {
        Some(memory_phase(args)?)
    } else {
        None
    };
    if let Some(m) = &memory {
        println!(
            "memory: peak RSS {:.1} MiB at {} in flight, {:.1} MiB at {}: {:.1} KiB per in-flight request",
            m.peak_rss_bytes.0 as f64 / 1048576.0,
            m.concurrency.0,
            m.peak_rss_bytes.1 as f64 / 1048576.0,
            m.concurrency.1,
            m.bytes_per_in_flight_request / 1024.0
        );
    }
    let summary = BenchClientSummary {
        cpus,
        server: format!(
            "scripted, TTFT {} ms, ITL {} ms, {} tokens one per chunk",
            args.ttft_ms, args.itl_ms, args.tokens
        ),
        rates,
        max_rate_held_rps,
        max_rate_held_any_rps,
        saturated,
        memory,
    };
    let path = args.out.join("bench-client.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Checks the scripted server's pace, `--ttft-ms` and `--itl-ms`: 0 to a minute each.
pub fn check_pace(ttft_ms: f64, itl_ms: f64) -> Result<()> {
    for (what, ms) in [("--ttft-ms", ttft_ms), ("--itl-ms", itl_ms)] {
        if !(ms.is_finite() && (0.0..=60_000.0).contains(&ms)) {
            return Err(bad_input(format!(
                "{what} must be a number from 0 to 60000 ms, got {ms}"
            )));
        }
    }
    Ok(())
}

/// Says which side saturated at a rate not held.
fn saturation(p: &RatePoint, cpus: usize) -> String {
    let (Some(c), Some(s)) = (p.client_cpu_cores, p.server_cpu_cores) else {
        return "CPU time unknown on this OS".into();
    };
    let machine = p.machine_cpu_cores.unwrap_or(c + s);
    let verdict = if machine >= 0.9 * cpus as f64 {
        "the machine's CPUs were saturated (client, server and the kernel's loopback work share them)"
    } else if c >= s {
        "the client used more"
    } else {
        "the server used more"
    };
    format!(
        "at {:.0}/s the client used {c:.2}, the server {s:.2} and the whole machine {machine:.2} of {cpus} CPUs: {verdict}",
        p.offered_rps
    )
}

/// Idle time of the whole machine so far (every CPU's idle and iowait), seconds, from
/// `/proc/stat`. Idle time is accounted exactly on tickless kernels, while the busy
/// columns are sampled at each tick and miss short bursts on a mostly idle CPU, so the
/// machine's busy time is taken as elapsed CPU time minus this.
fn machine_idle_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait ...
    Some((f.get(3)? + f.get(4)?) as f64 / 100.0)
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// Judges one rate from its child's report.
fn rate_point(
    rate: f64,
    report: &Report,
    wall_s: f64,
    server_cpu: Option<f64>,
) -> Result<RatePoint> {
    let Some(r) = report.results.first() else {
        bail!("the run at {rate}/s wrote no result");
    };
    let client = r.client.as_ref();
    let lag = &r.latency.queue_ms;
    let loop_p99 = client.and_then(|c| c.loop_lag_ms.p99);
    let mut missed = Vec::new();
    if r.requests.failed > 0 {
        missed.push(format!("{} failed", r.requests.failed));
    }
    if r.throughput.requests_per_s < 0.95 * rate {
        missed.push(format!("achieved {:.0}/s", r.throughput.requests_per_s));
    }
    if lag.p99.is_none_or(|v| v >= 1.0) {
        missed.push(format!("schedule lag p99 {}", fmt(lag.p99, 3)));
    }
    if loop_p99.is_none_or(|v| v >= 1.0) {
        missed.push(format!("loop lag p99 {}", fmt(loop_p99, 3)));
    }
    Ok(RatePoint {
        offered_rps: rate,
        achieved_rps: r.throughput.requests_per_s,
        sent: r.requests.sent,
        failed: r.requests.failed,
        schedule_lag_p50_ms: lag.p50,
        schedule_lag_p99_ms: lag.p99,
        loop_lag_p99_ms: loop_p99,
        client_cpu_us_per_request: client.and_then(|c| c.cpu_us_per_request),
        client_cpu_us_per_output_token: client.and_then(|c| c.cpu_us_per_output_token),
        client_cpu_cores: client.and_then(|c| c.cpu_s).map(|c| c / wall_s),
        server_cpu_cores: server_cpu,
        machine_cpu_cores: None,
        client_peak_rss_bytes: client.and_then(|c| c.peak_rss_bytes),
        held: missed.is_empty(),
        missed,
    })
}

fn memory_phase(args: &Options) -> Result<MemoryPoint> {
    // Each response takes about a second, so the whole concurrency is in flight.
    let server = Server::start(800.0, 50.0)?;
    let (lo, hi) = (args.memory_concurrency[0], args.memory_concurrency[1]);
    let mut rss = Vec::new();
    for c in [lo, hi] {
        let name = format!("memory-c{c}");
        let wl = workload(
            &args.out,
            &name,
            &format!("arrival = \"closed\"\nconcurrency = {c}"),
            // One warm-up: each response takes a second.
            (u64::from(c.max(1)), 1),
            args.tokens,
        )?;
        let report = run_child(&server.base_url, &wl, &args.out.join(&name))?;
        let peak = report
            .results
            .first()
            .and_then(|r| r.client.as_ref())
            .and_then(|c| c.peak_rss_bytes)
            .context("the memory run reported no peak RSS")?;
        rss.push(peak);
    }
    let per = if hi > lo {
        (rss[1] as f64 - rss[0] as f64) / f64::from(hi - lo)
    } else {
        0.0
    };
    Ok(MemoryPoint {
        concurrency: (lo, hi),
        peak_rss_bytes: (rss[0], rss[1]),
        bytes_per_in_flight_request: per,
    })
}

fn workload(
    dir: &Path,
    name: &str,
    load: &str,
    (requests, warmup): (u64, u32),
    tokens: u32,
) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "format = 1\nname = \"bench-client\"\nversion = 1\nseed = 1\n[load]\n{load}\nrequests = {requests}\nwarmup_requests = {warmup}\n[input]\ndist = \"fixed\"\nvalue = 16.0\n[output]\ndist = \"fixed\"\nvalue = {tokens}.0\n"
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `infermeter run` as a child against the server; returns its report.
fn run_child(base_url: &str, workload: &Path, out: &Path) -> Result<Report> {
    let exe = std::env::current_exe().context("finding the infermeter executable")?;
    let status = Command::new(exe)
        .args(["run", "--quiet", "--target"])
        .arg(format!("openai,base_url={base_url},model=scripted"))
        .arg("--workload")
        .arg(workload)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .context("starting infermeter run")?;
    if !status.success() {
        bail!(
            "infermeter run for {} failed ({status})",
            workload.display()
        );
    }
    read_report(&out.join("report.json"))
}

/// The scripted server as a child process; stopped when dropped.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    base_url: String,
}

impl Server {
    fn start(ttft_ms: f64, itl_ms: f64) -> Result<Self> {
        let exe = std::env::current_exe().context("finding the infermeter executable")?;
        let mut child = Command::new(exe)
            .args(["serve-scripted", "--ttft-ms"])
            .arg(ttft_ms.to_string())
            .arg("--itl-ms")
            .arg(itl_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the scripted server")?;
        let stdout = child.stdout.take().context("the server's output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the server's address")?;
        let Some(base_url) = line.trim().strip_prefix("base_url ") else {
            let _ = child.kill();
            bail!("the scripted server did not start: {line:?}");
        };
        Ok(Self {
            base_url: base_url.to_string(),
            stdin: child.stdin.take(),
            child,
        })
    }

    /// The server's CPU time so far (user + system), seconds.
    fn cpu_s(&self) -> Option<f64> {
        crate::client::process_cpu_s_of(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its standard input stops it.
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
