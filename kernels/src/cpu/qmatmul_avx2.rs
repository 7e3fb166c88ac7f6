//! AVX2 + FMA kernels for the quantized matrix products (`qmatmul`): one weight row against up to
//! [`super::blocks::ROW_TILE`] rows of 8-bit activations, each weight block unpacked once per tile,
//! with the walk over a task's columns compiled inside the same `target_feature`
//! function so the constants stay in registers.
//!
//! This is the crate's one module with `unsafe`: the `#[target_feature]` functions are
//! entered only with an [`Avx2`] value, which [`Avx2::detect`] makes only after seeing
//! AVX2 and FMA on this CPU, and every load reads a whole 16- or 32-byte array it
//! borrows.
#![allow(unsafe_code)]

use super::blocks::{BlockQ4, BlockQ8, QuantizedRows, Weights};

/// Proof that this CPU has AVX2 and FMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2(());

impl Avx2 {
    /// `Some` when this CPU runs these kernels.
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Avx2(()));
        }
        None
    }
}

/// Q4 (Q4_0 or Q4_1) output columns `first_col..` into `chunk` (see
/// [`super::blocks::walk`]).
pub fn q4(
    _: Avx2,
    weights: Weights<'_, BlockQ4>,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
    unsafe {
        x86::q4_columns(weights, acts, rows, first_col, chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (weights, acts, rows, first_col, chunk);
        unreachable!("no Avx2 value exists off x86-64")
    }
}

/// Q8_0 output columns `first_col..` into `chunk`.
pub fn q8(
    _: Avx2,
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
        unreachable!("no Avx2 value exists off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::blocks::{
        ActBlock, ActRow, BLOCK, BlockQ4, BlockQ8, Column, QuantizedRows, Weights, walk,
    };
    use super::super::simd::hsum;

    #[target_feature(enable = "avx2,fma")]
    pub fn q4_columns(
        weights: Weights<'_, BlockQ4>,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk(weights, acts, rows, first_col, chunk, |w, a, out| {
            match a.len() {
                1 => q4::<1>(w, a, out),
                2 => q4::<2>(w, a, out),
                3 => q4::<3>(w, a, out),
                _ => q4::<4>(w, a, out),
            }
        });
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn q8_columns(
        weights: Weights<'_, BlockQ8>,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk(weights, acts, rows, first_col, chunk, |w, a, out| {
            match a.len() {
                1 => q8::<1>(w, a, out),
                2 => q8::<2>(w, a, out),
                3 => q8::<3>(w, a, out),
                _ => q8::<4>(w, a, out),
            }
        });
    }

    #[target_feature(enable = "avx2,fma")]
    fn load32(p: &[i8; BLOCK]) -> __m256i {
        // SAFETY: reads the 32 bytes of `p`.
        unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn q4<const R: usize>(w: Column<'_, BlockQ4>, acts: &[ActRow<'_>], out: &mut [f32]) {
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..w.len()]);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut corr = [0f32; R];
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        for (b, wb) in w.iter().enumerate() {
            // SAFETY: reads the 16 bytes of `wb.qs`.
            let raw = unsafe { _mm_loadu_si128(wb.qs.as_ptr().cast()) };
            let lo = _mm_and_si128(raw, low);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
            let q = _mm256_set_m128i(hi, lo);
            for r in 0..R {
                let ab = &rows[r][b];
                let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q, load32(&ab.qs)), ones);
                let scale = _mm256_set1_ps(wb.d() * ab.d);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
                corr[r] += wb.m() * ab.s;
            }
        }
        for (r, o) in out.iter_mut().take(R).enumerate() {
            *o = hsum(acc[r]) + corr[r];
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn q8<const R: usize>(w: Column<'_, BlockQ8>, acts: &[ActRow<'_>], out: &mut [f32]) {
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..w.len()]);
        let mut acc = [_mm256_setzero_ps(); R];
        let ones = _mm256_set1_epi16(1);
        for (b, wb) in w.iter().enumerate() {
            let q = load32(&wb.qs);
            let abs_q = _mm256_sign_epi8(q, q);
            for r in 0..R {
                let ab = &rows[r][b];
                let p = _mm256_sign_epi8(load32(&ab.qs), q);
                let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_q, p), ones);
                let scale = _mm256_set1_ps(wb.d() * ab.d);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
            }
        }
        for (r, o) in out.iter_mut().take(R).enumerate() {
            *o = hsum(acc[r]);
        }
    }
}
