//! Causal grouped-query attention over the paged KV cache on the CPU.
//!
//! One code path for every query row, decode or prompt: keys and values are read in
//! place, block by block (a gather would double the traffic), by work items of
//! (sequence, KV head, up to [`ROWS_PER_ITEM`] query rows), so each key is read once
//! for all the query heads of its group and all the rows of the item. A row's
//! arithmetic (its scores in position order, its softmax, its weighted sum of values
//! in position order) is the same whatever the other rows of the item or the step,
//! so batching, prompt chunking and prefix caching change no bit of its output.

use rayon::prelude::*;

use crate::EngineError;
use crate::ops::{AttnSeq, KvLayout};

/// Query rows of one sequence per work item (prompt chunks are split so both cores
/// get work even for one sequence with few KV heads).
pub const ROWS_PER_ITEM: usize = 16;

/// Keys and values of one layer, slot-major `[slots, kv_heads, head_dim]`.
pub struct LayerKv<'a> {
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
}

/// Dot product with eight independent accumulators (vectorises to one FMA lane set).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out += w * v`.
fn axpy(out: &mut [f32], w: f32, v: &[f32]) {
    for (o, x) in out.iter_mut().zip(v) {
        *o = w.mul_add(*x, *o);
    }
}

/// `(position, slot)` of positions `0..ctx` of a sequence, block by block.
fn slots<'a>(
    layout: &KvLayout,
    blocks: &'a [u32],
    ctx: usize,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let bs = layout.block_size;
    blocks
        .iter()
        .take(ctx.div_ceil(bs))
        .enumerate()
        .flat_map(move |(i, &b)| {
            let first = i * bs;
            (first..(first + bs).min(ctx)).map(move |p| (p, b as usize * bs + p - first))
        })
}

/// Attention of query rows `first..first + t` of sequence `seq` (positions
/// `seq.start + first + i`) for KV head `h`. `q` holds those rows
/// (`[t, heads*head_dim]`); writes `[t, group*head_dim]` (the group's query heads) to
/// `out`.
#[allow(clippy::too_many_arguments)]
fn attend(
    layout: &KvLayout,
    kv: &LayerKv<'_>,
    q: &[f32],
    heads: usize,
    h: usize,
    seq: &AttnSeq<'_>,
    first: usize,
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let group = heads / layout.kv_heads;
    let width = heads * hd;
    let row = layout.kv_heads * hd;
    let t = q.len() / width;
    let pos0 = seq.start + first;
    let ctx = pos0 + t;
    let scale = 1.0 / (hd as f32).sqrt();
    // Row i sees positions 0..=pos0 + i; scores[(i*group + g)*ctx + p].
    let mut scores = vec![0f32; t * group * ctx];
    for (p, slot) in slots(layout, seq.blocks, ctx) {
        let at = slot * row + h * hd;
        let key = &kv.k[at..at + hd];
        for i in p.saturating_sub(pos0)..t {
            for g in 0..group {
                let head = (h * group + g) * hd;
                let qh = &q[i * width + head..i * width + head + hd];
                scores[(i * group + g) * ctx + p] = dot(qh, key) * scale;
            }
        }
    }
    for i in 0..t {
        for g in 0..group {
            let at = (i * group + g) * ctx;
            let s = &mut scores[at..at + pos0 + i + 1];
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for x in s.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            s.iter_mut().for_each(|x| *x /= sum);
        }
    }
    out.fill(0.0);
    for (p, slot) in slots(layout, seq.blocks, ctx) {
        let at = slot * row + h * hd;
        let val = &kv.v[at..at + hd];
        for i in p.saturating_sub(pos0)..t {
            for g in 0..group {
                let o = (i * group + g) * hd;
                axpy(&mut out[o..o + hd], scores[(i * group + g) * ctx + p], val);
            }
        }
    }
}

/// Attention for every sequence of a step; `q` is `[T, heads*head_dim]` row-major.
pub fn attention(
    layout: &KvLayout,
    kv: &LayerKv<'_>,
    q: &[f32],
    heads: usize,
    seqs: &[AttnSeq<'_>],
) -> Result<Vec<f32>, EngineError> {
    let hd = layout.head_dim;
    let width = heads * hd;
    if layout.kv_heads == 0
        || !heads.is_multiple_of(layout.kv_heads)
        || !q.len().is_multiple_of(width)
    {
        return Err(EngineError::Tensor(format!(
            "attention: {heads} heads over {} KV heads, q of {} values",
            layout.kv_heads,
            q.len()
        )));
    }
    let group = heads / layout.kv_heads;
    let rows: usize = seqs.iter().map(|s| s.rows.len()).sum();
    // Work items: (sequence, KV head, first row within the sequence).
    let items: Vec<(usize, usize, usize)> = seqs
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            (0..layout.kv_heads).flat_map(move |h| {
                (0..s.rows.len())
                    .step_by(ROWS_PER_ITEM)
                    .map(move |first| (i, h, first))
            })
        })
        .collect();
    let parts: Vec<Vec<f32>> = items
        .par_iter()
        .map(|&(i, h, first)| {
            let s = &seqs[i];
            let t = (s.rows.len() - first).min(ROWS_PER_ITEM);
            let r = s.rows.start + first;
            let mut o = vec![0f32; t * group * hd];
            attend(
                layout,
                kv,
                &q[r * width..(r + t) * width],
                heads,
                h,
                s,
                first,
                &mut o,
            );
            o
        })
        .collect();
    let mut out = vec![0f32; rows * width];
    for (&(i, h, first), o) in items.iter().zip(parts) {
        let r = seqs[i].rows.start + first;
        for (k, part) in o.chunks_exact(group * hd).enumerate() {
            let at = (r + k) * width + h * group * hd;
            out[at..at + group * hd].copy_from_slice(part);
        }
    }
    Ok(out)
}
