//! One scrape of a server's Prometheus endpoint with the target's own HTTP client.

use std::time::Duration;

use workloads::MetricsEndpoint;

/// GETs `endpoint` once within `timeout`: the exposition text, or why not.
pub(super) async fn fetch(
    client: &reqwest::Client,
    endpoint: Option<&MetricsEndpoint>,
    timeout: Duration,
) -> Result<String, String> {
    let Some(m) = endpoint else {
        return Err("metrics_url is off".into());
    };
    let get = async {
        // A pooled connection the server closed while idle fails on first use: one
        // more try on a fresh connection (a scrape sends nothing but a GET).
        let send = || client.get(&m.url).header("accept", "text/plain").send();
        let resp = match send().await {
            Err(e) if e.is_request() || e.is_connect() => send().await,
            first => first,
        }
        .map_err(|e| format!("GET {}: {}", m.url, crate::preflight::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {}: HTTP {}", m.url, status.as_u16()));
        }
        resp.text()
            .await
            .map_err(|e| format!("GET {}: reading the body: {e}", m.url))
    };
    tokio::time::timeout(timeout, get)
        .await
        .unwrap_or_else(|_| Err(format!("GET {}: no answer within {timeout:?}", m.url)))
}
