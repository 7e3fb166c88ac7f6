//! One vocabulary over the servers' own metric names. Each figure lists, per server,
//! the series that give it (the first present wins). vLLM's and llama.cpp's names are
//! checked against their real `/metrics` in the tests (FIELD.md lists both); SGLang's
//! and TGI's come from their documentation and are not exercised here.

/// The server a scrape's series names identify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// vLLM (`vllm:`).
    Vllm,
    /// SGLang (`sglang:`).
    Sglang,
    /// Hugging Face TGI (`tgi_`).
    Tgi,
    /// llama.cpp's `llama-server` (`llamacpp:`).
    Llamacpp,
    /// None of these: every series is kept raw.
    Unknown,
}

impl Server {
    /// Identifies the server by its series' prefixes.
    pub fn detect<'a>(mut names: impl Iterator<Item = &'a str>) -> Self {
        names
            .find_map(|n| {
                if n.starts_with("vllm:") {
                    Some(Server::Vllm)
                } else if n.starts_with("sglang:") {
                    Some(Server::Sglang)
                } else if n.starts_with("llamacpp:") {
                    Some(Server::Llamacpp)
                } else if n.starts_with("tgi_") {
                    Some(Server::Tgi)
                } else {
                    None
                }
            })
            .unwrap_or(Server::Unknown)
    }

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Server::Vllm => "vllm",
            Server::Sglang => "sglang",
            Server::Tgi => "tgi",
            Server::Llamacpp => "llamacpp",
            Server::Unknown => "unknown",
        }
    }

    /// The series names of `figure` on this server, in order of preference.
    pub fn names(self, figure: Figure) -> &'static [&'static str] {
        use Figure::*;
        use Server::*;
        match (self, figure) {
            (Vllm, Running) => &["vllm:num_requests_running"],
            (Vllm, Waiting) => &["vllm:num_requests_waiting"],
            (Vllm, KvUsage) => &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
            (Vllm, Preemptions) => &["vllm:num_preemptions_total", "vllm:num_preemptions"],
            (Vllm, Finished) => &["vllm:request_success_total"],
            (Vllm, PromptTokens) => &["vllm:prompt_tokens_total"],
            (Vllm, GenerationTokens) => &["vllm:generation_tokens_total"],
            (Vllm, PrefixHits) => &["vllm:prefix_cache_hits_total"],
            (Vllm, PrefixQueries) => &["vllm:prefix_cache_queries_total"],
            (Vllm, Ttft) => &["vllm:time_to_first_token_seconds"],
            (Vllm, Queue) => &["vllm:request_queue_time_seconds"],
            (Vllm, Prefill) => &["vllm:request_prefill_time_seconds"],
            (Vllm, Itl) => &[
                "vllm:inter_token_latency_seconds",
                "vllm:time_per_output_token_seconds",
            ],
            (Vllm, E2e) => &["vllm:e2e_request_latency_seconds"],
            (Sglang, Running) => &["sglang:num_running_reqs"],
            (Sglang, Waiting) => &["sglang:num_queue_reqs"],
            (Sglang, KvUsage) => &["sglang:token_usage"],
            (Sglang, Finished) => &["sglang:num_requests_total"],
            (Sglang, PromptTokens) => &["sglang:prompt_tokens_total"],
            (Sglang, CachedPromptTokens) => &["sglang:cached_tokens_total"],
            (Sglang, GenerationTokens) => &["sglang:generation_tokens_total"],
            (Sglang, Ttft) => &["sglang:time_to_first_token_seconds"],
            (Sglang, Queue) => &["sglang:queue_time_seconds"],
            (Sglang, Itl) => &["sglang:inter_token_latency_seconds"],
            (Sglang, E2e) => &["sglang:e2e_request_latency_seconds"],
            (Tgi, Running) => &["tgi_batch_current_size"],
            (Tgi, Waiting) => &["tgi_queue_size"],
            (Tgi, Finished) => &["tgi_request_success"],
            (Tgi, PromptTokens) => &["tgi_request_input_length_sum"],
            (Tgi, GenerationTokens) => &["tgi_request_generated_tokens_sum"],
            (Tgi, Queue) => &["tgi_request_queue_duration"],
            (Tgi, Itl) => &["tgi_request_mean_time_per_token_duration"],
            (Tgi, E2e) => &["tgi_request_duration"],
            (Llamacpp, Running) => &["llamacpp:requests_processing"],
            (Llamacpp, Waiting) => &["llamacpp:requests_deferred"],
            (Llamacpp, KvUsage) => &["llamacpp:kv_cache_usage_ratio"],
            // Uncached prompt tokens only: the cached ones are counted apart.
            (Llamacpp, UncachedPromptTokens) => &["llamacpp:prompt_tokens_total"],
            (Llamacpp, CachedPromptTokens) => &["llamacpp:prompt_tokens_cached_total"],
            (Llamacpp, GenerationTokens) => &["llamacpp:tokens_predicted_total"],
            _ => &[],
        }
    }
}

/// A figure of the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// Gauge: requests running.
    Running,
    /// Gauge: requests waiting.
    Waiting,
    /// Gauge: KV-cache usage, 0-1.
    KvUsage,
    /// Counter: preemptions.
    Preemptions,
    /// Counter: requests finished.
    Finished,
    /// Counter: prompt tokens, cached included.
    PromptTokens,
    /// Counter: prompt tokens computed (not served from cache).
    UncachedPromptTokens,
    /// Counter: prompt tokens served from the prefix cache.
    CachedPromptTokens,
    /// Counter: output tokens.
    GenerationTokens,
    /// Counter: prefix-cache hits.
    PrefixHits,
    /// Counter: prefix-cache queries.
    PrefixQueries,
    /// Histogram (seconds): time to first token.
    Ttft,
    /// Histogram (seconds): queue time.
    Queue,
    /// Histogram (seconds): prefill time.
    Prefill,
    /// Histogram (seconds): inter-token latency.
    Itl,
    /// Histogram (seconds): end-to-end latency.
    E2e,
}

/// Every figure, for "which series did the vocabulary use".
pub const FIGURES: &[Figure] = &[
    Figure::Running,
    Figure::Waiting,
    Figure::KvUsage,
    Figure::Preemptions,
    Figure::Finished,
    Figure::PromptTokens,
    Figure::UncachedPromptTokens,
    Figure::CachedPromptTokens,
    Figure::GenerationTokens,
    Figure::PrefixHits,
    Figure::PrefixQueries,
    Figure::Ttft,
    Figure::Queue,
    Figure::Prefill,
    Figure::Itl,
    Figure::E2e,
];
