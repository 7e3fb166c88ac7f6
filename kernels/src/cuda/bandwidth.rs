//! The GPU's memory bandwidth for the roofline: copy, read and triad kernels
//! (`bandwidth.cu`, 16-byte vectors, grid-stride) over buffers of at least 1 GiB (far
//! beyond the L2), filled with non-zero data first; each pass times `REPS` launches on
//! the stream between two synchronisations, and the best pass counts.
//!
//! Status: compiled and assembled in CI; run only on a GPU (`ci/tools/gpu_checks.sh`).

#![allow(unsafe_code)]

use std::time::Instant;

use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::gpu::Gpu;
use super::{CudaError, Source};
use crate::measure::Bandwidth;

/// Launches per timed pass.
const REPS: u32 = 10;
/// Blocks of every launch (grid-stride loops cover the rest): enough to fill any
/// current GPU several times over.
const BLOCKS: u32 = 4096;
/// Threads per block.
const THREADS: u32 = 256;

fn fail(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Launch {
        what,
        reason: e.to_string(),
    }
}

impl Gpu {
    /// Copy, read and triad bandwidth over buffers of `buffer_bytes`, best of `passes`.
    pub fn measure_bandwidth(
        &self,
        buffer_bytes: u64,
        passes: u32,
    ) -> Result<Bandwidth, CudaError> {
        let n4 = (buffer_bytes / 16).max(1);
        let n = (n4 * 4) as usize;
        let stream = self.stream();
        let host: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
        let mut a = self.upload(&host)?;
        let b = self.upload(&host)?;
        let c = self.upload(&host)?;
        drop(host);
        let mut partial = self.zeros(BLOCKS as usize)?;
        let cfg = LaunchConfig {
            grid_dim: (BLOCKS, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (copy_k, read_k, triad_k) = (
            self.function(Source::Bandwidth, "copy_f32x4")?,
            self.function(Source::Bandwidth, "read_sum_f32x4")?,
            self.function(Source::Bandwidth, "triad_f32x4")?,
        );
        let scalar = 0.5f32;
        let mut time = |which: u8| -> Result<f64, CudaError> {
            let mut best = f64::INFINITY;
            for pass in 0..=passes.max(1) {
                stream.synchronize().map_err(fail("synchronising"))?;
                let t = Instant::now();
                for _ in 0..REPS {
                    match which {
                        0 => {
                            let mut l = stream.launch_builder(&copy_k);
                            l.arg(&b).arg(&mut a).arg(&n4);
                            // SAFETY: (src, dst, n4) as declared; both hold n4 float4.
                            unsafe { l.launch(cfg) }.map_err(fail("launching copy"))?;
                        }
                        1 => {
                            let mut l = stream.launch_builder(&read_k);
                            l.arg(&c).arg(&n4).arg(&mut partial);
                            // SAFETY: (x, n4, out) as declared; out holds BLOCKS floats.
                            unsafe { l.launch(cfg) }.map_err(fail("launching read"))?;
                        }
                        _ => {
                            let mut l = stream.launch_builder(&triad_k);
                            l.arg(&mut a).arg(&b).arg(&c).arg(&scalar).arg(&n4);
                            // SAFETY: (a, b, c, scalar, n4) as declared; each holds n4 float4.
                            unsafe { l.launch(cfg) }.map_err(fail("launching triad"))?;
                        }
                    }
                }
                stream.synchronize().map_err(fail("synchronising"))?;
                // The first pass warms up (module load, clocks).
                if pass > 0 {
                    best = best.min(t.elapsed().as_secs_f64() / f64::from(REPS));
                }
            }
            Ok(best)
        };
        let bytes = (n4 * 16) as f64;
        let copy = time(0)?;
        let read = time(1)?;
        let triad = time(2)?;
        Ok(Bandwidth {
            copy_gb_per_s: 2.0 * bytes / copy / 1e9,
            read_gb_per_s: bytes / read / 1e9,
            triad_gb_per_s: Some(3.0 * bytes / triad / 1e9),
        })
    }
}
