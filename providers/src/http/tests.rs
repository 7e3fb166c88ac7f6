//! Unit tests of the HTTP backend's pure parts.

use super::*;

/// Records the counts the sink is given.
#[derive(Default)]
struct Counts(Vec<u32>);

impl StreamSink for Counts {
    fn on_bytes(&mut self, _n: usize) {}
    fn on_tokens(&mut self, count: u32) {
        self.0.push(count);
    }
    fn on_tokens_at(&mut self, _at: std::time::Instant, count: u32) {
        self.0.push(count);
    }
}

fn backend() -> HttpBackend {
    let settings = BTreeMap::from([
        ("base_url".to_string(), "http://127.0.0.1:1/v1".to_string()),
        ("model".to_string(), "m".to_string()),
    ]);
    HttpBackend::new(Kind::OpenAi, &settings).unwrap()
}

fn chunk(text: &str, output: Option<u32>) -> Vec<Piece> {
    let mut v = vec![Piece::Text(TextKind::Answer, text.into())];
    if let Some(o) = output {
        v.push(Piece::Usage(Usage {
            output: Some(o),
            ..Usage::default()
        }));
    }
    v
}

#[test]
fn usage_on_every_chunk_counts_each_chunk() {
    let (b, mut p, mut sink) = (backend(), Progress::new(), Counts::default());
    for (text, cum) in [(" the", 1), (" the the", 3), (" the", 4)] {
        b.apply(&mut chunk(text, Some(cum)), &mut p, &mut sink)
            .unwrap();
    }
    assert_eq!(sink.0, vec![1, 2, 1]);
    assert_eq!(p.chunk_tokens, Some(ChunkTokens::UsageDelta));
}

#[test]
fn a_final_total_on_the_last_content_chunk_is_not_that_chunks_count() {
    let (b, mut p, mut sink) = (backend(), Progress::new(), Counts::default());
    b.apply(&mut chunk(" the the", None), &mut p, &mut sink)
        .unwrap();
    b.apply(&mut chunk(" the", Some(3)), &mut p, &mut sink)
        .unwrap();
    // Tokenizer counts per chunk; the total (3) is kept for reconciliation.
    assert_eq!(sink.0, vec![2, 1]);
    assert_eq!(p.usage.output, Some(3));
    assert_eq!(p.chunk_tokens, Some(ChunkTokens::Tokenizer));
}

#[test]
fn without_usage_the_count_is_the_larger_of_tokenizer_and_token_bearing_chunks() {
    let (b, mut p, mut sink) = (backend(), Progress::new(), Counts::default());
    // One token per chunk whose text re-tokenizes into fewer tokens: "hel" + "lo".
    for text in ["hel", "lo", " world"] {
        b.apply(&mut chunk(text, None), &mut p, &mut sink).unwrap();
    }
    let whole = b.tokenizer_count(&p.answer, &p.reasoning).unwrap();
    assert!(whole < 3, "{whole}");
    assert_eq!(
        output_count(None, Some(whole), None, &p),
        (3, TokenSource::ChunkCount)
    );
    // Coalesced chunks: the tokenizer sees more tokens than chunks.
    let (mut q, mut sink) = (Progress::new(), Counts::default());
    b.apply(&mut chunk(" the the the the", None), &mut q, &mut sink)
        .unwrap();
    assert_eq!(
        output_count(None, Some(4), None, &q),
        (4, TokenSource::Tokenizer)
    );
    // A fixed length that ended by `length`: exactly that, however it was chunked.
    assert_eq!(
        output_count(None, Some(60), Some(64), &q),
        (64, TokenSource::RequestedLength)
    );
    // Far short of the length: not trusted (the server stopped for another reason).
    assert_eq!(
        output_count(None, Some(4), Some(64), &q),
        (4, TokenSource::Tokenizer)
    );
    // The server's usage always wins.
    assert_eq!(
        output_count(Some(7), Some(4), Some(64), &q),
        (7, TokenSource::ServerUsage)
    );
}

#[test]
fn an_empty_token_chunk_is_timed_where_it_arrived() {
    // vLLM sends a held-back token's chunk empty: it is an arrival of one token, not
    // folded into the next chunk that has text.
    let (b, mut p, mut sink) = (backend(), Progress::new(), Counts::default());
    for text in [" the", "", "", " end"] {
        b.apply(&mut chunk(text, None), &mut p, &mut sink).unwrap();
    }
    assert_eq!(sink.0, vec![1, 1, 1, 1]);
    assert_eq!(p.token_texts, 4);
    assert_eq!(p.answer, " the end");
}

#[test]
fn logprobs_give_each_chunk_its_exact_count() {
    let (b, mut p, mut sink) = (backend(), Progress::new(), Counts::default());
    for (text, n) in [(" the the", 2), ("", 1), (" the", 1)] {
        let mut pieces = vec![
            Piece::Logprobs(n),
            Piece::Text(TextKind::Answer, text.into()),
        ];
        b.apply(&mut pieces, &mut p, &mut sink).unwrap();
    }
    assert_eq!(sink.0, vec![2, 1, 1]);
    assert_eq!(p.chunk_tokens, Some(ChunkTokens::Logprobs));
}
