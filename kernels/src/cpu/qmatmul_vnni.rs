//! AVX-512 VNNI kernels for the quantized matrix products (`qmatmul`), chosen at start-up
//! where the CPU has AVX-512 F, BW, VL and VNNI: the AVX2 kernels' walk and float
//! arithmetic, with each block's integer dot product one `vpdpbusd` (unsigned by
//! signed bytes, summed in 32 bits) where AVX2 needs `vpmaddubsw` + `vpmaddwd`.
//!
//! Neither AVX2 product saturates for these formats (Q4 values are at most 15, Q8 ones
//! at most 127 in magnitude), so both give the same integers, and with the same float
//! steps the same bits: a row does not depend on which kernel the CPU chose either.
//!
//! Like [`super::qmatmul_avx2`], its `#[target_feature]` functions are entered only
//! with a [`Vnni`] value, which [`Vnni::detect`] makes only after seeing the features.
#![allow(unsafe_code)]

use super::blocks::{BlockQ4, BlockQ8, QuantizedRows};

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
    blocks: &[BlockQ4],
    bpr: usize,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a `Vnni` exists only where the CPU has every feature these use.
    unsafe {
        x86::q4_columns(blocks, bpr, acts, rows, first_col, chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (blocks, bpr, acts, rows, first_col, chunk);
        unreachable!("no Vnni value exists off x86-64")
    }
}

/// Q8_0 output columns `first_col..` into `chunk`.
pub fn q8(
    _: Vnni,
    blocks: &[BlockQ8],
    bpr: usize,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `q4`.
    unsafe {
        x86::q8_columns(blocks, bpr, acts, rows, first_col, chunk)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (blocks, bpr, acts, rows, first_col, chunk);
        unreachable!("no Vnni value exists off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::blocks::{ActBlock, ActRow, BLOCK, BlockQ4, BlockQ8, QuantizedRows, walk};
    use super::super::simd::hsum;

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub fn q4_columns(
        blocks: &[BlockQ4],
        bpr: usize,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk(
            blocks,
            bpr,
            acts,
            rows,
            first_col,
            chunk,
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
        blocks: &[BlockQ8],
        bpr: usize,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        walk(
            blocks,
            bpr,
            acts,
            rows,
            first_col,
            chunk,
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

    #[inline]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q4<const R: usize>(w: &[BlockQ4], acts: &[ActRow<'_>], out: &mut [f32]) {
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
            for r in 0..R {
                let ab = &rows[r][b];
                let dot = _mm256_dpbusd_epi32(zero, q, load32(&ab.qs));
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
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn q8<const R: usize>(w: &[BlockQ8], acts: &[ActRow<'_>], out: &mut [f32]) {
        let rows: [&[ActBlock]; R] = std::array::from_fn(|r| &acts[r][..w.len()]);
        let mut acc = [_mm256_setzero_ps(); R];
        let zero = _mm256_setzero_si256();
        for (b, wb) in w.iter().enumerate() {
            let q = load32(&wb.qs);
            let abs_q = _mm256_sign_epi8(q, q);
            for r in 0..R {
                let ab = &rows[r][b];
                let p = _mm256_sign_epi8(load32(&ab.qs), q);
                let dot = _mm256_dpbusd_epi32(zero, abs_q, p);
                let scale = _mm256_set1_ps(wb.d() * ab.d);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
            }
        }
        for (r, o) in out.iter_mut().take(R).enumerate() {
            *o = hsum(acc[r]);
        }
    }
}
