//! AVX-512 VNNI kernels for the quantized matrix products (`qmatmul`), chosen at start-up
//! where the CPU has AVX-512 F, BW, VL and VNNI: the AVX2 kernels' float arithmetic on
//! 512-bit vectors that hold two output columns, lanes 0-7 the first and 8-15 the
//! second. A weight block of each column is unpacked once for a tile of up to
//! 8 activation rows, each row's block is loaded once for both columns
//! (broadcast into both halves), and each block's integer dot product is one
//! `vpdpbusd` (unsigned by signed bytes, summed in 32 bits) where AVX2 needs
//! `vpmaddubsw` + `vpmaddwd`. A chunk's odd last column runs the same steps on
//! 256-bit vectors.
//!
//! Neither AVX2 product saturates for these formats (Q4 values are at most 15, Q8 ones
//! at most 127 in magnitude), so both give the same integers; the float steps of each
//! lane are the AVX2 kernel's (the scale `d_w·d_x`, one fused multiply-add per block,
//! the Q4 offset `m_w·s_x` multiplied then added in block order, the tree sum), so
//! both give the same bits: a row does not depend on which kernel the CPU chose either.
//!
//! Like [`super::qmatmul_avx2`], its `#[target_feature]` functions are entered only
//! with a [`Vnni`] value, which [`Vnni::detect`] makes only after seeing the features.
#![allow(unsafe_code)]

use super::blocks::{BlockQ4, BlockQ8, QuantizedRows, Weights};

/// Proof that this CPU has AVX2, FMA and AVX-512 F/BW/VL/VNNI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vnni(());

impl Vnni {
    /// `Some` when this CPU runs these kernels.
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            return Some(Vnni(()));
        }
        None
    }
}

/// Q4 (Q4_0 or Q4_1) output columns `first_col..` into `chunk` (see
/// [`super::blocks::walk`]).
pub fn q4(
    _: Vnni,
    weights: Weights<'_, BlockQ4>,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a `Vnni` exists only where the CPU has every feature these use.
    unsafe {
        x86::q4_columns(weights, acts, rows, first_col, chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (weights, acts, rows, first_col, chunk);
        unreachable!("no Vnni value exists off x86-64")
    }
}

/// Q8_0 output columns `first_col..` into `chunk`.
pub fn q8(
    _: Vnni,
    weights: Weights<'_, BlockQ8>,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `q4`.
    unsafe {
        x86::q8_columns(weights, acts, rows, first_col, chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (weights, acts, rows, first_col, chunk);
        unreachable!("no Vnni value exists off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::blocks::{
        ACT_PASS_ROWS, ActBlock, ActRow, BLOCK, BlockQ4, BlockQ8, Column, QuantizedRows, Weights,
    };
    use half::f16;

    use super::super::simd::hsum;

    /// Activation rows one pair of columns takes per pass over their blocks.
    const PAIR_ROW_TILE: usize = 8;

    /// The walk of [`super::super::blocks::walk`] two columns at a time: per pass of
    /// activation rows, per pair of columns, per tile of rows, `pair(blocks, tile,
    /// out0, out1)` over the pair's interleaved blocks; a chunk's odd last column (or
    /// every column, where the matrix is not in pairs) goes to `one(column, tile,
    /// out)` by tiles of up to 4 rows.
    #[inline(always)]
    fn walk_pairs<B>(
        weights: Weights<'_, B>,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
        mut pair: impl FnMut(&[B], &[ActRow<'_>], &mut [f32], &mut [f32]),
        mut one: impl FnMut(Column<'_, B>, &[ActRow<'_>], &mut [f32]),
    ) {
        let cols = chunk.len() / rows;
        // Pairs only where the matrix holds them (it does when this kernel was chosen
        // at start-up); columns one by one otherwise.
        let pairs = if weights.paired { cols / 2 } else { 0 };
        for pass in (0..rows).step_by(ACT_PASS_ROWS) {
            let pass_end = (pass + ACT_PASS_ROWS).min(rows);
            for (p, outs) in chunk[..pairs * 2 * rows]
                .chunks_exact_mut(2 * rows)
                .enumerate()
            {
                let w = weights.pair(first_col + 2 * p);
                let (out0, out1) = outs.split_at_mut(rows);
                let mut r = pass;
                while r < pass_end {
                    let take = (pass_end - r).min(PAIR_ROW_TILE);
                    let tile: [ActRow<'_>; PAIR_ROW_TILE] =
                        std::array::from_fn(|i| acts.row(r + i.min(take - 1)));
                    pair(
                        w,
                        &tile[..take],
                        &mut out0[r..r + take],
                        &mut out1[r..r + take],
                    );
                    r += take;
                }
            }
            for c in 2 * pairs..cols {
                let w = weights.column(first_col + c);
                let out = &mut chunk[c * rows..(c + 1) * rows];
                let mut r = pass;
                while r < pass_end {
                    let take = (pass_end - r).min(4);
                    let tile: [ActRow<'_>; 4] =
                        std::array::from_fn(|i| acts.row(r + i.min(take - 1)));
                    one(w, &tile[..take], &mut out[r..r + take]);
                    r += take;
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub fn q4_columns(
        weights: Weights<'_, BlockQ4>,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk_pairs(
            weights,
            acts,
            rows,
            first_col,
            chunk,
            |w, a, o0, o1| match a.len() {
                1 => q4_pair::<1>(w, a, o0, o1),
                2 => q4_pair::<2>(w, a, o0, o1),
                3 => q4_pair::<3>(w, a, o0, o1),
                4 => q4_pair::<4>(w, a, o0, o1),
                5 => q4_pair::<5>(w, a, o0, o1),
                6 => q4_pair::<6>(w, a, o0, o1),
                7 => q4_pair::<7>(w, a, o0, o1),
                _ => q4_pair::<8>(w, a, o0, o1),
            },
            |w, a, out| match a.len() {
                1 => q4::<1>(w, a, out),
                2 => q4::<2>(w, a, out),
                3 => q4::<3>(w, a, out),
                _ => q4::<4>(w, a, out),
            },
        );
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub fn q8_columns(
        weights: Weights<'_, BlockQ8>,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk_pairs(
            weights,
            acts,
            rows,
            first_col,
            chunk,
            |w, a, o0, o1| match a.len() {
                1 => q8_pair::<1>(w, a, o0, o1),
                2 => q8_pair::<2>(w, a, o0, o1),
                3 => q8_pair::<3>(w, a, o0, o1),
                4 => q8_pair::<4>(w, a, o0, o1),
                5 => q8_pair::<5>(w, a, o0, o1),
                6 => q8_pair::<6>(w, a, o0, o1),
                7 => q8_pair::<7>(w, a, o0, o1),
                _ => q8_pair::<8>(w, a, o0, o1),
            },
            |w, a, out| match a.len() {
                1 => q8::<1>(w, a, out),
                2 => q8::<2>(w, a, out),
                3 => q8::<3>(w, a, out),
                _ => q8::<4>(w, a, out),
            },
        );
    }

    #[target_feature(enable = "avx2,fma")]
    fn load32(p: &[i8; BLOCK]) -> __m256i {
        // SAFETY: reads the 32 bytes of `p`.
        unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
    }

    /// A row's block in both halves of a 512-bit vector.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn load32_twice(p: &[i8; BLOCK]) -> __m512i {
        _mm512_broadcast_i64x4(load32(p))
    }

    /// The f16 scales `d`, `m` of two blocks widened in one instruction: `[d0, m0,
    /// d1, m1]` (from whole-register moves: a scalar conversion would merge into, and
    /// wait for, whatever register the compiler picks, the accumulator included).
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn scales(b0: [f16; 2], b1: [f16; 2]) -> __m128 {
        let bits =
            |b: [f16; 2]| (u32::from(b[0].to_bits()) | (u32::from(b[1].to_bits()) << 16)) as i32;
        _mm_cvtph_ps(_mm_set_epi32(0, 0, bits(b1), bits(b0)))
    }

    /// Element `i` of `v` in lanes 0-7 and element `j` in lanes 8-15.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn halves<const I: i32, const J: i32>(v: __m128) -> __m512 {
        let at = _mm512_set_epi32(J, J, J, J, J, J, J, J, I, I, I, I, I, I, I, I);
        _mm512_permutexvar_ps(at, _mm512_castps128_ps512(v))
    }

    /// Lanes 0-7 and 8-15 of `v`.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn split(v: __m512) -> (__m256, __m256) {
        let d = _mm512_castps_pd(v);
        (
            _mm256_castpd_ps(_mm512_castpd512_pd256(d)),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(d)),
        )
    }

    /// Two Q4 columns (their interleaved blocks `w`) against up to `PAIR_ROW_TILE` rows.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4_pair<const R: usize>(
        w: &[BlockQ4],
        acts: &[ActRow<'_>],
        out0: &mut [f32],
        out1: &mut [f32],
    ) {
        let n = w.len() / 2;
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..n]);
        let mut acc = [_mm512_setzero_ps(); R];
        let mut corr = [_mm512_setzero_ps(); R];
        let low = _mm512_set1_epi8(0x0F);
        let zero = _mm512_setzero_si512();
        // [raw0, raw0, raw1, raw1] by 128-bit lanes, then the high nibbles of lanes
        // 1 and 3: [lo0, hi0, lo1, hi1], each half one column's 32 values in order.
        let spread = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
        let shifts = _mm512_set_epi64(
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
            0,
            0,
            0x0004_0004_0004_0004,
            0x0004_0004_0004_0004,
            0,
            0,
        );
        for (b, [b0, b1]) in w.as_chunks::<2>().0.iter().enumerate() {
            // SAFETY: reads the 16 bytes of each block's `qs`.
            let raw = unsafe { _mm256_loadu2_m128i(b1.qs.as_ptr().cast(), b0.qs.as_ptr().cast()) };
            let both = _mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(raw));
            let q = _mm512_and_si512(_mm512_srlv_epi16(both, shifts), low);
            let dm = scales([b0.d, b0.m], [b1.d, b1.m]);
            let (d, m) = (halves::<0, 2>(dm), halves::<1, 3>(dm));
            for r in 0..R {
                let ab = &rows[r][b];
                let dot = _mm512_dpbusd_epi32(zero, q, load32_twice(&ab.qs));
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(ab.d));
                acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r]);
                corr[r] = _mm512_add_ps(corr[r], _mm512_mul_ps(m, _mm512_set1_ps(ab.s)));
            }
        }
        for r in 0..R {
            let ((a0, a1), (c0, c1)) = (split(acc[r]), split(corr[r]));
            out0[r] = hsum(a0) + _mm256_cvtss_f32(c0);
            out1[r] = hsum(a1) + _mm256_cvtss_f32(c1);
        }
    }

    /// Two Q8_0 columns (their interleaved blocks `w`) against up to `PAIR_ROW_TILE` rows.
    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q8_pair<const R: usize>(
        w: &[BlockQ8],
        acts: &[ActRow<'_>],
        out0: &mut [f32],
        out1: &mut [f32],
    ) {
        let n = w.len() / 2;
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..n]);
        let mut acc = [_mm512_setzero_ps(); R];
        let zero = _mm512_setzero_si512();
        for (b, [b0, b1]) in w.as_chunks::<2>().0.iter().enumerate() {
            let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load32(&b0.qs)), load32(&b1.qs));
            let abs_q = _mm512_abs_epi8(q);
            let negative = _mm512_movepi8_mask(q);
            let d = halves::<0, 2>(scales([b0.d, b0.d], [b1.d, b1.d]));
            for r in 0..R {
                let ab = &rows[r][b];
                // The row's values with the weights' signs (0 where a weight is 0:
                // its product is 0 either way).
                let x = load32_twice(&ab.qs);
                let p = _mm512_mask_sub_epi8(x, negative, zero, x);
                let dot = _mm512_dpbusd_epi32(zero, abs_q, p);
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(ab.d));
                acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r]);
            }
        }
        for r in 0..R {
            let (a0, a1) = split(acc[r]);
            out0[r] = hsum(a0);
            out1[r] = hsum(a1);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4<const R: usize>(w: Column<'_, BlockQ4>, acts: &[ActRow<'_>], out: &mut [f32]) {
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..w.len()]);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut corr = [0f32; R];
        let low = _mm_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        for (b, wb) in w.iter().enumerate() {
            // SAFETY: reads the 16 bytes of `wb.qs`.
            let raw = unsafe { _mm_loadu_si128(wb.qs.as_ptr().cast()) };
            let lo = _mm_and_si128(raw, low);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
            let q = _mm256_set_m128i(hi, lo);
            let dm = scales([wb.d, wb.m], [wb.d, wb.m]);
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            for r in 0..R {
                let ab = &rows[r][b];
                let dot = _mm256_dpbusd_epi32(zero, q, load32(&ab.qs));
                let scale = _mm256_set1_ps(d * ab.d);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
                corr[r] += m * ab.s;
            }
        }
        for (r, o) in out.iter_mut().take(R).enumerate() {
            *o = hsum(acc[r]) + corr[r];
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q8<const R: usize>(w: Column<'_, BlockQ8>, acts: &[ActRow<'_>], out: &mut [f32]) {
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..w.len()]);
        let mut acc = [_mm256_setzero_ps(); R];
        let zero = _mm256_setzero_si256();
        for (b, wb) in w.iter().enumerate() {
            let q = load32(&wb.qs);
            let abs_q = _mm256_sign_epi8(q, q);
            let d = _mm_cvtss_f32(scales([wb.d, wb.d], [wb.d, wb.d]));
            for r in 0..R {
                let ab = &rows[r][b];
                let p = _mm256_sign_epi8(load32(&ab.qs), q);
                let dot = _mm256_dpbusd_epi32(zero, abs_q, p);
                let scale = _mm256_set1_ps(d * ab.d);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
            }
        }
        for (r, o) in out.iter_mut().take(R).enumerate() {
            *o = hsum(acc[r]);
        }
    }
}
