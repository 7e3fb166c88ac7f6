//! The runtime on seeded synthetic weights: each op against a float64 reference,
//! MoE routing and dispatch against a straightforward implementation, and the model
//! invariants batching and caching must keep (batched = alone, cached prefix = cold,
//! chunked prefill = one-shot, decode = prefill).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use infermeter_kernels::config::RopeStyle;
use infermeter_kernels::cpu::CpuOps;
use infermeter_kernels::ops::{AttnSeq, DeviceOps, ExpertWeights, KvDtype, KvLayout, route_row};
use infermeter_kernels::preset::{TINY_DENSE, TINY_MOE};
use infermeter_kernels::runtime::{Model, Offline, SchedulerConfig, teacher_forced_logits};
use infermeter_kernels::{ModelConfig, Precision, weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    // Sum of uniforms: mean 0, unit variance, no extra dependency.
    (0..n)
        .map(|_| (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0)
        .collect()
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den).sqrt()
}

fn act(x: &[f32], rows: usize, cols: usize) -> Tensor {
    Tensor::from_slice(x, (rows, cols), &Device::Cpu).unwrap()
}

/// Relative L2 error of `x W^T` per format against float64 with the unquantized
/// weights, at 1 row (decode) and 32 rows (a prompt chunk). The bounds are those of
/// each format's rounding (f16: 11-bit mantissa; bf16: 8-bit; q8_0: 8-bit blocks, plus
/// the activations' own 8-bit quantization in the quantized kernels; q4: 4-bit).
#[test]
fn matmul_matches_a_float64_reference_per_format() {
    let (out, inn) = (96, 256);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w = randn(&mut rng, out * inn);
    let bounds = [
        (Precision::F32, 1e-6),
        (Precision::F16, 5e-4),
        (Precision::Bf16, 4e-3),
        (Precision::Q8_0, 1.5e-2),
        (Precision::Q4_0, 0.12),
        (Precision::Q4_1, 0.12),
    ];
    let ops = CpuOps::default();
    for rows in [1, 32] {
        let x = randn(&mut rng, rows * inn);
        let want: Vec<f64> = (0..rows)
            .flat_map(|r| {
                let (x, w) = (&x, &w);
                (0..out).map(move |o| {
                    (0..inn)
                        .map(|i| x[r * inn + i] as f64 * w[o * inn + i] as f64)
                        .sum::<f64>()
                })
            })
            .collect();
        for (p, bound) in bounds {
            let q = QTensor::quantize(&act(&w, out, inn), p.ggml()).unwrap();
            let weight = ops.weight(Arc::new(q)).unwrap();
            let got = ops
                .to_host(&ops.matmul(&act(&x, rows, inn), &weight).unwrap())
                .unwrap();
            let e = rel_err(&got, &want);
            println!("{p} rows={rows}: relative error {e:.2e} (bound {bound:.1e})");
            assert!(e < bound, "{p} at {rows} rows: relative error {e}");
        }
    }
}

fn reference_attention(
    q: &[f32],
    keys: &[Vec<f32>],
    vals: &[Vec<f32>],
    heads: usize,
    kv_heads: usize,
    hd: usize,
    start: usize,
) -> Vec<f64> {
    let t = q.len() / (heads * hd);
    let g = heads / kv_heads;
    let mut out = vec![0f64; t * heads * hd];
    for i in 0..t {
        for h in 0..heads {
            let kvh = h / g;
            let qv = &q[(i * heads + h) * hd..(i * heads + h + 1) * hd];
            let ctx = start + i + 1;
            let s: Vec<f64> = (0..ctx)
                .map(|p| {
                    let k = &keys[p][kvh * hd..(kvh + 1) * hd];
                    qv.iter()
                        .zip(k)
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for p in 0..ctx {
                let v = &vals[p][kvh * hd..(kvh + 1) * hd];
                for d in 0..hd {
                    out[(i * heads + h) * hd + d] += e[p] / z * v[d] as f64;
                }
            }
        }
    }
    out
}

/// Attention over a paged cache whose blocks are scattered and out of order, for a
/// prompt chunk after cached positions and for single-token decode, in one step, with
/// a context short enough for one span and one of 700 positions (three spans of 256,
/// merged), for both KV caches. Bounds: f32 relative error under 1e-5 (float
/// rounding); f16 under 2e-3, from keys and values rounded to 11 significant bits
/// (a relative error of at most 2^-11 each, so about 5e-4 on a score's scale and on
/// each value, which the softmax and the weighted sum do not amplify for scores of
/// unit size; measured: 2.0e-4).
#[test]
fn paged_attention_matches_a_float64_reference() {
    for (kv_dtype, bound) in [(KvDtype::F32, 1e-5), (KvDtype::F16, 2e-3)] {
        for long in [false, true] {
            let e = paged_attention_error(kv_dtype, long);
            assert!(e < bound, "{kv_dtype:?} long={long}: relative error {e}");
        }
    }
}

fn paged_attention_error(kv_dtype: KvDtype, long: bool) -> f64 {
    let (heads, kvh, hd, bs) = (6, 2, 16, 4);
    // Sequence A: 11 (or 700) positions; sequence B: 6, in scattered blocks.
    let lens = if long { [700usize, 6] } else { [11, 6] };
    let a_blocks = lens[0].div_ceil(bs) as u32;
    let layout = KvLayout {
        layers: 1,
        blocks: a_blocks as usize + 2,
        block_size: bs,
        kv_heads: kvh,
        head_dim: hd,
    };
    let ops = CpuOps::with_kv(kv_dtype);
    let mut kv = ops.kv_alloc(layout).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // A's blocks in reverse order after B's two.
    let tables: [Vec<u32>; 2] = [(2..a_blocks + 2).rev().collect(), vec![1, 0]];
    let mut keys: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut vals: Vec<Vec<Vec<f32>>> = Vec::new();
    for (s, &len) in lens.iter().enumerate() {
        let k: Vec<Vec<f32>> = (0..len).map(|_| randn(&mut rng, kvh * hd)).collect();
        let v: Vec<Vec<f32>> = (0..len).map(|_| randn(&mut rng, kvh * hd)).collect();
        let slots: Vec<u32> = (0..len)
            .map(|p| layout.slot(&tables[s], p) as u32)
            .collect();
        ops.kv_write(
            &mut kv,
            0,
            &act(&k.concat(), len, kvh * hd),
            &act(&v.concat(), len, kvh * hd),
            &slots,
        )
        .unwrap();
        keys.push(k);
        vals.push(v);
    }
    // A: a chunk of 5 queries at its last 5 positions; B: one decode query at 5.
    // Queries of a quarter unit size keep the scores of unit size.
    let small = |x: Vec<f32>| x.into_iter().map(|v| v * 0.25).collect::<Vec<f32>>();
    let qa = small(randn(&mut rng, 5 * heads * hd));
    let qb = small(randn(&mut rng, heads * hd));
    let q = [qa.clone(), qb.clone()].concat();
    let seqs = [
        AttnSeq {
            rows: 0..5,
            start: lens[0] - 5,
            blocks: &tables[0],
        },
        AttnSeq {
            rows: 5..6,
            start: 5,
            blocks: &tables[1],
        },
    ];
    let got = ops
        .to_host(
            &ops.attention(&kv, 0, &act(&q, 6, heads * hd), heads, &seqs)
                .unwrap(),
        )
        .unwrap();
    let want = [
        reference_attention(&qa, &keys[0], &vals[0], heads, kvh, hd, lens[0] - 5),
        reference_attention(&qb, &keys[1], &vals[1], heads, kvh, hd, 5),
    ]
    .concat();
    let e = rel_err(&got, &want);
    eprintln!("{kv_dtype:?} long={long}: relative error {e:.2e}");
    e
}

#[test]
fn routing_picks_the_top_k_and_renormalises() {
    let logits = [0.5, 2.0, -1.0, 2.0, 1.0];
    let (ids, w) = route_row(&logits, 3, true);
    // Equal logits: the lower id first.
    assert_eq!(ids, vec![1, 3, 4]);
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((w[0] - w[1]).abs() < 1e-7 && w[1] > w[2]);
    let (_, raw) = route_row(&logits, 3, false);
    let all: f32 = logits.iter().map(|l| (l - 2.0f32).exp()).sum();
    assert!(
        (raw[0] - 1.0 / all).abs() < 1e-6,
        "softmax over all experts"
    );
    assert!(raw.iter().sum::<f32>() < 1.0);
}

/// Expert dispatch (rows gathered per expert, weighted, scattered back) equals the
/// per-token sum over its routed experts computed directly in float64.
#[test]
fn expert_dispatch_matches_a_per_token_reference() {
    let (h, ie, e, k, t) = (32, 24, 6, 2, 9);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let ops = CpuOps::default();
    let mats: Vec<[Vec<f32>; 3]> = (0..e)
        .map(|_| {
            [
                randn(&mut rng, ie * h),
                randn(&mut rng, ie * h),
                randn(&mut rng, h * ie),
            ]
        })
        .collect();
    let upload = |m: &[f32], r, c| {
        ops.weight(Arc::new(
            QTensor::quantize(&act(m, r, c), Precision::F32.ggml()).unwrap(),
        ))
        .unwrap()
    };
    let experts: Vec<ExpertWeights<_>> = mats
        .iter()
        .map(|[g, u, d]| ExpertWeights {
            gate: upload(g, ie, h),
            up: upload(u, ie, h),
            down: upload(d, h, ie),
        })
        .collect();
    let x = randn(&mut rng, t * h);
    let logits = randn(&mut rng, t * e);
    let routing = ops.moe_route(&act(&logits, t, e), k, true).unwrap();
    for r in 0..t {
        let (ids, w) = route_row(&logits[r * e..(r + 1) * e], k, true);
        assert_eq!(routing.experts[r * k..(r + 1) * k], ids[..]);
        assert_eq!(routing.weights[r * k..(r + 1) * k], w[..]);
    }
    let got = ops
        .to_host(
            &ops.expert_dispatch(&act(&x, t, h), &routing, &experts)
                .unwrap(),
        )
        .unwrap();
    let mut want = vec![0f64; t * h];
    for r in 0..t {
        let xr = &x[r * h..(r + 1) * h];
        for j in 0..k {
            let ex = routing.experts[r * k + j] as usize;
            let wgt = routing.weights[r * k + j] as f64;
            let [g, u, d] = &mats[ex];
            let dot = |m: &[f32], row: usize, v: &[f64]| -> f64 {
                v.iter()
                    .enumerate()
                    .map(|(i, a)| a * m[row * v.len() + i] as f64)
                    .sum()
            };
            let xf: Vec<f64> = xr.iter().map(|&a| a as f64).collect();
            let act_: Vec<f64> = (0..ie)
                .map(|i| {
                    let gv = dot(g, i, &xf);
                    gv / (1.0 + (-gv).exp()) * dot(u, i, &xf)
                })
                .collect();
            for o in 0..h {
                want[r * h + o] += wgt * dot(d, o, &act_);
            }
        }
    }
    let e = rel_err(&got, &want);
    assert!(e < 1e-5, "relative error {e}");
}

#[test]
fn rope_styles_rotate_the_documented_pairs() {
    let ops = CpuOps::default();
    let hd = 4;
    let half = hd / 2;
    let angle = [0.3f32, 0.7];
    let cos = ops
        .table(angle.iter().map(|a| a.cos()).collect(), 1, half)
        .unwrap();
    let sin = ops
        .table(angle.iter().map(|a| a.sin()).collect(), 1, half)
        .unwrap();
    let x = act(&[1.0, 2.0, 3.0, 4.0], 1, hd);
    let rot = |a: f32, b: f32, t: f32| (a * t.cos() - b * t.sin(), a * t.sin() + b * t.cos());
    let i = ops
        .to_host(
            &ops.rope(
                &x,
                hd,
                &[0],
                &(cos.clone(), sin.clone()),
                RopeStyle::Interleaved,
            )
            .unwrap(),
        )
        .unwrap();
    let (a, b) = rot(1.0, 2.0, 0.3);
    let (c, d) = rot(3.0, 4.0, 0.7);
    for (g, w) in i.iter().zip([a, b, c, d]) {
        assert!((g - w).abs() < 1e-6, "interleaved {i:?}");
    }
    let n = ops
        .to_host(
            &ops.rope(&x, hd, &[0], &(cos, sin), RopeStyle::Neox)
                .unwrap(),
        )
        .unwrap();
    let (a, c) = rot(1.0, 3.0, 0.3);
    let (b, d) = rot(2.0, 4.0, 0.7);
    for (g, w) in n.iter().zip([a, b, c, d]) {
        assert!((g - w).abs() < 1e-6, "neox {n:?}");
    }
}

fn model(cfg: &ModelConfig, p: Precision, kv: KvDtype) -> Model<CpuOps> {
    Model::new(
        CpuOps::with_kv(kv),
        cfg.clone(),
        weights::synthetic(cfg, p, 42).unwrap(),
    )
    .unwrap()
}

fn runner(
    cfg: &ModelConfig,
    p: Precision,
    kv: KvDtype,
    max_batch: usize,
    chunk: usize,
) -> Offline<CpuOps> {
    let config = SchedulerConfig {
        max_batch,
        max_tokens_per_step: 256,
        prefill_chunk: chunk,
        prefix_cache: true,
    };
    Offline::new(model(cfg, p, kv), 256, 16, config).unwrap()
}

fn prompt(seed: u64, n: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..49_000)).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// For a dense and a MoE model: sequences batched together (chunked prompts mixed
/// with decodes) generate what each generates alone; a prompt whose prefix is cached
/// generates what it generates cold; prompt chunking and single-token decode give the
/// logits of a one-shot prefill.
///
/// Exact token equality needs arithmetic that does not depend on how many rows a
/// matmul has: every format has one numeric path per row (float formats a GEMM,
/// quantized ones blocks against 8-bit activations at any row count), so it holds
/// for each of them.
#[test]
fn batching_caching_and_chunking_change_nothing() {
    for (cfg, p) in [
        (&TINY_DENSE, Precision::F16),
        (&TINY_MOE, Precision::Bf16),
        (&TINY_DENSE, Precision::Q4_1),
        (&TINY_MOE, Precision::Q4_0),
        (&TINY_MOE, Precision::Q8_0),
    ] {
        for kv in [KvDtype::F32, KvDtype::F16] {
            invariants_hold(cfg, p, kv, 40);
        }
    }
    // Contexts past one attention span (256 positions): spans merged, the same bits
    // whatever the batch, the chunking or the cache.
    for kv in [KvDtype::F32, KvDtype::F16] {
        invariants_hold(&TINY_DENSE, Precision::Q4_1, kv, 300);
    }
}

/// The invariants for prompts of a `shared`-token prefix and a suffix of their own.
fn invariants_hold(cfg: &ModelConfig, p: Precision, kv: KvDtype, shared: usize) {
    let prefix = prompt(7, shared);
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|i| [prefix.clone(), prompt(100 + i, 5 + 9 * i as usize)].concat())
        .collect();
    let mut alone = runner(cfg, p, kv, 1, 512);
    let cold: Vec<Vec<u32>> = prompts
        .iter()
        .map(|q| {
            let mut fresh = runner(cfg, p, kv, 1, 512);
            fresh.generate(std::slice::from_ref(q), 10).unwrap()[0].clone()
        })
        .collect();
    // One after another in one runner: the shared prefix's whole blocks of 16 are
    // cached after the first.
    let warm: Vec<Vec<u32>> = prompts
        .iter()
        .map(|q| alone.generate(std::slice::from_ref(q), 10).unwrap()[0].clone())
        .collect();
    let what = format!("{} {p} kv {kv:?}, {shared}-token prefix", cfg.name);
    assert_eq!(warm, cold, "{what}: cached prefix vs cold");
    assert_eq!(
        alone.kv_counters().cached_tokens,
        3 * (shared / 16 * 16) as u64,
        "{what}"
    );
    let mut batched = runner(cfg, p, kv, 4, 7);
    let together = batched.generate(&prompts, 10).unwrap();
    assert_eq!(together, cold, "{what}: batched vs alone");

    let m = model(cfg, p, kv);
    let forced = &cold[0][..6];
    let full = [prompts[0].clone(), forced.to_vec()].concat();
    let stepwise = teacher_forced_logits(&m, &prompts[0], forced, 7).unwrap();
    let oneshot = teacher_forced_logits(&m, &full, &[], full.len()).unwrap();
    let d = max_abs_diff(stepwise.last().unwrap(), &oneshot[0]);
    assert!(
        d < 1e-3,
        "{what}: decode vs one-shot prefill logits differ by {d}"
    );
    let unchunked = teacher_forced_logits(&m, &prompts[0], &[], 512).unwrap();
    let d = max_abs_diff(&stepwise[0], &unchunked[0]);
    assert!(
        d < 1e-3,
        "{what}: chunked vs one-shot prefill differ by {d}"
    );
}

/// Synthetic weights written as GGUF (llama.cpp's names; experts stacked) load back
/// to the same model, and a file of another architecture or shape is refused at load
/// with what was found.
#[test]
fn gguf_round_trip_and_refusals() {
    let dir = std::env::temp_dir().join(format!("infermeter-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny-moe.gguf");
    let host = weights::synthetic(&TINY_MOE, Precision::Q8_0, 5).unwrap();
    weights::write_gguf(&path, &TINY_MOE, &host).unwrap();
    let loaded = weights::load_gguf(&path, &TINY_MOE).unwrap();
    assert_eq!(loaded.precision, Precision::Q8_0);
    let a = Model::new(CpuOps::default(), TINY_MOE.clone(), host).unwrap();
    let b = Model::new(CpuOps::default(), TINY_MOE.clone(), loaded).unwrap();
    let q = prompt(9, 20);
    let la = teacher_forced_logits(&a, &q, &[], 64).unwrap();
    let lb = teacher_forced_logits(&b, &q, &[], 64).unwrap();
    assert_eq!(la, lb);

    let err = weights::load_gguf(&path, &TINY_DENSE)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tiny-moe.gguf") && err.contains("preset tiny-dense needs"),
        "{err}"
    );

    let gpt2 = dir.join("gpt2.gguf");
    let v = candle_core::quantized::gguf_file::Value::String("gpt2".into());
    let mut f = std::fs::File::create(&gpt2).unwrap();
    candle_core::quantized::gguf_file::write(&mut f, &[("general.architecture", &v)], &[]).unwrap();
    let err = weights::load_gguf(&gpt2, &TINY_DENSE)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("gpt2.gguf")
            && err.contains("`gpt2` is not supported")
            && err.contains("qwen3moe"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
