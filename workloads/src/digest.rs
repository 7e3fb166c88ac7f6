//! Digests below every other module: lowercase hex, and seeds derived from a seed and
//! a domain (the same on every platform).

use sha2::{Digest, Sha256};

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A seed for `(domain, index)` derived from `seed`, identical on every platform.
pub fn derive_seed(seed: u64, domain: &str, index: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(domain.as_bytes());
    h.update(index.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}
