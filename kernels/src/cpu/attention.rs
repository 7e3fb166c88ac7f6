//! Causal grouped-query attention over the paged KV cache on the CPU, with keys and
//! values held in f16 (the default: half the bytes a decode step reads) or f32 (exact
//! against the float references).
//!
//! One arithmetic for every query row, decode or prompt. Work items are (sequence, KV
//! head, up to [`ROWS_PER_ITEM`] query rows, one span of [`POSITIONS_PER_SPAN`]
//! positions): a decode row reads each key of the span straight from the cache once
//! for up to 4 queries (the query heads of its group); a prompt tile widens the span's
//! keys and values to f32 once for all its rows and scores eight keys per pass over a
//! query (the same sums in the same order). Each row's weighted sum of values is kept
//! in registers over the span (`kvdot`), and a long context is split into spans so
//! that one decoding sequence still gives every core work. Each span keeps its own
//! maximum, sum of exponentials and weighted sum of values; the spans of a row are
//! then merged in position order.
//!
//! A row's arithmetic (its scores, whatever queries share a key's load; the span
//! bounds, which depend only on positions; its per-span softmax; the merge in span
//! order) is the same whatever the other rows of the item or of the step, so batching,
//! prompt chunking and prefix caching change no bit of its output.

use half::f16;
use half::slice::HalfFloatSliceExt as _;
use rayon::prelude::*;

use super::kvdot;
use crate::EngineError;
use crate::ops::{AttnSeq, KvLayout};

/// Query rows of one sequence per work item (prompt chunks are split so both cores
/// get work even for one sequence with few KV heads).
pub const ROWS_PER_ITEM: usize = 32;

/// Positions per span: a context longer than this is attended span by span in
/// parallel, and the spans merged.
pub const POSITIONS_PER_SPAN: usize = 256;

/// Query rows (rows x query heads of a group) from which an item widens its span's
/// keys and values to f32 once, rather than each row widening every one it reads.
const WIDEN_FROM_ROWS: usize = 8;

/// An element of the KV cache.
pub trait KvElem: kvdot::Elem + Default {
    /// Stores `src` in `dst` (rounded to nearest for f16).
    fn store(src: &[f32], dst: &mut [Self]);
    /// Widens `src` into `dst` (exact).
    fn widen_into(src: &[Self], dst: &mut [f32]);
}

impl KvElem for f32 {
    fn store(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn widen_into(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl KvElem for f16 {
    fn store(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }
    fn widen_into(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

/// Keys and values of one layer, slot-major `[slots, kv_heads, head_dim]`.
pub struct LayerKv<'a, E> {
    /// Keys.
    pub k: &'a [E],
    /// Values.
    pub v: &'a [E],
}

/// `(position, slot)` of positions `from..to` of a sequence, block by block (one
/// division for the first block, none per position).
fn slots<'a>(
    layout: &KvLayout,
    blocks: &'a [u32],
    from: usize,
    to: usize,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let bs = layout.block_size;
    let first = from / bs;
    blocks[first..to.div_ceil(bs)]
        .iter()
        .enumerate()
        .flat_map(move |(i, &b)| {
            let start = (first + i) * bs;
            let base = b as usize * bs;
            (start.max(from)..(start + bs).min(to)).map(move |p| (p, base + p - start))
        })
}

/// One span's share of a row and query head: its maximum score, the sum of
/// `exp(score - max)` and the values weighted by them.
struct SpanPart {
    /// `[t*group]` maxima (`-inf` where the row sees none of the span).
    max: Vec<f32>,
    /// `[t*group]` sums.
    sum: Vec<f32>,
    /// `[t*group, head_dim]` weighted values.
    acc: Vec<f32>,
}

/// A work item: sequence, KV head, first row within the sequence, first position of
/// its span.
#[derive(Clone, Copy)]
struct Item {
    seq: usize,
    head: usize,
    first: usize,
    span: usize,
}

/// The span `item` of query rows `q` (`[t, heads*head_dim]`, positions
/// `seq.start + first + i`) for KV head `h`.
fn attend_span<E: KvElem>(
    layout: &KvLayout,
    kv: &LayerKv<'_, E>,
    q: &[f32],
    heads: usize,
    seq: &AttnSeq<'_>,
    item: Item,
) -> SpanPart {
    let hd = layout.head_dim;
    let group = heads / layout.kv_heads;
    let width = heads * hd;
    let row = layout.kv_heads * hd;
    let h = item.head;
    let t = q.len() / width;
    let pos0 = seq.start + item.first;
    // Row i sees positions 0..=pos0 + i; this span holds span..end of them.
    let end = (item.span + POSITIONS_PER_SPAN).min(pos0 + t);
    let n = end - item.span;
    let scale = 1.0 / (hd as f32).sqrt();
    // Where each position's key and value start in the cache.
    let offs: Vec<usize> = slots(layout, seq.blocks, item.span, end)
        .map(|(_, slot)| slot * row + h * hd)
        .collect();
    // The item's queries, `[t*group, hd]`: row i's group is contiguous in `q`.
    let mut qs = Vec::with_capacity(t * group * hd);
    for i in 0..t {
        let at = i * width + h * group * hd;
        qs.extend_from_slice(&q[at..at + group * hd]);
    }
    let mut part = SpanPart {
        max: vec![f32::NEG_INFINITY; t * group],
        sum: vec![0f32; t * group],
        acc: vec![0f32; t * group * hd],
    };
    // scores[(i*group + g)*n + (p - span)].
    let mut scores = vec![0f32; t * group * n];
    // A prompt tile scores and weighs each key and value for many rows: its span's
    // keys and values are widened once, contiguous, and each row scores eight keys
    // at a time (widening is exact and the sums keep their order: the same bits).
    let widened: Option<(Vec<f32>, Vec<usize>)> = if t * group >= WIDEN_FROM_ROWS {
        let widen = |src: &[E]| {
            let mut dst = vec![0f32; n * hd];
            for (d, &off) in dst.chunks_exact_mut(hd).zip(&offs) {
                E::widen_into(&src[off..off + hd], d);
            }
            dst
        };
        let keys = kvdot::KeyBlocks::new(kv.k, &offs, hd);
        for i in 0..t {
            let seen = (pos0 + i + 1).saturating_sub(item.span).min(n);
            for g in 0..group {
                let r = i * group + g;
                let (q_r, out) = (&qs[r * hd..(r + 1) * hd], &mut scores[r * n..r * n + seen]);
                match &keys {
                    Some(keys) => kvdot::block_scores(keys, q_r, scale, out),
                    // A head size that is no multiple of 8: each key from the cache.
                    None => {
                        for (o, &off) in out.iter_mut().zip(&offs) {
                            kvdot::scores(
                                q_r,
                                hd,
                                &kv.k[off..off + hd],
                                scale,
                                std::slice::from_mut(o),
                                1,
                            );
                        }
                    }
                }
            }
        }
        Some((widen(kv.v), (0..n).map(|j| j * hd).collect()))
    } else {
        // A decode row: each key read from the cache once for every query that sees it.
        for (j, &off) in offs.iter().enumerate() {
            let first = (item.span + j).saturating_sub(pos0);
            kvdot::scores(
                &qs[first * group * hd..],
                hd,
                &kv.k[off..off + hd],
                scale,
                &mut scores[first * group * n + j..],
                n,
            );
        }
        None
    };
    for i in 0..t {
        // Positions of the span this row sees (the same for its group's query heads,
        // weighed together: each value read once for all of them).
        let seen = (pos0 + i + 1).saturating_sub(item.span).min(n);
        for g in 0..group {
            let r = i * group + g;
            let s = &mut scores[r * n..r * n + seen];
            let max = kvdot::max(s);
            part.max[r] = max;
            part.sum[r] = kvdot::exp_sub(s, max);
        }
        let acc = &mut part.acc[i * group * hd..(i + 1) * group * hd];
        let w = &scores[i * group * n..];
        match &widened {
            Some((vals, at)) => kvdot::weighted_sums(acc, group, w, n, vals, &at[..seen]),
            None => kvdot::weighted_sums(acc, group, w, n, kv.v, &offs[..seen]),
        }
    }
    part
}

/// Attention for every sequence of a step; `q` is `[T, heads*head_dim]` row-major.
pub fn attention<E: KvElem>(
    layout: &KvLayout,
    kv: &LayerKv<'_, E>,
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
    let tile = |s: &AttnSeq<'_>, first: usize| (s.rows.len() - first).min(ROWS_PER_ITEM);
    // Work items, each tile's spans together in position order.
    let mut items = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        for head in 0..layout.kv_heads {
            for first in (0..s.rows.len()).step_by(ROWS_PER_ITEM) {
                let ctx = s.start + first + tile(s, first);
                for span in (0..ctx).step_by(POSITIONS_PER_SPAN) {
                    items.push(Item {
                        seq: i,
                        head,
                        first,
                        span,
                    });
                }
            }
        }
    }
    let parts: Vec<SpanPart> = items
        .par_iter()
        .map(|&it| {
            let s = &seqs[it.seq];
            let r = s.rows.start + it.first;
            let t = tile(s, it.first);
            attend_span(layout, kv, &q[r * width..(r + t) * width], heads, s, it)
        })
        .collect();
    // Merge each tile's spans (consecutive items) in position order.
    let mut tiles: Vec<(Item, &[SpanPart])> = Vec::new();
    let mut at = 0;
    while at < items.len() {
        let it = items[at];
        let len = items[at..]
            .iter()
            .take_while(|x| (x.seq, x.head, x.first) == (it.seq, it.head, it.first))
            .count();
        tiles.push((it, &parts[at..at + len]));
        at += len;
    }
    let merged: Vec<Vec<f32>> = tiles
        .par_iter()
        .map(|(it, spans)| {
            let t = tile(&seqs[it.seq], it.first);
            let mut o = vec![0f32; t * group * hd];
            for r in 0..t * group {
                let max = spans
                    .iter()
                    .map(|p| p.max[r])
                    .fold(f32::NEG_INFINITY, f32::max);
                let out = &mut o[r * hd..(r + 1) * hd];
                let mut sum = 0.0;
                for p in spans.iter().filter(|p| p.sum[r] > 0.0) {
                    let w = (p.max[r] - max).exp();
                    sum += p.sum[r] * w;
                    kvdot::weighted_sum(out, &[w], &p.acc[r * hd..(r + 1) * hd], &[0]);
                }
                out.iter_mut().for_each(|x| *x /= sum);
            }
            o
        })
        .collect();
    let mut out = vec![0f32; rows * width];
    for ((it, _), o) in tiles.iter().zip(merged) {
        let r = seqs[it.seq].rows.start + it.first;
        for (k, part) in o.chunks_exact(group * hd).enumerate() {
            let at = (r + k) * width + it.head * group * hd;
            out[at..at + group * hd].copy_from_slice(part);
        }
    }
    Ok(out)
}
