//! The CPU device: the op set on candle-core, with attention over the paged KV cache
//! written directly over its slots.

mod attention;
mod linear;
mod ops;

pub use linear::Linear;
pub use ops::{CpuKv, CpuOps};
