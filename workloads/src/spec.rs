//! Workload specs: the versioned TOML format (`format = 1`) that says what a workload
//! sends and at what load. A spec is fully resolved (suite overrides merged, defaults
//! filled) before it is used; its canonical JSON is hashed into the report.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::WorkloadError;
use crate::bounds;
use results::ArrivalPattern;

/// The only spec file format this build reads.
pub const SPEC_FORMAT: u32 = 1;

/// A workload: what is sent, and at what load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// File format version; must be 1.
    pub format: u32,
    /// Name (lowercase letters, digits, `-` and `/`).
    pub name: String,
    /// Version of the workload; bump when what it sends changes.
    pub version: u32,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Default seed of the request stream (`--seed` overrides).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Load applied.
    pub load: LoadSpec,
    /// Calls per session (task) and the time between them.
    #[serde(default)]
    pub session: SessionSpec,
    /// A prefix shared by every call of every session (system prompt, tool schemas).
    #[serde(default)]
    pub prefix: Option<PrefixSpec>,
    /// New input of a session's first call (required unless the workload replays a
    /// trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<LengthSpec>,
    /// New input of each later call (user turn, tool result); defaults to `input`.
    #[serde(default)]
    pub followup: Option<LengthSpec>,
    /// Output tokens of every call (generation runs to exactly this length; required
    /// unless the workload replays a trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<LengthSpec>,
    /// The trace replayed (with `load.arrival = "trace"`): requests, lengths, prefixes
    /// and send times from a recorded trace instead of the distributions above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceSpec>,
    /// Verifiable tasks: every request carries a checker, and each reply is graded
    /// (README, "Verified tasks"). The prompts come from the generator or the file
    /// named; `input` and `followup` give the lengths a generator pads to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<crate::tasks::TasksSpec>,
}

fn default_seed() -> u64 {
    1
}

/// Load: arrival process and bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Arrival process of sessions.
    pub arrival: ArrivalPattern,
    /// Sessions per second (poisson, constant, gamma).
    #[serde(default)]
    pub rate_rps: Option<f64>,
    /// Sessions in flight (closed).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Coefficient of variation of inter-arrival times (gamma; 1 = Poisson).
    #[serde(default)]
    pub burstiness: Option<f64>,
    /// Measured requests to send (whole sessions are sent, so up to one session's
    /// calls more may be sent). A trace replay sends at most this many from its
    /// window; 0 (or absent) replays the whole window.
    #[serde(default)]
    pub requests: u64,
    /// Stop sending after this many seconds of measurement.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Requests sent before measuring, excluded from every figure.
    #[serde(default)]
    pub warmup_requests: u32,
    /// Cold-start probes: after warm-up, each probe waits out an idle period with no
    /// traffic, then sends one request; probes are reported apart (`cold_start` in
    /// the result) and never enter the load point's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStartSpec>,
}

/// Cold-start probing: the first request after an idle period, as serverless
/// providers (scale to zero) and cold caches serve it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColdStartSpec {
    /// Seconds of silence before each probe.
    pub idle_s: f64,
    /// Probes to send (each after its own idle period).
    pub probes: u32,
}

/// Sessions: several calls in sequence, each seeing the previous ones' context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Calls per session, drawn uniformly from `[min, max]`.
    pub calls: IntRange,
    /// Think or tool time before each call after the first, in milliseconds.
    pub think_time_ms: LengthSpec,
    /// Report per-task figures (task latency, calls and tokens per task).
    #[serde(default)]
    pub report_tasks: bool,
}

impl Default for SessionSpec {
    fn default() -> Self {
        Self {
            calls: IntRange { min: 1, max: 1 },
            think_time_ms: LengthSpec::Fixed { value: 0.0 },
            report_tasks: false,
        }
    }
}

/// Inclusive integer range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntRange {
    /// Smallest value.
    pub min: u32,
    /// Largest value.
    pub max: u32,
}

/// A shared prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixSpec {
    /// Length in tokens.
    pub tokens: u32,
}

/// A length (tokens) or duration (ms) distribution; draws are rounded to integers for
/// token counts and clamped to `[min, max]` where given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthSpec {
    /// Always `value`.
    Fixed {
        /// The value.
        value: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Log-normal with the given mean and log-space standard deviation, clamped.
    Lognormal {
        /// Mean of the distribution (before clamping).
        mean: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
        /// Lower clamp.
        min: f64,
        /// Upper clamp.
        max: f64,
    },
}

impl LengthSpec {
    /// Smallest value a draw can take.
    pub fn lower(&self) -> f64 {
        match *self {
            LengthSpec::Fixed { value } => value,
            LengthSpec::Uniform { min, .. } | LengthSpec::Lognormal { min, .. } => min,
        }
    }

    /// Largest value a draw can take.
    pub fn upper(&self) -> f64 {
        match *self {
            LengthSpec::Fixed { value } => value,
            LengthSpec::Uniform { max, .. } | LengthSpec::Lognormal { max, .. } => max,
        }
    }

    fn check(&self, origin: &str, field: &str, at_least: f64) -> Result<(), WorkloadError> {
        let bad = |message: String| WorkloadError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        let all_finite = match *self {
            LengthSpec::Fixed { value } => value.is_finite(),
            LengthSpec::Uniform { min, max } => min.is_finite() && max.is_finite(),
            LengthSpec::Lognormal {
                mean,
                sigma,
                min,
                max,
            } => mean.is_finite() && sigma.is_finite() && min.is_finite() && max.is_finite(),
        };
        if !all_finite {
            return Err(bad("values must be finite numbers".into()));
        }
        if self.lower() < at_least {
            return Err(bad(format!(
                "values must be >= {at_least}, got {}",
                self.lower()
            )));
        }
        if self.upper() < self.lower() {
            return Err(bad(format!(
                "max {} is below min {}",
                self.upper(),
                self.lower()
            )));
        }
        if let LengthSpec::Lognormal { mean, sigma, .. } = *self
            && (mean <= 0.0 || sigma < 0.0)
        {
            return Err(bad("lognormal needs mean > 0 and sigma >= 0".into()));
        }
        Ok(())
    }
}

pub use crate::bounds::MAX_TOKENS;

impl WorkloadSpec {
    /// Parses a spec from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, WorkloadError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| parse_err(origin, &e))?;
        Self::from_value(value, origin)
    }

    /// Builds a spec from a TOML value (after suite overrides were merged) and
    /// validates it.
    pub fn from_value(value: toml::Value, origin: &str) -> Result<Self, WorkloadError> {
        let spec: WorkloadSpec = value
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(origin, &e))?;
        spec.validate(origin)?;
        Ok(spec)
    }

    /// Checks every field's range.
    pub fn validate(&self, origin: &str) -> Result<(), WorkloadError> {
        let bad = |field: &str, message: String| WorkloadError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        if self.format != SPEC_FORMAT {
            return Err(bad(
                "format",
                format!("this build reads format {SPEC_FORMAT}, got {}", self.format),
            ));
        }
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/');
        if !name_ok {
            return Err(bad(
                "name",
                format!(
                    "`{}` must be lowercase letters, digits, `-` or `/`",
                    self.name
                ),
            ));
        }
        let l = &self.load;
        // Out of its bounds: the field and what is wrong.
        let oob = |e: bounds::OutOfBounds| bad(&e.what, e.message);
        let replays = l.arrival == ArrivalPattern::Trace;
        bounds::count(
            "load.requests",
            l.requests,
            u64::from(!replays),
            bounds::MAX_REQUESTS,
        )
        .map_err(oob)?;
        bounds::count(
            "load.warmup_requests",
            u64::from(l.warmup_requests),
            0,
            bounds::MAX_WARMUP,
        )
        .map_err(oob)?;
        if let Some(d) = l.duration_s {
            bounds::number(
                "load.duration_s",
                d,
                0.0,
                bounds::MAX_DURATION_S,
                " seconds",
            )
            .map_err(oob)?;
        }
        match (&self.trace, replays) {
            (Some(t), true) => {
                t.validate(origin)?;
                self.validate_replay(origin)?;
                if let Some(r) = l.rate_rps {
                    bounds::number(
                        "load.rate_rps",
                        r,
                        bounds::MIN_RATE_RPS,
                        bounds::MAX_RATE_RPS,
                        " requests per second",
                    )
                    .map_err(oob)?;
                }
                return Ok(());
            }
            (None, true) => {
                return Err(bad(
                    "trace",
                    "arrival `trace` needs a [trace] table (format, path)".into(),
                ));
            }
            (Some(_), false) => {
                return Err(bad(
                    "load.arrival",
                    "a [trace] is replayed with arrival = \"trace\"".into(),
                ));
            }
            (None, false) => {}
        }
        match l.arrival {
            ArrivalPattern::Poisson | ArrivalPattern::Constant | ArrivalPattern::Gamma => {
                match l.rate_rps {
                    Some(r) => {
                        bounds::number(
                            "load.rate_rps",
                            r,
                            bounds::MIN_RATE_RPS,
                            bounds::MAX_RATE_RPS,
                            " sessions per second",
                        )
                        .map_err(oob)?;
                    }
                    None => {
                        return Err(bad(
                            "load.rate_rps",
                            "is required for open-loop arrivals".into(),
                        ));
                    }
                }
            }
            ArrivalPattern::Closed => match l.concurrency {
                Some(c) if c > 0 && u64::from(c) <= bounds::MAX_CONCURRENCY => {}
                Some(c) if c > 0 => {
                    return Err(bad(
                        "load.concurrency",
                        format!("must be at most {}, got {c}", bounds::MAX_CONCURRENCY),
                    ));
                }
                _ => {
                    return Err(bad(
                        "load.concurrency",
                        "closed loop needs concurrency >= 1".into(),
                    ));
                }
            },
            ArrivalPattern::All | ArrivalPattern::Trace => {}
        }
        if l.arrival == ArrivalPattern::Gamma {
            match l.burstiness {
                Some(b) if b.is_finite() && b > 0.0 => {
                    bounds::number("load.burstiness", b, 0.0, bounds::MAX_BURSTINESS, "")
                        .map_err(oob)?;
                    if let Some(r) = l.rate_rps {
                        crate::arrival::gamma_gaps(r, b).map_err(|m| bad("load.burstiness", m))?;
                    }
                }
                _ => {
                    return Err(bad(
                        "load.burstiness",
                        "gamma arrivals need burstiness > 0".into(),
                    ));
                }
            }
        }
        if let Some(c) = &l.cold_start {
            if !(c.idle_s.is_finite() && c.idle_s >= 0.0 && c.idle_s <= bounds::MAX_DURATION_S) {
                return Err(bad(
                    "load.cold_start.idle_s",
                    format!(
                        "must be a number of seconds from 0 to {}, got {}",
                        bounds::MAX_DURATION_S,
                        c.idle_s
                    ),
                ));
            }
            bounds::count(
                "load.cold_start.probes",
                u64::from(c.probes),
                1,
                bounds::MAX_PROBES,
            )
            .map_err(oob)?;
        }
        let s = &self.session;
        if s.calls.min == 0 || s.calls.max < s.calls.min {
            return Err(bad("session.calls", "needs 1 <= min <= max".into()));
        }
        if u64::from(s.calls.max) > bounds::MAX_CALLS {
            return Err(bad(
                "session.calls",
                format!("at most {} calls per session", bounds::MAX_CALLS),
            ));
        }
        s.think_time_ms
            .check(origin, "session.think_time_ms", 0.0)?;
        if s.think_time_ms.upper() > bounds::MAX_THINK_MS {
            return Err(bad(
                "session.think_time_ms",
                format!(
                    "at most {} ms (a day) between two calls, got {}",
                    bounds::MAX_THINK_MS,
                    s.think_time_ms.upper()
                ),
            ));
        }
        if let Some(t) = &self.tasks {
            t.validate(origin)?;
            if t.kind == crate::tasks::TaskKind::File && self.session.calls.max > 1 {
                return Err(bad(
                    "session.calls",
                    "file tasks are one call each (a task file holds no answers to carry to a next call)".into(),
                ));
            }
        }
        // Tasks make their own prompts: a generator pads to `input` where it has a
        // length (needle, sentiment), so it may be left out.
        let fixed_one = LengthSpec::Fixed { value: 1.0 };
        let input = match (&self.input, &self.tasks) {
            (None, Some(_)) => Some(&fixed_one),
            (i, _) => i.as_ref(),
        };
        let (Some(input), Some(output)) = (input, &self.output) else {
            let field = if self.input.is_none() {
                "input"
            } else {
                "output"
            };
            return Err(bad(
                field,
                "is required (unless the workload replays a trace)".into(),
            ));
        };
        input.check(origin, "input", 1.0)?;
        if let Some(f) = &self.followup {
            f.check(origin, "followup", 1.0)?;
        }
        output.check(origin, "output", 1.0)?;
        for (field, spec) in [
            ("input", Some(input)),
            ("followup", self.followup.as_ref()),
            ("output", Some(output)),
        ] {
            if let Some(spec) = spec
                && spec.upper() > MAX_TOKENS
            {
                return Err(bad(field, format!("at most {MAX_TOKENS} tokens")));
            }
        }
        if let Some(p) = &self.prefix
            && (p.tokens == 0 || f64::from(p.tokens) > MAX_TOKENS)
        {
            return Err(bad("prefix.tokens", format!("must be in 1..={MAX_TOKENS}")));
        }
        Ok(())
    }

    /// A replay takes every length, prefix and time from its trace: the keys that
    /// would say otherwise are refused rather than ignored.
    fn validate_replay(&self, origin: &str) -> Result<(), WorkloadError> {
        let set = [
            ("tasks", self.tasks.is_some()),
            ("input", self.input.is_some()),
            ("output", self.output.is_some()),
            ("followup", self.followup.is_some()),
            ("prefix", self.prefix.is_some()),
            ("session", self.session != SessionSpec::default()),
            ("load.concurrency", self.load.concurrency.is_some()),
            ("load.burstiness", self.load.burstiness.is_some()),
            ("load.cold_start", self.load.cold_start.is_some()),
        ];
        match set.iter().find(|(_, on)| *on) {
            Some((field, _)) => Err(WorkloadError::Invalid {
                origin: origin.to_string(),
                field: (*field).to_string(),
                message:
                    "a trace replay takes its lengths, prefixes and times from the trace: remove it"
                        .into(),
            }),
            None => Ok(()),
        }
    }

    /// Reads the files a spec names: a replay's trace, a task file (relative paths
    /// from `base`, the workload file's folder); other specs are left as they are.
    pub fn load_trace(
        &mut self,
        base: &std::path::Path,
        origin: &str,
    ) -> Result<(), WorkloadError> {
        if let Some(t) = &mut self.tasks {
            t.load(base, origin)?;
        }
        match &mut self.trace {
            Some(t) if t.loaded.is_none() => t.load(base, origin),
            _ => Ok(()),
        }
    }

    /// The spec as canonical JSON (field order of the types, no whitespace).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a spec serializes")
    }

    /// SHA-256 (hex) of the canonical JSON.
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// The spec as TOML (for `workloads show`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a spec serializes to TOML")
    }

    /// Whether sessions have more than one call (multi-call workloads report tasks).
    pub fn reports_tasks(&self) -> bool {
        self.session.report_tasks || self.session.calls.max > 1
    }
}

pub(crate) fn parse_err(origin: &str, e: &toml::de::Error) -> WorkloadError {
    WorkloadError::Parse {
        origin: origin.to_string(),
        message: e.message().trim().replace('\n', " ") + &span(e),
    }
}

fn span(e: &toml::de::Error) -> String {
    e.span()
        .map(|s| format!(" (at byte {})", s.start))
        .unwrap_or_default()
}

pub use crate::digest::hex;
