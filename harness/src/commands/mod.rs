//! The subcommands: each owns its clap arguments and its `run`. `cli` holds
//! only the top-level enum, one line per command; no module below imports `commands`
//! or `cli` (the library's work lives in `run`, `sweep`, `targets`, `files` and the
//! crates below).
//!
//! - [`args`]: argument types several commands share (pricing, formats, shards).

pub mod args;
pub mod backtest;
pub mod bench_client;
pub mod compare;
pub mod export;
pub mod history;
pub mod hw;
pub mod merge;
pub mod models;
pub mod plan;
pub mod prices;
pub mod publish;
pub mod recover;
pub mod report;
pub mod roofline;
pub mod run;
pub mod serve_scripted;
pub mod sweep;
pub mod targets;
pub mod validate;
pub mod workloads;
