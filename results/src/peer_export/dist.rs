//! One latency distribution of a report, read back from its stored histogram, with the
//! statistics the peers' formats publish: population standard deviation, sum, and
//! percentiles by linear interpolation between order statistics (numpy's default,
//! which vLLM, GuideLLM and AIPerf use), each order statistic at the histogram's
//! resolution (0.1%); every figure rounded to whole nanoseconds.

use crate::error::ResultsError;
use crate::histogram::{LatencyHistogram, LatencySummary};

/// Rounds to whole nanoseconds (6 decimals of a millisecond): below the histogram's
/// resolution, and free of binary fractions' noise.
fn ns(ms: f64) -> f64 {
    (ms * 1e6).round() / 1e6
}

/// A non-empty distribution of milliseconds.
pub(crate) struct Dist {
    hist: LatencyHistogram,
}

impl Dist {
    /// The distribution of `summary` (`field` names it in errors); `None` when nothing
    /// was recorded.
    pub(crate) fn of(summary: &LatencySummary, field: &str) -> Result<Option<Dist>, ResultsError> {
        if summary.count == 0 {
            return Ok(None);
        }
        let hist = summary.histogram(field)?;
        Ok((!hist.is_empty()).then_some(Dist { hist }))
    }

    /// Number of values.
    pub(crate) fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Arithmetic mean, ms.
    pub(crate) fn mean(&self) -> f64 {
        ns(self.hist.mean_ms())
    }

    /// Population standard deviation (divisor n), ms.
    pub(crate) fn std(&self) -> f64 {
        ns(self.hist.stdev_ms())
    }

    /// Sum of the values, ms.
    pub(crate) fn sum(&self) -> f64 {
        ns(self.hist.mean_ms() * self.count() as f64)
    }

    /// Smallest value, ms (the report's `min`).
    pub(crate) fn min(&self) -> f64 {
        self.hist.min_ms()
    }

    /// Largest value, ms (the report's `max`).
    pub(crate) fn max(&self) -> f64 {
        self.hist.max_ms()
    }

    /// The `p`th percentile (0..=100), ms: linear interpolation at 0-based position
    /// p/100 x (n - 1) between the order statistics on either side.
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        let n = self.count();
        let pos = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
        let lo = pos.floor() as u64;
        let hi = pos.ceil() as u64;
        let at = |i: u64| self.hist.value_at_rank_ms(i + 1).unwrap_or(0.0);
        let (a, b) = (at(lo), at(hi));
        ns(a + (b - a) * (pos - lo as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dist(values: &[f64]) -> Dist {
        let mut h = LatencyHistogram::new();
        for v in values {
            h.record_ms(*v);
        }
        Dist::of(&h.summary(), "test").unwrap().unwrap()
    }

    /// numpy.percentile's default (linear) on sorted values.
    fn linear(sorted: &[f64], p: f64) -> f64 {
        let pos = p / 100.0 * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    }

    #[test]
    fn small_sets_match_numpy_exactly_where_values_fit_the_histogram() {
        // Whole microseconds below 2,048 are exact in a 3-digit HDR histogram.
        let d = dist(&[0.1, 0.2, 0.3, 0.4]);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(near(d.percentile(50.0), 0.25), "{}", d.percentile(50.0));
        assert!(near(d.percentile(99.0), 0.397), "{}", d.percentile(99.0));
        assert!(near(d.percentile(0.0), 0.1) && near(d.percentile(100.0), 0.4));
        assert_eq!((d.min(), d.max()), (0.1, 0.4));
        assert!(near(d.sum(), 1.0), "{}", d.sum());
        assert!((d.std() - 0.111_803_4).abs() < 1e-6, "{}", d.std());
        assert!(
            Dist::of(&LatencyHistogram::new().summary(), "x")
                .unwrap()
                .is_none()
        );
    }

    proptest! {
        #[test]
        fn percentiles_are_numpys_within_the_histograms_resolution(
            mut values in proptest::collection::vec(0.01f64..5_000.0, 1..200),
            p in 0.0f64..=100.0,
        ) {
            let d = dist(&values);
            values.sort_by(f64::total_cmp);
            let want = linear(&values, p);
            let got = d.percentile(p);
            // 0.1% per order statistic, plus the microsecond rounding of each value.
            prop_assert!((got - want).abs() <= want * 2e-3 + 1e-3, "p{p}: {got} vs {want}");
            prop_assert_eq!(d.count(), values.len() as u64);
        }
    }
}
