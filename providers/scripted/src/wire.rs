//! The server's side of HTTP/1.1: reading one request (its line, headers and body)
//! from a connection whose reads are stamped with the kernel's receive time.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub(crate) struct HttpRequest {
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn read_request(r: &mut BufReader<RxStamped>) -> Option<HttpRequest> {
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
pub(crate) fn enable_rx_timestamps(socket: &impl std::os::fd::AsFd) {
    let _ =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true);
}

/// A connection's read side that keeps the kernel's receive time of the first bytes
/// read since [`RxStamped::mark`].
pub(crate) struct RxStamped {
    pub(crate) stream: TcpStream,
    /// Whether bytes were read since the mark.
    pub(crate) read: bool,
    /// The kernel's receive time of the first of them, when it gave one.
    pub(crate) first_rx: Option<Instant>,
}

impl RxStamped {
    pub(crate) fn new(stream: TcpStream) -> Self {
        enable_rx_timestamps(&stream);
        Self {
            stream,
            read: false,
            first_rx: None,
        }
    }

    /// Starts a new request: the next read's receive time is its arrival.
    pub(crate) fn mark(&mut self) {
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
