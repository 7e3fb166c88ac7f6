//! The CPU device: the op set on candle-core, with our own quantized matrix products
//! (`qmatmul`, AVX2 or AVX-512 VNNI kernels chosen at start-up) and attention over the
//! paged KV cache (f16 or f32) written directly over its slots, and the CPU as a local
//! target's device (`device`).

mod attention;
pub mod bandwidth;
pub mod blocks;
mod device;
mod kvdot;
mod linear;
mod ops;
pub mod qmatmul;
mod qmatmul_avx2;
mod qmatmul_vnni;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use linear::Linear;
pub use ops::{CpuKv, CpuOps};
