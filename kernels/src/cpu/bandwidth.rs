//! STREAM-style memory bandwidth of the CPU on the engine's thread pool: copy, read
//! (a sum) and triad over buffers written first (never the zero page), each the best of
//! several passes.

use std::hint::black_box;

use rayon::prelude::*;

use crate::measure::{Bandwidth, best_of};

/// Elements each worker takes at a time.
const CHUNK: usize = 1 << 16;

/// The sum of `x`, with sixteen accumulators so it vectorises and runs at the memory's
/// pace rather than an add's latency.
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut blocks = x.chunks_exact(16);
    for b in &mut blocks {
        for (a, v) in acc.iter_mut().zip(b) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + blocks.remainder().iter().sum::<f32>()
}

/// Copy, read and triad bandwidth over three buffers of `buffer_bytes` each.
pub fn measure(buffer_bytes: u64, passes: u32) -> Bandwidth {
    let n = (buffer_bytes as usize / 4).max(CHUNK);
    let bytes = (n * 4) as f64;
    let mut a: Vec<f32> = vec![0.0; n];
    let mut b: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
    let c: Vec<f32> = (0..n).map(|i| 0.5 + (i % 5) as f32).collect();
    a.par_chunks_mut(CHUNK).for_each(|x| x.fill(2.0));
    let gb = |moved: f64, s: f64| moved / s / 1e9;
    let copy = best_of::<()>(passes, || {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&a);
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    let read = best_of::<()>(passes, || {
        let s: f32 = c.par_chunks(CHUNK).map(sum).sum();
        black_box(s);
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    let triad = best_of::<()>(passes, || {
        b.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(c.par_chunks(CHUNK)))
            .for_each(|(d, (x, y))| {
                for ((d, x), y) in d.iter_mut().zip(x).zip(y) {
                    *d = x + 0.5 * y;
                }
            });
        black_box(&b);
        Ok(())
    })
    .unwrap_or(f64::INFINITY);
    Bandwidth {
        copy_gb_per_s: gb(2.0 * bytes, copy),
        read_gb_per_s: gb(bytes, read),
        triad_gb_per_s: Some(gb(3.0 * bytes, triad)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unrolled_sum_is_the_sum() {
        let x: Vec<f32> = (0..1037).map(|i| (i % 13) as f32).collect();
        let plain: f32 = x.iter().sum();
        assert_eq!(sum(&x), plain);
        assert_eq!(sum(&[]), 0.0);
    }
}
