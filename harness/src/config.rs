//! The run configuration: what `run` and `sweep` were asked to do, validated once into
//! typed values ([`RunConfig`]) and passed by reference to the run pipeline, sweeps and
//! `recover` (through `run.json`). Every duration, rate and count has a stated bound
//! (`workloads::bounds`); nothing downstream parses a flag again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use results::ShardRef;
use results::catalog::Catalog;
use results::cost::Pricing;
use serde::{Deserialize, Serialize};

use crate::error::{bad_input, oob};
use crate::plan::Overrides;
use crate::targets::{BuildOptions, TargetSpec};

/// Most repeats of a load point.
pub const MAX_REPEAT: u32 = 1000;

/// Which catalog, tier and region price a run or a report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingChoice {
    /// The catalog file; `None`: the shipped one.
    pub catalog: Option<PathBuf>,
    /// The tier; `None`: the catalog's default.
    pub tier: Option<String>,
    /// The region; `None`: the catalog's default.
    pub region: Option<String>,
}

impl PricingChoice {
    /// Reads the catalog (the shipped one when none is named).
    pub fn catalog(&self) -> Result<Catalog> {
        match &self.catalog {
            None => Ok(Catalog::default_catalog()),
            Some(p) => read_catalog(p),
        }
    }

    /// The pricing asked for, checked against `catalog`.
    pub fn pricing<'a>(
        &'a self,
        catalog: &'a Catalog,
        catalog_rate_cards_first: bool,
    ) -> Result<Pricing<'a>> {
        let p = Pricing {
            catalog,
            tier: self.tier.as_deref().unwrap_or(&catalog.default_tier),
            region: self.region.as_deref().unwrap_or(&catalog.default_region),
            catalog_rate_cards_first,
        };
        p.check().map_err(|e| bad_input(e.0))?;
        Ok(p)
    }
}

/// Reads a catalog file; every problem is bad input naming the file.
pub fn read_catalog(p: &Path) -> Result<Catalog> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| bad_input(format!("--catalog {}: {e}", p.display())))?;
    Catalog::parse(&text, &p.display().to_string()).map_err(|e| bad_input(e.0))
}

/// A run's validated configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The suite (`None` with workloads: the workloads; with neither: `quick`).
    pub suite: Option<String>,
    /// Workload names or files.
    pub workloads: Vec<String>,
    /// The targets, resolved (targets-file names and their overrides applied).
    pub targets: Vec<TargetSpec>,
    /// The load overrides.
    pub overrides: Overrides,
    /// How long in-flight requests may run after sending stops.
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// How long one request may take before it counts as a timeout.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// What building a target takes (`--max-connections`).
    pub build: BuildOptions,
    /// The output directory (`None`: `results/runs/<run id>`).
    pub out: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
    /// How the run is priced.
    pub pricing: PricingChoice,
    /// Which shard of every stream this run sends.
    pub shard: Option<ShardRef>,
    /// Runs of every load point.
    pub repeat: u32,
    /// `--quality`: the reference precision each local target's fidelity is measured
    /// against (`None`: not measured).
    #[serde(default)]
    pub quality: Option<String>,
}

/// `Duration` as seconds in `run.json`.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// A `--flag` of seconds, bounded.
pub fn flag_seconds(flag: &str, v: f64) -> Result<Duration> {
    workloads::bounds::seconds(flag, v, workloads::bounds::MAX_DURATION_S).map_err(oob)
}

/// `--max-connections`, bounded.
pub fn flag_connections(v: Option<usize>) -> Result<Option<usize>> {
    v.map(|n| {
        workloads::bounds::count(
            "--max-connections",
            n as u64,
            1,
            workloads::bounds::MAX_CONNECTIONS,
        )
        .map(|n| n as usize)
        .map_err(oob)
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_past_their_bounds_are_bad_input_naming_the_flag() {
        for (flag, v) in [("--drain-timeout", 1e20), ("--request-timeout", 1e30)] {
            let e = flag_seconds(flag, v).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2);
            assert!(e.to_string().starts_with(flag), "{e}");
        }
        assert_eq!(
            flag_seconds("--drain-timeout", 30.0).unwrap(),
            Duration::from_secs(30)
        );
        assert!(flag_connections(Some(0)).is_err());
        assert!(flag_connections(Some(200_000)).is_err());
        assert_eq!(flag_connections(Some(4)).unwrap(), Some(4));
    }
}
