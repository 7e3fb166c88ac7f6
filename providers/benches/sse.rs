//! Criterion benchmarks of the streaming hot path of remote targets: SSE framing of an
//! OpenAI-compatible stream as it arrives in reads of various sizes, and framing plus
//! decoding each event's JSON into token pieces (what the client does per chunk).
//!
//! `cargo bench -p infermeter-providers --bench sse`. Throughput is in stream bytes per
//! second; divide by the bytes of one event (printed in the benchmark's name) for
//! events per second.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use infermeter_providers::codec::{Codec, Piece};
use infermeter_providers::openai::OpenAiCodec;
use infermeter_providers::sse::{SseEvent, SseParser};

/// A chat-completions stream of `tokens` content events (one token each), the finish
/// event, usage and the terminator, as vLLM sends it.
fn stream(tokens: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..tokens {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n");
    s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{{\"prompt_tokens\":32,\"completion_tokens\":{tokens},\"total_tokens\":{}}}}}\n\n", tokens + 32));
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn framing(c: &mut Criterion) {
    let bytes = stream(256);
    let mut group = c.benchmark_group("sse/frame");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    // Reads of one event (a server flushing every token), of 1 KiB, and of everything.
    let event = bytes.len() / 259;
    for read in [event, 1024, bytes.len()] {
        group.bench_with_input(BenchmarkId::new("read_bytes", read), &read, |b, &read| {
            let mut events = Vec::with_capacity(512);
            b.iter(|| {
                let mut p = SseParser::new(1 << 20);
                events.clear();
                for piece in bytes.chunks(read) {
                    p.push(piece, &mut events).expect("valid stream");
                }
                events.len()
            });
        });
    }
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let bytes = stream(256);
    let mut parsed: Vec<SseEvent> = Vec::new();
    SseParser::new(1 << 20)
        .push(&bytes, &mut parsed)
        .expect("valid stream");
    let mut group = c.benchmark_group("sse/decode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("openai_chat_256_tokens", |b| {
        let mut pieces: Vec<Piece> = Vec::with_capacity(512);
        b.iter(|| {
            let mut codec = OpenAiCodec;
            pieces.clear();
            for ev in &parsed {
                if ev.data != "[DONE]" {
                    codec.decode_event(ev, &mut pieces).expect("valid event");
                }
            }
            pieces.len()
        });
    });
    group.finish();
}

criterion_group!(benches, framing, decoding);
criterion_main!(benches);
