//! Upper (and lower) bounds of every duration, rate and count a workload or a command
//! line can give, and the one validator of each kind. Within these bounds every
//! figure converts to a `Duration`, a schedule or an allocation without overflow;
//! outside them the input is refused with its name, its value and the bound.
//!
//! The bounds are generous for any real run and are stated in the README ("Limits").

use std::time::Duration;

/// Upper bound on any token length in a spec or a trace (1M tokens).
pub const MAX_TOKENS: f64 = 1_048_576.0;

/// Fewest sessions per second of an open loop (one per 11.6 days).
pub const MIN_RATE_RPS: f64 = 1e-6;
/// Most sessions per second of an open loop.
pub const MAX_RATE_RPS: f64 = 1e6;
/// Longest duration bound, drain or request deadline, and idle period: 7 days.
pub const MAX_DURATION_S: f64 = 7.0 * 86_400.0;
/// Longest think time between two calls of a session: 1 day, in ms.
pub const MAX_THINK_MS: f64 = 86_400_000.0;
/// Most measured requests of one load point (its stream is generated before it runs;
/// more is `--repeat` or `--shard`).
pub const MAX_REQUESTS: u64 = 1_000_000;
/// Most sessions in flight in a closed loop.
pub const MAX_CONCURRENCY: u64 = 100_000;
/// Most warm-up requests.
pub const MAX_WARMUP: u64 = 100_000;
/// Most calls of one session.
pub const MAX_CALLS: u64 = 10_000;
/// Most cold-start probes.
pub const MAX_PROBES: u64 = 1_000;
/// Largest coefficient of variation of gamma inter-arrival times.
pub const MAX_BURSTINESS: f64 = 100.0;
/// Largest `--scale` multiplier.
pub const MAX_SCALE: f64 = 10_000.0;
/// Most connections of one remote target (`max_connections`, `--max-connections`).
pub const MAX_CONNECTIONS: u64 = 100_000;

/// A value outside its bounds: what it is (a flag or a field), and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {message}")]
pub struct OutOfBounds {
    /// The flag or field (`--duration`, `load.duration_s`).
    pub what: String,
    /// What is wrong, with the bounds and the value (`must be ..., got 1e20`).
    pub message: String,
}

fn out(what: &str, message: String) -> OutOfBounds {
    OutOfBounds {
        what: what.to_string(),
        message,
    }
}

/// A number in `[min, max]` (with `min` 0: above 0), or why not; `unit` follows the
/// bound (`" seconds"`).
pub fn number(what: &str, v: f64, min: f64, max: f64, unit: &str) -> Result<f64, OutOfBounds> {
    if !v.is_finite() || v < min || (min == 0.0 && v <= 0.0) || v > max {
        let low = if min == 0.0 {
            "above 0".to_string()
        } else {
            format!("at least {min}")
        };
        return Err(out(
            what,
            format!("must be a number {low} and at most {max}{unit}, got {v}"),
        ));
    }
    Ok(v)
}

/// A positive number of seconds up to `max_s`, as a `Duration`.
pub fn seconds(what: &str, v: f64, max_s: f64) -> Result<Duration, OutOfBounds> {
    let s = number(what, v, 0.0, max_s, " seconds")?;
    Duration::try_from_secs_f64(s).map_err(|e| out(what, e.to_string()))
}

/// A count in `[min, max]`, or why not.
pub fn count(what: &str, v: u64, min: u64, max: u64) -> Result<u64, OutOfBounds> {
    if v < min || v > max {
        return Err(out(
            what,
            format!("must be at least {min} and at most {max}, got {v}"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_what_would_overflow_and_name_the_input() {
        assert_eq!(
            seconds("--duration", 2.5, MAX_DURATION_S),
            Ok(Duration::from_millis(2500))
        );
        for bad in [1e20, f64::INFINITY, f64::NAN, 0.0, -1.0] {
            let e = seconds("--duration", bad, MAX_DURATION_S).unwrap_err();
            assert!(e.to_string().starts_with("--duration must be"), "{e}");
            assert!(e.message.starts_with("must be"), "{e:?}");
        }
        assert!(seconds("x", MAX_DURATION_S, MAX_DURATION_S).is_ok());
        assert!(number("rate", 1e-7, MIN_RATE_RPS, MAX_RATE_RPS, "").is_err());
        assert!(number("rate", 1e-6, MIN_RATE_RPS, MAX_RATE_RPS, "").is_ok());
        assert!(count("requests", 0, 1, MAX_REQUESTS).is_err());
        assert!(count("requests", MAX_REQUESTS + 1, 1, MAX_REQUESTS).is_err());
        assert_eq!(count("requests", 3, 1, MAX_REQUESTS), Ok(3));
    }
}
