//! Errors of workload specs and request generation.

use thiserror::Error;

/// What can be wrong with a workload spec, a suite or a generation request.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// No workload or suite has this name.
    #[error("unknown workload `{name}` (known: {known})")]
    UnknownWorkload {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A spec file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A spec is not valid TOML or does not have the expected fields.
    #[error("{origin}: {message}")]
    Parse {
        /// File or embedded spec name.
        origin: String,
        /// The parser's message, one line.
        message: String,
    },
    /// A field has a value out of range.
    #[error("{origin}: field `{field}`: {message}")]
    Invalid {
        /// File or embedded spec name.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
}
