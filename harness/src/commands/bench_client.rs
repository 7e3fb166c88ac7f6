//! `infermeter bench-client`: the client's own capacity ([`crate::bench_client`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::bench_client::{Options, bench_client};

/// `bench-client` arguments.
#[derive(Debug, Args)]
pub struct BenchClientArgs {
    /// Offered open-loop rates, requests per second (comma-separated), in order.
    #[arg(long, value_delimiter = ',', default_values_t = [500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0])]
    pub rates: Vec<f64>,
    /// Seconds of sending per rate (the event-loop lag is sampled 20 times a second:
    /// 8 s give 160 samples for its p99).
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    /// Output tokens of every response (streamed one per chunk).
    #[arg(long, default_value_t = 4)]
    pub tokens: u32,
    /// The server's time to first token, ms.
    #[arg(long, default_value_t = 0.5)]
    pub ttft_ms: f64,
    /// The server's gap between tokens, ms.
    #[arg(long, default_value_t = 0.2)]
    pub itl_ms: f64,
    /// Concurrencies of the memory phase: LOW,HIGH (0,0 skips it).
    #[arg(long, value_delimiter = ',', default_values_t = [16, 512])]
    pub memory_concurrency: Vec<u32>,
    /// Directory for the children's reports and `bench-client.json`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `infermeter bench-client` (blocking work, off the event loop).
pub async fn run(args: BenchClientArgs) -> Result<()> {
    let options = Options {
        rates: args.rates,
        seconds: args.seconds,
        tokens: args.tokens,
        ttft_ms: args.ttft_ms,
        itl_ms: args.itl_ms,
        memory_concurrency: args.memory_concurrency,
        out: args.out,
    };
    tokio::task::spawn_blocking(move || bench_client(&options))
        .await
        .context("bench-client stopped")?
}
