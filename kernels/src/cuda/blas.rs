//! Prefill matrix products through cuBLAS (loaded at run time like the driver; absent,
//! the GEMV path serves every row count). Row-major `Y[rows, n] = X[rows, k] W[n, k]^T`
//! is cuBLAS's column-major `gemm(transa = T, transb = N, m = n, n = rows, k = k,
//! A = W (lda = k), B = X (ldb = k), C = Y (ldc = n))`, with f32 accumulation and
//! output:
//!
//! - f32 weights: f32 inputs (TF32 is not enabled: f32 products stay f32);
//! - f16 / bf16 weights: the activations converted to the weights' type;
//! - Q8_0 / Q4_0 / Q4_1 weights: dequantized to bf16 into a workspace the GPU keeps
//!   (grown to the largest matrix), the activations converted to bf16.
//!
//! Status: compiled; run only on a GPU (`kernels/tests/cuda_ops.rs`).

#![allow(unsafe_code)]

use cudarc::cublas::{CudaBlas, result as blas, sys as bsys};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, PushKernelArg};

use super::gpu::{Gpu, driver, shape};
use super::{CudaError, Source};
use crate::format::Precision;

/// Whether libcublas can be loaded (cudarc panics on first use otherwise).
pub fn cublas_present() -> bool {
    // SAFETY: only attempts to dlopen the library; no symbol is called.
    unsafe { bsys::is_culib_present() }
}

fn failed(what: &'static str) -> impl Fn(blas::CublasError) -> CudaError {
    move |e| CudaError::Launch {
        what,
        reason: format!("{e:?}"),
    }
}

impl Gpu {
    /// The cuBLAS handle on the GPU's stream; `None` when libcublas is not installed
    /// or does not start (the GEMV path is used then).
    pub fn blas(&self) -> Option<&CudaBlas> {
        self.blas_state()
            .handle
            .get_or_init(|| {
                if !cublas_present() {
                    tracing::warn!("libcublas not found: prefill products use the GEMV kernels");
                    return None;
                }
                match CudaBlas::new(self.stream().clone()) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(
                            "cuBLAS did not start ({e:?}): prefill products use the GEMV kernels"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// `f32_to_bf16` / `f32_to_f16` of `x` into a new buffer.
    fn to_half(&self, x: &CudaView<'_, f32>, bf16: bool) -> Result<CudaSlice<u16>, CudaError> {
        let n = x.len();
        let mut y = self
            .stream()
            .alloc_zeros::<u16>(n)
            .map_err(|e| self.alloc_error("converting activations", 2 * n, e))?;
        let f = self.function(
            Source::Convert,
            if bf16 { "f32_to_bf16" } else { "f32_to_f16" },
        )?;
        let n64 = n as u64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(x).arg(&mut y).arg(&n64);
        // SAFETY: (x, y, n) as declared; both hold n elements.
        unsafe { b.launch(super::gpu::grid_1d(n, 256)) }
            .map_err(driver("converting activations"))?;
        Ok(y)
    }

    /// `Y [rows, n_out] = X [rows, k] . W [n_out, k]^T` through cuBLAS, `W` in `format`.
    pub fn gemm(
        &self,
        format: Precision,
        w: &CudaSlice<u8>,
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        (n_out, k, rows): (usize, usize, usize),
    ) -> Result<(), CudaError> {
        let what = "gemm";
        let handle = self
            .blas()
            .ok_or_else(|| shape(what, "cuBLAS is not available".into()))?;
        if !k.is_multiple_of(format.block().0 as usize)
            || w.len() != n_out * format.bytes_for(k as u64) as usize
            || x.len() != rows * k
            || y.len() != rows * n_out
            || rows == 0
        {
            return Err(shape(
                what,
                format!(
                    "x {} / w {} / y {} for [{rows}, {k}] x [{n_out}, {k}]",
                    x.len(),
                    w.len(),
                    y.len()
                ),
            ));
        }
        let (m_i, n_i, k_i) = (n_out as i32, rows as i32, k as i32);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let stream = self.stream();
        let gemm_ex = |a: u64, a_type, b: u64, b_type, c: u64| {
            // SAFETY: a, b and c are live device buffers of [n_out, k], [rows, k] and
            // [rows, n_out] elements of the given types (checked above); alpha and
            // beta are host f32 (the default pointer mode).
            unsafe {
                blas::gemm_ex(
                    *handle.handle(),
                    bsys::cublasOperation_t::CUBLAS_OP_T,
                    bsys::cublasOperation_t::CUBLAS_OP_N,
                    m_i,
                    n_i,
                    k_i,
                    (&alpha) as *const f32 as *const _,
                    a as *const _,
                    a_type,
                    k_i,
                    b as *const _,
                    b_type,
                    k_i,
                    (&beta) as *const f32 as *const _,
                    c as *mut _,
                    bsys::cudaDataType_t::CUDA_R_32F,
                    m_i,
                    bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            }
            .map_err(failed("cuBLAS gemm"))
        };
        use bsys::cudaDataType_t::{CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F};
        match format {
            Precision::F32 => {
                let (a, _ra) = w.device_ptr(stream);
                let (b, _rb) = x.device_ptr(stream);
                let (c, _rc) = y.device_ptr_mut(stream);
                gemm_ex(a, CUDA_R_32F, b, CUDA_R_32F, c)
            }
            Precision::F16 | Precision::Bf16 => {
                let bf16 = format == Precision::Bf16;
                let xh = self.to_half(x, bf16)?;
                let t = if bf16 { CUDA_R_16BF } else { CUDA_R_16F };
                let (a, _ra) = w.device_ptr(stream);
                let (b, _rb) = xh.device_ptr(stream);
                let (c, _rc) = y.device_ptr_mut(stream);
                gemm_ex(a, t, b, t, c)
            }
            Precision::Q8_0 | Precision::Q4_0 | Precision::Q4_1 => {
                let xh = self.to_half(x, true)?;
                let mut guard = self
                    .blas_state()
                    .workspace
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let need = n_out * k;
                if guard.as_ref().is_none_or(|ws| ws.len() < need) {
                    *guard = None;
                    *guard = Some(stream.alloc_zeros::<u16>(need).map_err(|e| {
                        self.alloc_error("the dequantization workspace", 2 * need, e)
                    })?);
                }
                let ws = guard
                    .as_mut()
                    .ok_or_else(|| shape(what, "no workspace".into()))?;
                let kernel = match format {
                    Precision::Q8_0 => "dequant_q8_0_bf16",
                    Precision::Q4_0 => "dequant_q4_0_bf16",
                    _ => "dequant_q4_1_bf16",
                };
                let f = self.function(Source::Convert, kernel)?;
                let blocks = (need / 32) as u64;
                let mut l = stream.launch_builder(&f);
                l.arg(w).arg(&mut *ws).arg(&blocks);
                // SAFETY: (w, y, blocks) as declared; w holds `blocks` GGUF blocks
                // (checked against the shape), the workspace at least 32 x blocks.
                unsafe { l.launch(super::gpu::grid_1d(blocks as usize, 256)) }
                    .map_err(driver("dequantizing weights"))?;
                let (a, _ra) = ws.device_ptr(stream);
                let (b, _rb) = xh.device_ptr(stream);
                let (c, _rc) = y.device_ptr_mut(stream);
                gemm_ex(a, CUDA_R_16BF, b, CUDA_R_16BF, c)
            }
        }
    }
}
