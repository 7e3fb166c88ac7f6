//! The project's scripted loopback server: speaks the OpenAI-compatible (chat and
//! completions) and Anthropic streaming APIs on 127.0.0.1, sends tokens on a known
//! schedule, injects faults on chosen requests, and logs when each request reached its
//! socket (the kernel's receive timestamp) and when it sent every chunk, so tests can
//! check the harness's timings and error handling against ground truth.
//!
//! One thread per connection with blocking sockets and `std::thread::sleep` to
//! absolute deadlines (from the moment the request was read): sleeps are accurate to
//! tens of microseconds on Linux, where an async timer wheel rounds to milliseconds.
//! HTTP/1.1 with keep-alive; responses are chunked, so a broken stream is visible to
//! the client as one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How a normal response is paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Request read to first chunk, ms.
    pub ttft_ms: f64,
    /// Between tokens, ms (a chunk of k tokens follows the previous one by k x this).
    pub itl_ms: f64,
    /// Tokens per chunk (coalesced chunks when > 1).
    pub tokens_per_chunk: u32,
    /// The first tokens sent as reasoning (thinking) content.
    pub reasoning_tokens: u32,
    /// Send cumulative usage on every content chunk (vLLM's continuous usage).
    pub usage_every_chunk: bool,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            ttft_ms: 20.0,
            itl_ms: 5.0,
            tokens_per_chunk: 1,
            reasoning_tokens: 0,
            usage_every_chunk: false,
        }
    }
}

/// What the server does with one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Stream (or answer) normally with this pace.
    Normal(Pace),
    /// Answer with an HTTP status, an optional `Retry-After`, and a body.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` header value.
        retry_after: Option<String>,
        /// Response body.
        body: String,
    },
    /// Stream `after_tokens` tokens, then close the connection mid-stream.
    Disconnect {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Stream `after_tokens` tokens, then send nothing until the client gives up.
    Stall {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Stream `after_tokens` tokens, then an event whose data is not JSON.
    Malformed {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Stream everything with the finish reason and usage, then end the body without
    /// the `[DONE]` terminator.
    NoTerminator,
    /// Stream one event of this many bytes.
    Oversized {
        /// Size of the event's data.
        bytes: usize,
    },
    /// Stream `after_tokens` tokens, then an error event.
    ErrorEvent {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Answer 401 with a body that echoes the request's credentials (as some
    /// providers do).
    EchoCredentials,
    /// Stream normally (default pace), then keep the body open this long after the
    /// terminator before ending it.
    LingerAfterDone {
        /// Milliseconds between the terminator and the end of the body.
        ms: u64,
    },
}

/// The script: the default behaviour and the exceptions, by arrival index (0-based
/// over every HTTP request received, retries included).
#[derive(Clone, Debug)]
pub struct Script {
    /// What every request not listed gets.
    pub default: Behaviour,
    /// Behaviour of the n-th request to arrive.
    pub by_arrival: BTreeMap<u64, Behaviour>,
}

impl Script {
    /// Every request served normally at `pace`.
    pub fn normal(pace: Pace) -> Self {
        Self {
            default: Behaviour::Normal(pace),
            by_arrival: BTreeMap::new(),
        }
    }
}

/// What the server did for one request.
#[derive(Clone, Debug)]
pub struct RequestLog {
    /// Arrival index.
    pub arrival: u64,
    /// Request path.
    pub path: String,
    /// Request body.
    pub body: Value,
    /// When the request's first bytes reached the server's socket: the kernel's
    /// receive timestamp (`SO_TIMESTAMPNS`), taken before this server's thread woke
    /// up to read them; `received` where the kernel gave none (bytes already
    /// buffered with the previous request).
    pub arrived: Instant,
    /// When the request had been read completely (the response's schedule starts
    /// here).
    pub received: Instant,
    /// When each chunk carrying tokens was written, with its token count.
    pub chunks: Vec<(Instant, u32)>,
    /// When the response's last bytes (the finish events and terminator of a stream,
    /// or the whole body of an unstreamed answer) were written, for a normal response.
    pub finished: Option<Instant>,
    /// The behaviour applied.
    pub behaviour: Behaviour,
}

impl RequestLog {
    /// Milliseconds from the request's arrival to its first token chunk: the time
    /// to first token on the wire, this server's wake-up and parsing included.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.chunks
            .first()
            .map(|(t, _)| t.duration_since(self.arrived).as_secs_f64() * 1e3)
    }

    /// Milliseconds between successive token chunks, as written.
    pub fn chunk_gaps_ms(&self) -> Vec<f64> {
        self.chunks
            .windows(2)
            .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1e3)
            .collect()
    }

    /// Milliseconds from the request's arrival to its last bytes, for a response that
    /// finished normally.
    pub fn e2e_ms(&self) -> Option<f64> {
        self.finished
            .map(|t| t.duration_since(self.arrived).as_secs_f64() * 1e3)
    }
}

struct Shared {
    script: Script,
    arrivals: AtomicU64,
    connections: AtomicU64,
    log: Mutex<Vec<RequestLog>>,
    stop: AtomicBool,
}

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ScriptedServer {
    /// Starts a server on an ephemeral loopback port.
    pub fn start(script: Script) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // Asked for on the listener first: the kernel turns receive timestamps on a
        // moment later (deferred), so a connection's first bytes are stamped too.
        enable_rx_timestamps(&listener);
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script,
            arrivals: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("scripted-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    s.connections.fetch_add(1, Ordering::Relaxed);
                    let s = Arc::clone(&s);
                    let _ = std::thread::Builder::new()
                        .name("scripted-conn".into())
                        .spawn(move || serve_connection(conn, &s));
                }
            })?;
        Ok(Self { addr, shared })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// HTTP requests received so far (retries included); a request's log entry is
    /// written when its response is done, so this may run ahead of [`Self::log`].
    pub fn arrivals(&self) -> u64 {
        self.shared.arrivals.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far (keep-alive reuse shows as fewer connections
    /// than requests).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// What the server did so far, in arrival order.
    pub fn log(&self) -> Vec<RequestLog> {
        let mut log = self
            .shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        log.sort_by_key(|l| l.arrival);
        log
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

struct HttpRequest {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<RxStamped>) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
        if k == "content-length" {
            length = v.parse().ok()?;
        }
        headers.push((k, v));
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        path,
        headers,
        body,
    })
}

/// Asks the kernel for each read's receive time (`SO_TIMESTAMPNS`). Without them, a
/// request's arrival is taken as its receipt.
fn enable_rx_timestamps(socket: &impl std::os::fd::AsFd) {
    let _ =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true);
}

/// A connection's read side that keeps the kernel's receive time of the first bytes
/// read since [`RxStamped::mark`].
struct RxStamped {
    stream: TcpStream,
    /// Whether bytes were read since the mark.
    read: bool,
    /// The kernel's receive time of the first of them, when it gave one.
    first_rx: Option<Instant>,
}

impl RxStamped {
    fn new(stream: TcpStream) -> Self {
        enable_rx_timestamps(&stream);
        Self {
            stream,
            read: false,
            first_rx: None,
        }
    }

    /// Starts a new request: the next read's receive time is its arrival.
    fn mark(&mut self) {
        self.read = false;
        self.first_rx = None;
    }
}

impl Read for RxStamped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::AsRawFd;
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        if msg.bytes > 0 && !self.read {
            self.read = true;
            let (now, wall) = (Instant::now(), std::time::SystemTime::now());
            let kernel = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(
                        std::time::UNIX_EPOCH
                            + Duration::new(
                                u64::try_from(ts.tv_sec()).ok()?,
                                u32::try_from(ts.tv_nsec()).ok()?,
                            ),
                    ),
                    _ => None,
                })
            });
            // The receive time is on the wall clock: carried over to the monotonic one
            // by its distance from now.
            let ago = kernel.and_then(|k| wall.duration_since(k).ok());
            self.first_rx = ago.and_then(|a| now.checked_sub(a));
        }
        Ok(msg.bytes)
    }
}

fn serve_connection(conn: TcpStream, s: &Shared) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The request's arrival is the kernel's receive time: before this server's thread
    /// had read it (with no kernel timestamp the two would be equal).
    #[test]
    fn a_request_arrives_before_the_server_has_read_it() {
        let server = ScriptedServer::start(Script::normal(Pace {
            ttft_ms: 2.0,
            itl_ms: 1.0,
            ..Pace::default()
        }))
        .expect("server");
        let addr = server.base_url().trim_start_matches("http://").to_string();
        let addr = addr.trim_end_matches("/v1").to_string();
        let mut c = TcpStream::connect(&addr).expect("connect");
        let body = r#"{"model":"m","prompt":"hi","max_tokens":3,"stream":true}"#;
        // Two requests on one connection: the kernel turns timestamps on a moment after
        // they are asked for, and the second is surely after that.
        for _ in 0..2 {
            write!(
                c,
                "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"0\r\n\r\n") {
                let n = c.read(&mut buf).expect("read");
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The entry is logged once the response is over.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut log = server.log();
        while log.len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            log = server.log();
        }
        assert_eq!(log.len(), 2);
        let l = &log[1];
        assert!(
            l.arrived < l.received,
            "{:?} !< {:?}",
            l.arrived,
            l.received
        );
        // The pace runs from the read; the truth from the arrival.
        assert!(l.ttft_ms().expect("a token") >= 2.0);
        assert_eq!(l.chunks.len(), 3);
    }
}
