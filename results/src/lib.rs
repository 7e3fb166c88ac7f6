//! Every published type of infermeter and every pure computation on it: the
//! versioned report schema, mergeable HDR latency summaries, statistics, the metrics
//! registry, cost, merge, compare, the results archive, router exports, and the
//! renderers that turn a report into a table, Markdown, CSV, JSON or an HTML page.
//! This crate is the leaf of the workspace: it knows nothing of async runtimes, HTTP
//! or GPUs, so any tool can read and merge reports by depending on it alone.
//!
//! Its modules are layered, each using only those below it (no module cycle; a test
//! of the repository reads the module graph):
//!
//! 1. [`error`]; leaf maths: [`stats`], then [`histogram`]; [`saturation`].
//! 2. [`report`]: the report's types, labels as methods.
//! 3. [`metrics`] (the registry), [`derive`] (figures derived from counts),
//!    [`spread`] (run-to-run spread), [`schema`] (the JSON Schema, versions, reading),
//!    [`server_metrics`] (a server's Prometheus scrapes summarised and reconciled).
//! 4. [`catalog`], then [`cost`]; [`roofline`] (ceilings from measured limits), then
//!    [`plan`] (projections onto hardware not measured, back-tested).
//! 5. [`merge`], [`compare`], [`archive`], [`export`].
//! 6. [`render`]: table, Markdown, CSV, JSON and HTML.

pub mod archive;
pub mod catalog;
pub mod compare;
pub mod cost;
pub mod derive;
pub mod error;
pub mod export;
pub mod histogram;
pub mod merge;
pub mod metrics;
pub mod peer_export;
pub mod plan;
pub mod render;
pub mod report;
pub mod roofline;
pub mod saturation;
pub mod schema;
pub mod server_metrics;
pub mod spread;
pub mod stats;

pub use error::ResultsError;
pub use histogram::{LatencyHistogram, LatencySummary};
pub use report::*;
