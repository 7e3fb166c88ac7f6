//! The `verification` section: how many of a load point's checked requests and tasks
//! the target got right, with a confidence interval, and why the others failed.
//!
//! A request carries a checker when its workload makes verifiable tasks (README,
//! "Verified tasks"); the target's reply is graded after it is timed. A task is a
//! session: it is verified when every checked call in it passed. Cost and energy per
//! verified task sit beside the other per-task figures (`cost.usd_per_verified_task`,
//! `energy.j_per_verified_task`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a checked request did not pass.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckFailure {
    /// The reply had an answer of the right form, and it was wrong.
    WrongAnswer,
    /// The reply had no answer of the asked form: no number, not one of the labels, no
    /// JSON value, JSON that fails the schema, an empty answer line.
    Malformed,
    /// The request failed (an error class in `requests`), so there was nothing to grade.
    RequestError,
    /// The target returned no text to grade (a local model whose vocabulary is not the
    /// embedded tokenizer's).
    NoText,
    /// The prompt was cut to fit the target's context (its oldest tokens dropped), so
    /// the task itself may be gone (a shallow needle, the instructions): not graded.
    InputCapped,
}

impl CheckFailure {
    /// Every kind, in report order.
    pub const ALL: [CheckFailure; 5] = [
        CheckFailure::WrongAnswer,
        CheckFailure::Malformed,
        CheckFailure::RequestError,
        CheckFailure::NoText,
        CheckFailure::InputCapped,
    ];

    /// The snake-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckFailure::WrongAnswer => "wrong_answer",
            CheckFailure::Malformed => "malformed",
            CheckFailure::RequestError => "request_error",
            CheckFailure::NoText => "no_text",
            CheckFailure::InputCapped => "input_capped",
        }
    }
}

/// Checked calls and passes of one group (a needle depth, an operation, a checker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupCounts {
    /// Checked calls.
    pub checked: u64,
    /// Of which passed.
    pub passed: u64,
}

/// The verification figures of one load point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationStats {
    /// Tasks (sessions) with at least one checked call.
    pub tasks_checked: u64,
    /// Of which every planned call was made and every checked one passed (a session cut
    /// short by the run's bound is not verified).
    pub tasks_verified: u64,
    /// `tasks_verified / tasks_checked`, 0-1.
    pub success_rate: f64,
    /// Wilson score 95% interval of `success_rate` (tasks are independent trials),
    /// `[low, high]`, 0-1.
    pub success_rate_ci95: [f64; 2],
    /// Checked calls (requests).
    pub calls_checked: u64,
    /// Of which passed.
    pub calls_passed: u64,
    /// Checked calls that did not pass, by why.
    pub failures: BTreeMap<CheckFailure, u64>,
    /// Checked calls and passes by group (the task generator's label, e.g.
    /// `depth=0.50`, `op=add`; a file task's `group`), so a rate can be read per group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_group: BTreeMap<String, GroupCounts>,
}

impl VerificationStats {
    /// The figures of these counts: the rate and its Wilson interval derived here, so
    /// that a live run, `recover` and `merge` compute them the same way.
    pub fn from_counts(
        tasks_checked: u64,
        tasks_verified: u64,
        calls_checked: u64,
        calls_passed: u64,
        failures: BTreeMap<CheckFailure, u64>,
        by_group: BTreeMap<String, GroupCounts>,
    ) -> Self {
        let rate = if tasks_checked > 0 {
            (tasks_verified as f64 / tasks_checked as f64 * 1e4).round() / 1e4
        } else {
            0.0
        };
        Self {
            tasks_checked,
            tasks_verified,
            success_rate: rate,
            success_rate_ci95: crate::stats::wilson_ci95(tasks_verified, tasks_checked)
                .unwrap_or([0.0, 1.0]),
            calls_checked,
            calls_passed,
            failures,
            by_group,
        }
    }

    /// The sum of load points that ran disjoint tasks (shards, replicas).
    pub fn merged(parts: &[&VerificationStats]) -> Self {
        let sum = |f: &dyn Fn(&VerificationStats) -> u64| parts.iter().map(|v| f(v)).sum::<u64>();
        let mut failures = BTreeMap::new();
        let mut by_group: BTreeMap<String, GroupCounts> = BTreeMap::new();
        for v in parts {
            for (k, n) in &v.failures {
                *failures.entry(*k).or_insert(0) += n;
            }
            for (g, c) in &v.by_group {
                let e = by_group.entry(g.clone()).or_default();
                e.checked += c.checked;
                e.passed += c.passed;
            }
        }
        Self::from_counts(
            sum(&|v| v.tasks_checked),
            sum(&|v| v.tasks_verified),
            sum(&|v| v.calls_checked),
            sum(&|v| v.calls_passed),
            failures,
            by_group,
        )
    }

    /// `total` (dollars, joules) per verified task; `None` when none was verified.
    pub fn per_verified_task(&self, total: f64) -> Option<f64> {
        (self.tasks_verified > 0).then(|| total / self.tasks_verified as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_sums_the_counts_and_recomputes_the_interval() {
        let a = VerificationStats::from_counts(
            10,
            8,
            12,
            9,
            BTreeMap::from([(CheckFailure::WrongAnswer, 3)]),
            BTreeMap::from([(
                "depth=0.50".to_string(),
                GroupCounts {
                    checked: 12,
                    passed: 9,
                },
            )]),
        );
        let b = VerificationStats::from_counts(
            10,
            2,
            10,
            2,
            BTreeMap::from([(CheckFailure::Malformed, 8)]),
            BTreeMap::from([(
                "depth=0.50".to_string(),
                GroupCounts {
                    checked: 10,
                    passed: 2,
                },
            )]),
        );
        let m = VerificationStats::merged(&[&a, &b]);
        assert_eq!((m.tasks_checked, m.tasks_verified), (20, 10));
        assert_eq!(m.success_rate, 0.5);
        assert_eq!(Some(m.success_rate_ci95), crate::stats::wilson_ci95(10, 20));
        assert_eq!(m.failures[&CheckFailure::WrongAnswer], 3);
        assert_eq!(m.failures[&CheckFailure::Malformed], 8);
        assert_eq!(
            m.by_group["depth=0.50"],
            GroupCounts {
                checked: 22,
                passed: 11
            }
        );
        assert_eq!(m.per_verified_task(5.0), Some(0.5));
        let none = VerificationStats::from_counts(3, 0, 3, 0, BTreeMap::new(), BTreeMap::new());
        assert_eq!(none.per_verified_task(5.0), None);
    }
}
