//! When to retry and how long to wait: HTTP 429, 502, 503 and 504 are retried up to the
//! target's budget; the server's `Retry-After` (seconds or an HTTP date) is honoured,
//! else exponential backoff from 0.5 s with full jitter (a uniform draw between half
//! and all of the step) so that many clients do not retry in lockstep.
//!
//! A wait longer than the target's `retry_max_wait_s`, or one that would end past the
//! request's deadline, is not waited: the request fails at once with the server's
//! answer, its class and why it was not retried. Any `Retry-After` a server sends,
//! however large, is read without overflow.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Whether an HTTP status is worth retrying.
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header value asks for; `None` when it is absent or
/// unreadable.
pub fn retry_after(value: Option<&str>, now: SystemTime) -> Option<Duration> {
    let v = value?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // Past what a Duration holds (1e20 s, inf): longer than any budget.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether to wait before a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wait, then retry.
    Wait,
    /// The wait is longer than the target's retry budget.
    OverBudget,
    /// The wait would end past the request's deadline.
    PastDeadline,
}

/// Judges a `wait` against the target's longest wait and the time `left` before the
/// request's deadline (`None`: no deadline).
pub fn judge(wait: Duration, max_wait: Duration, left: Option<Duration>) -> Verdict {
    if wait > max_wait {
        Verdict::OverBudget
    } else if left.is_some_and(|l| wait >= l) {
        Verdict::PastDeadline
    } else {
        Verdict::Wait
    }
}

/// Why a retry was not made, for the failure's message (empty for [`Verdict::Wait`]).
pub fn explain(
    verdict: Verdict,
    retry_after: Option<&str>,
    wait: Duration,
    left: Option<Duration>,
) -> String {
    let asked = match retry_after {
        Some(h) => format!(
            "Retry-After {}",
            h.trim().chars().take(40).collect::<String>()
        ),
        None => format!("a backoff of {:.3} s", wait.as_secs_f64()),
    };
    match verdict {
        Verdict::Wait => String::new(),
        Verdict::OverBudget => {
            format!(", not retried: {asked} is longer than retry_max_wait_s")
        }
        Verdict::PastDeadline => format!(
            ", not retried: {asked} would end past the request's deadline ({:.3} s left)",
            left.unwrap_or_default().as_secs_f64()
        ),
    }
}

/// Backoff before retry number `attempt` (0-based): 0.5 s x 2^attempt, jittered to
/// between half and all of it, capped at `max`.
pub fn backoff(attempt: u32, max: Duration, rng: &mut impl Rng) -> Duration {
    let step = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(16));
    let step = step.min(max);
    step.mul_f64(rng.random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(Some("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some(" 0.25 "), now),
            Some(Duration::from_millis(250))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(retry_after(Some(&later), now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(Some(&past), now), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(Some("-1"), now), None);
        assert_eq!(retry_after(Some("NaN"), now), None);
        assert_eq!(retry_after(None, now), None);
        // Larger than a Duration holds: read as the longest wait, never a panic.
        assert_eq!(retry_after(Some("1e20"), now), Some(Duration::MAX));
        assert_eq!(retry_after(Some("inf"), now), Some(Duration::MAX));
    }

    #[test]
    fn waits_past_the_budget_or_the_deadline_are_not_waited() {
        let s = Duration::from_secs;
        assert_eq!(judge(s(2), s(60), Some(s(10))), Verdict::Wait);
        assert_eq!(judge(s(2), s(60), None), Verdict::Wait);
        assert_eq!(judge(Duration::MAX, s(60), None), Verdict::OverBudget);
        assert_eq!(judge(s(20), s(60), Some(s(10))), Verdict::PastDeadline);
        let why = explain(Verdict::OverBudget, Some("1e20"), Duration::MAX, None);
        assert!(
            why.contains("Retry-After 1e20") && why.contains("retry_max_wait_s"),
            "{why}"
        );
        let why = explain(Verdict::PastDeadline, None, s(20), Some(s(10)));
        assert!(why.contains("deadline (10.000 s left)"), "{why}");
    }

    #[test]
    fn backoff_doubles_jitters_and_caps() {
        let mut rng = rand::rng();
        for attempt in 0..6 {
            let full = Duration::from_millis(500 << attempt).min(Duration::from_secs(4));
            for _ in 0..50 {
                let b = backoff(attempt, Duration::from_secs(4), &mut rng);
                assert!(b >= full / 2 && b <= full, "{attempt}: {b:?}");
            }
        }
        assert!(retryable(429) && retryable(503) && !retryable(500) && !retryable(400));
    }
}
