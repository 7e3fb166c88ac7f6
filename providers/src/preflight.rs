//! Preflight: before any load is sent, is the endpoint right? For OpenAI-compatible
//! servers the model list (`GET {base_url}/models`: is the model served? is the key
//! accepted?), then for every API one request of one output token. An unreachable
//! server, a model the server does not list, a rejected key or a refused request is a
//! configuration error (one line, exit code 2) instead of N failed measurements.
//! Transient answers (429, 5xx) pass: the run's retries handle them.

use std::time::Duration;

use serde_json::Value;
use workloads::{PrepareError, Request};

use results::Api;

use crate::config::HttpTargetConfig;
use crate::secret::{Secret, scrub};

/// Longest wait for each preflight answer.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(30);

/// The request the preflight sends: a two-word prompt, one output token.
pub fn tiny_request() -> Request {
    Request::single("Say hi.", 1)
}

/// One line naming the target, the step and what went wrong, the key scrubbed.
fn fail(cfg: &HttpTargetConfig, secret: Option<&Secret>, what: String) -> PrepareError {
    let line = format!(
        "preflight of {} target at {} (model `{}`): {what}",
        cfg.kind.name(),
        cfg.base_url,
        cfg.model
    );
    PrepareError::Config(scrub(secret, &line).replace(['\n', '\r'], " "))
}

/// The first 200 characters of a body, on one line.
fn excerpt(body: &str) -> String {
    let one: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

/// A transport error and every cause under it, on one line.
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn transport(e: &reqwest::Error) -> String {
    let msg = error_chain(e);
    if e.is_timeout() {
        format!("no answer within {PREFLIGHT_TIMEOUT:?} ({msg})")
    } else {
        format!("unreachable ({msg})")
    }
}

/// Checks the endpoint with `client` (its default headers carry the key): the model
/// list where the API has one, then `body` posted to `endpoint`.
pub async fn check(
    client: &reqwest::Client,
    cfg: &HttpTargetConfig,
    endpoint: &str,
    body: Vec<u8>,
    secret: Option<&Secret>,
) -> Result<(), PrepareError> {
    if matches!(cfg.api, Api::Chat | Api::Completions) {
        let url = format!("{}/models", cfg.base_url);
        let resp = client
            .get(&url)
            .timeout(PREFLIGHT_TIMEOUT)
            .send()
            .await
            .map_err(|e| fail(cfg, secret, format!("GET /models: {}", transport(&e))))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            401 | 403 => {
                return Err(fail(
                    cfg,
                    secret,
                    format!(
                        "the server rejected the API key (HTTP {status} on GET /models: {})",
                        excerpt(&text)
                    ),
                ));
            }
            200 => {
                let ids: Vec<String> = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.get("data")?.as_array().map(|a| {
                            a.iter()
                                .filter_map(|m| m.get("id")?.as_str().map(String::from))
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                if !ids.is_empty() && !ids.contains(&cfg.model) {
                    let mut shown: Vec<&str> = ids.iter().map(String::as_str).take(10).collect();
                    if ids.len() > 10 {
                        shown.push("...");
                    }
                    return Err(fail(
                        cfg,
                        secret,
                        format!(
                            "the server does not serve this model (it serves: {})",
                            shown.join(", ")
                        ),
                    ));
                }
            }
            // No model list here (404, 405, ...): the request below decides.
            _ => {}
        }
    }
    let resp = client
        .post(endpoint)
        .body(body)
        .timeout(PREFLIGHT_TIMEOUT)
        .send()
        .await
        .map_err(|e| fail(cfg, secret, format!("a 1-token request: {}", transport(&e))))?;
    let status = resp.status().as_u16();
    if resp.status().is_success() || status == 429 || status >= 500 {
        // Read the (one-token) answer to its end, so that the server is done with it
        // before the measured load starts.
        let _ = resp.bytes().await;
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let what = match status {
        401 | 403 => "the server rejected the API key",
        404 => "the endpoint or the model was not found",
        _ => "the server refused the request",
    };
    Err(fail(
        cfg,
        secret,
        format!(
            "{what} (HTTP {status} on a 1-token request: {})",
            excerpt(&text)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        let long = "a\nb ".repeat(300);
        let e = excerpt(&long);
        assert!(
            !e.contains('\n') && e.ends_with("...") && e.chars().count() <= 203,
            "{e}"
        );
        assert_eq!(excerpt("  x\n y "), "x y");
    }

    #[test]
    fn a_failure_names_the_target_and_hides_the_key() {
        let cfg = HttpTargetConfig::for_tests(crate::config::Kind::OpenAi);
        let secret = Secret("sk-verysecretkey1234".into());
        let e = fail(
            &cfg,
            Some(&secret),
            "HTTP 401: bad key sk-verysecretkey1234\nagain".into(),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("preflight of openai target at http://127.0.0.1:1/v1 (model `m`)"),
            "{s}"
        );
        assert!(!s.contains("verysecret") && !s.contains('\n'), "{s}");
        assert!(matches!(e, PrepareError::Config(_)));
    }
}
