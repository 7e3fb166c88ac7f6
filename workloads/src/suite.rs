//! The standard suite, embedded in the binary: workload files under `workloads/suite/`
//! and suites under `workloads/suite/suites/` that list workloads with overrides
//! deep-merged onto them (the `quick` suite is the standard workloads scaled down).

use serde::Deserialize;

use crate::WorkloadError;
use crate::spec::{SPEC_FORMAT, WorkloadSpec, parse_err};

/// Embedded workload files: (name, TOML).
pub const WORKLOADS: &[(&str, &str)] = &[
    ("chat-short", include_str!("../suite/chat-short.toml")),
    ("rag-long", include_str!("../suite/rag-long.toml")),
    ("agent-loop", include_str!("../suite/agent-loop.toml")),
    ("batch-offline", include_str!("../suite/batch-offline.toml")),
    ("classify-tiny", include_str!("../suite/classify-tiny.toml")),
    ("cold-start", include_str!("../suite/cold-start.toml")),
    (
        "classify-tiny-verified",
        include_str!("../suite/classify-tiny-verified.toml"),
    ),
    (
        "rag-long-needle",
        include_str!("../suite/rag-long-needle.toml"),
    ),
    (
        "agent-loop-tools",
        include_str!("../suite/agent-loop-tools.toml"),
    ),
    (
        "arithmetic-short",
        include_str!("../suite/arithmetic-short.toml"),
    ),
];

/// Embedded suites: (name, TOML).
pub const SUITES: &[(&str, &str)] = &[
    ("quick", include_str!("../suite/suites/quick.toml")),
    ("standard", include_str!("../suite/suites/standard.toml")),
    ("verified", include_str!("../suite/suites/verified.toml")),
    (
        "quick-verified",
        include_str!("../suite/suites/quick-verified.toml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    format: u32,
    suite: String,
    #[serde(default)]
    description: String,
    run: Vec<SuiteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteEntry {
    workload: String,
    #[serde(default, rename = "override")]
    overrides: Option<toml::Table>,
}

/// A resolved suite: its workloads, in run order.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Suite name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Fully resolved workloads.
    pub workloads: Vec<WorkloadSpec>,
}

/// One line of `workloads list`.
#[derive(Clone, Debug)]
pub struct Listing {
    /// `workload` or `suite`.
    pub kind: &'static str,
    /// Name to pass to `--workload` or `--suite`.
    pub name: String,
    /// One-line description.
    pub description: String,
}

fn embedded_workload_value(name: &str) -> Option<Result<toml::Value, WorkloadError>> {
    WORKLOADS.iter().find(|(n, _)| *n == name).map(|(n, text)| {
        toml::from_str::<toml::Value>(text)
            .map_err(|e| parse_err(&format!("embedded workload {n}"), &e))
    })
}

fn known_names() -> String {
    let mut names: Vec<&str> = WORKLOADS.iter().map(|(n, _)| *n).collect();
    names.extend(SUITES.iter().map(|(n, _)| *n));
    names.join(", ")
}

/// Recursively merges `over` into `base`: tables merge key by key, anything else is
/// replaced.
fn deep_merge(base: &mut toml::Value, over: &toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Resolves a suite by name.
pub fn suite(name: &str) -> Result<Suite, WorkloadError> {
    let Some((_, text)) = SUITES.iter().find(|(n, _)| *n == name) else {
        return Err(WorkloadError::UnknownWorkload {
            name: name.to_string(),
            known: known_names(),
        });
    };
    parse_suite(text, &format!("embedded suite {name}"))
}

fn parse_suite(text: &str, origin: &str) -> Result<Suite, WorkloadError> {
    let file: SuiteFile = toml::from_str(text).map_err(|e| parse_err(origin, &e))?;
    if file.format != SPEC_FORMAT {
        return Err(WorkloadError::Invalid {
            origin: origin.to_string(),
            field: "format".into(),
            message: format!("this build reads format {SPEC_FORMAT}, got {}", file.format),
        });
    }
    let mut workloads = Vec::new();
    for entry in &file.run {
        let entry_origin = format!("{origin}, workload {}", entry.workload);
        let mut value = embedded_workload_value(&entry.workload).ok_or_else(|| {
            WorkloadError::UnknownWorkload {
                name: entry.workload.clone(),
                known: known_names(),
            }
        })??;
        if let Some(o) = &entry.overrides {
            deep_merge(&mut value, &toml::Value::Table(o.clone()));
        }
        workloads.push(WorkloadSpec::from_value(value, &entry_origin)?);
    }
    Ok(Suite {
        name: file.suite,
        description: file.description,
        workloads,
    })
}

/// Resolves a workload: an embedded name (`chat-short`), a suite entry
/// (`quick/chat-short`), or a path to a TOML file.
pub fn workload(name_or_path: &str) -> Result<WorkloadSpec, WorkloadError> {
    if let Some(value) = embedded_workload_value(name_or_path) {
        return WorkloadSpec::from_value(value?, &format!("embedded workload {name_or_path}"));
    }
    // A suite's entries are named `<prefix>/<workload>` (`quick/...` in both `quick`
    // and `quick-verified`): any embedded suite may hold it.
    if name_or_path.contains('/') && !name_or_path.ends_with(".toml") {
        for (suite_name, _) in SUITES {
            if let Some(w) = suite(suite_name)?
                .workloads
                .into_iter()
                .find(|w| w.name == name_or_path)
            {
                return Ok(w);
            }
        }
    }
    let path = std::path::Path::new(name_or_path);
    let looks_like_path =
        name_or_path.ends_with(".toml") || name_or_path.contains(std::path::MAIN_SEPARATOR);
    if looks_like_path || path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Io {
            path: name_or_path.to_string(),
            source,
        })?;
        let mut spec = WorkloadSpec::from_toml(&text, name_or_path)?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        spec.load_trace(base, name_or_path)?;
        return Ok(spec);
    }
    Err(WorkloadError::UnknownWorkload {
        name: name_or_path.to_string(),
        known: known_names(),
    })
}

/// Every embedded workload and suite (suite entries included).
pub fn list() -> Result<Vec<Listing>, WorkloadError> {
    let mut out = Vec::new();
    for (name, _) in WORKLOADS {
        let spec = workload(name)?;
        out.push(Listing {
            kind: "workload",
            name: spec.name,
            description: spec.description,
        });
    }
    for (name, _) in SUITES {
        let s = suite(name)?;
        let members: Vec<&str> = s.workloads.iter().map(|w| w.name.as_str()).collect();
        out.push(Listing {
            kind: "suite",
            name: s.name.clone(),
            description: format!("{} [{}]", s.description, members.join(", ")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LengthSpec;

    #[test]
    fn every_embedded_workload_and_suite_resolves() {
        let listing = list().unwrap();
        assert_eq!(
            listing.iter().filter(|l| l.kind == "workload").count(),
            WORKLOADS.len()
        );
        let quick = suite("quick").unwrap();
        assert_eq!(quick.workloads.len(), 5);
        for w in &quick.workloads {
            assert!(w.name.starts_with("quick/"), "{}", w.name);
            assert_eq!(workload(&w.name).unwrap(), *w);
        }
    }

    #[test]
    fn overrides_merge_deeply() {
        let base = workload("chat-short").unwrap();
        let quick = workload("quick/chat-short").unwrap();
        // The quick suite overrides counts and think time but inherits the arrival
        // process and the calls per session.
        assert_ne!(base.load.requests, quick.load.requests);
        assert_ne!(base.session.think_time_ms, quick.session.think_time_ms);
        assert_eq!(base.load.arrival, quick.load.arrival);
        assert_eq!(base.session.calls, quick.session.calls);
        assert_eq!(base.output, Some(LengthSpec::Fixed { value: 128.0 }));
        assert_eq!(quick.output, Some(LengthSpec::Fixed { value: 32.0 }));
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        let err = workload("chat-long").unwrap_err().to_string();
        assert!(
            err.contains("unknown workload `chat-long`") && err.contains("agent-loop"),
            "{err}"
        );
        assert!(suite("nope").is_err());
    }

    #[test]
    fn malformed_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("infermeter-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "format = 1\nname = \"x\"\nversion = [").unwrap();
        let err = workload(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.starts_with(path.to_str().unwrap()), "{err}");
        let missing = dir.join("missing.toml");
        assert!(matches!(
            workload(missing.to_str().unwrap()),
            Err(WorkloadError::Io { .. })
        ));
    }

    #[test]
    fn out_of_range_loads_are_refused_naming_the_field_and_the_bound() {
        use results::ArrivalPattern;
        let base = workload("chat-short").unwrap();
        let mut cases: Vec<(WorkloadSpec, &str)> = Vec::new();
        let mut s = base.clone();
        s.load.duration_s = Some(1e20);
        cases.push((s, "load.duration_s"));
        let mut s = base.clone();
        s.load.arrival = ArrivalPattern::Gamma;
        s.load.rate_rps = Some(1.0);
        s.load.burstiness = Some(1e200);
        cases.push((s, "load.burstiness"));
        let mut s = base.clone();
        s.load.arrival = ArrivalPattern::Poisson;
        s.load.rate_rps = Some(1e-300);
        cases.push((s, "load.rate_rps"));
        let mut s = base.clone();
        s.load.requests = crate::bounds::MAX_REQUESTS + 1;
        cases.push((s, "load.requests"));
        let mut s = base.clone();
        s.session.think_time_ms = crate::spec::LengthSpec::Fixed { value: 1e300 };
        cases.push((s, "session.think_time_ms"));
        for (spec, field) in cases {
            let err = spec.validate("test").unwrap_err().to_string();
            assert!(
                err.contains(field) && err.contains("at most"),
                "{field}: {err}"
            );
        }
        // At the bounds themselves, schedules are built without a panic.
        let mut s = base;
        s.load.arrival = ArrivalPattern::Gamma;
        s.load.rate_rps = Some(crate::bounds::MIN_RATE_RPS);
        s.load.burstiness = Some(crate::bounds::MAX_BURSTINESS);
        s.load.requests = 5;
        s.validate("test").unwrap();
        let stream = crate::generate::generate(&s, 1);
        assert!(stream.schedule.unwrap().iter().all(|t| t.is_finite()));
    }
}
