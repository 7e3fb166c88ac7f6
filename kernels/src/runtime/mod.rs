//! The device-neutral model runtime: the decoder forward pass written once against
//! the [`crate::ops::DeviceOps`] seam, the paged KV-cache manager with prefix reuse,
//! and the continuous-batching scheduler.

pub mod kv;
pub mod model;
pub mod offline;
pub mod scheduler;

pub use kv::{BlockPool, KvCounters};
pub use model::{Model, StepSeq};
pub use offline::{Offline, teacher_forced_logits};
pub use scheduler::{Scheduler, SchedulerConfig};
