//! The CUDA device, first part: the kernel sources and their run-time compilation.
//!
//! Kernels are CUDA C files under `kernels/cuda/` (embedded in the binary), each
//! compiled with NVRTC through cudarc, with `prelude.cuh` prepended (16-bit float
//! conversions, warp and block sums; no CUDA headers are needed). cudarc loads the
//! CUDA libraries dynamically: the binary builds and runs on machines without CUDA,
//! and [`probe_device`] turns a missing driver into [`CudaError::NoDriver`].
//!
//! - [`gpu::Gpu`]: one device, its modules (compiled once per source for the device's
//!   own architecture) and safe launchers with their shapes checked.
//!
//! Status: the sources compile for `compute_80` and `compute_90` (checked in CI on a
//! CPU-only machine) and the launchers type-check; their correctness against the CPU
//! reference (`kernels/tests/cuda_ops.rs`) runs only on a GPU, and the runtime's
//! [`crate::ops::DeviceOps`] for CUDA is not written yet.

pub mod attention;
mod bandwidth;
pub mod blas;
mod device;
pub mod geometry;
pub mod gpu;
pub mod moe;
pub mod ops;
pub mod probe;
pub mod resources;

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use thiserror::Error;

/// Prepended to every kernel source.
pub const PRELUDE: &str = include_str!("../../cuda/prelude.cuh");

/// A kernel source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// RMSNorm, RoPE, SwiGLU, add, embedding gather, argmax.
    Elementwise,
    /// Decode GEMV for F32, F16, BF16, Q8_0, Q4_0, Q4_1 weights, batch 1-8, alone
    /// and fused as SwiGLU's gate and up; grouped over a MoE layer's experts, and
    /// their combine.
    Gemv,
    /// The paged KV cache (f32 or f16) write, per-row attention over it, split-KV
    /// decode attention and its merge.
    Attention,
    /// The roofline's bandwidth probes: copy, read, triad.
    Bandwidth,
    /// Conversions for the cuBLAS prefill GEMM: activations to bf16/f16, quantized
    /// weights dequantized to bf16.
    Convert,
    /// Tiled (flash-style) causal attention of prompt chunks over the paged cache.
    Prefill,
    /// MoE routing (softmax, top-k) and grouping by expert on the device.
    Moe,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 7] = [
        Source::Elementwise,
        Source::Gemv,
        Source::Attention,
        Source::Bandwidth,
        Source::Convert,
        Source::Prefill,
        Source::Moe,
    ];

    /// File name under `kernels/cuda/`.
    pub fn file(self) -> &'static str {
        match self {
            Source::Elementwise => "elementwise.cu",
            Source::Gemv => "gemv.cu",
            Source::Attention => "attention.cu",
            Source::Bandwidth => "bandwidth.cu",
            Source::Convert => "convert.cu",
            Source::Prefill => "prefill.cu",
            Source::Moe => "moe.cu",
        }
    }

    /// The file's text.
    pub fn text(self) -> &'static str {
        match self {
            Source::Elementwise => include_str!("../../cuda/elementwise.cu"),
            Source::Gemv => include_str!("../../cuda/gemv.cu"),
            Source::Attention => include_str!("../../cuda/attention.cu"),
            Source::Bandwidth => include_str!("../../cuda/bandwidth.cu"),
            Source::Convert => include_str!("../../cuda/convert.cu"),
            Source::Prefill => include_str!("../../cuda/prefill.cu"),
            Source::Moe => include_str!("../../cuda/moe.cu"),
        }
    }

    /// The kernels (`extern "C" __global__` functions) it defines.
    pub fn entries(self) -> &'static [&'static str] {
        match self {
            Source::Elementwise => &[
                "rms_norm_f32",
                "rope_f32",
                "swiglu_f32",
                "add_f32",
                "embed_f32",
                "argmax_f32",
            ],
            Source::Gemv => &[
                "gemv_f32",
                "gemv_f16",
                "gemv_bf16",
                "gemv_q8_0",
                "gemv_q4_0",
                "gemv_q4_1",
                "gemv_gate_up_f32",
                "gemv_gate_up_f16",
                "gemv_gate_up_bf16",
                "gemv_gate_up_q8_0",
                "gemv_gate_up_q4_0",
                "gemv_gate_up_q4_1",
                "gemv_grouped_f32",
                "gemv_grouped_f16",
                "gemv_grouped_bf16",
                "gemv_grouped_q8_0",
                "gemv_grouped_q4_0",
                "gemv_grouped_q4_1",
                "gemv_grouped_gate_up_f32",
                "gemv_grouped_gate_up_f16",
                "gemv_grouped_gate_up_bf16",
                "gemv_grouped_gate_up_q8_0",
                "gemv_grouped_gate_up_q4_0",
                "gemv_grouped_gate_up_q4_1",
                "moe_combine_f32",
            ],
            Source::Attention => &[
                "kv_write_f32",
                "kv_write_f16",
                "attention_f32",
                "attention_f16",
                "decode_f32_d64",
                "decode_f32_d128",
                "decode_f16_d64",
                "decode_f16_d128",
                "merge_splits",
            ],
            Source::Bandwidth => &["copy_f32x4", "read_sum_f32x4", "triad_f32x4"],
            Source::Convert => &[
                "f32_to_bf16",
                "f32_to_f16",
                "dequant_q8_0_bf16",
                "dequant_q4_0_bf16",
                "dequant_q4_1_bf16",
            ],
            Source::Prefill => &["prefill_f32", "prefill_f16"],
            Source::Moe => &["moe_route_f32", "moe_group"],
        }
    }

    /// The program handed to NVRTC: the prelude, then the file.
    pub fn program(self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}\"\n{}", self.file(), self.text())
    }
}

/// A virtual GPU architecture to compile for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Ampere (A100): `compute_80`.
    Sm80,
    /// Hopper (H100, H200): `compute_90`.
    Sm90,
}

impl Arch {
    /// The NVRTC `--gpu-architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm80 => "compute_80",
            Arch::Sm90 => "compute_90",
        }
    }

    /// The real architecture `ptxas` assembles for (`sm_90`).
    pub fn sm(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
        }
    }
}

/// Why the CUDA path cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CudaError {
    /// The driver library is not installed.
    #[error(
        "no CUDA driver found (libcuda could not be loaded): the local-cuda target needs an NVIDIA GPU and its driver"
    )]
    NoDriver,
    /// The driver loads but the device does not open.
    #[error("no usable CUDA device {ordinal}: {reason}")]
    NoDevice {
        /// Device ordinal.
        ordinal: usize,
        /// The driver's error.
        reason: String,
    },
    /// NVRTC is not installed.
    #[error(
        "NVRTC (libnvrtc) could not be loaded: install the CUDA toolkit or the PyPI package nvidia-cuda-nvrtc and put its lib folder on LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// The driver refused an operation (module load, allocation, launch, copy).
    #[error("CUDA {what}: {reason}")]
    Launch {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        reason: String,
    },
    /// An allocation found the device's memory full.
    #[error("CUDA out of memory {what}: {requested} bytes requested, {free} free of {total}")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Bytes asked for.
        requested: u64,
        /// Bytes free then.
        free: u64,
        /// The device's memory.
        total: u64,
    },
    /// Buffers do not match the shape an op was given.
    #[error("CUDA {what}: buffers do not match the shape: {message}")]
    Shape {
        /// The op.
        what: &'static str,
        /// What does not match.
        message: String,
    },
    /// A kernel source does not compile.
    #[error("kernel source {file} does not compile for {arch}: {log}")]
    Compile {
        /// Source file.
        file: &'static str,
        /// Target architecture.
        arch: &'static str,
        /// NVRTC's log (or error).
        log: String,
    },
}

/// Compiles `source` to PTX for `arch`.
pub fn compile(source: Source, arch: Arch) -> Result<Ptx, CudaError> {
    compile_for(source, Some(arch.name()))
}

/// Compiles `source` to PTX for the NVRTC architecture `arch` (NVRTC's default when
/// `None`).
pub fn compile_for(source: Source, arch: Option<&'static str>) -> Result<Ptx, CudaError> {
    if !probe::nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    let opts = CompileOptions {
        arch,
        name: Some(source.file().to_string()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source.program(), opts).map_err(|e| CudaError::Compile {
        file: source.file(),
        arch: arch.unwrap_or("default"),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().trim().to_string(),
            other => other.to_string(),
        },
    })
}

/// What the driver says about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Device name.
    pub name: String,
}

/// Opens device `ordinal`, or says why it cannot.
pub fn probe_device(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    if !probe::driver_present() {
        return Err(CudaError::NoDriver);
    }
    let no_device = |e: cudarc::driver::DriverError| CudaError::NoDevice {
        ordinal,
        reason: e.to_string(),
    };
    let ctx = cudarc::driver::CudaContext::new(ordinal).map_err(no_device)?;
    let name = ctx.name().map_err(no_device)?;
    Ok(DeviceInfo { ordinal, name })
}

impl From<CudaError> for crate::EngineError {
    fn from(e: CudaError) -> Self {
        match e {
            CudaError::OutOfMemory {
                what,
                requested,
                free,
                total,
            } => crate::EngineError::DeviceOom {
                what: what.to_string(),
                requested,
                free,
                total,
            },
            e => crate::EngineError::Tensor(format!("cuda: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_declares_distinct_kernels() {
        // Which kernels a source defines (literally or through its entry macros) is
        // checked on the PTX NVRTC makes (`kernels/tests/cuda_compile.rs`: exactly
        // these `.entry`s); here, that the declarations are distinct.
        for s in Source::ALL {
            let mut names = s.entries().to_vec();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), s.entries().len(), "{}", s.file());
            assert!(!names.is_empty(), "{}", s.file());
        }
    }
}
