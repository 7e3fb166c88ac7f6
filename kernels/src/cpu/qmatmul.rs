//! Quantized matrix products on the CPU for the GGUF block formats Q4_0, Q4_1 and Q8_0:
//! one numeric path for every row count, so a row's result never depends on how many
//! rows (sequences, prompt tokens) share the step.
//!
//! Weights keep their GGUF blocks of 32 with f16 scales (20 bytes per Q4 block, 34 per
//! Q8 block: a decode step reads each once), widened to f32 exactly as they are used;
//! activations are quantized per row to 8-bit blocks of 32 with an f32 scale,
//! as llama.cpp does. A block's contribution is then an integer dot product scaled
//! once:
//!
//! - Q8_0 (`w = d·q`, `q` in -127..=127): `d_w·d_x·Σ q·p`
//! - Q4_1 (`w = d·q + m`, `q` in 0..=15): `d_w·d_x·Σ q·p + m_w·s_x`, with
//!   `s_x = d_x·Σ p` computed when the row is quantized
//! - Q4_0 (`w = d·(q - 8)`) is Q4_1 with `m = -8·d`.
//!
//! Each output element sums its blocks in the same order whatever the batch, so the
//! SIMD kernels (AVX2 + FMA, [`super::qmatmul_avx2`]; AVX-512 VNNI,
//! [`super::qmatmul_vnni`], chosen at start-up where the CPU has it and bit-identical
//! to AVX2) and the portable one each give bit-identical rows at any batch size. Work is split over output columns with rayon,
//! and within a task rows are taken in tiles so a weight block is unpacked once for up
//! to `ROW_TILE` rows (`blocks`).

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use super::blocks::{
    ActRow, BLOCK, BlockQ4, BlockQ8, Column, QuantizedRows, Weights, interleave_pairs, walk,
};
use super::qmatmul_avx2::{self as avx2, Avx2};
use super::qmatmul_vnni::{self as vnni, Vnni};
use crate::EngineError;

/// Below this many multiply-adds a product runs on the calling thread.
const SERIAL_MACS: usize = 1 << 16;

/// Rows of input one pass of a product takes (llama.cpp's default micro-batch is 512):
/// 8 prompts of 2,048 tokens in one pass wrote results 64 KiB apart per column.
const ROWS_PER_BLOCK: usize = 256;

/// Blocks of one matrix, `rows × (cols / 32)`, its rows (output columns) in
/// interleaved pairs ([`Weights`]).
#[derive(Debug)]
enum Blocks {
    Q4(Vec<BlockQ4>),
    Q8(Vec<BlockQ8>),
}

/// Bytes this module holds for `weights` weights of `dtype`, or `None` for a format
/// it does not multiply.
pub fn held_bytes(dtype: GgmlDType, weights: u64) -> Option<u64> {
    let block = match dtype {
        GgmlDType::Q4_0 | GgmlDType::Q4_1 => std::mem::size_of::<BlockQ4>(),
        GgmlDType::Q8_0 => std::mem::size_of::<BlockQ8>(),
        _ => return None,
    };
    Some(weights.div_ceil(BLOCK as u64) * block as u64)
}

/// A quantized matrix `[rows (out), cols (in)]`.
#[derive(Debug)]
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
    /// Rows (output columns) in interleaved pairs, the layout of the AVX-512 kernel
    /// ([`Weights`]); else row by row, the AVX2 and portable kernels' (each kernel
    /// reads either, and the layout changes no bit).
    paired: bool,
}

/// The kernels one matrix product runs: the fastest this CPU has, chosen at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust, any CPU.
    Portable,
    /// AVX2 + FMA (x86-64); the value proves the CPU has them.
    Avx2(Avx2),
    /// AVX-512 VNNI (with AVX2 + FMA); the value proves the CPU has them.
    Vnni(Vnni),
}

impl Kernel {
    /// The fastest kernel this CPU runs (AVX-512 VNNI, else AVX2, else the portable
    /// one); or the one `INFERMETER_CPU_KERNEL` names (`portable`, `avx2`,
    /// `avx512-vnni`) when this CPU runs it (to compare kernels on one machine);
    /// chosen once.
    pub fn detect() -> Self {
        static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let asked = std::env::var("INFERMETER_CPU_KERNEL").ok();
            let available = Self::available();
            if let Some(k) = asked
                .as_deref()
                .and_then(|a| available.iter().find(|k| k.name() == a))
            {
                return *k;
            }
            if let Some(a) = asked {
                tracing::warn!(
                    "INFERMETER_CPU_KERNEL={a}: not a kernel this CPU runs ({}); using the fastest",
                    available
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // `available` lists them slowest first.
            available.last().copied().unwrap_or(Kernel::Portable)
        })
    }

    /// Every kernel this CPU runs, the portable one first (tests compare them).
    pub fn available() -> Vec<Self> {
        let mut all = vec![Kernel::Portable];
        all.extend(Avx2::detect().map(Kernel::Avx2));
        all.extend(Vnni::detect().map(Kernel::Vnni));
        all
    }

    /// Its name in a report (`kernels`).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2(_) => "avx2",
            Kernel::Vnni(_) => "avx512-vnni",
        }
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]])
}

impl QMatrix {
    /// Whether this module computes products for `dtype`.
    pub fn supports(dtype: GgmlDType) -> bool {
        matches!(dtype, GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0)
    }

    /// Repacks a GGUF tensor `[out, in]` of a supported format.
    pub fn from_qtensor(t: &QTensor) -> Result<Self, EngineError> {
        let (rows, cols) = t.shape().dims2()?;
        let raw = t.data()?;
        Self::from_gguf_blocks(t.dtype(), rows, cols, &raw)
    }

    /// Repacks raw GGUF block bytes of a `[rows, cols]` matrix, laid out for the
    /// kernel [`Kernel::detect`] chose.
    pub fn from_gguf_blocks(
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        raw: &[u8],
    ) -> Result<Self, EngineError> {
        Self::from_gguf_blocks_for(Kernel::detect(), dtype, rows, cols, raw)
    }

    /// [`Self::from_gguf_blocks`] laid out for `kernel` (tests hold every kernel to
    /// every layout).
    pub fn from_gguf_blocks_for(
        kernel: Kernel,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        raw: &[u8],
    ) -> Result<Self, EngineError> {
        let unsupported = || EngineError::Tensor(format!("no quantized product for {dtype:?}"));
        if !cols.is_multiple_of(BLOCK) {
            return Err(EngineError::Tensor(format!(
                "{dtype:?} matrix has {cols} columns, not a multiple of {BLOCK}"
            )));
        }
        let n = rows * cols / BLOCK;
        let block_bytes = match dtype {
            GgmlDType::Q4_0 => 18,
            GgmlDType::Q4_1 => 20,
            GgmlDType::Q8_0 => 34,
            _ => return Err(unsupported()),
        };
        if raw.len() != n * block_bytes {
            return Err(EngineError::Tensor(format!(
                "{dtype:?} matrix [{rows}, {cols}] has {} bytes, expected {}",
                raw.len(),
                n * block_bytes
            )));
        }
        let chunks = raw.chunks_exact(block_bytes);
        let blocks = match dtype {
            GgmlDType::Q4_0 => Blocks::Q4(
                chunks
                    .map(|b| {
                        let d = f16_at(b, 0);
                        let mut qs = [0u8; 16];
                        qs.copy_from_slice(&b[2..18]);
                        // -8·d is exact in f16 unless it overflows (|d| > 8188).
                        let m = f16::from_f32(-8.0 * d.to_f32());
                        m.is_finite().then_some(BlockQ4 { d, m, qs })
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        EngineError::Tensor(format!(
                            "Q4_0 matrix [{rows}, {cols}] has a block scale over 8188"
                        ))
                    })?,
            ),
            GgmlDType::Q4_1 => Blocks::Q4(
                chunks
                    .map(|b| {
                        let mut qs = [0u8; 16];
                        qs.copy_from_slice(&b[4..20]);
                        BlockQ4 {
                            d: f16_at(b, 0),
                            m: f16_at(b, 2),
                            qs,
                        }
                    })
                    .collect(),
            ),
            GgmlDType::Q8_0 => Blocks::Q8(
                chunks
                    .map(|b| {
                        let mut qs = [0i8; BLOCK];
                        for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
                            *q = byte as i8;
                        }
                        BlockQ8 {
                            d: f16_at(b, 0),
                            qs,
                        }
                    })
                    .collect(),
            ),
            _ => return Err(unsupported()),
        };
        let bpr = cols / BLOCK;
        let paired = matches!(kernel, Kernel::Vnni(_));
        let blocks = match blocks {
            Blocks::Q4(b) if paired => Blocks::Q4(interleave_pairs(b, bpr, rows)),
            Blocks::Q8(b) if paired => Blocks::Q8(interleave_pairs(b, bpr, rows)),
            unpaired => unpaired,
        };
        Ok(Self {
            rows,
            cols,
            blocks,
            paired,
        })
    }

    /// Output width (rows of the matrix).
    pub fn out_features(&self) -> usize {
        self.rows
    }

    /// Input width (columns of the matrix).
    pub fn in_features(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        match &self.blocks {
            Blocks::Q4(b) => std::mem::size_of_val(b.as_slice()) as u64,
            Blocks::Q8(b) => std::mem::size_of_val(b.as_slice()) as u64,
        }
    }

    /// `x [rows, in]` times the matrix transposed: `[rows, out]`, with the fastest
    /// kernel this CPU has.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.matmul_with(Kernel::detect(), x, rows)
    }

    /// [`Self::matmul`] with a chosen kernel (tests compare them).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Self::matmul_many_with(kernel, &[self], x, rows);
        out.pop().unwrap_or_default()
    }

    /// Products of one input with several matrices of the same input width (q, k and
    /// v; gate and up): the input is quantized once and all the columns are shared
    /// out in one parallel pass. Returns one `[rows, out_i]` per matrix.
    pub fn matmul_many(mats: &[&QMatrix], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
        Self::matmul_many_with(Kernel::detect(), mats, x, rows)
    }

    /// [`Self::matmul_many`] with a chosen kernel. A long input (the prompts of several
    /// sequences) is taken [`ROWS_PER_BLOCK`] rows at a time, so that a block's
    /// column-major results and their transpose stay in cache (each row's arithmetic
    /// is its own: no bit changes).
    pub fn matmul_many_with(
        kernel: Kernel,
        mats: &[&QMatrix],
        x: &[f32],
        rows: usize,
    ) -> Vec<Vec<f32>> {
        if rows <= ROWS_PER_BLOCK {
            return Self::matmul_block(kernel, mats, x, rows);
        }
        let width = x.len() / rows;
        let mut outs: Vec<Vec<f32>> = mats
            .iter()
            .map(|m| Vec::with_capacity(m.rows * rows))
            .collect();
        for r0 in (0..rows).step_by(ROWS_PER_BLOCK) {
            let n = (rows - r0).min(ROWS_PER_BLOCK);
            let part = Self::matmul_block(kernel, mats, &x[r0 * width..(r0 + n) * width], n);
            for (out, p) in outs.iter_mut().zip(part) {
                out.extend_from_slice(&p);
            }
        }
        outs
    }

    /// One block of rows of [`Self::matmul_many_with`].
    fn matmul_block(kernel: Kernel, mats: &[&QMatrix], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
        let Some(first) = mats.first() else {
            return Vec::new();
        };
        let cols = first.cols;
        assert!(
            mats.iter().all(|m| m.cols == cols) && x.len() == rows * cols,
            "matmul_many: input widths differ"
        );
        let acts = QuantizedRows::quantize(x, rows, cols);
        let total_out: usize = mats.iter().map(|m| m.rows).sum();
        let tasks = if total_out * rows * cols < SERIAL_MACS {
            1
        } else {
            4 * rayon::current_num_threads()
        };
        let cols_per_task = total_out.div_ceil(tasks).next_multiple_of(4).max(4);
        // Column-major results `[out_i, rows]`: each task owns whole output columns.
        let mut outs_t: Vec<Vec<f32>> = mats.iter().map(|m| vec![0f32; m.rows * rows]).collect();
        let mut work: Vec<(&QMatrix, usize, &mut [f32])> = Vec::new();
        for (m, out_t) in mats.iter().zip(outs_t.iter_mut()) {
            for (t, chunk) in out_t.chunks_mut(cols_per_task * rows).enumerate() {
                work.push((m, t * cols_per_task, chunk));
            }
        }
        let run = |(m, first_col, chunk): (&QMatrix, usize, &mut [f32])| {
            m.columns(kernel, &acts, rows, first_col, chunk);
        };
        if tasks == 1 {
            work.into_iter().for_each(run);
        } else {
            work.into_par_iter().for_each(run);
        }
        mats.iter()
            .zip(outs_t)
            .map(|(m, out_t)| transpose(out_t, m.rows, rows))
            .collect()
    }

    /// Output columns `first_col..` into `chunk` (column-major `[cols, rows]`).
    fn columns(
        &self,
        kernel: Kernel,
        acts: &QuantizedRows,
        rows: usize,
        first_col: usize,
        chunk: &mut [f32],
    ) {
        match (&self.blocks, kernel) {
            (Blocks::Q4(b), k) => {
                let w = self.weights(b);
                match k {
                    Kernel::Avx2(k) => avx2::q4(k, w, acts, rows, first_col, chunk),
                    Kernel::Vnni(k) => vnni::q4(k, w, acts, rows, first_col, chunk),
                    Kernel::Portable => walk(w, acts, rows, first_col, chunk, portable_q4),
                }
            }
            (Blocks::Q8(b), k) => {
                let w = self.weights(b);
                match k {
                    Kernel::Avx2(k) => avx2::q8(k, w, acts, rows, first_col, chunk),
                    Kernel::Vnni(k) => vnni::q8(k, w, acts, rows, first_col, chunk),
                    Kernel::Portable => walk(w, acts, rows, first_col, chunk, portable_q8),
                }
            }
        }
    }

    /// This matrix's blocks `blocks` as the kernels read them.
    fn weights<'a, B>(&self, blocks: &'a [B]) -> Weights<'a, B> {
        Weights {
            blocks,
            bpr: self.cols / BLOCK,
            columns: self.rows,
            paired: self.paired,
        }
    }
}

/// Output rows per task of the transpose: one 64-byte line of each column.
const TRANSPOSE_ROWS: usize = 16;

/// `[cols, rows]` column-major to `[rows, cols]` row-major, in blocks of
/// [`TRANSPOSE_ROWS`] output rows (each reads one cache line of every column), the
/// blocks in parallel for a large product.
fn transpose(t: Vec<f32>, cols: usize, rows: usize) -> Vec<f32> {
    if rows == 1 {
        return t;
    }
    let mut out = vec![0f32; rows * cols];
    let block = |(b, dst): (usize, &mut [f32])| {
        let r0 = b * TRANSPOSE_ROWS;
        let n = dst.len() / cols;
        for (c, col) in t.chunks_exact(rows).enumerate() {
            for (i, v) in col[r0..r0 + n].iter().enumerate() {
                dst[i * cols + c] = *v;
            }
        }
    };
    let chunks = out.chunks_mut(TRANSPOSE_ROWS * cols).enumerate();
    if rows * cols < SERIAL_MACS {
        chunks.for_each(block);
    } else {
        chunks.collect::<Vec<_>>().into_par_iter().for_each(block);
    }
    out
}

/// Portable Q4 kernel: one weight row against a few activation rows.
fn portable_q4(w: Column<'_, BlockQ4>, acts: &[ActRow<'_>], out: &mut [f32]) {
    for (r, a) in acts.iter().enumerate() {
        let (mut acc, mut corr) = (0f32, 0f32);
        for (wb, ab) in w.iter().zip(a.iter()) {
            let mut dot = 0i32;
            for (j, &byte) in wb.qs.iter().enumerate() {
                dot += i32::from(byte & 0x0F) * i32::from(ab.qs[j]);
                dot += i32::from(byte >> 4) * i32::from(ab.qs[j + 16]);
            }
            acc += wb.d() * ab.d * dot as f32;
            corr += wb.m() * ab.s;
        }
        out[r] = acc + corr;
    }
}

/// Portable Q8 kernel: one weight row against a few activation rows.
fn portable_q8(w: Column<'_, BlockQ8>, acts: &[ActRow<'_>], out: &mut [f32]) {
    for (r, a) in acts.iter().enumerate() {
        let mut acc = 0f32;
        for (wb, ab) in w.iter().zip(a.iter()) {
            let dot: i32 = wb
                .qs
                .iter()
                .zip(&ab.qs)
                .map(|(&q, &p)| i32::from(q) * i32::from(p))
                .sum();
            acc += wb.d() * ab.d * dot as f32;
        }
        out[r] = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};

    fn random_matrix(dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> (QTensor, Vec<f32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let t = Tensor::from_vec(w, (rows, cols), &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&t, dtype).expect("quantize");
        let deq = q
            .dequantize(&Device::Cpu)
            .and_then(|d| d.flatten_all()?.to_vec1::<f32>())
            .expect("dequantize");
        (q, deq)
    }

    fn inputs(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..rows * cols)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect()
    }

    /// Against f64 products with the dequantized weights. Only the activations'
    /// rounding separates them: each input is off by at most half its block's step
    /// (`amax/127/2`), so a product is off by at most `Σ |w_i|·step_i/2` (plus f32
    /// rounding, well under 1e-4 here).
    #[test]
    fn products_match_dequantized_weights() {
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (rows, cols, m) = (67, 96, 9);
            let (q, deq) = random_matrix(dtype, rows, cols, 1);
            let qm = QMatrix::from_qtensor(&q).expect("repack");
            let x = inputs(m, cols, 2);
            let step: Vec<f64> = x
                .chunks_exact(BLOCK)
                .flat_map(|b| {
                    let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
                    std::iter::repeat_n(f64::from(amax) / 127.0, BLOCK)
                })
                .collect();
            for kernel in Kernel::available() {
                let got = qm.matmul_with(kernel, &x, m);
                for r in 0..m {
                    for c in 0..rows {
                        let (mut want, mut bound) = (0f64, 1e-4);
                        for i in 0..cols {
                            let w = f64::from(deq[c * cols + i]);
                            want += f64::from(x[r * cols + i]) * w;
                            bound += w.abs() * step[r * cols + i] / 2.0;
                        }
                        let err = (f64::from(got[r * rows + c]) - want).abs();
                        assert!(
                            err <= bound,
                            "{dtype:?} {kernel:?} [{r},{c}]: {err} > {bound}"
                        );
                    }
                }
            }
        }
    }

    /// Every row is bit-identical whether it is computed alone or in a batch, and the
    /// SIMD kernel agrees with the portable one to float rounding.
    #[test]
    fn rows_do_not_depend_on_the_batch() {
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            // An odd column count: the last chunk ends in a single column.
            let (rows, cols, m) = (301, 64, 70);
            let (q, _) = random_matrix(dtype, rows, cols, 3);
            let qm = QMatrix::from_qtensor(&q).expect("repack");
            let x = inputs(m, cols, 4);
            let all = qm.matmul(&x, m);
            for r in [0, 5, 63, 64, 69] {
                let alone = qm.matmul(&x[r * cols..(r + 1) * cols], 1);
                assert_eq!(alone, all[r * rows..(r + 1) * rows], "{dtype:?} row {r}");
            }
            // An input of several row blocks (the last one partial).
            let long = 2 * ROWS_PER_BLOCK + 88;
            let y = inputs(long, cols, 5);
            let blocked = qm.matmul(&y, long);
            for r in [0, ROWS_PER_BLOCK - 1, ROWS_PER_BLOCK, long - 1] {
                let alone = qm.matmul(&y[r * cols..(r + 1) * cols], 1);
                assert_eq!(
                    alone,
                    blocked[r * rows..(r + 1) * rows],
                    "{dtype:?} row {r}"
                );
            }
            let portable = qm.matmul_with(Kernel::Portable, &x, m);
            for (a, b) in all.iter().zip(&portable) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{dtype:?}: {a} vs {b}"
                );
            }
            // The SIMD kernels compute the same integers and the same float steps, and
            // read either layout (row by row, or in the pairs of AVX-512's).
            let raw = q.data().expect("raw blocks");
            let mut simd: Vec<Vec<f32>> = Vec::new();
            for layout in Kernel::available() {
                let held =
                    QMatrix::from_gguf_blocks_for(layout, dtype, rows, cols, &raw).expect("repack");
                for k in Kernel::available() {
                    let got = held.matmul_with(k, &x, m);
                    if k == Kernel::Portable {
                        assert_eq!(got, portable, "{dtype:?}: portable, {layout:?} layout");
                    } else {
                        simd.push(got);
                    }
                }
            }
            for other in simd.iter().skip(1) {
                assert_eq!(
                    other, &simd[0],
                    "{dtype:?}: AVX2 vs AVX-512 VNNI, any layout"
                );
            }
        }
    }

    #[test]
    fn refuses_bad_blocks() {
        let err = QMatrix::from_gguf_blocks(GgmlDType::Q4_1, 2, 32, &[0; 39]).expect_err("size");
        assert!(err.to_string().contains("expected 40"), "{err}");
        let err = QMatrix::from_gguf_blocks(GgmlDType::Q4_1, 2, 48, &[0; 60]).expect_err("cols");
        assert!(err.to_string().contains("multiple of 32"), "{err}");
        assert!(QMatrix::from_gguf_blocks(GgmlDType::F16, 1, 32, &[0; 64]).is_err());
    }
}
