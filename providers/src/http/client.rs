//! The HTTP client of a remote target: timeouts, the connection pool and the CAs it
//! trusts (the default headers, which carry the key, are the caller's).

use crate::config::HttpTargetConfig;
use crate::error::ProviderError;

use super::POOL_IDLE_TIMEOUT;

/// A client builder with `cfg`'s connect deadline, pool limits and CA bundle.
pub(super) fn builder(cfg: &HttpTargetConfig) -> Result<reqwest::ClientBuilder, ProviderError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        // Below the 5 s keep-alive of llama.cpp's server, uvicorn and Node: a
        // connection the server is about to close is never reused (a request sent on
        // it as it closes fails with "connection closed before message completed",
        // seen against llama-server).
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(concat!("infermeter/", env!("CARGO_PKG_VERSION")));
    if let Some(n) = cfg.max_connections {
        builder = builder.pool_max_idle_per_host(n);
    }
    if let Some(path) = &cfg.ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| ProviderError::setting("ca_bundle", format!("{}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            ProviderError::setting(
                "ca_bundle",
                format!("{}: not PEM certificates: {e}", path.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(ProviderError::setting(
                "ca_bundle",
                format!("{}: no certificate found", path.display()),
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    Ok(builder)
}
