//! A Llama-architecture decoder on candle-core's CPU device: RMSNorm, RoPE (GGUF's
//! interleaved layout), grouped-query attention over a per-sequence KV cache, and a
//! SwiGLU MLP. Prefill runs one sequence's prompt at once; decode runs one token of
//! each of many sequences as one batch through every matrix.

use candle_core::{D, DType, Device, Module, Tensor};

use crate::EngineError;
use crate::preset::ModelPreset;
use crate::weights::ModelWeights;

/// One sequence's key/value cache: per layer, keys and values [kv_heads, capacity,
/// head_dim], preallocated for the sequence's whole length (prompt + output).
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Tokens stored.
    pub len: usize,
    /// Tokens it can hold.
    pub capacity: usize,
}

/// A loaded model ready to run on the CPU.
pub struct CpuModel {
    /// Shape.
    pub preset: ModelPreset,
    w: ModelWeights,
    cos: Tensor,
    sin: Tensor,
    dev: Device,
}

impl CpuModel {
    /// Wraps loaded weights and precomputes RoPE tables for the whole context.
    pub fn new(preset: ModelPreset, w: ModelWeights) -> Result<Self, EngineError> {
        let dev = Device::Cpu;
        let half = preset.head_dim() / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / preset
                    .rope_theta
                    .powf(2.0 * i as f32 / preset.head_dim() as f32)
            })
            .collect();
        let mut angles = Vec::with_capacity(preset.context * half);
        for pos in 0..preset.context {
            angles.extend(inv.iter().map(|f| pos as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (preset.context, half), &dev)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
            preset,
            w,
            dev,
        })
    }

    /// The weights.
    pub fn weights(&self) -> &ModelWeights {
        &self.w
    }

    /// An empty cache for a sequence of up to `capacity` tokens.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache, EngineError> {
        let p = &self.preset;
        let shape = (p.kv_heads, capacity, p.head_dim());
        let mut k = Vec::with_capacity(p.layers);
        let mut v = Vec::with_capacity(p.layers);
        for _ in 0..p.layers {
            k.push(Tensor::zeros(shape, DType::F32, &self.dev)?);
            v.push(Tensor::zeros(shape, DType::F32, &self.dev)?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity,
        })
    }

    /// Attention of `q` [kv_heads, group*t, head_dim] (query heads grouped by the KV
    /// head they share) over the first `len` cached positions; `mask` hides future
    /// positions during prefill.
    fn attend(
        &self,
        q: &Tensor,
        cache: &KvCache,
        layer: usize,
        len: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, EngineError> {
        let scale = 1.0 / (self.preset.head_dim() as f64).sqrt();
        let keys = cache.k[layer].narrow(1, 0, len)?;
        let vals = cache.v[layer].narrow(1, 0, len)?;
        let mut scores = (q.matmul(&keys.t()?)? * scale)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        Ok(probs.matmul(&vals)?)
    }

    fn mlp(&self, layer: usize, x: &Tensor) -> Result<Tensor, EngineError> {
        let l = &self.w.layers[layer];
        let h = candle_nn::ops::rms_norm(x, &l.ffn_norm, self.preset.rms_eps as f32)?;
        let gate = candle_nn::ops::silu(&l.w_gate.forward(&h)?)?;
        let up = l.w_up.forward(&h)?;
        Ok((x + l.w_down.forward(&(gate * up)?)?)?)
    }

    /// Runs `tokens` (a prompt or a prompt chunk) through the model for one sequence,
    /// appending to its cache; returns the greedy next token.
    pub fn prefill(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<u32, EngineError> {
        let last = self.prefill_hidden(cache, tokens)?;
        Ok(self.greedy(&last)?[0])
    }

    /// Like [`CpuModel::prefill`], but returns the logits of the last position (for
    /// comparisons with reference engines).
    pub fn prefill_logits(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
    ) -> Result<Vec<f32>, EngineError> {
        let last = self.prefill_hidden(cache, tokens)?;
        Ok(self.logits(&last)?.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// Runs `tokens` through every layer, appending to the cache; returns the hidden
    /// state of the last position [1, hidden].
    fn prefill_hidden(&self, cache: &mut KvCache, tokens: &[u32]) -> Result<Tensor, EngineError> {
        let p = &self.preset;
        let (t, start) = (tokens.len(), cache.len);
        if t == 0 || start + t > cache.capacity {
            return Err(EngineError::Tensor(format!(
                "prefill of {t} tokens at {start} exceeds capacity {}",
                cache.capacity
            )));
        }
        let (hd, kvh, g) = (p.head_dim(), p.kv_heads, p.heads / p.kv_heads);
        let ids = Tensor::new(tokens, &self.dev)?;
        let mut x = self.w.embed.index_select(&ids, 0)?;
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        // Row (group g, token i) may see positions <= start + i.
        let total = start + t;
        let mask: Vec<f32> = (0..g * t)
            .flat_map(|row| {
                let i = row % t;
                (0..total).map(move |s| {
                    if s <= start + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (g * t, total), &self.dev)?;
        for (li, l) in self.w.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &l.attn_norm, p.rms_eps as f32)?;
            let q =
                l.wq.forward(&h)?
                    .reshape((1, t, p.heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?;
            let k =
                l.wk.forward(&h)?
                    .reshape((1, t, kvh, hd))?
                    .transpose(1, 2)?
                    .contiguous()?;
            let v =
                l.wv.forward(&h)?
                    .reshape((t, kvh, hd))?
                    .transpose(0, 1)?
                    .contiguous()?;
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
            cache.k[li].slice_set(&k.squeeze(0)?, 1, start)?;
            cache.v[li].slice_set(&v, 1, start)?;
            let q = q.reshape((kvh, g * t, hd))?;
            let o = self.attend(&q, cache, li, total, Some(&mask))?;
            let o = o
                .reshape((p.heads, t, hd))?
                .transpose(0, 1)?
                .reshape((t, p.heads * hd))?;
            x = (x + l.wo.forward(&o)?)?;
            x = self.mlp(li, &x)?;
        }
        cache.len = total;
        Ok(x.narrow(0, t - 1, 1)?)
    }

    /// Runs one token for each sequence as one batch; returns each one's greedy next
    /// token.
    pub fn decode(
        &self,
        caches: &mut [&mut KvCache],
        tokens: &[u32],
    ) -> Result<Vec<u32>, EngineError> {
        let p = &self.preset;
        let b = tokens.len();
        if b == 0 || b != caches.len() {
            return Err(EngineError::Tensor(format!(
                "decode of {b} tokens for {} caches",
                caches.len()
            )));
        }
        if let Some(c) = caches.iter().find(|c| c.len >= c.capacity) {
            return Err(EngineError::Tensor(format!(
                "decode past capacity {}",
                c.capacity
            )));
        }
        let (hd, kvh, g) = (p.head_dim(), p.kv_heads, p.heads / p.kv_heads);
        let positions: Vec<u32> = caches.iter().map(|c| c.len as u32).collect();
        let pos = Tensor::new(positions.as_slice(), &self.dev)?;
        let cos = self.cos.index_select(&pos, 0)?.reshape((b, 1, hd / 2))?;
        let sin = self.sin.index_select(&pos, 0)?.reshape((b, 1, hd / 2))?;
        let ids = Tensor::new(tokens, &self.dev)?;
        let mut x = self.w.embed.index_select(&ids, 0)?;
        for (li, l) in self.w.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &l.attn_norm, p.rms_eps as f32)?;
            let q = l.wq.forward(&h)?.reshape((b, p.heads, 1, hd))?;
            let k = l.wk.forward(&h)?.reshape((b, kvh, 1, hd))?;
            let v = l.wv.forward(&h)?.reshape((b, kvh, 1, hd))?;
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
            let mut outs = Vec::with_capacity(b);
            for (i, cache) in caches.iter_mut().enumerate() {
                let at = cache.len;
                cache.k[li].slice_set(&k.get(i)?, 1, at)?;
                cache.v[li].slice_set(&v.get(i)?, 1, at)?;
                let qi = q.get(i)?.reshape((kvh, g, hd))?;
                outs.push(
                    self.attend(&qi, cache, li, at + 1, None)?
                        .reshape((1, p.heads * hd))?,
                );
            }
            let o = Tensor::cat(&outs, 0)?;
            x = (x + l.wo.forward(&o)?)?;
            x = self.mlp(li, &x)?;
        }
        for c in caches.iter_mut() {
            c.len += 1;
        }
        self.greedy(&x)
    }

    /// Final norm and output projection of each row of `x` [rows, hidden].
    fn logits(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        let h = candle_nn::ops::rms_norm(x, &self.w.norm, self.preset.rms_eps as f32)?;
        Ok(self.w.lm_head.forward(&h)?)
    }

    /// Argmax of each row's logits.
    fn greedy(&self, x: &Tensor) -> Result<Vec<u32>, EngineError> {
        Ok(self.logits(x)?.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }
}
