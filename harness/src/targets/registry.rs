//! The registry of target kinds: each kind once, with where it computes, the keys its
//! spec takes (declared by the crate that implements it), how its settings are
//! validated without reading a secret or loading a model, and how it is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use kernels::backend::LocalCudaBackend;
use kernels::cpu::CpuOps;
use kernels::cuda::ops::CudaOps;
use kernels::{LocalConfig, LocalCpuBackend, LocalDevice, default_model_dirs};
use results::{Device, Locality};
use workloads::Backend;
use workloads::settings::KeySpec;

use crate::error::bad_input;

/// A target spec's settings, `key=value`.
pub type Settings = BTreeMap<String, String>;

/// How a kind builds a target from its settings (`name`: the targets-file name it came
/// from, for messages).
pub type BuildFn = fn(&Settings, Option<&str>, &BuildOptions) -> Result<Arc<dyn Backend>>;

/// What building a target takes besides its spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildOptions {
    /// Most connections of a remote target that does not set `max_connections`.
    pub max_connections: Option<usize>,
}

/// A target kind.
pub struct Kind {
    /// Its name in target specs.
    pub name: &'static str,
    /// Where it computes.
    pub locality: Locality,
    /// What a local kind computes on.
    pub device: Option<Device>,
    /// One line for the README and `infermeter targets`.
    pub summary: &'static str,
    /// The keys its spec takes.
    pub keys: &'static [KeySpec],
    /// Checks a spec's settings as building would, reading no secret and loading
    /// no model.
    pub validate: fn(&Settings) -> Result<()>,
    /// Builds the target from its settings (`name`: the targets-file name it came
    /// from, for messages).
    pub build: BuildFn,
}

/// Every target kind this build knows.
pub const KINDS: &[Kind] = &[
    Kind {
        name: CpuOps::KIND,
        locality: Locality::Local,
        device: Some(Device::Cpu),
        summary: "the embedded engine on this machine's CPUs (candle-core and infermeter's own kernels)",
        keys: <CpuOps as LocalDevice>::KEYS,
        validate: |s| local_config::<CpuOps>(s).map(|_| ()),
        build: |settings, _, _| {
            let config = local_config::<CpuOps>(settings)?;
            Ok(Arc::new(LocalCpuBackend::new(config, settings.clone())))
        },
    },
    Kind {
        name: CudaOps::KIND,
        locality: Locality::Local,
        device: Some(Device::Gpu),
        summary: "the embedded engine on an NVIDIA GPU (CUDA kernels compiled at run time by NVRTC), through the same runtime as local-cpu. Unverified: no GPU has run it yet (`ci/tools/gpu_checks.sh` checks it on the first one); without a driver it exits 2",
        keys: <CudaOps as LocalDevice>::KEYS,
        validate: |s| local_config::<CudaOps>(s).map(|_| ()),
        build: build_cuda,
    },
    Kind {
        name: providers::Kind::OpenAi.name(),
        locality: Locality::Remote,
        device: None,
        summary: "an OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, Ollama, hosted APIs",
        keys: providers::OPENAI_KEYS,
        validate: |s| validate_remote(providers::Kind::OpenAi, s),
        build: |s, name, o| build_remote(providers::Kind::OpenAi, s, name, o),
    },
    Kind {
        name: providers::Kind::Anthropic.name(),
        locality: Locality::Remote,
        device: None,
        summary: "Anthropic's Messages API (the key goes in `x-api-key`)",
        keys: providers::ANTHROPIC_KEYS,
        validate: |s| validate_remote(providers::Kind::Anthropic, s),
        build: |s, name, o| build_remote(providers::Kind::Anthropic, s, name, o),
    },
];

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The names of every kind, comma-separated.
pub fn kind_names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn local_config<D: LocalDevice>(settings: &Settings) -> Result<LocalConfig> {
    Ok(LocalConfig::from_settings::<D>(
        settings,
        default_model_dirs(),
    )?)
}

fn build_cuda(settings: &Settings, _: Option<&str>, _: &BuildOptions) -> Result<Arc<dyn Backend>> {
    // Bad settings are refused first, as for any kind; then a missing driver or GPU,
    // before anything is written (the device is opened again when it is prepared).
    let config = local_config::<CudaOps>(settings)?;
    let ordinal = match settings.get("device") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            bad_input(format!(
                "target local-cuda: device `{v}` is not a GPU ordinal"
            ))
        })?,
    };
    kernels::cuda::probe_device(ordinal)
        .map_err(|e| bad_input(format!("target local-cuda: {e}")))?;
    Ok(Arc::new(LocalCudaBackend::new(config, settings.clone())))
}

fn validate_remote(kind: providers::Kind, settings: &Settings) -> Result<()> {
    providers::HttpTargetConfig::from_settings(kind, settings)?;
    Ok(())
}

fn build_remote(
    kind: providers::Kind,
    settings: &Settings,
    name: Option<&str>,
    o: &BuildOptions,
) -> Result<Arc<dyn Backend>> {
    let name = name.map_or(String::new(), |n| format!(" @{n}"));
    let built = providers::HttpTargetConfig::from_settings(kind, settings).and_then(|mut cfg| {
        if cfg.max_connections.is_none() {
            cfg.max_connections = o.max_connections;
        }
        providers::HttpBackend::with_config(cfg, settings)
    });
    match built {
        Ok(b) => Ok(Arc::new(b)),
        Err(e) => Err(bad_input(format!("target {}{name}: {e}", kind.name()))),
    }
}

/// The README's table of target kinds and their keys (a test keeps the README equal
/// to it).
pub fn markdown_table() -> String {
    let mut out = String::from("| kind | runs | keys (type, default) |\n|---|---|---|\n");
    for k in KINDS {
        let runs = match (k.locality, k.device) {
            (Locality::Local, Some(Device::Cpu)) => "local, CPU",
            (Locality::Local, Some(Device::Gpu)) => "local, GPU",
            (Locality::Local, None) => "local",
            (Locality::Remote, _) => "remote",
        };
        let keys: Vec<String> = k
            .keys
            .iter()
            .map(|s| {
                format!(
                    "`{}` ({}{}): {}",
                    s.name.replace('*', "NAME"),
                    s.ty.describe(),
                    s.default
                        .map_or(String::new(), |d| format!(", default `{d}`")),
                    s.help
                )
            })
            .collect();
        out.push_str(&format!(
            "| `{}` | {runs}: {} | {} |\n",
            k.name,
            k.summary,
            keys.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once_with_its_keys() {
        for (i, k) in KINDS.iter().enumerate() {
            assert!(
                KINDS[i + 1..].iter().all(|o| o.name != k.name),
                "{}",
                k.name
            );
            assert!(!k.keys.is_empty(), "{}", k.name);
            assert_eq!(
                k.locality == Locality::Local,
                k.device.is_some(),
                "{}",
                k.name
            );
        }
        assert!(kind("local-cpu").is_some() && kind("tpu").is_none());
        let table = markdown_table();
        assert!(table.contains("`local-cuda` | local, GPU") && table.contains("`body.NAME`"));
    }
}
