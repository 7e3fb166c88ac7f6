//! `infermeter hw`: this machine's hardware fingerprint as JSON.

use anyhow::{Context, Result};

/// Runs `infermeter hw`.
pub fn run() -> Result<()> {
    let hw = crate::hardware::fingerprint();
    println!(
        "{}",
        serde_json::to_string_pretty(&hw).context("writing the fingerprint")?
    );
    Ok(())
}
