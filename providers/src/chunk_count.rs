//! Tokenizer counts of streamed chunk texts, remembered per target.
//!
//! A stream without per-chunk usage is counted chunk by chunk with the tokenizer, so
//! that each token gets its own arrival time. Most chunks are one token's text, and
//! the same texts come back all through a run (" the", ",", " of"): running the whole
//! tokenizer pipeline (normalizer, pre-tokenizer regex, BPE, an `Encoding`) on each
//! cost about a third of the client's CPU per token (perf, slow single stream). A
//! tokenizer is a pure function of the text, so a remembered count is the count: the
//! memo changes the cost, never the figure.
//!
//! Bounds: texts of at most [`MAX_TEXT_BYTES`] bytes are remembered, at most
//! [`MAX_ENTRIES`] of them (the memo starts afresh when full), so it holds at most a
//! few MiB whatever the run.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::TokenizerChoice;

/// Longest chunk text remembered, bytes.
pub const MAX_TEXT_BYTES: usize = 48;
/// Most texts remembered.
pub const MAX_ENTRIES: usize = 1 << 15;

/// A tokenizer with a memo of its counts of short texts.
#[derive(Debug)]
pub struct ChunkCounter {
    tokenizer: TokenizerChoice,
    memo: Mutex<HashMap<Box<str>, u32>>,
}

impl ChunkCounter {
    /// Counts with `tokenizer`.
    pub fn new(tokenizer: TokenizerChoice) -> Self {
        Self {
            tokenizer,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// Tokens of `text` (exactly the tokenizer's count); `None` without a tokenizer.
    pub fn count(&self, text: &str) -> Option<u32> {
        if matches!(self.tokenizer, TokenizerChoice::None) {
            return None;
        }
        if text.len() > MAX_TEXT_BYTES {
            return self.tokenizer.count(text).map(saturate);
        }
        if let Some(&n) = self.lock().get(text) {
            return Some(n);
        }
        // Counted outside the lock: tasks streaming at once never wait on each
        // other's tokenizer runs.
        let n = saturate(self.tokenizer.count(text)?);
        let mut memo = self.lock();
        if memo.len() >= MAX_ENTRIES {
            memo.clear();
        }
        memo.insert(text.into(), n);
        Some(n)
    }

    /// Texts remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, u32>> {
        // A panic elsewhere cannot leave a wrong count behind: entries are whole.
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_counts_are_the_tokenizers_counts() {
        let c = ChunkCounter::new(TokenizerChoice::Embedded);
        let texts = [
            " the",
            ",",
            " of",
            " the",
            "Hello",
            " world!",
            "\n\n",
            " the",
            "",
            "ünïcödé",
            "a much longer chunk of text that is not remembered at all",
        ];
        for t in texts {
            let direct = TokenizerChoice::Embedded.count(t).map(saturate);
            assert_eq!(c.count(t), direct, "{t:?}");
            // Asked again: from the memo (or, for the long text, counted again).
            assert_eq!(c.count(t), direct, "{t:?}");
        }
        // Each distinct short text once; the long one never.
        assert_eq!(c.remembered(), 8);
    }

    #[test]
    fn without_a_tokenizer_there_is_no_count() {
        let c = ChunkCounter::new(TokenizerChoice::None);
        assert_eq!(c.count(" the"), None);
        assert_eq!(c.remembered(), 0);
    }

    #[test]
    fn the_memo_starts_afresh_when_full() {
        let c = ChunkCounter::new(TokenizerChoice::Embedded);
        for i in 0..=MAX_ENTRIES {
            c.count(&format!("{i}"));
        }
        assert_eq!(c.remembered(), 1);
        assert_eq!(
            c.count("12345"),
            TokenizerChoice::Embedded.count("12345").map(saturate)
        );
    }
}
