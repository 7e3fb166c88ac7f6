//! The steady-state window of a load point, for figures that must not include ramp-up
//! and drain (energy, power).
//!
//! Rule: over the span from the first to the last send, take the time-weighted median
//! of the number of requests in flight; the window starts the first time that many are
//! in flight (the target is as loaded as it will typically be) and ends at the last
//! send (after it the load only drains). A closed loop thus starts when every worker
//! is busy; an open loop when its typical concurrency is reached. When that window is
//! empty, or shorter than `min_s`, there is no steady state and `None` is returned;
//! callers then use the whole measured window and say so.

/// `(seconds, +1 for a send / -1 for a completion)` events -> the steady window
/// `(start_s, end_s)`.
pub fn steady_window(events: &[(f64, i32)], min_s: f64) -> Option<(f64, f64)> {
    let mut ev: Vec<(f64, i32)> = events.to_vec();
    // At equal times completions first: a request that ends as another starts does not
    // count as two in flight.
    ev.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let first_send = ev.iter().find(|e| e.1 > 0)?.0;
    let last_send = ev.iter().rev().find(|e| e.1 > 0)?.0;
    if last_send <= first_send {
        return None;
    }
    // Time spent at each level between the first and the last send.
    let mut level = 0i64;
    let mut spans: Vec<(i64, f64)> = Vec::new();
    let mut prev_t = first_send;
    for &(t, d) in &ev {
        let (a, b) = (prev_t.max(first_send), t.min(last_send));
        if b > a {
            spans.push((level, b - a));
        }
        prev_t = t;
        level += i64::from(d);
    }
    let total: f64 = spans.iter().map(|s| s.1).sum();
    if total <= 0.0 {
        return None;
    }
    spans.sort_by_key(|s| s.0);
    let mut acc = 0.0;
    let median = spans
        .iter()
        .find(|s| {
            acc += s.1;
            acc >= total / 2.0
        })
        .map(|s| s.0)?;
    // The first time that level is reached.
    let mut level = 0i64;
    let mut start = None;
    for &(t, d) in &ev {
        level += i64::from(d);
        if level >= median.max(1) {
            start = Some(t);
            break;
        }
    }
    let start = start?;
    (last_send - start >= min_s).then_some((start, last_send))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_loop_is_steady_from_all_workers_busy_to_the_last_send() {
        // 4 workers start 0.1 s apart; each request takes 1 s; the next is sent at once.
        let mut ev = Vec::new();
        for w in 0..4 {
            let mut t = w as f64 * 0.1;
            for _ in 0..5 {
                ev.push((t, 1));
                ev.push((t + 1.0, -1));
                t += 1.0;
            }
        }
        let (a, b) = steady_window(&ev, 1.0).unwrap();
        assert!((a - 0.3).abs() < 1e-9, "{a}");
        assert!((b - 4.3).abs() < 1e-9, "{b}");
    }

    #[test]
    fn an_open_loop_starts_at_its_typical_concurrency() {
        // Sends every 0.5 s, each lasting 1.2 s: 2-3 in flight once ramped up.
        let mut ev = Vec::new();
        for i in 0..20 {
            let t = i as f64 * 0.5;
            ev.push((t, 1));
            ev.push((t + 1.2, -1));
        }
        let (a, b) = steady_window(&ev, 1.0).unwrap();
        assert!((a - 0.5).abs() < 1e-9 || (a - 1.0).abs() < 1e-9, "{a}");
        assert!((b - 9.5).abs() < 1e-9);
    }

    #[test]
    fn no_steady_state_without_a_long_enough_window() {
        assert_eq!(steady_window(&[], 1.0), None);
        assert_eq!(steady_window(&[(0.0, 1), (2.0, -1)], 1.0), None);
        // All at once: the last send is the first.
        let ev: Vec<(f64, i32)> = (0..8).flat_map(|_| [(0.0, 1), (3.0, -1)]).collect();
        assert_eq!(steady_window(&ev, 1.0), None);
        // Long enough ramp, but too short a steady part.
        let ev = vec![(0.0, 1), (0.5, 1), (0.6, -1), (0.7, -1)];
        assert_eq!(steady_window(&ev, 1.0), None);
    }
}
