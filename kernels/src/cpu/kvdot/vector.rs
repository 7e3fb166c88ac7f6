//! The vector arithmetic of CPU attention (AVX2, FMA and F16C; AVX-512 forms where the
//! CPU has them and the AVX-512 products run), compiled where the build targets AVX2,
//! FMA and F16C.

use std::arch::x86_64::*;

use super::elem::{EXP_MIN, EXP_POLY, Elem, KeyBlocks, LANES, LN2_HI, LN2_LO, LOG2E, Load};
use super::portable;

/// Queries that share one load of a key.
const QUERIES_PER_KEY: usize = 4;
use crate::cpu::simd::hsum;

/// Stores eight f32 at `x[at..at + 8]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store8(x: &mut [f32], at: usize, v: __m256) {
    let eight = &mut x[at..at + LANES];
    // SAFETY: `eight` holds 8 f32.
    unsafe { _mm256_storeu_ps(eight.as_mut_ptr(), v) }
}

/// `N` queries against one key, the key loaded once per 8 elements.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scores_n<const N: usize, T: Elem>(
    q: &[f32],
    hd: usize,
    k: &[T],
    scale: f32,
    out: &mut [f32],
    stride: usize,
) {
    let whole = hd - hd % LANES;
    let k = &k[..hd];
    let qs: [&[f32]; N] = std::array::from_fn(|j| &q[j * hd..(j + 1) * hd]);
    let mut acc = [_mm256_setzero_ps(); N];
    for c in (0..whole).step_by(LANES) {
        let kv = T::load8(k, c);
        for j in 0..N {
            acc[j] = _mm256_fmadd_ps(f32::load8(qs[j], c), kv, acc[j]);
        }
    }
    for j in 0..N {
        let mut s = hsum(acc[j]);
        for i in whole..hd {
            s = qs[j][i].mul_add(k[i].widen(), s);
        }
        out[j * stride] = s * scale;
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scores_tf<T: Elem>(q: &[f32], hd: usize, k: &[T], scale: f32, out: &mut [f32], stride: usize) {
    let m = q.len() / hd;
    let mut j = 0;
    while j < m {
        let take = (m - j).min(QUERIES_PER_KEY);
        let (q, out) = (&q[j * hd..(j + take) * hd], &mut out[j * stride..]);
        match take {
            1 => scores_n::<1, T>(q, hd, k, scale, out, stride),
            2 => scores_n::<2, T>(q, hd, k, scale, out, stride),
            3 => scores_n::<3, T>(q, hd, k, scale, out, stride),
            _ => scores_n::<4, T>(q, hd, k, scale, out, stride),
        }
        j += take;
    }
}

/// `hsum` of eight vectors at once: lane `k` of the result is `hsum(a[k])`, the same
/// additions in the same order (the halves, then pairs, then neighbours), done on
/// shuffled vectors so that eight sums cost seven additions.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum8(a: [__m256; 8]) -> __m256 {
    // b[k] = [a_k[j] + a_k[j+4] | a_{k+4}[j] + a_{k+4}[j+4]], j < 4.
    let b: [__m256; 4] = std::array::from_fn(|k| {
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(a[k], a[k + 4]),
            _mm256_permute2f128_ps::<0x31>(a[k], a[k + 4]),
        )
    });
    // c[m] = [b_k[j] + b_k[j+2], b_{k+1}[j] + b_{k+1}[j+2] | ...], j < 2, k = 2m.
    let c: [__m256; 2] = std::array::from_fn(|m| {
        let (x, y) = (b[2 * m], b[2 * m + 1]);
        _mm256_add_ps(
            _mm256_shuffle_ps::<0x44>(x, y),
            _mm256_shuffle_ps::<0xEE>(x, y),
        )
    });
    // Lane k: c's first element of vector k plus its second.
    _mm256_add_ps(
        _mm256_shuffle_ps::<0x88>(c[0], c[1]),
        _mm256_shuffle_ps::<0xDD>(c[0], c[1]),
    )
}

/// Whether the AVX-512 forms run: where the CPU has AVX-512 F and the quantized
/// products run their AVX-512 kernel (`INFERMETER_CPU_KERNEL=avx2` turns both off).
pub(super) fn avx512() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && matches!(
                crate::cpu::qmatmul::Kernel::detect(),
                crate::cpu::qmatmul::Kernel::Vnni(_)
            )
    })
}

/// Sixteen elements from `x[at..at + 16]`, widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn load16<T: Elem>(x: &[T], at: usize) -> __m512 {
    const { assert!(std::mem::size_of::<T>() == if T::HALF { 2 } else { 4 }) };
    let sixteen = &x[at..at + 2 * LANES];
    if T::HALF {
        // SAFETY: `sixteen` holds 16 f16 (32 bytes; the size asserted above).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(sixteen.as_ptr().cast())) }
    } else {
        // SAFETY: `sixteen` holds 16 f32 (the size asserted above).
        unsafe { _mm512_loadu_ps(sixteen.as_ptr().cast()) }
    }
}

/// Stores sixteen f32 at `x[at..at + 16]`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn store16(x: &mut [f32], at: usize, v: __m512) {
    let sixteen = &mut x[at..at + 2 * LANES];
    // SAFETY: `sixteen` holds 16 f32.
    unsafe { _mm512_storeu_ps(sixteen.as_mut_ptr(), v) }
}

/// Stores the first `out.len()` (at most 8) lanes of `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_first(out: &mut [f32], s: __m256) {
    if out.len() == LANES {
        store8(out, 0, s);
    } else {
        let mut lanes = [0f32; LANES];
        store8(&mut lanes, 0, s);
        out.copy_from_slice(&lanes[..out.len()]);
    }
}

/// One query against eight keys per pass: each key's lanes are summed as in
/// `scores_n` (the query loaded once for the eight), the eight trees at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn block_scores_avx2(keys: &KeyBlocks, q: &[f32], scale: f32, out: &mut [f32]) {
    let scale_v = _mm256_set1_ps(scale);
    let len = keys.block_len();
    for (block, o) in out.chunks_mut(LANES).enumerate() {
        let data = &keys.data[block * len..(block + 1) * len];
        let mut acc = [_mm256_setzero_ps(); LANES];
        for (c, d) in data.chunks_exact(8 * LANES).enumerate() {
            let qv = f32::load8(q, c * LANES);
            for p in 0..4 {
                acc[p] = _mm256_fmadd_ps(qv, f32::load8(d, p * 2 * LANES), acc[p]);
                acc[p + 4] = _mm256_fmadd_ps(qv, f32::load8(d, p * 2 * LANES + LANES), acc[p + 4]);
            }
        }
        store_first(o, _mm256_mul_ps(hsum8(acc), scale_v));
    }
}

/// [`block_scores_avx2`] on 512-bit vectors, each holding two keys' lanes (the
/// query's chunk in both halves): the same operations per lane.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(super) fn block_scores_avx512(keys: &KeyBlocks, q: &[f32], scale: f32, out: &mut [f32]) {
    let scale_v = _mm256_set1_ps(scale);
    let len = keys.block_len();
    for (block, o) in out.chunks_mut(LANES).enumerate() {
        let data = &keys.data[block * len..(block + 1) * len];
        let mut acc = [_mm512_setzero_ps(); 4];
        for (c, d) in data.chunks_exact(8 * LANES).enumerate() {
            let qv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(f32::load8(
                q,
                c * LANES,
            ))));
            for (p, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(qv, load16(d, p * 2 * LANES), *a);
            }
        }
        let half = |p: usize| {
            let v = _mm512_castps_pd(acc[p % 4]);
            if p < 4 {
                _mm256_castpd_ps(_mm512_castpd512_pd256(v))
            } else {
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(v))
            }
        };
        let lanes: [__m256; LANES] = std::array::from_fn(half);
        store_first(o, _mm256_mul_ps(hsum8(lanes), scale_v));
    }
}

/// `R` 512-bit registers of `acc` from element `d0`, kept in registers over every
/// position (each element's multiply-adds as in `weighted_n`).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn weighted_n16<const R: usize, T: Elem>(
    acc: &mut [f32],
    d0: usize,
    w: &[f32],
    values: &[T],
    offs: &[usize],
) {
    let mut a: [__m512; R] = std::array::from_fn(|r| load16(acc, d0 + r * 2 * LANES));
    for (&wp, &off) in w.iter().zip(offs) {
        let wv = _mm512_set1_ps(wp);
        let v = &values[off + d0..off + d0 + R * 2 * LANES];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm512_fmadd_ps(wv, load16(v, r * 2 * LANES), *ar);
        }
    }
    for (r, x) in a.into_iter().enumerate() {
        store16(acc, d0 + r * 2 * LANES, x);
    }
}

/// `M` rows' registers `d0..d0 + R·16` of `acc` (`[M, hd]`) over every position,
/// each value loaded once for the `M` rows (each element's multiply-adds as in
/// `weighted_n`).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments, reason = "one kernel's operands")]
fn weighted_rows16<const M: usize, const R: usize, T: Elem>(
    acc: &mut [f32],
    hd: usize,
    d0: usize,
    w: &[f32],
    stride: usize,
    values: &[T],
    offs: &[usize],
) {
    let ws: [&[f32]; M] = std::array::from_fn(|m| &w[m * stride..m * stride + offs.len()]);
    let mut a: [[__m512; R]; M] =
        std::array::from_fn(|m| std::array::from_fn(|r| load16(acc, m * hd + d0 + r * 16)));
    for (p, &off) in offs.iter().enumerate() {
        let v = &values[off + d0..off + d0 + R * 2 * LANES];
        let vs: [__m512; R] = std::array::from_fn(|r| load16(v, r * 2 * LANES));
        for (am, wm) in a.iter_mut().zip(&ws) {
            let wv = _mm512_set1_ps(wm[p]);
            for (ar, vr) in am.iter_mut().zip(&vs) {
                *ar = _mm512_fmadd_ps(wv, *vr, *ar);
            }
        }
    }
    for (m, am) in a.into_iter().enumerate() {
        for (r, x) in am.into_iter().enumerate() {
            store16(acc, m * hd + d0 + r * 2 * LANES, x);
        }
    }
}

/// `M` rows of `weighted_sums` on 512-bit vectors, the last elements as in AVX2.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn weighted_rows_avx512<const M: usize, T: Elem>(
    acc: &mut [f32],
    w: &[f32],
    stride: usize,
    values: &[T],
    offs: &[usize],
) {
    let hd = acc.len() / M;
    let mut d0 = 0;
    while d0 + 2 * LANES <= hd {
        let r = match (hd - d0) / (2 * LANES) {
            4.. => {
                weighted_rows16::<M, 4, T>(acc, hd, d0, w, stride, values, offs);
                4
            }
            2 | 3 => {
                weighted_rows16::<M, 2, T>(acc, hd, d0, w, stride, values, offs);
                2
            }
            _ => {
                weighted_rows16::<M, 1, T>(acc, hd, d0, w, stride, values, offs);
                1
            }
        };
        d0 += r * 2 * LANES;
    }
    if d0 < hd {
        for (g, a) in acc.chunks_exact_mut(hd).enumerate() {
            let wg = &w[g * stride..g * stride + offs.len()];
            weighted_from_avx2(a, d0, wg, values, offs);
        }
    }
}

/// [`weighted_sums`] on 512-bit vectors, up to 4 rows per pass.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(super) fn weighted_sums_avx512<T: Elem>(
    acc: &mut [f32],
    m: usize,
    w: &[f32],
    stride: usize,
    values: &[T],
    offs: &[usize],
) {
    let hd = acc.len() / m;
    let mut g = 0;
    while g < m {
        let take = (m - g).min(4);
        let (a, w) = (&mut acc[g * hd..(g + take) * hd], &w[g * stride..]);
        match take {
            1 => weighted_rows_avx512::<1, T>(a, w, stride, values, offs),
            2 => weighted_rows_avx512::<2, T>(a, w, stride, values, offs),
            3 => weighted_rows_avx512::<3, T>(a, w, stride, values, offs),
            _ => weighted_rows_avx512::<4, T>(a, w, stride, values, offs),
        }
        g += take;
    }
}

/// `weighted_sum` 16 elements at a time, the rest as in AVX2.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(super) fn weighted_sum_avx512<T: Elem>(
    acc: &mut [f32],
    w: &[f32],
    values: &[T],
    offs: &[usize],
) {
    let hd = acc.len();
    let mut d0 = 0;
    while d0 + 2 * LANES <= hd {
        let r = match (hd - d0) / (2 * LANES) {
            4.. => {
                weighted_n16::<4, T>(acc, d0, w, values, offs);
                4
            }
            2 | 3 => {
                weighted_n16::<2, T>(acc, d0, w, values, offs);
                2
            }
            _ => {
                weighted_n16::<1, T>(acc, d0, w, values, offs);
                1
            }
        };
        d0 += r * 2 * LANES;
    }
    weighted_from_avx2(acc, d0, w, values, offs);
}

/// `R` registers of `acc` from element `d0`, kept in registers over every position.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn weighted_n<const R: usize, T: Elem>(
    acc: &mut [f32],
    d0: usize,
    w: &[f32],
    values: &[T],
    offs: &[usize],
) {
    let mut a: [__m256; R] = std::array::from_fn(|r| f32::load8(acc, d0 + r * LANES));
    for (&wp, &off) in w.iter().zip(offs) {
        let wv = _mm256_set1_ps(wp);
        let v = &values[off + d0..off + d0 + R * LANES];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm256_fmadd_ps(wv, T::load8(v, r * LANES), *ar);
        }
    }
    for (r, x) in a.into_iter().enumerate() {
        store8(acc, d0 + r * LANES, x);
    }
}

/// `acc[start..] += Σ_p w[p]·values[offs[p] + start..]`, 8 elements at a time,
/// the last ones one by one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn weighted_from_avx2<T: Elem>(
    acc: &mut [f32],
    start: usize,
    w: &[f32],
    values: &[T],
    offs: &[usize],
) {
    let hd = acc.len();
    let mut d0 = start;
    while d0 + LANES <= hd {
        let regs = (hd - d0) / LANES;
        let r = match regs {
            8.. => {
                weighted_n::<8, T>(acc, d0, w, values, offs);
                8
            }
            4..=7 => {
                weighted_n::<4, T>(acc, d0, w, values, offs);
                4
            }
            2 | 3 => {
                weighted_n::<2, T>(acc, d0, w, values, offs);
                2
            }
            _ => {
                weighted_n::<1, T>(acc, d0, w, values, offs);
                1
            }
        };
        d0 += r * LANES;
    }
    if d0 < hd {
        // The last elements, one by one in position order.
        portable::weighted_from(acc, d0, w, values, offs);
    }
}

/// Eight lanes of `portable::exp_neg`, the same operations in the same order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_neg(x: __m256) -> __m256 {
    let x = _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN));
    let n = _mm256_floor_ps(_mm256_fmadd_ps(
        x,
        _mm256_set1_ps(LOG2E),
        _mm256_set1_ps(0.5),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let y = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    let e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    );
    _mm256_mul_ps(y, _mm256_castsi256_ps(e))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_sub_tf(s: &mut [f32], max: f32) -> f32 {
    let n = s.len();
    let whole = n - n % LANES;
    let m = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    for c in (0..whole).step_by(LANES) {
        let e = exp_neg(_mm256_sub_ps(f32::load8(s, c), m));
        store8(s, c, e);
        acc = _mm256_add_ps(acc, e);
    }
    let mut sum = hsum(acc);
    for x in &mut s[whole..] {
        *x = portable::exp_neg(*x - max);
        sum += *x;
    }
    sum
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn max_tf(s: &[f32]) -> f32 {
    let whole = s.len() - s.len() % LANES;
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    for c in (0..whole).step_by(LANES) {
        m = _mm256_max_ps(m, f32::load8(s, c));
    }
    let mut lanes = [0f32; LANES];
    store8(&mut lanes, 0, m);
    portable::max(&s[whole..]).max(portable::max(&lanes))
}

/// `out[j·stride] = scale · (q_j · k)` for the queries `q` (`[m, hd]`).
#[inline]
pub fn scores<T: Elem>(q: &[f32], hd: usize, k: &[T], scale: f32, out: &mut [f32], stride: usize) {
    // SAFETY: this module is compiled only where the build enables these features.
    unsafe { scores_tf(q, hd, k, scale, out, stride) }
}

/// `out[j] = scale · (q · key_j)` for one query `q` and the first `out.len()` keys
/// of `keys`.
#[inline]
pub fn block_scores(keys: &KeyBlocks, q: &[f32], scale: f32, out: &mut [f32]) {
    if avx512() {
        // SAFETY: `avx512` saw AVX-512 F on this CPU; the rest as in `scores`.
        unsafe { block_scores_avx512(keys, q, scale, out) }
    } else {
        // SAFETY: as in `scores`.
        unsafe { block_scores_avx2(keys, q, scale, out) }
    }
}

/// [`weighted_sum`] for the `m` rows of `acc` (`[m, hd]`) that see the same
/// positions: row `g` weighs them by `w[g·stride..]`; each value is loaded once for
/// the rows where AVX-512 runs.
#[inline]
pub fn weighted_sums<T: Elem>(
    acc: &mut [f32],
    m: usize,
    w: &[f32],
    stride: usize,
    values: &[T],
    offs: &[usize],
) {
    // Values widened to f32 (a prompt tile's) on 512-bit vectors; f16 values read
    // from the cache (a decode row's) ran 10-20% slower so than by AVX2 row by row
    // (criterion `attention`, decode at 1,024 and 4,096 positions).
    if avx512() && !T::HALF {
        // SAFETY: as in `block_scores`.
        unsafe { weighted_sums_avx512(acc, m, w, stride, values, offs) }
    } else {
        let hd = acc.len() / m;
        for (g, a) in acc.chunks_exact_mut(hd).enumerate() {
            let wg = &w[g * stride..g * stride + offs.len()];
            // SAFETY: as in `scores`.
            unsafe { weighted_from_avx2(a, 0, wg, values, offs) }
        }
    }
}

/// `acc += Σ_p w[p]·values[offs[p]..]`, in position order.
#[inline]
pub fn weighted_sum<T: Elem>(acc: &mut [f32], w: &[f32], values: &[T], offs: &[usize]) {
    if avx512() {
        // SAFETY: as in `block_scores`.
        unsafe { weighted_sum_avx512(acc, w, values, offs) }
    } else {
        // SAFETY: as in `scores`.
        unsafe { weighted_from_avx2(acc, 0, w, values, offs) }
    }
}

/// `x = e^(x - max)` for every element, returning their sum (lanes, then tree).
#[inline]
pub fn exp_sub(s: &mut [f32], max: f32) -> f32 {
    // SAFETY: as in `scores`.
    unsafe { exp_sub_tf(s, max) }
}

/// The largest element (`-inf` for none).
#[inline]
pub fn max(s: &[f32]) -> f32 {
    // SAFETY: as in `scores`.
    unsafe { max_tf(s) }
}
