//! The committed JSON Schema of the report, generated from the types with schemars,
//! and validation of any JSON document against it.

use serde_json::Value;

use crate::{Report, ResultsError};

/// Path of the committed schema, relative to the repository root.
pub const REPORT_SCHEMA_PATH: &str = "results/schema/infermeter.report.v1.schema.json";

/// The committed schema, compiled into the binary.
pub const REPORT_SCHEMA_JSON: &str = include_str!("../schema/infermeter.report.v1.schema.json");

/// Generates the report schema from the Rust types, pretty-printed with a trailing
/// newline (the exact bytes that are committed).
pub fn generate_report_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// Validates a JSON document against the committed report schema, returning the first
/// violation with the JSON pointer where it occurs.
pub fn validate_report_json(doc: &Value) -> Result<(), ResultsError> {
    let schema: Value = serde_json::from_str(REPORT_SCHEMA_JSON)?;
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
}
