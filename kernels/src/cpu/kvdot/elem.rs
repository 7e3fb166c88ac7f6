//! What the attention arithmetic reads: the KV cache's element types (`Elem`: f32 and
//! f16, and how the vector code loads eight of them), the lane count and the constants
//! of `e^x`, and a prompt tile's keys in blocks of eight (`KeyBlocks`).

use half::f16;

/// Lanes of a vector accumulator.
pub(super) const LANES: usize = 8;

/// The least exponent `exp_sub` takes.
pub(super) const EXP_MIN: f32 = -87.0;
/// log2(e).
pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2, split so that `n·LN2_HI` is exact for the `n` that occur.
pub(super) const LN2_HI: f32 = 0.693_359_4;
/// The rest of ln 2.
pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' `expf` polynomial, highest degree first (its constants as f32 rounds them).
pub(super) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_345e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// Loads of eight elements, widened to f32, for the vector code.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod load {
    use std::arch::x86_64 as x86;

    use half::f16;

    use crate::cpu::kvdot::elem::LANES;

    /// Eight elements from `x[at..at + 8]`, widened to f32.
    pub trait Load: Sized {
        /// The load.
        fn load8(x: &[Self], at: usize) -> x86::__m256;
    }

    impl Load for f32 {
        #[inline(always)]
        fn load8(x: &[f32], at: usize) -> x86::__m256 {
            let eight = &x[at..at + LANES];
            // SAFETY: `eight` holds 8 f32.
            unsafe { x86::_mm256_loadu_ps(eight.as_ptr()) }
        }
    }

    impl Load for f16 {
        #[inline(always)]
        fn load8(x: &[f16], at: usize) -> x86::__m256 {
            let eight = &x[at..at + LANES];
            // SAFETY: `eight` holds 8 f16 (16 bytes); f16 is a transparent u16.
            unsafe { x86::_mm256_cvtph_ps(x86::_mm_loadu_si128(eight.as_ptr().cast())) }
        }
    }
}
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
pub use load::Load;

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
/// Nothing to load: the portable code reads elements one by one (the vector build has
/// its own).
pub trait Load {}
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
)))]
impl<T> Load for T {}

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
    pub(super) hd: usize,
    pub(super) data: Vec<f32>,
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
    pub(super) fn at(chunks: usize, j: usize, c: usize) -> usize {
        let (block, k) = (j / LANES, j % LANES);
        ((block * chunks + c) * 4 + k % 4) * 2 * LANES + (k / 4) * LANES
    }

    /// Values per block of 8 keys.
    #[allow(dead_code, reason = "the vector build reads it")]
    pub(super) fn block_len(&self) -> usize {
        self.hd * LANES
    }
}
