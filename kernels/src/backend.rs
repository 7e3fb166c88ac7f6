//! The local targets: the embedded engine behind the [`Backend`] contract, one
//! backend for every device ([`LocalBackend<D>`]: `local-cpu` is
//! `LocalBackend<CpuOps>`). A target's settings are validated against its device's
//! keys when it is built; its weights are loaded, checked against the device's
//! memory, and handed to the engine thread when it is prepared.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use results::{
    DeviceLimits, ErrorClass, Locality, ModelShape, TargetInfo, TokenSource, WeightsInfo,
    WeightsSource,
};
use workloads::settings::{Settings, names};
use workloads::{
    Backend, BackendError, Completion, EngineCounters, EngineRequestStats, FinishReason,
    PrepareError, Request, StreamSink,
};

use crate::config::ModelConfig;
use crate::cpu::CpuOps;
use crate::device::LocalDevice;
use crate::engine::{Engine, Event, FailKind, Job};
use crate::format::Precision;
use crate::preset::{PRESETS, preset};
use crate::roofline::{self, MeasureOptions};
use crate::runtime::{Model, SchedulerConfig};
use crate::{EngineError, weights};

/// Where the weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsChoice {
    /// A GGUF file of the preset's shape if one is found, synthetic weights otherwise.
    Auto,
    /// A GGUF file of the preset's shape; an error if none is found.
    Gguf,
    /// Weights generated from a seed.
    Synthetic,
    /// This GGUF file.
    File(PathBuf),
}

/// Settings of a local target's engine (what every device shares).
#[derive(Clone, Debug, PartialEq)]
pub struct LocalConfig {
    /// Model preset.
    pub preset: &'static ModelConfig,
    /// Format asked for (`None`: the file's, or q4_1 for synthetic weights).
    pub precision: Option<Precision>,
    /// Where weights come from.
    pub weights: WeightsChoice,
    /// Whether a GGUF holding another format than `precision` is converted to it
    /// (`requantize=on`) instead of refused.
    pub requantize: bool,
    /// Seed of synthetic weights.
    pub seed: u64,
    /// Scheduler limits.
    pub scheduler: SchedulerConfig,
    /// Tokens per KV block.
    pub block_size: usize,
    /// KV cache capacity in tokens (`None`: `max_batch` full contexts, capped at
    /// [`LocalCpuConfig::DEFAULT_KV_BYTES`]).
    pub kv_tokens: Option<usize>,
    /// Bytes of one KV cache element on the device ([`LocalDevice::kv_elem_bytes`]).
    pub kv_elem_bytes: u64,
    /// Directories searched for GGUF files.
    pub model_dirs: Vec<PathBuf>,
    /// Whether the device's limits are measured when the target is prepared, and
    /// every result judged against them (`roofline=on`).
    pub roofline: bool,
}

/// Directories searched for GGUF files, in order: `$INFERMETER_MODELS`, then
/// `$XDG_CACHE_HOME/infermeter/models` (default `~/.cache/infermeter/models`), where
/// the set-up script unpacks SmolLM2.
pub fn default_model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("INFERMETER_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(c) = cache {
        dirs.push(c.join("infermeter").join("models"));
    }
    dirs
}

impl LocalConfig {
    /// Default KV cache size cap: 2 GiB.
    pub const DEFAULT_KV_BYTES: u64 = 2 << 30;

    /// Builds a config from a target spec's `key=value` settings, checked against the
    /// keys of device `D`. `model` is a preset name or a path to a `.gguf` file (whose
    /// shape must match a preset).
    pub fn from_settings<D: LocalDevice>(
        settings: &BTreeMap<String, String>,
        model_dirs: Vec<PathBuf>,
    ) -> Result<Self, EngineError> {
        let bad = |key: &str, message: String| EngineError::Setting {
            key: key.to_string(),
            message,
        };
        let s = Settings::new(D::KEYS, settings)
            .map_err(|k| bad(k, format!("unknown key (known: {})", names(D::KEYS))))?;
        let model = s.get("model").unwrap_or("smollm2-135m");
        let (preset, file) = if model.ends_with(".gguf") || model.contains('/') {
            let path = PathBuf::from(model);
            if !path.is_file() {
                return Err(EngineError::ModelFile {
                    path: model.to_string(),
                    reason: "not found".into(),
                });
            }
            let header = weights::GgufHeader::read(&path)?;
            let p = PRESETS
                .iter()
                .find(|p| header.check_shape(&path, p).is_ok())
                .ok_or_else(|| EngineError::ModelFile {
                    path: model.to_string(),
                    reason: format!(
                        "its shape matches no preset ({}); closest check: {}",
                        PRESETS
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", "),
                        header
                            .check_shape(&path, &crate::preset::SMOLLM2_135M)
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default()
                    ),
                })?;
            (p, Some(path))
        } else {
            (preset(model)?, None)
        };
        let precision = settings.get("precision").map(|s| s.parse()).transpose()?;
        let weights = match (file, settings.get("weights").map(String::as_str)) {
            (Some(f), None | Some("gguf") | Some("auto")) => WeightsChoice::File(f),
            (Some(_), Some(w)) => {
                return Err(bad("weights", format!("`{w}` conflicts with model=PATH")));
            }
            (None, None | Some("auto")) => WeightsChoice::Auto,
            (None, Some("gguf")) => WeightsChoice::Gguf,
            (None, Some("synthetic")) => WeightsChoice::Synthetic,
            (None, Some(w)) => {
                return Err(bad(
                    "weights",
                    format!("`{w}` is not one of auto, gguf, synthetic"),
                ));
            }
        };
        // Counts within the bounds their keys declare, defaulting to the declared
        // default.
        let int = |key: &str| -> Result<Option<u64>, EngineError> {
            s.integer(key).map_err(|m| bad(key, m))
        };
        let count =
            |key: &str| -> Result<usize, EngineError> { Ok(int(key)?.unwrap_or(1) as usize) };
        let scheduler = SchedulerConfig {
            max_batch: count("max_batch")?,
            max_tokens_per_step: count("max_tokens_per_step")?,
            prefill_chunk: count("prefill_chunk")?,
            prefix_cache: match settings.get("prefix_cache").map(String::as_str) {
                None | Some("on") => true,
                Some("off") => false,
                Some(v) => return Err(bad("prefix_cache", format!("`{v}` is not on or off"))),
            },
        };
        scheduler
            .validate()
            .map_err(|m| bad("max_tokens_per_step", m))?;
        let kv_tokens = int("kv_tokens")?.map(|v| v as usize);
        let roofline = match settings.get("roofline").map(String::as_str) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => return Err(bad("roofline", format!("`{v}` is not on or off"))),
        };
        let requantize = match settings.get("requantize").map(String::as_str) {
            None | Some("off") => false,
            Some("on") => true,
            Some(v) => return Err(bad("requantize", format!("`{v}` is not on or off"))),
        };
        Ok(Self {
            roofline,
            preset,
            precision,
            weights,
            requantize,
            seed: int("seed")?.unwrap_or(0),
            scheduler,
            block_size: count("block_size")?,
            kv_tokens,
            kv_elem_bytes: D::kv_elem_bytes(settings)?,
            model_dirs,
        })
    }

    /// KV cache capacity in tokens, for the device's cache element
    /// ([`LocalDevice::kv_elem_bytes`]).
    pub fn kv_capacity_tokens(&self) -> usize {
        self.kv_tokens.unwrap_or_else(|| {
            let per = self.preset.kv_bytes_per_token(self.kv_elem_bytes).max(1);
            let want = self.scheduler.max_batch.saturating_mul(self.preset.context);
            want.min((Self::DEFAULT_KV_BYTES / per) as usize)
        })
    }
}

struct Loaded {
    engine: Engine,
    info: TargetInfo,
    roofline: Option<(DeviceLimits, ModelShape)>,
}

/// Limits measured in this process, by device, precision and model (the matmul is
/// measured at the model's MLP shape): targets alike reuse them.
fn measured_limits<D: LocalDevice>(
    device: &D,
    precision: Precision,
    cfg: &ModelConfig,
) -> Result<DeviceLimits, EngineError> {
    type Key = (String, Precision, &'static str);
    static CACHE: OnceLock<Mutex<HashMap<Key, DeviceLimits>>> = OnceLock::new();
    let key = (device.device_label(), precision, cfg.name);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(l) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(l.clone());
    }
    let opts = match D::DEVICE {
        results::Device::Gpu => MeasureOptions::QUICK.for_gpu(),
        _ => MeasureOptions::QUICK,
    }
    .at_model_shape(cfg);
    let l = roofline::measure(device, &[precision], opts)?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, l.clone());
    Ok(l)
}

/// The embedded engine on device `D` as a target.
pub struct LocalBackend<D: LocalDevice> {
    config: LocalConfig,
    loaded: OnceLock<Arc<Loaded>>,
    settings: BTreeMap<String, String>,
    device: PhantomData<fn() -> D>,
}

/// The CPU engine as a target (`local-cpu`).
pub type LocalCpuBackend = LocalBackend<CpuOps>;

/// The CUDA engine as a target (`local-cuda`).
pub type LocalCudaBackend = LocalBackend<crate::cuda::ops::CudaOps>;

impl<D: LocalDevice> LocalBackend<D> {
    /// A target with `config`; `settings` are the spec's settings, echoed in reports
    /// (the device's own keys, such as `device`, are read when it is opened).
    pub fn new(config: LocalConfig, settings: BTreeMap<String, String>) -> Self {
        Self {
            config,
            loaded: OnceLock::new(),
            settings,
            device: PhantomData,
        }
    }

    /// Opens the device and loads the weights the config asks for onto it (blocking;
    /// seconds), refusing first if they and the KV cache do not fit its memory; with
    /// `roofline` on, measures the device's limits first.
    pub fn load(
        config: &LocalConfig,
        settings: &BTreeMap<String, String>,
    ) -> Result<(Model<D>, WeightsInfo, Option<DeviceLimits>), EngineError> {
        let p = config.preset;
        // Converting, a file of any format will do.
        let file_precision = config.precision.filter(|_| !config.requantize);
        let file = match &config.weights {
            WeightsChoice::File(f) => Some(f.clone()),
            WeightsChoice::Synthetic => None,
            WeightsChoice::Auto => weights::find_gguf(&config.model_dirs, p, file_precision),
            WeightsChoice::Gguf => Some(
                weights::find_gguf(&config.model_dirs, p, file_precision).ok_or_else(|| {
                    EngineError::NoModelFile {
                        preset: p.name.to_string(),
                        precision: config.precision.map_or("any".into(), |x| x.to_string()),
                        searched: config
                            .model_dirs
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?,
            ),
        };
        let precision = match (&file, config.precision) {
            (Some(_), Some(want)) if config.requantize => want,
            (Some(f), _) => weights::GgufHeader::read(f)?
                .precision()
                .unwrap_or(Precision::F32),
            (None, want) => want.unwrap_or(Precision::Q4_1),
        };
        let device = D::open(settings)?;
        D::memory_plan(
            p,
            precision,
            config.kv_capacity_tokens(),
            config.kv_elem_bytes,
        )
        .check(device.available_bytes())?;
        // The device's limits before anything else is on it: the measurement's
        // buffers are freed before the weights arrive.
        let limits = if config.roofline {
            match measured_limits(&device, precision, p) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!("{}: the roofline was not measured: {e}", D::KIND);
                    None
                }
            }
        } else {
            None
        };
        let (host, info) = match file {
            Some(path) => {
                let mut w = weights::load_gguf(&path, p)?;
                if let Some(want) = config.precision.filter(|_| config.requantize) {
                    w = crate::convert::requantize(w, want)?;
                }
                if let Some(want) = config.precision
                    && w.precision != want
                {
                    return Err(EngineError::ModelFile {
                        path: path.display().to_string(),
                        reason: format!(
                            "holds {} weights, precision={want} was asked for (requantize=on converts them)",
                            w.precision
                        ),
                    });
                }
                let info = WeightsInfo {
                    source: if config.requantize && config.precision.is_some() {
                        WeightsSource::GgufRequantized
                    } else {
                        WeightsSource::Gguf
                    },
                    path: Some(path.display().to_string()),
                    sha256: w.sha256.clone(),
                    seed: None,
                    bytes: w.bytes,
                };
                (w, info)
            }
            None => {
                let w = weights::synthetic(p, precision, config.seed)?;
                let info = WeightsInfo {
                    source: WeightsSource::Synthetic,
                    path: None,
                    sha256: w.sha256.clone(),
                    seed: Some(config.seed),
                    bytes: w.bytes,
                };
                (w, info)
            }
        };
        Ok((Model::new(device, p.clone(), host)?, info, limits))
    }

    /// Loads the configuration again (the engine holds the first copy) and the same
    /// weights in `reference` (a GGUF converted, synthetic weights generated from
    /// the same seed), each with a KV cache of one window, and scores one against the
    /// other over `windows` (blocking; seconds).
    fn measure_fidelity(
        config: &LocalConfig,
        settings: &BTreeMap<String, String>,
        weights: &WeightsInfo,
        reference: Precision,
        windows: &[Vec<u32>],
    ) -> Result<results::Fidelity, EngineError> {
        let t = std::time::Instant::now();
        // The evaluation text is tokenized with the embedded (SmolLM2) tokenizer: its
        // ids mean nothing to a model of another vocabulary.
        let embedded = workloads::text::tokenizer().get_vocab_size(true);
        if config.preset.vocab != embedded {
            return Err(EngineError::Tensor(format!(
                "{} has a vocabulary of {} tokens; the evaluation text is tokenized for the embedded tokenizer's {embedded}: not measured",
                config.preset.name, config.preset.vocab
            )));
        }
        let mut own = config.clone();
        own.roofline = false;
        own.kv_tokens = Some(windows.iter().map(Vec::len).max().unwrap_or(1));
        let (candidate, candidate_info, _) = Self::load(&own, settings)?;
        let mut r = own.clone();
        r.precision = Some(reference);
        match (&weights.source, &weights.path) {
            (WeightsSource::Synthetic, _) => r.weights = WeightsChoice::Synthetic,
            (_, Some(path)) => {
                r.weights = WeightsChoice::File(PathBuf::from(path));
                r.requantize = true;
            }
            (_, None) => {
                return Err(EngineError::Tensor(
                    "the target's weights name no file to load the reference from".into(),
                ));
            }
        }
        let (reference_model, reference_info, _) = Self::load(&r, settings)?;
        let s = crate::fidelity::score_windows(&reference_model, &candidate, windows)?;
        let (ppl, ref_ppl) = (s.candidate_perplexity(), s.reference_perplexity());
        Ok(results::Fidelity {
            precision: candidate.precision.to_string(),
            weights_sha256: candidate_info.sha256,
            reference_weights_sha256: reference_info.sha256,
            windows: windows.len() as u32,
            tokens_scored: s.positions(),
            kl_mean_nats: s.kl_mean(),
            kl_p99_nats: s.kl_quantile(0.99),
            kl_max_nats: s.kl_quantile(1.0),
            top1_agreement: s.top1_agreement(),
            perplexity: ppl,
            reference_perplexity: ref_ppl,
            perplexity_ratio: ppl / ref_ppl,
            cached: false,
            compute_s: t.elapsed().as_secs_f64(),
        })
    }

    fn loaded(&self) -> Result<&Arc<Loaded>, BackendError> {
        self.loaded.get().ok_or_else(|| {
            BackendError::new(
                ErrorClass::Other,
                format!("{} target used before prepare()", D::KIND),
            )
        })
    }

    fn info(&self, precision: String, weights: Option<WeightsInfo>) -> TargetInfo {
        let mut settings = self.settings.clone();
        settings.remove("model");
        settings.remove("precision");
        let s = &self.config.scheduler;
        settings.insert("max_batch".into(), s.max_batch.to_string());
        settings.insert(
            "max_tokens_per_step".into(),
            s.max_tokens_per_step.to_string(),
        );
        settings.insert("prefill_chunk".into(), s.prefill_chunk.to_string());
        settings.insert("block_size".into(), self.config.block_size.to_string());
        settings.insert(
            "prefix_cache".into(),
            if s.prefix_cache { "on" } else { "off" }.into(),
        );
        settings.insert(
            "kv_tokens".into(),
            self.config.kv_capacity_tokens().to_string(),
        );
        settings.insert(
            "kv_cache".into(),
            match self.config.kv_elem_bytes {
                4 => "f32",
                _ => "f16",
            }
            .into(),
        );
        settings.insert("kernels".into(), D::kernels_label());
        TargetInfo {
            kind: D::KIND.into(),
            model: self.config.preset.name.into(),
            precision,
            context_limit_tokens: Some(self.config.preset.context as u32),
            weights,
            settings,
            prices: None,
            locality: Locality::Local,
            device: Some(D::DEVICE),
            streamed: true,
            token_counter: "engine".into(),
            api: None,
        }
    }
}

#[async_trait]
impl<D: LocalDevice> Backend for LocalBackend<D> {
    fn describe(&self) -> TargetInfo {
        match self.loaded.get() {
            Some(l) => l.info.clone(),
            None => self.info(
                self.config
                    .precision
                    .map_or("auto".into(), |p| p.to_string()),
                None,
            ),
        }
    }

    async fn prepare(&self) -> Result<(), PrepareError> {
        if self.loaded.get().is_some() {
            return Ok(());
        }
        let (config, settings) = (self.config.clone(), self.settings.clone());
        let (model, weights, roofline) = tokio::task::spawn_blocking(move || {
            let (model, weights, limits) = Self::load(&config, &settings)?;
            let roofline = limits.map(|l| (l, roofline::held_shape(&model)));
            Ok::<_, EngineError>((model, weights, roofline))
        })
        .await
        .map_err(|e| PrepareError::Failed(format!("loading the model: {e}")))?
        .map_err(|e| match e {
            EngineError::Tensor(_) | EngineError::Stopped => PrepareError::Failed(e.to_string()),
            _ => PrepareError::Config(e.to_string()),
        })?;
        let info = self.info(model.precision.to_string(), Some(weights));
        let blocks = self
            .config
            .kv_capacity_tokens()
            .div_ceil(self.config.block_size);
        let layout = model.kv_layout(blocks, self.config.block_size);
        let engine = Engine::start(model, layout, self.config.scheduler)
            .map_err(|e| PrepareError::Failed(e.to_string()))?;
        let _ = self.loaded.set(Arc::new(Loaded {
            engine,
            info,
            roofline,
        }));
        Ok(())
    }

    async fn generate(
        &self,
        req: &Request,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, BackendError> {
        let loaded = self.loaded()?;
        let prompt = req.prompt_token_ids();
        let (limit, vocab) = (self.config.preset.context, self.config.preset.vocab);
        if prompt.is_empty()
            || req.max_output_tokens == 0
            || prompt.len() + req.max_output_tokens as usize > limit
        {
            return Err(BackendError::new(
                ErrorClass::Truncated,
                format!(
                    "{} input + {} output tokens do not fit the context of {limit}",
                    prompt.len(),
                    req.max_output_tokens
                ),
            ));
        }
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(BackendError::new(
                ErrorClass::Other,
                format!("token id {bad} is outside the model's vocabulary of {vocab}"),
            ));
        }
        let input_tokens = prompt.len() as u32;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        loaded
            .engine
            .submit(Job {
                prompt,
                max_output_tokens: req.max_output_tokens,
                events: tx,
            })
            .map_err(|e| BackendError::new(ErrorClass::Other, e.to_string()))?;
        let mut out = Vec::with_capacity(req.max_output_tokens as usize);
        let stats = loop {
            match rx.recv().await {
                Some(Event::Token { at, id }) => {
                    sink.on_tokens_at(at, 1);
                    out.push(id);
                }
                Some(Event::Done(stats)) => break stats,
                Some(Event::Failed(kind, msg)) => {
                    let class = match kind {
                        FailKind::KvCapacity | FailKind::DeviceOom => ErrorClass::DeviceOom,
                        FailKind::Step => ErrorClass::Other,
                    };
                    return Err(BackendError::new(class, msg));
                }
                None => {
                    return Err(BackendError::new(
                        ErrorClass::Truncated,
                        format!(
                            "engine stopped after {} of {} tokens",
                            out.len(),
                            req.max_output_tokens
                        ),
                    ));
                }
            }
        };
        // A checked request's reply is graded on its text: the embedded tokenizer's,
        // which only a model of its vocabulary speaks.
        let output_text = req
            .check
            .as_ref()
            .filter(|_| vocab == workloads::text::tokenizer().get_vocab_size(true))
            .and_then(|_| workloads::text::decode(&out));
        Ok(Completion {
            input_tokens,
            input_source: TokenSource::Engine,
            output_tokens: out.len() as u32,
            output_source: TokenSource::Engine,
            finish: FinishReason::Length,
            output_text,
            output_token_ids: Some(out),
            input_cached_tokens: Some(stats.cached_prompt_tokens),
            engine: Some(EngineRequestStats {
                queue_ms: stats.queue_s * 1e3,
                prefill_ms: stats.prefill_s * 1e3,
                steps: stats.steps,
                mean_batch: stats.mean_batch,
                max_batch: stats.max_batch,
            }),
            server_usage: None,
            tokenizer_output_tokens: None,
            chunk_tokens: workloads::ChunkTokens::Engine,
            finish_reason: None,
        })
    }

    fn roofline_basis(&self) -> Option<(DeviceLimits, ModelShape)> {
        self.loaded.get()?.roofline.clone()
    }

    async fn fidelity(
        &self,
        reference: &str,
        windows: &[Vec<u32>],
    ) -> Result<results::Fidelity, String> {
        let reference: Precision = reference.parse().map_err(|e: EngineError| e.to_string())?;
        let weights = self
            .loaded()
            .map_err(|e| e.message)?
            .info
            .weights
            .clone()
            .ok_or("the target holds no weights")?;
        let (config, settings, windows) =
            (self.config.clone(), self.settings.clone(), windows.to_vec());
        tokio::task::spawn_blocking(move || {
            Self::measure_fidelity(&config, &settings, &weights, reference, &windows)
        })
        .await
        .map_err(|e| format!("measuring fidelity: {e}"))?
        .map_err(|e| e.to_string())
    }

    fn engine_counters(&self) -> Option<EngineCounters> {
        let l = self.loaded.get()?;
        let c = l.engine.counters_new_window();
        Some(EngineCounters {
            steps: c.steps.steps,
            seqs_sum: c.steps.seqs_sum,
            tokens_sum: c.steps.tokens_sum,
            prompt_tokens: c.kv.prompt_tokens,
            cached_tokens: c.kv.cached_tokens,
            evictions: c.kv.evictions,
            blocks_peak: c.window_blocks_peak,
            blocks_total: c.kv.blocks_total,
            block_tokens: self.config.block_size as u32,
            max_batch: self.config.scheduler.max_batch as u32,
            prefill_busy_ns: c.prefill_busy_ns,
            decode_busy_ns: c.decode_busy_ns,
            decode_steps: c.decode_steps,
            decode_step_tokens: c.decode_step_tokens,
            decode_step_ns: c.decode_step_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_backend_serves_every_device_with_its_own_keys() {
        let cpu = settings(&[("model", "tiny-dense"), ("max_batch", "4")]);
        let config = LocalConfig::from_settings::<CpuOps>(&cpu, Vec::new()).unwrap();
        let t = LocalCpuBackend::new(config, cpu).describe();
        assert_eq!(
            (t.kind.as_str(), t.device),
            ("local-cpu", Some(results::Device::Cpu))
        );
        assert_eq!(t.settings["max_batch"], "4");
        // `device` is a key of the GPU's only.
        let gpu = settings(&[("model", "tiny-dense"), ("device", "1")]);
        let err = LocalConfig::from_settings::<CpuOps>(&gpu, Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("setting `device`: unknown key"),
            "{err}"
        );
        let config =
            LocalConfig::from_settings::<crate::cuda::ops::CudaOps>(&gpu, Vec::new()).unwrap();
        let t = LocalCudaBackend::new(config, gpu).describe();
        assert_eq!(
            (t.kind.as_str(), t.device),
            ("local-cuda", Some(results::Device::Gpu))
        );
        assert_eq!(t.locality, Locality::Local);
    }
}
