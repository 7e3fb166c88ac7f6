//! The hardware fingerprint of the machine the harness runs on.

use results::Hardware;
use sysinfo::System;

/// Reads CPU, memory and OS facts. GPUs are listed by the GPU probes (none yet).
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
    Hardware {
        cpu_model,
        cpu_logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cpu_physical_cores: System::physical_core_count().map(|n| n as u32),
        memory_bytes: sys.total_memory(),
        os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: System::kernel_version(),
        arch: std::env::consts::ARCH.to_string(),
        gpus: Vec::new(),
    }
}
