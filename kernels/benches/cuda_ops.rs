//! Criterion benchmarks of the CUDA device's ops, through the same `DeviceOps` the
//! engine calls, at Llama-3-8B's shapes: the decode GEMV (bf16, q8_0, q4_0) at batch
//! 1, 4 and 8 (`ffn_down` [4096, 14336]) and fused gate/up; decode attention over an
//! f16 cache at 1K, 8K and 32K context (32 query heads, 8 KV heads, head_dim 128,
//! batch 1); and a 2K-token prefill: the matrix product and the attention.
//!
//! `cargo bench -p infermeter-kernels --bench cuda_ops` on a GPU machine (or the
//! bench binary staged by `ci/tools/gpu_stage.sh`). Without a GPU every benchmark is
//! skipped, saying why. Each sample times its iterations between two stream
//! synchronisations. Throughput is in weight (or KV) bytes read per second, the figure
//! the roofline judges decode by.

#![allow(missing_docs)] // criterion's generated items

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use infermeter_kernels::Precision;
use infermeter_kernels::cuda::ops::CudaOps;
use infermeter_kernels::ops::{AttnSeq, DeviceOps, KvLayout};
use infermeter_kernels::roofline::seeded_matrix;

/// Times `iters` calls of `f`, the stream synchronised before and after.
fn timed(ops: &CudaOps, iters: u64, mut f: impl FnMut()) -> Duration {
    ops.synchronize().expect("synchronise");
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    ops.synchronize().expect("synchronise");
    t.elapsed()
}

/// `rows x cols` activations through the embedding op.
fn activations(ops: &CudaOps, rows: usize, cols: usize) -> <CudaOps as DeviceOps>::Act {
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    let table = ops.table(data, rows, cols).expect("table");
    let ids: Vec<u32> = (0..rows as u32).collect();
    ops.embed(&table, &ids).expect("embed")
}

fn gemv(c: &mut Criterion, ops: &CudaOps) {
    let (out, inp) = (4096usize, 14_336usize);
    let mut g = c.benchmark_group("gemv/llama3-8b.ffn_down");
    for p in [Precision::Bf16, Precision::Q8_0, Precision::Q4_0] {
        let host = seeded_matrix(out, inp, p, 3).expect("weights");
        let w = ops.weight(host).expect("upload");
        g.throughput(Throughput::Bytes(ops.weight_bytes(&w)));
        for batch in [1usize, 4, 8] {
            let x = activations(ops, batch, inp);
            g.bench_with_input(BenchmarkId::new(p.to_string(), batch), &batch, |b, _| {
                b.iter_custom(|n| timed(ops, n, || drop(ops.matmul(&x, &w).expect("matmul"))));
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("gate_up/llama3-8b");
    for p in [Precision::Bf16, Precision::Q4_0] {
        let gate = ops
            .weight(seeded_matrix(14_336, 4096, p, 4).expect("w"))
            .expect("upload");
        let up = ops
            .weight(seeded_matrix(14_336, 4096, p, 5).expect("w"))
            .expect("upload");
        g.throughput(Throughput::Bytes(2 * ops.weight_bytes(&gate)));
        for batch in [1usize, 8] {
            let x = activations(ops, batch, 4096);
            g.bench_with_input(BenchmarkId::new(p.to_string(), batch), &batch, |b, _| {
                b.iter_custom(|n| {
                    timed(ops, n, || {
                        drop(ops.gate_up_silu(&x, &gate, &up).expect("gate_up"))
                    })
                });
            });
        }
    }
    g.finish();
}

/// A KV cache of Llama-3-8B's layout holding `tokens` positions of one sequence in
/// blocks 0.. (one layer), and its block table.
fn filled_cache(ops: &CudaOps, tokens: usize) -> (<CudaOps as DeviceOps>::Kv, Vec<u32>) {
    let layout = KvLayout {
        layers: 1,
        blocks: tokens.div_ceil(16) + 1,
        block_size: 16,
        kv_heads: 8,
        head_dim: 128,
    };
    let mut kv = ops.kv_alloc(layout).expect("kv");
    let blocks: Vec<u32> = (0..layout.blocks as u32).collect();
    let mut start = 0;
    while start < tokens {
        let n = (tokens - start).min(4096);
        let k = activations(ops, n, 8 * 128);
        let slots: Vec<u32> = (start..start + n)
            .map(|p| layout.slot(&blocks, p) as u32)
            .collect();
        ops.kv_write(&mut kv, 0, &k, &k, &slots).expect("kv_write");
        start += n;
    }
    (kv, blocks)
}

fn attention(c: &mut Criterion, ops: &CudaOps) {
    let mut g = c.benchmark_group("decode_attention/llama3-8b");
    for ctx in [1024usize, 8192, 32_768] {
        let (kv, blocks) = filled_cache(ops, ctx);
        let q = activations(ops, 1, 32 * 128);
        // K and V of every position, f16.
        g.throughput(Throughput::Bytes((ctx * 8 * 128 * 2 * 2) as u64));
        let seqs = [AttnSeq {
            rows: 0..1,
            start: ctx - 1,
            blocks: &blocks,
        }];
        g.bench_with_input(BenchmarkId::from_parameter(ctx), &ctx, |b, _| {
            b.iter_custom(|n| {
                timed(ops, n, || {
                    drop(ops.attention(&kv, 0, &q, 32, &seqs).expect("attention"))
                })
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("prefill/llama3-8b.2k");
    let tokens = 2048usize;
    let (kv, blocks) = filled_cache(ops, tokens);
    let q = activations(ops, tokens, 32 * 128);
    let seqs = [AttnSeq {
        rows: 0..tokens,
        start: 0,
        blocks: &blocks,
    }];
    g.throughput(Throughput::Elements(tokens as u64));
    g.bench_function("attention", |b| {
        b.iter_custom(|n| {
            timed(ops, n, || {
                drop(ops.attention(&kv, 0, &q, 32, &seqs).expect("attention"))
            })
        });
    });
    let w = ops
        .weight(seeded_matrix(4096, 4096, Precision::Bf16, 6).expect("w"))
        .expect("upload");
    let x = activations(ops, tokens, 4096);
    g.bench_function("matmul_bf16_4096x4096", |b| {
        b.iter_custom(|n| timed(ops, n, || drop(ops.matmul(&x, &w).expect("matmul"))));
    });
    g.finish();
}

fn main() {
    let ops = match CudaOps::open(0) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cuda_ops: every benchmark skipped: {e}");
            return;
        }
    };
    // Defaults sized for one GPU session; the command line (`--measurement-time`,
    // `--sample-size`, `--warm-up-time`) overrides them.
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    gemv(&mut c, &ops);
    attention(&mut c, &ops);
    c.final_summary();
}
