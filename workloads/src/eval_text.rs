//! The evaluation text of `--quality`: English prose written for this project
//! (`data/eval-en-v1.txt`, about 880 words: a harbor town, a tide ledger, what
//! measurement owes to care), tokenized with the embedded tokenizer and cut into
//! consecutive windows that models are teacher-forced over. A new text is a new
//! version (`-v2`): figures over different texts are not comparable.

use crate::digest::hex;
use crate::text::tokenizer;
use sha2::{Digest, Sha256};

/// Name and version of the evaluation text, recorded in reports.
pub const EVAL_TEXT_NAME: &str = "infermeter-eval-en-v1";

/// The text.
pub const EVAL_TEXT: &str = include_str!("../data/eval-en-v1.txt");

/// Tokens per window by default.
pub const DEFAULT_WINDOW_TOKENS: usize = 128;

/// Windows by default (4 x 128 tokens: 508 positions scored).
pub const DEFAULT_WINDOWS: usize = 4;

/// The text's token ids (embedded tokenizer, no special tokens).
pub fn eval_tokens() -> Vec<u32> {
    tokenizer()
        .encode_fast(EVAL_TEXT, false)
        .map(|e| e.get_ids().to_vec())
        .unwrap_or_default()
}

/// The first `windows` consecutive windows of `window_tokens` tokens of the text
/// (fewer when the text runs out; a window is never partial).
pub fn eval_windows(window_tokens: usize, windows: usize) -> Vec<Vec<u32>> {
    eval_tokens()
        .chunks_exact(window_tokens.max(2))
        .take(windows)
        .map(<[u32]>::to_vec)
        .collect()
}

/// SHA-256 of `windows` as scored (each id little-endian, each window's length
/// first), so that a change of text, tokenizer or windowing changes it.
pub fn windows_sha256(windows: &[Vec<u32>]) -> String {
    let mut h = Sha256::new();
    for w in windows {
        h.update((w.len() as u64).to_le_bytes());
        for t in w {
            h.update(t.to_le_bytes());
        }
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_text_gives_the_default_windows_whole() {
        let n = eval_tokens().len();
        assert!(n >= DEFAULT_WINDOWS * DEFAULT_WINDOW_TOKENS, "{n} tokens");
        let w = eval_windows(DEFAULT_WINDOW_TOKENS, DEFAULT_WINDOWS);
        assert_eq!(w.len(), DEFAULT_WINDOWS);
        assert!(w.iter().all(|w| w.len() == DEFAULT_WINDOW_TOKENS));
        // Consecutive: the second window starts where the first ended.
        assert_eq!(w[1][0], eval_tokens()[DEFAULT_WINDOW_TOKENS]);
        // More windows than the text holds: only whole ones.
        let all = eval_windows(DEFAULT_WINDOW_TOKENS, 1000);
        assert_eq!(all.len(), n / DEFAULT_WINDOW_TOKENS);
    }

    #[test]
    fn the_digest_follows_the_tokens_and_the_windowing() {
        let a = windows_sha256(&eval_windows(128, 2));
        assert_eq!(a, windows_sha256(&eval_windows(128, 2)));
        assert_ne!(
            a,
            windows_sha256(&eval_windows(64, 4)),
            "same ids, cut apart"
        );
        assert_ne!(a, windows_sha256(&eval_windows(128, 3)));
    }
}
