//! CPU package and DRAM energy through Linux powercap (RAPL): the `energy_uj` counters
//! of `/sys/class/powercap/intel-rapl:N` (packages) and `intel-rapl:N:M` (their DRAM
//! and core domains; only DRAM is summed, core is inside the package), wrapping at
//! `max_energy_range_uj`. `INFERMETER_POWERCAP` points elsewhere (tests use a copy).

use std::path::{Path, PathBuf};

use super::{Probe, ProbeReading};

/// One RAPL domain.
#[derive(Clone, Debug)]
struct Domain {
    name: String,
    energy: PathBuf,
    range: u64,
}

/// RAPL: the sum of every package and DRAM domain.
#[derive(Debug)]
pub struct RaplProbe {
    domains: Vec<Domain>,
}

fn read_u64(p: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a number: {}", p.display(), text.trim()))
}

impl RaplProbe {
    /// The root of the powercap tree.
    pub fn root() -> PathBuf {
        std::env::var_os("INFERMETER_POWERCAP")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/sys/class/powercap"))
    }

    /// Opens every readable package and DRAM domain under `root`, or says why none.
    pub fn open(root: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(root).map_err(|e| {
            format!(
                "RAPL: {} is not readable ({e}): no powercap on this machine",
                root.display()
            )
        })?;
        let mut domains = Vec::new();
        let mut problems = Vec::new();
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for dir in names {
            let Some(base) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !base.starts_with("intel-rapl:") {
                continue;
            }
            let name = std::fs::read_to_string(dir.join("name"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            // Packages are intel-rapl:N; among sub-domains only DRAM is outside them.
            let is_package = base.matches(':').count() == 1;
            if !(is_package || name == "dram") {
                continue;
            }
            let energy = dir.join("energy_uj");
            match (
                read_u64(&energy),
                read_u64(&dir.join("max_energy_range_uj")),
            ) {
                (Ok(_), Ok(range)) => domains.push(Domain {
                    name: format!("{base} {name}"),
                    energy,
                    range: range + 1,
                }),
                (Err(e), _) | (_, Err(e)) => problems.push(e),
            }
        }
        if domains.is_empty() {
            return Err(if problems.is_empty() {
                format!("RAPL: no intel-rapl domain under {}", root.display())
            } else {
                format!(
                    "RAPL: not readable: {} (reading energy_uj usually needs root)",
                    problems.join("; ")
                )
            });
        }
        Ok(Self { domains })
    }

    /// Number of domains summed.
    pub fn domains(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.name.clone()).collect()
    }
}

impl Probe for RaplProbe {
    fn name(&self) -> String {
        format!("rapl ({})", self.domains().join(", "))
    }

    fn channels(&self) -> usize {
        self.domains.len()
    }

    fn read(&mut self) -> Vec<ProbeReading> {
        self.domains
            .iter()
            .map(|d| ProbeReading {
                counter: read_u64(&d.energy).ok(),
                power_w: None,
                throttle: Vec::new(),
                state: None,
            })
            .collect()
    }

    fn counter_range(&self, channel: usize) -> Option<u64> {
        self.domains.get(channel).map(|d| d.range)
    }

    fn units_per_j(&self) -> f64 {
        1e6
    }

    fn source(&self) -> results::EnergySource {
        results::EnergySource::Rapl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(root: &Path, dir: &str, name: &str, energy: u64, range: u64) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn reads_packages_and_dram_but_not_core() {
        let dir = tempfile::tempdir().unwrap();
        domain(
            dir.path(),
            "intel-rapl:0",
            "package-0",
            1000,
            262_143_328_850,
        );
        domain(dir.path(), "intel-rapl:0:0", "core", 500, 262_143_328_850);
        domain(dir.path(), "intel-rapl:0:1", "dram", 70, 65_712_999_613);
        let mut p = RaplProbe::open(dir.path()).unwrap();
        assert_eq!(
            p.domains(),
            ["intel-rapl:0 package-0", "intel-rapl:0:1 dram"]
        );
        let r = p.read();
        assert_eq!(r[0].counter, Some(1000));
        assert_eq!(r[1].counter, Some(70));
        assert_eq!(p.counter_range(1), Some(65_712_999_614));
    }

    #[test]
    fn says_why_when_there_is_nothing_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = RaplProbe::open(&dir.path().join("absent")).unwrap_err();
        assert!(err.contains("no powercap"), "{err}");
        let err = RaplProbe::open(dir.path()).unwrap_err();
        assert!(err.contains("no intel-rapl domain"), "{err}");
        let d = dir.path().join("intel-rapl:0");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), "package-0").unwrap();
        let err = RaplProbe::open(dir.path()).unwrap_err();
        assert!(err.contains("not readable"), "{err}");
    }
}
