//! The `local-cpu` target: the embedded engine behind the [`Backend`] contract.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use results::{ErrorClass, TargetInfo, TokenSource, WeightsInfo, WeightsSource};
use workloads::{
    Backend, BackendError, Completion, FinishReason, PrepareError, Request, StreamSink,
};

use crate::cpu::CpuModel;
use crate::engine::{Engine, Event, Job};
use crate::preset::{ModelPreset, Precision, preset};
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

/// Settings of a `local-cpu` target.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalCpuConfig {
    /// Model preset.
    pub preset: &'static ModelPreset,
    /// Precision asked for (`None`: the file's, or q4_1 for synthetic weights).
    pub precision: Option<Precision>,
    /// Where weights come from.
    pub weights: WeightsChoice,
    /// Seed of synthetic weights.
    pub seed: u64,
    /// Most sequences decoded per step.
    pub max_batch: usize,
    /// Directories searched for GGUF files.
    pub model_dirs: Vec<PathBuf>,
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

/// Keys a `local-cpu` target spec accepts.
pub const SETTINGS: &[&str] = &["model", "precision", "weights", "seed", "max_batch"];

impl LocalCpuConfig {
    /// Builds a config from a target spec's `key=value` settings. `model` is a preset
    /// name or a path to a `.gguf` file (whose shape must match a preset).
    pub fn from_settings(
        settings: &BTreeMap<String, String>,
        model_dirs: Vec<PathBuf>,
    ) -> Result<Self, EngineError> {
        let bad = |key: &str, message: String| EngineError::Setting {
            key: key.to_string(),
            message,
        };
        if let Some(k) = settings.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown key (known: {})", SETTINGS.join(", ")),
            ));
        }
        let model = settings
            .get("model")
            .map(String::as_str)
            .unwrap_or("smollm2-135m");
        let (preset, file) = if model.ends_with(".gguf") || model.contains('/') {
            let path = PathBuf::from(model);
            if !path.is_file() {
                return Err(EngineError::ModelFile {
                    path: model.to_string(),
                    reason: "not found".into(),
                });
            }
            let header = weights::GgufHeader::read(&path)?;
            let p = crate::preset::PRESETS
                .iter()
                .find(|p| header.check_shape(&path, p).is_ok())
                .ok_or_else(|| EngineError::ModelFile {
                    path: model.to_string(),
                    reason: format!(
                        "its shape matches no preset ({})",
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
        let int = |key: &str, default: u64, min: u64| -> Result<u64, EngineError> {
            match settings.get(key) {
                None => Ok(default),
                Some(s) => match s.parse::<u64>() {
                    Ok(v) if v >= min => Ok(v),
                    _ => Err(bad(key, format!("`{s}` is not an integer >= {min}"))),
                },
            }
        };
        Ok(Self {
            preset,
            precision,
            weights,
            seed: int("seed", 0, 0)?,
            max_batch: int("max_batch", 16, 1)? as usize,
            model_dirs,
        })
    }
}

struct Loaded {
    engine: Engine,
    info: TargetInfo,
}

/// The embedded CPU engine as a target.
pub struct LocalCpuBackend {
    config: LocalCpuConfig,
    loaded: OnceLock<Arc<Loaded>>,
    settings: BTreeMap<String, String>,
}

impl LocalCpuBackend {
    /// A target with `config`; `settings` are the spec's settings, echoed in reports.
    pub fn new(config: LocalCpuConfig, settings: BTreeMap<String, String>) -> Self {
        Self {
            config,
            loaded: OnceLock::new(),
            settings,
        }
    }

    /// Loads the weights the config asks for (blocking; seconds).
    pub fn load(config: &LocalCpuConfig) -> Result<(CpuModel, WeightsInfo), EngineError> {
        let p = config.preset;
        let file = match &config.weights {
            WeightsChoice::File(f) => Some(f.clone()),
            WeightsChoice::Synthetic => None,
            WeightsChoice::Auto => weights::find_gguf(&config.model_dirs, p, config.precision),
            WeightsChoice::Gguf => Some(
                weights::find_gguf(&config.model_dirs, p, config.precision).ok_or_else(|| {
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
        let (w, info) = match file {
            Some(path) => {
                let w = weights::load_gguf(&path, p)?;
                if let Some(want) = config.precision
                    && w.precision != want
                {
                    return Err(EngineError::ModelFile {
                        path: path.display().to_string(),
                        reason: format!(
                            "holds {} weights, precision={want} was asked for",
                            w.precision
                        ),
                    });
                }
                let info = WeightsInfo {
                    source: WeightsSource::Gguf,
                    path: Some(path.display().to_string()),
                    sha256: w.sha256.clone(),
                    seed: None,
                    bytes: w.bytes,
                };
                (w, info)
            }
            None => {
                let w = weights::synthetic(
                    p,
                    config.precision.unwrap_or(Precision::Q4_1),
                    config.seed,
                )?;
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
        Ok((CpuModel::new(p.clone(), w)?, info))
    }

    fn loaded(&self) -> Result<&Arc<Loaded>, BackendError> {
        self.loaded.get().ok_or_else(|| {
            BackendError::new(ErrorClass::Other, "local-cpu target used before prepare()")
        })
    }

    fn info(&self, precision: String, weights: Option<WeightsInfo>) -> TargetInfo {
        let mut settings = self.settings.clone();
        settings.remove("model");
        settings.remove("precision");
        settings.insert("max_batch".into(), self.config.max_batch.to_string());
        TargetInfo {
            kind: "local-cpu".into(),
            model: self.config.preset.name.into(),
            precision,
            context_limit_tokens: Some(self.config.preset.context as u32),
            weights,
            settings,
        }
    }
}

#[async_trait]
impl Backend for LocalCpuBackend {
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
        let config = self.config.clone();
        let (model, weights) = tokio::task::spawn_blocking(move || Self::load(&config))
            .await
            .map_err(|e| PrepareError::Failed(format!("loading the model: {e}")))?
            .map_err(|e| match e {
                EngineError::Tensor(_) | EngineError::Stopped => {
                    PrepareError::Failed(e.to_string())
                }
                _ => PrepareError::Config(e.to_string()),
            })?;
        let info = self.info(model.weights().precision.to_string(), Some(weights));
        let engine = Engine::start(model, self.config.max_batch);
        let _ = self.loaded.set(Arc::new(Loaded { engine, info }));
        Ok(())
    }

    async fn generate(
        &self,
        req: &Request,
        sink: &mut dyn StreamSink,
    ) -> Result<Completion, BackendError> {
        let loaded = self.loaded()?;
        let prompt = req.prompt_token_ids();
        let limit = self.config.preset.context;
        if prompt.is_empty()
            || req.max_output_tokens == 0
            || prompt.len() + req.max_output_tokens as usize > limit
        {
            return Err(BackendError::new(
                ErrorClass::Other,
                format!(
                    "{} input + {} output tokens do not fit the context of {limit}",
                    prompt.len(),
                    req.max_output_tokens
                ),
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
        while (out.len() as u32) < req.max_output_tokens {
            match rx.recv().await {
                Some(Event::Token { at, id }) => {
                    sink.on_tokens_at(at, 1);
                    out.push(id);
                }
                Some(Event::Failed(msg)) => return Err(BackendError::new(ErrorClass::Other, msg)),
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
        }
        Ok(Completion {
            input_tokens,
            input_source: TokenSource::Engine,
            output_tokens: out.len() as u32,
            output_source: TokenSource::Engine,
            finish: FinishReason::Length,
            output_token_ids: Some(out),
        })
    }
}
