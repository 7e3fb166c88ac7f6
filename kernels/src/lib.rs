//! The embedded local engine: model presets, weights (GGUF files or seeded synthetic
//! weights), a Llama-architecture decoder, and the engine thread that serves many
//! sequences at once by batching their decode steps.
//!
//! The CPU path runs on candle-core everywhere; the CUDA path (a later issue) plugs
//! into the same [`engine`] through the model's small op surface.

pub mod backend;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod preset;
pub mod weights;

pub use backend::{LocalCpuBackend, LocalCpuConfig, WeightsChoice, default_model_dirs};
pub use error::EngineError;
pub use preset::{ModelPreset, Precision};
