//! Anthropic's Messages API (`/v1/messages`), streamed as typed events:
//! `message_start` (input usage), `content_block_start` / `content_block_delta`
//! (`text_delta`, `thinking_delta`), `message_delta` (stop reason, output usage),
//! `message_stop` (the terminator), `ping`, `error`.

use results::Api;
use serde_json::{Map, Value, json};
use workloads::{Request, Role};

use crate::codec::{Codec, ErrorBody, Piece, Protocol, TextKind, Usage, count};
use crate::config::HttpTargetConfig;
use crate::sse::SseEvent;

/// The Messages API (`/messages`), keyed by `x-api-key`, versioned by
/// `anthropic-version`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnthropicMessages;

impl Protocol for AnthropicMessages {
    fn api(&self) -> Api {
        Api::Messages
    }
    fn path(&self) -> &'static str {
        "/messages"
    }
    fn auth_header(&self, key: &str) -> (&'static str, String) {
        ("x-api-key", key.to_string())
    }
    fn headers(&self, cfg: &HttpTargetConfig) -> Vec<(&'static str, String)> {
        vec![("anthropic-version", cfg.anthropic_version.clone())]
    }
    fn body(&self, cfg: &HttpTargetConfig, req: &Request) -> Value {
        body(cfg, req)
    }
    fn decoder(&self) -> Box<dyn Codec> {
        Box::new(AnthropicCodec)
    }
}

/// The request body for `req`: system messages go to `system`; consecutive messages
/// of one role are joined (the API wants user and assistant turns to alternate).
pub fn body(cfg: &HttpTargetConfig, req: &Request) -> Value {
    let mut system = String::new();
    let mut turns: Vec<(&str, String)> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::System => {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(&m.text);
                continue;
            }
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match turns.last_mut() {
            Some((r, text)) if *r == role => {
                text.push_str("\n\n");
                text.push_str(&m.text);
            }
            _ => turns.push((role, m.text.clone())),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(cfg.model));
    if !system.is_empty() {
        body.insert("system".into(), json!(system));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, text)| json!({"role": role, "content": text}))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), json!(req.max_output_tokens));
    body.insert("stream".into(), json!(cfg.stream));
    for (k, v) in &cfg.body {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// Decoder of Messages API responses.
#[derive(Debug, Default)]
pub struct AnthropicCodec;

fn usage(u: &Value) -> Usage {
    let input = count(u.get("input_tokens"));
    let read = count(u.get("cache_read_input_tokens"));
    let written = count(u.get("cache_creation_input_tokens"));
    // Anthropic's input_tokens excludes cached and cache-writing tokens; the prompt is
    // their sum.
    let total_input = match (input, read, written) {
        (None, None, None) => None,
        (i, r, w) => Some(i.unwrap_or(0) + r.unwrap_or(0) + w.unwrap_or(0)),
    };
    Usage {
        input: total_input,
        output: count(u.get("output_tokens")),
        cached_input: read,
        reasoning: None,
    }
}

fn parse(data: &str) -> Result<Value, String> {
    serde_json::from_str(data).map_err(|e| {
        format!(
            "malformed event ({e}): {}",
            data.chars().take(80).collect::<String>()
        )
    })
}

fn error_piece(doc: &Value) -> Piece {
    let err = doc.get("error").unwrap_or(doc);
    Piece::ServerError(
        serde_json::from_value::<ErrorBody>(err.clone())
            .map(|e| e.summary())
            .unwrap_or_else(|_| err.to_string()),
    )
}

impl Codec for AnthropicCodec {
    fn decode_event(&mut self, ev: &SseEvent, out: &mut Vec<Piece>) -> Result<(), String> {
        let doc = parse(&ev.data)?;
        // The event type is in both the SSE `event:` field and the data's `type`.
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(ev.event.as_str());
        match kind {
            "message_start" => {
                if let Some(u) = doc.get("message").and_then(|m| m.get("usage")) {
                    // Its output count is a placeholder (1); the total comes in
                    // message_delta.
                    out.push(Piece::Usage(Usage {
                        output: None,
                        ..usage(u)
                    }));
                }
            }
            "content_block_delta" => {
                let delta = doc
                    .get("delta")
                    .ok_or("content_block_delta without `delta`")?;
                let text = |k: &str| {
                    delta
                        .get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = text("text") {
                            out.push(Piece::Text(TextKind::Answer, t));
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = text("thinking") {
                            out.push(Piece::Text(TextKind::Reasoning, t));
                        }
                    }
                    // Signatures and tool-input JSON are not generated text we time.
                    Some(_) => {}
                    None => return Err("content_block_delta without a delta type".into()),
                }
            }
            "message_delta" => {
                if let Some(r) = doc
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    out.push(Piece::Finish(r.to_string()));
                }
                if let Some(u) = doc.get("usage") {
                    out.push(Piece::Usage(usage(u)));
                }
            }
            "message_stop" => out.push(Piece::Done),
            "error" => out.push(error_piece(&doc)),
            // ping, content_block_start/stop and event types added later.
            _ => {}
        }
        Ok(())
    }

    fn decode_body(&mut self, body: &Value, out: &mut Vec<Piece>) -> Result<(), String> {
        if body.get("type").and_then(Value::as_str) == Some("error") {
            out.push(error_piece(body));
            return Ok(());
        }
        let content = body
            .get("content")
            .and_then(Value::as_array)
            .ok_or("a message without a `content` array")?;
        for block in content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        out.push(Piece::Text(TextKind::Answer, t.to_string()));
                    }
                }
                Some("thinking") => {
                    if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                        out.push(Piece::Text(TextKind::Reasoning, t.to_string()));
                    }
                }
                _ => {}
            }
        }
        if let Some(r) = body.get("stop_reason").and_then(Value::as_str) {
            out.push(Piece::Finish(r.to_string()));
        }
        if let Some(u) = body.get("usage") {
            out.push(Piece::Usage(usage(u)));
        }
        out.push(Piece::Done);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(event: &str, data: &str) -> Result<Vec<Piece>, String> {
        let mut out = Vec::new();
        AnthropicCodec.decode_event(
            &SseEvent {
                event: event.into(),
                data: data.into(),
                id: None,
            },
            &mut out,
        )?;
        Ok(out)
    }

    #[test]
    fn decodes_a_stream() {
        let start = decode(
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":1}}}"#,
        )
        .unwrap();
        assert_eq!(
            start,
            vec![Piece::Usage(Usage {
                input: Some(100),
                output: None,
                cached_input: Some(90),
                reasoning: None
            })]
        );
        assert_eq!(
            decode(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}}"#
            )
            .unwrap(),
            vec![Piece::Text(TextKind::Reasoning, "so".into())]
        );
        assert_eq!(
            decode(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#
            )
            .unwrap(),
            vec![Piece::Text(TextKind::Answer, "Hi".into())]
        );
        assert_eq!(
            decode(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":15}}"#
            )
            .unwrap(),
            vec![
                Piece::Finish("max_tokens".into()),
                Piece::Usage(Usage {
                    output: Some(15),
                    ..Default::default()
                })
            ]
        );
        assert_eq!(decode("ping", r#"{"type":"ping"}"#).unwrap(), vec![]);
        assert_eq!(
            decode("message_stop", r#"{"type":"message_stop"}"#).unwrap(),
            vec![Piece::Done]
        );
        assert_eq!(
            decode(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            )
            .unwrap(),
            vec![Piece::ServerError("overloaded_error: Overloaded".into())]
        );
        assert!(decode("content_block_delta", "{not json").is_err());
    }

    #[test]
    fn system_messages_leave_the_turns_and_same_role_turns_are_joined() {
        use std::sync::Arc;
        use workloads::Message;
        let msg = |role, text: &str| {
            Arc::new(Message {
                role,
                text: text.into(),
                token_ids: vec![],
            })
        };
        let req = Request {
            id: 0,
            session: 0,
            call: 0,
            session_seed: 0,
            messages: vec![
                msg(Role::System, "sys"),
                msg(Role::User, "a"),
                msg(Role::Assistant, "b"),
                msg(Role::User, "c"),
                msg(Role::User, "d"),
            ],
            max_output_tokens: 7,
            prefix: None,
            think_ms: 0.0,
            check: None,
        };
        let cfg = HttpTargetConfig::for_tests(crate::config::Kind::Anthropic);
        let b = body(&cfg, &req);
        assert_eq!(b["system"], "sys");
        assert_eq!(b["max_tokens"], 7);
        let turns = b["messages"].as_array().unwrap();
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[2]["content"], "c\n\nd");
    }
}
