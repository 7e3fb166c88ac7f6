//! Time as the harness records it: durations in milliseconds at the clock's
//! nanosecond resolution, rounded to the microsecond where a person reads them, and
//! the anchor that ties a load point's monotonic start to wall-clock time.

use std::time::{Duration, Instant};

/// Milliseconds of a duration, at the clock's nanosecond resolution.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounds milliseconds to the microsecond, for records meant to be read.
pub fn us(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The start of a load point's measurement on both clocks: every measured time is
/// kept as seconds after it, and becomes wall-clock time only in a report.
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    /// The monotonic instant.
    pub at: Instant,
    /// The same moment in UTC.
    pub wall: chrono::DateTime<chrono::Utc>,
}

impl Anchor {
    /// Now.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            wall: chrono::Utc::now(),
        }
    }

    /// `s` seconds after the anchor as RFC 3339 UTC with microseconds.
    pub fn wall_at(&self, s: f64) -> String {
        let micros = (s * 1e6).round();
        let t = if micros.is_finite() && micros.abs() < 9e15 {
            self.wall + chrono::Duration::microseconds(micros as i64)
        } else {
            self.wall
        };
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    /// `s` seconds after the anchor on the monotonic clock (for probes sampled on it).
    pub fn instant_at(&self, s: f64) -> Instant {
        self.at + Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_after_the_anchor_map_to_both_clocks() {
        let a = Anchor::now();
        let w = a.wall_at(1.5);
        let back = chrono::DateTime::parse_from_rfc3339(&w).unwrap();
        // Written to the microsecond (truncated).
        let d = (back.with_timezone(&chrono::Utc) - a.wall)
            .num_nanoseconds()
            .unwrap();
        assert!((1_499_999_000..=1_500_000_000).contains(&d), "{d}");
        assert_eq!(a.instant_at(0.25) - a.at, Duration::from_millis(250));
        assert_eq!(a.instant_at(-1.0), a.at);
        assert_eq!(us(1.234_567_8), 1.235);
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
