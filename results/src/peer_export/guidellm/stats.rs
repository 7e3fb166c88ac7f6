//! GuideLLM 0.8.1's distribution statistics (`guidellm.schemas.base.statistics`), so
//! that an exported report holds the figures GuideLLM itself computes from the same
//! requests:
//!
//! - a distribution of weighted values: values sorted, equal ones merged (weights
//!   summed), zero weights dropped, weights normalised to probabilities; mean,
//!   variance (population), mode (the most probable value), and percentiles as the
//!   first value whose cumulative probability reaches p (a lower nearest rank);
//! - a rate over time from weighted event times: times within 0.1 ms merged, each
//!   time given the half-gaps to its neighbours, rate = weight / that duration,
//!   weighted by the duration;
//! - a concurrency over time from weighted intervals: the running sum of starts and
//!   ends, each level weighted by how long it held.
//!
//! Sums are numpy's pairwise sums and cumulative sums are sequential, as numpy
//! computes them, so that percentiles picked at an exact tie (0.25 + 0.25 = 0.5) fall
//! where GuideLLM's do.

use serde_json::{Value, json};

/// GuideLLM's percentiles: key and probability.
const PERCENTILES: [(&str, f64); 11] = [
    ("p001", 0.001),
    ("p01", 0.01),
    ("p05", 0.05),
    ("p10", 0.1),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p90", 0.9),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
];

/// Probabilities that sum below this are treated as no weight at all (GuideLLM's
/// `epsilon`).
const EPSILON: f64 = 1e-6;

/// Event times closer than this, seconds, are merged (GuideLLM's `threshold`).
pub(super) const MERGE_S: f64 = 1e-4;

/// numpy's pairwise summation (`pairwise_sum` in its add reduction): sequential below
/// 8 values, 8 interleaved partial sums up to 128, halves (cut at a multiple of 8)
/// beyond.
pub(super) fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// Python's `round()` of a float to an integer (ties to even).
fn py_round(x: f64) -> u64 {
    x.round_ties_even().max(0.0) as u64
}

/// One DistributionSummary.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Summary {
    pub mean: f64,
    pub median: f64,
    pub mode: f64,
    pub variance: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
    pub total_sum: f64,
    pub percentiles: [f64; 11],
}

impl Summary {
    /// The summary of nothing: zeros, with `count`.
    fn empty(count: u64) -> Summary {
        Summary {
            mean: 0.0,
            median: 0.0,
            mode: 0.0,
            variance: 0.0,
            std_dev: 0.0,
            min: 0.0,
            max: 0.0,
            count,
            total_sum: 0.0,
            percentiles: [0.0; 11],
        }
    }

    /// `DistributionSummary.from_values` of (value, weight) pairs; `count` defaults
    /// to the rounded sum of the weights.
    pub(super) fn from_values(values: &[(f64, f64)], count: Option<u64>) -> Summary {
        if values.is_empty() {
            return Summary::empty(0);
        }
        let weights: Vec<f64> = values.iter().map(|v| v.1).collect();
        let count = count.unwrap_or_else(|| py_round(np_sum(&weights)));
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Equal values merged, their weights summed in order; zero weights dropped.
        let mut merged: Vec<(f64, f64)> = Vec::with_capacity(sorted.len());
        for (v, w) in sorted {
            match merged.last_mut() {
                Some(last) if last.0 == v => last.1 += w,
                _ => merged.push((v, 0.0 + w)),
            }
        }
        merged.retain(|m| m.1 > 0.0);
        let mut w: Vec<f64> = merged.iter().map(|m| m.1).collect();
        let mut total = np_sum(&w);
        if total <= EPSILON {
            w = vec![1.0; merged.len()];
            total = np_sum(&w);
        }
        let pdf: Vec<(f64, f64)> = merged
            .iter()
            .zip(&w)
            .map(|(m, wi)| (m.0, wi / total))
            .collect();
        Summary::from_pdf(&pdf, count)
    }

    /// `DistributionSummary.from_pdf` of sorted (value, probability) pairs.
    fn from_pdf(pdf: &[(f64, f64)], count: u64) -> Summary {
        if pdf.is_empty() {
            return Summary::empty(count);
        }
        let mut cdf = Vec::with_capacity(pdf.len());
        let mut acc = 0.0;
        for p in pdf {
            acc += p.1;
            cdf.push(acc);
        }
        let mut percentiles = [0.0; 11];
        for (slot, (_, p)) in percentiles.iter_mut().zip(PERCENTILES) {
            // numpy's searchsorted(side="left"): the first cumulative value >= p.
            let i = cdf.partition_point(|c| *c < p).min(pdf.len() - 1);
            *slot = pdf[i].0;
        }
        let products: Vec<f64> = pdf.iter().map(|p| p.0 * p.1).collect();
        let mean = np_sum(&products);
        let mut mode_at = 0;
        for (i, p) in pdf.iter().enumerate() {
            if p.1 > pdf[mode_at].1 {
                mode_at = i;
            }
        }
        let squares: Vec<f64> = pdf
            .iter()
            .map(|p| {
                let d = p.0 - mean;
                d * d * p.1
            })
            .collect();
        let variance = np_sum(&squares);
        Summary {
            mean,
            median: percentiles[5],
            mode: pdf[mode_at].0,
            variance,
            std_dev: variance.sqrt(),
            min: pdf[0].0,
            max: pdf[pdf.len() - 1].0,
            count,
            total_sum: mean * count as f64,
            percentiles,
        }
    }

    /// `DistributionSummary.rate_distribution_from_timings` of (time, weight) events
    /// inside an optional window.
    pub(super) fn rate(events: &[(f64, f64)], window: Option<(f64, f64)>) -> Summary {
        let mut t: Vec<(f64, f64)> = match window {
            Some((start, end)) => {
                let mut v = vec![(start, 0.0)];
                v.extend(events.iter().filter(|e| e.0 >= start && e.0 <= end));
                v.push((end, 0.0));
                v
            }
            None => events.to_vec(),
        };
        t.sort_by(|a, b| a.0.total_cmp(&b.0));
        let t = merge_times(&t);
        if t.len() <= 1 {
            return Summary::from_values(&[], None);
        }
        let n = t.len();
        let mid: Vec<f64> = t.windows(2).map(|w| (w[1].0 + w[0].0) / 2.0).collect();
        let mut durations = vec![0.0; n];
        durations[0] = mid[0] - t[0].0;
        for i in 1..n - 1 {
            durations[i] = mid[i] - mid[i - 1];
        }
        durations[n - 1] = (t[n - 1].0 - mid[n - 2]).max(EPSILON);
        let weights: Vec<f64> = t.iter().map(|e| e.1).collect();
        let count = py_round(np_sum(&weights));
        let rates: Vec<(f64, f64)> = t
            .iter()
            .zip(&durations)
            .map(|(e, d)| (e.1 / d, *d))
            .collect();
        Summary::from_values(&rates, Some(count))
    }

    /// `DistributionSummary.concurrency_distribution_from_timings` of (start, end,
    /// weight) intervals inside an optional window.
    pub(super) fn concurrency(
        intervals: &[(f64, f64, f64)],
        window: Option<(f64, f64)>,
    ) -> Summary {
        let kept: Vec<&(f64, f64, f64)> = intervals
            .iter()
            .filter(|i| window.is_none_or(|(s, e)| i.1 >= s && i.0 <= e))
            .collect();
        let count = kept.len() as u64;
        let mut t: Vec<(f64, f64)> = kept.iter().map(|i| (i.0, i.2)).collect();
        t.extend(kept.iter().map(|i| (i.1, -i.2)));
        t.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut t = merge_times(&t);
        if let (Some((start, end)), false) = (window, t.is_empty()) {
            let at = t.partition_point(|e| e.0 < start);
            let prior = if at > 0 {
                np_sum(&t[..at].iter().map(|e| e.1).collect::<Vec<_>>())
            } else {
                0.0
            };
            let mut v = vec![(start, prior)];
            v.extend_from_slice(&t[at..]);
            let upto = v.partition_point(|e| e.0 <= end);
            v.truncate(upto);
            v.push((end, 0.0));
            t = v;
        }
        let mut levels = Vec::with_capacity(t.len());
        let mut acc = 0.0;
        for e in &t {
            acc += e.1;
            levels.push(acc.max(0.0));
        }
        if levels.len() <= 1 {
            return match (count, levels.first()) {
                (0, _) | (_, None) => Summary::from_values(&[], None),
                (_, Some(l)) => Summary::from_values(&[(*l, 1.0)], None),
            };
        }
        let values: Vec<(f64, f64)> = t
            .windows(2)
            .zip(&levels)
            .map(|(w, l)| (*l, (w[1].0 - w[0].0).max(0.0)))
            .collect();
        if values.iter().any(|v| v.1 > 0.0) {
            Summary::from_values(&values, Some(count))
        } else {
            Summary::from_values(&[], Some(count))
        }
    }

    /// The summary as GuideLLM's JSON (no PDF, no confidence intervals).
    pub(super) fn json(&self) -> Value {
        let mut p = serde_json::Map::new();
        for ((key, _), v) in PERCENTILES.iter().zip(self.percentiles) {
            p.insert((*key).into(), json!(v));
        }
        json!({
            "mean": self.mean, "median": self.median, "mode": self.mode,
            "variance": self.variance, "std_dev": self.std_dev,
            "min": self.min, "max": self.max, "count": self.count,
            "total_sum": self.total_sum, "percentiles": p,
            "pdf": null, "mean_ci": null, "percentile_cis": null,
        })
    }
}

/// `_merge_sorted_times_with_weights`: equal times merged, then each run of times
/// less than [`MERGE_S`] apart split into groups that start at a time and take every
/// later time within [`MERGE_S`] of it, kept at the group's first time with the
/// group's summed weight.
fn merge_times(sorted: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut unique: Vec<(f64, f64)> = Vec::with_capacity(sorted.len());
    for (t, w) in sorted {
        match unique.last_mut() {
            Some(last) if last.0 == *t => last.1 += w,
            _ => unique.push((*t, 0.0 + w)),
        }
    }
    if unique.len() <= 1 || !unique.windows(2).any(|w| w[1].0 - w[0].0 <= MERGE_S) {
        return unique;
    }
    let n = unique.len();
    let mut is_start = vec![true; n];
    let mut run = 0;
    while run < n {
        let mut end = run + 1;
        while end < n && unique[end].0 - unique[end - 1].0 <= MERGE_S {
            end += 1;
        }
        if end - run > 1 {
            for s in &mut is_start[run..end] {
                *s = false;
            }
            let mut i = run;
            while i < end {
                is_start[i] = true;
                let limit = unique[i].0 + MERGE_S;
                i += unique[i..end].partition_point(|e| e.0 <= limit);
            }
        }
        run = end;
    }
    let starts: Vec<usize> = (0..n).filter(|i| is_start[*i]).collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let stop = starts.get(k + 1).copied().unwrap_or(n);
            let w: Vec<f64> = unique[*s..stop].iter().map(|e| e.1).collect();
            (unique[*s].0, np_sum(&w))
        })
        .collect()
}

/// One StatusDistributionSummary: successful, incomplete, errored and all of them
/// (in that order, as GuideLLM concatenates them).
pub(super) struct ByStatus<T> {
    pub successful: Vec<T>,
    pub errored: Vec<T>,
}

impl<T: Clone> ByStatus<T> {
    fn total(&self) -> Vec<T> {
        let mut all = self.successful.clone();
        all.extend(self.errored.iter().cloned());
        all
    }
}

/// The JSON of a StatusDistributionSummary from a summary function applied to each
/// status's values (no request is ever incomplete: infermeter waits for every one).
pub(super) fn by_status<T: Clone>(v: &ByStatus<T>, f: impl Fn(&[T]) -> Summary) -> Value {
    json!({
        "successful": f(&v.successful).json(),
        "incomplete": f(&[]).json(),
        "errored": f(&v.errored).json(),
        "total": f(&v.total()).json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pairwise_sum_matches_numpys_order() {
        // 0.1 x 10: numpy's pairwise sum gives 1.0 exactly where a running sum gives
        // 0.9999999999999999.
        let a = [0.1; 10];
        assert_eq!(np_sum(&a), 1.0);
        let mut run = 0.0;
        for x in a {
            run += x;
        }
        assert_ne!(run, 1.0);
    }

    #[test]
    fn weighted_values_give_guidellms_lower_nearest_rank_percentiles() {
        let s = Summary::from_values(&[(3.0, 1.0), (1.0, 1.0), (2.0, 1.0), (4.0, 1.0)], None);
        assert_eq!(s.count, 4);
        assert_eq!(s.mean, 2.5);
        // The cumulative probabilities are 0.25, 0.5, 0.75, 1: p50 is the second value.
        assert_eq!(
            (s.median, s.percentiles[4], s.percentiles[9]),
            (2.0, 1.0, 4.0)
        );
        assert_eq!((s.min, s.max, s.total_sum), (1.0, 4.0, 10.0));
        assert_eq!(s.variance, 1.25);
        // A weight of 3 on 1.0 moves the median and the mode there.
        let w = Summary::from_values(&[(1.0, 3.0), (2.0, 1.0)], None);
        assert_eq!((w.median, w.mode, w.count, w.mean), (1.0, 1.0, 4, 1.25));
        assert_eq!(Summary::from_values(&[], Some(5)), Summary::empty(0));
    }

    #[test]
    fn rates_weight_each_event_by_its_half_gaps() {
        // Events at 1 s and 2 s in a window 0-3 s: durations 0.5, 1, 1, 0.5.
        let s = Summary::rate(&[(1.0, 1.0), (2.0, 1.0)], Some((0.0, 3.0)));
        assert_eq!(s.count, 2);
        // Rates 0, 1, 1, 0 weighted 0.5, 1, 1, 0.5: mean 2/3.
        assert!((s.mean - 2.0 / 3.0).abs() < 1e-15, "{}", s.mean);
        assert_eq!((s.min, s.max), (0.0, 1.0));
        // Events 50 us apart are one event of their summed weight.
        let m = merge_times(&[(1.0, 1.0), (1.00005, 2.0), (1.0002, 1.0)]);
        assert_eq!(m, vec![(1.0, 3.0), (1.0002, 1.0)]);
    }

    #[test]
    fn concurrency_weights_each_level_by_how_long_it_held() {
        // Two requests, 0-2 s and 1-3 s, in a window 0-4 s: levels 1, 2, 1, 0 for
        // 1 s each.
        let s = Summary::concurrency(&[(0.0, 2.0, 1.0), (1.0, 3.0, 1.0)], Some((0.0, 4.0)));
        assert_eq!(s.count, 2);
        assert_eq!(s.mean, 1.0);
        assert_eq!((s.min, s.max, s.median), (0.0, 2.0, 1.0));
    }

    proptest! {
        #[test]
        fn summaries_are_ordered_and_weighted_means_of_their_values(
            values in proptest::collection::vec((0.0f64..1e3, 0.5f64..5.0), 1..300),
        ) {
            let s = Summary::from_values(&values, None);
            let w: f64 = values.iter().map(|v| v.1).sum();
            let mean = values.iter().map(|v| v.0 * v.1).sum::<f64>() / w;
            prop_assert!((s.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0));
            prop_assert!(s.min <= s.percentiles[0]);
            prop_assert!(s.percentiles.windows(2).all(|p| p[0] <= p[1]));
            prop_assert!(s.percentiles[10] <= s.max);
            prop_assert!(s.variance >= 0.0);
            prop_assert_eq!(s.count, w.round_ties_even() as u64);
            let sum: f64 = values.iter().map(|v| v.0).sum();
            prop_assert!(np_sum(&values.iter().map(|v| v.0).collect::<Vec<_>>()) - sum <= 1e-9 * sum.max(1.0));
        }
    }
}
