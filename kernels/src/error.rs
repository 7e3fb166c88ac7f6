//! Errors of the local engine.

use thiserror::Error;

/// What can go wrong loading or running a local model.
#[derive(Debug, Error)]
pub enum EngineError {
    /// No preset has this name.
    #[error("unknown model preset `{name}` (known: {known})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// Known presets.
        known: String,
    },
    /// The precision is not one this engine supports.
    #[error("unsupported precision `{0}` (supported: f32, f16, bf16, q8_0, q4_0, q4_1)")]
    UnknownPrecision(String),
    /// A model file is missing, unreadable, not GGUF, truncated, or of another shape.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file was required but none was found.
    #[error("no GGUF file for preset `{preset}` at precision {precision} in {searched}")]
    NoModelFile {
        /// Preset.
        preset: String,
        /// Precision asked for.
        precision: String,
        /// Directories searched.
        searched: String,
    },
    /// A target setting is unknown or has a bad value.
    #[error("target setting `{key}`: {message}")]
    Setting {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The model and its KV cache do not fit the device's memory.
    #[error(
        "does not fit: needs {} (weights {}, KV cache {}), {} available",
        gib(*needed), gib(*weights), gib(*kv_cache), gib(*available)
    )]
    DoesNotFit {
        /// Bytes needed in all.
        needed: u64,
        /// Of which weights.
        weights: u64,
        /// Of which KV cache.
        kv_cache: u64,
        /// Bytes available.
        available: u64,
    },
    /// The device ran out of memory while the engine allocated on it.
    #[error(
        "device out of memory {what}: {} requested, {} free of {}",
        gib(*requested), gib(*free), gib(*total)
    )]
    DeviceOom {
        /// What was being allocated.
        what: String,
        /// Bytes asked for.
        requested: u64,
        /// Bytes free on the device then.
        free: u64,
        /// The device's memory.
        total: u64,
    },
    /// A tensor operation failed.
    #[error("engine: {0}")]
    Tensor(String),
    /// The engine thread is gone.
    #[error("engine thread stopped")]
    Stopped,
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Tensor(e.to_string().lines().next().unwrap_or_default().to_string())
    }
}

fn gib(bytes: u64) -> String {
    format!(
        "{:.2} GiB ({bytes} bytes)",
        bytes as f64 / (1u64 << 30) as f64
    )
}
