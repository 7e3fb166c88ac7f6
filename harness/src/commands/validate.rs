//! `infermeter validate FILE`: a report (`.json`) against its schema and version, or a
//! workload, targets or price catalog file (TOML) as a run would read it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use results::REPORT_SCHEMA;
use workloads::spec::WorkloadSpec;

use crate::error::bad_input;
use crate::files::read_report_as_written;
use crate::targets::TargetsFile;

/// `validate` arguments.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The file.
    pub file: PathBuf,
}

/// Runs `infermeter validate`.
pub fn run(args: &ValidateArgs) -> Result<()> {
    println!("{}", validate(&args.file)?);
    Ok(())
}

/// What `validate` says of `file`, or why it is not valid.
pub fn validate(file: &Path) -> Result<String> {
    if file.extension().is_some_and(|e| e == "json") {
        if let Some(msg) = validate_plan_doc(file)? {
            return Ok(msg);
        }
        let (r, written) = read_report_as_written(file)?;
        let written = written.to_string();
        let read_as = if written == r.schema_version {
            String::new()
        } else {
            format!(" (read as {})", r.schema_version)
        };
        return Ok(format!(
            "ok: {} is a valid {REPORT_SCHEMA} {written}{read_as} with {} results",
            file.display(),
            r.results.len()
        ));
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    // A targets file has [targets.NAME] tables, a catalog [[hardware_price]] or
    // [[rate_card]] arrays; anything else is a workload spec.
    let table = toml::from_str::<toml::Table>(&text).ok();
    let is_targets = table
        .as_ref()
        .is_some_and(|t| t.contains_key("targets") && !t.contains_key("format"));
    if is_targets {
        return validate_targets(&text, file);
    }
    let is_hardware = table
        .as_ref()
        .is_some_and(|t| t.contains_key("device") || t.contains_key("default_efficiency"));
    if is_hardware {
        let c = results::plan::HardwareCatalog::parse(&text, &file.display().to_string())
            .map_err(|e| bad_input(e.0))?;
        return Ok(format!(
            "ok: {} is a valid hardware catalog {} with {} devices: {}",
            file.display(),
            c.label(),
            c.device.len(),
            c.device
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let is_catalog = table.as_ref().is_some_and(|t| {
        ["hardware_price", "rate_card", "part", "region"]
            .iter()
            .any(|k| t.contains_key(*k))
    });
    if is_catalog {
        let c = results::catalog::Catalog::parse(&text, &file.display().to_string())
            .map_err(|e| bad_input(e.0))?;
        return Ok(format!(
            "ok: {} is a valid price catalog {} with {} hardware prices, {} rate cards, regions: {}",
            file.display(),
            c.label(),
            c.hardware_price.len(),
            c.rate_card.len(),
            c.region
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let spec = WorkloadSpec::from_toml(&text, &file.display().to_string())?;
    Ok(format!(
        "ok: {} is a valid workload spec (format {}) named {}",
        file.display(),
        spec.format,
        spec.name
    ))
}

/// Checks every target of a targets file through its kind in the registry, except
/// that API keys are not read and models not loaded (validation must work where the
/// keys are not set).
/// A plan or back-test document (`schema` names one), checked against its committed
/// schema; `None` for any other JSON (a report).
fn validate_plan_doc(file: &Path) -> Result<Option<String>> {
    let at = |e: &dyn std::fmt::Display| bad_input(format!("{}: {e}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| at(&e))?;
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    let kind = doc.get("schema").and_then(|s| s.as_str());
    if !matches!(
        kind,
        Some(results::plan::PLAN_SCHEMA | results::plan::BACKTEST_SCHEMA)
    ) {
        return Ok(None);
    }
    let name = results::plan::schema::validate_doc_json(&doc).map_err(|e| at(&e))?;
    Ok(Some(format!(
        "ok: {} is a valid {name} {}",
        file.display(),
        doc.get("schema_version")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
    )))
}

fn validate_targets(text: &str, file: &Path) -> Result<String> {
    let f = TargetsFile::parse(text, &file.display().to_string())?;
    for (name, t) in &f.targets {
        t.validate()
            .map_err(|e| bad_input(format!("{}: [targets.{name}]: {e:#}", file.display())))?;
    }
    Ok(format!(
        "ok: {} is a valid targets file with {} targets: {}",
        file.display(),
        f.targets.len(),
        f.targets.keys().cloned().collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_checks_targets_files_without_reading_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("targets.toml");
        std::fs::write(
            &ok,
            "[targets.a]\nkind = \"openai\"\nbase_url = \"http://h/v1\"\nmodel = \"m\"\napi_key_env = \"UNSET_VARIABLE_XYZ\"\n",
        )
        .unwrap();
        let msg = validate(&ok).unwrap();
        assert!(
            msg.contains("valid targets file with 1 targets: a"),
            "{msg}"
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[targets.b]\nkind = \"openai\"\nmodel = \"m\"\n").unwrap();
        let err = validate(&bad).unwrap_err();
        assert!(
            err.to_string().contains("[targets.b]") && err.to_string().contains("base_url"),
            "{err}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);
    }
}
