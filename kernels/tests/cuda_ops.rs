//! The CUDA kernels against float64 references on the host, op by op: fresh seeded
//! random inputs for every check, outputs poisoned with NaN before each launch, and an
//! error bound stated per op. Weights are quantized on the host (candle, GGUF block
//! layouts) and the reference uses exactly the dequantized values, so the bound only
//! covers the kernel's FP32 arithmetic. Attention and MoE are in `cuda_attention.rs`
//! and `cuda_moe.rs`.
//!
//! Without a GPU every test prints why it is skipped and passes: these checks need a
//! device. On the GPU machines: `cargo test -p infermeter-kernels --test cuda_ops`.

#![allow(clippy::unwrap_used)]

mod cuda_common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use cuda_common::{check, gpu, quantized, random};
use infermeter_kernels::cuda::gpu::GEMV_MAX_BATCH;
use infermeter_kernels::format::Precision;

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
