//! Target specs: `KIND[,key=value]*` (`local-cpu,model=smollm2-135m,precision=q4_1`,
//! `openai,base_url=http://127.0.0.1:8080/v1,model=smollm2`), or `@NAME[,key=value]*`
//! naming a table of a targets file (`--targets FILE`), whose settings the extra
//! pairs override.
//!
//! A value may be JSON with commas of its own (`body.stream_options={"include_usage":true,
//! "continuous_usage_stats":true}`, `body.stop=["a","b"]`): commas inside braces,
//! brackets or double quotes do not split pairs.
//!
//! A targets file is TOML, one table per target:
//!
//! ```toml
//! [targets.llamacpp]
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080/v1"
//! model = "smollm2"
//! api_key_env = "LLAMACPP_KEY"   # the variable's name; never the key
//! [targets.llamacpp.body]        # extra JSON fields of every request
//! temperature = 0
//! [targets.llamacpp.prices]      # list prices, echoed into the report
//! input_usd_per_m = 0.10
//! output_usd_per_m = 0.40
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use workloads::Backend;

use super::registry::{BuildOptions, kind, kind_names};
use crate::error::bad_input;

/// Splits a spec at its top-level commas: a comma inside `{}`, `[]` or a
/// double-quoted string (with `\` escapes) belongs to the value.
fn split_pairs(spec: &str) -> Result<Vec<&str>> {
    let (mut parts, mut start, mut depth) = (Vec::new(), 0usize, Vec::new());
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in spec.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth.push(c),
            '}' | ']' => {
                let open = if c == '}' { '{' } else { '[' };
                if depth.pop() != Some(open) {
                    return Err(bad_input(format!(
                        "target `{spec}`: `{c}` at character {} closes nothing (JSON values \
                         need balanced braces and brackets; or use a targets file)",
                        i + 1
                    )));
                }
            }
            ',' if depth.is_empty() => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_string || !depth.is_empty() {
        return Err(bad_input(format!(
            "target `{spec}`: an unclosed {} (JSON values need balanced braces, brackets \
             and quotes; or use a targets file)",
            if in_string {
                "double quote".to_string()
            } else {
                format!("`{}`", depth.last().copied().unwrap_or('{'))
            }
        )));
    }
    parts.push(&spec[start..]);
    Ok(parts)
}

/// The default target: the embedded engine with SmolLM2-135M.
pub const DEFAULT_TARGET: &str = "local-cpu,model=smollm2-135m";

/// A parsed target spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    /// Kind (`local-cpu`, `openai`, `anthropic`).
    pub kind: String,
    /// Settings, in key order.
    pub settings: BTreeMap<String, String>,
    /// The targets-file name it came from, if any.
    pub name: Option<String>,
}

/// Named targets read from a targets file: name -> (kind, settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetsFile {
    /// The file, for messages.
    pub path: String,
    /// Targets by name.
    pub targets: BTreeMap<String, TargetSpec>,
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::json!(i),
        toml::Value::Float(f) => serde_json::json!(f),
        toml::Value::Boolean(b) => serde_json::json!(b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

impl TargetsFile {
    /// Reads and validates a targets file (shapes only; each target's settings are
    /// checked when it is built).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("--targets {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a targets file's text.
    pub fn parse(text: &str, path: &str) -> Result<Self> {
        let doc: toml::Table = toml::from_str(text)
            .map_err(|e| bad_input(format!("{path}: not TOML: {}", e.message())))?;
        if let Some(k) = doc.keys().find(|k| *k != "targets") {
            return Err(bad_input(format!(
                "{path}: unknown top-level key `{k}` (a targets file has [targets.NAME] tables)"
            )));
        }
        let Some(toml::Value::Table(targets)) = doc.get("targets") else {
            return Err(bad_input(format!("{path}: no [targets.NAME] table")));
        };
        let mut out = BTreeMap::new();
        for (name, t) in targets {
            let at = format!("{path}: [targets.{name}]");
            if name.is_empty() || name.contains([',', '=', '@']) {
                return Err(bad_input(format!("{at}: a name may not contain , = or @")));
            }
            let toml::Value::Table(t) = t else {
                return Err(bad_input(format!("{at} is not a table")));
            };
            let kind = match t.get("kind") {
                Some(toml::Value::String(k)) if kind(k).is_some() => k.clone(),
                Some(v) => {
                    return Err(bad_input(format!(
                        "{at}: kind {v} is not one of {}",
                        kind_names()
                    )));
                }
                None => return Err(bad_input(format!("{at}: `kind` is missing"))),
            };
            let mut settings = BTreeMap::new();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("kind", _) => {}
                    ("body", toml::Value::Table(body)) => {
                        for (f, v) in body {
                            settings.insert(format!("body.{f}"), toml_to_json(v).to_string());
                        }
                    }
                    ("prices", toml::Value::Table(prices)) => {
                        for (f, v) in prices {
                            let v = scalar(v).ok_or_else(|| {
                                bad_input(format!("{at}: prices.{f} is not a number or string"))
                            })?;
                            settings.insert(format!("price.{f}"), v);
                        }
                    }
                    (_, v) => {
                        let v = scalar(v).ok_or_else(|| {
                            bad_input(format!(
                                "{at}: `{k}` must be a string, number or boolean (tables: body, prices)"
                            ))
                        })?;
                        settings.insert(k.clone(), v);
                    }
                }
            }
            out.insert(
                name.clone(),
                TargetSpec {
                    kind,
                    settings,
                    name: Some(name.clone()),
                },
            );
        }
        Ok(Self {
            path: path.to_string(),
            targets: out,
        })
    }
}

impl TargetSpec {
    /// Parses `KIND[,key=value]*` (no targets file).
    pub fn parse(spec: &str) -> Result<Self> {
        Self::resolve(spec, None)
    }

    /// Parses `KIND[,key=value]*` or `@NAME[,key=value]*`.
    pub fn resolve(spec: &str, file: Option<&TargetsFile>) -> Result<Self> {
        let split = split_pairs(spec)?;
        let mut parts = split.into_iter();
        let head = parts.next().unwrap_or_default().trim().to_string();
        let mut base = if let Some(name) = head.strip_prefix('@') {
            let Some(file) = file else {
                return Err(bad_input(format!(
                    "target `{head}`: named targets need --targets FILE"
                )));
            };
            file.targets.get(name).cloned().ok_or_else(|| {
                bad_input(format!(
                    "target `{head}`: no [targets.{name}] in {} (it has: {})",
                    file.path,
                    file.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?
        } else {
            if kind(&head).is_none() {
                return Err(bad_input(format!(
                    "target `{spec}`: unknown kind `{head}` (known: {})",
                    kind_names()
                )));
            }
            TargetSpec {
                kind: head,
                settings: BTreeMap::new(),
                name: None,
            }
        };
        let mut given = BTreeMap::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad_input(format!(
                    "target `{spec}`: `{part}` is not key=value (JSON values may hold commas \
                     inside balanced braces, brackets or quotes; longer settings belong in a \
                     targets file)"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(bad_input(format!(
                    "target `{spec}`: `{part}` has an empty key or value"
                )));
            }
            if given.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad_input(format!("target `{spec}`: `{k}` is given twice")));
            }
        }
        base.settings.extend(given);
        Ok(base)
    }

    /// Builds the target through its kind in the registry.
    pub fn build(&self, options: &BuildOptions) -> Result<Arc<dyn Backend>> {
        let k = kind(&self.kind)
            .ok_or_else(|| bad_input(format!("unknown target kind `{}`", self.kind)))?;
        (k.build)(&self.settings, self.name.as_deref(), options)
    }

    /// Checks the spec's settings as building would, without reading a secret or
    /// loading a model.
    pub fn validate(&self) -> Result<()> {
        let k = kind(&self.kind)
            .ok_or_else(|| bad_input(format!("unknown target kind `{}`", self.kind)))?;
        (k.validate)(&self.settings)
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
        let t = TargetSpec::parse("openai,base_url=http://h/v1,model=m").unwrap();
        assert_eq!(t.settings["base_url"], "http://h/v1");
    }

    #[test]
    fn json_values_keep_their_commas() {
        let t = TargetSpec::parse(
            r#"openai,base_url=http://h/v1,body.stream_options={"include_usage":true,"continuous_usage_stats":true},body.stop=["a,b","c"],model=m"#,
        )
        .unwrap();
        assert_eq!(
            t.settings["body.stream_options"],
            r#"{"include_usage":true,"continuous_usage_stats":true}"#
        );
        assert_eq!(t.settings["body.stop"], r#"["a,b","c"]"#);
        assert_eq!(t.settings["model"], "m");
        let t = TargetSpec::parse(r#"openai,body.x="a\",b",model=m"#).unwrap();
        assert_eq!(t.settings["body.x"], r#""a\",b""#);
        for (bad, want) in [
            (r#"openai,body.x={"a":1,model=m"#, "unclosed `{`"),
            (r#"openai,body.x=["a",model=m"#, "unclosed `[`"),
            (r#"openai,body.x="a,model=m"#, "unclosed double quote"),
            (r#"openai,body.x={"a":1]"#, "closes nothing"),
        ] {
            let err = TargetSpec::parse(bad).unwrap_err();
            assert!(err.to_string().contains(want), "{bad}: {err}");
            assert_eq!(crate::error::exit_code(&err), 2);
        }
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in [
            "gpu9000",
            "local-cpu,model",
            "local-cpu,=x",
            "local-cpu,a=1,a=2",
            "",
            "@named",
        ] {
            let err = TargetSpec::parse(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{bad}: {err}");
        }
    }

    const FILE: &str = r#"
[targets.llamacpp]
kind = "openai"
base_url = "http://127.0.0.1:8080/v1"
model = "smollm2"
max_retries = 2
[targets.llamacpp.body]
temperature = 0
stop = ["\n\n"]
[targets.llamacpp.prices]
input_usd_per_m = 0.1
output_usd_per_m = 0.4

[targets.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
model = "claude-x"
api_key_env = "ANTHROPIC_API_KEY"
"#;

    #[test]
    fn named_targets_come_from_the_file_and_take_overrides() {
        let f = TargetsFile::parse(FILE, "t.toml").unwrap();
        let t = TargetSpec::resolve("@llamacpp,max_retries=5", Some(&f)).unwrap();
        assert_eq!(t.kind, "openai");
        assert_eq!(t.settings["max_retries"], "5");
        assert_eq!(t.settings["body.temperature"], "0");
        assert_eq!(t.settings["body.stop"], r#"["\n\n"]"#);
        assert_eq!(t.settings["price.output_usd_per_m"], "0.4");
        let b = t.build(&BuildOptions::default()).unwrap();
        let info = b.describe();
        assert_eq!(info.prices.unwrap().input_usd_per_m, 0.1);
        let err = TargetSpec::resolve("@nope", Some(&f)).unwrap_err();
        assert!(err.to_string().contains("claude, llamacpp"), "{err}");
    }

    #[test]
    fn refuses_bad_files() {
        for (bad, want) in [
            ("[targets.a]\nbase_url = 'x'", "`kind` is missing"),
            ("[targets.a]\nkind = 'gpu'", "is not one of"),
            ("[other]\n", "unknown top-level key"),
            (
                "[targets.a]\nkind = 'openai'\nextra = { a = 1 }",
                "must be a string",
            ),
            ("not toml =", "not TOML"),
        ] {
            let err = TargetsFile::parse(bad, "t.toml").unwrap_err();
            assert!(err.to_string().contains(want), "{bad}: {err}");
            assert_eq!(crate::error::exit_code(&err), 2);
        }
    }
}
