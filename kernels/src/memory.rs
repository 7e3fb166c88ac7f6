//! What a model needs in memory on a device, checked before anything is loaded: a
//! preset that does not fit is refused with the bytes needed and available.

use crate::EngineError;

/// Bytes a model will hold on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Weights as the device holds them.
    pub weights: u64,
    /// The KV cache.
    pub kv_cache: u64,
}

impl MemoryPlan {
    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache
    }

    /// Refuses when the total exceeds `available` (when known).
    pub fn check(&self, available: Option<u64>) -> Result<(), EngineError> {
        match available {
            Some(avail) if self.total() > avail => Err(EngineError::DoesNotFit {
                needed: self.total(),
                weights: self.weights,
                kv_cache: self.kv_cache,
                available: avail,
            }),
            _ => Ok(()),
        }
    }
}

/// Memory available to a new allocation on this host, if the OS says.
pub fn available_memory_bytes() -> Option<u64> {
    let mut s = sysinfo::System::new();
    s.refresh_memory();
    let a = s.available_memory();
    (a > 0).then_some(a)
}
