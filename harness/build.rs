//! Records the git commit the binary is built from (absent outside a git checkout).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let sha = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(sha) = sha.filter(|s| s.len() == 40) {
        println!("cargo:rustc-env=INFERMETER_GIT_SHA={sha}");
    }
}
