//! Vector helpers the x86-64 kernels share (`qmatmul`'s AVX2 and VNNI kernels and
//! attention's `kvdot`), so that each reduction is written, and ordered, once.

use std::arch::x86_64::*;

/// The sum of a vector's eight lanes as a tree: lane `j` plus lane `j+4`, then `j`
/// plus `j+2`, then lane 0 plus lane 1 (the order `kvdot`'s portable code copies).
#[inline]
#[target_feature(enable = "avx")]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}
