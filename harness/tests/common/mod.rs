//! Helpers shared by the `infermeter` binary's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The binary, with logging off.
pub fn infermeter() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("infermeter").unwrap();
    cmd.env_remove("INFERMETER_LOG");
    cmd
}

/// The SmolLM2-135M GGUF that `ci/setup.sh` unpacks; fails (never skips) without it.
pub fn gguf() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    let dir = std::env::var_os("INFERMETER_MODELS")
        .map(PathBuf::from)
        .unwrap_or(home.join(".cache/infermeter/models"));
    let f = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(f.exists(), "{}: not found: run ci/setup.sh", f.display());
    f
}

/// A JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
