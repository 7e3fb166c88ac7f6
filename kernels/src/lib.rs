//! The embedded local engine: model configs and presets (dense and mixture-of-experts),
//! weight formats, a host weight store (GGUF files or seeded synthetic weights), and a
//! device-neutral runtime (forward pass, paged KV cache with prefix reuse, continuous
//! batching) over a small op set that each device implements.
//!
//! One backend serves every device ([`backend::LocalBackend`] over a
//! [`device::LocalDevice`]). The CPU device runs on candle-core everywhere; the CUDA
//! device ([`cuda`]: kernel sources compiled at run time with NVRTC) implements the
//! same [`ops::DeviceOps`].

pub mod backend;
pub mod config;
pub mod convert;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod engine;
pub mod error;
pub mod fidelity;
pub mod format;
pub mod measure;
pub mod memory;
pub mod ops;
pub mod preset;
pub mod profile;
pub mod roofline;
pub mod runtime;
pub mod weights;

pub use backend::{LocalBackend, LocalConfig, LocalCpuBackend, WeightsChoice, default_model_dirs};
pub use config::ModelConfig;
pub use device::LocalDevice;
pub use error::EngineError;
pub use format::Precision;
pub use preset::{PRESETS, preset};
