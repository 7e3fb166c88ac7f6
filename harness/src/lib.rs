//! The `infermeter` binary's library: the CLI, run plans, the load driver (tokio),
//! the per-request collector, hardware fingerprinting and report assembly. `main.rs`
//! only parses arguments, calls [`cli::run`] and maps errors to exit codes.

pub mod analysis;
pub mod bench_client;
pub mod cli;
pub mod client;
pub mod collector;
pub mod driver;
pub mod energy;
pub mod error;
pub mod hardware;
pub mod models;
pub mod output;
pub mod plan;
pub mod progress;
pub mod recover;
pub mod slo;
pub mod steady;
pub mod sweep;
pub mod target;
pub mod timer;
