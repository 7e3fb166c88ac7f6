//! The CPU device: the op set on candle-core, with our own quantized matrix products
//! (`qmatmul`) and attention over the paged KV cache written directly over its slots.

mod attention;
mod linear;
mod ops;
pub mod qmatmul;
mod qmatmul_avx2;

pub use linear::Linear;
pub use ops::{CpuKv, CpuOps};
