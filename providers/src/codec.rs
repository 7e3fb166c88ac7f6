//! The seam between the HTTP backend and the APIs it speaks: a [`Protocol`] says
//! where a request goes, how it is authenticated and encoded, and gives a [`Codec`]
//! that decodes the response into [`Piece`]s, the parts the harness times and counts,
//! the same for every API. `openai` implements it for the chat and completions
//! endpoints, `anthropic` for the Messages API.

use results::Api;
use serde::Deserialize;
use serde_json::Value;
use workloads::{Request, Role};

use crate::config::HttpTargetConfig;
use crate::sse::SseEvent;

/// One API a remote target speaks. The HTTP backend holds one and never
/// asks which kind of target it serves.
pub trait Protocol: Send + Sync {
    /// The API, as reports name it.
    fn api(&self) -> Api;
    /// The path requests are posted to, under the base URL (`/chat/completions`).
    fn path(&self) -> &'static str;
    /// The header that carries the API key, and its value.
    fn auth_header(&self, key: &str) -> (&'static str, String);
    /// Headers every request carries besides the key.
    fn headers(&self, _cfg: &HttpTargetConfig) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The request body for `req`.
    fn body(&self, cfg: &HttpTargetConfig, req: &Request) -> Value;
    /// A decoder for one response.
    fn decoder(&self) -> Box<dyn Codec>;
}

/// Token counts as a server reports them (each `None` when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (OpenAI `prompt_tokens`; Anthropic `input_tokens` plus cache
    /// reads and writes, so that it counts the whole prompt as OpenAI's does).
    pub input: Option<u32>,
    /// Output tokens, reasoning included.
    pub output: Option<u32>,
    /// Prompt tokens read from the server's prefix cache.
    pub cached_input: Option<u32>,
    /// Of the output, reasoning (thinking) tokens.
    pub reasoning: Option<u32>,
}

impl Usage {
    /// Fields of `later` override those of `self` where present (usage arrives in
    /// parts: Anthropic's input in `message_start`, output in `message_delta`).
    pub fn merge(&mut self, later: Usage) {
        self.input = later.input.or(self.input);
        self.output = later.output.or(self.output);
        self.cached_input = later.cached_input.or(self.cached_input);
        self.reasoning = later.reasoning.or(self.reasoning);
    }
}

/// Kind of generated text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// The answer.
    Answer,
    /// Reasoning or thinking content, streamed before or beside the answer.
    Reasoning,
}

/// One decoded part of a response.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Generated text; empty for a token whose text the server held back (it
    /// still counts as an arrival).
    Text(TextKind, String),
    /// Usage as reported so far (cumulative, the server's own count).
    Usage(Usage),
    /// Tokens the chunk's logprobs list (one entry per generated token): the
    /// chunk's exact count.
    Logprobs(u32),
    /// The server's finish reason, verbatim (`length`, `stop`, `max_tokens`, ...).
    Finish(String),
    /// The stream's terminator (`[DONE]`, Anthropic's `message_stop`).
    Done,
    /// An error event inside the stream; its message.
    ServerError(String),
}

/// A wire format: how a request is encoded and a response decoded.
pub trait Codec: Send {
    /// Decodes one SSE event; a malformed one is an `Err` with what was wrong.
    fn decode_event(&mut self, ev: &SseEvent, out: &mut Vec<Piece>) -> Result<(), String>;
    /// Decodes a whole non-streamed response body.
    fn decode_body(&mut self, body: &Value, out: &mut Vec<Piece>) -> Result<(), String>;
}

/// Reads an optional non-negative count from a JSON object.
pub(crate) fn count(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The prompt as the chat API receives it: one `{role, content}` object per message.
pub fn chat_messages(req: &Request) -> Vec<Value> {
    req.messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            serde_json::json!({"role": role, "content": m.text})
        })
        .collect()
}

/// The prompt as one text: messages joined by blank lines (what the completions API
/// receives; the tokens of each message are exact, the joins add a few).
pub fn prompt_text(req: &Request) -> String {
    let mut text = String::new();
    for (i, m) in req.messages.iter().enumerate() {
        if i > 0 {
            text.push_str("\n\n");
        }
        text.push_str(&m.text);
    }
    text
}

/// An error object as OpenAI-compatible servers and Anthropic send it.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl ErrorBody {
    pub(crate) fn summary(&self) -> String {
        match (&self.kind, &self.message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (None, Some(m)) => m.clone(),
            (Some(k), None) => k.clone(),
            (None, None) => "error event without a message".into(),
        }
    }
}
