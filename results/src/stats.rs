//! How sure a figure is: bootstrap 95% confidence intervals of latency percentiles and
//! of throughput, the steady-state part of a load point, and the run-to-run spread of
//! repeated load points (`run --repeat N`).
//!
//! Percentile intervals (README, "Statistics"): the percentile bootstrap of the sample
//! percentile, resampling the load point's values with replacement. Resampling is
//! exact and cheap: the k-th smallest of n draws with replacement from the sorted
//! values is the value at rank ceil(n U), U ~ Beta(k, n - k + 1) (the k-th order
//! statistic of n uniforms), so each of the [`RESAMPLES`] resamples costs one Beta draw
//! whatever n is. The interval is the 2.5th and 97.5th percentile of the resampled
//! percentile. It assumes requests are independent draws; runs whose requests are not
//! (a backlog building up) have wider real intervals, which `--repeat` shows.
//!
//! Throughput intervals: a block bootstrap. The measured window is cut into up to
//! [`MAX_BLOCKS`] equal time blocks, each request counted in the block where it ended;
//! resampling whole blocks keeps the correlation of nearby requests (batches finishing
//! together).
//!
//! Every resampling is seeded from its inputs, so the same values give the same
//! interval in every run and on every machine.
//!
//! A leaf: this module knows no report type; `spread` applies [`Spread`] to
//! the repeats of a report's load points.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;
/// Most time blocks of a throughput interval.
pub const MAX_BLOCKS: usize = 30;
/// Fewest blocks (and requests) for a throughput interval.
pub const MIN_BLOCKS: usize = 5;

/// 95% confidence intervals of a latency summary's percentiles, `[low, high]` in the
/// summary's unit. Since 1.4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantileCi95 {
    /// Of the median.
    pub p50: [f64; 2],
    /// Of the 90th percentile.
    pub p90: [f64; 2],
    /// Of the 95th percentile.
    pub p95: [f64; 2],
    /// Of the 99th percentile.
    pub p99: [f64; 2],
}

/// The 2.5th and 97.5th percentile of the bootstrap distribution of the rank of the
/// `q` percentile among `n` values (1-based ranks), or `None` for fewer than 2 values.
pub fn quantile_rank_ci95(n: u64, q: f64) -> Option<[u64; 2]> {
    if n < 2 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // The rank HDR histograms report for q: ceil(q n), at least 1.
    let k = ((q * n as f64).ceil() as u64).clamp(1, n);
    let beta = Beta::new(k as f64, (n - k + 1) as f64).ok()?;
    let mut rng = ChaCha8Rng::seed_from_u64(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k);
    let mut ranks: Vec<u64> = (0..RESAMPLES)
        .map(|_| ((beta.sample(&mut rng) * n as f64).ceil() as u64).clamp(1, n))
        .collect();
    ranks.sort_unstable();
    let at = |p: f64| ranks[((p * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
    Some([at(0.025), at(0.975)])
}

/// Throughput intervals, `[low, high]`. Since 1.4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThroughputCi95 {
    /// Of `requests_per_s`.
    pub requests_per_s: [f64; 2],
    /// Of `output_tokens_per_s`.
    pub output_tokens_per_s: [f64; 2],
    /// Time blocks resampled.
    pub blocks: u32,
}

/// One finished request, for throughput figures: when it ended (seconds after the
/// start of measurement), whether it succeeded, and its output tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Completion {
    /// End, seconds after the start of measurement.
    pub end_s: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Output tokens received.
    pub output_tokens: u32,
}

/// Block-bootstrap intervals of successful requests and output tokens per second
/// over a window of `window_s` seconds; `None` with fewer than [`MIN_BLOCKS`]
/// requests or no window.
pub fn throughput_ci95(done: &[Completion], window_s: f64) -> Option<ThroughputCi95> {
    if done.len() < MIN_BLOCKS || !(window_s.is_finite() && window_s > 0.0) {
        return None;
    }
    let m = (done.len() / MIN_BLOCKS).clamp(MIN_BLOCKS, MAX_BLOCKS);
    let mut blocks = vec![(0u64, 0u64); m];
    for c in done {
        let i = ((c.end_s / window_s * m as f64) as usize).min(m - 1);
        blocks[i].0 += u64::from(c.ok);
        blocks[i].1 += u64::from(c.output_tokens);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(done.len() as u64 ^ window_s.to_bits());
    let (mut req, mut tok) = (Vec::with_capacity(RESAMPLES), Vec::with_capacity(RESAMPLES));
    for _ in 0..RESAMPLES {
        let (mut r, mut t) = (0u64, 0u64);
        for _ in 0..m {
            let b = blocks[rng.random_range(0..m)];
            r += b.0;
            t += b.1;
        }
        req.push(r as f64 / window_s);
        tok.push(t as f64 / window_s);
    }
    Some(ThroughputCi95 {
        requests_per_s: percentile_interval(&mut req),
        output_tokens_per_s: percentile_interval(&mut tok),
        blocks: m as u32,
    })
}

fn percentile_interval(xs: &mut [f64]) -> [f64; 2] {
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs[((p * xs.len() as f64) as usize).min(xs.len() - 1)];
    [round3(at(0.025)), round3(at(0.975))]
}

/// The steady-state part of a load point: its window and the throughput of the
/// requests that ended in it (README, "Statistics"). Since 1.4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Start, seconds after the start of measurement.
    pub start_s: f64,
    /// End, seconds after the start of measurement.
    pub end_s: f64,
    /// Successful requests that ended in the window, per second of it.
    pub requests_per_s: f64,
    /// Output tokens of requests that ended in the window, per second of it.
    pub output_tokens_per_s: f64,
}

impl SteadyState {
    /// The figures of the window `[start_s, end_s]` (seconds after the start of
    /// measurement); `None` for an empty window.
    pub fn of(done: &[Completion], start_s: f64, end_s: f64) -> Option<Self> {
        let span = end_s - start_s;
        if !(span.is_finite() && span > 0.0) {
            return None;
        }
        let inside = done
            .iter()
            .filter(|c| c.end_s >= start_s && c.end_s <= end_s);
        let (mut ok, mut tokens) = (0u64, 0u64);
        for c in inside {
            ok += u64::from(c.ok);
            tokens += u64::from(c.output_tokens);
        }
        Some(Self {
            start_s: round3(start_s),
            end_s: round3(end_s),
            requests_per_s: round3(ok as f64 / span),
            output_tokens_per_s: round3(tokens as f64 / span),
        })
    }
}

/// Which repeat of a load point a result is (`run --repeat N`). Since 1.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatRef {
    /// 1-based index.
    pub index: u32,
    /// Repeats of the load point.
    pub count: u32,
}

/// One metric over the repeats of a load point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Repeats that had the metric.
    pub n: u32,
    /// Mean over repeats.
    pub mean: f64,
    /// Sample standard deviation over repeats (n - 1 in the denominator).
    pub sd: f64,
    /// `sd / mean`, percent; `null` when the mean is 0.
    pub cv_pct: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `xs`; `None` for fewer than 2 values.
    pub fn of(xs: &[f64]) -> Option<Self> {
        if xs.len() < 2 {
            return None;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        Some(Self {
            n: xs.len() as u32,
            mean: round3(mean),
            sd: round3(sd),
            cv_pct: (mean != 0.0).then(|| round3(100.0 * sd / mean.abs())),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The run-to-run spread of one repeated load point. Since 1.4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatSpread {
    /// The load point (`target / workload / load`).
    pub key: String,
    /// Repeats found.
    pub repeats: u32,
    /// Each registry metric the repeats have, by name.
    pub metrics: BTreeMap<String, Spread>,
}

/// Rounds to three decimals (microseconds of a millisecond figure, thousandths of a
/// rate).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The median of the finite values of `v`; `None` when there is none.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score 95% interval of a proportion: `passed` successes in `trials`
/// independent trials, `[low, high]` within 0-1. Unlike the normal approximation it
/// stays inside 0-1 and is not empty at 0 or `trials` successes (README, "Verified
/// tasks"). `None` for no trial.
pub fn wilson_ci95(passed: u64, trials: u64) -> Option<[f64; 2]> {
    if trials == 0 || passed > trials {
        return None;
    }
    let n = trials as f64;
    let p = passed as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let r = |x: f64| (x.clamp(0.0, 1.0) * 1e4).round() / 1e4;
    // At 0 or all successes the interval ends exactly at its bound.
    let low = if passed == 0 { 0.0 } else { r(centre - half) };
    let high = if passed == trials {
        1.0
    } else {
        r(centre + half)
    };
    Some([low, high])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_worked_example() {
        // 8 of 10: the textbook Wilson interval is 0.4902 to 0.9433.
        assert_eq!(wilson_ci95(8, 10), Some([0.4902, 0.9433]));
        assert_eq!(wilson_ci95(0, 10).unwrap()[0], 0.0);
        assert!(wilson_ci95(0, 10).unwrap()[1] > 0.2);
        assert_eq!(wilson_ci95(10, 10).unwrap()[1], 1.0);
        assert_eq!(wilson_ci95(0, 0), None);
        assert_eq!(wilson_ci95(3, 2), None);
    }

    proptest::proptest! {
        #[test]
        fn wilson_contains_the_rate_and_narrows_with_trials(passed in 0u64..500, extra in 0u64..500) {
            let n = passed + extra;
            proptest::prop_assume!(n > 0);
            let [lo, hi] = wilson_ci95(passed, n).unwrap();
            let p = passed as f64 / n as f64;
            proptest::prop_assert!(0.0 <= lo && lo <= p + 1e-4 && p - 1e-4 <= hi && hi <= 1.0);
            let [lo4, hi4] = wilson_ci95(passed * 4, n * 4).unwrap();
            proptest::prop_assert!(hi4 - lo4 <= hi - lo + 1e-4);
        }
    }

    #[test]
    fn rank_intervals_contain_the_rank_and_narrow_with_more_values() {
        for n in [10u64, 100, 1000, 100_000] {
            for q in [0.5, 0.9, 0.99] {
                let k = ((q * n as f64).ceil() as u64).max(1);
                let [lo, hi] = quantile_rank_ci95(n, q).unwrap();
                assert!(
                    lo <= k && k <= hi && hi <= n,
                    "n {n} q {q}: {lo}..{hi} vs {k}"
                );
            }
        }
        // The median's interval in ranks grows like sqrt(n): relative width shrinks.
        let w = |n: u64| {
            let [lo, hi] = quantile_rank_ci95(n, 0.5).unwrap();
            (hi - lo) as f64 / n as f64
        };
        assert!(w(100_000) < w(1000) && w(1000) < w(100));
        // Normal approximation of the median's rank: n/2 +- 1.96 sqrt(n)/2.
        let [lo, hi] = quantile_rank_ci95(10_000, 0.5).unwrap();
        assert!(
            (lo as f64 - 4902.0).abs() < 15.0 && (hi as f64 - 5098.0).abs() < 15.0,
            "{lo}..{hi}"
        );
        assert_eq!(quantile_rank_ci95(1, 0.5), None);
        // Seeded: the same inputs give the same interval.
        assert_eq!(quantile_rank_ci95(777, 0.99), quantile_rank_ci95(777, 0.99));
    }

    #[test]
    fn throughput_interval_contains_the_estimate_and_reflects_unevenness() {
        let even: Vec<Completion> = (0..300)
            .map(|i| Completion {
                end_s: (i as f64 + 0.5) / 30.0,
                ok: true,
                output_tokens: 10,
            })
            .collect();
        let ci = throughput_ci95(&even, 10.0).unwrap();
        assert_eq!(ci.blocks, 30);
        // 300 requests, 3000 tokens in 10 s, equally spread: no uncertainty at all.
        assert_eq!(ci.requests_per_s, [30.0, 30.0]);
        assert_eq!(ci.output_tokens_per_s, [300.0, 300.0]);
        // Half the blocks with everything: a wide interval around the same mean.
        let bursty: Vec<Completion> = (0..300)
            .map(|i| Completion {
                end_s: (i / 20) as f64 * 2.0 / 3.0 + 0.01,
                ok: true,
                output_tokens: 10,
            })
            .collect();
        let ci = throughput_ci95(&bursty, 10.0).unwrap();
        assert!(
            ci.requests_per_s[0] < 30.0 && ci.requests_per_s[1] > 30.0,
            "{ci:?}"
        );
        assert_eq!(throughput_ci95(&even[..4], 10.0), None);
        assert_eq!(throughput_ci95(&even, 0.0), None);
    }

    #[test]
    fn steady_state_counts_what_ended_inside() {
        let done: Vec<Completion> = (0..10)
            .map(|i| Completion {
                end_s: i as f64,
                ok: i % 2 == 0,
                output_tokens: 4,
            })
            .collect();
        let s = SteadyState::of(&done, 2.0, 6.0).unwrap();
        // Ends 2..=6: five requests, three of them ok, 20 tokens, over 4 s.
        assert_eq!(s.requests_per_s, 0.75);
        assert_eq!(s.output_tokens_per_s, 5.0);
        assert_eq!(SteadyState::of(&done, 3.0, 3.0), None);
    }

    #[test]
    fn spread_is_the_sample_statistics() {
        let s = Spread::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(
            (s.n, s.mean, s.sd, s.min, s.max),
            (3, 12.0, 2.0, 10.0, 14.0)
        );
        assert_eq!(s.cv_pct, Some(16.667));
        assert_eq!(Spread::of(&[1.0]), None);
        assert_eq!(Spread::of(&[0.0, 0.0]).unwrap().cv_pct, None);
    }
}
