//! GPU energy and state through NVML (`nvml-wrapper`, which loads `libnvidia-ml`
//! at run time): per visible GPU the total-energy counter (mJ, 64-bit, no wrap),
//! power draw (W), throttle reasons, SM and memory clocks, temperature, utilisation,
//! memory in use and the power limit, read at each sample.
//!
//! Status: compiled and type-checked; this development machine has no NVML, so only
//! its absence (a `null` energy with the reason) is exercised here.

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};

use super::{DeviceState, Probe, ProbeReading};

/// Every visible GPU.
pub struct NvmlProbe {
    nvml: Nvml,
    names: Vec<String>,
}

impl std::fmt::Debug for NvmlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlProbe")
            .field("names", &self.names)
            .finish()
    }
}

/// Names of the throttle reasons that cost performance (idle and application-clock
/// settings are not throttling).
pub fn throttle_names(r: ThrottleReasons) -> Vec<String> {
    let named = [
        (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
        (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
        (ThrottleReasons::SYNC_BOOST, "sync_boost"),
        (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
        (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
        (
            ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
            "hw_power_brake_slowdown",
        ),
    ];
    named
        .iter()
        .filter(|(bit, _)| r.contains(*bit))
        .map(|(_, n)| n.to_string())
        .collect()
}

impl NvmlProbe {
    /// Opens NVML and every GPU it lists, or says why not.
    pub fn open() -> Result<Self, String> {
        let nvml = Nvml::init()
            .map_err(|e| format!("NVML: not available ({e}): no NVIDIA driver on this machine"))?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("NVML: cannot count devices: {e}"))?;
        if count == 0 {
            return Err("NVML: no GPU visible".into());
        }
        let mut names = Vec::new();
        for i in 0..count {
            let d = nvml
                .device_by_index(i)
                .map_err(|e| format!("NVML: GPU {i}: {e}"))?;
            d.total_energy_consumption()
                .map_err(|e| format!("NVML: GPU {i} has no energy counter: {e}"))?;
            names.push(format!(
                "gpu {i} {}",
                d.name().unwrap_or_else(|_| "?".into())
            ));
        }
        Ok(Self { nvml, names })
    }
}

impl Probe for NvmlProbe {
    fn name(&self) -> String {
        format!("nvml ({})", self.names.join(", "))
    }

    fn channels(&self) -> usize {
        self.names.len()
    }

    fn read(&mut self) -> Vec<ProbeReading> {
        (0..self.names.len() as u32)
            .map(|i| match self.nvml.device_by_index(i) {
                Ok(d) => ProbeReading {
                    counter: d.total_energy_consumption().ok(),
                    power_w: d.power_usage().ok().map(|mw| f64::from(mw) / 1e3),
                    throttle: d
                        .current_throttle_reasons()
                        .map(throttle_names)
                        .unwrap_or_default(),
                    state: Some(DeviceState {
                        sm_clock_mhz: d.clock_info(Clock::SM).ok(),
                        memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
                        temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
                        utilization_pct: d.utilization_rates().ok().map(|u| u.gpu),
                        memory_used_bytes: d.memory_info().ok().map(|m| m.used),
                        power_limit_w: d.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1e3),
                    }),
                },
                Err(_) => ProbeReading::default(),
            })
            .collect()
    }

    fn counter_range(&self, _channel: usize) -> Option<u64> {
        None
    }

    fn units_per_j(&self) -> f64 {
        1e3
    }

    fn source(&self) -> results::EnergySource {
        results::EnergySource::NvmlCounter
    }
}
