//! Latency histograms: HDR histograms in microseconds that serialize into a report as
//! compressed base64 and merge exactly, so reports from many machines combine into the
//! percentiles one machine would have measured.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::stats::{QuantileCi95, quantile_rank_ci95, round3};

/// Significant decimal digits kept by every latency histogram (0.1% relative error).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram recording milliseconds at microsecond resolution.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram that grows to any value.
    pub fn new() -> Self {
        let mut hist = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
        hist.auto(true);
        Self { hist }
    }

    /// Records one latency in milliseconds. Negative and non-finite values are
    /// recorded as 0 (they can only come from clock misuse, which tests rule out).
    pub fn record_ms(&mut self, ms: f64) {
        let us = if ms.is_finite() && ms > 0.0 {
            (ms * 1000.0).round() as u64
        } else {
            0
        };
        // `record` grows the auto-resizing histogram; `saturating_record` would clamp
        // to its current range instead.
        if self.hist.record(us).is_err() {
            self.hist.saturating_record(us);
        }
    }

    /// Adds every value of `other` into `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms auto-resize, so adding cannot go out of range.
        let _ = self.hist.add(&other.hist);
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at quantile `q` (0..=1) in milliseconds, or `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.is_empty()).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// Arithmetic mean in milliseconds (0 when empty), unrounded.
    pub fn mean_ms(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    /// Smallest value in milliseconds, as [`Self::summary`] reports it (0 when empty).
    pub fn min_ms(&self) -> f64 {
        self.hist.min() as f64 / 1000.0
    }

    /// Largest value in milliseconds, as [`Self::summary`] reports it (0 when empty).
    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    /// Population standard deviation (divisor n) in milliseconds (0 when empty).
    pub fn stdev_ms(&self) -> f64 {
        self.hist.stdev() / 1000.0
    }

    /// The cumulative distribution: (value in ms, fraction of values at or below it)
    /// at every recorded bucket, in increasing order.
    pub fn cdf_ms(&self) -> Vec<(f64, f64)> {
        let n = self.hist.len() as f64;
        let mut below = 0u64;
        self.hist
            .iter_recorded()
            .map(|v| {
                below += v.count_at_value();
                (
                    self.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    below as f64 / n,
                )
            })
            .collect()
    }

    /// Count, mean, percentiles and the serialized histogram.
    pub fn summary(&self) -> LatencySummary {
        let q = |q: f64| self.quantile_ms(q);
        let empty = self.is_empty();
        LatencySummary {
            count: self.len(),
            mean: (!empty).then(|| round3(self.hist.mean() / 1000.0)),
            min: (!empty).then(|| self.hist.min() as f64 / 1000.0),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p99_9: q(0.999),
            max: (!empty).then(|| self.hist.max() as f64 / 1000.0),
            ci95: self.ci95(),
            hdr: self.encode(),
        }
    }

    /// The value at 1-based rank `rank` among the recorded values, ms (the highest
    /// value equivalent to its bucket, as [`Self::quantile_ms`] reports).
    pub fn value_at_rank_ms(&self, rank: u64) -> Option<f64> {
        let mut below = 0u64;
        for v in self.hist.iter_recorded() {
            below += v.count_at_value();
            if below >= rank {
                return Some(self.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0);
            }
        }
        None
    }

    /// Bootstrap 95% intervals of the percentiles ([`crate::stats`]); `None` for
    /// fewer than 2 values.
    pub fn ci95(&self) -> Option<QuantileCi95> {
        let n = self.len();
        let at = |q: f64| -> Option<[f64; 2]> {
            let [lo, hi] = quantile_rank_ci95(n, q)?;
            Some([self.value_at_rank_ms(lo)?, self.value_at_rank_ms(hi)?])
        };
        Some(QuantileCi95 {
            p50: at(0.50)?,
            p90: at(0.90)?,
            p95: at(0.95)?,
            p99: at(0.99)?,
        })
    }

    /// The histogram as base64 of HdrHistogram's V2 deflate encoding (readable by
    /// every HdrHistogram implementation).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.hist, &mut bytes)
            .expect("serializing into a Vec cannot fail");
        BASE64.encode(bytes)
    }

    /// Decodes what [`LatencyHistogram::encode`] wrote; `field` names it in errors.
    pub fn decode(encoded: &str, field: &str) -> Result<Self, ResultsError> {
        let err = |reason: String| ResultsError::Histogram {
            field: field.to_string(),
            reason,
        };
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| err(format!("not base64: {e}")))?;
        let mut hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| err(format!("not an HDR histogram: {e:?}")))?;
        hist.auto(true);
        Ok(Self { hist })
    }
}

/// Summary of one latency metric, all values in the unit named by the field that holds
/// it (milliseconds for every `_ms` field). Percentiles are `null` when `count` is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    /// Number of values recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p99_9: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Bootstrap 95% confidence intervals of p50, p90, p95 and p99 (README,
    /// "Statistics"); absent for fewer than 2 values. Since 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<QuantileCi95>,
    /// The full histogram (microseconds, HdrHistogram V2 deflate, base64), kept so
    /// that reports merge exactly.
    pub hdr: String,
}

impl LatencySummary {
    /// Decodes the stored histogram.
    pub fn histogram(&self, field: &str) -> Result<LatencyHistogram, ResultsError> {
        LatencyHistogram::decode(&self.hdr, field)
    }

    /// The summary of the union of `self`'s and `other`'s values.
    pub fn merged(
        &self,
        other: &LatencySummary,
        field: &str,
    ) -> Result<LatencySummary, ResultsError> {
        let mut h = self.histogram(field)?;
        h.merge(&other.histogram(field)?);
        Ok(h.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_summary_has_no_percentiles() {
        let s = LatencyHistogram::new().summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.p50, None);
        assert_eq!(s.max, None);
    }

    #[test]
    fn records_at_microsecond_resolution() {
        let mut h = LatencyHistogram::new();
        h.record_ms(1.234);
        h.record_ms(0.0004); // rounds to 0 us
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.max, Some(1.234));
        assert_eq!(s.min, Some(0.0));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(LatencyHistogram::decode("!!", "ttft_ms").is_err());
        assert!(LatencyHistogram::decode("aGVsbG8=", "ttft_ms").is_err());
    }

    proptest! {
        /// Every bootstrap interval holds its percentile, lies within the values, and
        /// the intervals of higher percentiles start no lower.
        #[test]
        fn ci95_brackets_each_percentile(
            xs in proptest::collection::vec(0.001f64..60_000.0, 2..400),
        ) {
            let mut h = LatencyHistogram::new();
            xs.iter().for_each(|&x| h.record_ms(x));
            let s = h.summary();
            let ci = s.ci95.clone().unwrap();
            for (p, [lo, hi]) in [(s.p50, ci.p50), (s.p90, ci.p90), (s.p95, ci.p95), (s.p99, ci.p99)] {
                let p = p.unwrap();
                prop_assert!(lo <= p && p <= hi, "{lo} <= {p} <= {hi}");
                prop_assert!(lo >= s.min.unwrap() && hi <= s.max.unwrap());
            }
            prop_assert!(ci.p50[0] <= ci.p90[0] && ci.p90[0] <= ci.p99[0]);
        }

        /// Merging histograms (through their serialized form, as reports do) equals the
        /// histogram of the concatenated samples.
        #[test]
        fn merge_equals_histogram_of_concatenation(
            a in proptest::collection::vec(0.0f64..120_000.0, 0..200),
            b in proptest::collection::vec(0.0f64..120_000.0, 0..200),
        ) {
            let mut ha = LatencyHistogram::new();
            a.iter().for_each(|&x| ha.record_ms(x));
            let mut hb = LatencyHistogram::new();
            b.iter().for_each(|&x| hb.record_ms(x));
            let mut all = LatencyHistogram::new();
            a.iter().chain(&b).for_each(|&x| all.record_ms(x));

            let merged = ha.summary().merged(&hb.summary(), "x").unwrap();
            let direct = all.summary();
            prop_assert_eq!(merged.count, direct.count);
            prop_assert_eq!(merged.p50, direct.p50);
            prop_assert_eq!(merged.p99, direct.p99);
            prop_assert_eq!(merged.p99_9, direct.p99_9);
            prop_assert_eq!(merged.max, direct.max);
            prop_assert_eq!(merged.min, direct.min);
            // Identical bucket counts serialize identically.
            prop_assert_eq!(
                LatencyHistogram::decode(&merged.hdr, "x").unwrap().hist,
                all.hist
            );
        }

        /// Percentiles stay within the histogram's stated relative error of the exact
        /// order statistic.
        #[test]
        fn quantiles_within_relative_error(xs in proptest::collection::vec(1.0f64..60_000.0, 1..300)) {
            let mut h = LatencyHistogram::new();
            xs.iter().for_each(|&x| h.record_ms(x));
            let mut sorted: Vec<u64> = xs.iter().map(|x| (x * 1000.0).round() as u64).collect();
            sorted.sort_unstable();
            for q in [0.5, 0.9, 0.99] {
                let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                let exact = sorted[rank - 1] as f64 / 1000.0;
                let got = h.quantile_ms(q).unwrap();
                prop_assert!((got - exact).abs() <= exact * 1e-3 + 0.001, "q={q} got={got} exact={exact}");
            }
        }
    }
}
