//! Model weights: read from a GGUF file (checked against the preset's shape) or
//! generated from a seed for the preset's shape and quantized on load.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::preset::{ModelPreset, Precision};
use workloads::spec::hex;

/// A weight matrix [out, in]: quantized for decode (GEMV, bandwidth bound), plus an
/// exact f32 dequantization for prompt chunks of [`Linear::DENSE_MIN_ROWS`] rows or
/// more, where a dense GEMM is several times faster on the CPU than row-by-row
/// quantized dot products.
pub struct Linear {
    q: QMatMul,
    dense_t: Tensor,
}

impl Linear {
    /// Rows from which the dense path is used. Measured on 2 cores with SmolLM2 Q4_1
    /// (`examples/engine_speed`): at 4 rows dense decode was slower (47 vs 63 tok/s),
    /// from prompt chunks of 16+ rows dense GEMM is 3-4x faster.
    pub const DENSE_MIN_ROWS: usize = 16;

    /// Wraps a quantized matrix.
    pub fn new(t: QTensor) -> Result<Self, EngineError> {
        let dense_t = t.dequantize(&Device::Cpu)?.t()?.contiguous()?;
        Ok(Self {
            q: QMatMul::from_qtensor(t)?,
            dense_t,
        })
    }

    /// `x` [rows, in] times the matrix transposed: [rows, out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        if x.dim(0)? >= Self::DENSE_MIN_ROWS {
            Ok(x.matmul(&self.dense_t)?)
        } else {
            Ok(candle_core::Module::forward(&self.q, x)?)
        }
    }
}

/// One decoder layer's weights.
pub struct LayerWeights {
    /// RMSNorm before attention.
    pub attn_norm: Tensor,
    /// Query projection [heads*head_dim, hidden].
    pub wq: Linear,
    /// Key projection [kv_heads*head_dim, hidden].
    pub wk: Linear,
    /// Value projection.
    pub wv: Linear,
    /// Attention output projection.
    pub wo: Linear,
    /// RMSNorm before the MLP.
    pub ffn_norm: Tensor,
    /// MLP gate projection.
    pub w_gate: Linear,
    /// MLP up projection.
    pub w_up: Linear,
    /// MLP down projection.
    pub w_down: Linear,
}

/// Every weight of a model, ready to run.
pub struct ModelWeights {
    /// Token embedding [vocab, hidden], f32.
    pub embed: Tensor,
    /// Decoder layers.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm.
    pub norm: Tensor,
    /// Output projection [vocab, hidden].
    pub lm_head: QMatMul,
    /// Precision of the layer matrices.
    pub precision: Precision,
    /// Bytes of weights as stored (quantized).
    pub bytes: u64,
    /// SHA-256 of the file (GGUF) or of the generated quantized bytes (synthetic).
    pub sha256: String,
}

fn file_err(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::ModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Header facts of a GGUF file, read without loading tensors.
pub struct GgufHeader {
    content: gguf_file::Content,
}

impl GgufHeader {
    /// Reads and checks a GGUF header.
    pub fn read(path: &Path) -> Result<Self, EngineError> {
        let file = File::open(path).map_err(|e| file_err(path, e.to_string()))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            if first.contains("magic") {
                file_err(path, "not a GGUF file (bad magic)")
            } else {
                file_err(path, format!("not a readable GGUF file: {first}"))
            }
        })?;
        Ok(Self { content })
    }

    fn meta_u64(&self, key: &str) -> Option<u64> {
        self.content
            .metadata
            .get(key)
            .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
    }

    /// Checks that the file is a Llama-architecture model of the preset's shape.
    pub fn check_shape(&self, path: &Path, p: &ModelPreset) -> Result<(), EngineError> {
        let arch = self
            .content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok());
        if arch.map(String::as_str) != Some("llama") {
            return Err(file_err(
                path,
                format!("architecture {arch:?} is not llama"),
            ));
        }
        let checks = [
            ("llama.block_count", p.layers),
            ("llama.embedding_length", p.hidden),
            ("llama.feed_forward_length", p.intermediate),
            ("llama.attention.head_count", p.heads),
            ("llama.attention.head_count_kv", p.kv_heads),
        ];
        for (key, want) in checks {
            match self.meta_u64(key) {
                Some(got) if got == want as u64 => {}
                got => {
                    return Err(file_err(
                        path,
                        format!("{key} is {got:?}, preset {} needs {want}", p.name),
                    ));
                }
            }
        }
        match self.content.tensor_infos.get("token_embd.weight") {
            Some(t) if t.shape.dims() == [p.vocab, p.hidden] => Ok(()),
            Some(t) => Err(file_err(
                path,
                format!(
                    "token_embd.weight has shape {:?}, preset needs [{}, {}]",
                    t.shape.dims(),
                    p.vocab,
                    p.hidden
                ),
            )),
            None => Err(file_err(path, "tensor token_embd.weight is missing")),
        }
    }

    /// The precision of the layer matrices (that of `blk.0.attn_q.weight`).
    pub fn precision(&self) -> Option<Precision> {
        self.content
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .and_then(|t| Precision::from_ggml(t.ggml_dtype))
    }
}

/// Finds a GGUF file of the preset's shape at the given precision (any precision when
/// `None`) in `dirs`, in order.
pub fn find_gguf(
    dirs: &[PathBuf],
    p: &ModelPreset,
    precision: Option<Precision>,
) -> Option<PathBuf> {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        files.sort();
        for f in files {
            let Ok(h) = GgufHeader::read(&f) else {
                continue;
            };
            if h.check_shape(&f, p).is_ok()
                && precision.is_none_or(|want| h.precision() == Some(want))
            {
                return Some(f);
            }
        }
    }
    None
}

/// Loads a GGUF file of the preset's shape.
pub fn load_gguf(path: &Path, p: &ModelPreset) -> Result<ModelWeights, EngineError> {
    let header = GgufHeader::read(path)?;
    header.check_shape(path, p)?;
    let precision = header.precision().ok_or_else(|| {
        file_err(
            path,
            "blk.0.attn_q.weight is missing or of an unsupported type",
        )
    })?;
    let file = File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut reader = BufReader::new(file);
    let dev = Device::Cpu;
    let mut bytes = 0u64;
    let mut q = |name: &str| -> Result<QTensor, EngineError> {
        let t = header
            .content
            .tensor(&mut reader, name, &dev)
            .map_err(|e| {
                file_err(
                    path,
                    format!(
                        "tensor {name}: {}",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                )
            })?;
        bytes += t.storage_size_in_bytes() as u64;
        Ok(t)
    };
    let embed_q = q("token_embd.weight")?;
    let embed = embed_q.dequantize(&dev)?;
    let mut layers = Vec::with_capacity(p.layers);
    for i in 0..p.layers {
        let mm = Linear::new;
        layers.push(LayerWeights {
            attn_norm: q(&format!("blk.{i}.attn_norm.weight"))?.dequantize(&dev)?,
            wq: mm(q(&format!("blk.{i}.attn_q.weight"))?)?,
            wk: mm(q(&format!("blk.{i}.attn_k.weight"))?)?,
            wv: mm(q(&format!("blk.{i}.attn_v.weight"))?)?,
            wo: mm(q(&format!("blk.{i}.attn_output.weight"))?)?,
            ffn_norm: q(&format!("blk.{i}.ffn_norm.weight"))?.dequantize(&dev)?,
            w_gate: mm(q(&format!("blk.{i}.ffn_gate.weight"))?)?,
            w_up: mm(q(&format!("blk.{i}.ffn_up.weight"))?)?,
            w_down: mm(q(&format!("blk.{i}.ffn_down.weight"))?)?,
        });
    }
    let norm = q("output_norm.weight")?.dequantize(&dev)?;
    let lm_head = if header.content.tensor_infos.contains_key("output.weight") {
        QMatMul::from_qtensor(q("output.weight")?)?
    } else {
        QMatMul::from_qtensor(embed_q)?
    };
    let sha256 = sha256_file(path)?;
    Ok(ModelWeights {
        embed,
        layers,
        norm,
        lm_head,
        precision,
        bytes,
        sha256,
    })
}

fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let mut f = File::open(path).map_err(|e| file_err(path, e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| file_err(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Generates weights for the preset's shape from `seed`: matrices drawn from
/// N(0, 0.02) (output projections scaled by 1/sqrt(2 layers), as in GPT-2's
/// initialisation) and quantized to `precision`; norms are ones.
pub fn synthetic(
    p: &ModelPreset,
    precision: Precision,
    seed: u64,
) -> Result<ModelWeights, EngineError> {
    let dev = Device::Cpu;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut index = 0u64;
    let mut matrix =
        |rows: usize, cols: usize, std: f32, dtype: GgmlDType| -> Result<QTensor, EngineError> {
            index += 1;
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let normal = Normal::new(0.0f32, std).expect("std > 0");
            let data: Vec<f32> = (0..rows * cols).map(|_| normal.sample(&mut rng)).collect();
            let t = Tensor::from_vec(data, (rows, cols), &dev)?;
            let q = QTensor::quantize(&t, dtype)?;
            let raw = q.data()?;
            hasher.update(&raw);
            bytes += raw.len() as u64;
            Ok(q)
        };
    let dt = precision.ggml();
    let (h, i, kv) = (p.hidden, p.intermediate, p.kv_heads * p.head_dim());
    let out_std = 0.02 / (2.0 * p.layers as f32).sqrt();
    let embed_q = matrix(p.vocab, h, 0.02, dt)?;
    let embed = embed_q.dequantize(&dev)?;
    let ones = Tensor::ones(h, candle_core::DType::F32, &dev)?;
    let mut layers = Vec::with_capacity(p.layers);
    for _ in 0..p.layers {
        let mut mm = |r, c, s| -> Result<Linear, EngineError> { Linear::new(matrix(r, c, s, dt)?) };
        layers.push(LayerWeights {
            attn_norm: ones.clone(),
            wq: mm(p.heads * p.head_dim(), h, 0.02)?,
            wk: mm(kv, h, 0.02)?,
            wv: mm(kv, h, 0.02)?,
            wo: mm(h, p.heads * p.head_dim(), out_std)?,
            ffn_norm: ones.clone(),
            w_gate: mm(i, h, 0.02)?,
            w_up: mm(i, h, 0.02)?,
            w_down: mm(h, i, out_std)?,
        });
    }
    let lm_head = if p.tied_embeddings {
        QMatMul::from_qtensor(embed_q)?
    } else {
        QMatMul::from_qtensor(matrix(p.vocab, h, 0.02, dt)?)?
    };
    hasher.update(seed.to_le_bytes());
    Ok(ModelWeights {
        embed,
        layers,
        norm: ones,
        lm_head,
        precision,
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}
