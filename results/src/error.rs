//! Errors of the results crate.

use thiserror::Error;

/// What can go wrong reading, merging or validating published data.
#[derive(Debug, Error)]
pub enum ResultsError {
    /// A serialized histogram could not be decoded.
    #[error("histogram `{field}`: {reason}")]
    Histogram {
        /// The report field holding the histogram.
        field: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A document is not valid against its JSON Schema.
    #[error("{path}: {message}")]
    Schema {
        /// JSON pointer of the first offending value.
        path: String,
        /// What the schema says is wrong there.
        message: String,
    },
    /// A document's schema or schema version is not one this build reads.
    #[error("{0}")]
    Version(String),
    /// A report cannot be written in a requested format.
    #[error("{0}")]
    Export(String),
    /// A document is not JSON, or not the expected shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}
