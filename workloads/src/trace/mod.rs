//! Trace replay: a workload whose requests and send times come from a recorded trace
//! (`load.arrival = "trace"` and a `[trace]` table) instead of distributions.
//!
//! Every trace request becomes one request of exactly its input and output length.
//! Its prompt is rebuilt from blocks: each block key stands for seeded synthetic text
//! (the same key, the same text, in every request that names it), so requests whose
//! leading keys are equal share that prefix token for token, as the traced requests
//! did. Formats without prefix information give each request a block of its own.
//! Send times are the trace's, from its first request in the window, times
//! `time_scale` (or rescaled to `load.rate_rps`); they are fixed before the run like
//! every open-loop schedule, so a slow target never delays a send.

mod formats;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::digest::derive_seed;
use crate::text::{synthetic_text, words_text};
use crate::{Message, Request, Role, WorkloadError};

/// The trace formats infermeter reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    /// Mooncake JSON lines (`timestamp` ms, `input_length`, `output_length`,
    /// `hash_ids`).
    Mooncake,
    /// BurstGPT CSV (`Timestamp` s, `Request tokens`, `Response tokens`).
    Burstgpt,
    /// Azure LLM inference trace CSV (`TIMESTAMP`, `ContextTokens`,
    /// `GeneratedTokens`).
    Azure,
    /// infermeter's own `requests.jsonl` (a recorded run).
    RequestsJsonl,
}

/// The `[trace]` table of a workload spec.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The file's format.
    pub format: TraceFormat,
    /// The file; relative paths are relative to the workload file (resolved to an
    /// absolute path when the spec is loaded).
    pub path: String,
    /// SHA-256 (hex) of the file. Filled in when the trace is read; a value written in
    /// the spec pins the file (a different file is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Multiplies the trace's times (0.5 replays twice as fast). Ignored when
    /// `load.rate_rps` is given: the times are then scaled to that mean rate.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Replay only requests at or after this trace time, seconds from its first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_s: Option<f64>,
    /// Replay only requests before this trace time, seconds from its first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f64>,
    /// Prompt tokens per `hash_ids` block (Mooncake: 512).
    #[serde(default = "default_block_tokens")]
    pub block_tokens: u32,
    /// The requests read from the file (not part of the spec's JSON).
    #[serde(skip)]
    #[schemars(skip)]
    pub loaded: Option<Arc<Trace>>,
}

impl PartialEq for TraceSpec {
    /// Specs are equal when they say the same (the loaded file is named by its digest).
    fn eq(&self, o: &Self) -> bool {
        self.format == o.format
            && self.path == o.path
            && self.sha256 == o.sha256
            && self.time_scale == o.time_scale
            && self.start_s == o.start_s
            && self.end_s == o.end_s
            && self.block_tokens == o.block_tokens
    }
}

fn one() -> f64 {
    1.0
}

fn default_block_tokens() -> u32 {
    512
}

/// One request of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRequest {
    /// Trace time, seconds after the trace's first request.
    pub at_s: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens to generate.
    pub output_tokens: u32,
    /// The prompt's blocks in order; their tokens sum to `input_tokens`.
    pub blocks: Vec<Block>,
}

/// A run of prompt tokens standing for the same text wherever its key appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Identity of the text.
    pub key: u64,
    /// Tokens of it used here (a last block may be cut short: its text is then the
    /// start of the full block's).
    pub tokens: u32,
}

/// The key of `value` in `domain` (Mooncake ids, prefix ids, one request's own text),
/// so that keys of different domains never meet.
pub(crate) fn block_key(domain: &str, value: u64) -> u64 {
    derive_seed(0, domain, value)
}

/// A trace as read from its file.
#[derive(Debug, PartialEq)]
pub struct Trace {
    /// Every request, in time order.
    pub requests: Vec<TraceRequest>,
    /// Rows not replayed, by reason.
    pub skipped: Vec<(String, u64)>,
    /// SHA-256 (hex) of the file.
    pub sha256: String,
}

fn invalid(origin: &str, field: &str, message: String) -> WorkloadError {
    WorkloadError::Invalid {
        origin: origin.to_string(),
        field: field.to_string(),
        message,
    }
}

impl TraceSpec {
    /// Checks the options' ranges (the file is checked when read).
    pub fn validate(&self, origin: &str) -> Result<(), WorkloadError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1e6) {
            return Err(invalid(
                origin,
                "trace.time_scale",
                format!(
                    "must be a number above 0 and at most 1e6, got {}",
                    self.time_scale
                ),
            ));
        }
        for (field, v) in [("trace.start_s", self.start_s), ("trace.end_s", self.end_s)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(invalid(
                    origin,
                    field,
                    format!("must be >= 0 seconds, got {v}"),
                ));
            }
        }
        if let (Some(a), Some(b)) = (self.start_s, self.end_s)
            && b <= a
        {
            return Err(invalid(
                origin,
                "trace.end_s",
                format!("{b} is not after start_s {a}"),
            ));
        }
        if self.block_tokens == 0 || self.block_tokens > 1 << 20 {
            return Err(invalid(
                origin,
                "trace.block_tokens",
                format!("must be from 1 to {}, got {}", 1 << 20, self.block_tokens),
            ));
        }
        if self.path.trim().is_empty() {
            return Err(invalid(origin, "trace.path", "is empty".into()));
        }
        Ok(())
    }

    /// Reads the trace file (relative paths from `base`), checks its digest against a
    /// pinned one, and keeps the requests; `path` becomes absolute and `sha256` is set.
    pub fn load(&mut self, base: &Path, origin: &str) -> Result<(), WorkloadError> {
        let crate::pinned::PinnedFile {
            shown,
            sha256,
            text,
        } = crate::pinned::read(&self.path, self.sha256.as_deref(), base, origin, "trace")?;
        let parsed = formats::parse(self.format, &text, self.block_tokens).map_err(|m| {
            WorkloadError::Parse {
                origin: format!("{origin}: trace {shown}"),
                message: m,
            }
        })?;
        if parsed.requests.is_empty() {
            return Err(invalid(
                origin,
                "trace.path",
                format!("{shown} holds no request to replay"),
            ));
        }
        let lo = self.start_s.unwrap_or(0.0);
        let hi = self.end_s.unwrap_or(f64::INFINITY);
        if !parsed.requests.iter().any(|r| r.at_s >= lo && r.at_s < hi) {
            let span = parsed.requests.last().map_or(0.0, |r| r.at_s);
            return Err(invalid(
                origin,
                "trace.start_s",
                format!(
                    "the window [{lo}, {hi}) s holds no request of {shown} (it spans 0 to {span:.3} s)"
                ),
            ));
        }
        self.path = shown;
        self.sha256 = Some(sha256.clone());
        self.loaded = Some(Arc::new(Trace {
            requests: parsed.requests,
            skipped: parsed.skipped,
            sha256,
        }));
        Ok(())
    }

    /// The requests of the window (at most `cap`, 0 = all) and their send offsets in
    /// seconds (the first at 0): trace times times `time_scale`, or scaled so the mean
    /// rate is `rate_rps`.
    pub fn select(&self, cap: u64, rate_rps: Option<f64>) -> (Vec<&TraceRequest>, Vec<f64>) {
        let Some(trace) = &self.loaded else {
            return (Vec::new(), Vec::new());
        };
        let lo = self.start_s.unwrap_or(0.0);
        let hi = self.end_s.unwrap_or(f64::INFINITY);
        let mut chosen: Vec<&TraceRequest> = trace
            .requests
            .iter()
            .filter(|r| r.at_s >= lo && r.at_s < hi)
            .collect();
        if cap > 0 {
            chosen.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        }
        let t0 = chosen.first().map_or(0.0, |r| r.at_s);
        let span = chosen.last().map_or(0.0, |r| r.at_s - t0);
        let scale = match rate_rps {
            // n requests at rate r span (n - 1) / r seconds.
            Some(r) if span > 0.0 && chosen.len() > 1 => (chosen.len() - 1) as f64 / (r * span),
            _ => self.time_scale,
        };
        let offsets = chosen.iter().map(|r| (r.at_s - t0) * scale).collect();
        (chosen, offsets)
    }
}

/// Facts about a trace's replayed window (for `workloads show` and the docs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceFacts {
    /// Requests replayed.
    pub requests: u64,
    /// Seconds from the first to the last send.
    pub span_s: f64,
    /// Prompt tokens in all.
    pub input_tokens: u64,
    /// Prompt tokens in blocks an earlier request of the window already sent: what a
    /// prefix cache that never evicts would serve.
    pub reusable_input_tokens: u64,
}

/// Facts about `requests` sent at `offsets`.
pub fn facts(requests: &[&TraceRequest], offsets: &[f64]) -> TraceFacts {
    let mut seen: std::collections::HashSet<Vec<u64>> = std::collections::HashSet::new();
    let mut reusable = 0u64;
    for r in requests {
        let mut path = Vec::with_capacity(r.blocks.len());
        let mut shared = true;
        for b in &r.blocks {
            path.push(b.key);
            // A block is reusable when the same leading path of blocks was sent
            // before (only the full path identifies a cached prefix).
            if shared && seen.contains(&path) {
                reusable += u64::from(b.tokens);
            } else {
                shared = false;
                seen.insert(path.clone());
            }
        }
    }
    TraceFacts {
        requests: requests.len() as u64,
        span_s: offsets.last().copied().unwrap_or(0.0),
        input_tokens: requests.iter().map(|r| u64::from(r.input_tokens)).sum(),
        reusable_input_tokens: reusable,
    }
}

/// Builds the prompts of trace requests from their blocks, each block's text seeded
/// from (stream seed, key) and made once.
pub struct PromptBuilder {
    seed: u64,
    domain: &'static str,
    blocks: HashMap<u64, Vec<u32>>,
}

impl PromptBuilder {
    /// A builder whose block texts come from `seed` in `domain` (the measured stream
    /// and its warm-up use different domains, so warm-up never fills the cache with
    /// the measured prefixes).
    pub fn new(seed: u64, domain: &'static str) -> Self {
        Self {
            seed,
            domain,
            blocks: HashMap::new(),
        }
    }

    fn block(&mut self, b: Block) -> &[u32] {
        let ids = self.blocks.entry(b.key).or_default();
        if ids.len() < b.tokens as usize {
            // One draw per token: a longer text of the same seed starts with the
            // shorter one, so a cut block is the start of the full one.
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, self.domain, b.key));
            *ids = synthetic_text(&mut rng, b.tokens as usize).1;
        }
        &ids[..b.tokens as usize]
    }

    /// Request `id` (also its session) of the trace request `r`.
    pub fn request(&mut self, id: u64, r: &TraceRequest) -> Request {
        let mut token_ids = Vec::with_capacity(r.input_tokens as usize);
        for b in &r.blocks {
            token_ids.extend_from_slice(self.block(*b));
        }
        let text = words_text(&token_ids).unwrap_or_default();
        Request {
            id,
            session: id,
            call: 0,
            session_seed: derive_seed(self.seed, self.domain, id),
            messages: vec![Arc::new(Message {
                role: Role::User,
                text,
                token_ids,
            })],
            max_output_tokens: r.output_tokens,
            prefix: None,
            think_ms: 0.0,
            check: None,
        }
    }
}
