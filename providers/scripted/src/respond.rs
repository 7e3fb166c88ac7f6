//! Serving one connection: each request read, its behaviour looked up in the script,
//! and the response written (normal streams and every injected fault) in the
//! request's API format, with the time each chunk was written logged.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::wire::{HttpRequest, RxStamped, read_request};
use crate::{Behaviour, Pace, RequestLog, Shared};

pub(crate) fn serve_connection(conn: TcpStream, s: &Shared) {
    let _ = conn.set_nodelay(true);
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(RxStamped::new(conn));
    let mut w = write_half;
    loop {
        // Bytes already buffered arrived with the previous request, at no known time.
        let fresh = reader.buffer().is_empty();
        reader.get_mut().mark();
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        // A metrics scrape is not an inference request: it takes no arrival (the
        // script's faults stay on the requests they name) and is not logged.
        if req.path == "/metrics" {
            let _ = w.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 22\r\n\r\nno metrics are served\n",
            );
            continue;
        }
        let received = Instant::now();
        let arrived = reader
            .get_ref()
            .first_rx
            .filter(|_| fresh)
            .unwrap_or(received);
        let arrival = s.arrivals.fetch_add(1, Ordering::Relaxed);
        let behaviour = s
            .script
            .by_arrival
            .get(&arrival)
            .unwrap_or(&s.script.default)
            .clone();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let mut log = RequestLog {
            arrival,
            path: req.path.clone(),
            body: body.clone(),
            arrived,
            received,
            chunks: Vec::new(),
            finished: None,
            behaviour: behaviour.clone(),
        };
        let keep = respond(
            &mut w,
            &req,
            &body,
            &behaviour,
            &mut log,
            &reader.get_ref().stream,
        );
        s.log.lock().unwrap_or_else(|p| p.into_inner()).push(log);
        if !keep {
            let _ = w.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// The wire format a request asked for.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Chat,
    Completions,
    Anthropic,
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

fn write_chunk(w: &mut TcpStream, data: &[u8]) -> bool {
    let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    w.write_all(&frame).and_then(|()| w.flush()).is_ok()
}

fn simple(w: &mut TcpStream, status: u16, extra: &str, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
        if status < 400 { "OK" } else { "Error" },
        body.len()
    );
    w.write_all(head.as_bytes())
        .and_then(|()| w.write_all(body.as_bytes()))
        .and_then(|()| w.flush())
        .is_ok()
}

/// The events of one content chunk.
fn content_event(f: Format, text: &str, reasoning: bool, usage: Option<(u32, u32)>) -> String {
    match f {
        Format::Anthropic => {
            let delta = if reasoning {
                json!({"type": "thinking_delta", "thinking": text})
            } else {
                json!({"type": "text_delta", "text": text})
            };
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0, "delta": delta})
            )
        }
        Format::Chat | Format::Completions => {
            let choice = if f == Format::Completions {
                json!({"index": 0, "text": text, "finish_reason": null})
            } else if reasoning {
                json!({"index": 0, "delta": {"reasoning_content": text}, "finish_reason": null})
            } else {
                json!({"index": 0, "delta": {"content": text}, "finish_reason": null})
            };
            let mut ev = json!({"id": "scripted", "object": "chunk", "choices": [choice]});
            if let Some((p, c)) = usage {
                ev["usage"] =
                    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
            }
            format!("data: {ev}\n\n")
        }
    }
}

fn finish_events(
    f: Format,
    prompt: u32,
    n: u32,
    reasoning: u32,
    usage: bool,
    done: bool,
) -> String {
    match f {
        Format::Anthropic => {
            let mut s = format!(
                "event: message_delta\ndata: {}\n\n",
                json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": n}})
            );
            if done {
                s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            }
            s
        }
        Format::Chat | Format::Completions => {
            let choice = if f == Format::Completions {
                json!({"index": 0, "text": "", "finish_reason": "length"})
            } else {
                json!({"index": 0, "delta": {}, "finish_reason": "length"})
            };
            let mut s = format!(
                "data: {}\n\n",
                json!({"id": "scripted", "choices": [choice]})
            );
            if usage {
                let mut u = json!({"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n});
                if reasoning > 0 {
                    u["completion_tokens_details"] = json!({"reasoning_tokens": reasoning});
                }
                s.push_str(&format!(
                    "data: {}\n\n",
                    json!({"id": "scripted", "choices": [], "usage": u})
                ));
            }
            if done {
                s.push_str("data: [DONE]\n\n");
            }
            s
        }
    }
}

fn prompt_words(body: &Value) -> u32 {
    let mut n = 0;
    let mut count = |v: &Value| {
        if let Some(t) = v.as_str() {
            n += t.split_whitespace().count() as u32;
        }
    };
    if let Some(ms) = body.get("messages").and_then(Value::as_array) {
        for m in ms {
            count(&m["content"]);
        }
    }
    count(&body["prompt"]);
    count(&body["system"]);
    n
}

fn respond(
    w: &mut TcpStream,
    req: &HttpRequest,
    body: &Value,
    behaviour: &Behaviour,
    log: &mut RequestLog,
    read_side: &TcpStream,
) -> bool {
    let format = if req.path.ends_with("/messages") {
        Format::Anthropic
    } else if req.path.ends_with("/chat/completions") {
        Format::Chat
    } else if req.path.ends_with("/completions") {
        Format::Completions
    } else {
        return simple(w, 404, "", r#"{"error":{"message":"no such endpoint"}}"#);
    };
    let n = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(16) as u32;
    let prompt = prompt_words(body);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let usage = format == Format::Anthropic
        || body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let pace = match behaviour {
        Behaviour::Status {
            status,
            retry_after,
            body,
        } => {
            let extra = retry_after
                .as_ref()
                .map_or(String::new(), |r| format!("retry-after: {r}\r\n"));
            return simple(w, *status, &extra, body);
        }
        Behaviour::EchoCredentials => {
            let creds: Vec<String> = req
                .headers
                .iter()
                .filter(|(k, _)| k == "authorization" || k == "x-api-key")
                .map(|(_, v)| v.clone())
                .collect();
            let msg = json!({"error": {"message": format!("Incorrect API key provided: {}", creds.join(" ")), "type": "invalid_request_error"}});
            return simple(w, 401, "", &msg.to_string());
        }
        Behaviour::Normal(p) => *p,
        _ => Pace::default(),
    };
    let start = log.received;
    let chunk_tokens = pace.tokens_per_chunk.max(1);
    let at = |tokens_before: u32| {
        start
            + Duration::from_secs_f64(
                (pace.ttft_ms + f64::from(tokens_before) * pace.itl_ms).max(0.0) / 1e3,
            )
    };
    if !stream {
        sleep_until(at(n.saturating_sub(1)));
        let text = " the".repeat(n as usize);
        let doc = match format {
            Format::Anthropic => {
                json!({"type": "message", "content": [{"type": "text", "text": text}], "stop_reason": "max_tokens", "usage": {"input_tokens": prompt, "output_tokens": n}})
            }
            Format::Chat => {
                json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}], "usage": {"prompt_tokens": prompt, "completion_tokens": n}})
            }
            Format::Completions => {
                json!({"choices": [{"index": 0, "text": text, "finish_reason": "length"}], "usage": {"prompt_tokens": prompt, "completion_tokens": n}})
            }
        };
        let t = Instant::now();
        log.chunks.push((t, n));
        log.finished = Some(t);
        return simple(w, 200, "", &doc.to_string());
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return false;
    }
    if format == Format::Anthropic {
        let start_ev = format!(
            "event: message_start\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "scripted", "usage": {"input_tokens": prompt, "output_tokens": 1}}})
        );
        if !write_chunk(w, start_ev.as_bytes()) {
            return false;
        }
    }
    let stop_after = match behaviour {
        Behaviour::Disconnect { after_tokens }
        | Behaviour::Stall { after_tokens }
        | Behaviour::Malformed { after_tokens }
        | Behaviour::ErrorEvent { after_tokens } => (*after_tokens).min(n),
        Behaviour::Oversized { .. } => 0,
        _ => n,
    };
    let mut sent = 0u32;
    while sent < stop_after {
        let reasoning = sent < pace.reasoning_tokens;
        let mut k = chunk_tokens.min(stop_after - sent);
        if reasoning {
            k = k.min(pace.reasoning_tokens - sent);
        }
        sleep_until(at(sent + k - 1));
        let text = " the".repeat(k as usize);
        let usage_now = pace.usage_every_chunk.then_some((prompt, sent + k));
        let ev = content_event(format, &text, reasoning, usage_now);
        let t = Instant::now();
        if !write_chunk(w, ev.as_bytes()) {
            return false;
        }
        log.chunks.push((t, k));
        sent += k;
    }
    match behaviour {
        Behaviour::Disconnect { .. } => false,
        Behaviour::Stall { .. } => {
            // Hold the connection open, sending nothing, until the client leaves.
            let _ = read_side.set_read_timeout(Some(Duration::from_millis(50)));
            let mut probe = [0u8; 1];
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut r = read_side;
            while Instant::now() < deadline {
                match r.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            false
        }
        Behaviour::Malformed { .. } => {
            let _ = write_chunk(w, b"data: {\"choices\": [{\"delta\": {\"content\": \n\n");
            let _ = write_chunk(
                w,
                finish_events(format, prompt, n, 0, usage, true).as_bytes(),
            );
            w.write_all(b"0\r\n\r\n").is_ok()
        }
        Behaviour::ErrorEvent { .. } => {
            let ev = match format {
                Format::Anthropic => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".to_string(),
                _ => "data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\"}}\n\n".to_string(),
            };
            write_chunk(w, ev.as_bytes()) && w.write_all(b"0\r\n\r\n").is_ok()
        }
        Behaviour::Oversized { bytes } => {
            // Sent in pieces, as a server would: the client must stop reading at its
            // bound, whatever the total.
            let mut left = *bytes;
            if !write_chunk(w, b"data: \"") {
                return false;
            }
            let piece = vec![b'x'; 64 * 1024];
            while left > 0 {
                let k = left.min(piece.len());
                if !write_chunk(w, &piece[..k]) {
                    return false;
                }
                left -= k;
            }
            write_chunk(w, b"\"\n\n") && w.write_all(b"0\r\n\r\n").is_ok()
        }
        Behaviour::LingerAfterDone { ms } => {
            let tail = finish_events(format, prompt, n, 0, usage, true);
            if !write_chunk(w, tail.as_bytes()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(*ms));
            w.write_all(b"0\r\n\r\n").and_then(|()| w.flush()).is_ok()
        }
        _ => {
            let done = !matches!(behaviour, Behaviour::NoTerminator);
            let tail = finish_events(format, prompt, n, pace.reasoning_tokens.min(n), usage, done);
            log.finished = Some(Instant::now());
            write_chunk(w, tail.as_bytes())
                && w.write_all(b"0\r\n\r\n").and_then(|()| w.flush()).is_ok()
        }
    }
}
