//! Remote targets: OpenAI-compatible servers (vLLM, SGLang, llama.cpp, hosted APIs) and
//! Anthropic's Messages API, behind the same [`workloads::Backend`] contract as the
//! local engine.
//!
//! Not implemented yet: this build has no remote target (issue #4 adds them, with SSE
//! parsing, usage normalisation, retries, rate limits and secret handling). The crate
//! exists so the workspace has its final shape: `providers` depends on `workloads`
//! only, never on `kernels`, and `harness` picks targets from both.

/// Target kinds this crate provides (none in this build).
pub const KINDS: &[&str] = &[];
