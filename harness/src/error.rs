//! Which errors are the user's input (exit code 2) and which are failures of the run
//! (exit code 1).

use std::fmt;

/// A problem with what the user gave: a flag, a file, a name. Exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Shorthand for a [`BadInput`] wrapped in `anyhow`.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// A value past its bounds (`workloads::bounds`), as bad input.
pub fn oob(e: workloads::bounds::OutOfBounds) -> anyhow::Error {
    bad_input(e.to_string())
}

/// The exit code for an error: 2 when its cause is bad input, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    use kernels::EngineError;
    for cause in err.chain() {
        if cause.is::<BadInput>()
            || cause.is::<workloads::WorkloadError>()
            || cause.is::<results::ResultsError>()
            || cause.is::<serde_json::Error>()
            || cause.is::<providers::ProviderError>()
            || matches!(
                cause.downcast_ref::<workloads::PrepareError>(),
                Some(workloads::PrepareError::Config(_))
            )
        {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return match e {
                EngineError::Tensor(_) | EngineError::Stopped => 1,
                _ => 2,
            };
        }
    }
    1
}
