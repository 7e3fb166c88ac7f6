//! What a device's limits are measured in, below every device and the roofline: the
//! bandwidth figures and the best-of timing every measurement uses.

use std::time::Instant;

/// Measured memory bandwidth, GB/s (1e9 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// Bytes read plus written per second by a copy.
    pub copy_gb_per_s: f64,
    /// Bytes read per second by a sum.
    pub read_gb_per_s: f64,
    /// Bytes of `a = b + s*c` (two read, one written) per second; `None` where not
    /// measured.
    pub triad_gb_per_s: Option<f64>,
}

/// `best` seconds of `passes` timed runs of `f` after one untimed.
pub fn best_of<E>(passes: u32, mut f: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}
