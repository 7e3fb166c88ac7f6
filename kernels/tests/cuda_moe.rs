//! CUDA MoE: the grouped expert launches against float64 SwiGLU MLPs, routing on the
//! device against the host reference, and a whole MoE layer on the device against the
//! host's routing. Skipped, saying why, without a GPU.

#![allow(clippy::unwrap_used)]

mod cuda_common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use cuda_common::{check, gpu, random};
use infermeter_kernels::format::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// Router logits with clear gaps: each row a seeded permutation of 0.1 x rank plus
/// noise under 0.01, so no two experts are near a tie; and one row of equal logits,
/// where the ties go to the lower ids.
fn router_logits(rows: usize, experts: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(rows * experts);
    for r in 0..rows {
        let mut ranks: Vec<usize> = (0..experts).collect();
        for i in (1..experts).rev() {
            ranks.swap(i, rng.random_range(0..=i));
        }
        for &rank in &ranks {
            let noise = rng.random_range(0.0f32..0.01);
            out.push(if r == rows - 1 {
                0.5
            } else {
                0.1 * rank as f32 + noise
            });
        }
    }
    out
}

/// Routing on the device against the host reference `route_row`: the same experts in
/// the same order (ties to the lower id), weights within float rounding.
#[test]
fn device_routing_matches_the_host_reference() {
    use infermeter_kernels::cuda::geometry::moe_groups;
    use infermeter_kernels::ops::route_row;
    let Some(gpu) = gpu("moe_route") else { return };
    for (experts, top_k) in [(8usize, 2usize), (128, 8), (60, 4), (256, 8), (1024, 8)] {
        for renormalise in [false, true] {
            let rows = 37;
            let logits = router_logits(rows, experts, 70 + experts as u64);
            let d = gpu.upload(&logits).unwrap();
            let r = gpu
                .moe_route(&d, rows, experts, top_k, renormalise)
                .unwrap();
            let got = gpu.download_routing(&r).unwrap();
            for row in 0..rows {
                let (ids, w) = route_row(
                    &logits[row * experts..(row + 1) * experts],
                    top_k,
                    renormalise,
                );
                let what = format!("E={experts} k={top_k} renorm={renormalise} row {row}");
                assert_eq!(
                    got.experts[row * top_k..(row + 1) * top_k],
                    ids[..],
                    "{what}"
                );
                for (g, want) in got.weights[row * top_k..(row + 1) * top_k].iter().zip(&w) {
                    assert!(
                        (g - want).abs() <= 1e-5 * want.abs() + 1e-7,
                        "{what}: {g} vs {want}"
                    );
                }
            }
            assert_eq!(
                got.experts[(rows - 1) * top_k..],
                (0..top_k as u32).collect::<Vec<_>>()[..]
            );
            // Grouped on the device as on the host.
            let grouping = gpu.moe_group(&r).unwrap();
            let mut on_device = gpu.download_grouping(&grouping).unwrap();
            let mut on_host = moe_groups(&got, experts).unwrap();
            on_host.pair_weight.clear();
            on_device.pair_weight.clear();
            assert_eq!(on_device, on_host, "E={experts} k={top_k}: grouping");
        }
    }
    // A row of NaN logits (a model that blew up) still routes to valid, distinct
    // experts: the lowest ids, as on the host.
    let nan = vec![f32::NAN; 16];
    let d = gpu.upload(&nan).unwrap();
    let r = gpu.moe_route(&d, 1, 16, 4, true).unwrap();
    assert_eq!(gpu.download_routing(&r).unwrap().experts, [0, 1, 2, 3]);
}

/// A MoE layer routed and grouped on the device (CudaOps::moe_ffn) gives what the same
/// experts give with the host's routing and grouping (expert_dispatch).
#[test]
fn a_moe_layer_on_the_device_matches_host_routing() {
    use infermeter_kernels::cuda::ops::CudaOps;
    use infermeter_kernels::ops::{DeviceOps, ExpertWeights};
    use std::sync::Arc;
    let Ok(ops) = CudaOps::open(0) else {
        eprintln!("moe_ffn: skipped, no GPU");
        return;
    };
    let (hidden, inter, n_experts, top_k) = (64usize, 64usize, 16usize, 4usize);
    let experts: Vec<_> = (0..n_experts as u64)
        .map(|e| {
            let m = |o: usize, i: usize, s: u64| {
                let host = Tensor::from_vec(random(o * i, s), (o, i), &Device::Cpu).unwrap();
                ops.weight(Arc::new(QTensor::quantize(&host, GgmlDType::Q8_0).unwrap()))
                    .unwrap()
            };
            ExpertWeights {
                gate: m(inter, hidden, 1200 + e),
                up: m(inter, hidden, 1300 + e),
                down: m(hidden, inter, 1400 + e),
            }
        })
        .collect();
    for rows in [1usize, 7, 40] {
        let x = random(rows * hidden, 1500 + rows as u64);
        let logits = router_logits(rows, n_experts, 1600 + rows as u64);
        let ids: Vec<u32> = (0..rows as u32).collect();
        let dx = ops
            .embed(&ops.table(x, rows, hidden).unwrap(), &ids)
            .unwrap();
        let dl = ops
            .embed(&ops.table(logits, rows, n_experts).unwrap(), &ids)
            .unwrap();
        let device = ops
            .to_host(&ops.moe_ffn(&dx, &dl, (top_k, true), &experts).unwrap())
            .unwrap();
        let routing = ops.moe_route(&dl, top_k, true).unwrap();
        let host = ops
            .to_host(&ops.expert_dispatch(&dx, &routing, &experts).unwrap())
            .unwrap();
        let want: Vec<f64> = host.iter().map(|&v| f64::from(v)).collect();
        // The routing weights may differ by an ulp (expf, sum order): bound by the
        // row's largest value, not the element's.
        let row_max: Vec<f64> = want
            .chunks(hidden)
            .map(|r| r.iter().fold(0f64, |m, v| m.max(v.abs())))
            .collect();
        check(&format!("moe_ffn rows {rows}"), &device, &want, |i| {
            1e-5 * (want[i].abs() + row_max[i / hidden]) + 1e-6
        });
    }
}
