//! The `infermeter.report` document, version 1: one run of one or more workloads
//! against one or more targets, with one [`ResultEntry`] per (target, workload, load
//! point). Every scalar carries its unit in its name; figures not measured yet are
//! `null`, never 0.
//!
//! Plain data, with the labels people read (`load_label`, `pair_key`,
//! `hardware_label`) as methods; nothing here computes a figure. The value types that
//! the leaf maths produce (latency summaries, intervals, spreads) come from
//! [`crate::histogram`] and [`crate::stats`], below this module; everything that
//! computes (metrics, cost, merge, compare, render) is above it.
//!
//! - [`kinds`]: error classes, token sources, arrival patterns.
//! - [`target`]: a target as it describes itself, with its typed facts.
//! - [`entry`]: one result and its sections.
//! - [`energy`], [`cost`], [`roofline`], [`server`]: the energy, cost, roofline and
//!   server-metrics sections.
//! - [`search`]: a sweep's SLO search outcome.
//! - [`verification`]: how many checked requests and tasks passed, and why others failed.

pub mod cost;
pub mod energy;
pub mod entry;
pub mod kinds;
pub mod quality;
pub mod roofline;
pub mod search;
pub mod server;
pub mod target;
pub mod verification;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cost::{CostSource, CostStats, HardwarePriceRef, PartUnit};
pub use energy::{EnergySource, EnergyStats};
pub use entry::*;
pub use kinds::{ArrivalPattern, ErrorClass, NotSentReason, TokenSource};
pub use quality::{Fidelity, QualitySection};
pub use roofline::{
    Bound, DeviceLimits, ModelShape, ROOFLINE_SCHEMA, ROOFLINE_SCHEMA_VERSION, RooflineDoc,
    RooflineProjection, RooflineStats,
};
pub use search::{LevelVerdict, SearchAxis, SearchEnd, SearchLevel, SearchOutcome};
pub use server::{GaugeSummary, HistogramSummary, Reconciliation, ServerMetrics};
pub use target::{
    Api, Device, Locality, PRECISION_NOT_STATED, RateCard, TargetInfo, WeightsInfo, WeightsSource,
};
pub use verification::{CheckFailure, GroupCounts, VerificationStats};

use crate::stats::RepeatSpread;

/// The `schema` field of every report.
pub const REPORT_SCHEMA: &str = "infermeter.report";
/// The schema version this crate writes: `major.minor`; a minor bump only adds fields.
pub const REPORT_SCHEMA_VERSION: &str = "1.11";
/// The major version this crate reads: a report of another major is refused.
pub const REPORT_SCHEMA_MAJOR: u32 = 1;
/// The minor version this crate writes (see [`REPORT_SCHEMA_VERSION`]).
pub const REPORT_SCHEMA_MINOR: u32 = 11;

/// A complete report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always `infermeter.report`.
    pub schema: String,
    /// `major.minor` of the schema this document follows.
    pub schema_version: String,
    /// The tool that wrote the report.
    pub tool: ToolInfo,
    /// When, how and with what seed the run was made.
    pub run: RunInfo,
    /// The machine the harness ran on.
    pub hardware: Hardware,
    /// One entry per (target, workload, load point), and per repeat of it.
    pub results: Vec<ResultEntry>,
    /// Run-to-run spread of each repeated load point (`run --repeat N`). Since 1.4.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeat_spread: Vec<RepeatSpread>,
    /// What `sweep --search` found, one per target. Since 1.9.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<SearchOutcome>,
}

/// The tool that wrote the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    /// Crate version of the `infermeter` binary.
    pub version: String,
    /// Git commit the binary was built from, when known.
    pub git_sha: Option<String>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every load point ran to its bound.
    Complete,
    /// Stopped by the user (Ctrl-C); what was measured until then is reported.
    Interrupted,
    /// A target failed to prepare or the run could not continue.
    Failed,
}

/// Identity of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// Unique id of the run (UTC timestamp plus suite or workload name).
    pub id: String,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    /// RFC 3339 UTC time the run finished.
    pub finished_at: String,
    /// How the run ended.
    pub status: RunStatus,
    /// The command line, arguments as given.
    pub command: Vec<String>,
    /// The seed every workload's request stream was generated from.
    pub seed: u64,
}

/// The machine the harness ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    /// CPU model string.
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cpu_logical_cores: u32,
    /// Physical cores, when the OS reports them.
    pub cpu_physical_cores: Option<u32>,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Operating system name and version.
    pub os: String,
    /// Kernel version, when known.
    pub kernel: Option<String>,
    /// CPU architecture (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// GPUs visible to the run; empty when none.
    pub gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty (no NVML, no GPU), when it is. Since 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_probe: Option<String>,
    /// Hints that the host is virtualised or containerised (`hypervisor`, `docker`,
    /// `kubernetes`, the DMI vendor, ...). Since 1.2.
    #[serde(default)]
    pub virtualization: Vec<String>,
}

/// One GPU visible to the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    /// Device name as the driver reports it.
    pub name: String,
    /// Device memory in bytes.
    pub memory_bytes: u64,
    /// Driver version.
    pub driver_version: Option<String>,
    /// SHA-256 of the GPU's UUID (the UUID itself is not published). Since 1.2.
    #[serde(default)]
    pub uuid_sha256: Option<String>,
    /// Compute capability, `major.minor`. Since 1.2.
    #[serde(default)]
    pub compute_capability: Option<String>,
    /// CUDA version the driver supports, `major.minor`. Since 1.2.
    #[serde(default)]
    pub cuda_version: Option<String>,
    /// Enforced power limit, watts. Since 1.2.
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    /// Default power limit, watts. Since 1.2.
    #[serde(default)]
    pub default_power_limit_w: Option<f64>,
    /// SM clock now, MHz. Since 1.2.
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    /// Maximum SM clock, MHz. Since 1.2.
    #[serde(default)]
    pub sm_clock_max_mhz: Option<u32>,
    /// Application SM clock, MHz. Since 1.2.
    #[serde(default)]
    pub sm_clock_application_mhz: Option<u32>,
    /// Memory clock now, MHz. Since 1.2.
    #[serde(default)]
    pub memory_clock_mhz: Option<u32>,
    /// ECC on. Since 1.2.
    #[serde(default)]
    pub ecc_enabled: Option<bool>,
    /// MIG mode on. Since 1.2.
    #[serde(default)]
    pub mig_enabled: Option<bool>,
    /// Persistence mode on. Since 1.2.
    #[serde(default)]
    pub persistence_mode: Option<bool>,
    /// PCIe link generation now. Since 1.2.
    #[serde(default)]
    pub pcie_generation: Option<u32>,
    /// PCIe link width now (lanes). Since 1.2.
    #[serde(default)]
    pub pcie_width: Option<u32>,
}

impl Report {
    /// A one-line description of the machine: CPU model, logical CPUs and GPUs.
    pub fn hardware_label(&self) -> String {
        self.hardware.label()
    }
}

impl Hardware {
    /// CPU model, logical CPUs and GPUs on one line.
    pub fn label(&self) -> String {
        let gpus: Vec<&str> = self.gpus.iter().map(|g| g.name.as_str()).collect();
        format!(
            "{} x{}{}",
            self.cpu_model,
            self.cpu_logical_cores,
            if gpus.is_empty() {
                String::new()
            } else {
                format!(" + {}", gpus.join(", "))
            }
        )
    }
}

impl RunStatus {
    /// The snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}
