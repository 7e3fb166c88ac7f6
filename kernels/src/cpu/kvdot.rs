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

use half::f16;

/// Lanes of a vector accumulator.
const LANES: usize = 8;

/// The least exponent `exp_sub` takes.
const EXP_MIN: f32 = -87.0;
/// log2(e).
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2, split so that `n·LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
/// The rest of ln 2.
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' `expf` polynomial, highest degree first (its constants as f32 rounds them).
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_345e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// An element of the KV cache, as this module reads it.
pub trait Elem: Copy + Send + Sync + 'static + Load {
    /// Whether this is f16 (2 bytes; else f32, 4 bytes): how the vector code loads it.
    #[allow(dead_code, reason = "the vector build reads it")]
    const HALF: bool;
    /// The value as f32 (exact).
    fn widen(self) -> f32;
}

impl Elem for f32 {
    const HALF: bool = false;
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Elem for f16 {
    const HALF: bool = true;
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// A span's keys widened to f32 for a prompt tile's scores, eight keys to a block:
/// block `i`, chunk `c` (elements `8c..8c+8`) and pair `p < 4` hold 16 values, the
/// chunk of key `8i+p` then that of key `8i+p+4` (zeros past the span's last key), so
/// that one 256-bit load is one key's chunk and one 512-bit load a pair's.
pub struct KeyBlocks {
    hd: usize,
    data: Vec<f32>,
}

impl KeyBlocks {
    /// The keys at `offs` in `keys` (`hd` elements each), or `None` where `hd` is not
    /// a multiple of 8 (those keys are scored one by one from the cache).
    pub fn new<T: Elem>(keys: &[T], offs: &[usize], hd: usize) -> Option<Self> {
        if !hd.is_multiple_of(LANES) {
            return None;
        }
        let chunks = hd / LANES;
        let mut data = vec![0f32; offs.len().div_ceil(LANES) * chunks * 2 * LANES * 4];
        for (j, &off) in offs.iter().enumerate() {
            for c in 0..chunks {
                let at = Self::at(chunks, j, c);
                let src = &keys[off + c * LANES..off + (c + 1) * LANES];
                for (d, k) in data[at..at + LANES].iter_mut().zip(src) {
                    *d = k.widen();
                }
            }
        }
        Some(Self { hd, data })
    }

    /// Where chunk `c` of key `j` starts, for `chunks` chunks per key.
    fn at(chunks: usize, j: usize, c: usize) -> usize {
        let (block, k) = (j / LANES, j % LANES);
        ((block * chunks + c) * 4 + k % 4) * 2 * LANES + (k / 4) * LANES
    }

    /// Values per block of 8 keys.
    #[allow(dead_code, reason = "the vector build reads it")]
    fn block_len(&self) -> usize {
        self.hd * LANES
    }
}

/// The portable arithmetic (also the reference the vector code is tested against).
#[allow(
    dead_code,
    reason = "a vector build runs it in its tests and for tails only"
)]
pub mod portable {
    use crate::cpu::kvdot::{EXP_MIN, EXP_POLY, Elem, KeyBlocks, LANES, LN2_HI, LN2_LO, LOG2E};

    /// Nothing to load: the portable code reads elements one by one (the vector
    /// build has its own).
    pub trait Load {}
    impl<T> Load for T {}

    /// The tree sum of 8 lanes (see the module doc).
    fn tree(a: [f32; LANES]) -> f32 {
        let b: [f32; 4] = std::array::from_fn(|j| a[j] + a[j + 4]);
        let c = [b[0] + b[2], b[1] + b[3]];
        c[0] + c[1]
    }

    /// `scale · (q · k)` over `q.len()` elements.
    pub fn dot<T: Elem>(q: &[f32], k: &[T], scale: f32) -> f32 {
        let n = q.len();
        let whole = n - n % LANES;
        let mut acc = [0f32; LANES];
        for c in (0..whole).step_by(LANES) {
            for j in 0..LANES {
                acc[j] = q[c + j].mul_add(k[c + j].widen(), acc[j]);
            }
        }
        let mut s = tree(acc);
        for i in whole..n {
            s = q[i].mul_add(k[i].widen(), s);
        }
        s * scale
    }

    /// `out[j·stride] = scale · (q_j · k)` for the queries `q` (`[m, hd]`).
    pub fn scores<T: Elem>(
        q: &[f32],
        hd: usize,
        k: &[T],
        scale: f32,
        out: &mut [f32],
        stride: usize,
    ) {
        for (j, qj) in q.chunks_exact(hd).enumerate() {
            out[j * stride] = dot(qj, k, scale);
        }
    }

    /// `out[j] = scale · (q · key_j)` for one query `q` and the first `out.len()` keys
    /// of `keys`.
    pub fn block_scores(keys: &KeyBlocks, q: &[f32], scale: f32, out: &mut [f32]) {
        let chunks = keys.hd / LANES;
        let mut key = vec![0f32; keys.hd];
        for (j, o) in out.iter_mut().enumerate() {
            for (c, dst) in key.chunks_exact_mut(LANES).enumerate() {
                let at = KeyBlocks::at(chunks, j, c);
                dst.copy_from_slice(&keys.data[at..at + LANES]);
            }
            *o = dot(q, &key, scale);
        }
    }

    /// `acc += Σ_p w[p]·values[offs[p]..]`, in position order.
    pub fn weighted_sum<T: Elem>(acc: &mut [f32], w: &[f32], values: &[T], offs: &[usize]) {
        weighted_from(acc, 0, w, values, offs);
    }

    /// [`weighted_sum`] for the rows of `acc` (`[m, hd]`, `hd = acc.len() / m`) that
    /// see the same positions: row `g` weighs them by `w[g·stride..]`.
    pub fn weighted_sums<T: Elem>(
        acc: &mut [f32],
        m: usize,
        w: &[f32],
        stride: usize,
        values: &[T],
        offs: &[usize],
    ) {
        let hd = acc.len() / m;
        for (g, a) in acc.chunks_exact_mut(hd).enumerate() {
            weighted_from(a, 0, &w[g * stride..g * stride + offs.len()], values, offs);
        }
    }

    /// `acc[d0..] += Σ_p w[p]·values[offs[p] + d0..]`, in position order: the
    /// elements of a row from `d0` on (the vector code's tail).
    pub fn weighted_from<T: Elem>(
        acc: &mut [f32],
        d0: usize,
        w: &[f32],
        values: &[T],
        offs: &[usize],
    ) {
        let hd = acc.len();
        for (&wp, &off) in w.iter().zip(offs) {
            for (a, v) in acc[d0..].iter_mut().zip(&values[off + d0..off + hd]) {
                *a = wp.mul_add(v.widen(), *a);
            }
        }
    }

    /// `e^x` for `x <= 0` (a score minus its row's maximum), to about 2 ulp: `x` is
    /// held above -87 (below, `e^x` is under 2^-125 of the maximum's weight), split
    /// as `n·ln 2 + r` with `|r| <= ln 2 / 2`, and `e^r` taken from Cephes' degree-6
    /// polynomial.
    pub fn exp_neg(x: f32) -> f32 {
        let x = x.max(EXP_MIN);
        let n = x.mul_add(LOG2E, 0.5).floor();
        let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
        let mut p = EXP_POLY[0];
        for c in &EXP_POLY[1..] {
            p = p.mul_add(r, *c);
        }
        let y = p.mul_add(r * r, r) + 1.0;
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }

    /// `x = e^(x - max)` for every element, returning their sum: lane `j` of 8 adds
    /// elements `j, j+8, ...` in order, the lanes are summed as a tree and the
    /// elements past the last whole 8 added in order.
    pub fn exp_sub(s: &mut [f32], max: f32) -> f32 {
        let whole = s.len() - s.len() % LANES;
        let mut acc = [0f32; LANES];
        for c in (0..whole).step_by(LANES) {
            for (j, a) in acc.iter_mut().enumerate() {
                let x = &mut s[c + j];
                *x = exp_neg(*x - max);
                *a += *x;
            }
        }
        let mut sum = tree(acc);
        for x in &mut s[whole..] {
            *x = exp_neg(*x - max);
            sum += *x;
        }
        sum
    }

    /// The largest element (`-inf` for none); the same value in any order, as no
    /// score is NaN.
    pub fn max(s: &[f32]) -> f32 {
        s.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod vector {
    use std::arch::x86_64::*;

    use crate::cpu::kvdot::{
        EXP_MIN, EXP_POLY, Elem, KeyBlocks, LANES, LN2_HI, LN2_LO, LOG2E, f16, portable,
    };

    /// Queries that share one load of a key.
    const QUERIES_PER_KEY: usize = 4;
    use crate::cpu::simd::hsum;

    /// Eight elements from `x[at..at + 8]`, widened to f32.
    pub trait Load: Sized {
        /// The load.
        fn load8(x: &[Self], at: usize) -> __m256;
    }

    impl Load for f32 {
        #[inline(always)]
        fn load8(x: &[f32], at: usize) -> __m256 {
            let eight = &x[at..at + LANES];
            // SAFETY: `eight` holds 8 f32.
            unsafe { _mm256_loadu_ps(eight.as_ptr()) }
        }
    }

    impl Load for f16 {
        #[inline(always)]
        fn load8(x: &[f16], at: usize) -> __m256 {
            let eight = &x[at..at + LANES];
            // SAFETY: `eight` holds 8 f16 (16 bytes); f16 is a transparent u16.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(eight.as_ptr().cast())) }
        }
    }

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
    fn scores_tf<T: Elem>(
        q: &[f32],
        hd: usize,
        k: &[T],
        scale: f32,
        out: &mut [f32],
        stride: usize,
    ) {
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
                    acc[p + 4] =
                        _mm256_fmadd_ps(qv, f32::load8(d, p * 2 * LANES + LANES), acc[p + 4]);
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
    pub fn scores<T: Elem>(
        q: &[f32],
        hd: usize,
        k: &[T],
        scale: f32,
        out: &mut [f32],
        stride: usize,
    ) {
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
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
pub use vector::{Load, block_scores, exp_sub, max, scores, weighted_sum, weighted_sums};

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
pub use portable::{Load, block_scores, exp_sub, max, scores, weighted_sum, weighted_sums};

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
