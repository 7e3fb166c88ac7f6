//! One GPU: its context and stream, the modules compiled for it (cached per source),
//! and safe launchers of the kernels with their shapes checked before launch.
//!
//! Every launcher checks the sizes of its buffers against the shape it is given, so a
//! wrong shape is an error, never an out-of-bounds access; every launch's result is
//! checked. Launching is `unsafe` in cudarc (the kernel's signature is not checked
//! against the arguments); each launcher passes exactly the kernel's parameters, in
//! order, with the types its source declares.
//!
//! Status: compiled and type-checked on CPU-only machines; run only where a GPU is
//! present (`kernels/tests/cuda_ops.rs`, skipped with its reason elsewhere).

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DriverError, LaunchConfig, PushKernelArg,
};

use super::{CudaError, Source, compile_for};
use crate::format::Precision;

/// The suffix of a weight format's kernels (`gemv_q4_0`, `gemv_gate_up_q4_0`,
/// `gemv_grouped_q4_0`).
pub(super) fn format_suffix(format: Precision) -> &'static str {
    match format {
        Precision::F32 => "f32",
        Precision::F16 => "f16",
        Precision::Bf16 => "bf16",
        Precision::Q8_0 => "q8_0",
        Precision::Q4_0 => "q4_0",
        Precision::Q4_1 => "q4_1",
    }
}

/// Most rows one GEMV launch takes (`MAX_BATCH` in `gemv.cu`).
pub const GEMV_MAX_BATCH: usize = 8;

/// An open GPU.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: Option<&'static str>,
    modules: Mutex<HashMap<Source, Arc<CudaModule>>>,
    name: String,
    sm_count: usize,
    blas: BlasState,
    cache_u32: UploadCache<u32, Arc<CudaSlice<u32>>>,
    cache_u64: UploadCache<u64, Arc<CudaSlice<u64>>>,
}

/// Small host-to-device uploads that repeat, kept by content (most recent first): a
/// step's positions, KV slots, block tables and tiles are the same in every layer, a
/// MoE layer's expert address tables the same in every step. Only read by kernels, so
/// sharing them is safe. `D` is what an upload gives (a device buffer).
struct UploadCache<T, D> {
    capacity: usize,
    entries: Mutex<std::collections::VecDeque<(Vec<T>, D)>>,
}

impl<T: PartialEq + Clone, D: Clone> UploadCache<T, D> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// What `v` was uploaded as, or `upload(v)` kept for next time (the least
    /// recently used entry leaves when the cache is full).
    fn get_or_upload<E>(&self, v: &[T], upload: impl FnOnce(&[T]) -> Result<D, E>) -> Result<D, E> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = e.iter().position(|(k, _)| k.as_slice() == v)
            && let Some(hit) = e.remove(at)
        {
            let d = hit.1.clone();
            e.push_front(hit);
            return Ok(d);
        }
        let d = upload(v)?;
        e.push_front((v.to_vec(), d.clone()));
        e.truncate(self.capacity);
        Ok(d)
    }
}

/// The GPU's cuBLAS handle and the dequantization workspace, made on first use (by
/// [`super::blas`]).
#[derive(Default)]
pub(super) struct BlasState {
    /// The handle; `None` when libcublas is missing or did not start.
    pub(super) handle: std::sync::OnceLock<Option<cudarc::cublas::CudaBlas>>,
    /// Dequantized weights for the GEMM, grown to the largest matrix.
    pub(super) workspace: Mutex<Option<CudaSlice<u16>>>,
}

/// Checks a GEMV's buffers against its shape: 1..=8 rows, k whole blocks of the
/// format, every weight `[n_out, k]`, x `[batch, k]` and y `[batch, n_out]`.
fn check_gemv(
    what: &'static str,
    format: Precision,
    weights: &[&CudaSlice<u8>],
    (x_len, y_len): (usize, usize),
    (n_out, k, batch): (usize, usize, usize),
) -> Result<(), CudaError> {
    if batch == 0 || batch > GEMV_MAX_BATCH {
        return Err(shape(
            what,
            format!("batch {batch} is not 1..={GEMV_MAX_BATCH}"),
        ));
    }
    let per_block = format.block().0 as usize;
    if !k.is_multiple_of(per_block) {
        return Err(shape(
            what,
            format!("k = {k} is not a multiple of {per_block}"),
        ));
    }
    let bytes = n_out * format.bytes_for(k as u64) as usize;
    if let Some(w) = weights.iter().find(|w| w.len() != bytes) {
        return Err(shape(
            what,
            format!("{} weight bytes for [{n_out}, {k}] {format:?}", w.len()),
        ));
    }
    if x_len != batch * k || y_len != batch * n_out {
        return Err(shape(
            what,
            format!("x {x_len} / y {y_len} for batch {batch}"),
        ));
    }
    Ok(())
}

pub(super) fn driver(what: &'static str) -> impl Fn(DriverError) -> CudaError {
    move |e| CudaError::Launch {
        what,
        reason: e.to_string(),
    }
}

pub(super) fn shape(what: &'static str, msg: String) -> CudaError {
    CudaError::Shape { what, message: msg }
}

/// The NVRTC architecture name for a compute capability this build knows.
fn arch_of(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

pub(super) fn grid_1d(n: usize, block: u32) -> LaunchConfig {
    let blocks = n.div_ceil(block as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Gpu {
    /// Opens GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        let info = super::probe_device(ordinal)?;
        let no_device = |e: DriverError| CudaError::NoDevice {
            ordinal,
            reason: e.to_string(),
        };
        let ctx = CudaContext::new(ordinal).map_err(no_device)?;
        let (major, minor) = ctx.compute_capability().map_err(no_device)?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(no_device)?
            .max(1) as usize;
        let stream = ctx.default_stream();
        Ok(Self {
            ctx,
            stream,
            arch: arch_of(major, minor),
            modules: Mutex::new(HashMap::new()),
            name: info.name,
            sm_count,
            blas: Default::default(),
            // A step uploads about 8 distinct index vectors; a model has up to 3
            // expert tables per MoE layer.
            cache_u32: UploadCache::new(16),
            cache_u64: UploadCache::new(512),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cuBLAS handle and workspace.
    pub(super) fn blas_state(&self) -> &BlasState {
        &self.blas
    }

    /// Streaming multiprocessors on the device.
    pub fn sm_count(&self) -> usize {
        self.sm_count
    }

    /// Bytes free and in total on the device.
    pub fn memory(&self) -> Result<(u64, u64), CudaError> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(driver("reading free memory"))?;
        Ok((free as u64, total as u64))
    }

    /// Waits for every launch queued on the stream.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(driver("synchronising"))
    }

    /// The stream every launch goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Kernel `name` of `source`, compiling and loading the source on first use.
    pub fn function(&self, source: Source, name: &str) -> Result<CudaFunction, CudaError> {
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(&source) {
                Some(m) => Arc::clone(m),
                None => {
                    let ptx = compile_for(source, self.arch)?;
                    let m = self
                        .ctx
                        .load_module(ptx)
                        .map_err(driver("loading a module"))?;
                    modules.insert(source, Arc::clone(&m));
                    m
                }
            }
        };
        module
            .load_function(name)
            .map_err(driver("finding a kernel"))
    }

    /// `e` as an out-of-memory error with the device's figures when it is one.
    pub(super) fn alloc_error(
        &self,
        what: &'static str,
        bytes: usize,
        e: DriverError,
    ) -> CudaError {
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            let (free, total) = self.memory().unwrap_or((0, 0));
            return CudaError::OutOfMemory {
                what,
                requested: bytes as u64,
                free,
                total,
            };
        }
        driver(what)(e)
    }

    /// Copies host data to a new device buffer.
    pub fn upload<T: cudarc::driver::DeviceRepr>(
        &self,
        data: &[T],
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .clone_htod(data)
            .map_err(|e| self.alloc_error("uploading", std::mem::size_of_val(data), e))
    }

    /// `v` on the device, reusing an earlier upload of the same values. Kernels must
    /// only read the result.
    pub fn upload_cached_u32(&self, v: &[u32]) -> Result<Arc<CudaSlice<u32>>, CudaError> {
        self.cache_u32
            .get_or_upload(v, |v| Ok(Arc::new(self.upload(v)?)))
    }

    /// As [`Gpu::upload_cached_u32`], for 64-bit values (device addresses).
    pub fn upload_cached_u64(&self, v: &[u64]) -> Result<Arc<CudaSlice<u64>>, CudaError> {
        self.cache_u64
            .get_or_upload(v, |v| Ok(Arc::new(self.upload(v)?)))
    }

    /// Copies a device buffer to the host (waits for the stream).
    pub fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        data: &CudaSlice<T>,
    ) -> Result<Vec<T>, CudaError> {
        self.stream.clone_dtoh(data).map_err(driver("downloading"))
    }

    /// A buffer of `n` floats filled with NaN, so a kernel that skips an element is
    /// caught by any comparison.
    pub fn poisoned(&self, n: usize) -> Result<CudaSlice<f32>, CudaError> {
        self.upload(&vec![f32::NAN; n])
    }

    /// `y [batch, n_out] = x [batch, k] . w [n_out, k]^T`, `w` in `format`.
    pub fn gemv(
        &self,
        format: Precision,
        w: &CudaSlice<u8>,
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        (n_out, k, batch): (usize, usize, usize),
    ) -> Result<(), CudaError> {
        check_gemv("gemv", format, &[w], (x.len(), y.len()), (n_out, k, batch))?;
        let f = self.function(Source::Gemv, &format!("gemv_{}", format_suffix(format)))?;
        let (n_out_i, k_i, batch_i) = (n_out as i32, k as i32, batch as i32);
        let cfg = LaunchConfig {
            grid_dim: (n_out as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(w).arg(x).arg(y).arg(&n_out_i).arg(&k_i).arg(&batch_i);
        // SAFETY: the arguments are the kernel's (w, x, y, n_out, k, batch) in order and
        // type; their sizes were checked against the shape above.
        unsafe { b.launch(cfg) }.map_err(driver("launching gemv"))?;
        Ok(())
    }

    /// `y [batch, n_out] = silu(x . gate^T) * (x . up^T)`, both `[n_out, k]` in
    /// `format`: SwiGLU's gate and up in one launch.
    #[allow(clippy::too_many_arguments)]
    pub fn gemv_gate_up(
        &self,
        format: Precision,
        (gate, up): (&CudaSlice<u8>, &CudaSlice<u8>),
        x: &CudaView<'_, f32>,
        y: &mut CudaViewMut<'_, f32>,
        (n_out, k, batch): (usize, usize, usize),
    ) -> Result<(), CudaError> {
        check_gemv(
            "gemv_gate_up",
            format,
            &[gate, up],
            (x.len(), y.len()),
            (n_out, k, batch),
        )?;
        let name = format!("gemv_gate_up_{}", format_suffix(format));
        let f = self.function(Source::Gemv, &name)?;
        let (n_out_i, k_i, batch_i) = (n_out as i32, k as i32, batch as i32);
        let cfg = LaunchConfig {
            grid_dim: (n_out as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(gate)
            .arg(up)
            .arg(x)
            .arg(y)
            .arg(&n_out_i)
            .arg(&k_i)
            .arg(&batch_i);
        // SAFETY: (gate, up, x, y, n_out, k, batch) as declared; sizes checked above.
        unsafe { b.launch(cfg) }.map_err(driver("launching gemv_gate_up"))?;
        Ok(())
    }

    /// RMSNorm of `rows` rows of `groups` groups of `width` columns, times `w [width]`.
    pub fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        (rows, groups, width): (usize, usize, usize),
        eps: f32,
    ) -> Result<(), CudaError> {
        let n = rows * groups * width;
        if x.len() != n || y.len() != n || w.len() != width {
            return Err(shape(
                "rms_norm",
                format!("x {} y {} w {}", x.len(), y.len(), w.len()),
            ));
        }
        let f = self.function(Source::Elementwise, "rms_norm_f32")?;
        let (groups_i, width_i) = (groups as i32, width as i32);
        let cfg = LaunchConfig {
            grid_dim: ((rows * groups) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(x)
            .arg(w)
            .arg(y)
            .arg(&groups_i)
            .arg(&width_i)
            .arg(&eps);
        // SAFETY: (x, w, y, groups, width, eps) as declared; sizes checked.
        unsafe { b.launch(cfg) }.map_err(driver("launching rms_norm"))?;
        Ok(())
    }

    /// RoPE in place on `x [rows, heads*head_dim]`, row `r` at `positions[r]`.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        x: &mut CudaSlice<f32>,
        positions: &CudaSlice<u32>,
        cos: &CudaSlice<f32>,
        sin: &CudaSlice<f32>,
        (rows, heads, head_dim): (usize, usize, usize),
        context: usize,
        interleaved: bool,
    ) -> Result<(), CudaError> {
        let half = head_dim / 2;
        if head_dim % 2 != 0
            || x.len() != rows * heads * head_dim
            || positions.len() != rows
            || cos.len() != context * half
            || sin.len() != context * half
        {
            return Err(shape(
                "rope",
                format!("x {} positions {}", x.len(), positions.len()),
            ));
        }
        let f = self.function(Source::Elementwise, "rope_f32")?;
        let (heads_i, head_dim_i, inter) = (heads as i32, head_dim as i32, i32::from(interleaved));
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, heads as u32, 1),
            block_dim: (half.div_ceil(32).max(1) as u32 * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(x)
            .arg(positions)
            .arg(cos)
            .arg(sin)
            .arg(&heads_i)
            .arg(&head_dim_i)
            .arg(&inter);
        // SAFETY: (x, positions, cos, sin, heads, head_dim, interleaved) as declared;
        // sizes checked; positions must be < context (the caller's invariant, as on CPU).
        unsafe { b.launch(cfg) }.map_err(driver("launching rope"))?;
        Ok(())
    }

    /// `y = silu(gate) * up` (`swiglu = true`) or `y = gate + up`, elementwise.
    pub fn elementwise(
        &self,
        swiglu: bool,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let n = a.len();
        if b.len() != n || y.len() != n {
            return Err(shape(
                "elementwise",
                format!("{} / {} / {}", n, b.len(), y.len()),
            ));
        }
        let name = if swiglu { "swiglu_f32" } else { "add_f32" };
        let f = self.function(Source::Elementwise, name)?;
        let n64 = n as u64;
        let mut l = self.stream.launch_builder(&f);
        l.arg(a).arg(b).arg(y).arg(&n64);
        // SAFETY: (a, b, y, n) as declared (size_t is 64-bit on every CUDA platform).
        unsafe { l.launch(grid_1d(n, 256)) }.map_err(driver("launching an elementwise op"))?;
        Ok(())
    }

    /// `y[r] = table[ids[r]]`, rows of `cols` floats.
    pub fn embed(
        &self,
        table: &CudaSlice<f32>,
        ids: &CudaSlice<u32>,
        y: &mut CudaSlice<f32>,
        (vocab, cols): (usize, usize),
        max_id: u32,
    ) -> Result<(), CudaError> {
        if table.len() != vocab * cols || y.len() != ids.len() * cols || max_id as usize >= vocab {
            return Err(shape(
                "embed",
                format!("ids up to {max_id} of a {vocab}-row table"),
            ));
        }
        let f = self.function(Source::Elementwise, "embed_f32")?;
        let cols_i = cols as i32;
        let cfg = LaunchConfig {
            grid_dim: (ids.len() as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(table).arg(ids).arg(y).arg(&cols_i);
        // SAFETY: (table, ids, y, cols) as declared; every id < vocab (checked by the
        // caller's `max_id`).
        unsafe { b.launch(cfg) }.map_err(driver("launching embed"))?;
        Ok(())
    }

    /// Index of the largest value of each row of `x [rows, cols]`.
    pub fn argmax(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<u32>, CudaError> {
        if x.len() != rows * cols {
            return Err(shape(
                "argmax",
                format!("{} values for [{rows}, {cols}]", x.len()),
            ));
        }
        let f = self.function(Source::Elementwise, "argmax_f32")?;
        let mut out = self.upload(&vec![u32::MAX; rows])?;
        let cols_i = cols as i32;
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(&f);
        b.arg(x).arg(&mut out).arg(&cols_i);
        // SAFETY: (x, out, cols) as declared; sizes checked.
        unsafe { b.launch(cfg) }.map_err(driver("launching argmax"))?;
        self.download(&out)
    }

    /// A device copy of `x`.
    pub fn copy(&self, x: &CudaSlice<f32>) -> Result<CudaSlice<f32>, CudaError> {
        self.stream
            .clone_dtod(x)
            .map_err(|e| self.alloc_error("copying", x.len() * 4, e))
    }

    /// A zeroed buffer of `n` floats.
    pub fn zeros(&self, n: usize) -> Result<CudaSlice<f32>, CudaError> {
        self.stream
            .alloc_zeros(n)
            .map_err(|e| self.alloc_error("allocating", n * 4, e))
    }
}

#[cfg(test)]
mod tests {
    use super::UploadCache;

    #[test]
    fn the_upload_cache_reuses_equal_values_and_drops_the_least_recent() {
        let cache: UploadCache<u32, usize> = UploadCache::new(2);
        let mut uploads = 0;
        let mut get = |v: &[u32]| {
            cache
                .get_or_upload(v, |_| {
                    uploads += 1;
                    Ok::<_, ()>(uploads)
                })
                .unwrap()
        };
        assert_eq!(get(&[1, 2]), 1);
        assert_eq!(get(&[1, 2]), 1, "equal values: the same upload");
        assert_eq!(get(&[1, 3]), 2);
        assert_eq!(get(&[1, 2]), 1, "still kept; now the most recent");
        assert_eq!(get(&[4]), 3, "full: [1, 3] leaves");
        assert_eq!(get(&[1, 2]), 1);
        assert_eq!(get(&[1, 3]), 4, "uploaded again");
        assert_eq!(get(&[]), 5);
    }
}
