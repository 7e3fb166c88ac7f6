//! Load levels and the limits shared by the sweeps and the SLO search.

/// Throughput gain below which the automatic sweep calls the target saturated.
pub const SATURATION_GAIN: f64 = 0.05;
/// Error rate above which the automatic sweep stops.
pub const MAX_ERROR_RATE: f64 = 0.05;
/// Most points of an automatic sweep (doubling from 1 reaches the largest closed loop,
/// 100,000 sessions, in 17).
pub const MAX_POINTS: usize = 32;

/// A load level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    /// A closed loop of this many sessions.
    Concurrency(u32),
    /// An open loop at this many sessions per second.
    Rate(f64),
}
