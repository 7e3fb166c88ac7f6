//! Run plans: which workloads run against which targets, with the command line's
//! overrides applied and checked before anything is sent.

use anyhow::Result;
use results::ArrivalPattern;
use serde::{Deserialize, Serialize};
use workloads::bounds;
use workloads::spec::WorkloadSpec;
use workloads::suite;

use crate::error::{bad_input, oob};

/// Load overrides from the command line (each `None` keeps the workload's value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Seed of every request stream.
    pub seed: Option<u64>,
    /// Measured requests per workload.
    pub requests: Option<u64>,
    /// Duration bound in seconds.
    pub duration_s: Option<f64>,
    /// Session arrival rate (open loop).
    pub rate_rps: Option<f64>,
    /// Sessions in flight (closed loop).
    pub concurrency: Option<u32>,
    /// Arrival process.
    pub arrival: Option<ArrivalPattern>,
    /// Burstiness of gamma arrivals.
    pub burstiness: Option<f64>,
    /// Warm-up requests.
    pub warmup: Option<u32>,
    /// Multiplier of every workload's request count.
    pub scale: Option<f64>,
}

impl Overrides {
    /// Checks every override against its bound, naming the flag that gave it.
    pub fn validate(&self) -> Result<()> {
        let f = |r: Result<f64, bounds::OutOfBounds>| r.map(|_| ()).map_err(oob);
        let c = |r: Result<u64, bounds::OutOfBounds>| r.map(|_| ()).map_err(oob);
        if let Some(r) = self.rate_rps {
            f(bounds::number(
                "--rate",
                r,
                bounds::MIN_RATE_RPS,
                bounds::MAX_RATE_RPS,
                " sessions per second",
            ))?;
        }
        if let Some(d) = self.duration_s {
            bounds::seconds("--duration", d, bounds::MAX_DURATION_S).map_err(oob)?;
        }
        if let Some(b) = self.burstiness {
            f(bounds::number(
                "--burstiness",
                b,
                0.0,
                bounds::MAX_BURSTINESS,
                "",
            ))?;
        }
        if let Some(x) = self.scale {
            f(bounds::number("--scale", x, 0.0, bounds::MAX_SCALE, ""))?;
        }
        if let Some(n) = self.requests {
            c(bounds::count("--requests", n, 1, bounds::MAX_REQUESTS))?;
        }
        if let Some(n) = self.concurrency {
            c(bounds::count(
                "--concurrency",
                u64::from(n),
                1,
                bounds::MAX_CONCURRENCY,
            ))?;
        }
        if let Some(n) = self.warmup {
            c(bounds::count(
                "--warmup",
                u64::from(n),
                0,
                bounds::MAX_WARMUP,
            ))?;
        }
        Ok(())
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Suite name, or the workload names joined, for the run id.
    pub label: String,
    /// Resolved workloads, overrides applied, with the seed each stream uses.
    pub workloads: Vec<(WorkloadSpec, u64)>,
}

/// Resolves `--suite` / `--workload` and applies the overrides.
pub fn resolve(suite_name: Option<&str>, workload_names: &[String], o: &Overrides) -> Result<Plan> {
    let (label, specs) = match (suite_name, workload_names.is_empty()) {
        (Some(_), false) => return Err(bad_input("give --suite or --workload, not both")),
        (Some(s), true) => {
            let s = suite::suite(s)?;
            (s.name, s.workloads)
        }
        (None, false) => {
            let specs = workload_names
                .iter()
                .map(|w| suite::workload(w))
                .collect::<Result<Vec<_>, _>>()?;
            let label = specs
                .iter()
                .map(|s| s.name.replace('/', "-"))
                .collect::<Vec<_>>()
                .join("+");
            (label, specs)
        }
        (None, true) => {
            let s = suite::suite("quick")?;
            (s.name, s.workloads)
        }
    };
    let workloads = specs
        .into_iter()
        .map(|s| apply(s, o))
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan { label, workloads })
}

fn apply(mut spec: WorkloadSpec, o: &Overrides) -> Result<(WorkloadSpec, u64)> {
    o.validate()?;
    if let Some(x) = o.scale {
        // Bounded, so the product is finite; the result is checked as the spec's own.
        spec.load.requests = ((spec.load.requests as f64) * x).ceil().max(1.0) as u64;
    }
    if let Some(n) = o.requests {
        spec.load.requests = n;
    }
    if let Some(d) = o.duration_s {
        spec.load.duration_s = Some(d);
    }
    if let Some(w) = o.warmup {
        spec.load.warmup_requests = w;
    }
    let l = &mut spec.load;
    match (o.arrival, o.rate_rps, o.concurrency) {
        (_, Some(_), Some(_)) => return Err(bad_input("give --rate or --concurrency, not both")),
        (Some(ArrivalPattern::Closed), Some(_), _) => {
            return Err(bad_input("--rate needs an open-loop --arrival"));
        }
        (Some(a), _, Some(_)) if a != ArrivalPattern::Closed => {
            return Err(bad_input("--concurrency needs --arrival closed"));
        }
        (None, None, Some(_)) => l.arrival = ArrivalPattern::Closed,
        (None, Some(_), None)
            if matches!(l.arrival, ArrivalPattern::Closed | ArrivalPattern::All) =>
        {
            l.arrival = ArrivalPattern::Poisson;
        }
        (Some(a), _, _) => l.arrival = a,
        _ => {}
    }
    if let Some(r) = o.rate_rps {
        l.rate_rps = Some(r);
    }
    if let Some(c) = o.concurrency {
        l.concurrency = Some(c);
    }
    if let Some(b) = o.burstiness {
        l.burstiness = Some(b);
    }
    if l.arrival == ArrivalPattern::Closed && l.concurrency.is_none() {
        l.concurrency = Some(1);
    }
    if l.arrival == ArrivalPattern::Gamma && l.burstiness.is_none() {
        l.burstiness = Some(1.0);
    }
    // Only the fields of the chosen arrival process stay, so reports never show a
    // rate that was not applied.
    match l.arrival {
        ArrivalPattern::Closed => {
            l.rate_rps = None;
            l.burstiness = None;
        }
        ArrivalPattern::All => {
            l.rate_rps = None;
            l.concurrency = None;
            l.burstiness = None;
        }
        ArrivalPattern::Poisson | ArrivalPattern::Constant => {
            l.concurrency = None;
            l.burstiness = None;
        }
        ArrivalPattern::Gamma => l.concurrency = None,
        // A replay keeps `rate_rps` only when it rescales the trace's times.
        ArrivalPattern::Trace => {
            l.concurrency = None;
            l.burstiness = None;
        }
    }
    spec.validate("command line")
        .map_err(|e| bad_input(e.to_string()))?;
    let seed = o.seed.unwrap_or(spec.seed);
    Ok((spec, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_is_the_quick_suite() {
        let p = resolve(None, &[], &Overrides::default()).unwrap();
        assert_eq!(p.label, "quick");
        assert_eq!(p.workloads.len(), 5);
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let o = Overrides {
            concurrency: Some(4),
            requests: Some(10),
            seed: Some(9),
            ..Default::default()
        };
        let p = resolve(None, &["chat-short".into()], &o).unwrap();
        let (spec, seed) = &p.workloads[0];
        assert_eq!(spec.load.arrival, ArrivalPattern::Closed);
        assert_eq!(spec.load.concurrency, Some(4));
        assert_eq!(spec.load.rate_rps, None);
        assert_eq!(spec.load.requests, 10);
        assert_eq!(*seed, 9);

        for bad in [
            Overrides {
                rate_rps: Some(-1.0),
                ..Default::default()
            },
            Overrides {
                requests: Some(0),
                ..Default::default()
            },
            Overrides {
                scale: Some(0.0),
                ..Default::default()
            },
            Overrides {
                rate_rps: Some(1.0),
                concurrency: Some(2),
                ..Default::default()
            },
            Overrides {
                duration_s: Some(f64::NAN),
                ..Default::default()
            },
        ] {
            let err = resolve(None, &["chat-short".into()], &bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn scale_multiplies_requests() {
        let o = Overrides {
            scale: Some(0.5),
            ..Default::default()
        };
        let p = resolve(None, &["rag-long".into()], &o).unwrap();
        assert_eq!(p.workloads[0].0.load.requests, 25);
    }
}
