//! Launchers of the MoE kernels: routing and grouping on the device (`moe.cu`), and
//! the grouped expert products (`gemv.cu`): one launch runs every expert of a MoE layer
//! over the rows routed to it, the experts' matrices found through a table of device
//! addresses; then a deterministic combine.
//!
//! Status: compiled and assembled in CI; run only on a GPU (`kernels/tests/cuda_ops.rs`).

#![allow(unsafe_code)]

use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

use super::geometry::{MOE_GROUP_SLOTS, MoeGroups};
use super::gpu::{Gpu, driver, format_suffix, shape};
use super::{CudaError, Source};
use crate::format::Precision;
use crate::ops::Routing;

/// One expert matrix on the device: its bytes, shape `[out, inp]` and format.
#[derive(Clone, Copy)]
pub struct ExpertMatrix<'a> {
    /// The matrix in its storage format.
    pub bytes: &'a CudaSlice<u8>,
    /// Output features.
    pub out: usize,
    /// Input features.
    pub inp: usize,
    /// Storage format.
    pub format: Precision,
}

/// One expert's SwiGLU MLP: gate, up, down.
pub type ExpertMlp<'a> = [ExpertMatrix<'a>; 3];

/// Most experts the device routing takes (`MOE_MAX_EXPERTS` in `moe.cu`).
pub const DEVICE_MAX_EXPERTS: usize = 1024;
/// Most experts per token it takes (`MOE_MAX_TOP_K`).
pub const DEVICE_MAX_TOP_K: usize = 8;

/// A routing on the device: `[rows * top_k]` expert ids and weights.
pub struct DeviceRouting {
    experts: CudaSlice<u32>,
    weights: CudaSlice<f32>,
    rows: usize,
    top_k: usize,
    n_experts: usize,
}

/// A routing's pairs grouped by expert on the device.
pub struct DeviceGrouping {
    groups: DeviceGroups,
    slot_row: CudaSlice<u32>,
    pair_slot: CudaSlice<u32>,
    slots: usize,
    experts: usize,
}

/// One layer's experts' matrices (gate, up or down) as device addresses.
struct ExpertTable {
    ptrs: std::sync::Arc<CudaSlice<u64>>,
    experts: usize,
}

/// A MoE layer's groups on the device, checked against the experts.
struct DeviceGroups {
    expert: CudaSlice<u32>,
    count: CudaSlice<u32>,
    groups: usize,
}

impl Gpu {
    /// The device addresses of `weights`, one matrix per expert.
    ///
    /// # Safety
    /// The table holds raw addresses: every buffer must outlive each launch that
    /// reads the table (the caller keeps the weights borrowed meanwhile).
    unsafe fn expert_table(&self, weights: &[&CudaSlice<u8>]) -> Result<ExpertTable, CudaError> {
        let ptrs: Vec<u64> = weights
            .iter()
            .map(|w| {
                let (p, _sync) = w.device_ptr(self.stream());
                p
            })
            .collect();
        Ok(ExpertTable {
            ptrs: self.upload_cached_u64(&ptrs)?,
            experts: weights.len(),
        })
    }

    /// Every slot of every group through its expert's SwiGLU MLP: `slab` holds the
    /// groups' input slots (`[groups * 8, hidden]`), the result their outputs
    /// (`[groups * 8, hidden]`). Every expert must have gate and up of `[inter,
    /// hidden]` and down of `[hidden, inter]`, all in one format.
    pub fn grouped_ffn(
        &self,
        experts: &[ExpertMlp<'_>],
        groups: &MoeGroups,
        slab: &CudaSlice<f32>,
    ) -> Result<CudaSlice<f32>, CudaError> {
        let d_groups = self.device_groups(groups, experts.len())?;
        self.grouped_ffn_over(experts, &d_groups, slab)
    }

    /// [`Gpu::grouped_ffn`] over groups made on the device ([`Gpu::moe_group`]).
    pub fn grouped_ffn_on_device(
        &self,
        experts: &[ExpertMlp<'_>],
        grouping: &DeviceGrouping,
        slab: &CudaSlice<f32>,
    ) -> Result<CudaSlice<f32>, CudaError> {
        if grouping.experts != experts.len() {
            return Err(shape(
                "grouped_ffn",
                format!(
                    "grouped over {} experts, given {}",
                    grouping.experts,
                    experts.len()
                ),
            ));
        }
        self.grouped_ffn_over(experts, &grouping.groups, slab)
    }

    fn grouped_ffn_over(
        &self,
        experts: &[ExpertMlp<'_>],
        d_groups: &DeviceGroups,
        slab: &CudaSlice<f32>,
    ) -> Result<CudaSlice<f32>, CudaError> {
        let Some([g0, _, _]) = experts.first() else {
            return Err(shape("grouped_ffn", "no experts".into()));
        };
        let (inter, hidden, format) = (g0.out, g0.inp, g0.format);
        let same = experts.iter().all(|[g, u, d]| {
            (g.out, g.inp, g.format) == (inter, hidden, format)
                && (u.out, u.inp, u.format) == (inter, hidden, format)
                && (d.out, d.inp, d.format) == (hidden, inter, format)
                && [g, u, d]
                    .iter()
                    .all(|m| m.bytes.len() == m.out * format.bytes_for(m.inp as u64) as usize)
        });
        if !same {
            return Err(shape(
                "grouped_ffn",
                "experts of mixed shapes or formats".into(),
            ));
        }
        let slots = d_groups.groups * MOE_GROUP_SLOTS;
        let pick = |i: usize| experts.iter().map(|e| e[i].bytes).collect::<Vec<_>>();
        // SAFETY: the tables hold the addresses of `experts`' buffers, borrowed for
        // this whole call; the launches that read them are queued before it returns
        // and the stream orders any later free after them.
        let (gate, up, down) = unsafe {
            (
                self.expert_table(&pick(0))?,
                self.expert_table(&pick(1))?,
                self.expert_table(&pick(2))?,
            )
        };
        let mut h = self.zeros(slots * inter)?;
        let mut y = self.zeros(slots * hidden)?;
        // SAFETY: every address is a live matrix of the shape and format each launch
        // is given (checked above); the groups were checked against the experts (or
        // made by moe_group, whose ids are below the expert count).
        unsafe {
            self.gemv_grouped_gate_up(
                format,
                (&gate, &up),
                d_groups,
                slab,
                &mut h,
                (inter, hidden),
            )?;
            self.gemv_grouped(format, &down, d_groups, &h, &mut y, (hidden, inter))?;
        }
        Ok(y)
    }

    /// Routes each row of `logits [rows, n_experts]` on the device: softmax, the
    /// `top_k` largest (ties to the lower id), renormalised when asked.
    pub fn moe_route(
        &self,
        logits: &CudaSlice<f32>,
        rows: usize,
        n_experts: usize,
        top_k: usize,
        renormalise: bool,
    ) -> Result<DeviceRouting, CudaError> {
        if n_experts == 0
            || n_experts > DEVICE_MAX_EXPERTS
            || top_k == 0
            || top_k > DEVICE_MAX_TOP_K.min(n_experts)
            || logits.len() != rows * n_experts
        {
            return Err(shape(
                "moe_route",
                format!(
                    "top-{top_k} of {n_experts} experts for {rows} rows ({} logits)",
                    logits.len()
                ),
            ));
        }
        let mut experts = self
            .stream()
            .alloc_zeros::<u32>(rows * top_k)
            .map_err(|e| self.alloc_error("routing", 4 * rows * top_k, e))?;
        let mut weights = self.zeros(rows * top_k)?;
        if rows > 0 {
            let f = self.function(Source::Moe, "moe_route_f32")?;
            let (e_i, k_i, r_i) = (n_experts as i32, top_k as i32, i32::from(renormalise));
            let cfg = LaunchConfig {
                grid_dim: (rows as u32, 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = self.stream().launch_builder(&f);
            b.arg(logits).arg(&mut experts).arg(&mut weights);
            b.arg(&e_i).arg(&k_i).arg(&r_i);
            // SAFETY: (logits, experts, weights, n_experts, top_k, renormalise) as
            // declared; n_experts <= MOE_MAX_EXPERTS and top_k <= MOE_MAX_TOP_K.
            unsafe { b.launch(cfg) }.map_err(driver("launching moe_route"))?;
        }
        Ok(DeviceRouting {
            experts,
            weights,
            rows,
            top_k,
            n_experts,
        })
    }

    /// The routing back on the host (tests; the engine keeps it on the device).
    pub fn download_routing(&self, r: &DeviceRouting) -> Result<Routing, CudaError> {
        Ok(Routing {
            top_k: r.top_k,
            experts: self.download(&r.experts)?,
            weights: self.download(&r.weights)?,
        })
    }

    /// Groups `r`'s pairs by expert on the device (as [`super::geometry::moe_groups`]
    /// does on the host), into the most groups they can need: `pairs / 8` rounded up
    /// plus one per expert; unused groups have count 0.
    pub fn moe_group(&self, r: &DeviceRouting) -> Result<DeviceGrouping, CudaError> {
        let pairs = r.rows * r.top_k;
        let max_groups = pairs.div_ceil(MOE_GROUP_SLOTS) + r.n_experts.min(pairs);
        let slots = max_groups * MOE_GROUP_SLOTS;
        let u32s = |n: usize, what: &'static str| {
            self.stream()
                .alloc_zeros::<u32>(n.max(1))
                .map_err(|e| self.alloc_error(what, 4 * n, e))
        };
        let mut expert = u32s(max_groups, "groups")?;
        let mut count = u32s(max_groups, "groups")?;
        let mut slot_row = u32s(slots, "slots")?;
        let mut pair_slot = u32s(pairs, "pairs")?;
        if pairs > 0 {
            let f = self.function(Source::Moe, "moe_group")?;
            let (p_i, k_i, e_i, g_i) = (
                pairs as i32,
                r.top_k as i32,
                r.n_experts as i32,
                max_groups as i32,
            );
            let cfg = LaunchConfig {
                grid_dim: (1, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = self.stream().launch_builder(&f);
            b.arg(&r.experts).arg(&p_i).arg(&k_i).arg(&e_i);
            b.arg(&mut expert)
                .arg(&mut count)
                .arg(&mut slot_row)
                .arg(&mut pair_slot)
                .arg(&g_i);
            // SAFETY: arguments as declared; every expert id is below n_experts (made by
            // moe_route); the tables hold max_groups groups, their slots and every pair.
            unsafe { b.launch(cfg) }.map_err(driver("launching moe_group"))?;
        }
        Ok(DeviceGrouping {
            groups: DeviceGroups {
                expert,
                count,
                groups: max_groups,
            },
            slot_row,
            pair_slot,
            slots,
            experts: r.n_experts,
        })
    }

    /// The used groups of `g` back on the host, as [`super::geometry::moe_groups`]
    /// makes them (tests).
    pub fn download_grouping(&self, g: &DeviceGrouping) -> Result<MoeGroups, CudaError> {
        let count = self.download(&g.groups.count)?;
        let used = count.iter().take_while(|&&c| c > 0).count();
        let mut slot_row = self.download(&g.slot_row)?;
        slot_row.truncate(used * MOE_GROUP_SLOTS);
        Ok(MoeGroups {
            group_expert: self.download(&g.groups.expert)?[..used].to_vec(),
            group_count: count[..used].to_vec(),
            slot_row,
            pair_slot: self.download(&g.pair_slot)?,
            pair_weight: Vec::new(),
        })
    }

    /// `out[r] = sum_j w[r, j] * y[slot[r, j]]` with the slots and weights on the device.
    pub fn moe_combine_on_device(
        &self,
        y: &CudaSlice<f32>,
        grouping: &DeviceGrouping,
        r: &DeviceRouting,
        out: &mut CudaSlice<f32>,
        cols: usize,
    ) -> Result<(), CudaError> {
        if y.len() != grouping.slots * cols || out.len() != r.rows * cols {
            return Err(shape(
                "moe_combine",
                format!("y {} / out {} of {cols}", y.len(), out.len()),
            ));
        }
        if r.rows == 0 {
            return Ok(());
        }
        let f = self.function(Source::Gemv, "moe_combine_f32")?;
        let (cols_i, k_i) = (cols as i32, r.top_k as i32);
        let cfg = LaunchConfig {
            grid_dim: (r.rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        b.arg(y)
            .arg(&grouping.pair_slot)
            .arg(&r.weights)
            .arg(out)
            .arg(&cols_i)
            .arg(&k_i);
        // SAFETY: as declared; every pair's slot (from moe_group) is a row of y.
        unsafe { b.launch(cfg) }.map_err(driver("launching moe_combine"))?;
        Ok(())
    }

    /// The slots' input rows (for gathering the slab).
    pub fn slot_rows<'a>(&self, g: &'a DeviceGrouping) -> (&'a CudaSlice<u32>, usize) {
        (&g.slot_row, g.slots)
    }

    /// Uploads `g`'s groups after checking them against `experts`.
    fn device_groups(&self, g: &MoeGroups, experts: usize) -> Result<DeviceGroups, CudaError> {
        let bad_expert = g.group_expert.iter().any(|&e| e as usize >= experts);
        let bad_count = g
            .group_count
            .iter()
            .any(|&c| c == 0 || c as usize > MOE_GROUP_SLOTS);
        if bad_expert
            || bad_count
            || g.group_count.len() != g.group_expert.len()
            || g.slot_row.len() != g.group_expert.len() * MOE_GROUP_SLOTS
        {
            return Err(shape(
                "moe groups",
                format!("{} groups over {experts} experts", g.group_expert.len()),
            ));
        }
        Ok(DeviceGroups {
            expert: self.upload(&g.group_expert)?,
            count: self.upload(&g.group_count)?,
            groups: g.group_expert.len(),
        })
    }

    fn check_grouped(
        what: &'static str,
        tables: &[&ExpertTable],
        groups: &DeviceGroups,
        x: &CudaSlice<f32>,
        y: &CudaSlice<f32>,
        (n_out, k): (usize, usize),
        format: Precision,
    ) -> Result<(), CudaError> {
        let slots = groups.groups * MOE_GROUP_SLOTS;
        let experts = tables.first().map_or(0, |t| t.experts);
        if tables.iter().any(|t| t.experts != experts)
            || x.len() != slots * k
            || y.len() != slots * n_out
            || !k.is_multiple_of(format.block().0 as usize)
            || groups.groups > 65_535
        {
            return Err(shape(
                what,
                format!(
                    "x {} / y {} for {} groups of [{n_out}, {k}]",
                    x.len(),
                    y.len(),
                    groups.groups
                ),
            ));
        }
        Ok(())
    }

    /// `y[slot] = x[slot] . W_e^T` for every slot of every group, `W_e` `[n_out, k]`
    /// in `format` at `table[e]`.
    ///
    /// # Safety
    /// Every address in `table` is a live weight of `[n_out, k]` in `format` (what
    /// [`Gpu::expert_table`] was given).
    unsafe fn gemv_grouped(
        &self,
        format: Precision,
        table: &ExpertTable,
        groups: &DeviceGroups,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        shape: (usize, usize),
    ) -> Result<(), CudaError> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.launch_grouped("gemv_grouped", format, &[table], groups, x, y, shape) }
    }

    /// `y[slot] = silu(x[slot] . G_e^T) * (x[slot] . U_e^T)` for every slot.
    ///
    /// # Safety
    /// As [`Gpu::gemv_grouped`], for both tables.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemv_grouped_gate_up(
        &self,
        format: Precision,
        (gate, up): (&ExpertTable, &ExpertTable),
        groups: &DeviceGroups,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        shape: (usize, usize),
    ) -> Result<(), CudaError> {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            self.launch_grouped(
                "gemv_grouped_gate_up",
                format,
                &[gate, up],
                groups,
                x,
                y,
                shape,
            )
        }
    }

    /// Launches kernel `name` (`gemv_grouped`, `gemv_grouped_gate_up`) over `groups`:
    /// its arguments are the tables' pointer arrays in order, then (group_expert,
    /// group_count, x, y, n_out, k); one block of 128 threads per (output, group).
    ///
    /// # Safety
    /// Every address in every table is a live weight of `[n_out, k]` in `format`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn launch_grouped(
        &self,
        name: &'static str,
        format: Precision,
        tables: &[&ExpertTable],
        groups: &DeviceGroups,
        x: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        (n_out, k): (usize, usize),
    ) -> Result<(), CudaError> {
        Self::check_grouped(name, tables, groups, x, y, (n_out, k), format)?;
        if groups.groups == 0 {
            return Ok(());
        }
        let f = self.function(Source::Gemv, &format!("{name}_{}", format_suffix(format)))?;
        let (n_i, k_i) = (n_out as i32, k as i32);
        let cfg = LaunchConfig {
            grid_dim: (n_out as u32, groups.groups as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        for t in tables {
            b.arg(&*t.ptrs);
        }
        b.arg(&groups.expert)
            .arg(&groups.count)
            .arg(x)
            .arg(y)
            .arg(&n_i)
            .arg(&k_i);
        let launching = if tables.len() == 2 {
            "launching gemv_grouped_gate_up"
        } else {
            "launching gemv_grouped"
        };
        // SAFETY: (w_ptrs..., group_expert, group_count, x, y, n_out, k) as the
        // kernel declares them; the groups were checked against every table
        // (experts, counts <= 8), x and y hold every slot; the addresses are live
        // weights of this shape (the caller's contract).
        unsafe { b.launch(cfg) }.map_err(driver(launching))?;
        Ok(())
    }

    /// `out[r] = sum_j w[r, j] * y[slot[r, j]]` for `rows` rows of `cols` floats.
    pub fn moe_combine(
        &self,
        y: &CudaSlice<f32>,
        g: &MoeGroups,
        out: &mut CudaSlice<f32>,
        cols: usize,
        top_k: usize,
    ) -> Result<(), CudaError> {
        let pairs = g.pair_slot.len();
        let rows = pairs.checked_div(top_k).unwrap_or(0);
        let slots = y.len().checked_div(cols).unwrap_or(0);
        if top_k == 0
            || rows * top_k != pairs
            || g.pair_weight.len() != pairs
            || out.len() != rows * cols
            || g.pair_slot.iter().any(|&s| s as usize >= slots)
        {
            return Err(shape(
                "moe_combine",
                format!("{pairs} pairs, top-{top_k}, {slots} slots"),
            ));
        }
        if rows == 0 {
            return Ok(());
        }
        let (d_slot, d_w) = (self.upload(&g.pair_slot)?, self.upload(&g.pair_weight)?);
        let f = self.function(Source::Gemv, "moe_combine_f32")?;
        let (cols_i, k_i) = (cols as i32, top_k as i32);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream().launch_builder(&f);
        b.arg(y)
            .arg(&d_slot)
            .arg(&d_w)
            .arg(out)
            .arg(&cols_i)
            .arg(&k_i);
        // SAFETY: (y, pair_slot, pair_weight, out, cols, top_k) as declared; every slot
        // is a row of y, out holds rows x cols.
        unsafe { b.launch(cfg) }.map_err(driver("launching moe_combine"))?;
        Ok(())
    }
}
