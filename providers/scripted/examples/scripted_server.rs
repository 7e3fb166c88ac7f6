//! Runs the scripted loopback server by hand, to measure a client against it:
//!
//! ```sh
//! cargo run --release -p infermeter-scripted --example scripted_server -- TTFT_MS ITL_MS [TOKENS_PER_CHUNK]
//! ```
//!
//! Prints `base_url <url>` on its first line, then serves until its standard input
//! closes, and prints one JSON line per request it served: arrival index, when the
//! request was read (seconds since the server started) and the server-side TTFT and
//! mean gap between chunks, in ms.

use std::io::{BufRead, Write};
use std::time::Instant;

use scripted::{Pace, Script, ScriptedServer};

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pace = Pace {
        ttft_ms: args.first().copied().unwrap_or(20.0),
        itl_ms: args.get(1).copied().unwrap_or(5.0),
        tokens_per_chunk: args.get(2).map_or(1, |&k| k as u32),
        ..Pace::default()
    };
    let server = match ScriptedServer::start(Script::normal(pace)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: starting the server: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    println!("base_url {}", server.base_url());
    let _ = std::io::stdout().flush();
    // Serve until standard input closes.
    for _ in std::io::stdin().lock().lines() {}
    for l in server.log() {
        let gaps = l.chunk_gaps_ms();
        let mean_gap = if gaps.is_empty() {
            None
        } else {
            Some(gaps.iter().sum::<f64>() / gaps.len() as f64)
        };
        println!(
            "{}",
            serde_json::json!({
                "arrival": l.arrival,
                "received_s": l.received.saturating_duration_since(started).as_secs_f64(),
                "ttft_ms": l.ttft_ms(),
                "chunk_gap_ms_mean": mean_gap,
            })
        );
    }
}
