//! Shared by the CUDA op tests: the GPU (or why a test is skipped), seeded inputs,
//! quantized matrices and the element-wise bound check.

#![allow(dead_code, clippy::unwrap_used)]

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use infermeter_kernels::cuda::gpu::Gpu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The GPU, or `None` after printing why `test` is skipped.
pub fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::open(0) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e}");
            None
        }
    }
}

/// `n` seeded values in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// |got - want| <= bound for every element, or the first offender.
pub fn check(what: &str, got: &[f32], want: &[f64], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= bound(i),
            "{what}: element {i} is {g}, reference {w} (error {err:e} > bound {:e})",
            bound(i)
        );
    }
}

/// A `[rows, cols]` matrix quantized to `dtype`: its GGUF bytes and the values they
/// stand for.
pub fn quantized(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let host = Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&host, dtype).unwrap();
    let values = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (q.data().unwrap().to_vec(), values)
}
