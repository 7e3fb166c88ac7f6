//! `run.json`: what a run is, written when it starts (once its targets are prepared)
//! and again as each load point starts, so that `recover` needs neither the command
//! line nor a model load: the resolved configuration, the SLO, every target as it
//! described itself, and every load point started so far, in order (a sweep's points
//! too, which it chooses as it goes).

use std::path::Path;

use anyhow::Result;
use results::TargetInfo;
use serde::{Deserialize, Serialize};

use super::builder::PointPlan;
use crate::config::RunConfig;
use crate::error::bad_input;
use crate::files::write_json;
use crate::slo::SloText;

/// The `schema` of `run.json`.
pub const RUN_SCHEMA: &str = "infermeter.run";
/// Its version.
pub const RUN_SCHEMA_VERSION: &str = "1.0";

/// What started the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `infermeter run`.
    Run,
    /// `infermeter sweep`.
    Sweep,
}

/// `run.json`. A later 1.x may add fields: they are ignored here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Always `infermeter.run`.
    pub schema: String,
    /// `major.minor`.
    pub schema_version: String,
    /// The run's id (as in its report).
    pub run_id: String,
    /// What started it.
    pub kind: RunKind,
    /// Its configuration, validated.
    pub config: RunConfig,
    /// The SLO its points are judged by.
    pub slo: Option<SloText>,
    /// Every target as it described itself once prepared, in run order.
    pub targets: Vec<TargetInfo>,
    /// Every load point started so far, in order.
    pub points: Vec<PointPlan>,
    /// Each target's quality section (`--quality`), in run order, measured before
    /// the first point: `recover` puts it back in the results it rebuilds.
    #[serde(default)]
    pub quality: Vec<Option<results::QualitySection>>,
}

impl RunManifest {
    /// A manifest of a run with no point started yet.
    pub fn new(
        run_id: String,
        kind: RunKind,
        config: RunConfig,
        slo: Option<SloText>,
        targets: Vec<TargetInfo>,
    ) -> Self {
        Self {
            schema: RUN_SCHEMA.into(),
            schema_version: RUN_SCHEMA_VERSION.into(),
            run_id,
            kind,
            config,
            slo,
            targets,
            points: Vec::new(),
            quality: Vec::new(),
        }
    }

    /// Writes it atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Reads `path`; every problem is bad input naming the file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        let m: RunManifest = serde_json::from_str(&text)
            .map_err(|e| bad_input(format!("{}: not a run manifest: {e}", path.display())))?;
        if m.schema != RUN_SCHEMA || !m.schema_version.starts_with("1.") {
            return Err(bad_input(format!(
                "{}: schema {} {}, this build reads {RUN_SCHEMA} 1.x",
                path.display(),
                m.schema,
                m.schema_version
            )));
        }
        Ok(m)
    }
}
