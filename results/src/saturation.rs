//! Over-saturation of an open-loop load point: a target that cannot keep up with a
//! fixed arrival rate builds a queue, so requests in flight climb and the time from
//! the intended send to the first token grows through the point instead of settling.
//!
//! Rule: split the sending span (first to last intended send) into thirds. The point
//! is over-saturated when the median TTFT from the intended send of the last third's
//! requests is at least [`TTFT_GROWTH`] times the first third's, and the time-weighted
//! mean of requests in flight over the last third is at least [`IN_FLIGHT_GROWTH`]
//! times the first third's and at least [`IN_FLIGHT_MIN_RISE`] higher. Both must
//! hold: TTFT alone grows with prompt lengths, in-flight alone with a burst.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::median;

/// Median TTFT growth from the first third to the last that, with in-flight growth,
/// calls a point over-saturated.
pub const TTFT_GROWTH: f64 = 2.0;
/// In-flight growth, likewise.
pub const IN_FLIGHT_GROWTH: f64 = 1.5;
/// Smallest rise of the mean in flight (requests), so that 1 -> 2 is not a queue.
pub const IN_FLIGHT_MIN_RISE: f64 = 2.0;
/// Fewest successful requests per third to judge.
pub const MIN_PER_THIRD: usize = 4;

/// The over-saturation check of one open-loop load point. Since 1.8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaturationCheck {
    /// Median TTFT from the intended send, requests sent in the first third, ms.
    pub ttft_first_third_ms: f64,
    /// The same over the last third, ms.
    pub ttft_last_third_ms: f64,
    /// Time-weighted mean of requests in flight over the first third.
    pub in_flight_first_third: f64,
    /// The same over the last third.
    pub in_flight_last_third: f64,
    /// Whether the target fell behind the arrival rate (see the rule above).
    pub oversaturated: bool,
}

/// Time-weighted mean of the in-flight level over `[a, b]` from `(t, +1/-1)` events.
fn mean_in_flight(events: &[(f64, i32)], a: f64, b: f64) -> f64 {
    let mut ev = events.to_vec();
    ev.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut level, mut prev, mut area) = (0i64, f64::NEG_INFINITY, 0.0);
    for &(t, d) in &ev {
        let (lo, hi) = (prev.max(a), t.min(b));
        if hi > lo {
            area += level as f64 * (hi - lo);
        }
        prev = t;
        level += i64::from(d);
    }
    if b > prev.max(a) {
        area += level as f64 * (b - prev.max(a));
    }
    if b > a { area / (b - a) } else { 0.0 }
}

/// The check over `requests` (`(intended send s, TTFT from intended ms)` of the
/// successful ones) and the in-flight `events` (`(s, +1 send / -1 end)`); `None` when
/// there are too few requests to judge.
pub fn check(requests: &[(f64, f64)], events: &[(f64, i32)]) -> Option<SaturationCheck> {
    let first = requests.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let last = requests
        .iter()
        .map(|r| r.0)
        .fold(f64::NEG_INFINITY, f64::max);
    if last.is_nan() || first.is_nan() || last <= first {
        return None;
    }
    let third = (last - first) / 3.0;
    let (a, b) = (first + third, last - third);
    let early: Vec<f64> = requests.iter().filter(|r| r.0 <= a).map(|r| r.1).collect();
    let late: Vec<f64> = requests.iter().filter(|r| r.0 >= b).map(|r| r.1).collect();
    if early.len() < MIN_PER_THIRD || late.len() < MIN_PER_THIRD {
        return None;
    }
    let (t1, t3) = (median(early)?, median(late)?);
    let (f1, f3) = (
        mean_in_flight(events, first, a),
        mean_in_flight(events, b, last),
    );
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Some(SaturationCheck {
        ttft_first_third_ms: round(t1),
        ttft_last_third_ms: round(t3),
        in_flight_first_third: round(f1),
        in_flight_last_third: round(f3),
        oversaturated: t3 >= TTFT_GROWTH * t1
            && f3 >= IN_FLIGHT_GROWTH * f1
            && f3 - f1 >= IN_FLIGHT_MIN_RISE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(intended send, TTFT ms)` per request, and the in-flight events.
    type Run = (Vec<(f64, f64)>, Vec<(f64, i32)>);

    /// A single server of `service_s` per request fed every `gap_s`.
    fn queue(n: usize, gap_s: f64, service_s: f64) -> Run {
        let (mut reqs, mut ev, mut free) = (Vec::new(), Vec::new(), 0.0f64);
        for i in 0..n {
            let at = i as f64 * gap_s;
            let start = free.max(at);
            let first_token = start + service_s / 10.0;
            free = start + service_s;
            reqs.push((at, (first_token - at) * 1000.0));
            ev.push((at, 1));
            ev.push((free, -1));
        }
        (reqs, ev)
    }

    #[test]
    fn a_queue_that_grows_is_oversaturated_and_one_that_keeps_up_is_not() {
        let (r, e) = queue(60, 0.1, 0.2);
        let c = check(&r, &e).unwrap();
        assert!(c.oversaturated, "{c:?}");
        assert!(c.ttft_last_third_ms > 5.0 * c.ttft_first_third_ms);
        let (r, e) = queue(60, 0.3, 0.2);
        let c = check(&r, &e).unwrap();
        assert!(!c.oversaturated, "{c:?}");
        assert_eq!(c.ttft_first_third_ms, c.ttft_last_third_ms);
        assert!(check(&r[..5], &e).is_none(), "too few to judge");
    }

    proptest! {
        #[test]
        fn a_server_faster_than_the_arrivals_never_saturates(
            n in 12usize..200, gap in 0.01f64..2.0, ratio in 0.05f64..0.99
        ) {
            let (r, e) = queue(n, gap, gap * ratio);
            let c = check(&r, &e).unwrap();
            prop_assert!(!c.oversaturated);
            prop_assert!(c.in_flight_last_third <= 1.0 + 1e-9);
        }
    }
}
