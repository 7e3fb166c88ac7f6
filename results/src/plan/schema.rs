//! The committed JSON Schemas of plan and back-test documents, generated from their
//! types, and validation of a document against the one its `schema` field names.

use serde_json::Value;

use super::backtest::{BACKTEST_SCHEMA, BacktestDoc};
use super::doc::{PLAN_SCHEMA, PlanDoc};
use crate::ResultsError;

/// The committed plan schema.
pub const PLAN_SCHEMA_JSON: &str = include_str!("../../schema/infermeter.plan.v1.schema.json");
/// The committed back-test schema.
pub const BACKTEST_SCHEMA_JSON: &str =
    include_str!("../../schema/infermeter.backtest.v1.schema.json");

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// The plan schema from the types (the bytes committed).
pub fn generate_plan_schema() -> String {
    pretty(&schemars::schema_for!(PlanDoc))
}

/// The back-test schema from the types (the bytes committed).
pub fn generate_backtest_schema() -> String {
    pretty(&schemars::schema_for!(BacktestDoc))
}

/// Validates a plan or back-test document against its committed schema; returns
/// the schema's name.
pub fn validate_doc_json(doc: &Value) -> Result<&'static str, ResultsError> {
    let (name, text, path) = match doc.get("schema").and_then(Value::as_str) {
        Some(PLAN_SCHEMA) => (
            PLAN_SCHEMA,
            PLAN_SCHEMA_JSON,
            "results/schema/infermeter.plan.v1.schema.json",
        ),
        Some(BACKTEST_SCHEMA) => (
            BACKTEST_SCHEMA,
            BACKTEST_SCHEMA_JSON,
            "results/schema/infermeter.backtest.v1.schema.json",
        ),
        other => {
            return Err(ResultsError::Schema {
                path: "/schema".into(),
                message: format!(
                    "`{}` is not a plan or back-test document",
                    other.unwrap_or("(none)")
                ),
            });
        }
    };
    let schema: Value = serde_json::from_str(text)?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| ResultsError::Schema {
        path: path.into(),
        message: format!("the committed schema does not compile: {e}"),
    })?;
    if let Some(err) = validator.iter_errors(doc).next() {
        let at = err.instance_path.to_string();
        return Err(ResultsError::Schema {
            path: if at.is_empty() { "/".into() } else { at },
            message: err.to_string(),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Regenerate with `INFERMETER_BLESS=1 cargo test -p infermeter-results schema`.
    #[test]
    fn committed_plan_and_backtest_schemas_match_the_types() {
        for (generated, committed, file) in [
            (
                generate_plan_schema(),
                PLAN_SCHEMA_JSON,
                "infermeter.plan.v1.schema.json",
            ),
            (
                generate_backtest_schema(),
                BACKTEST_SCHEMA_JSON,
                "infermeter.backtest.v1.schema.json",
            ),
        ] {
            if std::env::var_os("INFERMETER_BLESS").is_some() {
                let path = format!("{}/schema/{file}", env!("CARGO_MANIFEST_DIR"));
                std::fs::write(path, &generated).unwrap();
                continue;
            }
            assert!(
                generated == committed,
                "results/schema/{file} is stale: regenerate it with INFERMETER_BLESS=1 cargo test -p infermeter-results schema"
            );
        }
    }

    #[test]
    fn a_document_of_another_kind_or_with_a_wrong_field_is_refused() {
        let err = validate_doc_json(&serde_json::json!({"schema": "x"})).unwrap_err();
        assert!(err.to_string().contains("not a plan"), "{err}");
        let err =
            validate_doc_json(&serde_json::json!({"schema": PLAN_SCHEMA, "model": 3})).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
