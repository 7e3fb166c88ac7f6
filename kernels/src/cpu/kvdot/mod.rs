//! The vector arithmetic of CPU attention: the scores of several queries against one
//! key, the values weighted by a row's scores, and `e^x` for a softmax, reading f16
//! (or f32) keys and values straight from the cache. Vector code where the build
//! targets AVX2, FMA and F16C (the workspace's x86-64-v3), a portable loop elsewhere.
//!
//! Both give the same bits, so a test holds one against the other, and so does every
//! blocking of the work (how many queries share a key, how many rows an item has):
//! - a score's lane `j` of 8 sums elements `j, j+8, ...` by fused multiply-add in
//!   order, the lanes are summed as a tree (`j + j+4`, then `j + j+2`, then `0 + 1`),
//!   elements past the last whole 8 are added by fused multiply-add in order, and the
//!   sum is multiplied by the scale;
//! - a weighted sum adds `w_p·v_p` element by element by fused multiply-add in position
//!   order;
//! - a softmax's sum of exponentials adds them in 8 lanes, then as the scores' tree;
//! - widening f16 is exact, so an f16 key gives the bits of its f32 copy.
//!
//! This module and the `qmatmul` kernels are the crate's only `unsafe`: the vector
//! functions are compiled only where the target features are on for the whole build,
//! and every load reads 8 elements of a slice checked to hold them.
#![allow(unsafe_code)]

mod elem;
pub use elem::{Elem, KeyBlocks};

#[allow(
    dead_code,
    reason = "a vector build runs it in its tests and for tails only"
)]
pub mod portable;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod vector;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
pub use vector::{block_scores, exp_sub, max, scores, weighted_sum, weighted_sums};

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
pub use portable::{block_scores, exp_sub, max, scores, weighted_sum, weighted_sums};

/// Which arithmetic this build and CPU run: `"avx512-f16c"`, `"avx2-f16c"` or
/// `"portable"`.
pub fn name() -> &'static str {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    return if vector::avx512() {
        "avx512-f16c"
    } else {
        "avx2-f16c"
    };
    #[allow(unreachable_code, reason = "the vector build returns above")]
    "portable"
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (x as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    fn halves(x: &[f32]) -> Vec<f16> {
        x.iter().copied().map(f16::from_f32).collect()
    }

    #[test]
    fn scores_are_the_portable_bits_for_every_blocking() {
        // Head sizes with whole vectors, a tail, under one vector, and SmolLM2's 64.
        for hd in [1, 7, 8, 13, 64, 67] {
            for m in 1..=9 {
                let q = values(m * hd, 1);
                let k = values(hd, 2);
                let kh = halves(&k);
                let widened: Vec<f32> = kh.iter().map(|x| x.to_f32()).collect();
                let stride = 3;
                let run = |f: &dyn Fn(&mut [f32])| {
                    let mut out = vec![0f32; m * stride];
                    f(&mut out);
                    out.iter()
                        .step_by(stride)
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>()
                };
                let want = run(&|o| portable::scores(&q, hd, &k, 0.125, o, stride));
                assert_eq!(run(&|o| scores(&q, hd, &k, 0.125, o, stride)), want);
                // One query at a time (another blocking) gives the same bits.
                let alone: Vec<u32> = (0..m)
                    .map(|j| {
                        run(&|o| scores(&q[j * hd..(j + 1) * hd], hd, &k, 0.125, o, stride))[0]
                    })
                    .collect();
                assert_eq!(alone, want);
                // An f16 key: its widened copy's bits, vector and portable alike.
                let from_half = run(&|o| scores(&q, hd, &kh, 0.125, o, stride));
                assert_eq!(
                    from_half,
                    run(&|o| scores(&q, hd, &widened, 0.125, o, stride))
                );
                assert_eq!(
                    from_half,
                    run(&|o| portable::scores(&q, hd, &kh, 0.125, o, stride))
                );
            }
        }
    }

    /// Every form of the key-block scores this CPU runs: the dispatched one, and in a
    /// vector build AVX2's and (where the CPU has it) AVX-512's by name.
    #[allow(clippy::type_complexity, reason = "a list of function pointers")]
    fn block_score_forms() -> Vec<(&'static str, Box<dyn Fn(&KeyBlocks, &[f32], &mut [f32])>)> {
        #[allow(unused_mut, reason = "the vector build adds its forms")]
        let mut forms: Vec<(&'static str, Box<dyn Fn(&KeyBlocks, &[f32], &mut [f32])>)> = vec![(
            "dispatched",
            Box::new(|k: &KeyBlocks, q: &[f32], o: &mut [f32]| block_scores(k, q, 0.125, o)),
        )];
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            forms.push((
                "avx2",
                Box::new(|k: &KeyBlocks, q: &[f32], o: &mut [f32]| {
                    // SAFETY: a vector build targets AVX2, FMA and F16C.
                    unsafe { vector::block_scores_avx2(k, q, 0.125, o) }
                }),
            ));
            if std::arch::is_x86_feature_detected!("avx512f") {
                forms.push((
                    "avx512",
                    Box::new(|k: &KeyBlocks, q: &[f32], o: &mut [f32]| {
                        // SAFETY: the CPU has AVX-512 F (checked above).
                        unsafe { vector::block_scores_avx512(k, q, 0.125, o) }
                    }),
                ));
            }
        }
        forms
    }

    #[test]
    fn key_blocks_score_the_bits_of_one_key_at_a_time() {
        // Whole blocks of 8 keys, a remainder, fewer than 8; every prefix (a causal
        // row sees the first `seen` keys); keys read through offsets, f32 and f16.
        for hd in [8, 16, 64] {
            assert!(KeyBlocks::new(&[0f32; 13], &[0], 13).is_none());
            for n in [1, 5, 8, 19, 32] {
                let q = values(hd, 7);
                let row = hd + 3;
                let cache = values(n * row, 8);
                let offs: Vec<usize> = (0..n).rev().map(|j| j * row + 1).collect();
                let halves_cache = halves(&cache);
                for (kind, keys) in [
                    ("f32", KeyBlocks::new(&cache, &offs, hd).expect("blocks")),
                    (
                        "f16",
                        KeyBlocks::new(&halves_cache, &offs, hd).expect("blocks"),
                    ),
                ] {
                    let one_by_one: Vec<u32> = offs
                        .iter()
                        .map(|&off| {
                            let mut o = [0f32];
                            if kind == "f32" {
                                scores(&q, hd, &cache[off..off + hd], 0.125, &mut o, 1);
                            } else {
                                scores(&q, hd, &halves_cache[off..off + hd], 0.125, &mut o, 1);
                            }
                            o[0].to_bits()
                        })
                        .collect();
                    for seen in [n, n.saturating_sub(3).max(1)] {
                        let mut want = vec![0f32; seen];
                        portable::block_scores(&keys, &q, 0.125, &mut want);
                        let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(want, one_by_one[..seen], "portable, {kind}, hd {hd}");
                        for (form, f) in block_score_forms() {
                            let mut got = vec![0f32; seen];
                            f(&keys, &q, &mut got);
                            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                            assert_eq!(got, want, "{form}, {kind}, hd {hd}, {seen} of {n}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn weighted_sums_are_the_portable_bits() {
        for hd in [1, 8, 13, 16, 24, 40, 64, 72, 100, 128] {
            let positions = 11;
            let row = hd + 5; // values of other heads between positions
            let values_f32 = values(positions * row, 3);
            let values_f16 = halves(&values_f32);
            let w = values(positions, 4);
            let offs: Vec<usize> = (0..positions).rev().map(|p| p * row + 2).collect();
            let start = values(hd, 5);
            let run = |f: &dyn Fn(&mut [f32])| {
                let mut acc = start.clone();
                f(&mut acc);
                acc
            };
            assert_eq!(
                run(&|a| weighted_sum(a, &w, &values_f32, &offs)),
                run(&|a| portable::weighted_sum(a, &w, &values_f32, &offs))
            );
            assert_eq!(
                run(&|a| weighted_sum(a, &w, &values_f16, &offs)),
                run(&|a| portable::weighted_sum(a, &w, &values_f16, &offs))
            );
            // Each vector form by name, where this CPU runs it.
            #[cfg(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma",
                target_feature = "f16c"
            ))]
            {
                let want32 = run(&|a| portable::weighted_sum(a, &w, &values_f32, &offs));
                let want16 = run(&|a| portable::weighted_sum(a, &w, &values_f16, &offs));
                // SAFETY: a vector build targets AVX2, FMA and F16C.
                let avx2 = |a: &mut [f32]| unsafe {
                    vector::weighted_from_avx2(a, 0, &w, &values_f32, &offs)
                };
                assert_eq!(run(&avx2), want32, "avx2, hd {hd}");
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512 F (checked above).
                    let f32s = |a: &mut [f32]| unsafe {
                        vector::weighted_sum_avx512(a, &w, &values_f32, &offs)
                    };
                    // SAFETY: as above.
                    let f16s = |a: &mut [f32]| unsafe {
                        vector::weighted_sum_avx512(a, &w, &values_f16, &offs)
                    };
                    assert_eq!(run(&f32s), want32, "avx512 f32, hd {hd}");
                    assert_eq!(run(&f16s), want16, "avx512 f16, hd {hd}");
                }
            }
        }
    }

    #[test]
    fn rows_weighed_together_are_the_bits_of_each_alone() {
        for hd in [8, 13, 16, 40, 64, 128] {
            for m in 1..=5 {
                let positions = 9;
                let row = hd + 3;
                let cache = values(positions * row, 11);
                let cache_f16 = halves(&cache);
                let offs: Vec<usize> = (0..positions).map(|p| p * row + 1).collect();
                let stride = positions + 2;
                let w = values(m * stride, 12);
                let start = values(m * hd, 13);
                let alone = |f16s: bool| {
                    let mut acc = start.clone();
                    for (g, a) in acc.chunks_exact_mut(hd).enumerate() {
                        let wg = &w[g * stride..g * stride + positions];
                        if f16s {
                            portable::weighted_sum(a, wg, &cache_f16, &offs);
                        } else {
                            portable::weighted_sum(a, wg, &cache, &offs);
                        }
                    }
                    acc
                };
                let mut got = start.clone();
                weighted_sums(&mut got, m, &w, stride, &cache, &offs);
                assert_eq!(got, alone(false), "f32, hd {hd}, {m} rows");
                let mut got = start.clone();
                weighted_sums(&mut got, m, &w, stride, &cache_f16, &offs);
                assert_eq!(got, alone(true), "f16, hd {hd}, {m} rows");
            }
        }
    }

    #[test]
    fn exp_is_within_2_ulp_and_the_same_bits_in_every_lane() {
        let xs: Vec<f32> = (0..20_000).map(|i| -(i as f32) * 0.00435).collect();
        for &x in &xs {
            let (got, want) = (portable::exp_neg(x), f64::from(x).exp());
            let ulp = f64::from(f32::EPSILON) * want;
            assert!(
                (f64::from(got) - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, not {want}"
            );
        }
        // Far below the floor, the weight is at most 2^-125 of the maximum's.
        assert!(portable::exp_neg(-1e30) <= 2f32.powi(-125));
        assert_eq!(portable::exp_neg(0.0), 1.0);
        // Vector and portable: the same bits, tails included.
        for n in [3, 8, 21, 256] {
            let mut a: Vec<f32> = values(n, 6);
            assert_eq!(max(&a), portable::max(&a), "{n}");
            let mut b = a.clone();
            let m = 2.5;
            let (sa, sb) = (exp_sub(&mut a, m), portable::exp_sub(&mut b, m));
            assert_eq!(sa.to_bits(), sb.to_bits());
            assert_eq!(a, b);
            // The sum is the float64 sum of the exponentials to a few ulp of it.
            let exact: f64 = a.iter().map(|&x| f64::from(x)).sum();
            assert!((f64::from(sa) - exact).abs() <= 4.0 * f64::from(f32::EPSILON) * exact);
        }
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn scores_are_close_to_float64() {
        for hd in [5, 64, 1000] {
            let (q, k) = (values(hd, 4), values(hd, 5));
            let exact: f64 = q
                .iter()
                .zip(&k)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let size: f64 = q
                .iter()
                .zip(&k)
                .map(|(a, b)| f64::from((a * b).abs()))
                .sum();
            let mut out = [0f32];
            scores(&q, hd, &k, 1.0, &mut out, 1);
            let err = (f64::from(out[0]) - exact).abs();
            assert!(err <= 1e-6 * size, "head size {hd}: {err} off {exact}");
        }
    }
}
