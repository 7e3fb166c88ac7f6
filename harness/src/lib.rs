//! The `infermeter` binary's library. `main.rs` parses the command line ([`cli`]),
//! runs it and maps errors to exit codes; each subcommand is in [`commands`].
//!
//! Layers, each using only those below it (a test reads the module graph):
//! 1. [`cli`], then [`commands`]: clap types and one `run` per subcommand.
//! 2. [`run`] (the pipeline: plan -> load points -> assemble, `run.json`, `recover`),
//!    [`sweep`] (with its SLO [`search`], both on [`levels`]), [`bench_client`].
//! 3. [`config`] (the validated [`config::RunConfig`]), [`plan`] (workloads and their
//!    overrides), [`targets`] (the registry of target kinds).
//! 4. The measurement: [`driver`] (the load on tokio), [`collector`] (histograms and
//!    counts), [`slo`], [`record`] (one line of `requests.jsonl`), [`timer`] (the
//!    stream sink), [`clock`]; and [`steady`], [`energy`], [`client`], [`hardware`],
//!    [`files`], [`progress`], [`models`], [`error`], [`quality`] (`--quality`).

pub mod bench_client;
pub mod cli;
pub mod client;
pub mod clock;
pub mod collector;
pub mod commands;
pub mod config;
pub mod driver;
pub mod energy;
pub mod error;
pub mod files;
pub mod hardware;
pub mod levels;
pub mod models;
pub mod plan;
pub mod progress;
pub mod quality;
pub mod record;
pub mod run;
pub mod search;
pub mod slo;
pub mod steady;
pub mod sweep;
pub mod targets;
pub mod timer;
