//! The `server` section of a remote result: what the target's own Prometheus
//! `/metrics` said over the measured window, mapped from each server's names (vLLM,
//! SGLang, TGI, llama.cpp's `llama-server`) to one vocabulary, and the client's figures
//! reconciled with the server's. Since 1.8.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A server's metrics over one load point's measured window. Since 1.8.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerMetrics {
    /// The endpoint scraped.
    pub url: String,
    /// The server the series names identify: `vllm`, `sglang`, `tgi`, `llamacpp`, or
    /// `unknown` (every series is then kept raw).
    pub server: String,
    /// Scrape interval asked for, seconds.
    pub interval_s: f64,
    /// Scrapes inside the window (the first at its start, the last after its last
    /// response).
    pub scrapes: u64,
    /// Scrapes that failed (timeout, HTTP error, unparsable text).
    pub failed_scrapes: u64,
    /// Seconds from the first to the last scrape of the window.
    pub window_s: f64,
    /// Requests the server was running, over the window's scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_running: Option<GaugeSummary>,
    /// Requests waiting in the server's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_waiting: Option<GaugeSummary>,
    /// KV-cache usage, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage_ratio: Option<GaugeSummary>,
    /// Preemptions over the window (counter delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<f64>,
    /// Requests the server finished over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_finished: Option<f64>,
    /// Prompt tokens the server processed over the window (cached ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    /// Of those, tokens served from its prefix cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_cached: Option<f64>,
    /// Output tokens the server generated over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<f64>,
    /// Prefix-cache hits over queries (tokens or blocks, as the server counts them)
    /// over the window, 0-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_ratio: Option<f64>,
    /// The server's time to first token (its histogram's delta over the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<HistogramSummary>,
    /// The server's queue time (arrival to scheduled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<HistogramSummary>,
    /// The server's prefill time (scheduled to first token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_ms: Option<HistogramSummary>,
    /// The server's inter-token latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<HistogramSummary>,
    /// The server's end-to-end request latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<HistogramSummary>,
    /// Series outside the vocabulary: counters as their delta over the window
    /// (`name{labels}_delta`), gauges as their last value.
    pub raw: BTreeMap<String, f64>,
    /// The client's figures beside the server's.
    pub reconciliation: Reconciliation,
    /// What a reader must know (counter resets, missing series, failed scrapes).
    pub notes: Vec<String>,
}

/// A gauge over a window's scrapes. Since 1.8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GaugeSummary {
    /// Mean of the scraped values.
    pub mean: f64,
    /// Largest scraped value.
    pub max: f64,
    /// Last scraped value.
    pub last: f64,
}

/// A server histogram's delta over a window, in milliseconds. Quantiles are
/// interpolated within buckets, as Prometheus' `histogram_quantile` does: they are as
/// coarse as the server's buckets. Since 1.8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistogramSummary {
    /// Observations in the window.
    pub count: f64,
    /// Sum over count, ms.
    pub mean: Option<f64>,
    /// Median, ms.
    pub p50: Option<f64>,
    /// 90th percentile, ms.
    pub p90: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
}

/// Client and server side by side; a figure neither side has is `null`. Since 1.8.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconciliation {
    /// Requests the client sent in the window.
    pub client_requests: u64,
    /// Requests the server finished in the window.
    pub server_requests: Option<f64>,
    /// Mean client TTFT minus mean server TTFT, ms: network, HTTP and client time
    /// (and server time outside its own TTFT span).
    pub ttft_client_minus_server_ms: Option<f64>,
    /// Mean client TTFT, ms (successful requests).
    pub client_ttft_mean_ms: Option<f64>,
    /// Mean server queue time, ms: the share of TTFT spent waiting in the server.
    pub server_queue_mean_ms: Option<f64>,
    /// Output tokens the client counted.
    pub client_output_tokens: u64,
    /// Output tokens the server counted.
    pub server_output_tokens: Option<f64>,
    /// (server - client) / client output tokens, percent.
    pub output_tokens_diff_pct: Option<f64>,
    /// Prompt tokens the client counted.
    pub client_input_tokens: u64,
    /// Prompt tokens the server counted (cached included).
    pub server_input_tokens: Option<f64>,
    /// (server - client) / client prompt tokens, percent (a chat template's tokens
    /// make the server's count larger).
    pub input_tokens_diff_pct: Option<f64>,
    /// Whether the counts agree within 2% and the request counts exactly (`null` when
    /// the server counts none of them).
    pub agree: Option<bool>,
    /// Each disagreement, in words.
    pub disagreements: Vec<String>,
}
