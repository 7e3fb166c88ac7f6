//! The CUDA kernels against float64 references on the host, op by op: fresh seeded
//! random inputs for every check, outputs poisoned with NaN before each launch, and an
//! error bound stated per op. Weights are quantized on the host (candle, GGUF block
//! layouts) and the reference uses exactly the dequantized values, so the bound only
//! covers the kernel's FP32 arithmetic.
//!
//! Without a GPU every test prints why it is skipped and passes: these checks need a
//! device. On the GPU machines: `cargo test -p infermeter-kernels --test cuda_ops`.

#![allow(clippy::unwrap_used)]

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use infermeter_kernels::cuda::gpu::{GEMV_MAX_BATCH, Gpu};
use infermeter_kernels::format::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e}");
            None
        }
    }
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// |got - want| <= bound for every element, or the first offender.
fn check(what: &str, got: &[f32], want: &[f64], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= bound(i),
            "{what}: element {i} is {g}, reference {w} (error {err:e} > bound {:e})",
            bound(i)
        );
    }
}

#[test]
fn gemv_matches_the_reference_for_every_format_and_batch() {
    let Some(gpu) = gpu("gemv") else { return };
    let (n_out, k) = (96usize, 512usize);
    for (format, dtype) in [
        (Precision::F32, GgmlDType::F32),
        (Precision::F16, GgmlDType::F16),
        (Precision::Bf16, GgmlDType::BF16),
        (Precision::Q8_0, GgmlDType::Q8_0),
        (Precision::Q4_0, GgmlDType::Q4_0),
        (Precision::Q4_1, GgmlDType::Q4_1),
    ] {
        for (seed, batch) in [1usize, 3, GEMV_MAX_BATCH].into_iter().enumerate() {
            let w = random(n_out * k, 100 + seed as u64);
            let host = Tensor::from_vec(w, (n_out, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&host, dtype).unwrap();
            let bytes = q.data().unwrap().to_vec();
            let wq: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let x = random(batch * k, 200 + seed as u64);
            let mut want = vec![0f64; batch * n_out];
            let mut scale = vec![0f64; batch * n_out];
            for b in 0..batch {
                for n in 0..n_out {
                    for i in 0..k {
                        let p = f64::from(wq[n * k + i]) * f64::from(x[b * k + i]);
                        want[b * n_out + n] += p;
                        scale[b * n_out + n] += p.abs();
                    }
                }
            }
            let dw = gpu.upload(&bytes).unwrap();
            let dx = gpu.upload(&x).unwrap();
            let mut dy = gpu.poisoned(batch * n_out).unwrap();
            gpu.gemv(
                format,
                &dw,
                &dx.as_view(),
                &mut dy.as_view_mut(),
                (n_out, k, batch),
            )
            .unwrap();
            let got = gpu.download(&dy).unwrap();
            // FP32 accumulation over k = 512 terms: well inside 1e-5 of the sum of |terms|.
            check(
                &format!("gemv {format:?} batch {batch}"),
                &got,
                &want,
                |i| 1e-5 * scale[i] + 1e-6,
            );
        }
    }
}

#[test]
fn gemv_refuses_shapes_that_do_not_match_its_buffers() {
    let Some(gpu) = gpu("gemv shapes") else {
        return;
    };
    let w = gpu.upload(&[0u8; 18 * 4]).unwrap();
    let x = gpu.upload(&[0f32; 128]).unwrap();
    let mut y = gpu.poisoned(1).unwrap();
    // 4 Q4_0 blocks are one row of 128 weights, not two rows.
    assert!(
        gpu.gemv(
            Precision::Q4_0,
            &w,
            &x.as_view(),
            &mut y.as_view_mut(),
            (2, 128, 1)
        )
        .is_err()
    );
    assert!(
        gpu.gemv(
            Precision::Q4_0,
            &w,
            &x.as_view(),
            &mut y.as_view_mut(),
            (1, 128, 9)
        )
        .is_err()
    );
}

#[test]
fn rms_norm_matches_the_reference() {
    let Some(gpu) = gpu("rms_norm") else { return };
    let (rows, groups, width, eps) = (5usize, 3usize, 96usize, 1e-5f32);
    let x = random(rows * groups * width, 1);
    let w = random(width, 2);
    let mut want = vec![0f64; x.len()];
    for g in 0..rows * groups {
        let xs = &x[g * width..(g + 1) * width];
        let ms = xs.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / width as f64;
        let scale = 1.0 / (ms + f64::from(eps)).sqrt();
        for i in 0..width {
            want[g * width + i] = f64::from(xs[i]) * scale * f64::from(w[i]);
        }
    }
    let (dx, dw) = (gpu.upload(&x).unwrap(), gpu.upload(&w).unwrap());
    let mut dy = gpu.poisoned(x.len()).unwrap();
    gpu.rms_norm(&dx, &dw, &mut dy, (rows, groups, width), eps)
        .unwrap();
    check("rms_norm", &gpu.download(&dy).unwrap(), &want, |i| {
        1e-5 * want[i].abs() + 1e-6
    });
}

#[test]
fn rope_matches_the_reference_in_both_layouts() {
    let Some(gpu) = gpu("rope") else { return };
    let (rows, heads, head_dim, context) = (4usize, 3usize, 64usize, 32usize);
    let half = head_dim / 2;
    let positions: Vec<u32> = vec![0, 7, 19, 31];
    let theta: Vec<f64> = (0..half)
        .map(|i| 10_000f64.powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let cos: Vec<f32> = (0..context * half)
        .map(|j| ((j / half) as f64 * theta[j % half]).cos() as f32)
        .collect();
    let sin: Vec<f32> = (0..context * half)
        .map(|j| ((j / half) as f64 * theta[j % half]).sin() as f32)
        .collect();
    for interleaved in [true, false] {
        let x = random(rows * heads * head_dim, 3 + u64::from(interleaved));
        let mut want: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for (r, &pos) in positions.iter().enumerate() {
            for h in 0..heads {
                let base = (r * heads + h) * head_dim;
                for i in 0..half {
                    let (a, b) = if interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let j = pos as usize * half + i;
                    let (c, s) = (f64::from(cos[j]), f64::from(sin[j]));
                    let (x0, x1) = (f64::from(x[base + a]), f64::from(x[base + b]));
                    want[base + a] = x0 * c - x1 * s;
                    want[base + b] = x0 * s + x1 * c;
                }
            }
        }
        let mut dx = gpu.upload(&x).unwrap();
        let dp = gpu.upload(&positions).unwrap();
        let (dc, ds) = (gpu.upload(&cos).unwrap(), gpu.upload(&sin).unwrap());
        gpu.rope(
            &mut dx,
            &dp,
            &dc,
            &ds,
            (rows, heads, head_dim),
            context,
            interleaved,
        )
        .unwrap();
        check(
            &format!("rope interleaved={interleaved}"),
            &gpu.download(&dx).unwrap(),
            &want,
            |_| 1e-6,
        );
    }
}

#[test]
fn swiglu_add_embed_and_argmax_match_the_reference() {
    let Some(gpu) = gpu("elementwise") else {
        return;
    };
    let n = 3000;
    let (a, b) = (random(n, 5), random(n, 6));
    let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
    let mut dy = gpu.poisoned(n).unwrap();
    gpu.elementwise(true, &da, &db, &mut dy).unwrap();
    let want: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(&g, &u)| {
            let g = f64::from(g);
            g / (1.0 + (-g).exp()) * f64::from(u)
        })
        .collect();
    // __expf is a fast approximation: a few ulps of float.
    check("swiglu", &gpu.download(&dy).unwrap(), &want, |i| {
        1e-5 * want[i].abs() + 1e-7
    });
    let mut dy = gpu.poisoned(n).unwrap();
    gpu.elementwise(false, &da, &db, &mut dy).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| f64::from(x + y)).collect();
    check("add", &gpu.download(&dy).unwrap(), &want, |_| 0.0);

    let (vocab, cols) = (50usize, 40usize);
    let table = random(vocab * cols, 7);
    let ids: Vec<u32> = vec![3, 0, 49, 3, 17];
    let dt = gpu.upload(&table).unwrap();
    let di = gpu.upload(&ids).unwrap();
    let mut dy = gpu.poisoned(ids.len() * cols).unwrap();
    gpu.embed(&dt, &di, &mut dy, (vocab, cols), 49).unwrap();
    let want: Vec<f64> = ids
        .iter()
        .flat_map(|&id| table[id as usize * cols..(id as usize + 1) * cols].iter())
        .map(|&v| f64::from(v))
        .collect();
    check("embed", &gpu.download(&dy).unwrap(), &want, |_| 0.0);

    let (rows, cols) = (6usize, 1000usize);
    let mut x = random(rows * cols, 8);
    // Ties go to the lower index: row 0 has its maximum twice.
    x[10] = 5.0;
    x[900] = 5.0;
    let want: Vec<u32> = (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect();
    assert_eq!(want[0], 10);
    let dx = gpu.upload(&x).unwrap();
    assert_eq!(gpu.argmax(&dx, rows, cols).unwrap(), want);
}

/// One sequence of an attention check: its first query position, its query rows,
/// and its block table.
struct AttnCase {
    start: usize,
    rows: usize,
    blocks: Vec<u32>,
}

/// Attention of prompt chunks (per-row kernel) and of decode rows (split-KV kernel,
/// with the geometry the runtime picks and with forced splits, so the merge is
/// exercised) against a float64 reference over the cache's stored values, for f32 and
/// f16 caches and every head shape of the presets.
#[test]
fn attention_matches_the_reference_for_prompt_chunks_and_split_decode() {
    use infermeter_kernels::cuda::attention::{KvDtype, RowTables};
    use infermeter_kernels::cuda::geometry::{DecodeGeometry, decode_geometry, prefill_tiles};
    let Some(gpu) = gpu("attention") else { return };
    let block_size = 16usize;
    for (heads, kv_heads, head_dim) in [(9usize, 3usize, 64usize), (32, 8, 128), (8, 2, 32)] {
        for dtype in [KvDtype::F32, KvDtype::F16] {
            // A prompt chunk of 5 rows at positions 3..8, two decode rows at 700 and 40.
            let cases = [
                AttnCase {
                    start: 3,
                    rows: 5,
                    blocks: vec![7],
                },
                AttnCase {
                    start: 700,
                    rows: 1,
                    blocks: (8..52).rev().collect(),
                },
                AttnCase {
                    start: 40,
                    rows: 1,
                    blocks: vec![60, 2, 55],
                },
            ];
            let row = kv_heads * head_dim;
            let slots_total = 64 * block_size;
            let store = |x: f32| match dtype {
                KvDtype::F32 => f64::from(x),
                KvDtype::F16 => f64::from(half::f16::from_f32(x).to_f32()),
            };
            let mut kc = gpu.kv_zeros(dtype, slots_total * row).unwrap();
            let mut vc = gpu.kv_zeros(dtype, slots_total * row).unwrap();
            // Host copies of what the cache holds, by slot.
            let mut hk = vec![0f64; slots_total * row];
            let mut hv = vec![0f64; slots_total * row];
            let slot = |c: &AttnCase, p: usize| {
                c.blocks[p / block_size] as usize * block_size + p % block_size
            };
            for (ci, c) in cases.iter().enumerate() {
                let n = c.start + c.rows;
                let (k, v) = (
                    random(n * row, 300 + ci as u64),
                    random(n * row, 400 + ci as u64),
                );
                let slots: Vec<u32> = (0..n).map(|p| slot(c, p) as u32).collect();
                for (p, &s) in slots.iter().enumerate() {
                    for j in 0..row {
                        hk[s as usize * row + j] = store(k[p * row + j]);
                        hv[s as usize * row + j] = store(v[p * row + j]);
                    }
                }
                let max = *slots.iter().max().unwrap();
                gpu.kv_write(
                    &gpu.upload(&k).unwrap(),
                    &gpu.upload(&v).unwrap(),
                    &gpu.upload(&slots).unwrap(),
                    (&mut kc, &mut vc),
                    row,
                    max,
                )
                .unwrap();
            }
            let t_rows: usize = cases.iter().map(|c| c.rows).sum();
            let q = random(t_rows * heads * head_dim, 500);
            let (mut pos, mut table, mut tables) = (Vec::new(), Vec::new(), Vec::new());
            for c in &cases {
                let off = tables.len() as u32;
                tables.extend_from_slice(&c.blocks);
                for i in 0..c.rows {
                    pos.push((c.start + i) as u32);
                    table.push(off);
                }
            }
            let want: Vec<f64> = {
                let mut out = vec![0f64; t_rows * heads * head_dim];
                let mut r = 0;
                for c in &cases {
                    for i in 0..c.rows {
                        let last = c.start + i;
                        for h in 0..heads {
                            let kvh = h / (heads / kv_heads);
                            let qo = (r * heads + h) * head_dim;
                            let scores: Vec<f64> = (0..=last)
                                .map(|p| {
                                    let ko = slot(c, p) * row + kvh * head_dim;
                                    (0..head_dim)
                                        .map(|d| f64::from(q[qo + d]) * hk[ko + d])
                                        .sum::<f64>()
                                        / (head_dim as f64).sqrt()
                                })
                                .collect();
                            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                            let z: f64 = e.iter().sum();
                            for d in 0..head_dim {
                                out[qo + d] = (0..=last)
                                    .map(|p| e[p] * hv[slot(c, p) * row + kvh * head_dim + d])
                                    .sum::<f64>()
                                    / z;
                            }
                        }
                        r += 1;
                    }
                }
                out
            };
            let (d_pos, d_table, d_tables) = (
                gpu.upload(&pos).unwrap(),
                gpu.upload(&table).unwrap(),
                gpu.upload(&tables).unwrap(),
            );
            let t = RowTables {
                pos: &d_pos,
                table: &d_table,
                tables: &d_tables,
            };
            let d_q = gpu.upload(&q).unwrap();
            let dims = (heads, kv_heads, head_dim, block_size);
            let prompt_rows: Vec<u32> = (0..5).collect();
            let decode_rows: Vec<u32> = vec![5, 6];
            let picked =
                decode_geometry(2, heads, kv_heads, head_dim, 701, gpu.sm_count()).unwrap();
            let forced = DecodeGeometry {
                splits: 5,
                chunk: 141,
                ..picked
            };
            for g in [picked, forced] {
                let mut out = gpu.poisoned(q.len()).unwrap();
                gpu.attention(
                    &d_q,
                    (&kc, &vc),
                    &gpu.upload(&prompt_rows).unwrap(),
                    5,
                    &t,
                    &mut out,
                    dims,
                )
                .unwrap();
                gpu.decode_attention(
                    &d_q,
                    (&kc, &vc),
                    &gpu.upload(&decode_rows).unwrap(),
                    2,
                    &t,
                    &mut out,
                    dims,
                    g,
                )
                .unwrap();
                let what = format!("attention {heads}/{kv_heads}x{head_dim} {dtype:?} {g:?}");
                // FP32 sums over up to 701 positions and __expf: 1e-4 of a value of
                // magnitude <= 1.
                check(&what, &gpu.download(&out).unwrap(), &want, |_| 1e-4);
            }
            // The tiled prefill kernel: the chunk as one tile, each decode row as one.
            let mut out = gpu.poisoned(q.len()).unwrap();
            let tiles = prefill_tiles(&[(0, 5), (5, 1), (6, 1)]);
            gpu.prefill_attention(&d_q, (&kc, &vc), &tiles, &t, &mut out, dims)
                .unwrap();
            check(
                &format!("prefill attention {heads}/{kv_heads}x{head_dim} {dtype:?}"),
                &gpu.download(&out).unwrap(),
                &want,
                |_| 1e-4,
            );
            // Every decode row through the per-row kernel gives the same figures.
            let mut out = gpu.poisoned(q.len()).unwrap();
            let all: Vec<u32> = (0..t_rows as u32).collect();
            gpu.attention(
                &d_q,
                (&kc, &vc),
                &gpu.upload(&all).unwrap(),
                t_rows,
                &t,
                &mut out,
                dims,
            )
            .unwrap();
            check(
                "attention, per-row kernel",
                &gpu.download(&out).unwrap(),
                &want,
                |_| 1e-4,
            );
        }
    }
}

/// A `[rows, cols]` matrix quantized to `dtype`: its GGUF bytes and the values they
/// stand for.
fn quantized(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let host = Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&host, dtype).unwrap();
    let values = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (q.data().unwrap().to_vec(), values)
}

/// The fused gate/up GEMV against silu(x . gate) * (x . up) in float64, for every
/// format, batch 1, 5 and 8; the float formats at a k that is not a multiple of 8
/// (f16, bf16) or 4 (f32), so their element-by-element path runs (the 16-byte path
/// runs in the GEMV test, k = 512).
#[test]
fn fused_gate_up_matches_the_reference_for_every_format_and_batch() {
    let Some(gpu) = gpu("gemv_gate_up") else {
        return;
    };
    let n_out = 72usize;
    for (format, dtype, k) in [
        (Precision::F32, GgmlDType::F32, 514usize),
        (Precision::F16, GgmlDType::F16, 516),
        (Precision::Bf16, GgmlDType::BF16, 514),
        (Precision::Q8_0, GgmlDType::Q8_0, 512),
        (Precision::Q4_0, GgmlDType::Q4_0, 512),
        (Precision::Q4_1, GgmlDType::Q4_1, 512),
    ] {
        for (seed, batch) in [1usize, 5, GEMV_MAX_BATCH].into_iter().enumerate() {
            let seed = seed as u64;
            let (gb, g) = quantized(n_out, k, dtype, 600 + seed);
            let (ub, u) = quantized(n_out, k, dtype, 700 + seed);
            let x = random(batch * k, 800 + seed);
            let mut want = vec![0f64; batch * n_out];
            let mut bound = vec![0f64; batch * n_out];
            for b in 0..batch {
                for n in 0..n_out {
                    let (mut sg, mut su, mut ag, mut au) = (0f64, 0f64, 0f64, 0f64);
                    for i in 0..k {
                        let xv = f64::from(x[b * k + i]);
                        sg += f64::from(g[n * k + i]) * xv;
                        su += f64::from(u[n * k + i]) * xv;
                        ag += (f64::from(g[n * k + i]) * xv).abs();
                        au += (f64::from(u[n * k + i]) * xv).abs();
                    }
                    let silu = sg / (1.0 + (-sg).exp());
                    want[b * n_out + n] = silu * su;
                    // Each sum is within 1e-5 of its |terms|; silu' <= 1.1.
                    bound[b * n_out + n] =
                        1.1 * 1e-5 * ag * su.abs() + silu.abs() * 1e-5 * au + 1e-6;
                }
            }
            let (dg, du, dx) = (
                gpu.upload(&gb).unwrap(),
                gpu.upload(&ub).unwrap(),
                gpu.upload(&x).unwrap(),
            );
            let mut dy = gpu.poisoned(batch * n_out).unwrap();
            gpu.gemv_gate_up(
                format,
                (&dg, &du),
                &dx.as_view(),
                &mut dy.as_view_mut(),
                (n_out, k, batch),
            )
            .unwrap();
            check(
                &format!("gemv_gate_up {format:?} batch {batch}"),
                &gpu.download(&dy).unwrap(),
                &want,
                |i| bound[i],
            );
        }
    }
}

/// The cuBLAS prefill product against the float64 reference over the weights' values,
/// for every format at 33 rows. Bounds per element, of the sum of |terms|: f32 stays
/// f32 (1e-5); f16 activations round to 11 bits (1e-3); bf16 activations (and
/// dequantized weights) to 8 bits (8e-3).
#[test]
fn the_cublas_prefill_product_matches_the_reference_for_every_format() {
    let Some(gpu) = gpu("gemm") else { return };
    assert!(
        gpu.blas().is_some(),
        "libcublas was not found on this GPU machine (LD_LIBRARY_PATH)"
    );
    let (n_out, k, rows) = (72usize, 512usize, 33usize);
    for (format, dtype, rel) in [
        (Precision::F32, GgmlDType::F32, 1e-5),
        (Precision::F16, GgmlDType::F16, 1e-3),
        (Precision::Bf16, GgmlDType::BF16, 8e-3),
        (Precision::Q8_0, GgmlDType::Q8_0, 8e-3),
        (Precision::Q4_0, GgmlDType::Q4_0, 8e-3),
        (Precision::Q4_1, GgmlDType::Q4_1, 8e-3),
    ] {
        let (bytes, w) = quantized(n_out, k, dtype, 900);
        let x = random(rows * k, 901);
        let mut want = vec![0f64; rows * n_out];
        let mut scale = vec![0f64; rows * n_out];
        for r in 0..rows {
            for n in 0..n_out {
                for i in 0..k {
                    let p = f64::from(w[n * k + i]) * f64::from(x[r * k + i]);
                    want[r * n_out + n] += p;
                    scale[r * n_out + n] += p.abs();
                }
            }
        }
        let (dw, dx) = (gpu.upload(&bytes).unwrap(), gpu.upload(&x).unwrap());
        let mut dy = gpu.poisoned(rows * n_out).unwrap();
        gpu.gemm(
            format,
            &dw,
            &dx.as_view(),
            &mut dy.as_view_mut(),
            (n_out, k, rows),
        )
        .unwrap();
        check(
            &format!("gemm {format:?}"),
            &gpu.download(&dy).unwrap(),
            &want,
            |i| rel * scale[i] + 1e-6,
        );
    }
}

/// A MoE layer's experts through the grouped launches (CudaOps::expert_dispatch)
/// against float64 SwiGLU MLPs over the experts' values, weighted by the routing: 11
/// rows, top-3 of 5 experts (expert 2 chosen by every row, so it takes two groups).
#[test]
fn grouped_experts_match_the_reference() {
    use infermeter_kernels::cuda::ops::CudaOps;
    use infermeter_kernels::ops::{DeviceOps, ExpertWeights, Routing};
    use std::sync::Arc;
    let Ok(ops) = CudaOps::open(0) else {
        eprintln!("grouped experts: skipped, no GPU");
        return;
    };
    let (hidden, inter, rows, n_experts, top_k) = (64usize, 96usize, 11usize, 5usize, 3usize);
    for (format, dtype) in [
        (Precision::Bf16, GgmlDType::BF16),
        (Precision::Q4_0, GgmlDType::Q4_0),
    ] {
        let mut experts = Vec::new();
        let mut values = Vec::new();
        for e in 0..n_experts as u64 {
            let mats = [(inter, hidden), (inter, hidden), (hidden, inter)].map(|(o, i)| {
                let host = Tensor::from_vec(
                    random(o * i, 1000 + 10 * e + o as u64),
                    (o, i),
                    &Device::Cpu,
                )
                .unwrap();
                QTensor::quantize(&host, dtype).unwrap()
            });
            values.push(mats.each_ref().map(|q| {
                q.dequantize(&Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            }));
            let [g, u, d] = mats.map(|q| ops.weight(Arc::new(q)).unwrap());
            experts.push(ExpertWeights {
                gate: g,
                up: u,
                down: d,
            });
        }
        let mut chosen = Vec::new();
        let mut weights = Vec::new();
        for r in 0..rows {
            chosen.extend([2u32, (r % 2) as u32, 3 + (r % 2) as u32]);
            weights.extend([0.5f32, 0.3, 0.2]);
        }
        let routing = Routing {
            top_k,
            experts: chosen.clone(),
            weights: weights.clone(),
        };
        let x = random(rows * hidden, 1100);
        let table = ops.table(x.clone(), rows, hidden).unwrap();
        let ids: Vec<u32> = (0..rows as u32).collect();
        let dx = ops.embed(&table, &ids).unwrap();
        let got = ops
            .to_host(&ops.expert_dispatch(&dx, &routing, &experts).unwrap())
            .unwrap();
        let mut want = vec![0f64; rows * hidden];
        let mut bound = vec![1e-6f64; rows * hidden];
        for r in 0..rows {
            let xr: Vec<f64> = x[r * hidden..(r + 1) * hidden]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            for j in 0..top_k {
                let e = chosen[r * top_k + j] as usize;
                let w = f64::from(weights[r * top_k + j]);
                let [g, u, d] = &values[e];
                let h: Vec<f64> = (0..inter)
                    .map(|n| {
                        let dot = |m: &[f32]| {
                            (0..hidden)
                                .map(|i| f64::from(m[n * hidden + i]) * xr[i])
                                .sum::<f64>()
                        };
                        let (gv, uv) = (dot(g), dot(u));
                        gv / (1.0 + (-gv).exp()) * uv
                    })
                    .collect();
                for c in 0..hidden {
                    let terms: Vec<f64> = (0..inter)
                        .map(|n| f64::from(d[c * inter + n]) * h[n])
                        .collect();
                    want[r * hidden + c] += w * terms.iter().sum::<f64>();
                    // FP32 sums of the two products (k = 64, 96) and __expf.
                    bound[r * hidden + c] += w * 1e-4 * terms.iter().map(|t| t.abs()).sum::<f64>();
                }
            }
        }
        check(&format!("grouped experts {format:?}"), &got, &want, |i| {
            bound[i]
        });
    }
}
