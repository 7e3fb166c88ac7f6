//! Remote targets: OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp, Ollama,
//! hosted APIs) and Anthropic's Messages API, behind the same [`workloads::Backend`]
//! contract as the local engine.
//!
//! - [`config`]: a target's settings, validated (secrets only by environment variable
//!   name).
//! - [`http`]: the [`HttpBackend`]: connection pool, retries, timeouts, stream reading
//!   with arrival-time stamping and per-chunk token counting ([`chunk_count`]: the
//!   tokenizer's counts of chunk texts, remembered).
//! - [`sse`]: server-sent events framing; [`codec`], [`openai`], [`anthropic`]: the
//!   wire formats.
//! - [`retry`]: `Retry-After` and backoff; [`secret`]: the API key and its scrubbing.
//! - [`scripted`]: the project's fault-injecting loopback server, which the tests (and
//!   anyone checking the harness's timing) drive with a script.
//!
//! `providers` depends on `workloads` only, never on `kernels`; `harness` picks
//! targets from both.

pub mod anthropic;
pub mod chunk_count;
pub mod codec;
pub mod config;
pub mod error;
pub mod http;
pub mod openai;
pub mod retry;
pub mod scripted;
pub mod secret;
pub mod sse;

pub use config::{HttpTargetConfig, Kind};
pub use error::ProviderError;
pub use http::HttpBackend;

/// Target kinds this crate provides.
pub const KINDS: &[&str] = &["openai", "anthropic"];

/// Builds the target of `kind` (one of [`KINDS`]) from its settings.
pub fn build(
    kind: &str,
    settings: &std::collections::BTreeMap<String, String>,
) -> Option<Result<HttpBackend, ProviderError>> {
    let kind = match kind {
        "openai" => Kind::OpenAi,
        "anthropic" => Kind::Anthropic,
        _ => return None,
    };
    Some(HttpBackend::new(kind, settings))
}
