//! Errors of building a remote target (bad settings): the user's input, exit code 2.

use thiserror::Error;

/// Why a remote target could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// A setting is missing or wrong.
    #[error("target setting `{key}`: {message}")]
    Setting {
        /// The setting.
        key: String,
        /// What is wrong (never the value of a secret).
        message: String,
    },
    /// The API key's environment variable is not set.
    #[error("environment variable {var} (named by api_key_env) is not set")]
    MissingKey {
        /// The variable's name.
        var: String,
    },
    /// The HTTP client could not be built (for example a bad CA bundle).
    #[error("HTTP client: {0}")]
    Client(String),
}

impl ProviderError {
    /// A [`ProviderError::Setting`].
    pub fn setting(key: &str, message: String) -> Self {
        Self::Setting {
            key: key.to_string(),
            message,
        }
    }
}
