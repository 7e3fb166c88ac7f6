//! The TOML loaders on arbitrary text: workload specs, targets files and price
//! catalogs either load or return an error; they never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = infermeter_workloads::spec::WorkloadSpec::from_toml(text, "fuzz");
    let _ = infermeter::targets::TargetsFile::parse(text, "fuzz");
    let _ = infermeter_results::catalog::Catalog::parse(text, "fuzz");
});
