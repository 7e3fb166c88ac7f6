//! What each kernel uses once assembled for a real GPU: `ptxas -v` assembles the PTX
//! NVRTC made for an architecture and reports, per kernel, its registers, stack,
//! spills and static shared memory. CI runs it on CPU-only machines (ptxas ships in
//! the PyPI package `nvidia-cuda-nvcc`) and keeps the table of every kernel committed
//! (`kernels/cuda/resources.md`), so that a change in registers or shared memory shows
//! in review and a spill or an over-limit kernel fails the build.

use std::path::Path;
use std::process::Command;

use super::{Arch, CudaError};

/// One kernel's resources on one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelResources {
    /// Kernel (entry function) name.
    pub kernel: String,
    /// Real architecture it was assembled for (`sm_90`).
    pub arch: String,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory per block, bytes.
    pub shared_bytes: u32,
    /// Stack frame per thread, bytes.
    pub stack_bytes: u32,
    /// Bytes spilled to local memory (stores).
    pub spill_store_bytes: u32,
    /// Bytes read back from spills (loads).
    pub spill_load_bytes: u32,
}

/// Registers a thread may use on every architecture this project builds for.
pub const MAX_REGISTERS: u32 = 255;
/// Static shared memory a block may use without opting in to more, bytes.
pub const MAX_STATIC_SHARED_BYTES: u32 = 48 * 1024;

impl KernelResources {
    /// What is wrong with it: a spill, or a limit passed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let who = format!("{} on {}", self.kernel, self.arch);
        if self.spill_store_bytes > 0 || self.spill_load_bytes > 0 {
            out.push(format!(
                "{who} spills registers ({} bytes stored, {} loaded)",
                self.spill_store_bytes, self.spill_load_bytes
            ));
        }
        if self.registers > MAX_REGISTERS {
            out.push(format!(
                "{who} uses {} registers (limit {MAX_REGISTERS})",
                self.registers
            ));
        }
        if self.shared_bytes > MAX_STATIC_SHARED_BYTES {
            out.push(format!(
                "{who} uses {} bytes of static shared memory (limit {MAX_STATIC_SHARED_BYTES})",
                self.shared_bytes
            ));
        }
        out
    }
}

/// The number before `unit` in `line` (`"32 registers"` -> 32).
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

/// Parses the log of `ptxas -v`: for each kernel, its `Compiling entry function`,
/// `Function properties` (stack, spills) and `Used N registers` lines.
pub fn parse_ptxas_log(log: &str) -> Result<Vec<KernelResources>, String> {
    let mut out: Vec<KernelResources> = Vec::new();
    let mut current: Option<KernelResources> = None;
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(k) = current.take() {
                out.push(k);
            }
            let mut parts = rest.split('\'');
            let kernel = parts.next().unwrap_or_default().to_string();
            let arch = parts.nth(1).unwrap_or_default().to_string();
            current = Some(KernelResources {
                kernel,
                arch,
                registers: 0,
                shared_bytes: 0,
                stack_bytes: 0,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
            });
            continue;
        }
        let Some(k) = current.as_mut() else { continue };
        if line.contains("bytes stack frame") {
            k.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            k.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
            k.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("registers") && line.contains("Used") {
            k.registers = number_before(line, "registers")
                .ok_or_else(|| format!("no register count in `{}`", line.trim()))?;
            k.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out.extend(current);
    if out.is_empty() {
        return Err("ptxas reported no kernel".into());
    }
    Ok(out)
}

/// Assembles `ptx` for `arch` with the `ptxas` at `ptxas` and returns what each
/// kernel uses.
pub fn assemble(ptxas: &Path, ptx: &str, arch: Arch) -> Result<Vec<KernelResources>, CudaError> {
    let fail = |reason: String| CudaError::Launch {
        what: "ptxas",
        reason,
    };
    let dir = std::env::temp_dir();
    let stem = format!(
        "infermeter-{}-{}-{:x}",
        std::process::id(),
        arch.sm(),
        ptx.len()
    );
    let input = dir.join(format!("{stem}.ptx"));
    let output = dir.join(format!("{stem}.cubin"));
    std::fs::write(&input, ptx).map_err(|e| fail(format!("writing {}: {e}", input.display())))?;
    let run = Command::new(ptxas)
        .arg(format!("-arch={}", arch.sm()))
        .arg("-v")
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .output();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    let run = run.map_err(|e| fail(format!("running {}: {e}", ptxas.display())))?;
    let log = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        return Err(fail(format!(
            "{} for {}: {}",
            run.status,
            arch.sm(),
            log.trim()
        )));
    }
    parse_ptxas_log(&log).map_err(fail)
}

/// The committed table: one row per kernel and architecture, sorted.
pub fn markdown_table(rows: &[KernelResources]) -> String {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| (&a.kernel, &a.arch).cmp(&(&b.kernel, &b.arch)));
    let mut s = String::from(
        "| kernel | arch | registers | shared memory (bytes) | stack (bytes) | spill stores (bytes) | spill loads (bytes) |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            r.kernel,
            r.arch,
            r.registers,
            r.shared_bytes,
            r.stack_bytes,
            r.spill_store_bytes,
            r.spill_load_bytes
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'gemv_f32' for 'sm_90'
ptxas info    : Function properties for gemv_f32
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function 'attention_f32' for 'sm_90'
ptxas info    : Function properties for attention_f32
    16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 50000 bytes smem, 412 bytes cmem[0]
";

    #[test]
    fn the_verbose_log_gives_each_kernels_figures() {
        let rows = parse_ptxas_log(LOG).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            KernelResources {
                kernel: "gemv_f32".into(),
                arch: "sm_90".into(),
                registers: 40,
                shared_bytes: 1024,
                stack_bytes: 0,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
            }
        );
        assert!(rows[0].problems().is_empty());
        let p = rows[1].problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("spills registers (8 bytes stored, 12 loaded)"));
        assert!(p[1].contains("50000 bytes of static shared memory"));
    }

    #[test]
    fn a_log_without_kernels_is_an_error() {
        assert!(parse_ptxas_log("ptxas info    : 0 bytes gmem\n").is_err());
        assert!(
            parse_ptxas_log(
                "ptxas info    : Compiling entry function 'k' for 'sm_80'\nptxas info    : Used many registers\n"
            )
            .is_err()
        );
    }

    #[test]
    fn the_table_is_sorted_by_kernel_then_arch() {
        let rows = parse_ptxas_log(LOG).unwrap();
        let t = markdown_table(&rows);
        let a = t.find("`attention_f32`").unwrap();
        let g = t.find("`gemv_f32`").unwrap();
        assert!(a < g, "{t}");
        assert!(
            t.contains("| `gemv_f32` | sm_90 | 40 | 1024 | 0 | 0 | 0 |"),
            "{t}"
        );
    }
}
