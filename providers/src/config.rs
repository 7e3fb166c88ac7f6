//! A remote target's configuration, validated from its spec's `key=value` settings
//! (the command line's `openai,base_url=...,model=...` or a targets file's table,
//! which the harness flattens to the same keys).
//!
//! Secrets never live here: `api_key_env` names an environment variable, read once
//! when the target is built; a spec that carries a key itself is refused without
//! echoing it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use results::{Api, RateCard};
use serde_json::Value;
use tokenizers::Tokenizer;
use workloads::settings::{KeySpec, KeyType, Settings, names};

use crate::error::ProviderError;

/// The `anthropic-version` header sent unless the target sets another.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The API family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// OpenAI-compatible (`openai`).
    OpenAi,
    /// Anthropic Messages (`anthropic`).
    Anthropic,
}

impl Kind {
    /// The target kind's name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
        }
    }

    /// The APIs a target of this kind may speak; the first is the default.
    pub fn apis(self) -> &'static [Api] {
        match self {
            Kind::OpenAi => &[Api::Chat, Api::Completions],
            Kind::Anthropic => &[Api::Messages],
        }
    }

    /// The keys a target of this kind accepts.
    pub fn keys(self) -> &'static [KeySpec] {
        match self {
            Kind::OpenAi => OPENAI_KEYS,
            Kind::Anthropic => ANTHROPIC_KEYS,
        }
    }
}

/// The name of the output-length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens` (every OpenAI-compatible server).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's newer models require it).
    MaxCompletionTokens,
}

/// How output tokens are counted when the server gives no per-chunk usage.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenizerChoice {
    /// The embedded SmolLM2 tokenizer (exact for SmolLM2 servers, an estimate for
    /// other models).
    Embedded,
    /// The served model's own `tokenizer.json` (Hugging Face format).
    File(TokenizerFile),
    /// No tokenizer: one token per non-empty chunk.
    None,
}

/// A tokenizer read from a file.
#[derive(Clone)]
pub struct TokenizerFile {
    /// The file.
    pub path: String,
    tokenizer: Arc<Tokenizer>,
}

impl std::fmt::Debug for TokenizerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenizerFile({})", self.path)
    }
}

impl PartialEq for TokenizerFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl TokenizerChoice {
    /// Tokens of `text`; `None` without a tokenizer.
    pub fn count(&self, text: &str) -> Option<usize> {
        match self {
            TokenizerChoice::Embedded => Some(workloads::text::count_tokens(text)),
            TokenizerChoice::File(f) => Some(
                f.tokenizer
                    .encode_fast(text, false)
                    .map(|e| e.len())
                    .unwrap_or(0),
            ),
            TokenizerChoice::None => None,
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            TokenizerChoice::Embedded => workloads::text::TOKENIZER_NAME.to_string(),
            TokenizerChoice::File(f) => f.path.clone(),
            TokenizerChoice::None => "none".to_string(),
        }
    }
}

macro_rules! remote_keys {
    ($api:expr $(, $extra:expr)*) => {
        &[
            KeySpec {
                name: "base_url",
                ty: KeyType::Url,
                default: None,
                help: "required: the URL up to the version (`http://127.0.0.1:8080/v1`)",
            },
            KeySpec {
                name: "model",
                ty: KeyType::Text,
                default: None,
                help: "required: the model name sent in every request",
            },
            KeySpec {
                name: "precision",
                ty: KeyType::Text,
                default: None,
                help: "the weight precision the server runs, as you state it (`bf16`, `fp8`, `q4_k_m`; not verified); without it the report says `not stated` and labels leave it out",
            },
            $api,
            KeySpec {
                name: "stream",
                ty: KeyType::Bool,
                default: Some("true"),
                help: "stream responses (SSE); without it TTFT is the whole response's arrival and ITL is not measured",
            },
            KeySpec {
                name: "preflight",
                ty: KeyType::Bool,
                default: Some("true"),
                help: "before any load: the model list where the API has one (OpenAI-compatible: is the model served?), auth, and one 1-token request; an unreachable server, a missing model or a rejected key exits 2 with one line (`false`: skip it)",
            },
            KeySpec {
                name: "metrics_url",
                ty: KeyType::Text,
                default: Some("auto"),
                help: "the server's Prometheus endpoint, scraped through each load point: `auto` (the server root's `/metrics`, used when it answers), a URL (refused before load when it does not answer), or `off`",
            },
            KeySpec {
                name: "metrics_interval_s",
                ty: KeyType::Seconds,
                default: Some("1"),
                help: "seconds between two scrapes of `metrics_url` (a scrape also opens and closes each load point's measured window)",
            },
            KeySpec {
                name: "exact_output",
                ty: KeyType::Bool,
                default: Some("false"),
                help: "send `ignore_eos` and `min_tokens` so the server generates exactly the requested length (vLLM, SGLang; most hosted APIs refuse them)",
            },
            KeySpec {
                name: "max_tokens_field",
                ty: KeyType::Choice(&["max_tokens", "max_completion_tokens"]),
                default: Some("max_tokens"),
                help: "the output-length field's name",
            },
            KeySpec {
                name: "api_key_env",
                ty: KeyType::EnvVarName,
                default: None,
                help: "the NAME of the environment variable holding the API key (never the key)",
            },
            KeySpec {
                name: "context_limit",
                ty: KeyType::Integer { min: 1, max: 1 << 24 },
                default: None,
                help: "the served model's context (input + output tokens), to cap prompts",
            },
            KeySpec {
                name: "connect_timeout_s",
                ty: KeyType::Seconds,
                default: Some("10"),
                help: "TCP + TLS connect deadline",
            },
            KeySpec {
                name: "idle_timeout_s",
                ty: KeyType::Seconds,
                default: Some("30"),
                help: "the longest wait for a streamed response's head or between two reads of its stream",
            },
            KeySpec {
                name: "max_retries",
                ty: KeyType::Integer { min: 0, max: 100 },
                default: Some("3"),
                help: "retry budget per request for HTTP 429, 502, 503 and 504 and for connections that did not open",
            },
            KeySpec {
                name: "retry_max_wait_s",
                ty: KeyType::Seconds,
                default: Some("60"),
                help: "the longest wait before a retry; a longer `Retry-After` (or one past the request's deadline) ends the retries",
            },
            KeySpec {
                name: "max_connections",
                ty: KeyType::Integer { min: 1, max: workloads::bounds::MAX_CONNECTIONS },
                default: None,
                help: "most connections at once; requests wait for a slot and the wait shows in `queue_ms` (`--max-connections N` sets it where unset)",
            },
            KeySpec {
                name: "ca_bundle",
                ty: KeyType::Path,
                default: None,
                help: "PEM file of CAs to trust besides the platform's",
            },
            KeySpec {
                name: "tokenizer",
                ty: KeyType::Text,
                default: Some("embedded"),
                help: "`embedded`, `none` or a path to the served model's `tokenizer.json`: how chunks, and outputs without usage, are counted",
            },
            KeySpec {
                name: "max_event_bytes",
                ty: KeyType::Integer { min: 1024, max: 1 << 30 },
                default: Some("1048576"),
                help: "largest SSE event or unstreamed body",
            },
            $($extra,)*
            KeySpec {
                name: "body.*",
                ty: KeyType::Json,
                default: None,
                help: "an extra JSON body field of every request (`body.temperature=0`)",
            },
            KeySpec {
                name: "price.*",
                ty: KeyType::Usd,
                default: None,
                help: "list prices, USD per million tokens: `input_usd_per_m`, `output_usd_per_m` (both required with any), `cached_input_usd_per_m`, `reasoning_usd_per_m`; and `source`, `as_of`",
            },
        ]
    };
}

/// The keys of an `openai` target.
pub const OPENAI_KEYS: &[KeySpec] = remote_keys!(KeySpec {
    name: "api",
    ty: KeyType::Choice(&["chat", "completions"]),
    default: Some("chat"),
    help: "`/chat/completions` (messages with roles) or `/completions` (the messages joined)",
});

/// The keys of an `anthropic` target.
pub const ANTHROPIC_KEYS: &[KeySpec] = remote_keys!(
    KeySpec {
        name: "api",
        ty: KeyType::Choice(&["messages"]),
        default: Some("messages"),
        help: "the Messages API (`/messages`)",
    },
    KeySpec {
        name: "anthropic_version",
        ty: KeyType::Text,
        default: Some(DEFAULT_ANTHROPIC_VERSION),
        help: "the `anthropic-version` header",
    }
);

/// Body fields the target controls itself; `body.*` may not override them.
const RESERVED_BODY: &[&str] = &["model", "messages", "prompt", "stream", "system"];

/// A remote target's validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpTargetConfig {
    /// API family.
    pub kind: Kind,
    /// Base URL up to the version path (`http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// Model name sent in every request.
    pub model: String,
    /// The precision the user states the server runs (not verified).
    pub precision: Option<String>,
    /// Endpoint (OpenAI-compatible only).
    pub api: Api,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Stream responses (SSE); without it every figure but E2E is approximate.
    pub stream: bool,
    /// Check the endpoint, the model and the key before any load.
    pub preflight: bool,
    /// The server's Prometheus endpoint, if scraped.
    pub metrics: Option<workloads::MetricsEndpoint>,
    /// Send `ignore_eos` and `min_tokens` so the server generates exactly the
    /// requested length (vLLM, SGLang; hosted APIs usually refuse these fields).
    pub exact_output: bool,
    /// Output-length field name.
    pub max_tokens_field: MaxTokensField,
    /// Extra JSON body fields (`body.temperature=0`), added to every request.
    pub body: BTreeMap<String, Value>,
    /// TCP + TLS connect deadline.
    pub connect_timeout: Duration,
    /// Longest wait for the response head or between two reads of the stream.
    pub idle_timeout: Duration,
    /// Retries of a 429/502/503/504 answer (the retry budget per request).
    pub max_retries: u32,
    /// Longest single wait before a retry (a longer `Retry-After` ends the retries).
    pub retry_max_wait: Duration,
    /// Most connections open at once (requests wait for one; the wait shows in
    /// `queue_ms`); `None` = unbounded.
    pub max_connections: Option<usize>,
    /// PEM file of extra CA certificates to trust.
    pub ca_bundle: Option<PathBuf>,
    /// `anthropic-version` header.
    pub anthropic_version: String,
    /// Per-chunk token counting fallback.
    pub tokenizer: TokenizerChoice,
    /// Largest SSE event (and largest non-streamed body) accepted, bytes.
    pub max_event_bytes: usize,
    /// The served model's context (input + output tokens), when the user gives it.
    pub context_limit: Option<u32>,
    /// List prices, echoed into the report.
    pub prices: Option<RateCard>,
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ProviderError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ProviderError::setting(
            key,
            format!("`{v}` is not true or false"),
        )),
    }
}

fn parse_secs(key: &str, v: &str) -> Result<Duration, ProviderError> {
    let s = v.parse::<f64>().map_err(|_| {
        ProviderError::setting(key, format!("`{v}` is not a positive number of seconds"))
    })?;
    workloads::bounds::seconds(key, s, workloads::bounds::MAX_DURATION_S)
        .map_err(|e| ProviderError::setting(key, e.message))
}

fn parse_prices(prices: &BTreeMap<&str, &str>) -> Result<Option<RateCard>, ProviderError> {
    if prices.is_empty() {
        return Ok(None);
    }
    let usd = |k: &str| -> Result<Option<f64>, ProviderError> {
        match prices.get(k) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(ProviderError::setting(
                    &format!("price.{k}"),
                    format!("`{v}` is not a non-negative price in USD"),
                )),
            },
        }
    };
    const KEYS: &[&str] = &[
        "input_usd_per_m",
        "cached_input_usd_per_m",
        "output_usd_per_m",
        "reasoning_usd_per_m",
        "source",
        "as_of",
    ];
    if let Some(k) = prices.keys().find(|k| !KEYS.contains(k)) {
        return Err(ProviderError::setting(
            &format!("price.{k}"),
            format!("unknown price (known: {})", KEYS.join(", ")),
        ));
    }
    let required = |k: &str| {
        usd(k)?.ok_or_else(|| {
            ProviderError::setting(&format!("price.{k}"), "is required with any price".into())
        })
    };
    Ok(Some(RateCard {
        input_usd_per_m: required("input_usd_per_m")?,
        cached_input_usd_per_m: usd("cached_input_usd_per_m")?,
        output_usd_per_m: required("output_usd_per_m")?,
        reasoning_usd_per_m: usd("reasoning_usd_per_m")?,
        source: prices.get("source").map(|s| s.to_string()),
        as_of: prices.get("as_of").map(|s| s.to_string()),
    }))
}

impl HttpTargetConfig {
    /// Validates a target's settings against the keys of `kind`.
    pub fn from_settings(
        kind: Kind,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, ProviderError> {
        // Never echo a key's value: it may be a secret.
        if let Some(k) = settings
            .keys()
            .find(|k| *k == "api_key" || *k == "key" || k.ends_with("_key"))
        {
            return Err(ProviderError::setting(
                k,
                "a key may not be written in a target spec; put it in an environment variable and name that with api_key_env=VAR".into(),
            ));
        }
        let s = Settings::new(kind.keys(), settings).map_err(|k| {
            ProviderError::setting(k, format!("unknown key (known: {})", names(kind.keys())))
        })?;
        let mut body = BTreeMap::new();
        for (field, v) in s.family("body.") {
            if RESERVED_BODY.contains(&field) {
                return Err(ProviderError::setting(
                    &format!("body.{field}"),
                    format!(
                        "this body field is set by the target itself (reserved: {})",
                        RESERVED_BODY.join(", ")
                    ),
                ));
            }
            // A JSON value when it parses as one (`0`, `true`, `{"a":1}`), else a string.
            let value = serde_json::from_str::<Value>(v).unwrap_or(Value::String(v.to_string()));
            body.insert(field.to_string(), value);
        }
        let prices: BTreeMap<&str, &str> = s.family("price.").collect();
        let base_url = s
            .get("base_url")
            .ok_or_else(|| ProviderError::setting("base_url", "is required".into()))?
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ProviderError::setting(
                "base_url",
                format!("`{base_url}` is not an http:// or https:// URL"),
            ));
        }
        let model = s
            .get("model")
            .ok_or_else(|| ProviderError::setting("model", "is required".into()))?
            .to_string();
        let api = match s.get("api") {
            None => kind.apis()[0],
            Some(v) => *kind
                .apis()
                .iter()
                .find(|a| a.as_str() == v)
                .ok_or_else(|| {
                    ProviderError::setting(
                        "api",
                        format!(
                            "`{v}` is not one of {} (the APIs of {} targets)",
                            kind.apis()
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            kind.name()
                        ),
                    )
                })?,
        };
        let api_key_env = s.get("api_key_env").map(str::to_string);
        if let Some(name) = &api_key_env
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            // A value that does not look like a variable name may be a key pasted by
            // mistake: do not echo it.
            return Err(ProviderError::setting(
                "api_key_env",
                "must be the NAME of an environment variable (letters, digits, _), not a key"
                    .into(),
            ));
        }
        let max_tokens_field = match s.get("max_tokens_field") {
            None | Some("max_tokens") => MaxTokensField::MaxTokens,
            Some("max_completion_tokens") => MaxTokensField::MaxCompletionTokens,
            Some(v) => {
                return Err(ProviderError::setting(
                    "max_tokens_field",
                    format!("`{v}` is not max_tokens or max_completion_tokens"),
                ));
            }
        };
        let tokenizer = match s.get("tokenizer") {
            None | Some("embedded") | Some("smollm2-135m") => TokenizerChoice::Embedded,
            Some("none") => TokenizerChoice::None,
            Some(path) if path.ends_with(".json") => {
                let tokenizer = Tokenizer::from_file(path).map_err(|e| {
                    ProviderError::setting(
                        "tokenizer",
                        format!("{path}: not a readable tokenizer.json: {e}"),
                    )
                })?;
                TokenizerChoice::File(TokenizerFile {
                    path: path.to_string(),
                    tokenizer: Arc::new(tokenizer),
                })
            }
            Some(v) => {
                return Err(ProviderError::setting(
                    "tokenizer",
                    format!("`{v}` is not embedded, none or a path to a tokenizer.json"),
                ));
            }
        };
        let secs = |k: &str| -> Result<Duration, ProviderError> {
            let v = s
                .get(k)
                .ok_or_else(|| ProviderError::setting(k, "has no default".into()))?;
            parse_secs(k, v)
        };
        // Counts, within the bounds their keys declare.
        let int = |k: &str| s.integer(k).map_err(|m| ProviderError::setting(k, m));
        let ca_bundle = s.get("ca_bundle").map(PathBuf::from);
        if let Some(p) = &ca_bundle
            && !p.is_file()
        {
            return Err(ProviderError::setting(
                "ca_bundle",
                format!("{} is not a readable file", p.display()),
            ));
        }
        let bool_of = |k: &str| match s.get(k) {
            Some(v) => parse_bool(k, v),
            None => Ok(false),
        };
        let metrics =
            metrics_endpoint(&base_url, s.get("metrics_url"), secs("metrics_interval_s")?)?;
        Ok(Self {
            kind,
            base_url,
            model,
            precision: s.get("precision").map(str::to_string),
            api,
            api_key_env,
            stream: bool_of("stream")?,
            preflight: match s.get("preflight") {
                Some(v) => parse_bool("preflight", v)?,
                None => true,
            },
            metrics,
            exact_output: bool_of("exact_output")?,
            max_tokens_field,
            body,
            connect_timeout: secs("connect_timeout_s")?,
            idle_timeout: secs("idle_timeout_s")?,
            max_retries: int("max_retries")?.map_or(3, |n| n as u32),
            retry_max_wait: secs("retry_max_wait_s")?,
            max_connections: int("max_connections")?.map(|n| n as usize),
            ca_bundle,
            anthropic_version: s
                .get("anthropic_version")
                .unwrap_or(DEFAULT_ANTHROPIC_VERSION)
                .to_string(),
            tokenizer,
            max_event_bytes: int("max_event_bytes")?.map_or(1 << 20, |n| n as usize),
            context_limit: int("context_limit")?.map(|n| n as u32),
            prices: parse_prices(&prices)?,
        })
    }

    /// A minimal configuration for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(kind: Kind) -> Self {
        let settings = BTreeMap::from([
            ("base_url".to_string(), "http://127.0.0.1:1/v1".to_string()),
            ("model".to_string(), "m".to_string()),
        ]);
        Self::from_settings(kind, &settings).expect("valid")
    }
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    &url[..end]
}

/// The metrics endpoint `metrics_url` names: `auto` is the origin of `base_url` with
/// `/metrics` (scraped when it answers), `off` none, anything else an explicit URL.
fn metrics_endpoint(
    base_url: &str,
    value: Option<&str>,
    interval: Duration,
) -> Result<Option<workloads::MetricsEndpoint>, ProviderError> {
    if interval < Duration::from_millis(50) {
        return Err(ProviderError::setting(
            "metrics_interval_s",
            format!("must be at least 0.05 s, got {}", interval.as_secs_f64()),
        ));
    }
    let (url, explicit) = match value.unwrap_or("auto") {
        "off" | "false" => return Ok(None),
        "auto" => {
            // Servers serve /metrics at the root of the base URL's origin.
            (format!("{}/metrics", origin(base_url)), false)
        }
        url if url.starts_with("http://") || url.starts_with("https://") => (url.to_string(), true),
        other => {
            return Err(ProviderError::setting(
                "metrics_url",
                format!("`{other}` is not auto, off or an http(s):// URL"),
            ));
        }
    };
    Ok(Some(workloads::MetricsEndpoint {
        url,
        explicit,
        interval,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_setting() {
        let c = HttpTargetConfig::from_settings(
            Kind::OpenAi,
            &settings(&[
                ("base_url", "http://h:1/v1/"),
                ("model", "m"),
                ("api", "completions"),
                ("body.temperature", "0"),
                ("body.stop", "end"),
                ("price.input_usd_per_m", "0.5"),
                ("price.output_usd_per_m", "1.5"),
                ("idle_timeout_s", "2.5"),
                ("max_connections", "4"),
                ("exact_output", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api, Api::Completions);
        assert_eq!(c.base_url, "http://h:1/v1");
        assert_eq!(c.body["temperature"], serde_json::json!(0));
        assert_eq!(c.body["stop"], serde_json::json!("end"));
        assert_eq!(c.prices.as_ref().unwrap().output_usd_per_m, 1.5);
        assert_eq!(c.idle_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_connections, Some(4));
        assert!(c.exact_output && c.stream);
    }

    #[test]
    fn refuses_bad_settings_without_echoing_secrets() {
        let base = [("base_url", "http://h/v1"), ("model", "m")];
        for (k, v, expect) in [
            ("api_key", "sk-secret-123", "environment variable"),
            ("api_key_env", "sk-secret-123", "NAME of an environment"),
            ("api", "embeddings", "is not one of chat, completions"),
            ("body.model", "x", "reserved"),
            ("price.input_usd_per_m", "-1", "non-negative"),
            ("price.input_usd_per_m", "1", "required"),
            ("idle_timeout_s", "0", "must be a number above 0"),
            ("idle_timeout_s", "1e20", "at most 604800 seconds"),
            ("colour", "red", "unknown key"),
        ] {
            let mut s = settings(&base);
            s.insert(k.into(), v.into());
            let err = HttpTargetConfig::from_settings(Kind::OpenAi, &s)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{k}={v}: {err}");
            assert!(!err.contains("sk-secret"), "{err}");
        }
        let err = HttpTargetConfig::from_settings(Kind::OpenAi, &settings(&[("model", "m")]))
            .unwrap_err();
        assert!(err.to_string().contains("base_url"));
    }

    #[test]
    fn metrics_url_is_the_servers_root_by_default_a_named_url_or_off() {
        let d = Duration::from_secs(1);
        let auto = metrics_endpoint("http://127.0.0.1:8080/v1", None, d)
            .unwrap()
            .unwrap();
        assert_eq!(
            (auto.url.as_str(), auto.explicit),
            ("http://127.0.0.1:8080/metrics", false)
        );
        let bare = metrics_endpoint("https://h.example", Some("auto"), d)
            .unwrap()
            .unwrap();
        assert_eq!(bare.url, "https://h.example/metrics");
        let named = metrics_endpoint("http://a/v1", Some("http://b:9/m"), d)
            .unwrap()
            .unwrap();
        assert!(named.explicit);
        assert_eq!(
            metrics_endpoint("http://a/v1", Some("off"), d).unwrap(),
            None
        );
        assert_eq!(origin("http://H:8/v1/x"), "http://H:8");
        assert_ne!(origin("http://h:8/v1"), origin("http://h:9/metrics"));
        let e = metrics_endpoint("http://a/v1", Some("/metrics"), d).unwrap_err();
        assert!(e.to_string().contains("metrics_url"), "{e}");
    }
}
