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

use results::RateCard;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::error::ProviderError;

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
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
        }
    }
}

/// Which OpenAI-compatible endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/chat/completions`, messages with roles.
    Chat,
    /// `/completions`, one prompt text.
    Completions,
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

/// Settings keys a remote target accepts (besides `body.*` and `price.*`).
pub const SETTINGS: &[&str] = &[
    "base_url",
    "model",
    "api",
    "api_key_env",
    "stream",
    "exact_output",
    "max_tokens_field",
    "connect_timeout_s",
    "idle_timeout_s",
    "max_retries",
    "retry_max_wait_s",
    "max_connections",
    "ca_bundle",
    "anthropic_version",
    "tokenizer",
    "max_event_bytes",
    "context_limit",
];

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
    /// Endpoint (OpenAI-compatible only).
    pub api: Api,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Stream responses (SSE); without it every figure but E2E is approximate.
    pub stream: bool,
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
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(ProviderError::setting(
            key,
            format!("`{v}` is not a positive number of seconds"),
        )),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, ProviderError> {
    v.parse::<T>()
        .map_err(|_| ProviderError::setting(key, format!("`{v}` is not {what}")))
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
    /// Validates a target's settings.
    pub fn from_settings(
        kind: Kind,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, ProviderError> {
        let mut body = BTreeMap::new();
        let mut prices = BTreeMap::new();
        for (k, v) in settings {
            if let Some(field) = k.strip_prefix("body.") {
                if field.is_empty() || RESERVED_BODY.contains(&field) {
                    return Err(ProviderError::setting(
                        k,
                        format!(
                            "this body field is set by the target itself (reserved: {})",
                            RESERVED_BODY.join(", ")
                        ),
                    ));
                }
                // A JSON value when it parses as one (`0`, `true`, `{"a":1}`), else a string.
                let value = serde_json::from_str::<Value>(v).unwrap_or(Value::String(v.clone()));
                body.insert(field.to_string(), value);
            } else if let Some(p) = k.strip_prefix("price.") {
                prices.insert(p, v.as_str());
            } else if k == "api_key" || k == "key" || k.ends_with("_key") && k != "api_key_env" {
                // Never echo the value: it is a secret.
                return Err(ProviderError::setting(
                    k,
                    "a key may not be written in a target spec; put it in an environment variable and name that with api_key_env=VAR".into(),
                ));
            } else if !SETTINGS.contains(&k.as_str()) {
                return Err(ProviderError::setting(
                    k,
                    format!(
                        "unknown key (known: {}, body.FIELD, price.NAME)",
                        SETTINGS.join(", ")
                    ),
                ));
            }
        }
        let get = |k: &str| settings.get(k).map(String::as_str);
        let base_url = get("base_url")
            .ok_or_else(|| ProviderError::setting("base_url", "is required".into()))?
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ProviderError::setting(
                "base_url",
                format!("`{base_url}` is not an http:// or https:// URL"),
            ));
        }
        let model = get("model")
            .ok_or_else(|| ProviderError::setting("model", "is required".into()))?
            .to_string();
        let api = match (kind, get("api")) {
            (_, None) | (Kind::OpenAi, Some("chat")) => Api::Chat,
            (Kind::OpenAi, Some("completions")) => Api::Completions,
            (Kind::Anthropic, Some(v)) if v != "messages" => {
                return Err(ProviderError::setting(
                    "api",
                    format!("`{v}`: anthropic targets speak the Messages API only"),
                ));
            }
            (Kind::Anthropic, Some(_)) => Api::Chat,
            (Kind::OpenAi, Some(v)) => {
                return Err(ProviderError::setting(
                    "api",
                    format!("`{v}` is not chat or completions"),
                ));
            }
        };
        let api_key_env = get("api_key_env").map(str::to_string);
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
        let max_tokens_field = match get("max_tokens_field") {
            None | Some("max_tokens") => MaxTokensField::MaxTokens,
            Some("max_completion_tokens") => MaxTokensField::MaxCompletionTokens,
            Some(v) => {
                return Err(ProviderError::setting(
                    "max_tokens_field",
                    format!("`{v}` is not max_tokens or max_completion_tokens"),
                ));
            }
        };
        let tokenizer = match get("tokenizer") {
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
        let opt_secs = |k: &str, default: f64| match get(k) {
            Some(v) => parse_secs(k, v),
            None => Ok(Duration::from_secs_f64(default)),
        };
        let max_connections = match get("max_connections") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(ProviderError::setting(
                        "max_connections",
                        format!("`{v}` is not a positive integer"),
                    ));
                }
            },
        };
        let ca_bundle = get("ca_bundle").map(PathBuf::from);
        if let Some(p) = &ca_bundle
            && !p.is_file()
        {
            return Err(ProviderError::setting(
                "ca_bundle",
                format!("{} is not a readable file", p.display()),
            ));
        }
        let max_event_bytes = match get("max_event_bytes") {
            None => 1 << 20,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1024 => n,
                _ => {
                    return Err(ProviderError::setting(
                        "max_event_bytes",
                        format!("`{v}` is not an integer of at least 1024"),
                    ));
                }
            },
        };
        let context_limit = match get("context_limit") {
            None => None,
            Some(v) => Some(parse_num::<u32>("context_limit", v, "a token count")?),
        };
        Ok(Self {
            kind,
            base_url,
            model,
            api,
            api_key_env,
            stream: get("stream").map_or(Ok(true), |v| parse_bool("stream", v))?,
            exact_output: get("exact_output")
                .map_or(Ok(false), |v| parse_bool("exact_output", v))?,
            max_tokens_field,
            body,
            connect_timeout: opt_secs("connect_timeout_s", 10.0)?,
            idle_timeout: opt_secs("idle_timeout_s", 30.0)?,
            max_retries: match get("max_retries") {
                Some(v) => parse_num("max_retries", v, "a count of retries")?,
                None => 3,
            },
            retry_max_wait: opt_secs("retry_max_wait_s", 60.0)?,
            max_connections,
            ca_bundle,
            anthropic_version: get("anthropic_version")
                .unwrap_or(crate::anthropic::DEFAULT_VERSION)
                .to_string(),
            tokenizer,
            max_event_bytes,
            context_limit,
            prices: parse_prices(&prices)?,
        })
    }

    /// The endpoint URL requests are posted to.
    pub fn endpoint(&self) -> String {
        match (self.kind, self.api) {
            (Kind::Anthropic, _) => format!("{}/messages", self.base_url),
            (Kind::OpenAi, Api::Chat) => format!("{}/chat/completions", self.base_url),
            (Kind::OpenAi, Api::Completions) => format!("{}/completions", self.base_url),
        }
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
        assert_eq!(c.endpoint(), "http://h:1/v1/completions");
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
            ("api", "embeddings", "not chat or completions"),
            ("body.model", "x", "reserved"),
            ("price.input_usd_per_m", "-1", "non-negative"),
            ("price.input_usd_per_m", "1", "required"),
            ("idle_timeout_s", "0", "positive"),
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
}
