//! Synthetic prompt text of exact token length under the embedded tokenizer.
//!
//! The tokenizer is SmolLM2's byte-level BPE (49,152 tokens), embedded in the binary
//! (see `ci/tools/gguf_to_tokenizer.py` for its provenance). Prompts are made of words
//! that each encode to exactly one token with their leading space (` the`, ` model`,
//! ...); since the pre-tokenizer splits at spaces, a text of N such words encodes to
//! exactly those N tokens, so token ids and text agree by construction, and a test
//! checks it with the real encoder.

use std::io::Read as _;
use std::sync::OnceLock;

use flate2::read::GzDecoder;
use rand::Rng;
use tokenizers::Tokenizer;

static TOKENIZER_GZ: &[u8] = include_bytes!("../data/smollm2-135m.tokenizer.json.gz");

/// Name of the embedded tokenizer, recorded in reports.
pub const TOKENIZER_NAME: &str = "smollm2-135m";

/// The embedded tokenizer (parsed once).
pub fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut json = Vec::new();
        GzDecoder::new(TOKENIZER_GZ)
            .read_to_end(&mut json)
            .expect("the embedded tokenizer is valid gzip");
        Tokenizer::from_bytes(&json).expect("the embedded tokenizer is valid")
    })
}

/// Counts the tokens of `text` with the embedded tokenizer (no special tokens added).
pub fn count_tokens(text: &str) -> usize {
    tokenizer()
        .encode_fast(text, false)
        .map(|e| e.len())
        .unwrap_or(0)
}

/// The token ids of `text` under the embedded tokenizer (no special tokens added).
pub fn encode(text: &str) -> Vec<u32> {
    tokenizer()
        .encode_fast(text, false)
        .map(|e| e.get_ids().to_vec())
        .unwrap_or_default()
}

/// The text of token ids under the embedded tokenizer (special tokens skipped);
/// `None` when an id is outside its vocabulary.
pub fn decode(ids: &[u32]) -> Option<String> {
    tokenizer().decode(ids, true).ok()
}

/// Words that are one token each, with their token id.
pub struct WordTable {
    /// (word with its leading space, token id), sorted by id.
    pub words: Vec<(String, u32)>,
}

/// The word table (built once from the vocabulary, each entry checked by encoding).
pub fn words() -> &'static WordTable {
    static WORDS: OnceLock<WordTable> = OnceLock::new();
    WORDS.get_or_init(|| {
        let tok = tokenizer();
        let mut candidates: Vec<(String, u32)> = tok
            .get_vocab(false)
            .into_iter()
            .filter_map(|(piece, id)| {
                // 'Ġ' is the byte-level BPE's visible form of a leading space.
                let word = piece.strip_prefix('Ġ')?;
                let plain =
                    (3..=9).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase());
                plain.then(|| (format!(" {word}"), id))
            })
            .collect();
        candidates.sort_by_key(|&(_, id)| id);
        let words: Vec<(String, u32)> = candidates
            .into_iter()
            .filter(|(w, id)| {
                tok.encode_fast(w.as_str(), false)
                    .map(|e| e.get_ids() == [*id])
                    .unwrap_or(false)
            })
            .collect();
        assert!(
            words.len() > 1000,
            "the embedded vocabulary yields enough single-token words"
        );
        WordTable { words }
    })
}

/// `n` tokens of synthetic text drawn from `rng`: the text and its token ids.
pub fn synthetic_text(rng: &mut impl Rng, n: usize) -> (String, Vec<u32>) {
    let table = &words().words;
    let mut text = String::with_capacity(n * 7);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let (w, id) = &table[rng.random_range(0..table.len())];
        text.push_str(w);
        ids.push(*id);
    }
    (text, ids)
}

/// The text of token ids drawn from the word table (`None` if an id is not a word).
pub fn words_text(ids: &[u32]) -> Option<String> {
    let table = &words().words;
    let mut text = String::with_capacity(ids.len() * 7);
    for id in ids {
        let i = table.binary_search_by_key(id, |&(_, wid)| wid).ok()?;
        text.push_str(&table[i].0);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn tokenizer_matches_the_model_vocabulary() {
        let tok = tokenizer();
        assert_eq!(tok.get_vocab_size(true), 49_152);
        assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
        // Digits are split one by one (the `smollm` pre-tokenizer).
        assert_eq!(count_tokens("2026"), 4);
        assert_eq!(count_tokens(""), 0);
    }

    proptest! {
        #[test]
        fn synthetic_text_encodes_to_its_ids(seed in any::<u64>(), n in 0usize..300) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (text, ids) = synthetic_text(&mut rng, n);
            prop_assert_eq!(ids.len(), n);
            let enc = tokenizer().encode_fast(text.as_str(), false).unwrap();
            prop_assert_eq!(enc.get_ids(), ids.as_slice());
            prop_assert_eq!(words_text(&ids).unwrap(), text);
        }
    }
}
