//! Every published type of infermeter: the versioned report schema, mergeable HDR
//! latency summaries, and the renderers that turn a report into a table, Markdown, CSV
//! or JSON. This crate is the leaf of the workspace: it knows nothing of async runtimes,
//! HTTP or GPUs, so any tool can read and merge reports by depending on it alone.

pub mod archive;
pub mod catalog;
pub mod compare;
pub mod cost;
pub mod error;
pub mod export;
pub mod histogram;
pub mod html;
pub mod merge;
pub mod render;
pub mod report;
pub mod schema;
pub mod stats;

pub use error::ResultsError;
pub use histogram::{LatencyHistogram, LatencySummary};
pub use report::*;
