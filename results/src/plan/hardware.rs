//! The hardware spec catalog: versioned TOML of the devices the planner projects onto
//! (memory, bandwidth, dense throughput per number format, power, interconnect), every
//! device with its `source` and `as_of`, plus the default efficiencies an
//! uncalibrated projection uses (with theirs).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogError, join, one_line, positive, sourced};
use crate::report::DeviceLimits;

/// The hardware catalog shipped with infermeter (`results/catalog/hardware.toml`).
pub const DEFAULT_HARDWARE_TOML: &str = include_str!("../../catalog/hardware.toml");

/// The hardware catalog format this build reads.
pub const HARDWARE_FORMAT: u32 = 1;

/// A device class: what calibrations transfer within.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// A GPU or other accelerator with its own memory.
    Gpu,
    /// Host CPUs over system memory.
    Cpu,
}

impl DeviceClass {
    /// `gpu` or `cpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        }
    }

    /// The class of the device a roofline was measured on (`cpu`, `cuda:N`).
    pub fn of_limits(limits: &DeviceLimits) -> Self {
        if limits.device == "cpu" {
            Self::Cpu
        } else {
            Self::Gpu
        }
    }
}

/// A hardware spec catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareCatalog {
    /// File format version: 1.
    pub format: u32,
    /// The catalog's name.
    pub name: String,
    /// Its version (a date), copied into every plan.
    pub version: String,
    /// Efficiencies for projections no measured report calibrates, per class.
    #[serde(default)]
    pub default_efficiency: Vec<DefaultEfficiency>,
    /// The devices.
    #[serde(default)]
    pub device: Vec<HardwareSpec>,
}

/// What an uncalibrated projection assumes a device class reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultEfficiency {
    /// The class it applies to.
    pub class: DeviceClass,
    /// Decode: the share of the sustained bandwidth a step reaches (0-1].
    pub decode_bandwidth_efficiency: f64,
    /// Prefill: the share of the dense peak a prompt token reaches (0-1].
    pub prefill_compute_efficiency: f64,
    /// Where the figures come from (or that they are an assumption).
    pub source: String,
    /// When.
    pub as_of: String,
}

/// One device the planner can buy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardwareSpec {
    /// Device name (`h100-sxm`, `cpu-x86_64-8vcpu`).
    pub name: String,
    /// GPU or CPU.
    pub class: DeviceClass,
    /// Who makes it.
    pub vendor: String,
    /// The price catalog's part that bills it.
    pub part: String,
    /// Billing units of that part one device is (1 per GPU; vCPUs of a CPU slice).
    pub price_units: u32,
    /// Memory the model and the KV cache share, GB (1e9 bytes).
    pub memory_gb: f64,
    /// Peak memory bandwidth, GB/s (1e9 bytes).
    pub memory_bandwidth_gb_per_s: f64,
    /// Share of the peak a copy kernel sustains (0-1].
    pub sustained_bandwidth_fraction: f64,
    /// Dense peak throughput, TFLOP/s (TOP/s for int8), per number format: `fp32`,
    /// `fp16`, `bf16`, `fp8`, `int8`.
    pub dense_tflops: BTreeMap<String, f64>,
    /// Thermal design power (board power), W.
    pub tdp_w: f64,
    /// The link between devices of one node, when there is one.
    #[serde(default)]
    pub interconnect: Option<String>,
    /// Its bandwidth per device, GB/s.
    #[serde(default)]
    pub interconnect_gb_per_s: Option<f64>,
    /// Most devices one node holds (the widest tensor-parallel group).
    pub max_per_node: u32,
    /// How a measured GPU is recognised as this device: each entry's words appear,
    /// in order and whole, in the GPU's name (`H100 80GB HBM3` in `NVIDIA H100
    /// 80GB HBM3`; `L4` does not match `NVIDIA L40S`).
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Where the figures come from.
    pub source: String,
    /// When they were published.
    pub as_of: String,
}

/// Number formats a spec may list.
pub const NUMBER_FORMATS: [&str; 5] = ["fp32", "fp16", "bf16", "fp8", "int8"];

impl HardwareSpec {
    /// The number format the engine's matrix multiplies run in for weights of
    /// `precision` (`f32`, `f16`, `bf16`, `q8_0`, `q4_0`, `q4_1`): quantized weights
    /// are dequantized per tile into f16 on a GPU and multiplied in f32 on a CPU.
    pub fn compute_format(&self, precision: &str) -> &'static str {
        match (self.class, precision) {
            (_, "f32") => "fp32",
            (_, "bf16") => "bf16",
            (DeviceClass::Cpu, _) => "fp32",
            (DeviceClass::Gpu, _) => "fp16",
        }
    }

    /// Dense peak for weights of `precision`, FLOP/s; `None` when the spec lists no
    /// figure for its compute format.
    pub fn peak_flop_per_s(&self, precision: &str) -> Option<f64> {
        self.dense_tflops
            .get(self.compute_format(precision))
            .map(|t| t * 1e12)
    }

    /// Sustained bandwidth, bytes/s.
    pub fn sustained_bytes_per_s(&self) -> f64 {
        self.memory_bandwidth_gb_per_s * 1e9 * self.sustained_bandwidth_fraction
    }

    /// The spec as the limits a roofline judges by: sustained bandwidth, dense peak
    /// for every precision the engine runs.
    pub fn as_limits(&self) -> DeviceLimits {
        let gbps = self.memory_bandwidth_gb_per_s * self.sustained_bandwidth_fraction;
        let matmul = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]
            .iter()
            .filter_map(|p| Some((p.to_string(), self.peak_flop_per_s(p)? / 1e9)))
            .collect();
        DeviceLimits {
            device: format!("spec:{}", self.name),
            name: self.name.clone(),
            threads: None,
            buffer_bytes: 0,
            copy_gb_per_s: gbps,
            read_gb_per_s: gbps,
            triad_gb_per_s: None,
            matmul_gflop_per_s: matmul,
            matmul_shape: "dense peak (spec)".into(),
            matmul_engine: "spec sheet".into(),
        }
    }
}

impl HardwareSpec {
    /// Whether `gpu_name` is this device (see [`HardwareSpec::matches`]).
    pub fn is(&self, gpu_name: &str) -> bool {
        let words: Vec<String> = gpu_name.split_whitespace().map(str::to_lowercase).collect();
        self.matches.iter().any(|m| {
            let want: Vec<String> = m.split_whitespace().map(str::to_lowercase).collect();
            !want.is_empty() && words.windows(want.len()).any(|w| w == want.as_slice())
        })
    }
}

impl HardwareCatalog {
    /// The device a measured GPU called `gpu_name` is, when the catalog knows it.
    pub fn recognise(&self, gpu_name: &str) -> Option<&HardwareSpec> {
        self.device.iter().find(|d| d.is(gpu_name))
    }

    /// The catalog shipped with this build.
    pub fn default_catalog() -> Self {
        Self::parse(DEFAULT_HARDWARE_TOML, "the default hardware catalog")
            .expect("the default hardware catalog is checked by its tests")
    }

    /// Parses and checks a catalog; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let c: HardwareCatalog = toml::from_str(text)
            .map_err(|e| CatalogError(format!("{origin}: {}", one_line(&e))))?;
        c.check()
            .map_err(|e| CatalogError(format!("{origin}: {e}")))?;
        Ok(c)
    }

    /// `name version`, as copied into plans.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// The device called `name`.
    pub fn device_named(&self, name: &str) -> Result<&HardwareSpec, CatalogError> {
        self.device.iter().find(|d| d.name == name).ok_or_else(|| {
            CatalogError(format!(
                "hardware catalog {} has no device `{name}` (devices: {})",
                self.label(),
                join(&self.device.iter().map(|d| d.name.as_str()).collect())
            ))
        })
    }

    /// The default efficiency of `class`.
    pub fn default_for(&self, class: DeviceClass) -> Option<&DefaultEfficiency> {
        self.default_efficiency.iter().find(|d| d.class == class)
    }

    fn check(&self) -> Result<(), String> {
        if self.format != HARDWARE_FORMAT {
            return Err(format!(
                "format {} is not supported (this build reads format {HARDWARE_FORMAT})",
                self.format
            ));
        }
        if self.device.is_empty() {
            return Err("no [[device]]".into());
        }
        let mut classes = BTreeSet::new();
        for d in &self.default_efficiency {
            let what = format!("default_efficiency ({})", d.class.as_str());
            if !classes.insert(d.class) {
                return Err(format!("{what} is given twice"));
            }
            fraction(
                &format!("{what} decode_bandwidth_efficiency"),
                d.decode_bandwidth_efficiency,
            )?;
            fraction(
                &format!("{what} prefill_compute_efficiency"),
                d.prefill_compute_efficiency,
            )?;
            sourced(&what, &d.source, &d.as_of)?;
        }
        let mut names = BTreeSet::new();
        for d in &self.device {
            let what = format!("device `{}`", d.name);
            if d.name.trim().is_empty() || d.part.trim().is_empty() {
                return Err(format!("{what}: name and part must not be empty"));
            }
            if !names.insert(d.name.as_str()) {
                return Err(format!("{what} is defined twice"));
            }
            if d.price_units == 0 || d.max_per_node == 0 {
                return Err(format!(
                    "{what}: price_units and max_per_node must be at least 1"
                ));
            }
            positive(&format!("{what} memory_gb"), d.memory_gb)?;
            positive(
                &format!("{what} memory_bandwidth_gb_per_s"),
                d.memory_bandwidth_gb_per_s,
            )?;
            fraction(
                &format!("{what} sustained_bandwidth_fraction"),
                d.sustained_bandwidth_fraction,
            )?;
            positive(&format!("{what} tdp_w"), d.tdp_w)?;
            for (f, v) in &d.dense_tflops {
                if !NUMBER_FORMATS.contains(&f.as_str()) {
                    return Err(format!(
                        "{what}: dense_tflops has an unknown format `{f}` (formats: {})",
                        NUMBER_FORMATS.join(", ")
                    ));
                }
                positive(&format!("{what} dense_tflops.{f}"), *v)?;
            }
            if !d.dense_tflops.contains_key("fp32") {
                return Err(format!("{what}: dense_tflops needs at least `fp32`"));
            }
            match (&d.interconnect, d.interconnect_gb_per_s) {
                (Some(_), Some(bw)) => positive(&format!("{what} interconnect_gb_per_s"), bw)?,
                (None, None) => {}
                _ => {
                    return Err(format!(
                        "{what}: interconnect and interconnect_gb_per_s go together"
                    ));
                }
            }
            sourced(&what, &d.source, &d.as_of)?;
        }
        Ok(())
    }
}

fn fraction(what: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(format!("{what} must be in (0, 1], got {v}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn the_default_catalog_covers_the_parts_the_issue_names_and_prices_what_it_can() {
        let hw = HardwareCatalog::default_catalog();
        for name in [
            "h100-sxm",
            "h100-pcie",
            "h200",
            "b200",
            "l40s",
            "l4",
            "a100-sxm-80gb",
            "mi300x",
            "mi355x",
            "cpu-x86_64-8vcpu",
            "cpu-aarch64-8vcpu",
        ] {
            let d = hw.device_named(name).unwrap();
            assert!(d.peak_flop_per_s("bf16").is_some(), "{name}");
        }
        // Every device's part is one the price catalog knows, or is reported missing
        // by name (the planner prices what it can).
        let prices = Catalog::default_catalog();
        let priced: Vec<_> = hw
            .device
            .iter()
            .filter(|d| prices.part_named(&d.part).is_ok())
            .map(|d| d.name.as_str())
            .collect();
        assert!(priced.contains(&"h100-sxm") && priced.contains(&"cpu-x86_64-8vcpu"));
        let err = prices.part_named("l4").unwrap_err().to_string();
        assert!(err.contains("no part `l4`"), "{err}");
        assert!(hw.default_for(DeviceClass::Gpu).is_some());
        assert!(hw.default_for(DeviceClass::Cpu).is_some());
    }

    #[test]
    fn spec_limits_use_the_sustained_bandwidth_and_the_compute_format() {
        let hw = HardwareCatalog::default_catalog();
        let h100 = hw.device_named("h100-sxm").unwrap();
        let l = h100.as_limits();
        assert!((l.read_gb_per_s - 3015.0).abs() < 1e-9);
        // Quantized weights run in f16 on a GPU, f32 in f32.
        assert_eq!(l.matmul_gflop_per_s["q4_0"], 989_400.0);
        assert_eq!(l.matmul_gflop_per_s["f32"], 67_000.0);
        let cpu = hw.device_named("cpu-x86_64-8vcpu").unwrap();
        assert_eq!(cpu.compute_format("q4_1"), "fp32");
    }

    #[test]
    fn measured_gpus_are_recognised_by_whole_words() {
        let hw = HardwareCatalog::default_catalog();
        let name = |g: &str| hw.recognise(g).map(|d| d.name.as_str());
        assert_eq!(name("NVIDIA H100 80GB HBM3"), Some("h100-sxm"));
        assert_eq!(name("NVIDIA H100 PCIe"), Some("h100-pcie"));
        assert_eq!(name("NVIDIA H200"), Some("h200"));
        assert_eq!(name("NVIDIA L40S"), Some("l40s"));
        assert_eq!(name("NVIDIA L4"), Some("l4"));
        assert_eq!(name("NVIDIA A100-SXM4-80GB"), Some("a100-sxm-80gb"));
        assert_eq!(name("NVIDIA GeForce RTX 4090"), None);
    }

    #[test]
    fn bad_catalogs_say_what_is_wrong() {
        let good = DEFAULT_HARDWARE_TOML;
        let cases = [
            (good.replace("format = 1", "format = 9"), "format 9"),
            (
                good.replace("memory_gb = 80.0", "memory_gb = -1.0"),
                "memory_gb",
            ),
            (
                good.replace(
                    "sustained_bandwidth_fraction = 0.90",
                    "sustained_bandwidth_fraction = 1.5",
                ),
                "sustained_bandwidth_fraction must be in (0, 1]",
            ),
            (
                good.replace("fp8 = 1978.9", "fp4 = 1978.9"),
                "unknown format `fp4`",
            ),
            (
                good.replacen("name = \"h100-pcie\"", "name = \"h100-sxm\"", 1),
                "defined twice",
            ),
            (good.replace("as_of = \"2023\"", "as_of = \"\""), "as_of"),
            (good.replace("tdp_w = 700.0", "tdp_w = \"x\""), "tdp_w"),
        ];
        for (text, want) in cases {
            let err = HardwareCatalog::parse(&text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("t.toml: "), "{err}");
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
