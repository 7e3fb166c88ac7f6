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
            assert_eq!(
                ptx.matches(".entry ").count(),
                source.entries().len(),
                "{} for {}: the PTX defines kernels Source::entries does not name",
                source.file(),
                arch.name()
            );
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

/// The committed table of registers and shared memory per kernel and architecture.
const RESOURCES_MD: &str = "cuda/resources.md";

#[test]
fn every_kernel_assembles_for_sm80_and_sm90_without_spills_as_the_committed_table_says() {
    use infermeter_kernels::cuda::resources::{assemble, markdown_table};
    assert!(cuda::probe::nvrtc_present(), "{}", CudaError::NoNvrtc);
    let ptxas = std::env::var_os("INFERMETER_PTXAS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "ptxas".into());
    let mut rows = Vec::new();
    for source in Source::ALL {
        for arch in [Arch::Sm80, Arch::Sm90] {
            let ptx = cuda::compile(source, arch).unwrap().to_src();
            let got = assemble(&ptxas, &ptx, arch).unwrap_or_else(|e| {
                panic!("{e}; ci/setup.sh --reference puts ptxas in ~/.cache/infermeter/nvcc/bin (INFERMETER_PTXAS)")
            });
            for entry in source.entries() {
                assert!(
                    got.iter().any(|r| r.kernel == *entry),
                    "{} for {}: ptxas did not assemble {entry}",
                    source.file(),
                    arch.sm()
                );
            }
            rows.extend(got);
        }
    }
    let problems: Vec<String> = rows.iter().flat_map(|r| r.problems()).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let table = format!(
        "# Registers and shared memory per kernel\n\nWhat `ptxas -v` (CUDA 13.0) reports for every kernel, as NVRTC compiles it for\n`compute_80`/`compute_90` and ptxas assembles it for `sm_80`/`sm_90`. Written by\n`INFERMETER_BLESS=1 cargo test -p infermeter-kernels --test cuda_compile`; the test fails\nwhen a kernel spills, passes 255 registers or 48 KiB of static shared memory, or no\nlonger matches this table.\n\n{}",
        markdown_table(&rows)
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(RESOURCES_MD);
    if std::env::var_os("INFERMETER_BLESS").is_some() {
        std::fs::write(&path, &table).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == table,
        "kernels/{RESOURCES_MD} is out of date (registers or shared memory changed); review and rewrite it with INFERMETER_BLESS=1:\n{table}"
    );
}
