//! Remote targets: OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp, Ollama,
//! hosted APIs) and Anthropic's Messages API, behind the same [`workloads::Backend`]
//! contract as the local engine.
//!
//! - [`config`]: a target's settings, validated (secrets only by environment variable
//!   name).
//! - [`http`]: the [`HttpBackend`]: connection pool, retries, timeouts, stream reading
//!   with arrival-time stamping and per-chunk token counting ([`chunk_count`]: the
//!   tokenizer's counts of chunk texts, remembered).
//! - [`sse`]: server-sent events framing; [`codec`]: the [`codec::Protocol`] seam
//!   (one per API: [`openai`] chat and completions, [`anthropic`] messages) and the
//!   decoded pieces of a response; [`protocols`]: the protocol of each API.
//! - [`retry`]: `Retry-After` and backoff; [`secret`]: the API key and its scrubbing.
//!
//! The scripted fault-injecting loopback server that the tests drive is a crate of
//! its own (`providers/scripted`, `infermeter-scripted`).
//!
//! `providers` depends on `workloads` only, never on `kernels`; `harness` picks
//! targets from both, through its registry of target kinds.

pub mod anthropic;
pub mod chunk_count;
pub mod codec;
pub mod config;
pub mod error;
pub mod http;
pub mod openai;
pub mod preflight;
pub mod protocols;
pub mod retry;
pub mod secret;
pub mod sse;

pub use config::{ANTHROPIC_KEYS, HttpTargetConfig, Kind, OPENAI_KEYS};
pub use error::ProviderError;
pub use http::HttpBackend;
