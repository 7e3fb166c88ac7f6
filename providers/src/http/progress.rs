//! What one response has produced so far: its text, usage, finish, and how its
//! tokens were counted.

use workloads::ChunkTokens;

use crate::codec::Usage;

/// What a response has produced so far.
pub(super) struct Progress {
    pub(super) answer: String,
    pub(super) reasoning: String,
    pub(super) usage: Usage,
    pub(super) finish: Option<String>,
    pub(super) done: bool,
    pub(super) chunk_tokens: Option<ChunkTokens>,
    pub(super) tokens: u32,
    /// Texts that carried at least one token (one per token-bearing chunk and kind).
    pub(super) token_texts: u32,
    /// The last cumulative output count seen on a content chunk.
    pub(super) usage_seen: Option<u32>,
    /// Whether the server sends usage on every content chunk, decided by the first
    /// one: only then is usage on a content chunk a per-chunk count (a server that
    /// puts its final total on the last content chunk must not have it counted there).
    pub(super) usage_per_chunk: Option<bool>,
}

impl Progress {
    pub(super) fn new() -> Self {
        Self {
            answer: String::new(),
            reasoning: String::new(),
            usage: Usage::default(),
            finish: None,
            done: false,
            chunk_tokens: None,
            tokens: 0,
            token_texts: 0,
            usage_seen: None,
            usage_per_chunk: None,
        }
    }

    pub(super) fn note_source(&mut self, s: ChunkTokens) {
        // A stream that switches counting method is reported as its weakest one.
        let rank = |c: ChunkTokens| match c {
            ChunkTokens::Engine
            | ChunkTokens::UsageDelta
            | ChunkTokens::Logprobs
            | ChunkTokens::Unstreamed => 0,
            ChunkTokens::Tokenizer => 1,
            ChunkTokens::OnePerChunk => 2,
        };
        if self.chunk_tokens.is_none_or(|c| rank(s) > rank(c)) {
            self.chunk_tokens = Some(s);
        }
    }
}
