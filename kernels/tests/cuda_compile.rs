//! Every CUDA kernel source compiles with NVRTC for Ampere (`compute_80`) and Hopper
//! (`compute_90`), on this CPU-only machine, and the PTX defines every kernel the source
//! declares. NVRTC comes from the PyPI package `nvidia-cuda-nvrtc`, unpacked by
//! `ci/setup.sh` and put on `LD_LIBRARY_PATH` by `ci/test.sh`: without it this test
//! fails (never skips), saying so.

#![allow(clippy::unwrap_used)]

use infermeter_kernels::cuda::{self, Arch, CudaError, Source};

#[test]
fn every_kernel_source_compiles_for_ampere_and_hopper() {
    assert!(
        cuda::probe::nvrtc_present(),
        "{}; ci/setup.sh --reference unpacks it into ~/.cache/infermeter/nvrtc/lib",
        CudaError::NoNvrtc
    );
    for source in Source::ALL {
        for arch in [Arch::Sm80, Arch::Sm90] {
            let t = std::time::Instant::now();
            let ptx = match cuda::compile(source, arch) {
                Ok(p) => p.to_src(),
                Err(e) => panic!("{e}"),
            };
            eprintln!(
                "{} for {}: {} bytes of PTX in {:.2} s",
                source.file(),
                arch.name(),
                ptx.len(),
                t.elapsed().as_secs_f64()
            );
            for entry in source.entries() {
                assert!(
                    ptx.contains(&format!(".entry {entry}(")),
                    "{} for {}: no kernel {entry} in the PTX",
                    source.file(),
                    arch.name()
                );
            }
        }
    }
}

#[test]
fn a_compile_error_names_the_source_and_carries_the_log() {
    // A deliberately broken program through the same path: NVRTC's log comes back.
    assert!(cuda::probe::nvrtc_present(), "{}", CudaError::NoNvrtc);
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some("compute_90"),
        ..Default::default()
    };
    let err =
        cudarc::nvrtc::compile_ptx_with_opts("extern \"C\" __global__ void k() { oops; }", opts)
            .unwrap_err();
    assert!(format!("{err:?}").contains("oops"), "{err:?}");
}

#[test]
fn without_a_driver_the_device_probe_says_so() {
    // This machine has no GPU: the probe reports it as an error, never a panic.
    if cuda::probe::driver_present() {
        eprintln!("a CUDA driver is present here: the no-driver path is not exercised");
        return;
    }
    assert_eq!(cuda::probe_device(0), Err(CudaError::NoDriver));
}
