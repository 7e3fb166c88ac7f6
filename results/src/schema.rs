//! The committed JSON Schema of the report (generated from the types with schemars),
//! schema versions, and the one way a report is read: [`read_report_str`].
//!
//! Versions are `major.minor`; a minor version only adds fields. Reading a report:
//! - another major version is refused, naming both versions;
//! - an older minor is upgraded: fields added since are filled from what the older
//!   report holds ([`upgrade`]; 1.6's target facts from the kind and settings);
//! - a newer minor is read with a warning: fields this build does not know are
//!   dropped first (walking the document beside the schema), and the warning counts
//!   them and names the first;
//! - either way the document is then one of this build's version, and says so;
//! - then it is validated against the schema and deserialized.

use serde_json::{Map, Value};

use crate::error::ResultsError;
use crate::report::{REPORT_SCHEMA, REPORT_SCHEMA_MAJOR, REPORT_SCHEMA_MINOR, Report};

/// Path of the committed schema, relative to the repository root.
pub const REPORT_SCHEMA_PATH: &str = "results/schema/infermeter.report.v1.schema.json";

/// The committed schema, compiled into the binary.
pub const REPORT_SCHEMA_JSON: &str = include_str!("../schema/infermeter.report.v1.schema.json");

/// The name of the embedded tokenizer of every build that wrote reports before 1.6
/// (the only tokenizer they could name without a `tokenizer` setting).
const LEGACY_EMBEDDED_TOKENIZER: &str = "smollm2-135m";

/// Generates the report schema from the Rust types, pretty-printed with a trailing
/// newline (the exact bytes that are committed).
pub fn generate_report_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

fn committed_schema() -> Result<Value, ResultsError> {
    Ok(serde_json::from_str(REPORT_SCHEMA_JSON)?)
}

/// Validates a JSON document against the committed report schema, returning the first
/// violation with the JSON pointer where it occurs.
pub fn validate_report_json(doc: &Value) -> Result<(), ResultsError> {
    let schema = committed_schema()?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| ResultsError::Schema {
        path: REPORT_SCHEMA_PATH.to_string(),
        message: format!("the committed schema does not compile: {e}"),
    })?;
    if let Some(err) = validator.iter_errors(doc).next() {
        let path = err.instance_path.to_string();
        return Err(ResultsError::Schema {
            path: if path.is_empty() {
                "/".to_string()
            } else {
                path
            },
            message: err.to_string(),
        });
    }
    Ok(())
}

/// A `major.minor` schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaVersion {
    /// Breaking changes.
    pub major: u32,
    /// Added fields.
    pub minor: u32,
}

impl SchemaVersion {
    /// The version this build writes.
    pub const CURRENT: SchemaVersion = SchemaVersion {
        major: REPORT_SCHEMA_MAJOR,
        minor: REPORT_SCHEMA_MINOR,
    };

    /// Parses `major.minor`.
    pub fn parse(text: &str) -> Option<Self> {
        let (a, b) = text.split_once('.')?;
        Some(Self {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Checks a document's `schema` and `schema_version`: the version it follows, or why
/// this build cannot read it.
pub fn check_version(doc: &Value) -> Result<SchemaVersion, ResultsError> {
    let bad = |message: String| ResultsError::Version(message);
    match doc.get("schema").and_then(Value::as_str) {
        Some(REPORT_SCHEMA) => {}
        Some(other) => {
            return Err(bad(format!("schema is `{other}`, not {REPORT_SCHEMA}")));
        }
        None => return Err(bad(format!("no `schema` field: not an {REPORT_SCHEMA}"))),
    }
    let text = match doc.get("schema_version") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => {
            return Err(bad(format!(
                "schema_version {v} is not a \"major.minor\" string"
            )));
        }
        None => return Err(bad("no `schema_version` field".into())),
    };
    let v = SchemaVersion::parse(text)
        .ok_or_else(|| bad(format!("schema_version `{text}` is not major.minor")))?;
    if v.major != REPORT_SCHEMA_MAJOR {
        return Err(bad(format!(
            "schema_version {v} has major version {}; this build reads major version {REPORT_SCHEMA_MAJOR} (1.0 to {})",
            v.major,
            SchemaVersion::CURRENT
        )));
    }
    Ok(v)
}

/// Reads a report: checks its version, upgrades an older minor or drops what a newer
/// minor added, validates it against the schema and deserializes it. Returns the
/// report and warnings for the reader (a newer minor's dropped fields).
pub fn read_report_str(text: &str) -> Result<(Report, Vec<String>), ResultsError> {
    let doc: Value = serde_json::from_str(text)?;
    read_report_value(doc)
}

/// [`read_report_str`] for a parsed document.
pub fn read_report_value(mut doc: Value) -> Result<(Report, Vec<String>), ResultsError> {
    let version = check_version(&doc)?;
    let mut warnings = Vec::new();
    if version < SchemaVersion::CURRENT {
        upgrade(&mut doc, version);
    } else if version > SchemaVersion::CURRENT {
        let schema = committed_schema()?;
        let mut dropped = Vec::new();
        prune(&mut doc, &schema, &schema, "", &mut dropped);
        let first = dropped
            .first()
            .map_or(String::new(), |p| format!(" (the first: {p})"));
        warnings.push(format!(
            "schema_version {version} is newer than this build's {}: read without the {} fields it does not know{first}",
            SchemaVersion::CURRENT,
            dropped.len()
        ));
    }
    // Upgraded or pruned, the document is one of this version now: it says so, and a
    // report written back from it claims no field it does not have.
    doc["schema_version"] = Value::from(SchemaVersion::CURRENT.to_string());
    validate_report_json(&doc)?;
    let report = serde_json::from_value(doc)?;
    Ok((report, warnings))
}

/// Fills the fields a report of `from` lacks from what it holds.
///
/// 1.6 added typed target facts; older reports name them only through the kind
/// (`local-cpu`, `local-cuda`, `openai`, `anthropic`) and the spec's settings. This is
/// the one place a kind's name is read for what it means.
pub fn upgrade(doc: &mut Value, from: SchemaVersion) {
    if from.minor < 6 {
        let results = doc.get_mut("results").and_then(Value::as_array_mut);
        for e in results.into_iter().flatten() {
            if let Some(Value::Object(t)) = e.get_mut("target") {
                upgrade_target_1_6(t);
            }
        }
    }
}

fn upgrade_target_1_6(t: &mut Map<String, Value>) {
    let kind = t
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let setting = |t: &Map<String, Value>, k: &str| {
        t.get("settings")
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let local = kind.starts_with("local-");
    let (stream, tokenizer, api) = (
        setting(t, "stream"),
        setting(t, "tokenizer"),
        setting(t, "api"),
    );
    let defaults = [
        (
            "locality",
            Value::from(if local { "local" } else { "remote" }),
        ),
        (
            "device",
            match kind.as_str() {
                "local-cuda" => Value::from("gpu"),
                k if k.starts_with("local-") => Value::from("cpu"),
                _ => Value::Null,
            },
        ),
        (
            "streamed",
            Value::from(local || !matches!(stream.as_deref(), Some("false" | "0" | "no"))),
        ),
        (
            "token_counter",
            Value::from(match (local, tokenizer.as_deref()) {
                (true, _) => "engine".to_string(),
                (false, None | Some("embedded")) => LEGACY_EMBEDDED_TOKENIZER.to_string(),
                (false, Some(other)) => other.to_string(),
            }),
        ),
        (
            "api",
            match (local, kind.as_str(), api.as_deref()) {
                (true, _, _) => Value::Null,
                (false, "anthropic", _) => Value::from("messages"),
                (false, _, Some("completions")) => Value::from("completions"),
                (false, _, _) => Value::from("chat"),
            },
        ),
    ];
    for (k, v) in defaults {
        t.entry(k.to_string()).or_insert(v);
    }
}

/// The schema node `node` stands for, following `$ref`s into `root`'s `$defs`.
fn resolve<'a>(node: &'a Value, root: &'a Value) -> &'a Value {
    let mut n = node;
    for _ in 0..32 {
        match n.get("$ref").and_then(Value::as_str) {
            Some(r) => match r
                .strip_prefix("#/$defs/")
                .and_then(|name| root.get("$defs")?.get(name))
            {
                Some(next) => n = next,
                None => return n,
            },
            None => return n,
        }
    }
    n
}

/// Drops from `doc` every object field that `node` (a schema) does not declare,
/// recording each dropped field's JSON pointer.
fn prune(doc: &mut Value, node: &Value, root: &Value, at: &str, dropped: &mut Vec<String>) {
    let node = resolve(node, root);
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = node.get(key).and_then(Value::as_array) {
            // The alternative that declares properties (an object type) or items (an
            // array) is the one to walk; `null` alternatives hold nothing.
            let walk = alts.iter().map(|a| resolve(a, root)).find(|a| {
                (doc.is_object()
                    && (a.get("properties").is_some()
                        || a.get("type") == Some(&Value::from("object"))))
                    || (doc.is_array() && a.get("items").is_some())
            });
            if let Some(a) = walk {
                prune(doc, a, root, at, dropped);
            }
            return;
        }
    }
    match doc {
        Value::Object(map) => {
            let props = node.get("properties").and_then(Value::as_object);
            let extra = node.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let path = format!("{at}/{k}");
                match (props.and_then(|p| p.get(&k)), extra) {
                    (Some(child), _) => {
                        if let Some(v) = map.get_mut(&k) {
                            prune(v, child, root, &path, dropped);
                        }
                    }
                    (None, Some(Value::Bool(false))) => {
                        map.remove(&k);
                        dropped.push(path);
                    }
                    (None, Some(schema @ Value::Object(_))) => {
                        if let Some(v) = map.get_mut(&k) {
                            prune(v, schema, root, &path, dropped);
                        }
                    }
                    (None, _) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(v, item, root, &format!("{at}/{i}"), dropped);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema must be exactly what the types generate: regenerate with
    /// `INFERMETER_BLESS=1 cargo test -p infermeter-results schema` after changing them.
    #[test]
    fn committed_schema_matches_types() {
        let generated = generate_report_schema();
        if std::env::var_os("INFERMETER_BLESS").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schema/infermeter.report.v1.schema.json"
            );
            std::fs::write(path, &generated).unwrap();
            return;
        }
        assert!(
            generated == REPORT_SCHEMA_JSON,
            "{REPORT_SCHEMA_PATH} is stale: regenerate it with INFERMETER_BLESS=1 cargo test -p infermeter-results schema"
        );
    }

    #[test]
    fn rejects_a_document_with_a_wrong_field() {
        let doc = serde_json::json!({"schema": "infermeter.report", "schema_version": 1});
        let err = validate_report_json(&doc).unwrap_err();
        assert!(matches!(err, ResultsError::Schema { .. }), "{err}");
    }

    #[test]
    fn versions_parse_and_another_major_is_refused() {
        assert_eq!(
            SchemaVersion::parse("1.12"),
            Some(SchemaVersion {
                major: 1,
                minor: 12
            })
        );
        assert!(SchemaVersion::parse("1").is_none() && SchemaVersion::parse("a.b").is_none());
        let doc = |v: &str| serde_json::json!({"schema": "infermeter.report", "schema_version": v});
        let err = check_version(&doc("99.0")).unwrap_err().to_string();
        assert!(
            err.contains("99.0") && err.contains("reads major version 1"),
            "{err}"
        );
        assert!(check_version(&doc("one")).is_err());
        let other = serde_json::json!({"schema": "x", "schema_version": "1.0"});
        assert!(
            check_version(&other)
                .unwrap_err()
                .to_string()
                .contains("`x`")
        );
        assert_eq!(check_version(&doc("1.3")).unwrap().minor, 3);
    }

    #[test]
    fn pruning_drops_only_what_the_schema_does_not_declare() {
        let schema = committed_schema().unwrap();
        let mut doc = serde_json::json!({
            "schema": "infermeter.report",
            "future_top": 1,
            "tool": {"version": "9", "git_sha": null, "future_tool": true},
            "results": [{"target": {"kind": "openai", "settings": {"any": "kept"}, "future": 2}}],
        });
        let mut dropped = Vec::new();
        prune(&mut doc, &schema, &schema, "", &mut dropped);
        assert_eq!(
            dropped,
            vec![
                "/future_top",
                "/results/0/target/future",
                "/tool/future_tool"
            ]
        );
        assert_eq!(doc["results"][0]["target"]["settings"]["any"], "kept");
        assert_eq!(doc["tool"]["version"], "9");
    }
}
