//! A device the local engine runs on, as a target sees it: its kind's name, the keys
//! its target spec takes, how it is opened, and what a model needs in its memory.
//! The local backend (`LocalBackend<D>`) is generic over it, so every device shares one
//! backend: `local-cpu` is `LocalBackend<CpuOps>`; `local-cuda` is
//! `LocalBackend<CudaOps>`.

use std::collections::BTreeMap;

use results::Device;
use workloads::settings::KeySpec;

use crate::EngineError;
use crate::config::ModelConfig;
use crate::format::Precision;
use crate::memory::MemoryPlan;
use crate::ops::DeviceOps;

/// A device behind a local target.
pub trait LocalDevice: DeviceOps + Sized {
    /// The target kind (`local-cpu`).
    const KIND: &'static str;
    /// What it is in reports.
    const DEVICE: Device;
    /// Every key its target spec takes: the engine's (model, precision, batching, KV
    /// cache) and its own (`device` for a GPU).
    const KEYS: &'static [KeySpec];
    /// Its own keys among [`LocalDevice::KEYS`] (the engine reads the others).
    const DEVICE_KEYS: &'static [&'static str];
    /// Opens the device its settings name (blocking).
    fn open(settings: &BTreeMap<String, String>) -> Result<Self, EngineError>;
    /// What `cfg` at `precision` with a KV cache of `kv_tokens` slots of
    /// `kv_elem_bytes`-byte elements holds on it.
    fn memory_plan(
        cfg: &ModelConfig,
        precision: Precision,
        kv_tokens: usize,
        kv_elem_bytes: u64,
    ) -> MemoryPlan;
    /// Bytes free for a new model on it, when it says.
    fn available_bytes(&self) -> Option<u64>;

    /// Bytes it holds for `weights` matrix weights stored in `precision`.
    fn matrix_bytes(precision: Precision, weights: u64) -> u64;
    /// Bytes of one element of its default KV cache.
    const KV_ELEM_BYTES: u64;
    /// Bytes of one element of the KV cache `settings` ask for (the default unless the
    /// device has a key for it).
    fn kv_elem_bytes(_settings: &BTreeMap<String, String>) -> Result<u64, EngineError> {
        Ok(Self::KV_ELEM_BYTES)
    }
    /// The CPU kernels or GPU code its products run, as the target's settings name
    /// them (`kernels`).
    fn kernels_label() -> String;
    /// Whose matrix multiply its `matmul` is at `rows` rows, for the roofline.
    fn matmul_engine(&self, rows: usize) -> String;
    /// The device as the command line names it (`cpu`, `cuda:0`).
    fn device_label(&self) -> String;
    /// What it is (CPU model, GPU name).
    fn device_name(&self) -> String;
    /// Threads its ops run on, where that is a choice (the CPU's pool).
    fn threads(&self) -> Option<u32>;
    /// Its memory bandwidth over buffers of `buffer_bytes`, best of `passes`.
    fn measure_bandwidth(
        &self,
        buffer_bytes: u64,
        passes: u32,
    ) -> Result<crate::measure::Bandwidth, EngineError>;
}

/// Declares the keys of a local target: the engine's, then `$extra` (a device's own).
#[macro_export]
macro_rules! local_keys {
    ($($extra:expr),* $(,)?) => {
        &[
            workloads::settings::KeySpec {
                name: "model",
                ty: workloads::settings::KeyType::Text,
                default: Some("smollm2-135m"),
                help: "a preset name (`infermeter models list`) or a path to a `.gguf` of a preset's shape",
            },
            workloads::settings::KeySpec {
                name: "precision",
                ty: workloads::settings::KeyType::Choice(&["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]),
                default: None,
                help: "weight format (default: the file's, or q4_1 for synthetic weights)",
            },
            workloads::settings::KeySpec {
                name: "requantize",
                ty: workloads::settings::KeyType::Choice(&["on", "off"]),
                default: Some("off"),
                help: "`on`: a GGUF holding another format than `precision` is converted to it when loaded (every matrix expanded to f32 and stored again; a quantized file's rounding is kept)",
            },
            workloads::settings::KeySpec {
                name: "weights",
                ty: workloads::settings::KeyType::Choice(&["auto", "gguf", "synthetic"]),
                default: Some("auto"),
                help: "`auto`: a GGUF of the preset's shape if found, synthetic otherwise; `gguf`: a GGUF or an error; `synthetic`: generated from `seed`",
            },
            workloads::settings::KeySpec {
                name: "seed",
                ty: workloads::settings::KeyType::Integer { min: 0, max: u64::MAX },
                default: Some("0"),
                help: "seed of synthetic weights",
            },
            workloads::settings::KeySpec {
                name: "max_batch",
                ty: workloads::settings::KeyType::Integer { min: 1, max: 4096 },
                default: Some("16"),
                help: "sequences per engine step",
            },
            workloads::settings::KeySpec {
                name: "max_tokens_per_step",
                ty: workloads::settings::KeyType::Integer { min: 1, max: 1 << 20 },
                default: Some("512"),
                help: "tokens (prompt chunks and decode tokens) per step",
            },
            workloads::settings::KeySpec {
                name: "prefill_chunk",
                ty: workloads::settings::KeyType::Integer { min: 1, max: 1 << 20 },
                default: Some("256"),
                help: "prompt tokens of one sequence per step",
            },
            workloads::settings::KeySpec {
                name: "block_size",
                ty: workloads::settings::KeyType::Integer { min: 1, max: 4096 },
                default: Some("16"),
                help: "tokens per KV block",
            },
            workloads::settings::KeySpec {
                name: "kv_tokens",
                ty: workloads::settings::KeyType::Integer { min: 1, max: 1 << 32 },
                default: None,
                help: "KV cache capacity in tokens (default: `max_batch` full contexts, capped at 2 GiB)",
            },
            workloads::settings::KeySpec {
                name: "roofline",
                ty: workloads::settings::KeyType::Choice(&["on", "off"]),
                default: Some("on"),
                help: "measure the device's bandwidth and matmul throughput when the target is prepared (about a second) and judge every result against them",
            },
            workloads::settings::KeySpec {
                name: "prefix_cache",
                ty: workloads::settings::KeyType::Choice(&["on", "off"]),
                default: Some("on"),
                help: "reuse cached KV blocks of shared prompt prefixes",
            },
            $($extra,)*
        ]
    };
}
