//! The energy section of a result: joules over the load point's window from a
//! hardware counter, cross-checked by integrated power, and the figures per token and
//! per request derived from them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where energy figures came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EnergySource {
    /// NVML's total-energy counter, differenced over the window.
    NvmlCounter,
    /// NVML power samples integrated over the window (no counter).
    NvmlPowerIntegrated,
    /// Linux powercap RAPL counters (CPU packages and DRAM).
    Rapl,
}

/// Energy of one load point. Every figure is `null` when not measured, and `reason`
/// then says why; a figure is never 0 for "unknown". Since 1.2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnergyStats {
    /// The source of `energy_j`; `null` when energy was not measured.
    pub source: Option<EnergySource>,
    /// Why energy was not measured.
    pub reason: Option<String>,
    /// What was measured (probe and its domains or devices).
    pub devices: Vec<String>,
    /// Which window: `steady-state` (first reaching the typical number in flight to
    /// the last send) or `measured` (first send to last completion, when there is no
    /// steady state).
    pub window_kind: Option<String>,
    /// Seconds of the window the figures cover.
    pub window_s: Option<f64>,
    /// Energy over the window, joules.
    pub energy_j: Option<f64>,
    /// `energy_j / window_s`, watts.
    pub avg_power_w: Option<f64>,
    /// Largest sampled power in the window, watts (devices that report power).
    pub peak_power_w: Option<f64>,
    /// Mean power over 1 s before the run's first load point, watts.
    pub idle_power_w: Option<f64>,
    /// Output tokens per joule.
    pub tokens_per_j_output: Option<f64>,
    /// Input plus output tokens per joule.
    pub tokens_per_j_total: Option<f64>,
    /// Joules per output token.
    pub j_per_output_token: Option<f64>,
    /// Joules per successful request (the window's energy shared by its requests).
    pub j_per_request: Option<f64>,
    /// Joules per verified task (workloads with checkers; the window's energy over the
    /// tasks whose every checked call passed); `null` when none was verified. Since
    /// 1.11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub j_per_verified_task: Option<f64>,
    /// Sampled power integrated over the window, joules (the cross-check).
    pub integrated_power_j: Option<f64>,
    /// `(integrated_power_j - energy_j) / energy_j x 100`.
    pub disagreement_pct: Option<f64>,
    /// Whether the device throttled in the window; `null` when unknown.
    pub throttled: Option<bool>,
    /// Throttle reasons seen in the window.
    pub throttle_reasons: Vec<String>,
    /// Why the figures need care (disagreement, throttling, a short window).
    pub flags: Vec<String>,
    /// Mean SM clock over the window's samples, MHz (GPUs).
    pub sm_clock_mhz_mean: Option<f64>,
    /// Mean memory clock, MHz (GPUs).
    pub memory_clock_mhz_mean: Option<f64>,
    /// Mean GPU utilisation, percent.
    pub utilization_pct_mean: Option<f64>,
    /// Highest GPU temperature, degrees C.
    pub temperature_c_max: Option<u32>,
    /// Most device memory in use, bytes.
    pub memory_used_bytes_max: Option<u64>,
    /// Lowest enforced power limit seen, watts.
    pub power_limit_w: Option<f64>,
}

impl EnergyStats {
    /// Not measured, because of `reason`.
    pub fn unavailable(reason: &str) -> Self {
        Self {
            source: None,
            reason: Some(reason.to_string()),
            devices: Vec::new(),
            window_kind: None,
            window_s: None,
            energy_j: None,
            avg_power_w: None,
            peak_power_w: None,
            idle_power_w: None,
            tokens_per_j_output: None,
            tokens_per_j_total: None,
            j_per_output_token: None,
            j_per_request: None,
            j_per_verified_task: None,
            integrated_power_j: None,
            disagreement_pct: None,
            throttled: None,
            throttle_reasons: Vec::new(),
            flags: Vec::new(),
            sm_clock_mhz_mean: None,
            memory_clock_mhz_mean: None,
            utilization_pct_mean: None,
            temperature_c_max: None,
            memory_used_bytes_max: None,
            power_limit_w: None,
        }
    }
}
