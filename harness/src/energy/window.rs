//! Energy over a time window from sampled series: the arithmetic, free of any device.
//!
//! - Counters (NVML total energy in mJ, RAPL energy in uJ) are read raw and unwrapped:
//!   a reading below the previous one means the counter passed its range and started
//!   again at zero ([`unwrap_counter`]).
//! - Energy over a window is the unwrapped counter at the window's end minus at its
//!   start, each linearly interpolated between the samples around it
//!   ([`counter_energy_j`]).
//! - Power samples are integrated by the trapezoid rule over the window, the ends
//!   interpolated ([`integrate_power_j`]), as a cross-check of the counter.
//! - A window is measurable only when samples lie on both sides of each end; a window
//!   shorter than the sampling period, or one that runs past the samples, gives
//!   `None`, never a made-up figure.

/// One reading of a counter: seconds since the series began, raw counter value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterReading {
    /// Seconds since the start of sampling.
    pub t_s: f64,
    /// Raw counter value (device units).
    pub raw: u64,
}

/// Cumulative counter values in device units, wrap-arounds undone: `range` is the
/// value at which the counter returns to zero (RAPL's `max_energy_range_uj + 1`);
/// `None` for counters that do not wrap (NVML's 64-bit mJ). Returns `(t_s, value)`.
pub fn unwrap_counter(readings: &[CounterReading], range: Option<u64>) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(readings.len());
    let mut offset = 0f64;
    let mut prev: Option<u64> = None;
    for r in readings {
        if let (Some(p), Some(range)) = (prev, range)
            && r.raw < p
        {
            offset += range as f64;
        }
        prev = Some(r.raw);
        out.push((r.t_s, offset + r.raw as f64));
    }
    out
}

/// Linear interpolation of a series at `t`, when `t` lies within it.
fn at(series: &[(f64, f64)], t: f64) -> Option<f64> {
    let i = series.partition_point(|(ts, _)| *ts < t);
    if i < series.len() && series[i].0 == t {
        return Some(series[i].1);
    }
    if i == 0 || i == series.len() {
        return None;
    }
    let (t0, v0) = series[i - 1];
    let (t1, v1) = series[i];
    Some(v0 + (v1 - v0) * (t - t0) / (t1 - t0))
}

/// Energy in joules over `[start, end]` from an unwrapped counter in `units_per_j`
/// units per joule (1e3 for mJ, 1e6 for uJ); `None` when the window is not inside the
/// samples or is empty.
pub fn counter_energy_j(
    series: &[(f64, f64)],
    (start, end): (f64, f64),
    units_per_j: f64,
) -> Option<f64> {
    if end <= start {
        return None;
    }
    Some((at(series, end)? - at(series, start)?) / units_per_j)
}

/// Energy in joules over `[start, end]` integrating power samples `(t_s, watts)` by the
/// trapezoid rule; `None` when the window is not inside the samples or is empty.
pub fn integrate_power_j(samples: &[(f64, f64)], (start, end): (f64, f64)) -> Option<f64> {
    if end <= start {
        return None;
    }
    let p_start = at(samples, start)?;
    let p_end = at(samples, end)?;
    let mut points = vec![(start, p_start)];
    points.extend(
        samples
            .iter()
            .copied()
            .filter(|(t, _)| *t > start && *t < end),
    );
    points.push((end, p_end));
    Some(
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum(),
    )
}

/// Largest power sample inside the window, watts.
pub fn peak_power_w(samples: &[(f64, f64)], (start, end): (f64, f64)) -> Option<f64> {
    samples
        .iter()
        .filter(|(t, _)| *t >= start && *t <= end)
        .map(|(_, p)| *p)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))))
}

/// `(b - a) / a x 100`: how far the cross-check `b` is from the reference `a`.
pub fn disagreement_pct(a: f64, b: f64) -> Option<f64> {
    (a.abs() > 0.0).then(|| (b - a) / a * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn readings(pairs: &[(f64, u64)]) -> Vec<CounterReading> {
        pairs
            .iter()
            .map(|&(t_s, raw)| CounterReading { t_s, raw })
            .collect()
    }

    #[test]
    fn a_wrapping_counter_is_unwrapped() {
        // A RAPL-like counter of range 1000 uJ: 900, then 100 after wrapping (+200).
        let s = unwrap_counter(&readings(&[(0.0, 800), (1.0, 900), (2.0, 100)]), Some(1000));
        assert_eq!(s, vec![(0.0, 800.0), (1.0, 900.0), (2.0, 1100.0)]);
        assert_eq!(counter_energy_j(&s, (0.0, 2.0), 1e6), Some(300.0 / 1e6));
        // Without a range, a reading below the previous is kept as read.
        let s = unwrap_counter(&readings(&[(0.0, 5), (1.0, 3)]), None);
        assert_eq!(s[1].1, 3.0);
    }

    #[test]
    fn windows_are_interpolated_between_samples() {
        // 100 W for 2 s as an mJ counter sampled every 0.5 s.
        let s: Vec<(f64, f64)> = (0..=4)
            .map(|i| (i as f64 * 0.5, i as f64 * 50_000.0))
            .collect();
        let e = counter_energy_j(&s, (0.25, 1.75), 1e3).unwrap();
        assert!((e - 150.0).abs() < 1e-9, "{e}");
        let p: Vec<(f64, f64)> = (0..=4).map(|i| (i as f64 * 0.5, 100.0)).collect();
        let e = integrate_power_j(&p, (0.25, 1.75)).unwrap();
        assert!((e - 150.0).abs() < 1e-9, "{e}");
        assert_eq!(peak_power_w(&p, (0.25, 1.75)), Some(100.0));
    }

    #[test]
    fn a_window_outside_the_samples_or_empty_is_not_measured() {
        let s = vec![(0.0, 0.0), (0.1, 10.0)];
        assert_eq!(counter_energy_j(&s, (0.0, 0.2), 1e3), None);
        assert_eq!(counter_energy_j(&s, (0.05, 0.05), 1e3), None);
        assert_eq!(integrate_power_j(&[(0.0, 5.0)], (0.0, 0.01)), None);
        assert_eq!(integrate_power_j(&[], (0.0, 1.0)), None);
        // A window shorter than the period, inside the samples, interpolates.
        assert!((counter_energy_j(&s, (0.02, 0.04), 1e3).unwrap() - 0.002).abs() < 1e-12);
    }

    #[test]
    fn missing_samples_widen_the_trapezoids_but_keep_the_energy() {
        // Constant 40 W sampled irregularly (samples lost in between).
        let p = vec![(0.0, 40.0), (0.1, 40.0), (0.9, 40.0), (1.0, 40.0)];
        assert!((integrate_power_j(&p, (0.0, 1.0)).unwrap() - 40.0).abs() < 1e-9);
        assert_eq!(disagreement_pct(40.0, 42.0), Some(5.0));
        assert_eq!(disagreement_pct(0.0, 1.0), None);
    }

    proptest! {
        /// A counter driven by a constant power wraps any number of times and still
        /// gives power x time over any window inside the samples.
        #[test]
        fn unwrapped_counters_measure_constant_power(
            watts in 1.0f64..500.0,
            range_uj in 1_000_000u64..50_000_000,
            n in 3usize..60,
            a in 0.0f64..1.0,
            b in 0.0f64..1.0,
        ) {
            let dt = 0.1;
            let raw: Vec<CounterReading> = (0..n)
                .map(|i| {
                    let total = (watts * i as f64 * dt * 1e6).round() as u64;
                    CounterReading { t_s: i as f64 * dt, raw: total % range_uj }
                })
                .collect();
            let s = unwrap_counter(&raw, Some(range_uj));
            let span = (n - 1) as f64 * dt;
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assume!(hi - lo > 0.01);
            // A power step smaller than the range per sample is unwrapped correctly.
            prop_assume!(watts * dt * 1e6 < range_uj as f64);
            let e = counter_energy_j(&s, (lo * span, hi * span), 1e6).unwrap();
            let want = watts * (hi - lo) * span;
            prop_assert!((e - want).abs() <= 1e-6 * want + 2e-6, "{} vs {}", e, want);
        }
    }
}
