//! The closed sets a report counts by: error classes, token sources, arrival
//! patterns, and why planned calls were not sent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The class of a failed request; a failure is a measurement, counted by class.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No response (or no next token) within the deadline.
    Timeout,
    /// The server answered with an HTTP error status.
    HttpStatus,
    /// The server refused for rate limits (HTTP 429 or equivalent).
    RateLimited,
    /// The response did not follow the protocol.
    Protocol,
    /// The response ended before the requested output length.
    Truncated,
    /// The device ran out of memory.
    DeviceOom,
    /// The harness cancelled the request (drain deadline or Ctrl-C).
    Cancelled,
    /// Anything else.
    Other,
    /// The connection could not be made, or broke before the response completed.
    /// Since 1.2.
    Connection,
    /// The server reported an error inside an accepted response (an error event in
    /// the stream). Since 1.2.
    ServerError,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 10] = [
        ErrorClass::Timeout,
        ErrorClass::HttpStatus,
        ErrorClass::RateLimited,
        ErrorClass::Connection,
        ErrorClass::ServerError,
        ErrorClass::Protocol,
        ErrorClass::Truncated,
        ErrorClass::DeviceOom,
        ErrorClass::Cancelled,
        ErrorClass::Other,
    ];

    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Truncated => "truncated",
            ErrorClass::DeviceOom => "device_oom",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Other => "other",
            ErrorClass::Connection => "connection",
            ErrorClass::ServerError => "server_error",
        }
    }
}

/// Where a token count came from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's usage field.
    ServerUsage,
    /// The embedded tokenizer applied to the text.
    Tokenizer,
    /// The local engine, which produced the tokens itself (exact).
    Engine,
    /// A mix of sources across requests (see `requests.jsonl`).
    Mixed,
    /// One token per non-empty stream chunk (no usage, no tokenizer). Since 1.2.
    ChunkCount,
    /// No usage, but the request fixed its length (`exact_output`: end-of-sequence
    /// ignored) and the server finished by `length`: exactly the length asked for.
    /// Since 1.8.
    RequestedLength,
}

/// The arrival process of a load point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalPattern {
    /// Open loop, exponential inter-arrival times at `rate_rps`.
    Poisson,
    /// Open loop, fixed inter-arrival time `1 / rate_rps`.
    Constant,
    /// Open loop, gamma inter-arrival times at `rate_rps` with a burstiness factor.
    Gamma,
    /// Closed loop: `concurrency` sessions in flight, the next sent when one ends.
    Closed,
    /// Every session sent at time 0.
    All,
    /// Open loop at the times of a replayed trace. Since 1.8.
    Trace,
}

impl ArrivalPattern {
    /// The snake_case name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ArrivalPattern::Poisson => "poisson",
            ArrivalPattern::Constant => "constant",
            ArrivalPattern::Gamma => "gamma",
            ArrivalPattern::Closed => "closed",
            ArrivalPattern::All => "all",
            ArrivalPattern::Trace => "trace",
        }
    }

    /// Whether sessions start on a schedule (open loop) rather than when one ends.
    pub fn is_open_loop(self) -> bool {
        !matches!(self, ArrivalPattern::Closed)
    }
}

/// Why a call of the planned request stream was not sent. Since 1.6.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotSentReason {
    /// The load point's duration bound stopped sending (its session had not started,
    /// or its think time ended after the bound).
    DurationBound,
    /// Ctrl-C or SIGTERM stopped sending.
    Interrupted,
    /// An earlier call of its session failed, which ends the session (a task does not
    /// go on after a failed step).
    AfterFailedCall,
    /// The run was killed before it could send it (`recover`).
    RunKilled,
}

impl NotSentReason {
    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NotSentReason::DurationBound => "duration_bound",
            NotSentReason::Interrupted => "interrupted",
            NotSentReason::AfterFailedCall => "after_failed_call",
            NotSentReason::RunKilled => "run_killed",
        }
    }
}
