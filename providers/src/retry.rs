//! When to retry and how long to wait: HTTP 429, 502, 503 and 504 are retried up to the
//! target's budget; the server's `Retry-After` (seconds or an HTTP date) is honoured,
//! else exponential backoff from 0.5 s with full jitter (a uniform draw between half
//! and all of the step) so that many clients do not retry in lockstep.

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
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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
        assert_eq!(retry_after(None, now), None);
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
