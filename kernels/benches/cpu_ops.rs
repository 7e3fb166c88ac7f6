//! Criterion benchmarks of the CPU device's ops: matrix products per weight format at
//! real layer shapes (SmolLM2-135M's MLP as is, Llama-3-8B's scaled by 1/4 to fit a
//! CPU cache budget) for 1 and 8 rows, the quantized products with each kernel this CPU
//! runs (`qmatmul_kernels`), and attention over the paged KV cache at
//! several context lengths (SmolLM2-135M's heads: 9 query, 3 KV, head_dim 64).
//!
//! `cargo bench -p infermeter-kernels --bench cpu_ops` (add a filter such as
//! `matmul/q4_1` to run a part). Throughput of products is in weight bytes per
//! second (the bandwidth a decode step needs), of attention in context tokens per
//! second.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;
use std::time::Duration;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use infermeter_kernels::Precision;
use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::cpu::qmatmul::{Kernel, QMatrix};
use infermeter_kernels::ops::{AttnSeq, DeviceOps, KvLayout};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn tensor(data: Vec<f32>, rows: usize, cols: usize) -> Tensor {
    Tensor::from_vec(data, (rows, cols), &Device::Cpu).expect("tensor")
}

/// `[out, in]` shapes: (name, out, in).
const SHAPES: [(&str, usize, usize); 2] = [
    ("smollm2-135m.ffn_up", 1536, 576),
    ("llama3-8b/4.ffn_down", 1024, 3584),
];

fn matmul(c: &mut Criterion) {
    let ops = CpuOps::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut group = c.benchmark_group("matmul");
    for (name, out, inp) in SHAPES {
        let w = tensor(random(&mut rng, out * inp), out, inp);
        for p in [
            Precision::F16,
            Precision::Q8_0,
            Precision::Q4_0,
            Precision::Q4_1,
        ] {
            let q = QTensor::quantize(&w, p.ggml()).expect("quantize");
            let bytes = q.storage_size_in_bytes() as u64;
            let weight = ops.weight(Arc::new(q)).expect("weight");
            for rows in [1, 8] {
                let x = tensor(random(&mut rng, rows * inp), rows, inp);
                group.throughput(Throughput::Bytes(bytes));
                group.bench_with_input(
                    BenchmarkId::new(format!("{p}/{name}"), format!("rows={rows}")),
                    &x,
                    |b, x| b.iter(|| ops.scope(|| ops.matmul(x, &weight).expect("matmul"))),
                );
            }
        }
    }
    group.finish();
}

/// The quantized products with each kernel this CPU runs, on one machine in one process
/// (`qmatmul_kernels/<kernel>/...`): the numbers behind the kernel `Kernel::detect`
/// picks.
fn qmatmul_kernels(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("qmatmul_kernels");
    for (name, out, inp) in SHAPES {
        let w = tensor(random(&mut rng, out * inp), out, inp);
        for p in [Precision::Q8_0, Precision::Q4_1] {
            let q = QTensor::quantize(&w, p.ggml()).expect("quantize");
            let m = QMatrix::from_qtensor(&q).expect("repack");
            group.throughput(Throughput::Bytes(m.bytes()));
            for rows in [1, 8, 64] {
                let x = random(&mut rng, rows * inp);
                for kernel in Kernel::available() {
                    group.bench_with_input(
                        BenchmarkId::new(
                            format!("{}/{p}/{name}", kernel.name()),
                            format!("rows={rows}"),
                        ),
                        &x,
                        |b, x| b.iter(|| m.matmul_with(kernel, x, rows)),
                    );
                }
            }
        }
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    let ops = CpuOps::default();
    let (heads, kv_heads, head_dim, block_size) = (9, 3, 64, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("attention");
    for (ctx, seqs, rows) in [
        (256usize, 1usize, 1usize),
        (1024, 1, 1),
        (4096, 1, 1),
        (1024, 8, 1),
        (1024, 1, 64),
    ] {
        let per_seq = ctx.div_ceil(block_size);
        let layout = KvLayout {
            layers: 1,
            blocks: per_seq * seqs,
            block_size,
            kv_heads,
            head_dim,
        };
        let mut kv = ops.kv_alloc(layout).expect("kv");
        let slots: Vec<u32> = (0..(per_seq * seqs * block_size) as u32).collect();
        let n = slots.len();
        let k = tensor(
            random(&mut rng, n * kv_heads * head_dim),
            n,
            kv_heads * head_dim,
        );
        let v = tensor(
            random(&mut rng, n * kv_heads * head_dim),
            n,
            kv_heads * head_dim,
        );
        ops.kv_write(&mut kv, 0, &k, &v, &slots).expect("kv write");
        let tables: Vec<Vec<u32>> = (0..seqs)
            .map(|s| ((s * per_seq) as u32..((s + 1) * per_seq) as u32).collect())
            .collect();
        let attn: Vec<AttnSeq<'_>> = tables
            .iter()
            .enumerate()
            .map(|(s, blocks)| AttnSeq {
                rows: s * rows..(s + 1) * rows,
                start: ctx - rows,
                blocks,
            })
            .collect();
        let q = tensor(
            random(&mut rng, seqs * rows * heads * head_dim),
            seqs * rows,
            heads * head_dim,
        );
        group.throughput(Throughput::Elements((ctx * seqs) as u64));
        group.bench_function(
            BenchmarkId::new(format!("seqs={seqs},rows={rows}"), format!("ctx={ctx}")),
            |b| {
                b.iter(|| ops.scope(|| ops.attention(&kv, 0, &q, heads, &attn).expect("attention")))
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = matmul, qmatmul_kernels, attention
}
criterion_main!(benches);
