//! `infermeter serve-scripted` (hidden): the scripted loopback server until standard
//! input closes, for `bench-client` and for tools that measure a client against a
//! known schedule.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::Args;
use scripted::{Pace, Script, ScriptedServer};

/// `serve-scripted` arguments.
#[derive(Debug, Args)]
pub struct ServeScriptedArgs {
    /// Time to first token, ms.
    #[arg(long, default_value_t = 20.0)]
    pub ttft_ms: f64,
    /// Gap between tokens, ms.
    #[arg(long, default_value_t = 5.0)]
    pub itl_ms: f64,
}

/// Serves until standard input closes; prints `base_url URL` first.
pub fn run(args: &ServeScriptedArgs) -> Result<()> {
    crate::bench_client::check_pace(args.ttft_ms, args.itl_ms)?;
    let pace = Pace {
        ttft_ms: args.ttft_ms,
        itl_ms: args.itl_ms,
        ..Pace::default()
    };
    let server = ScriptedServer::start(Script::normal(pace)).context("starting the server")?;
    println!("base_url {}", server.base_url());
    std::io::stdout().flush()?;
    for _ in std::io::stdin().lock().lines() {}
    Ok(())
}
