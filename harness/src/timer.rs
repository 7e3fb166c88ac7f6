//! The stream sink of one request: [`RequestTimer`] stamps the monotonic clock as the
//! target reports bytes, tokens, sends, retries and completion, and turns per-chunk
//! counts into per-token gaps (ITL), reconciled to the server's total when it gives one.

use std::time::{Duration, Instant as StdInstant};

use results::ErrorClass;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use workloads::StreamSink;

use crate::clock::{ms, us};

/// Timings of one request, stamped as its response arrives.
///
/// Remote targets report each transport read (`on_bytes`) before decoding it; tokens
/// decoded from that read are stamped with the read's arrival, so parsing never adds
/// to a measured latency. Per-chunk counts are provisional until the request ends:
/// when the target reports the request's total (the server's usage), the counts are
/// reconciled to it before ITL is computed (see [`RequestTimer::itl`]).
#[derive(Debug)]
pub struct RequestTimer {
    /// When the request went on the wire (the first attempt's send).
    pub sent: Instant,
    send_stamped: bool,
    /// First response byte (remote targets).
    pub first_byte: Option<Instant>,
    /// Arrival of the latest transport read.
    last_read: Option<Instant>,
    /// First output token of any kind.
    pub first_token: Option<Instant>,
    /// First answer token (reasoning excluded).
    pub first_answer: Option<Instant>,
    /// Output tokens received (provisional counts).
    pub tokens: u32,
    /// Of those, reasoning tokens.
    pub reasoning_tokens: u32,
    /// Token-bearing chunks: arrival and provisional count.
    chunks: Vec<(Instant, u32)>,
    /// Attempts retried.
    pub retries: u32,
    /// Time waited before retries, ms.
    pub retry_wait_ms: f64,
    /// Each retried attempt: its HTTP status and the wait before the next, ms.
    pub retried: Vec<RetriedAttempt>,
    /// When the target said the response was complete (the terminator's arrival).
    pub completed: Option<Instant>,
    /// Protocol warnings.
    pub warnings: Vec<String>,
    /// When the harness gives up on the request: its deadline, fixed when the timer
    /// was made (a wait for a connection slot counts against it).
    pub deadline: Option<Instant>,
}

impl RequestTimer {
    /// A timer for a request handed to the target at `sent`.
    pub fn new(sent: Instant) -> Self {
        Self {
            sent,
            send_stamped: false,
            first_byte: None,
            last_read: None,
            first_token: None,
            first_answer: None,
            tokens: 0,
            reasoning_tokens: 0,
            chunks: Vec::new(),
            retries: 0,
            retry_wait_ms: 0.0,
            retried: Vec::new(),
            completed: None,
            warnings: Vec::new(),
            deadline: None,
        }
    }

    /// The same timer with the request's deadline `timeout` from now (where the
    /// driver's own timeout of the request starts).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    fn tokens_at(&mut self, at: Instant, count: u32, reasoning: bool) {
        if count == 0 {
            return;
        }
        self.first_token.get_or_insert(at);
        if reasoning {
            self.reasoning_tokens += count;
        } else {
            self.first_answer.get_or_insert(at);
        }
        self.chunks.push((at, count));
        self.tokens += count;
    }

    /// Token-bearing chunks received.
    pub fn chunks(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Gaps between successive token-bearing chunks, ms.
    pub fn chunk_gaps_ms(&self) -> Vec<f64> {
        self.chunks
            .windows(2)
            .map(|w| ms(w[1].0.saturating_duration_since(w[0].0)))
            .collect()
    }

    /// Per-token gaps, ms: a chunk of k tokens after a gap g gives k gaps of g/k (the
    /// first chunk's tokens give none: their time is TTFT). With `total` (the
    /// request's token count as the server reports it) different from the chunks' sum,
    /// the counts are first rescaled to it, by cumulative rounding so they add up
    /// exactly; a chunk left with no token merges its gap into the next. Returns the
    /// gaps and whether counts were rescaled.
    pub fn itl(&self, total: Option<u32>) -> (Vec<f64>, bool) {
        let sum: u64 = self.chunks.iter().map(|c| u64::from(c.1)).sum();
        let counts: Vec<u32> = match total {
            Some(t) if sum > 0 && u64::from(t) != sum => {
                let mut out = Vec::with_capacity(self.chunks.len());
                let (mut cum, mut prev) = (0u64, 0u64);
                for c in &self.chunks {
                    cum += u64::from(c.1);
                    // round(t * cum / sum), in integers.
                    let now = (2 * u64::from(t) * cum + sum) / (2 * sum);
                    out.push((now - prev) as u32);
                    prev = now;
                }
                out
            }
            _ => self.chunks.iter().map(|c| c.1).collect(),
        };
        let rescaled = counts.iter().zip(&self.chunks).any(|(a, c)| *a != c.1);
        let mut gaps = Vec::new();
        let mut prev: Option<Instant> = None;
        for (&(at, _), &k) in self.chunks.iter().zip(&counts) {
            if k == 0 {
                continue;
            }
            if let Some(p) = prev {
                let each = ms(at.saturating_duration_since(p)) / f64::from(k);
                gaps.extend(std::iter::repeat_n(each, k as usize));
            }
            prev = Some(at);
        }
        (gaps, rescaled)
    }
}

impl StreamSink for RequestTimer {
    fn on_bytes(&mut self, n: usize) {
        if n > 0 {
            crate::client::active();
            let now = Instant::now();
            self.first_byte.get_or_insert(now);
            self.last_read = Some(now);
        }
    }

    fn on_tokens(&mut self, count: u32) {
        let at = self.last_read.unwrap_or_else(Instant::now);
        self.tokens_at(at, count, false);
    }

    fn on_tokens_at(&mut self, at: StdInstant, count: u32) {
        crate::client::active();
        self.tokens_at(Instant::from_std(at), count, false);
    }

    fn on_send(&mut self) {
        if !self.send_stamped {
            self.send_stamped = true;
            self.sent = Instant::now();
        }
    }

    fn on_reasoning_tokens(&mut self, count: u32) {
        let at = self.last_read.unwrap_or_else(Instant::now);
        self.tokens_at(at, count, true);
    }

    fn on_retry(&mut self, class: ErrorClass, status: Option<u16>, wait: std::time::Duration) {
        self.retries += 1;
        self.retry_wait_ms += ms(wait);
        self.retried.push(RetriedAttempt {
            class,
            http_status: status,
            wait_ms: us(ms(wait)),
        });
    }

    fn on_complete(&mut self) {
        self.completed = Some(self.last_read.unwrap_or_else(Instant::now));
    }

    fn on_protocol_warning(&mut self, what: &str) {
        if self.warnings.len() < 8 {
            self.warnings.push(what.to_string());
        }
    }

    fn deadline(&self) -> Option<StdInstant> {
        self.deadline.map(Instant::into_std)
    }
}

/// An attempt that failed and was sent again (retries are requests the provider saw,
/// and may bill).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RetriedAttempt {
    /// What it failed with.
    pub class: ErrorClass,
    /// Its HTTP status.
    pub http_status: Option<u16>,
    /// Wait before the next attempt, ms.
    pub wait_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn coalesced_chunks_split_their_gap_over_their_tokens() {
        let t0 = Instant::now();
        let mut timer = RequestTimer::new(t0);
        tokio::time::advance(Duration::from_millis(100)).await;
        timer.on_tokens(1); // TTFT 100 ms
        tokio::time::advance(Duration::from_millis(30)).await;
        timer.on_tokens(3); // one chunk of 3 tokens after 30 ms: 3 gaps of 10 ms
        tokio::time::advance(Duration::from_millis(20)).await;
        timer.on_tokens(1);
        timer.on_tokens(0); // empty chunks count for nothing
        assert_eq!(timer.tokens, 5);
        assert_eq!(timer.chunks(), 3);
        assert_eq!(timer.first_token, Some(t0 + Duration::from_millis(100)));
        let (itl, rescaled) = timer.itl(None);
        assert_eq!(itl, vec![10.0, 10.0, 10.0, 20.0]);
        assert!(!rescaled);
        assert_eq!(timer.chunk_gaps_ms(), vec![30.0, 20.0]);
        // Per-token gaps add up to last token - first token.
        assert_eq!(itl.iter().sum::<f64>(), 50.0);
        // The server's own total agrees: nothing changes.
        assert_eq!(timer.itl(Some(5)), (itl, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_chunk_of_several_tokens_gives_no_itl() {
        let mut timer = RequestTimer::new(Instant::now());
        tokio::time::advance(Duration::from_millis(5)).await;
        timer.on_tokens(4);
        assert!(timer.itl(None).0.is_empty());
        assert_eq!(timer.tokens, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_stamped_when_their_bytes_arrived_not_when_decoded() {
        let t0 = Instant::now();
        let mut timer = RequestTimer::new(t0);
        tokio::time::advance(Duration::from_millis(7)).await;
        timer.on_send(); // the request went on the wire 7 ms after it was handed over
        timer.on_send(); // a retry's send does not move it
        tokio::time::advance(Duration::from_millis(40)).await;
        timer.on_bytes(120);
        tokio::time::advance(Duration::from_millis(3)).await; // decoding took 3 ms
        timer.on_reasoning_tokens(2);
        timer.on_tokens(1);
        assert_eq!(timer.sent, t0 + Duration::from_millis(7));
        assert_eq!(timer.first_token, Some(t0 + Duration::from_millis(47)));
        assert_eq!(timer.first_answer, Some(t0 + Duration::from_millis(47)));
        assert_eq!(timer.reasoning_tokens, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn per_chunk_counts_are_reconciled_to_the_servers_total() {
        let mut timer = RequestTimer::new(Instant::now());
        // Tokenizer estimates: 1, 2, 2, 1 tokens, 10 ms apart.
        for k in [1, 2, 2, 1] {
            tokio::time::advance(Duration::from_millis(10)).await;
            timer.on_tokens(k);
        }
        // The server says 12: counts become 2, 4, 4, 2 (cumulative rounding).
        let (itl, rescaled) = timer.itl(Some(12));
        assert!(rescaled);
        assert_eq!(itl.len(), 10); // 12 tokens, the first chunk's 2 give none
        assert!(
            itl.iter()
                .all(|&g| (g - 2.5).abs() < 1e-9 || (g - 5.0).abs() < 1e-9)
        );
        assert!((itl.iter().sum::<f64>() - 30.0).abs() < 1e-9);
        // Fewer than chunks: some chunks get none and merge into the next.
        let (itl, _) = timer.itl(Some(2));
        assert_eq!(itl.len(), 1);
        assert!((itl.iter().sum::<f64>() - 10.0).abs() < 1e-9, "{itl:?}");
    }
}
