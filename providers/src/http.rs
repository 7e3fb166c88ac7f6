//! The remote target: one HTTP client per target (keep-alive pool, HTTP/2 where the
//! server offers it over TLS, rustls), requests encoded by the API's codec, responses
//! read as they arrive.
//!
//! Timing: the sink is told about every read the moment `chunk()` returns it, before
//! any framing or JSON work, and tokens decoded from that read are stamped with its
//! arrival. Counting: per chunk from the server's cumulative usage when it sends usage
//! on content chunks, else from the tokenizer, else one per non-empty chunk; the
//! request's total is the server's usage when reported (the harness reconciles the
//! per-chunk counts to it).
//!
//! Faults: a 429/502/503/504 answer is retried after `Retry-After` or a jittered
//! backoff, within the retry budget, and every retry is reported to the sink; other
//! statuses fail with a one-line summary of the body; a stream that breaks, stalls
//! past the idle timeout, carries a malformed or oversized event, or ends before a
//! finish reason fails with its class, keeping what arrived. A stream that ends after
//! its finish reason without the terminator is accepted with a protocol warning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use results::{ErrorClass, Locality, TargetInfo, TokenSource};
use serde_json::Value;
use tokio::sync::Semaphore;
use workloads::{
    Backend, BackendError, ChunkTokens, Completion, FinishReason, PrepareError, Request,
    ServerUsage, StreamSink,
};

use crate::chunk_count::ChunkCounter;
use crate::codec::{Piece, Protocol, TextKind, Usage};
use crate::config::{HttpTargetConfig, Kind, TokenizerChoice, origin};
use crate::error::ProviderError;
use crate::protocols::protocol;
use crate::retry;
use crate::secret::{Secret, scrub};
use crate::sse::SseParser;

mod progress;
use progress::Progress;

/// Most bytes of an error body read for its summary.
const ERROR_BODY_BYTES: usize = 64 * 1024;
/// How long the rest of a finished stream is read for connection reuse.
const DRAIN: Duration = Duration::from_millis(100);
/// Most bytes of generated text kept per request (for the tokenizer's count).
const MAX_TEXT_BYTES: usize = 16 << 20;

/// An OpenAI-compatible or Anthropic target.
pub struct HttpBackend {
    cfg: HttpTargetConfig,
    protocol: Box<dyn Protocol>,
    endpoint: String,
    client: reqwest::Client,
    /// The client of a metrics endpoint on another host (no API key).
    metrics_client: Option<reqwest::Client>,
    secret: Option<Secret>,
    permits: Option<Arc<Semaphore>>,
    settings: BTreeMap<String, String>,
    /// The tokenizer's per-chunk counts, remembered across the run's requests.
    chunk_counter: ChunkCounter,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend")
            .field("cfg", &self.cfg)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

fn install_crypto_provider() {
    // `Err` means a provider is already installed, which is what is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpBackend {
    /// Builds a target of `kind` from its spec's settings; reads the API key from the
    /// environment variable the settings name.
    pub fn new(kind: Kind, settings: &BTreeMap<String, String>) -> Result<Self, ProviderError> {
        Self::with_config(HttpTargetConfig::from_settings(kind, settings)?, settings)
    }

    /// Builds a target from its validated configuration (`settings`, the spec's own,
    /// are echoed in reports, prices and secrets aside); reads the API key from the
    /// environment variable the configuration names.
    pub fn with_config(
        cfg: HttpTargetConfig,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, ProviderError> {
        let secret = match &cfg.api_key_env {
            Some(var) => Some(
                Secret::from_env(var)
                    .ok_or_else(|| ProviderError::MissingKey { var: var.clone() })?,
            ),
            None => None,
        };
        install_crypto_provider();
        let protocol = protocol(cfg.api);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &secret {
            let (name, value) = protocol.auth_header(key.expose());
            let mut v = HeaderValue::from_str(&value).map_err(|_| ProviderError::Setting {
                key: "api_key_env".into(),
                message: "the key holds characters not allowed in an HTTP header".into(),
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), v);
        }
        for (name, value) in protocol.headers(&cfg) {
            let v = HeaderValue::from_str(&value).map_err(|_| {
                ProviderError::setting(name, format!("`{value}` is not a header value"))
            })?;
            headers.insert(HeaderName::from_static(name), v);
        }
        let client = client::builder(&cfg)?
            .default_headers(headers)
            .build()
            .map_err(|e| ProviderError::Client(e.to_string()))?;
        // The key goes only to the base URL's host: a metrics endpoint elsewhere is
        // scraped by a client without it.
        let metrics_client = match &cfg.metrics {
            Some(m) if !origin(&m.url).eq_ignore_ascii_case(origin(&cfg.base_url)) => Some(
                client::builder(&cfg)?
                    .build()
                    .map_err(|e| ProviderError::Client(e.to_string()))?,
            ),
            _ => None,
        };
        let permits = cfg.max_connections.map(|n| Arc::new(Semaphore::new(n)));
        let mut echo = settings.clone();
        echo.retain(|k, _| !k.starts_with("price."));
        // A connection limit set for every target (`--max-connections`) shows as this
        // target's own.
        if let Some(n) = cfg.max_connections {
            echo.insert("max_connections".into(), n.to_string());
        }
        Ok(Self {
            chunk_counter: ChunkCounter::new(cfg.tokenizer.clone()),
            endpoint: format!("{}{}", cfg.base_url, protocol.path()),
            protocol,
            cfg,
            client,
            metrics_client,
            secret,
            permits,
            settings: echo,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &HttpTargetConfig {
        &self.cfg
    }

    fn err(&self, class: ErrorClass, msg: impl AsRef<str>) -> BackendError {
        BackendError::new(class, scrub(self.secret.as_ref(), msg.as_ref()))
    }

    /// The URL requests are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends the request, retrying within the budget; returns the accepted response.
    async fn send(
        &self,
        body: &[u8],
        sink: &mut dyn StreamSink,
    ) -> Result<reqwest::Response, BackendError> {
        let mut attempt = 0u32;
        loop {
            // Built before the send is stamped: building is client work, not time
            // on the wire.
            let request = self
                .client
                .post(&self.endpoint)
                .body(body.to_vec())
                .build()
                .map_err(|e| self.transport_error(&e, "building the request"))?;
            sink.on_send();
            let pending = self.client.execute(request);
            // Streamed responses send their head at once; a non-streamed one only when
            // generation is done, so only the request's total deadline bounds it.
            let resp = if self.cfg.stream {
                match tokio::time::timeout(self.cfg.idle_timeout, pending).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(self.err(
                            ErrorClass::Timeout,
                            format!(
                                "no response head within the idle timeout of {:?}",
                                self.cfg.idle_timeout
                            ),
                        ));
                    }
                }
            } else {
                pending.await
            };
            let resp = match resp {
                Ok(r) => r,
                // A connection that never opened never reached the server, and one
                // the server closed before any answer (a keep-alive connection it
                // was closing as the request went out): retried within the budget
                // like a 429, each retry recorded.
                Err(e)
                    if (refused(&e) || closed_before_answer(&e))
                        && attempt < self.cfg.max_retries =>
                {
                    let wait = retry::backoff(attempt, self.cfg.retry_max_wait, &mut rand::rng());
                    let left = sink
                        .deadline()
                        .map(|d| d.saturating_duration_since(std::time::Instant::now()));
                    if retry::judge(wait, self.cfg.retry_max_wait, left) != retry::Verdict::Wait {
                        return Err(self.transport_error(&e, "sending the request"));
                    }
                    sink.on_retry(ErrorClass::Connection, None, wait);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    let doing = match attempt {
                        0 => "sending the request".to_string(),
                        n => format!("sending the request (after {n} retries)"),
                    };
                    return Err(self.transport_error(&e, &doing));
                }
            };
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(resp);
            }
            let class = if status == 429 {
                ErrorClass::RateLimited
            } else {
                ErrorClass::HttpStatus
            };
            let mut not_retried = String::new();
            if retry::retryable(status) && attempt < self.cfg.max_retries {
                let header = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let asked = retry::retry_after(header.as_deref(), SystemTime::now());
                let wait = asked.unwrap_or_else(|| {
                    retry::backoff(attempt, self.cfg.retry_max_wait, &mut rand::rng())
                });
                let left = sink
                    .deadline()
                    .map(|d| d.saturating_duration_since(std::time::Instant::now()));
                match retry::judge(wait, self.cfg.retry_max_wait, left) {
                    retry::Verdict::Wait => {
                        drop(resp);
                        sink.on_retry(class, Some(status), wait);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    verdict => {
                        not_retried = retry::explain(verdict, header.as_deref(), wait, left);
                    }
                }
            }
            let summary = self.error_summary(resp).await;
            let mut e = self.err(
                class,
                format!(
                    "HTTP {status}{}{not_retried}: {summary}",
                    if attempt > 0 {
                        format!(" after {attempt} retries")
                    } else {
                        String::new()
                    }
                ),
            );
            e.http_status = Some(status);
            return Err(e);
        }
    }

    fn transport_error(&self, e: &reqwest::Error, doing: &str) -> BackendError {
        let class = if e.is_timeout() {
            ErrorClass::Timeout
        } else {
            ErrorClass::Connection
        };
        // The error's source chain says why (refused, reset, TLS); the URL has no key.
        let mut msg = format!("{doing}: {e}");
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        self.err(class, msg)
    }

    /// One line from an error body: the API's error message when it is JSON, else the
    /// first 200 characters.
    async fn error_summary(&self, mut resp: reqwest::Response) -> String {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_BYTES {
            match tokio::time::timeout(self.cfg.idle_timeout, resp.chunk()).await {
                Ok(Ok(Some(b))) => body.extend_from_slice(&b),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&body);
        let from_json = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            let e = v.get("error").unwrap_or(&v);
            e.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| e.as_str().map(str::to_string))
        });
        let line = from_json.unwrap_or_else(|| text.to_string());
        let line: String = line
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(200)
            .collect();
        if line.is_empty() {
            "(empty body)".into()
        } else {
            line
        }
    }
}

impl HttpBackend {
    /// Applies the pieces decoded from one event: counts its tokens and tells the sink.
    fn apply(
        &self,
        pieces: &mut Vec<Piece>,
        p: &mut Progress,
        sink: &mut dyn StreamSink,
    ) -> Result<(), BackendError> {
        let mut texts: Vec<(TextKind, String)> = Vec::new();
        let mut usage_here = None;
        let mut logprobs_here = None;
        for piece in pieces.drain(..) {
            match piece {
                Piece::Text(kind, t) => texts.push((kind, t)),
                Piece::Logprobs(n) => logprobs_here = Some(n),
                Piece::Usage(u) => {
                    p.usage.merge(u);
                    usage_here = u.output.or(usage_here);
                }
                Piece::Finish(r) => p.finish = Some(r),
                Piece::Done => p.done = true,
                Piece::ServerError(m) => {
                    return Err(self.err(
                        ErrorClass::ServerError,
                        format!("error event after {} tokens: {m}", p.tokens),
                    ));
                }
            }
        }
        if texts.is_empty() {
            return Ok(());
        }
        // Usage on a content chunk is cumulative: its growth is this chunk's count.
        let per_chunk = *p.usage_per_chunk.get_or_insert(usage_here.is_some());
        let delta = usage_here.filter(|_| per_chunk).and_then(|now| {
            let prev = p.usage_seen.unwrap_or(0);
            p.usage_seen = Some(now);
            (now > prev).then_some(now - prev)
        });
        let n_texts = texts.len();
        for (i, (kind, text)) in texts.into_iter().enumerate() {
            let count = match delta {
                // The whole delta goes to the event's last text.
                Some(d) if i + 1 == n_texts => {
                    p.note_source(ChunkTokens::UsageDelta);
                    d
                }
                Some(_) => 0,
                // Logprobs list the chunk's tokens: exact, on its last text.
                None if logprobs_here.is_some() => match logprobs_here {
                    Some(n) if i + 1 == n_texts => {
                        p.note_source(ChunkTokens::Logprobs);
                        n
                    }
                    _ => 0,
                },
                None => match self.chunk_counter.count(&text) {
                    Some(n) => {
                        p.note_source(ChunkTokens::Tokenizer);
                        n.max(1)
                    }
                    None => {
                        p.note_source(ChunkTokens::OnePerChunk);
                        1
                    }
                },
            };
            let buf = match kind {
                TextKind::Answer => &mut p.answer,
                TextKind::Reasoning => &mut p.reasoning,
            };
            if buf.len() + text.len() > MAX_TEXT_BYTES {
                return Err(self.err(
                    ErrorClass::Protocol,
                    format!("more than {MAX_TEXT_BYTES} bytes of generated text"),
                ));
            }
            buf.push_str(&text);
            if count > 0 {
                p.tokens += count;
                p.token_texts += 1;
                match kind {
                    TextKind::Answer => sink.on_tokens(count),
                    TextKind::Reasoning => sink.on_reasoning_tokens(count),
                }
            }
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        mut resp: reqwest::Response,
        p: &mut Progress,
        sink: &mut dyn StreamSink,
    ) -> Result<(), BackendError> {
        let mut parser = SseParser::new(self.cfg.max_event_bytes);
        let mut codec = self.protocol.decoder();
        let mut events = Vec::new();
        let mut pieces = Vec::new();
        loop {
            let read = match tokio::time::timeout(self.cfg.idle_timeout, resp.chunk()).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(self.err(
                        ErrorClass::Timeout,
                        format!(
                            "stream stalled: nothing for {:?} after {} tokens",
                            self.cfg.idle_timeout, p.tokens
                        ),
                    ));
                }
            };
            let bytes = match read {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    return Err(self
                        .transport_error(&e, &format!("stream broke after {} tokens", p.tokens)));
                }
            };
            sink.on_bytes(bytes.len());
            parser.push(&bytes, &mut events).map_err(|e| {
                self.err(
                    ErrorClass::Protocol,
                    format!("after {} tokens: {e}", p.tokens),
                )
            })?;
            for ev in events.drain(..) {
                if p.done {
                    break;
                }
                codec.decode_event(&ev, &mut pieces).map_err(|e| {
                    self.err(
                        ErrorClass::Protocol,
                        format!("after {} tokens: {e}", p.tokens),
                    )
                })?;
                self.apply(&mut pieces, p, sink)?;
            }
            if p.done {
                sink.on_complete();
                // Read the body's end so the connection can be reused, but only
                // briefly: the response's timing is already stamped.
                let drain = tokio::time::timeout(DRAIN, async {
                    while let Ok(Some(_)) = resp.chunk().await {}
                });
                let _ = drain.await;
                return Ok(());
            }
        }
        if p.finish.is_some() {
            sink.on_protocol_warning("stream ended after its finish reason without its terminator");
            return Ok(());
        }
        let partial = if parser.has_partial() {
            " in the middle of an event"
        } else {
            ""
        };
        Err(self.err(
            ErrorClass::Protocol,
            format!(
                "stream ended{partial} before a finish reason, after {} tokens",
                p.tokens
            ),
        ))
    }

    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        p: &mut Progress,
        sink: &mut dyn StreamSink,
    ) -> Result<(), BackendError> {
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(b)) => {
                    sink.on_bytes(b.len());
                    if body.len() + b.len() > self.cfg.max_event_bytes {
                        return Err(self.err(
                            ErrorClass::Protocol,
                            format!(
                                "response body larger than {} bytes",
                                self.cfg.max_event_bytes
                            ),
                        ));
                    }
                    body.extend_from_slice(&b);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(&e, "reading the response body")),
            }
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| {
            self.err(
                ErrorClass::Protocol,
                format!("response body is not JSON: {e}"),
            )
        })?;
        let mut pieces = Vec::new();
        self.protocol
            .decoder()
            .decode_body(&doc, &mut pieces)
            .map_err(|e| self.err(ErrorClass::Protocol, e))?;
        for piece in pieces {
            match piece {
                Piece::Text(TextKind::Answer, t) => p.answer.push_str(&t),
                Piece::Text(TextKind::Reasoning, t) => p.reasoning.push_str(&t),
                Piece::Usage(u) => p.usage.merge(u),
                Piece::Finish(r) => p.finish = Some(r),
                Piece::Done | Piece::Logprobs(_) => {}
                Piece::ServerError(m) => return Err(self.err(ErrorClass::ServerError, m)),
            }
        }
        // Everything arrived at once: one chunk of the whole output.
        let total = p
            .usage
            .output
            .unwrap_or_else(|| self.tokenizer_count(&p.answer, &p.reasoning).unwrap_or(1));
        p.tokens = total;
        p.chunk_tokens = Some(ChunkTokens::Unstreamed);
        if total > 0 {
            sink.on_tokens(total);
        }
        // The response ended when its last byte arrived, as its tokens did: E2E is
        // not stretched by parsing or by a busy client between here and the driver.
        sink.on_complete();
        if p.finish.is_none() {
            p.finish = Some("unknown".into());
        }
        p.done = true;
        Ok(())
    }

    fn tokenizer_count(&self, answer: &str, reasoning: &str) -> Option<u32> {
        let t = &self.cfg.tokenizer;
        Some((t.count(answer)? + t.count(reasoning)?) as u32)
    }
}

#[async_trait]
impl Backend for HttpBackend {
    fn describe(&self) -> TargetInfo {
        let mut settings = self.settings.clone();
        settings.remove("model");
        settings.remove("precision");
        TargetInfo {
            kind: self.cfg.kind.name().into(),
            model: self.cfg.model.clone(),
            // What the server runs is its business; nothing here can verify it: the
            // user's statement, or none.
            precision: self
                .cfg
                .precision
                .clone()
                .unwrap_or_else(|| results::PRECISION_NOT_STATED.into()),
            context_limit_tokens: self.cfg.context_limit,
            weights: None,
            settings,
            prices: self.cfg.prices.clone(),
            locality: Locality::Remote,
            device: None,
            streamed: self.cfg.stream,
            token_counter: self.cfg.tokenizer.name(),
            api: Some(self.protocol.api()),
        }
    }

    async fn prepare(&self) -> Result<(), PrepareError> {
        // Nothing to load; the first measured request opens its own connection (its
        // cost is measured, as a real client would pay it).
        if !self.cfg.preflight {
            return Ok(());
        }
        let tiny = crate::preflight::tiny_request();
        let body = serde_json::to_vec(&self.protocol.body(&self.cfg, &tiny))
            .map_err(|e| PrepareError::Failed(format!("encoding the preflight request: {e}")))?;
        let secret = self.secret.as_ref();
        crate::preflight::check(&self.client, &self.cfg, &self.endpoint, body, secret).await
    }

    fn metrics_endpoint(&self) -> Option<workloads::MetricsEndpoint> {
        self.cfg.metrics.clone()
    }

    async fn fetch_metrics(&self, timeout: Duration) -> Result<String, String> {
        let client = self.metrics_client.as_ref().unwrap_or(&self.client);
        metrics::fetch(client, self.cfg.metrics.as_ref(), timeout).await
    }

    async fn generate(
        &self,
        req: &Request,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, BackendError> {
        let body = serde_json::to_vec(&self.protocol.body(&self.cfg, req))
            .map_err(|e| self.err(ErrorClass::Other, format!("encoding the request: {e}")))?;
        // Waiting for a connection slot is the client's queue: it shows in queue_ms,
        // since the actual send is stamped when the request goes on the wire.
        let _permit = match &self.permits {
            Some(s) => Some(
                Arc::clone(s)
                    .acquire_owned()
                    .await
                    .map_err(|_| self.err(ErrorClass::Cancelled, "connection limit closed"))?,
            ),
            None => None,
        };
        let resp = self.send(&body, sink).await?;
        let mut p = Progress::new();
        if self.cfg.stream {
            self.read_stream(resp, &mut p, sink).await?;
        } else {
            self.read_body(resp, &mut p, sink).await?;
        }
        let tokenizer_output_tokens = self.tokenizer_count(&p.answer, &p.reasoning);
        let ended_by_length = matches!(p.finish.as_deref(), Some("length" | "max_tokens"));
        let fixed = (self.cfg.exact_output && ended_by_length).then_some(req.max_output_tokens);
        let (output_tokens, output_source) =
            output_count(p.usage.output, tokenizer_output_tokens, fixed, &p);
        let (input_tokens, input_source) = match p.usage.input {
            Some(n) => (n, TokenSource::ServerUsage),
            None => (req.input_tokens(), TokenSource::Tokenizer),
        };
        let finish = match p.finish.as_deref() {
            Some("length" | "max_tokens") => FinishReason::Length,
            _ => FinishReason::Stop,
        };
        let server_usage = (p.usage != Usage::default()).then_some(ServerUsage {
            input_tokens: p.usage.input,
            output_tokens: p.usage.output,
            cached_input_tokens: p.usage.cached_input,
            reasoning_tokens: p.usage.reasoning,
        });
        Ok(Completion {
            input_tokens,
            input_source,
            output_tokens,
            output_source,
            finish,
            output_token_ids: None,
            // Only a checked request's reply is graded: other texts are not kept.
            output_text: req.check.is_some().then_some(p.answer),
            input_cached_tokens: p.usage.cached_input,
            engine: None,
            server_usage,
            tokenizer_output_tokens,
            // No text at all: the method that would have counted it.
            chunk_tokens: p.chunk_tokens.unwrap_or(match self.cfg.tokenizer {
                TokenizerChoice::None => ChunkTokens::OnePerChunk,
                _ => ChunkTokens::Tokenizer,
            }),
            finish_reason: p.finish,
        })
    }
}

/// Longest a connection waits idle in the pool before it is dropped.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Whether `e` is a connection the server closed before any byte of an answer
/// (hyper's "connection closed before message completed"; seen against llama-server
/// on pooled keep-alive connections).
fn closed_before_answer(e: &reqwest::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        src = s.source();
    }
    false
}

/// Whether `e` is a connection that did not open for a network reason (refused,
/// unreachable, timed out), not a TLS or certificate failure (retrying cannot mend
/// those).
fn refused(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind as K;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return e.is_connect()
                && matches!(
                    io.kind(),
                    K::ConnectionRefused
                        | K::ConnectionReset
                        | K::ConnectionAborted
                        | K::HostUnreachable
                        | K::NetworkUnreachable
                        | K::TimedOut
                        | K::AddrNotAvailable
                );
        }
        src = s.source();
    }
    false
}

/// The output count of a response and where it came from: the server's usage; else
/// the larger of the tokenizer's count of the whole text and the number of texts that
/// carried a token. Servers that stream one token per chunk (llama.cpp, vLLM) are
/// thus counted exactly even where re-tokenizing their text merges tokens (SmolLM2
/// through llama.cpp: 61 by the tokenizer for 64 generated), and servers that
/// coalesce tokens into chunks by the tokenizer. With no tokenizer, the per-chunk
/// counts. Without usage, a request that fixed its length (`exact_output`: the
/// server ignores end-of-sequence) and ended by `length` generated exactly that
/// length (`fixed`), however the chunks were coalesced.
fn output_count(
    usage: Option<u32>,
    tokenizer: Option<u32>,
    fixed: Option<u32>,
    p: &Progress,
) -> (u32, TokenSource) {
    match (usage, tokenizer) {
        (Some(n), _) => (n, TokenSource::ServerUsage),
        // Only when what arrived is near that length: a server that stopped early
        // for another reason (a full context) and still said `length` is counted.
        (None, t) if fixed.is_some_and(|f| p.token_texts.max(t.unwrap_or(0)) * 10 >= f * 9) => {
            (fixed.unwrap_or(0), TokenSource::RequestedLength)
        }
        (None, Some(n)) if p.token_texts > n => (p.token_texts, TokenSource::ChunkCount),
        (None, Some(n)) => (n, TokenSource::Tokenizer),
        (None, None) => (p.tokens, TokenSource::ChunkCount),
    }
}

mod client;
mod metrics;
#[cfg(test)]
mod tests;
