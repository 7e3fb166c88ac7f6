//! OpenAI-compatible APIs: `/v1/chat/completions` and `/v1/completions`, as served by
//! OpenAI, vLLM, SGLang, TGI, llama.cpp, Ollama and most hosted providers.
//!
//! Streaming requests ask for `stream_options.include_usage`, so the last chunk
//! carries the server's token counts; servers that send usage on every chunk
//! (vLLM's `continuous_usage_stats`) give exact per-chunk counts. Reasoning text comes
//! as `reasoning_content` (vLLM, SGLang, DeepSeek) or `reasoning` (OpenRouter, Ollama).

use results::Api;
use serde_json::{Map, Value, json};
use workloads::Request;

use crate::codec::{
    Codec, ErrorBody, Piece, Protocol, TextKind, Usage, chat_messages, count, prompt_text,
};
use crate::config::{HttpTargetConfig, MaxTokensField};
use crate::sse::SseEvent;

/// `/chat/completions`: the prompt as messages with their roles.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAiChat;

/// `/completions`: the prompt as one text, the messages joined by blank lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAiCompletions;

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

impl Protocol for OpenAiChat {
    fn api(&self) -> Api {
        Api::Chat
    }
    fn path(&self) -> &'static str {
        "/chat/completions"
    }
    fn auth_header(&self, key: &str) -> (&'static str, String) {
        bearer(key)
    }
    fn body(&self, cfg: &HttpTargetConfig, req: &Request) -> Value {
        body(cfg, req, "messages", Value::Array(chat_messages(req)))
    }
    fn decoder(&self) -> Box<dyn Codec> {
        Box::new(OpenAiCodec)
    }
}

impl Protocol for OpenAiCompletions {
    fn api(&self) -> Api {
        Api::Completions
    }
    fn path(&self) -> &'static str {
        "/completions"
    }
    fn auth_header(&self, key: &str) -> (&'static str, String) {
        bearer(key)
    }
    fn body(&self, cfg: &HttpTargetConfig, req: &Request) -> Value {
        body(cfg, req, "prompt", json!(prompt_text(req)))
    }
    fn decoder(&self) -> Box<dyn Codec> {
        Box::new(OpenAiCodec)
    }
}

/// The request body for `req`, its prompt in `field`.
fn body(cfg: &HttpTargetConfig, req: &Request, field: &str, prompt: Value) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(cfg.model));
    body.insert(field.into(), prompt);
    let field = match cfg.max_tokens_field {
        MaxTokensField::MaxTokens => "max_tokens",
        MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
    };
    body.insert(field.into(), json!(req.max_output_tokens));
    if cfg.exact_output {
        body.insert("ignore_eos".into(), json!(true));
        body.insert("min_tokens".into(), json!(req.max_output_tokens));
    }
    if cfg.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    } else {
        body.insert("stream".into(), json!(false));
    }
    for (k, v) in &cfg.body {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// Decoder of OpenAI-compatible responses.
#[derive(Debug, Default)]
pub struct OpenAiCodec;

fn usage(u: &Value) -> Option<Usage> {
    let u = u.as_object()?;
    Some(Usage {
        input: count(u.get("prompt_tokens")),
        output: count(u.get("completion_tokens")),
        cached_input: u
            .get("prompt_tokens_details")
            .and_then(|d| count(d.get("cached_tokens"))),
        reasoning: u
            .get("completion_tokens_details")
            .and_then(|d| count(d.get("reasoning_tokens"))),
    })
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Tokens a choice's `logprobs` lists: chat's `content` entries, completions'
/// `tokens` (one entry per generated token).
fn logprob_tokens(v: Option<&Value>) -> Option<u32> {
    let lp = v?.as_object()?;
    let list = lp
        .get("content")
        .and_then(Value::as_array)
        .or_else(|| lp.get("tokens").and_then(Value::as_array))?;
    u32::try_from(list.len()).ok().filter(|&n| n > 0)
}

/// The text of a token-bearing field: its text when non-empty; an empty string when
/// the field is present but empty on a chunk that is neither the chat role chunk
/// nor a bare finish (a token whose text the server holds back, vLLM's incomplete
/// UTF-8), or when the choice's logprobs list tokens; else nothing.
fn arrival(field: Option<&Value>, structural: bool, logprobs: Option<u32>) -> Option<String> {
    match field? {
        Value::String(t) if !t.is_empty() => Some(t.clone()),
        Value::String(_) if !structural || logprobs.is_some() => Some(String::new()),
        _ => None,
    }
}

/// Decodes one chunk object (streamed) or a whole response (not streamed, where
/// `message` takes the place of `delta`).
///
/// What counts as an arrival: every choice that carries generated text, and every
/// choice whose content field is present but empty (a token whose text is held
/// back), except the chat role chunk and a bare finish; logprobs, when sent, are
/// the chunk's exact token count.
fn decode_object(doc: &Value, out: &mut Vec<Piece>) -> Result<(), String> {
    let obj = doc
        .as_object()
        .ok_or_else(|| "an event's data is not a JSON object".to_string())?;
    if let Some(err) = obj.get("error") {
        let msg = serde_json::from_value::<ErrorBody>(err.clone())
            .map(|e| e.summary())
            .unwrap_or_else(|_| err.to_string());
        out.push(Piece::ServerError(msg));
        return Ok(());
    }
    match obj.get("choices") {
        Some(Value::Array(choices)) => {
            // One completion per request: choice 0 (servers send `n = 1` streams).
            if let Some(c) = choices.first() {
                let finish = c.get("finish_reason").and_then(Value::as_str);
                let logprobs = logprob_tokens(c.get("logprobs"));
                if let Some(n) = logprobs {
                    out.push(Piece::Logprobs(n));
                }
                let delta = c.get("delta").or_else(|| c.get("message"));
                if let Some(d) = delta {
                    let structural = d.get("role").is_some() || finish.is_some();
                    let reasoning =
                        text_of(d.get("reasoning_content")).or_else(|| text_of(d.get("reasoning")));
                    if let Some(r) = reasoning {
                        out.push(Piece::Text(TextKind::Reasoning, r.to_string()));
                    }
                    let empty_ok = reasoning.is_none();
                    if let Some(t) = arrival(d.get("content"), structural || !empty_ok, logprobs) {
                        out.push(Piece::Text(TextKind::Answer, t));
                    }
                }
                if let Some(t) = arrival(c.get("text"), finish.is_some(), logprobs) {
                    out.push(Piece::Text(TextKind::Answer, t));
                }
                if let Some(f) = finish {
                    out.push(Piece::Finish(f.to_string()));
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("`choices` is not an array".into()),
    }
    if let Some(u) = obj.get("usage").and_then(usage) {
        out.push(Piece::Usage(u));
    }
    Ok(())
}

impl Codec for OpenAiCodec {
    fn decode_event(&mut self, ev: &SseEvent, out: &mut Vec<Piece>) -> Result<(), String> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.push(Piece::Done);
            return Ok(());
        }
        if ev.event == "error" {
            out.push(Piece::ServerError(data.chars().take(200).collect()));
            return Ok(());
        }
        let doc: Value = serde_json::from_str(data).map_err(|e| {
            format!(
                "malformed event ({e}): {}",
                data.chars().take(80).collect::<String>()
            )
        })?;
        decode_object(&doc, out)
    }

    fn decode_body(&mut self, body: &Value, out: &mut Vec<Piece>) -> Result<(), String> {
        decode_object(body, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(data: &str) -> Result<Vec<Piece>, String> {
        let mut out = Vec::new();
        OpenAiCodec.decode_event(
            &SseEvent {
                data: data.into(),
                ..Default::default()
            },
            &mut out,
        )?;
        Ok(out)
    }

    #[test]
    fn decodes_chat_chunks_reasoning_and_usage() {
        assert_eq!(
            decode(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#).unwrap(),
            vec![]
        );
        assert_eq!(
            decode(r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#).unwrap(),
            vec![Piece::Text(TextKind::Reasoning, "hmm".into())]
        );
        assert_eq!(
            decode(r#"{"choices":[{"delta":{"content":" hi"},"finish_reason":"length"}]}"#)
                .unwrap(),
            vec![
                Piece::Text(TextKind::Answer, " hi".into()),
                Piece::Finish("length".into())
            ]
        );
        let u = decode(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,
                "prompt_tokens_details":{"cached_tokens":8},
                "completion_tokens_details":{"reasoning_tokens":2}}}"#,
        )
        .unwrap();
        assert_eq!(
            u,
            vec![Piece::Usage(Usage {
                input: Some(12),
                output: Some(5),
                cached_input: Some(8),
                reasoning: Some(2)
            })]
        );
        assert_eq!(decode("[DONE]").unwrap(), vec![Piece::Done]);
    }

    #[test]
    fn an_empty_token_chunk_is_an_arrival_and_structure_is_not() {
        // vLLM holds back a token of incomplete UTF-8 and sends its chunk empty.
        let answer = |t: &str| Piece::Text(TextKind::Answer, t.into());
        assert_eq!(
            decode(r#"{"choices":[{"delta":{"content":""},"finish_reason":null}]}"#).unwrap(),
            vec![answer("")]
        );
        assert_eq!(
            decode(r#"{"choices":[{"text":"","finish_reason":null}]}"#).unwrap(),
            vec![answer("")]
        );
        // The role chunk, a bare finish and OpenAI's empty delta carry no token.
        for structural in [
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"delta":{"content":""},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"text":"","finish_reason":"length"}]}"#,
            r#"{"choices":[{"delta":{"content":null}}]}"#,
        ] {
            let got = decode(structural).unwrap();
            assert!(
                !got.iter().any(|p| matches!(p, Piece::Text(..))),
                "{structural}: {got:?}"
            );
        }
        // Logprobs name the tokens, even on a finishing chunk.
        assert_eq!(
            decode(
                r#"{"choices":[{"delta":{"content":""},"finish_reason":"length",
                    "logprobs":{"content":[{"token":"a","logprob":-0.1},{"token":"b","logprob":-1}]}}]}"#
            )
            .unwrap(),
            vec![
                Piece::Logprobs(2),
                answer(""),
                Piece::Finish("length".into())
            ]
        );
        assert_eq!(
            decode(r#"{"choices":[{"text":"ab","logprobs":{"tokens":["a","b"]}}]}"#).unwrap(),
            vec![Piece::Logprobs(2), answer("ab")]
        );
    }

    #[test]
    fn decodes_completions_text_and_error_events() {
        assert_eq!(
            decode(r#"{"choices":[{"text":"abc","index":0,"finish_reason":null}]}"#).unwrap(),
            vec![Piece::Text(TextKind::Answer, "abc".into())]
        );
        assert_eq!(
            decode(r#"{"error":{"message":"overloaded","type":"server_error"}}"#).unwrap(),
            vec![Piece::ServerError("server_error: overloaded".into())]
        );
    }

    #[test]
    fn refuses_malformed_events() {
        assert!(
            decode(r#"{"choices":[{"delta":"#)
                .unwrap_err()
                .contains("malformed")
        );
        assert!(decode(r#"[1,2]"#).is_err());
        assert!(decode(r#"{"choices":7}"#).is_err());
    }
}
