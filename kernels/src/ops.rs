//! The device op set: the seam between the device-neutral runtime (model forward,
//! KV-cache manager, scheduler) and a device. The CPU implements it on candle-core
//! (`CpuOps`, in `cpu`); the CUDA path implements the same ops with its own
//! kernels. Keep it small: every op here is a kernel someone must write per device.
//!
//! Activations are row-major `[rows, cols]` matrices of f32 semantics (a device may
//! store them narrower). A step's rows are the tokens of every sequence in the step,
//! sequence after sequence.
//!
//! | op | shape |
//! |---|---|
//! | `embed` | ids `[T]` -> `[T, hidden]` |
//! | `matmul` | `[T, in]` x weight `[out, in]` (any [`Precision`]) -> `[T, out]` |
//! | `rms_norm` | each group of `width` columns normalised, times the weight `[width]` |
//! | `rope` | rotates each head of `[T, heads*head_dim]` at the row's position |
//! | `swiglu` | `silu(gate) * up`, elementwise |
//! | `gate_up_silu` | `silu(x gate^T) * (x up^T)` (default: `matmul_many` then `swiglu`) |
//! | `add` | elementwise |
//! | `kv_write` | K and V rows `[T, kv_heads*head_dim]` into their cache slots |
//! | `attention` | causal GQA of each sequence's query rows over its cached positions (prefill chunks and single-token decode) |
//! | `moe_route` | router logits `[T, E]` -> top-k experts and weights per row |
//! | `expert_dispatch` | each row through its chosen experts' SwiGLU MLPs, weighted sum |
//! | `moe_ffn` | `moe_route` then `expert_dispatch` (a device may route on the device) |
//! | `select_rows`, `argmax`, `to_host` | logits rows, greedy sampling, reads for tests |
//!
//! [`Precision`]: crate::format::Precision

use std::ops::Range;
use std::sync::Arc;

use candle_core::quantized::QTensor;

use crate::EngineError;
use crate::config::RopeStyle;

/// Shape of a paged KV cache: `layers` x `blocks` x `block_size` slots, each slot one
/// token's keys and values `[kv_heads, head_dim]`. Slot `s` lies in block
/// `s / block_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    /// Decoder layers.
    pub layers: usize,
    /// Blocks in the pool.
    pub blocks: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// KV heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
}

impl KvLayout {
    /// Slots (tokens) in the pool.
    pub fn slots(&self) -> usize {
        self.blocks * self.block_size
    }

    /// The slot of position `pos` of a sequence with block table `blocks`.
    pub fn slot(&self, blocks: &[u32], pos: usize) -> usize {
        blocks[pos / self.block_size] as usize * self.block_size + pos % self.block_size
    }
}

/// The element type of a KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDtype {
    /// 32-bit floats (exact against the float references).
    F32,
    /// 16-bit IEEE floats: the default on both devices (half the bytes a decode step
    /// reads; each key and value rounded to 11 significant bits).
    F16,
}

impl KvDtype {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }

    /// Its name in a target's settings (`f16`, `f32`).
    pub fn as_str(self) -> &'static str {
        match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
        }
    }
}

/// One sequence's part of a step's attention.
#[derive(Clone, Debug)]
pub struct AttnSeq<'a> {
    /// Its query rows in the step's activations.
    pub rows: Range<usize>,
    /// Position of its first row; rows see positions `0..=start + i`.
    pub start: usize,
    /// Its block table (covering at least `start + rows.len()` positions).
    pub blocks: &'a [u32],
}

/// Experts chosen for each row: `experts[r*k..(r+1)*k]` with `weights` alike.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// Experts per row.
    pub top_k: usize,
    /// Chosen expert ids, row-major.
    pub experts: Vec<u32>,
    /// Their mixing weights.
    pub weights: Vec<f32>,
}

impl Routing {
    /// Routes every row of row-major `logits` (`cols` experts per row) with
    /// [`route_row`]: the host reference every device shares.
    pub fn from_logits(logits: &[f32], cols: usize, top_k: usize, renormalise: bool) -> Self {
        let rows = logits.len().checked_div(cols).unwrap_or(0);
        let mut experts = Vec::with_capacity(rows * top_k);
        let mut weights = Vec::with_capacity(rows * top_k);
        for row in logits.chunks_exact(cols.max(1)) {
            let (ids, w) = route_row(row, top_k, renormalise);
            experts.extend(ids);
            weights.extend(w);
        }
        Self {
            top_k,
            experts,
            weights,
        }
    }

    /// The rows routed to `expert` and their mixing weights, in row order.
    pub fn rows_of(&self, expert: usize) -> (Vec<u32>, Vec<f32>) {
        let (mut rows, mut weights) = (Vec::new(), Vec::new());
        for (i, (&id, &w)) in self.experts.iter().zip(&self.weights).enumerate() {
            if id as usize == expert {
                rows.push((i / self.top_k) as u32);
                weights.push(w);
            }
        }
        (rows, weights)
    }
}

/// One expert's SwiGLU MLP.
pub struct ExpertWeights<W> {
    /// Gate projection `[intermediate, hidden]`.
    pub gate: W,
    /// Up projection `[intermediate, hidden]`.
    pub up: W,
    /// Down projection `[hidden, intermediate]`.
    pub down: W,
}

/// The ops a device provides to the runtime.
pub trait DeviceOps: Send + Sync + 'static {
    /// Activations `[rows, cols]`.
    type Act: Clone + Send;
    /// A weight matrix `[out, in]` in some [`crate::format::Precision`].
    type Weight: Send + Sync;
    /// A vector of f32 (norm weights) or a table (embedding, RoPE).
    type Table: Send + Sync;
    /// A paged KV cache.
    type Kv: Send;

    /// Device name for reports.
    fn name(&self) -> &'static str;
    /// Runs one step's work `f` in the device's execution context. The CPU runs it on
    /// a worker of its thread pool, so each parallel op inside starts on the calling
    /// worker instead of handing off to the pool and sleeping until it finishes.
    fn scope<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
    /// Waits for the work queued on the device to finish (a GPU's stream; nothing on
    /// the CPU, whose ops return when done). Timing needs it.
    fn synchronize(&self) -> Result<(), EngineError> {
        Ok(())
    }
    /// Uploads a matrix, keeping its format.
    fn weight(&self, host: Arc<QTensor>) -> Result<Self::Weight, EngineError>;
    /// Uploads a row-major table `[rows, cols]` of f32.
    fn table(&self, data: Vec<f32>, rows: usize, cols: usize) -> Result<Self::Table, EngineError>;
    /// Bytes the device holds for a weight.
    fn weight_bytes(&self, w: &Self::Weight) -> u64;

    /// Rows `ids` of an embedding table.
    fn embed(&self, table: &Self::Table, ids: &[u32]) -> Result<Self::Act, EngineError>;
    /// `x [T, in]` times `w [out, in]` transposed.
    fn matmul(&self, x: &Self::Act, w: &Self::Weight) -> Result<Self::Act, EngineError>;
    /// `x` times each of `ws` (q, k and v; gate and up), which a device may run as
    /// one launch; one result per weight, in order.
    fn matmul_many(
        &self,
        x: &Self::Act,
        ws: &[&Self::Weight],
    ) -> Result<Vec<Self::Act>, EngineError> {
        ws.iter().map(|w| self.matmul(x, w)).collect()
    }
    /// RMSNorm of each group of `width` columns, times `weight [width]`.
    fn rms_norm(
        &self,
        x: &Self::Act,
        weight: &Self::Table,
        eps: f32,
        width: usize,
    ) -> Result<Self::Act, EngineError>;
    /// RoPE of `x [T, heads*head_dim]`, row `i` at `positions[i]`, with `cos`/`sin`
    /// tables `[context, head_dim/2]`.
    fn rope(
        &self,
        x: &Self::Act,
        head_dim: usize,
        positions: &[u32],
        cos_sin: &(Self::Table, Self::Table),
        style: RopeStyle,
    ) -> Result<Self::Act, EngineError>;
    /// `silu(gate) * up`.
    fn swiglu(&self, gate: &Self::Act, up: &Self::Act) -> Result<Self::Act, EngineError>;
    /// `silu(x . gate^T) * (x . up^T)`: the first half of a SwiGLU MLP, which a
    /// device may run as one fused launch (the CUDA GEMV does).
    fn gate_up_silu(
        &self,
        x: &Self::Act,
        gate: &Self::Weight,
        up: &Self::Weight,
    ) -> Result<Self::Act, EngineError> {
        let mut gu = self.matmul_many(x, &[gate, up])?;
        match (gu.pop(), gu.pop()) {
            (Some(u), Some(g)) => self.swiglu(&g, &u),
            _ => Err(EngineError::Tensor(
                "matmul_many gave other than 2 results".into(),
            )),
        }
    }
    /// `a + b`.
    fn add(&self, a: &Self::Act, b: &Self::Act) -> Result<Self::Act, EngineError>;

    /// A zeroed paged KV cache.
    fn kv_alloc(&self, layout: KvLayout) -> Result<Self::Kv, EngineError>;
    /// Writes rows of `k` and `v` `[T, kv_heads*head_dim]` into `slots[i]` of `layer`.
    fn kv_write(
        &self,
        kv: &mut Self::Kv,
        layer: usize,
        k: &Self::Act,
        v: &Self::Act,
        slots: &[u32],
    ) -> Result<(), EngineError>;
    /// Causal grouped-query attention of `q [T, heads*head_dim]` for each sequence
    /// over its cached keys and values (written before the call) -> `[T, heads*head_dim]`.
    fn attention(
        &self,
        kv: &Self::Kv,
        layer: usize,
        q: &Self::Act,
        heads: usize,
        seqs: &[AttnSeq<'_>],
    ) -> Result<Self::Act, EngineError>;

    /// Top-k experts of each row of `logits [T, E]`: softmax over all experts, the `k`
    /// largest (ties to the lower id), renormalised to sum to one when `renormalise`.
    fn moe_route(
        &self,
        logits: &Self::Act,
        top_k: usize,
        renormalise: bool,
    ) -> Result<Routing, EngineError>;
    /// Each row of `x` through its routed experts, weighted and summed.
    fn expert_dispatch(
        &self,
        x: &Self::Act,
        routing: &Routing,
        experts: &[ExpertWeights<Self::Weight>],
    ) -> Result<Self::Act, EngineError>;

    /// A MoE feed-forward: routes each row of `logits [T, E]` ([`DeviceOps::moe_route`])
    /// and runs it through its experts ([`DeviceOps::expert_dispatch`]). A device may
    /// keep the routing on the device (the CUDA one does).
    fn moe_ffn(
        &self,
        x: &Self::Act,
        logits: &Self::Act,
        (top_k, renormalise): (usize, bool),
        experts: &[ExpertWeights<Self::Weight>],
    ) -> Result<Self::Act, EngineError> {
        let routing = self.moe_route(logits, top_k, renormalise)?;
        self.expert_dispatch(x, &routing, experts)
    }

    /// Rows `rows` of `x`.
    fn select_rows(&self, x: &Self::Act, rows: &[u32]) -> Result<Self::Act, EngineError>;
    /// Index of the largest value of each row.
    fn argmax(&self, x: &Self::Act) -> Result<Vec<u32>, EngineError>;
    /// Copies `x` to the host, row-major.
    fn to_host(&self, x: &Self::Act) -> Result<Vec<f32>, EngineError>;
}

/// The host reference of [`DeviceOps::moe_route`] for one row: softmax over all
/// experts, top-k (ties to the lower id), optionally renormalised.
pub fn route_row(logits: &[f32], top_k: usize, renormalise: bool) -> (Vec<u32>, Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    // Stable sort: equal probabilities keep the lower id first.
    order.sort_by(|a, b| exp[*b as usize].total_cmp(&exp[*a as usize]));
    order.truncate(top_k);
    let mut w: Vec<f32> = order.iter().map(|&e| exp[e as usize] / sum).collect();
    if renormalise {
        let s: f32 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= s);
    }
    (order, w)
}
