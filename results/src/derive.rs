//! Figures derived from a load point's counts, in one place: a live run's collector,
//! `recover` and `merge` all call these, so a merged or recovered result is computed
//! exactly as a measured one.

use crate::histogram::LatencyHistogram;
use crate::report::{TaskStats, Throughput};
use crate::stats::{Completion, SteadyState, throughput_ci95};

/// The counts throughput is derived from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThroughputCounts {
    /// Successful requests.
    pub ok_requests: u64,
    /// Input tokens of successful requests.
    pub ok_input_tokens: u64,
    /// Output tokens of every request (failed ones' partial output included).
    pub output_tokens: u64,
}

/// Throughput over a window of `window_s` seconds; `tpot_p50_ms` (the median time per
/// output token) gives the interactivity. The intervals and the steady state need
/// each request's end ([`with_intervals`]); without them they are `None`.
pub fn throughput(c: ThroughputCounts, window_s: f64, tpot_p50_ms: Option<f64>) -> Throughput {
    let per_s = |x: u64| {
        if window_s > 0.0 {
            x as f64 / window_s
        } else {
            0.0
        }
    };
    Throughput {
        requests_per_s: per_s(c.ok_requests),
        input_tokens_per_s: per_s(c.ok_input_tokens),
        output_tokens_per_s: per_s(c.output_tokens),
        output_tokens_per_s_per_user: tpot_p50_ms.filter(|&t| t > 0.0).map(|t| 1000.0 / t),
        ci95: None,
        steady_state: None,
    }
}

/// [`throughput`] with its bootstrap intervals and, when `steady_s` gives the steady
/// window (seconds from the start of measurement), its steady-state figures, from
/// every finished request's end.
pub fn with_intervals(
    mut t: Throughput,
    done: &[Completion],
    window_s: f64,
    steady_s: Option<(f64, f64)>,
) -> Throughput {
    t.ci95 = throughput_ci95(done, window_s);
    t.steady_state = steady_s.and_then(|(a, b)| SteadyState::of(done, a, b));
    t
}

/// The sums task figures are derived from.
#[derive(Clone, Debug, Default)]
pub struct TaskSums {
    /// Tasks started.
    pub started: u64,
    /// Tasks whose every call was made and succeeded.
    pub completed: u64,
    /// Calls of completed tasks.
    pub calls: u64,
    /// Input tokens of completed tasks.
    pub input_tokens: u64,
    /// Output tokens of completed tasks.
    pub output_tokens: u64,
    /// Wall time of completed tasks, ms.
    pub task_ms: LatencyHistogram,
}

impl TaskSums {
    /// The sums behind `t` (means times completed tasks, rounded back to the counts
    /// they were computed from).
    pub fn of(t: &TaskStats) -> Result<Self, crate::error::ResultsError> {
        let back = |mean: Option<f64>| (mean.unwrap_or(0.0) * t.completed as f64).round() as u64;
        Ok(Self {
            started: t.started,
            completed: t.completed,
            calls: back(t.calls_per_task),
            input_tokens: back(t.input_tokens_per_task),
            output_tokens: back(t.output_tokens_per_task),
            task_ms: t.task_ms.histogram("tasks.task_ms")?,
        })
    }

    /// Adds `other`'s tasks.
    pub fn add(&mut self, other: &TaskSums) {
        // Saturating: a report read from a file may hold any counts.
        self.started = self.started.saturating_add(other.started);
        self.completed = self.completed.saturating_add(other.completed);
        self.calls = self.calls.saturating_add(other.calls);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.task_ms.merge(&other.task_ms);
    }

    /// The task figures.
    pub fn stats(&self) -> TaskStats {
        let per = |x: u64| (self.completed > 0).then(|| x as f64 / self.completed as f64);
        TaskStats {
            started: self.started,
            completed: self.completed,
            failed: self.started.saturating_sub(self.completed),
            task_ms: self.task_ms.summary(),
            calls_per_task: per(self.calls),
            input_tokens_per_task: per(self.input_tokens),
            output_tokens_per_task: per(self.output_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_divides_by_the_window_and_interactivity_inverts_tpot() {
        let c = ThroughputCounts {
            ok_requests: 10,
            ok_input_tokens: 400,
            output_tokens: 200,
        };
        let t = throughput(c, 4.0, Some(20.0));
        assert_eq!(
            (
                t.requests_per_s,
                t.input_tokens_per_s,
                t.output_tokens_per_s
            ),
            (2.5, 100.0, 50.0)
        );
        assert_eq!(t.output_tokens_per_s_per_user, Some(50.0));
        let empty = throughput(c, 0.0, Some(0.0));
        assert_eq!(empty.requests_per_s, 0.0);
        assert_eq!(empty.output_tokens_per_s_per_user, None);
    }

    #[test]
    fn task_sums_round_trip_through_their_stats() {
        let mut s = TaskSums {
            started: 7,
            completed: 3,
            calls: 10,
            input_tokens: 1001,
            output_tokens: 77,
            ..TaskSums::default()
        };
        for ms in [10.0, 20.0, 30.0] {
            s.task_ms.record_ms(ms);
        }
        let stats = s.stats();
        assert_eq!(stats.failed, 4);
        let back = TaskSums::of(&stats).unwrap();
        assert_eq!(
            (back.calls, back.input_tokens, back.output_tokens),
            (10, 1001, 77)
        );
        let mut twice = back.clone();
        twice.add(&back);
        assert_eq!(twice.stats().task_ms.count, 6);
        assert_eq!(twice.stats().calls_per_task, stats.calls_per_task);
    }
}
