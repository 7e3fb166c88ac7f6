//! `--quality[=REFERENCE]`: each target's fidelity against a reference precision of
//! the same model on the same engine, measured once per target after it is
//! prepared (before any load) over the evaluation text
//! ([`workloads::eval_text`]), and copied into each of its results. Figures are
//! cached by what determines them: the target kind (engine), the weights' digest,
//! the reference, the scored tokens and the tool's version, in
//! `$INFERMETER_QUALITY_CACHE` (default `~/.cache/infermeter/quality`); a repeated
//! run reads them (`cached: true`). A target that cannot measure it (remote) gets the
//! section with the reason.

use std::path::PathBuf;

use results::{Fidelity, QualitySection};
use sha2::{Digest, Sha256};
use workloads::Backend;
use workloads::digest::hex;
use workloads::eval_text::{
    DEFAULT_WINDOW_TOKENS, DEFAULT_WINDOWS, EVAL_TEXT_NAME, eval_windows, windows_sha256,
};

/// The cache directory.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("INFERMETER_QUALITY_CACHE") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("infermeter").join("quality"))
}

/// Bumped when the scoring changes (windows, softmax, what is read): figures cached
/// before are then measured again.
const SCORING_VERSION: &str = "1";

/// The cache key of a target's figures: the engine (target kind, tool version and
/// the commit it was built from, when known: an engine change may change every
/// logit), the weights, the reference, the tokens scored and the scoring.
fn key(kind: &str, weights_sha256: &str, reference: &str, eval_sha256: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        kind,
        weights_sha256,
        reference,
        eval_sha256,
        env!("CARGO_PKG_VERSION"),
        option_env!("INFERMETER_GIT_SHA").unwrap_or("unknown commit"),
        SCORING_VERSION,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Measures (or reads from the cache) `target`'s fidelity against `reference`.
/// Never fails the run: a measurement that fails is the section's `reason`.
pub async fn measure(target: &dyn Backend, reference: &str, quiet: bool) -> QualitySection {
    let windows = eval_windows(DEFAULT_WINDOW_TOKENS, DEFAULT_WINDOWS);
    let eval_sha256 = windows_sha256(&windows);
    let info = target.describe();
    let mut section = QualitySection {
        reference_precision: reference.to_string(),
        eval_text: EVAL_TEXT_NAME.to_string(),
        eval_sha256: eval_sha256.clone(),
        fidelity: None,
        reason: None,
    };
    let cached_at = info.weights.as_ref().zip(cache_dir()).map(|(w, dir)| {
        dir.join(format!(
            "{}.json",
            key(&info.kind, &w.sha256, reference, &eval_sha256)
        ))
    });
    if let Some(path) = &cached_at
        && let Ok(text) = std::fs::read_to_string(path)
    {
        match serde_json::from_str::<Fidelity>(&text) {
            Ok(mut f) => {
                f.cached = true;
                section.fidelity = Some(f);
                return section;
            }
            Err(e) => tracing::warn!("{}: unreadable, measured again: {e}", path.display()),
        }
    }
    match target.fidelity(reference, &windows).await {
        Ok(f) => {
            if !quiet {
                eprintln!(
                    "quality {} {} vs {reference}: KL mean {:.4} nats, top-1 agreement {:.3}, perplexity ratio {:.3} ({} tokens, {:.1} s)",
                    info.kind,
                    f.precision,
                    f.kl_mean_nats,
                    f.top1_agreement,
                    f.perplexity_ratio,
                    f.tokens_scored,
                    f.compute_s
                );
            }
            if let Some(path) = &cached_at {
                store(path, &f);
            }
            section.fidelity = Some(f);
        }
        Err(reason) => section.reason = Some(reason),
    }
    section
}

/// Writes `f` to the cache atomically (a failure only costs the next run the
/// measurement).
fn store(path: &std::path::Path, f: &Fidelity) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!("{}: quality cache not written: {e}", path.display());
    }
}
