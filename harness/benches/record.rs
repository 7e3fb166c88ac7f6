//! Criterion benchmarks of metric recording, the client's per-request and per-token
//! work after the bytes arrive: stamping a streamed response's tokens and turning them
//! into per-token gaps (`RequestTimer`), folding a finished request into a load
//! point's histograms (`Aggregate::add`), and serializing its `requests.jsonl` line.
//!
//! `cargo bench -p infermeter --bench record`. Throughput is in output tokens per
//! second for the timer, in requests per second for the others.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use infermeter::collector::Aggregate;
use infermeter::record::RequestRecord;
use infermeter::timer::RequestTimer;
use tokio::time::Instant;
use workloads::StreamSink;

/// A finished request of `tokens` output tokens, one per chunk, 5 ms apart.
fn record(tokens: usize) -> RequestRecord {
    let gaps: Vec<f64> = (1..tokens).map(|i| 5.0 + (i % 7) as f64 * 0.01).collect();
    let line = serde_json::json!({
        "workload": "chat-short", "target": "openai m unknown", "seed": 1, "request": 7,
        "session": 7, "call": 0, "scheduled_s": 1.0, "sent_s": 1.0001, "queue_ms": 0.1,
        "ttft_ms": 40.0, "ttft_answer_ms": 40.0, "ttft_from_intended_ms": 40.1,
        "e2e_ms": 40.0 + 5.0 * (tokens - 1) as f64, "tpot_ms": 5.0,
        "input_tokens": 512, "input_source": "server_usage", "tokenizer_input_tokens": 512,
        "input_capped": false, "max_output_tokens": tokens, "output_tokens": tokens,
        "output_source": "server_usage", "tokenizer_output_tokens": tokens,
        "server_usage": {"input_tokens": 512, "output_tokens": tokens, "cached_input_tokens": null, "reasoning_tokens": null},
        "chunk_tokens": "tokenizer", "reconciled": false, "reasoning_tokens": 0,
        "chunks": tokens, "finish_reason": "length", "retries": 0, "retry_wait_ms": 0.0,
        "status": "ok", "error_class": null, "error": null,
        "itl_ms": gaps, "chunk_gap_ms": gaps,
    });
    serde_json::from_value(line).expect("a valid record")
}

fn timer(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/timer");
    for tokens in [16u32, 256] {
        group.throughput(Throughput::Elements(u64::from(tokens)));
        group.bench_with_input(
            BenchmarkId::new("stamp_and_itl", tokens),
            &tokens,
            |b, &n| {
                b.iter(|| {
                    let mut t = RequestTimer::new(Instant::now());
                    t.on_send();
                    for _ in 0..n {
                        t.on_bytes(180);
                        t.on_tokens(1);
                    }
                    t.on_complete();
                    t.itl(Some(n)).0.len()
                });
            },
        );
    }
    group.finish();
}

fn aggregate(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/aggregate");
    group.throughput(Throughput::Elements(1));
    for tokens in [16usize, 256] {
        let r = record(tokens);
        group.bench_with_input(BenchmarkId::new("add", tokens), &r, |b, r| {
            let mut agg = Aggregate::default();
            b.iter(|| agg.add(r));
        });
        group.bench_with_input(BenchmarkId::new("jsonl_line", tokens), &r, |b, r| {
            let mut buf = Vec::with_capacity(16 << 10);
            b.iter(|| {
                buf.clear();
                serde_json::to_writer(&mut buf, r).expect("serializable");
                buf.len()
            });
        });
    }
    group.finish();
}

fn tokenizer(c: &mut Criterion) {
    // What a remote target does per chunk when the server sends no per-chunk usage:
    // count the chunk's text with the embedded tokenizer.
    let mut group = c.benchmark_group("record/tokenizer");
    group.throughput(Throughput::Elements(1));
    for text in [
        " the",
        " performance",
        "\n\nHere is a longer chunk, of several tokens.",
    ] {
        group.bench_with_input(
            BenchmarkId::new("count_chunk", text.len()),
            &text,
            |b, t| {
                b.iter(|| workloads::text::count_tokens(t));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, timer, aggregate, tokenizer);
criterion_main!(benches);
