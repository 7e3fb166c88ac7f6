//! The decoder forward pass over a step: the tokens of many sequences (prompt chunks
//! and single decode tokens together) go through every matrix as one batch; attention
//! is per sequence over the paged KV cache. Dense (SwiGLU MLP) and mixture-of-experts
//! layers, grouped-query attention, optional QK-norm, RoPE with scaling.

use crate::EngineError;
use crate::config::ModelConfig;
use crate::format::Precision;
use crate::ops::{AttnSeq, DeviceOps, ExpertWeights, KvLayout};
use crate::weights::{HostFfn, HostMlp, HostWeights};

enum Ffn<D: DeviceOps> {
    Dense(ExpertWeights<D::Weight>),
    Moe {
        router: D::Weight,
        experts: Vec<ExpertWeights<D::Weight>>,
    },
}

struct Layer<D: DeviceOps> {
    attn_norm: D::Table,
    wq: D::Weight,
    wk: D::Weight,
    wv: D::Weight,
    wo: D::Weight,
    qk_norm: Option<(D::Table, D::Table)>,
    ffn_norm: D::Table,
    ffn: Ffn<D>,
}

/// What one decode step of a model reads of its matrices, as the device holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldBytes {
    /// Matrices every step reads whatever the batch: attention, dense MLPs, routers,
    /// the output head.
    pub shared: u64,
    /// One expert's three matrices in one layer (0 for a dense model).
    pub per_expert: u64,
}

/// One sequence's part of a step.
#[derive(Clone, Debug)]
pub struct StepSeq<'a> {
    /// Tokens to run (a prompt chunk, or the last generated token).
    pub tokens: &'a [u32],
    /// Position of the first of them.
    pub start: usize,
    /// The sequence's block table, covering `start + tokens.len()` positions.
    pub blocks: &'a [u32],
    /// Whether the step must produce the next token after these (the last prompt chunk
    /// and every decode step; not an intermediate prompt chunk).
    pub sample: bool,
}

/// A model on a device.
pub struct Model<D: DeviceOps> {
    /// Shape.
    pub config: ModelConfig,
    /// The device.
    pub ops: D,
    embed: D::Table,
    layers: Vec<Layer<D>>,
    norm: D::Table,
    lm_head: D::Weight,
    rope: (D::Table, D::Table),
    /// Format of the layer matrices.
    pub precision: Precision,
    /// Bytes the device holds for the weights.
    pub device_bytes: u64,
}

impl<D: DeviceOps> Model<D> {
    /// Uploads host weights to the device.
    pub fn new(ops: D, config: ModelConfig, host: HostWeights) -> Result<Self, EngineError> {
        let mut bytes = 0u64;
        let mut weight = |m: &crate::weights::HostMatrix| -> Result<D::Weight, EngineError> {
            let w = ops.weight(m.clone())?;
            bytes += ops.weight_bytes(&w);
            Ok(w)
        };
        let mlp = |m: &HostMlp,
                   weight: &mut dyn FnMut(
            &crate::weights::HostMatrix,
        ) -> Result<D::Weight, EngineError>|
         -> Result<ExpertWeights<D::Weight>, EngineError> {
            Ok(ExpertWeights {
                gate: weight(&m.gate)?,
                up: weight(&m.up)?,
                down: weight(&m.down)?,
            })
        };
        let vec = |v: &[f32]| ops.table(v.to_vec(), 1, v.len());
        let mut layers = Vec::with_capacity(host.layers.len());
        for l in &host.layers {
            let ffn = match &l.ffn {
                HostFfn::Dense(m) => Ffn::Dense(mlp(m, &mut weight)?),
                HostFfn::Moe { router, experts } => Ffn::Moe {
                    router: weight(router)?,
                    experts: experts
                        .iter()
                        .map(|e| mlp(e, &mut weight))
                        .collect::<Result<_, _>>()?,
                },
            };
            layers.push(Layer {
                attn_norm: vec(&l.attn_norm)?,
                wq: weight(&l.wq)?,
                wk: weight(&l.wk)?,
                wv: weight(&l.wv)?,
                wo: weight(&l.wo)?,
                qk_norm: match &l.qk_norm {
                    Some((q, k)) => Some((vec(q)?, vec(k)?)),
                    None => None,
                },
                ffn_norm: vec(&l.ffn_norm)?,
                ffn,
            });
        }
        let lm_head = weight(&host.lm_head)?;
        let embed_f32 = host
            .embed
            .dequantize(&candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        bytes += embed_f32.len() as u64 * 4;
        let embed = ops.table(embed_f32, config.vocab, config.hidden)?;
        let inv = config.rope_inv_freq();
        let half = inv.len();
        let mut cos = Vec::with_capacity(config.context * half);
        let mut sin = Vec::with_capacity(config.context * half);
        for pos in 0..config.context {
            for f in &inv {
                let a = pos as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let rope = (
            ops.table(cos, config.context, half)?,
            ops.table(sin, config.context, half)?,
        );
        Ok(Self {
            norm: vec(&host.norm)?,
            embed,
            layers,
            lm_head,
            rope,
            precision: host.precision,
            device_bytes: bytes,
            config,
            ops,
        })
    }

    /// A KV layout of `blocks` blocks of `block_size` tokens for this model.
    pub fn kv_layout(&self, blocks: usize, block_size: usize) -> KvLayout {
        KvLayout {
            layers: self.config.layers,
            blocks,
            block_size,
            kv_heads: self.config.kv_heads,
            head_dim: self.config.head_dim,
        }
    }

    /// Runs a step; returns the final hidden state of each sampling sequence's last
    /// token `[sampling seqs, hidden]` (with `every_row`, of each of its tokens), or
    /// `None` when no sequence samples.
    fn forward(
        &self,
        kv: &mut D::Kv,
        layout: &KvLayout,
        seqs: &[StepSeq<'_>],
        every_row: bool,
    ) -> Result<Option<D::Act>, EngineError> {
        let c = &self.config;
        let ops = &self.ops;
        let eps = c.rms_eps as f32;
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut slots = Vec::new();
        let mut attn = Vec::with_capacity(seqs.len());
        let mut last_rows = Vec::new();
        for s in seqs {
            if s.tokens.is_empty()
                || (s.start + s.tokens.len()).div_ceil(layout.block_size) > s.blocks.len()
                || s.start + s.tokens.len() > c.context
            {
                return Err(EngineError::Tensor(format!(
                    "step of {} tokens at {} with {} blocks",
                    s.tokens.len(),
                    s.start,
                    s.blocks.len()
                )));
            }
            if let Some(bad) = s.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(EngineError::Tensor(format!(
                    "token id {bad} outside the vocabulary of {}",
                    c.vocab
                )));
            }
            let first = ids.len();
            ids.extend_from_slice(s.tokens);
            for (i, _) in s.tokens.iter().enumerate() {
                let p = s.start + i;
                positions.push(p as u32);
                slots.push(layout.slot(s.blocks, p) as u32);
            }
            attn.push(AttnSeq {
                rows: first..ids.len(),
                start: s.start,
                blocks: s.blocks,
            });
            if s.sample && every_row {
                last_rows.extend(first as u32..ids.len() as u32);
            } else if s.sample {
                last_rows.push((ids.len() - 1) as u32);
            }
        }
        let mut x = ops.embed(&self.embed, &ids)?;
        for (li, l) in self.layers.iter().enumerate() {
            let h = ops.rms_norm(&x, &l.attn_norm, eps, c.hidden)?;
            let [mut q, mut k, v] = exact(ops.matmul_many(&h, &[&l.wq, &l.wk, &l.wv])?)?;
            if let Some((qn, kn)) = &l.qk_norm {
                q = ops.rms_norm(&q, qn, eps, c.head_dim)?;
                k = ops.rms_norm(&k, kn, eps, c.head_dim)?;
            }
            let q = ops.rope(&q, c.head_dim, &positions, &self.rope, c.rope_style)?;
            let k = ops.rope(&k, c.head_dim, &positions, &self.rope, c.rope_style)?;
            ops.kv_write(kv, li, &k, &v, &slots)?;
            let o = ops.attention(kv, li, &q, c.heads, &attn)?;
            x = ops.add(&x, &ops.matmul(&o, &l.wo)?)?;
            let h = ops.rms_norm(&x, &l.ffn_norm, eps, c.hidden)?;
            let f = match &l.ffn {
                Ffn::Dense(m) => {
                    let g = ops.gate_up_silu(&h, &m.gate, &m.up)?;
                    ops.matmul(&g, &m.down)?
                }
                Ffn::Moe { router, experts } => {
                    let moe = c.moe().ok_or_else(|| {
                        EngineError::Tensor("MoE weights for a dense config".into())
                    })?;
                    let logits = ops.matmul(&h, router)?;
                    ops.moe_ffn(&h, &logits, (moe.top_k, moe.norm_topk_prob), experts)?
                }
            };
            x = ops.add(&x, &f)?;
        }
        if last_rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(ops.select_rows(&x, &last_rows)?))
    }

    /// The bytes of its matrices as the device holds them (a GGUF may store some
    /// matrices, such as the embedding, in another format than the layers).
    pub fn held_bytes(&self) -> HeldBytes {
        let w = |x: &D::Weight| self.ops.weight_bytes(x);
        let mut shared = w(&self.lm_head);
        let mut per_expert = 0;
        for l in &self.layers {
            shared += w(&l.wq) + w(&l.wk) + w(&l.wv) + w(&l.wo);
            match &l.ffn {
                Ffn::Dense(m) => shared += w(&m.gate) + w(&m.up) + w(&m.down),
                Ffn::Moe { router, experts } => {
                    shared += w(router);
                    if let Some(e) = experts.first() {
                        per_expert = w(&e.gate) + w(&e.up) + w(&e.down);
                    }
                }
            }
        }
        HeldBytes { shared, per_expert }
    }

    /// Logits of hidden states `[rows, hidden]`.
    fn logits(&self, x: &D::Act) -> Result<D::Act, EngineError> {
        let h = self.ops.rms_norm(
            x,
            &self.norm,
            self.config.rms_eps as f32,
            self.config.hidden,
        )?;
        self.ops.matmul(&h, &self.lm_head)
    }

    /// Runs a step and returns the greedy next token of each sampling sequence, in
    /// order.
    pub fn step(
        &self,
        kv: &mut D::Kv,
        layout: &KvLayout,
        seqs: &[StepSeq<'_>],
    ) -> Result<Vec<u32>, EngineError> {
        self.step_with(kv, layout, seqs, false, |logits| self.ops.argmax(logits))
    }

    /// Runs a step and returns the logits of each sampling sequence, row-major
    /// `[sampling seqs, vocab]` (for comparisons with reference engines).
    pub fn step_logits(
        &self,
        kv: &mut D::Kv,
        layout: &KvLayout,
        seqs: &[StepSeq<'_>],
    ) -> Result<Vec<f32>, EngineError> {
        self.step_with(kv, layout, seqs, false, |logits| self.ops.to_host(logits))
    }

    /// Runs a step and returns the logits after every token of each sampling
    /// sequence, row-major `[its tokens, vocab]` in order (teacher forcing a whole
    /// text in one pass).
    pub fn step_logits_every_row(
        &self,
        kv: &mut D::Kv,
        layout: &KvLayout,
        seqs: &[StepSeq<'_>],
    ) -> Result<Vec<f32>, EngineError> {
        self.step_with(kv, layout, seqs, true, |logits| self.ops.to_host(logits))
    }

    /// Runs a step inside the device's scope and reads the sampling sequences'
    /// logits with `read` (nothing when no sequence samples).
    fn step_with<T: Send>(
        &self,
        kv: &mut D::Kv,
        layout: &KvLayout,
        seqs: &[StepSeq<'_>],
        every_row: bool,
        read: impl FnOnce(&D::Act) -> Result<Vec<T>, EngineError> + Send,
    ) -> Result<Vec<T>, EngineError> {
        self.ops
            .scope(|| match self.forward(kv, layout, seqs, every_row)? {
                Some(x) => read(&self.logits(&x)?),
                None => Ok(Vec::new()),
            })
    }
}

/// The `N` results of a `matmul_many` as an array.
fn exact<A, const N: usize>(v: Vec<A>) -> Result<[A; N], EngineError> {
    v.try_into()
        .map_err(|_| EngineError::Tensor(format!("matmul_many gave other than {N} results")))
}
