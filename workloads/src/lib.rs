//! What infermeter sends, and the contract every target implements.
//!
//! - [`contract`]: the [`Backend`] trait, [`Request`], [`StreamSink`], [`Completion`]
//!   and [`BackendError`]: local engines and remote providers are peers behind it.
//! - [`spec`] and [`suite`]: versioned workload specs (TOML) and the standard suite
//!   embedded in the binary.
//! - [`generate`]: seeded, deterministic request streams (same spec + seed =
//!   byte-identical stream, proven by its SHA-256 digest).
//! - [`text`]: synthetic prompt text whose token length is exact under the embedded
//!   SmolLM2 tokenizer.
//! - [`arrival`]: arrival processes (Poisson, constant, gamma, closed loop, all at once).
//! - [`settings`]: the typed keys of target specs, declared by each target kind.
//! - [`bounds`]: the bounds of every duration, rate and count, and their validators.
//! - [`digest`]: hex and derived seeds, below everything.
//! - [`pinned`]: files a spec names, read and checked against a pinned digest.
//! - [`trace`]: trace replay (Mooncake, BurstGPT, Azure, a recorded `requests.jsonl`).
//! - [`tasks`] and [`check`]: verifiable tasks (generated or from a file) and the
//!   checkers their replies are graded by.

pub mod arrival;
pub mod bounds;
pub mod check;
pub mod contract;
pub mod digest;
pub mod error;
pub mod eval_text;
pub mod generate;
pub mod pinned;
pub mod settings;
pub mod spec;
pub mod suite;
pub mod tasks;
pub mod text;
pub mod trace;

pub use contract::*;
pub use error::WorkloadError;
pub use results::{ErrorClass, TargetInfo, TokenSource};
