//! Arrival processes: when each session of an open-loop load point is sent.
//!
//! Open-loop schedules are fixed before the run from the seed, so a slow target can
//! never delay or drop a send; closed-loop and all-at-once loads have no schedule.

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma};
use results::ArrivalPattern;

/// A validated arrival process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Exponential inter-arrival times with mean `1 / rate_rps`.
    Poisson {
        /// Sessions per second.
        rate_rps: f64,
    },
    /// Inter-arrival time exactly `1 / rate_rps`.
    Constant {
        /// Sessions per second.
        rate_rps: f64,
    },
    /// Gamma inter-arrival times with mean `1 / rate_rps` and coefficient of variation
    /// `burstiness` (shape `1 / burstiness^2`): 1 is Poisson, above 1 is burstier.
    Gamma {
        /// Sessions per second.
        rate_rps: f64,
        /// Coefficient of variation of inter-arrival times.
        burstiness: f64,
    },
    /// `concurrency` sessions in flight; the next starts when one ends.
    Closed {
        /// Sessions in flight.
        concurrency: u32,
    },
    /// Every session at time 0.
    All,
    /// At the times of a replayed trace (the schedule comes from the trace).
    Trace,
}

/// The gamma distribution of inter-arrival times at `rate_rps` with coefficient of
/// variation `burstiness`, or why those parameters give none (validation calls this
/// too, so a validated spec always has one).
pub fn gamma_gaps(rate_rps: f64, burstiness: f64) -> Result<Gamma<f64>, String> {
    let shape = 1.0 / (burstiness * burstiness);
    Gamma::new(shape, 1.0 / (rate_rps * shape))
        .map_err(|e| format!("gamma arrivals at {rate_rps}/s with burstiness {burstiness}: {e}"))
}

/// The exponential distribution of inter-arrival times at `rate_rps`.
pub fn exp_gaps(rate_rps: f64) -> Result<Exp<f64>, String> {
    Exp::new(rate_rps).map_err(|e| format!("poisson arrivals at {rate_rps}/s: {e}"))
}

impl Arrival {
    /// The pattern name used in reports.
    pub fn pattern(&self) -> ArrivalPattern {
        match self {
            Arrival::Poisson { .. } => ArrivalPattern::Poisson,
            Arrival::Constant { .. } => ArrivalPattern::Constant,
            Arrival::Gamma { .. } => ArrivalPattern::Gamma,
            Arrival::Closed { .. } => ArrivalPattern::Closed,
            Arrival::All => ArrivalPattern::All,
            Arrival::Trace => ArrivalPattern::Trace,
        }
    }

    /// Send offsets in seconds from the start of measurement for `n` sessions (the
    /// first at 0), or `None` for closed-loop loads, which have no schedule. The
    /// parameters are validated (the spec's validation builds the
    /// same distributions), so a distribution that cannot be built sends at the mean.
    pub fn schedule(&self, n: usize, rng: &mut impl Rng) -> Option<Vec<f64>> {
        enum Gap {
            Fixed(f64),
            Exp(Exp<f64>),
            Gamma(Gamma<f64>),
        }
        let gap = match *self {
            Arrival::Closed { .. } => return None,
            // A trace's schedule is its own (see `trace`); this is never asked for it.
            Arrival::Trace => Gap::Fixed(0.0),
            Arrival::All => Gap::Fixed(0.0),
            Arrival::Constant { rate_rps } => Gap::Fixed(1.0 / rate_rps),
            Arrival::Poisson { rate_rps } => match exp_gaps(rate_rps) {
                Ok(d) => Gap::Exp(d),
                Err(_) => Gap::Fixed(1.0 / rate_rps),
            },
            Arrival::Gamma {
                rate_rps,
                burstiness,
            } => match gamma_gaps(rate_rps, burstiness) {
                Ok(d) => Gap::Gamma(d),
                Err(_) => Gap::Fixed(1.0 / rate_rps),
            },
        };
        let mut t = 0.0;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if i > 0 {
                t += match &gap {
                    Gap::Fixed(g) => *g,
                    Gap::Exp(d) => d.sample(rng),
                    Gap::Gamma(d) => d.sample(rng),
                };
            }
            out.push(t);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gaps(a: Arrival, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t = a.schedule(n + 1, &mut rng).unwrap();
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn mean_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn poisson_inter_arrivals_have_mean_one_over_rate_and_cv_one() {
        for seed in [1, 2, 3] {
            let (mean, cv) = mean_cv(&gaps(Arrival::Poisson { rate_rps: 4.0 }, 50_000, seed));
            // Standard error of the mean is 0.25/sqrt(50000) ~ 0.0011: 4 sigma tolerance.
            assert!((mean - 0.25).abs() < 0.0045, "mean {mean}");
            assert!((cv - 1.0).abs() < 0.02, "cv {cv}");
        }
    }

    #[test]
    fn gamma_inter_arrivals_have_the_requested_burstiness() {
        for b in [0.5, 2.0] {
            let (mean, cv) = mean_cv(&gaps(
                Arrival::Gamma {
                    rate_rps: 2.0,
                    burstiness: b,
                },
                80_000,
                9,
            ));
            assert!((mean - 0.5).abs() < 0.5 * 0.03, "b={b} mean {mean}");
            assert!((cv - b).abs() < b * 0.05, "b={b} cv {cv}");
        }
    }

    #[test]
    fn constant_and_all_are_exact() {
        let g = gaps(Arrival::Constant { rate_rps: 5.0 }, 10, 0);
        assert!(g.iter().all(|&x| (x - 0.2).abs() < 1e-12));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(Arrival::All.schedule(3, &mut rng), Some(vec![0.0; 3]));
        assert_eq!(
            Arrival::Closed { concurrency: 2 }.schedule(3, &mut rng),
            None
        );
    }

    #[test]
    fn schedules_are_seeded() {
        let a = Arrival::Poisson { rate_rps: 1.0 };
        assert_eq!(gaps(a, 100, 5), gaps(a, 100, 5));
        assert_ne!(gaps(a, 100, 5), gaps(a, 100, 6));
    }
}
