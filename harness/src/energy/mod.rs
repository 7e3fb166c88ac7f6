//! Energy probes and the energy figures of a load point.
//!
//! - [`Probe`]: one small trait over energy sources, each with one or more channels
//!   (RAPL domains, GPUs): a raw energy counter, power where the device reports it,
//!   throttle reasons. [`rapl::RaplProbe`] (CPU package + DRAM through powercap) and
//!   [`nvml::NvmlProbe`] (every GPU through NVML).
//! - [`Sampler`]: a background thread reading the probes every interval (default
//!   100 ms) on the same monotonic clock as the load driver.
//! - [`stats`]: the figures over a window, from [`window`]'s arithmetic.
//!
//! Which probe measures a target: one on the CPU, the CPU (RAPL); one on a GPU, the
//! GPUs (NVML); a remote target's energy is spent elsewhere and is not measured. Absent or
//! unreadable probes give `energy` with `source: null` and the `reason`, never 0.
//!
//! The window is the load point's steady state (`steady`) or, without one,
//! its measured window (first send to last completion), warm-up excluded. The idle
//! power is measured over 1 s before each target's first load point.

pub mod nvml;
pub mod rapl;
pub mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use results::{Device, EnergySource, EnergyStats};

use window::{
    CounterReading, counter_energy_j, disagreement_pct, integrate_power_j, peak_power_w,
    unwrap_counter,
};

/// Counter and power disagreement above which a result is flagged, percent.
pub const DISAGREEMENT_FLAG_PCT: f64 = 5.0;

/// One channel's reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeReading {
    /// Raw energy counter, device units; `None` when the read failed.
    pub counter: Option<u64>,
    /// Power draw, watts, where the device reports it.
    pub power_w: Option<f64>,
    /// Throttle reasons active at the reading.
    pub throttle: Vec<String>,
    /// Device state alongside (GPUs).
    pub state: Option<DeviceState>,
}

/// What a GPU reports besides energy, read with each sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeviceState {
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<u32>,
    /// GPU temperature, degrees C.
    pub temperature_c: Option<u32>,
    /// GPU utilisation, percent.
    pub utilization_pct: Option<u32>,
    /// Device memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Enforced power limit, watts.
    pub power_limit_w: Option<f64>,
}

/// An energy source with one or more channels.
pub trait Probe: Send {
    /// What it reads, for reports.
    fn name(&self) -> String;
    /// Channels (domains, devices), summed into the figures.
    fn channels(&self) -> usize;
    /// Reads every channel now.
    fn read(&mut self) -> Vec<ProbeReading>;
    /// Where channel `channel`'s counter wraps to zero; `None` if it does not.
    fn counter_range(&self, channel: usize) -> Option<u64>;
    /// Counter units per joule.
    fn units_per_j(&self) -> f64;
    /// The figures' source when the counter is used.
    fn source(&self) -> EnergySource;
}

/// The probes that measure a target computing on `device` (`None`: a remote target),
/// or why there are none.
pub fn probes_for(device: Option<Device>) -> Result<Vec<Box<dyn Probe>>, String> {
    match device {
        Some(Device::Cpu) => Ok(vec![Box::new(rapl::RaplProbe::open(&rapl::RaplProbe::root())?)]),
        Some(Device::Gpu) => Ok(vec![Box::new(nvml::NvmlProbe::open()?)]),
        None => Err("remote target: its energy is spent on the server and is not measurable from the client".into()),
    }
}

/// What a sampler recorded for one probe.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The probe's name.
    pub name: String,
    /// Figures' source.
    pub source: Option<EnergySource>,
    /// Counter units per joule.
    pub units_per_j: f64,
    /// Counter ranges per channel.
    pub ranges: Vec<Option<u64>>,
    /// `(seconds since the sampler's start, one reading per channel)`.
    pub samples: Vec<(f64, Vec<ProbeReading>)>,
    /// The sampler's start.
    pub start: Option<Instant>,
}

/// Reads probes on a background thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Recorded>>,
}

impl Sampler {
    /// Starts sampling `probes` every `interval`; returns once the first sample is
    /// taken, so every window that starts after this call is covered.
    pub fn start(mut probes: Vec<Box<dyn Probe>>, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut recs: Vec<Recorded> = probes
                .iter()
                .map(|p| Recorded {
                    name: p.name(),
                    source: Some(p.source()),
                    units_per_j: p.units_per_j(),
                    ranges: (0..p.channels()).map(|c| p.counter_range(c)).collect(),
                    samples: Vec::new(),
                    start: Some(start),
                })
                .collect();
            let mut next = start;
            loop {
                let done = flag.load(Ordering::Relaxed);
                for (p, r) in probes.iter_mut().zip(&mut recs) {
                    let readings = p.read();
                    r.samples.push((start.elapsed().as_secs_f64(), readings));
                }
                let _ = first_tx.send(());
                if done {
                    break;
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    // Short sleeps, so a stop is seen within 10 ms.
                    std::thread::sleep((next - now).min(Duration::from_millis(10)));
                    while Instant::now() < next && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(
                            Duration::from_millis(10)
                                .min(next.saturating_duration_since(Instant::now())),
                        );
                    }
                } else {
                    next = now;
                }
            }
            recs
        });
        // A thread that died before its first sample shows as an empty recording.
        let _ = first_rx.recv();
        Self { stop, handle }
    }

    /// Stops (after one last sample) and returns what was recorded.
    pub fn stop(self) -> Vec<Recorded> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A time series: `(seconds, value)`.
type Series = Vec<(f64, f64)>;

/// Energy (counter) and power series of one recording, channels summed: the counter
/// series in device units, and power samples where every channel reported power.
fn series(rec: &Recorded) -> (Series, Series) {
    let channels = rec.ranges.len();
    let mut total: Vec<(f64, f64)> = Vec::new();
    for c in 0..channels {
        let readings: Vec<CounterReading> = rec
            .samples
            .iter()
            .filter_map(|(t, r)| r.get(c)?.counter.map(|raw| CounterReading { t_s: *t, raw }))
            .collect();
        let unwrapped = unwrap_counter(&readings, rec.ranges[c]);
        if c == 0 {
            total = unwrapped;
        } else if unwrapped.len() == total.len() {
            for (t, u) in total.iter_mut().zip(unwrapped) {
                t.1 += u.1;
            }
        } else {
            // A channel missed reads: summing would mix times; keep what all share.
            total.clear();
        }
    }
    let power = rec
        .samples
        .iter()
        .filter_map(|(t, r)| {
            let ps: Option<Vec<f64>> = r.iter().map(|x| x.power_w).collect();
            ps.filter(|p| !p.is_empty()).map(|p| (*t, p.iter().sum()))
        })
        .collect();
    (total, power)
}

/// Mean power of a recording over its whole span (the idle baseline), watts.
pub fn mean_power_w(recs: &[Recorded]) -> Option<f64> {
    let rec = recs.first()?;
    let (counter, _) = series(rec);
    let (first, last) = (counter.first()?, counter.last()?);
    let span = last.0 - first.0;
    (span > 0.0).then(|| (last.1 - first.1) / rec.units_per_j / span)
}

/// What the figures divide by.
#[derive(Clone, Copy, Debug, Default)]
pub struct Work {
    /// Output tokens of the load point.
    pub output_tokens: u64,
    /// Input plus output tokens.
    pub total_tokens: u64,
    /// Successful requests.
    pub requests_ok: u64,
    /// Verified tasks (workloads with checkers).
    pub tasks_verified: Option<u64>,
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The energy figures over `window` from what the sampler recorded.
pub fn stats(
    recs: &[Recorded],
    window: (Instant, Instant),
    idle_power_w: Option<f64>,
    work: Work,
) -> EnergyStats {
    let Some(rec) = recs.first() else {
        return EnergyStats::unavailable("no energy probe");
    };
    let Some(start) = rec.start else {
        return EnergyStats::unavailable("the sampler did not start");
    };
    let rel = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let w = (rel(window.0), rel(window.1));
    let window_s = w.1 - w.0;
    let (counter, power) = series(rec);
    let mut s = EnergyStats::unavailable("");
    s.reason = None;
    s.devices = vec![rec.name.clone()];
    s.window_s = Some(r3(window_s));
    s.idle_power_w = idle_power_w.map(r3);
    let from_counter = counter_energy_j(&counter, w, rec.units_per_j);
    let from_power = integrate_power_j(&power, w);
    let energy = match (from_counter, from_power) {
        (Some(e), _) => {
            s.source = rec.source;
            e
        }
        (None, Some(e)) => {
            s.source = Some(EnergySource::NvmlPowerIntegrated);
            e
        }
        (None, None) => {
            return EnergyStats::unavailable(&format!(
                "{}: the window of {window_s:.3} s is not covered by the samples",
                rec.name
            ));
        }
    };
    s.energy_j = Some(r3(energy));
    s.avg_power_w = (window_s > 0.0).then(|| r3(energy / window_s));
    s.peak_power_w = peak_power_w(&power, w).map(r3);
    if let (Some(c), Some(p)) = (from_counter, from_power) {
        s.integrated_power_j = Some(r3(p));
        s.disagreement_pct = disagreement_pct(c, p).map(r3);
    }
    let per = |n: u64| (n > 0 && energy > 0.0).then(|| n as f64 / energy);
    s.tokens_per_j_output = per(work.output_tokens).map(r3);
    s.tokens_per_j_total = per(work.total_tokens).map(r3);
    s.j_per_output_token = (work.output_tokens > 0).then(|| energy / work.output_tokens as f64);
    s.j_per_request = (work.requests_ok > 0).then(|| energy / work.requests_ok as f64);
    s.j_per_verified_task = work
        .tasks_verified
        .filter(|&n| n > 0)
        .map(|n| energy / n as f64);
    let mut reasons: Vec<String> = rec
        .samples
        .iter()
        .filter(|(t, _)| *t >= w.0 && *t <= w.1)
        .flat_map(|(_, r)| r.iter().flat_map(|x| x.throttle.clone()))
        .collect();
    reasons.sort();
    reasons.dedup();
    s.throttled = Some(!reasons.is_empty());
    s.throttle_reasons = reasons;
    let states: Vec<DeviceState> = rec
        .samples
        .iter()
        .filter(|(t, _)| *t >= w.0 && *t <= w.1)
        .flat_map(|(_, r)| r.iter().filter_map(|x| x.state))
        .collect();
    let mean = |f: &dyn Fn(&DeviceState) -> Option<u32>| {
        let v: Vec<f64> = states.iter().filter_map(|d| f(d).map(f64::from)).collect();
        (!v.is_empty()).then(|| r3(v.iter().sum::<f64>() / v.len() as f64))
    };
    s.sm_clock_mhz_mean = mean(&|d| d.sm_clock_mhz);
    s.memory_clock_mhz_mean = mean(&|d| d.memory_clock_mhz);
    s.utilization_pct_mean = mean(&|d| d.utilization_pct);
    s.temperature_c_max = states.iter().filter_map(|d| d.temperature_c).max();
    s.memory_used_bytes_max = states.iter().filter_map(|d| d.memory_used_bytes).max();
    s.power_limit_w = states
        .iter()
        .filter_map(|d| d.power_limit_w)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p))));
    if let Some(d) = s.disagreement_pct
        && d.abs() > DISAGREEMENT_FLAG_PCT
    {
        s.flags.push(format!(
            "counter and integrated power disagree by {d:.1}% (> {DISAGREEMENT_FLAG_PCT}%)"
        ));
    }
    if s.throttled == Some(true) {
        s.flags
            .push(format!("throttled: {}", s.throttle_reasons.join(", ")));
    }
    if window_s < 1.0 {
        s.flags.push(format!(
            "window of {window_s:.2} s is short for an energy counter (>= 1 s advised)"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe replaying a scripted power draw: `watts(t)` integrated into a counter
    /// of `range` (wrapping), with power reported or not.
    struct Scripted {
        t0: Instant,
        energy_uj: f64,
        last: f64,
        watts: fn(f64) -> f64,
        range: u64,
        report_power: bool,
        throttle_after_s: f64,
    }

    impl Probe for Scripted {
        fn name(&self) -> String {
            "scripted".into()
        }
        fn channels(&self) -> usize {
            1
        }
        fn read(&mut self) -> Vec<ProbeReading> {
            let t = self.t0.elapsed().as_secs_f64();
            // Exact integral of a piecewise-constant draw between reads.
            self.energy_uj += (self.watts)(self.last) * (t - self.last) * 1e6;
            self.last = t;
            vec![ProbeReading {
                counter: Some(self.energy_uj as u64 % self.range),
                power_w: self.report_power.then(|| (self.watts)(t)),
                throttle: if t > self.throttle_after_s {
                    vec!["sw_power_cap".into()]
                } else {
                    vec![]
                },
                // A GPU-like state: clocks fixed, temperature rising 10 C per second.
                state: Some(DeviceState {
                    sm_clock_mhz: Some(1980),
                    memory_clock_mhz: Some(2619),
                    temperature_c: Some(40 + (t * 10.0) as u32),
                    utilization_pct: Some(100),
                    memory_used_bytes: Some(1 << 30),
                    power_limit_w: Some(700.0),
                }),
            }]
        }
        fn counter_range(&self, _c: usize) -> Option<u64> {
            Some(self.range)
        }
        fn units_per_j(&self) -> f64 {
            1e6
        }
        fn source(&self) -> EnergySource {
            EnergySource::Rapl
        }
    }

    #[test]
    fn a_sampled_constant_draw_gives_its_energy_and_cross_check() {
        let probe = Scripted {
            t0: Instant::now(),
            energy_uj: 0.0,
            last: 0.0,
            watts: |_| 50.0,
            range: 20_000_000, // wraps every 0.4 s at 50 W
            report_power: true,
            throttle_after_s: f64::INFINITY,
        };
        let sampler = Sampler::start(vec![Box::new(probe)], Duration::from_millis(20));
        let a = Instant::now() + Duration::from_millis(100);
        std::thread::sleep(Duration::from_millis(700));
        let b = Instant::now() - Duration::from_millis(100);
        let recs = sampler.stop();
        assert!(recs[0].samples.len() >= 20, "{}", recs[0].samples.len());
        let s = stats(
            &recs,
            (a, b),
            Some(10.0),
            Work {
                output_tokens: 100,
                total_tokens: 400,
                requests_ok: 4,
                tasks_verified: Some(2),
            },
        );
        let window = b.duration_since(a).as_secs_f64();
        let e = s.energy_j.unwrap();
        assert!(
            (s.j_per_verified_task.unwrap() - e / 2.0).abs() < 1e-3,
            "{s:?}"
        );
        assert!((e - 50.0 * window).abs() < 0.5, "{e} J over {window} s");
        assert_eq!(s.source, Some(EnergySource::Rapl));
        assert!(s.disagreement_pct.unwrap().abs() < 2.0, "{s:?}");
        assert!((s.avg_power_w.unwrap() - 50.0).abs() < 1.0);
        assert_eq!(s.peak_power_w, Some(50.0));
        assert!((s.tokens_per_j_output.unwrap() - 100.0 / e).abs() < 1e-2);
        assert_eq!(s.throttled, Some(false));
        assert_eq!(s.idle_power_w, Some(10.0));
        assert!(s.flags.iter().any(|f| f.contains("short")), "{:?}", s.flags);
        assert_eq!(s.sm_clock_mhz_mean, Some(1980.0));
        assert_eq!(s.utilization_pct_mean, Some(100.0));
        assert_eq!(s.power_limit_w, Some(700.0));
        assert_eq!(s.memory_used_bytes_max, Some(1 << 30));
        // The window ends about 0.6-0.7 s in: its hottest sample is 45-47 C.
        let hottest = s.temperature_c_max.unwrap();
        assert!((45..=47).contains(&hottest), "{hottest}");
    }

    #[test]
    fn throttling_and_missing_probes_are_said() {
        let probe = Scripted {
            t0: Instant::now(),
            energy_uj: 0.0,
            last: 0.0,
            watts: |_| 80.0,
            range: u64::MAX,
            report_power: false,
            throttle_after_s: 0.0,
        };
        let sampler = Sampler::start(vec![Box::new(probe)], Duration::from_millis(10));
        let a = Instant::now() + Duration::from_millis(30);
        std::thread::sleep(Duration::from_millis(150));
        let b = Instant::now() - Duration::from_millis(30);
        let s = stats(&sampler.stop(), (a, b), None, Work::default());
        assert_eq!(s.throttled, Some(true));
        assert_eq!(s.throttle_reasons, ["sw_power_cap"]);
        assert!(s.flags.iter().any(|f| f.contains("throttled")));
        assert_eq!(s.disagreement_pct, None, "no power samples: no cross-check");
        assert_eq!(s.j_per_request, None);
        assert_eq!(s.j_per_verified_task, None, "no checkers: no verified task");

        let none = stats(&[], (a, b), None, Work::default());
        assert_eq!(none.source, None);
        assert_eq!(none.energy_j, None);
        assert_eq!(none.reason.as_deref(), Some("no energy probe"));
        let err = probes_for(None).err().unwrap();
        assert!(err.contains("remote target"));
    }
}
