//! The CPU path of the engine, on candle-core: the decoder's forward passes.

pub mod model;

pub use model::{CpuModel, KvCache};
