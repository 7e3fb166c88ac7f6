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
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

mod respond;
mod wire;

use respond::serve_connection;
use wire::enable_rx_timestamps;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

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
