//! Target specs: `KIND[,key=value]*`, e.g. `local-cpu,model=smollm2-135m,precision=q4_1`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use kernels::{LocalCpuBackend, LocalCpuConfig, default_model_dirs};
use workloads::Backend;

use crate::error::bad_input;

/// Target kinds this build knows.
pub const KINDS: &[&str] = &["local-cpu"];

/// The default target: the embedded engine with SmolLM2-135M.
pub const DEFAULT_TARGET: &str = "local-cpu,model=smollm2-135m";

/// A parsed target spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// Kind (`local-cpu`).
    pub kind: String,
    /// Settings, in key order.
    pub settings: BTreeMap<String, String>,
}

impl TargetSpec {
    /// Parses `KIND[,key=value]*`.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut parts = spec.split(',');
        let kind = parts.next().unwrap_or_default().trim().to_string();
        if !KINDS.contains(&kind.as_str()) {
            return Err(bad_input(format!(
                "target `{spec}`: unknown kind `{kind}` (known: {})",
                KINDS.join(", ")
            )));
        }
        let mut settings = BTreeMap::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad_input(format!(
                    "target `{spec}`: `{part}` is not key=value"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(bad_input(format!(
                    "target `{spec}`: `{part}` has an empty key or value"
                )));
            }
            if settings.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad_input(format!("target `{spec}`: `{k}` is given twice")));
            }
        }
        Ok(Self { kind, settings })
    }

    /// Builds the target.
    pub fn build(&self) -> Result<Arc<dyn Backend>> {
        match self.kind.as_str() {
            "local-cpu" => {
                let config = LocalCpuConfig::from_settings(&self.settings, default_model_dirs())?;
                Ok(Arc::new(LocalCpuBackend::new(
                    config,
                    self.settings.clone(),
                )))
            }
            other => Err(bad_input(format!("unknown target kind `{other}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        let t = TargetSpec::parse("local-cpu,model=smollm2-135m,precision=q4_0").unwrap();
        assert_eq!(t.kind, "local-cpu");
        assert_eq!(t.settings["precision"], "q4_0");
        assert_eq!(TargetSpec::parse("local-cpu").unwrap().settings.len(), 0);
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            "gpu9000",
            "local-cpu,model",
            "local-cpu,=x",
            "local-cpu,a=1,a=2",
            "",
        ] {
            let err = TargetSpec::parse(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{bad}: {err}");
        }
    }
}
