//! Targets: the registry of target kinds, and target specs.
//!
//! A kind is registered once, in [`registry::KINDS`]: `run`, `validate`, `infermeter
//! targets` and the README's table all read it; nothing else names a kind.
//!
//! - [`registry`]: the kinds.
//! - [`spec`]: target specs (`KIND[,key=value]*`, `@NAME`) and targets files.

pub mod registry;
pub mod spec;

pub use registry::{BuildOptions, KINDS, Kind, kind, kind_names, markdown_table};
pub use spec::{DEFAULT_TARGET, TargetSpec, TargetsFile};
