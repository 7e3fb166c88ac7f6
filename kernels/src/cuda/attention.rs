//! Launchers of the KV-cache and attention kernels (`attention.cu`): the cache write
//! (f32 or f16), the per-row attention over listed rows (prompt chunks), and split-KV
//! decode attention with its merge. Shapes are checked before every launch, as in
//! [`super::gpu`].
//!
//! Status: compiled and assembled in CI; run only on a GPU (`kernels/tests/cuda_ops.rs`).

#![allow(unsafe_code)]

use cudarc::driver::{CudaSlice, LaunchArgs, LaunchConfig, PushKernelArg};

use super::geometry::{DECODE_WARPS, DecodeGeometry};
use super::gpu::{Gpu, driver, shape};
use super::{CudaError, Source};

pub use crate::ops::KvDtype;

/// One layer's keys or values on the device.
pub enum KvBuf {
    /// f32 elements.
    F32(CudaSlice<f32>),
    /// f16 elements (bit patterns).
    F16(CudaSlice<u16>),
}

impl KvBuf {
    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            KvBuf::F32(b) => b.len(),
            KvBuf::F16(b) => b.len(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its element type.
    pub fn dtype(&self) -> KvDtype {
        match self {
            KvBuf::F32(_) => KvDtype::F32,
            KvBuf::F16(_) => KvDtype::F16,
        }
    }
}

/// Where each query row's positions are: its last position and its block table's
/// offset in `tables` (both `[T]`), and the concatenated block tables.
pub struct RowTables<'a> {
    /// Last position of each row.
    pub pos: &'a CudaSlice<u32>,
    /// Offset of each row's block table in `tables`.
    pub table: &'a CudaSlice<u32>,
    /// The block tables.
    pub tables: &'a CudaSlice<u32>,
}

/// The attention's shape: query heads, KV heads, head dimension, tokens per block.
pub type AttnDims = (usize, usize, usize, usize);

/// An attention shape as the kernels take it (`int`s), and its softmax scale.
struct KernelDims {
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    block_size: i32,
    scale: f32,
}

impl KernelDims {
    fn of((heads, kv_heads, head_dim, block_size): AttnDims) -> Self {
        Self {
            heads: heads as i32,
            kv_heads: kv_heads as i32,
            head_dim: head_dim as i32,
            block_size: block_size as i32,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }
}

/// The kernel of `kv`'s element type: `f32` or `f16`.
fn by_dtype(kv: &KvBuf, f32_kernel: &'static str, f16_kernel: &'static str) -> &'static str {
    match kv.dtype() {
        KvDtype::F32 => f32_kernel,
        KvDtype::F16 => f16_kernel,
    }
}

/// Pushes the queries, then the keys and values (of one type, which
/// `check_attention` made sure of).
fn push_qkv<'a>(
    b: &mut LaunchArgs<'a>,
    what: &'static str,
    q: &'a CudaSlice<f32>,
    kv: (&'a KvBuf, &'a KvBuf),
) -> Result<(), CudaError> {
    b.arg(q);
    match kv {
        (KvBuf::F32(k), KvBuf::F32(v)) => b.arg(k).arg(v),
        (KvBuf::F16(k), KvBuf::F16(v)) => b.arg(k).arg(v),
        _ => return Err(shape(what, "K and V of different types".into())),
    };
    Ok(())
}

impl Gpu {
    /// A zeroed KV buffer of `n` elements.
    pub fn kv_zeros(&self, dtype: KvDtype, n: usize) -> Result<KvBuf, CudaError> {
        Ok(match dtype {
            KvDtype::F32 => KvBuf::F32(self.zeros(n)?),
            KvDtype::F16 => KvBuf::F16(
                self.stream()
                    .alloc_zeros::<u16>(n)
                    .map_err(|e| self.alloc_error("allocating the KV cache", 2 * n, e))?,
            ),
        })
    }

    /// Writes rows of `k` and `v` `[T, row]` into `slots` of one layer's caches.
    pub fn kv_write(
        &self,
        k: &CudaSlice<f32>,
        v: &CudaSlice<f32>,
        slots: &CudaSlice<u32>,
        (kc, vc): (&mut KvBuf, &mut KvBuf),
        row: usize,
        max_slot: u32,
    ) -> Result<(), CudaError> {
        let t = slots.len();
        if k.len() != t * row
            || v.len() != t * row
            || (max_slot as usize + 1) * row > kc.len()
            || kc.len() != vc.len()
            || kc.dtype() != vc.dtype()
        {
            return Err(shape(
                "kv_write",
                format!("{t} slots (up to {max_slot}) of {row} values"),
            ));
        }
        if t == 0 {
            return Ok(());
        }
        let row_i = row as i32;
        let cfg = LaunchConfig {
            grid_dim: (t as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        match (kc, vc) {
            (KvBuf::F32(kc), KvBuf::F32(vc)) => {
                let f = self.function(Source::Attention, "kv_write_f32")?;
                let mut b = self.stream().launch_builder(&f);
                b.arg(k).arg(v).arg(slots).arg(kc).arg(vc).arg(&row_i);
                // SAFETY: (k, v, slots, kc, vc, row) as declared; every slot fits.
                unsafe { b.launch(cfg) }.map_err(driver("launching kv_write"))?;
            }
            (KvBuf::F16(kc), KvBuf::F16(vc)) => {
                let f = self.function(Source::Attention, "kv_write_f16")?;
                let mut b = self.stream().launch_builder(&f);
                b.arg(k).arg(v).arg(slots).arg(kc).arg(vc).arg(&row_i);
                // SAFETY: as above, with unsigned short caches.
                unsafe { b.launch(cfg) }.map_err(driver("launching kv_write"))?;
            }
            _ => return Err(shape("kv_write", "K and V of different types".into())),
        }
        Ok(())
    }

    fn check_attention(
        q: &CudaSlice<f32>,
        (kc, vc): (&KvBuf, &KvBuf),
        t: &RowTables<'_>,
        out: &CudaSlice<f32>,
        (heads, kv_heads, head_dim, block_size): AttnDims,
    ) -> Result<usize, CudaError> {
        let rows = t.pos.len();
        if heads == 0
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || head_dim == 0
            || head_dim > 512
            || block_size == 0
        {
            return Err(shape(
                "attention",
                format!("{heads} heads over {kv_heads} KV heads of {head_dim}"),
            ));
        }
        if q.len() != rows * heads * head_dim
            || out.len() != q.len()
            || t.table.len() != rows
            || kc.len() != vc.len()
            || kc.dtype() != vc.dtype()
        {
            return Err(shape("attention", format!("q {} for {rows} rows", q.len())));
        }
        Ok(rows)
    }

    /// Attention of the query rows listed in `listed` (`n` of them), one block per
    /// (row, head), over each row's positions; `out` rows not listed are untouched.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaSlice<f32>,
        kv: (&KvBuf, &KvBuf),
        listed: &CudaSlice<u32>,
        n: usize,
        t: &RowTables<'_>,
        out: &mut CudaSlice<f32>,
        dims: AttnDims,
    ) -> Result<(), CudaError> {
        let rows = Self::check_attention(q, kv, t, out, dims)?;
        if n > rows || listed.len() < n {
            return Err(shape("attention", format!("{n} listed of {rows} rows")));
        }
        if n == 0 {
            return Ok(());
        }
        let heads = dims.0;
        let f = self.function(
            Source::Attention,
            by_dtype(kv.0, "attention_f32", "attention_f16"),
        )?;
        let d = KernelDims::of(dims);
        let cfg = LaunchConfig {
            grid_dim: (n as u32, heads as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        push_qkv(&mut b, "attention", q, kv)?;
        b.arg(listed).arg(t.pos).arg(t.table).arg(t.tables).arg(out);
        b.arg(&d.heads)
            .arg(&d.kv_heads)
            .arg(&d.head_dim)
            .arg(&d.block_size)
            .arg(&d.scale);
        // SAFETY: arguments as declared; head_dim <= 512 (128 threads x 4); the caller
        // built the row tables from the sequences' block tables, which cover every
        // position (the runtime's invariant, as on the CPU); listed rows < rows.
        unsafe { b.launch(cfg) }.map_err(driver("launching attention"))?;
        Ok(())
    }

    /// Tiled prefill attention: for each tile `(first row, rows)` (rows of one
    /// sequence, at most [`super::geometry::PREFILL_TILE_ROWS`]), one block per (tile,
    /// head) over the tile's positions; `out` rows of no tile are untouched. `head_dim`
    /// at most [`super::geometry::PREFILL_MAX_HEAD_DIM`].
    pub fn prefill_attention(
        &self,
        q: &CudaSlice<f32>,
        kv: (&KvBuf, &KvBuf),
        tiles: &[(u32, u32)],
        t: &RowTables<'_>,
        out: &mut CudaSlice<f32>,
        dims: AttnDims,
    ) -> Result<(), CudaError> {
        use super::geometry::{PREFILL_MAX_HEAD_DIM, PREFILL_TILE_ROWS};
        let rows = Self::check_attention(q, kv, t, out, dims)?;
        let (heads, _, head_dim, _) = dims;
        let bad = tiles
            .iter()
            .any(|&(a, n)| n == 0 || n as usize > PREFILL_TILE_ROWS || (a + n) as usize > rows);
        if bad || head_dim > PREFILL_MAX_HEAD_DIM {
            return Err(shape(
                "prefill_attention",
                format!(
                    "{} tiles over {rows} rows, head_dim {head_dim}",
                    tiles.len()
                ),
            ));
        }
        if tiles.is_empty() {
            return Ok(());
        }
        let (row0, counts): (Vec<u32>, Vec<u32>) = tiles.iter().copied().unzip();
        let (d_row0, d_counts) = (
            self.upload_cached_u32(&row0)?,
            self.upload_cached_u32(&counts)?,
        );
        let f = self.function(
            Source::Prefill,
            by_dtype(kv.0, "prefill_f32", "prefill_f16"),
        )?;
        let d = KernelDims::of(dims);
        let cfg = LaunchConfig {
            grid_dim: (tiles.len() as u32, heads as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        push_qkv(&mut b, "prefill_attention", q, kv)?;
        b.arg(&*d_row0)
            .arg(&*d_counts)
            .arg(t.pos)
            .arg(t.table)
            .arg(t.tables)
            .arg(out);
        b.arg(&d.heads)
            .arg(&d.kv_heads)
            .arg(&d.head_dim)
            .arg(&d.block_size)
            .arg(&d.scale);
        // SAFETY: arguments as declared; every tile lies within the rows and holds at
        // most PF_ROWS rows of one sequence (the caller's runs), head_dim <= PF_MAX_DIM;
        // the row tables cover every position (the runtime's invariant).
        unsafe { b.launch(cfg) }.map_err(driver("launching prefill attention"))?;
        Ok(())
    }

    /// Split-KV decode attention of the `n` single-token rows listed in `listed`, then
    /// the merge of the splits into their `out` rows; `geometry` from
    /// [`super::geometry::decode_geometry`] for these rows.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_attention(
        &self,
        q: &CudaSlice<f32>,
        kv: (&KvBuf, &KvBuf),
        listed: &CudaSlice<u32>,
        n: usize,
        t: &RowTables<'_>,
        out: &mut CudaSlice<f32>,
        dims: AttnDims,
        geometry: DecodeGeometry,
    ) -> Result<(), CudaError> {
        let rows = Self::check_attention(q, kv, t, out, dims)?;
        let (heads, kv_heads, head_dim, _) = dims;
        if n > rows
            || listed.len() < n
            || !matches!(geometry.dims_per_lane, 2 | 4)
            || head_dim > 32 * geometry.dims_per_lane
            || !head_dim.is_multiple_of(geometry.dims_per_lane)
            || heads / kv_heads > super::geometry::DECODE_MAX_GROUP
            || geometry.splits == 0
            || geometry.chunk == 0
        {
            return Err(shape(
                "decode_attention",
                format!("{n} rows, head_dim {head_dim}, {geometry:?}"),
            ));
        }
        if n == 0 {
            return Ok(());
        }
        let (acc_n, ml_n) = geometry.workspace(n, heads, head_dim);
        let mut part_acc = self.zeros(acc_n)?;
        let mut part_ml = self.zeros(ml_n)?;
        let f16 = kv.0.dtype() == KvDtype::F16;
        let f = self.function(Source::Attention, geometry.kernel(f16))?;
        let d = KernelDims::of(dims);
        let chunk_i = geometry.chunk as i32;
        let cfg = LaunchConfig {
            grid_dim: (n as u32, kv_heads as u32, geometry.splits as u32),
            block_dim: (DECODE_WARPS * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        push_qkv(&mut b, "decode_attention", q, kv)?;
        b.arg(listed).arg(t.pos).arg(t.table).arg(t.tables);
        b.arg(&mut part_acc).arg(&mut part_ml);
        b.arg(&d.heads)
            .arg(&d.kv_heads)
            .arg(&d.head_dim)
            .arg(&d.block_size)
            .arg(&chunk_i)
            .arg(&d.scale);
        // SAFETY: arguments as declared; the workspace holds [n, heads, splits,
        // head_dim] and [n, heads, splits, 2] floats; head_dim, the group size and
        // the lane width were checked against the kernel's limits above.
        unsafe { b.launch(cfg) }.map_err(driver("launching decode attention"))?;
        let merge = self.function(Source::Attention, "merge_splits")?;
        let splits_i = geometry.splits as i32;
        let cfg = LaunchConfig {
            grid_dim: (n as u32, heads as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&merge);
        b.arg(&part_acc).arg(&part_ml).arg(listed).arg(out);
        b.arg(&d.heads).arg(&d.head_dim).arg(&splits_i);
        // SAFETY: (part_acc, part_ml, rows, out, heads, head_dim, splits) as declared.
        unsafe { b.launch(cfg) }.map_err(driver("launching the split merge"))?;
        Ok(())
    }
}
