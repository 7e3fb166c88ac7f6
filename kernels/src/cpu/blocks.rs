//! The blocks the CPU's quantized matrix products work on: GGUF weight blocks of 32
//! (`BlockQ4`, `BlockQ8`), activations quantized per row to 8-bit blocks
//! (`QuantizedRows`), a matrix's blocks in interleaved column pairs (`Weights`), and
//! the tiled walk over output columns that the portable and the AVX2 kernels run.

use half::f16;
use rayon::prelude::*;

/// Values per block in every supported format.
pub const BLOCK: usize = 32;
/// Rows of activations one kernel call takes: a weight block is unpacked once per tile.
pub const ROW_TILE: usize = 4;
/// Activation rows kept hot per pass over a task's weight columns (prompt chunks).
pub(super) const ACT_PASS_ROWS: usize = 64;

/// A 4-bit block: `w = d·q + m` for the 32 nibbles of `qs` (low nibbles are values
/// 0..16, high nibbles 16..32, as in GGUF). 20 bytes, GGUF's Q4_1 size: the scales stay
/// f16 (a decode step reads every block once) and are widened, exactly, as they are
/// used.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4 {
    /// Scale.
    pub d: f16,
    /// Offset (`-8·d` for Q4_0, exact in f16).
    pub m: f16,
    /// Packed nibbles.
    pub qs: [u8; 16],
}

impl BlockQ4 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        self.d.to_f32()
    }

    /// The offset as f32.
    #[inline(always)]
    pub fn m(&self) -> f32 {
        self.m.to_f32()
    }
}

/// An 8-bit block: `w = d·q`. 34 bytes, GGUF's Q8_0 size.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8 {
    /// Scale.
    pub d: f16,
    /// Values.
    pub qs: [i8; BLOCK],
}

impl BlockQ8 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        self.d.to_f32()
    }
}

/// A block of 32 activations quantized to 8 bits: `x ≈ d·p`.
#[derive(Clone, Copy, Debug)]
pub struct ActBlock {
    /// Scale `d_x`.
    pub d: f32,
    /// `d_x·Σ p`, for the offset of Q4 weights.
    pub s: f32,
    /// Values `p`, in -127..=127.
    pub qs: [i8; BLOCK],
}

impl ActBlock {
    /// The block of 32 values `x`: `d = max |x| / 127`, `p = round(x / d)`.
    fn quantize(x: &[f32]) -> ActBlock {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; BLOCK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(x) {
            // |v·id| <= 127 by construction; the clamp only guards rounding.
            *q = (v * id).round().clamp(-127.0, 127.0) as i8;
            sum += i32::from(*q);
        }
        ActBlock {
            d,
            s: d * sum as f32,
            qs,
        }
    }
}

/// Values at or above which activations are quantized in parallel (and the values one
/// task takes).
const PARALLEL_VALUES: usize = 1 << 15;

/// Activations quantized per row to 8-bit blocks.
#[derive(Debug, Default)]
pub struct QuantizedRows {
    blocks_per_row: usize,
    blocks: Vec<ActBlock>,
}

/// One row of [`QuantizedRows`].
pub type ActRow<'a> = &'a [ActBlock];

impl QuantizedRows {
    /// Quantizes `rows` rows of `cols` values (`cols` a multiple of 32); many rows are
    /// quantized in parallel (each block's arithmetic is its own).
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(x.len(), rows * cols);
        let blocks_per_row = cols / BLOCK;
        if x.len() < PARALLEL_VALUES {
            return Self {
                blocks_per_row,
                blocks: x.chunks_exact(BLOCK).map(ActBlock::quantize).collect(),
            };
        }
        let mut blocks = vec![
            ActBlock {
                d: 0.0,
                s: 0.0,
                qs: [0; BLOCK],
            };
            rows * blocks_per_row
        ];
        blocks
            .par_chunks_mut(PARALLEL_VALUES / BLOCK)
            .zip(x.par_chunks(PARALLEL_VALUES))
            .for_each(|(dst, src)| {
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(BLOCK)) {
                    *d = ActBlock::quantize(s);
                }
            });
        Self {
            blocks_per_row,
            blocks,
        }
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> ActRow<'_> {
        &self.blocks[r * self.blocks_per_row..(r + 1) * self.blocks_per_row]
    }
}

/// A matrix's weight blocks, `bpr` per output column: column by column, or (`paired`,
/// the layout for kernels that take two columns at once) in interleaved pairs: block
/// `b` of column `2p`, then block `b` of column `2p+1`, so that a pair is one stream
/// in memory, an odd last column on its own.
#[derive(Debug)]
pub struct Weights<'a, B> {
    /// The blocks, in that order.
    pub blocks: &'a [B],
    /// Blocks per column.
    pub bpr: usize,
    /// Output columns.
    pub columns: usize,
    /// Whether the columns are in interleaved pairs.
    pub paired: bool,
}

/// One column's blocks in order: every `stride`-th block of `blocks`.
#[derive(Debug)]
pub struct Column<'a, B> {
    blocks: &'a [B],
    stride: usize,
    len: usize,
}

// Copies of the views, whatever the block type (a derive would ask `B: Copy`).
impl<B> Clone for Weights<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Weights<'_, B> {}
impl<B> Clone for Column<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Column<'_, B> {}

impl<'a, B> Column<'a, B> {
    /// Blocks in the column.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the column has no blocks (a matrix of no input width).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The blocks in order.
    #[inline(always)]
    pub fn iter(&self) -> impl Iterator<Item = &'a B> + use<'a, B> {
        self.blocks.iter().step_by(self.stride)
    }
}

impl<'a, B> Weights<'a, B> {
    /// Column `col`.
    #[inline(always)]
    pub fn column(&self, col: usize) -> Column<'a, B> {
        let bpr = self.bpr;
        if self.paired && col < self.columns - self.columns % 2 {
            let start = (col - col % 2) * bpr + col % 2;
            Column {
                blocks: &self.blocks[start..start + 2 * bpr - 1],
                stride: 2,
                len: bpr,
            }
        } else {
            Column {
                blocks: &self.blocks[col * bpr..(col + 1) * bpr],
                stride: 1,
                len: bpr,
            }
        }
    }

    /// The interleaved blocks of columns `col` and `col + 1` (`paired`, `col` even).
    #[inline(always)]
    pub fn pair(&self, col: usize) -> &'a [B] {
        debug_assert!(self.paired && col.is_multiple_of(2) && col + 1 < self.columns);
        &self.blocks[col * self.bpr..(col + 2) * self.bpr]
    }
}

/// Row-major blocks (`columns` columns of `bpr`) reordered into [`Weights`]' pairs.
pub fn interleave_pairs<B: Copy>(blocks: Vec<B>, bpr: usize, columns: usize) -> Vec<B> {
    let mut out = Vec::with_capacity(blocks.len());
    for p in 0..columns / 2 {
        let (a, b) = blocks[2 * p * bpr..(2 * p + 2) * bpr].split_at(bpr);
        for (x, y) in a.iter().zip(b) {
            out.push(*x);
            out.push(*y);
        }
    }
    if columns % 2 == 1 {
        out.extend_from_slice(&blocks[(columns - 1) * bpr..]);
    }
    out
}

/// Walks the output columns `first_col..` that `chunk` (column-major `[cols, rows]`)
/// holds: per pass of up to `ACT_PASS_ROWS` activation rows, per column, per tile of
/// up to [`ROW_TILE`] rows, `dot(weight column, activation rows, outputs)`.
#[inline(always)]
pub(super) fn walk<B>(
    weights: Weights<'_, B>,
    acts: &QuantizedRows,
    rows: usize,
    first_col: usize,
    chunk: &mut [f32],
    mut dot: impl FnMut(Column<'_, B>, &[ActRow<'_>], &mut [f32]),
) {
    for pass in (0..rows).step_by(ACT_PASS_ROWS) {
        let pass_end = (pass + ACT_PASS_ROWS).min(rows);
        for (c, col_out) in chunk.chunks_exact_mut(rows).enumerate() {
            let w = weights.column(first_col + c);
            let mut r = pass;
            while r < pass_end {
                let take = (pass_end - r).min(ROW_TILE);
                let tile: [ActRow<'_>; ROW_TILE] =
                    std::array::from_fn(|i| acts.row(r + i.min(take - 1)));
                dot(w, &tile[..take], &mut col_out[r..r + take]);
                r += take;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_columns_read_back_in_order() {
        for columns in [1, 2, 5, 6] {
            let bpr = 3;
            let rowmajor: Vec<usize> = (0..columns * bpr).collect();
            let held = interleave_pairs(rowmajor.clone(), bpr, columns);
            let w = Weights {
                blocks: &held,
                bpr,
                columns,
                paired: true,
            };
            for col in 0..columns {
                let got: Vec<usize> = w.column(col).iter().copied().collect();
                assert_eq!(
                    got,
                    rowmajor[col * bpr..(col + 1) * bpr],
                    "{columns}: {col}"
                );
            }
            for col in (0..columns - columns % 2).step_by(2) {
                let pair = w.pair(col);
                let firsts: Vec<usize> = pair.iter().step_by(2).copied().collect();
                let seconds: Vec<usize> = pair.iter().skip(1).step_by(2).copied().collect();
                assert_eq!(firsts, rowmajor[col * bpr..(col + 1) * bpr]);
                assert_eq!(seconds, rowmajor[(col + 1) * bpr..(col + 2) * bpr]);
            }
        }
    }
}
