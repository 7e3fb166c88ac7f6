//! The hardware fingerprint of the machine the harness runs on: CPU, memory, OS,
//! virtualisation hints, and every GPU NVML lists (with what makes two GPU runs
//! comparable: compute capability, driver and CUDA versions, power limits, clocks,
//! ECC, MIG and persistence modes, PCIe link). `infermeter hw` prints it.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::structs::device::{EccModeState, MigMode};
use results::{GpuInfo, Hardware};
use sha2::{Digest, Sha256};
use sysinfo::System;

/// Reads CPU, memory, OS, virtualisation and GPU facts.
pub fn fingerprint() -> Hardware {
    let mut sys = System::new();
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let (gpus, gpu_probe) = match gpus() {
        Ok(g) if g.is_empty() => (g, Some("NVML: no GPU visible".to_string())),
        Ok(g) => (g, None),
        Err(reason) => (Vec::new(), Some(reason)),
    };
    Hardware {
        cpu_model,
        cpu_logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cpu_physical_cores: System::physical_core_count().map(|n| n as u32),
        memory_bytes: sys.total_memory(),
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: System::kernel_version(),
        arch: std::env::consts::ARCH.to_string(),
        gpus,
        gpu_probe,
        virtualization: virtualization(),
    }
}

/// Hints that the host is a VM or a container, from files any process can read.
pub fn virtualization() -> Vec<String> {
    let mut hints = Vec::new();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    if read("/proc/cpuinfo")
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    {
        hints.push("hypervisor".to_string());
    }
    let vendor = read("/sys/class/dmi/id/sys_vendor").trim().to_string();
    let product = read("/sys/class/dmi/id/product_name").trim().to_string();
    if !vendor.is_empty() || !product.is_empty() {
        hints.push(format!("dmi: {vendor} {product}").trim().to_string());
    }
    if std::path::Path::new("/.dockerenv").exists() {
        hints.push("docker".to_string());
    }
    if std::path::Path::new("/run/.containerenv").exists() {
        hints.push("podman".to_string());
    }
    let cgroup = read("/proc/1/cgroup");
    if cgroup.contains("kubepods") || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        hints.push("kubernetes".to_string());
    }
    hints
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every GPU NVML lists, or why NVML cannot be read.
fn gpus() -> Result<Vec<GpuInfo>, String> {
    let nvml = Nvml::init().map_err(|e| format!("NVML: not available ({e})"))?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("NVML: cannot count devices: {e}"))?;
    let driver = nvml.sys_driver_version().ok();
    let cuda = nvml
        .sys_cuda_driver_version()
        .ok()
        .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
    let mut out = Vec::new();
    for i in 0..count {
        let d = nvml
            .device_by_index(i)
            .map_err(|e| format!("NVML: GPU {i}: {e}"))?;
        let watts = |mw: u32| f64::from(mw) / 1e3;
        out.push(GpuInfo {
            name: d.name().unwrap_or_else(|_| "unknown".into()),
            memory_bytes: d.memory_info().map(|m| m.total).unwrap_or(0),
            driver_version: driver.clone(),
            uuid_sha256: d.uuid().ok().map(|u| sha256_hex(&u)),
            compute_capability: d
                .cuda_compute_capability()
                .ok()
                .map(|c| format!("{}.{}", c.major, c.minor)),
            cuda_version: cuda.clone(),
            power_limit_w: d.enforced_power_limit().ok().map(watts),
            default_power_limit_w: d.power_management_limit_default().ok().map(watts),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            sm_clock_max_mhz: d.max_clock_info(Clock::SM).ok(),
            sm_clock_application_mhz: d.applications_clock(Clock::SM).ok(),
            memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
            ecc_enabled: d
                .is_ecc_enabled()
                .ok()
                .map(|e: EccModeState| e.currently_enabled),
            mig_enabled: d.mig_mode().ok().map(|m: MigMode| m.current == 1),
            persistence_mode: d.is_in_persistent_mode().ok(),
            pcie_generation: d.current_pcie_link_gen().ok(),
            pcie_width: d.current_pcie_link_width().ok(),
        });
    }
    Ok(out)
}
