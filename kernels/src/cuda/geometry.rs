//! Launch geometry of the CUDA kernels as plain functions, tested on the CPU: how
//! decode attention splits a sequence's positions, which kernel variant takes a head
//! size, and the workspace each launch needs.

/// Warps of a decode-attention block (`DEC_WARPS` in `attention.cu`).
pub const DECODE_WARPS: u32 = 4;
/// Most query heads per KV head a decode block serves (`DEC_MAX_GROUP`).
pub const DECODE_MAX_GROUP: usize = 8;
/// Fewest positions a split is given: below it, the merge costs more than it gains.
pub const DECODE_MIN_CHUNK: usize = 256;
/// Most splits of one launch.
pub const DECODE_MAX_SPLITS: usize = 64;
/// Blocks per multiprocessor the split count aims at.
pub const DECODE_BLOCKS_PER_SM: usize = 2;

/// Fewest rows a product of `format` weights goes through cuBLAS with (fewer: the
/// GEMV, 8 rows a launch). A float weight is read once by the GEMM instead of once per
/// 8 rows: worth it from 16 rows. A quantized one is first dequantized to bf16 (read
/// its bytes, write 2 bytes a weight, then the GEMM reads those): worth it when that
/// is less than the GEMV's reads, from 64 rows for 4-bit formats.
pub fn gemm_min_rows(format: crate::format::Precision) -> usize {
    use crate::format::Precision as P;
    match format {
        P::F32 | P::F16 | P::Bf16 => 16,
        P::Q8_0 | P::Q4_0 | P::Q4_1 => 64,
    }
}

/// Query rows of one prefill-attention tile (`PF_ROWS` in `prefill.cu`).
pub const PREFILL_TILE_ROWS: usize = 16;
/// Largest head the tiled prefill kernel takes (`PF_MAX_DIM`); larger heads go
/// through the per-row kernel.
pub const PREFILL_MAX_HEAD_DIM: usize = 128;

/// The tiles of prefill attention: each run of consecutive query rows of one sequence
/// (`(first row, rows)`) cut into tiles of at most [`PREFILL_TILE_ROWS`] rows, as
/// `(first row, rows)`.
pub fn prefill_tiles(runs: &[(usize, usize)]) -> Vec<(u32, u32)> {
    let mut tiles = Vec::new();
    for &(first, rows) in runs {
        let mut r = 0;
        while r < rows {
            let n = PREFILL_TILE_ROWS.min(rows - r);
            tiles.push(((first + r) as u32, n as u32));
            r += n;
        }
    }
    tiles
}

/// Slots of one expert group (`MAX_BATCH` in `gemv.cu`).
pub const MOE_GROUP_SLOTS: usize = 8;

/// One MoE layer's dispatch as grouped launches: the (row, choice) pairs routed to
/// each expert, in expert order, cut into groups of at most [`MOE_GROUP_SLOTS`] slots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MoeGroups {
    /// Each group's expert.
    pub group_expert: Vec<u32>,
    /// Slots used in each group (1..=8).
    pub group_count: Vec<u32>,
    /// The input row of each slot, `[groups * 8]` (unused slots: row 0).
    pub slot_row: Vec<u32>,
    /// The slot of each (row, choice) pair, `[rows * top_k]`.
    pub pair_slot: Vec<u32>,
    /// The mixing weight of each pair, `[rows * top_k]`.
    pub pair_weight: Vec<f32>,
}

/// Groups `routing`'s pairs by expert (ids below `experts`); `None` when a pair names
/// an expert that does not exist.
pub fn moe_groups(routing: &crate::ops::Routing, experts: usize) -> Option<MoeGroups> {
    let mut by_expert: Vec<Vec<usize>> = vec![Vec::new(); experts];
    for (pair, &e) in routing.experts.iter().enumerate() {
        by_expert.get_mut(e as usize)?.push(pair);
    }
    let k = routing.top_k.max(1);
    let mut g = MoeGroups {
        pair_slot: vec![0; routing.experts.len()],
        pair_weight: routing.weights.clone(),
        ..Default::default()
    };
    for (e, pairs) in by_expert.iter().enumerate() {
        for chunk in pairs.chunks(MOE_GROUP_SLOTS) {
            let base = g.slot_row.len();
            g.group_expert.push(e as u32);
            g.group_count.push(chunk.len() as u32);
            g.slot_row.resize(base + MOE_GROUP_SLOTS, 0);
            for (i, &pair) in chunk.iter().enumerate() {
                g.slot_row[base + i] = (pair / k) as u32;
                g.pair_slot[pair] = (base + i) as u32;
            }
        }
    }
    Some(g)
}

/// How one decode-attention launch covers its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeGeometry {
    /// Dimensions each lane covers (2: head_dim <= 64; 4: head_dim <= 128).
    pub dims_per_lane: usize,
    /// Splits of each row's positions.
    pub splits: usize,
    /// Positions per split.
    pub chunk: usize,
}

impl DecodeGeometry {
    /// The kernel (`decode_{f32,f16}_d{64,128}`) for a KV cache of `f16` or f32.
    pub fn kernel(&self, f16: bool) -> &'static str {
        match (f16, self.dims_per_lane) {
            (false, 2) => "decode_f32_d64",
            (false, _) => "decode_f32_d128",
            (true, 2) => "decode_f16_d64",
            (true, _) => "decode_f16_d128",
        }
    }

    /// Floats of the partial sums (`[rows, heads, splits, head_dim]`) and of the
    /// running maxima and denominators (`[rows, heads, splits, 2]`).
    pub fn workspace(&self, rows: usize, heads: usize, head_dim: usize) -> (usize, usize) {
        let parts = rows * heads * self.splits;
        (parts * head_dim, parts * 2)
    }
}

/// The geometry of decode attention for `rows` decode rows of `heads` query heads over
/// `kv_heads` KV heads of `head_dim`, the longest row attending to `max_positions`, on
/// a GPU of `sm_count` multiprocessors; `None` when the split kernel cannot take the
/// shape (the per-row kernel does).
///
/// Splits only when `rows x kv_heads` blocks do not fill the GPU (about
/// [`DECODE_BLOCKS_PER_SM`] blocks per multiprocessor), into no more splits than
/// `max_positions / DECODE_MIN_CHUNK` rounded up (so 300 positions make at most 2
/// splits, of 150).
pub fn decode_geometry(
    rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    max_positions: usize,
    sm_count: usize,
) -> Option<DecodeGeometry> {
    if rows == 0
        || kv_heads == 0
        || !heads.is_multiple_of(kv_heads)
        || heads / kv_heads > DECODE_MAX_GROUP
    {
        return None;
    }
    let dims_per_lane = match head_dim {
        d if d <= 64 && d.is_multiple_of(2) => 2,
        d if d <= 128 && d.is_multiple_of(4) => 4,
        _ => return None,
    };
    let blocks = rows * kv_heads;
    let want = DECODE_BLOCKS_PER_SM * sm_count.max(1);
    let by_fill = want.div_ceil(blocks).max(1);
    let by_length = max_positions.div_ceil(DECODE_MIN_CHUNK).max(1);
    let splits = by_fill.min(by_length).min(DECODE_MAX_SPLITS);
    let chunk = max_positions.max(1).div_ceil(splits);
    Some(DecodeGeometry {
        dims_per_lane,
        splits,
        chunk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gpu_does_not_split_and_a_lone_long_sequence_does() {
        // Llama 3 8B (32 heads, 8 KV heads) on 132 SMs.
        let g = decode_geometry(64, 32, 8, 128, 8192, 132).unwrap();
        assert_eq!((g.splits, g.dims_per_lane), (1, 4));
        assert_eq!(g.chunk, 8192);
        // Batch 1 at 32K: 8 blocks would idle the GPU; 33 splits of <= 1K positions.
        let g = decode_geometry(1, 32, 8, 128, 32_768, 132).unwrap();
        assert_eq!(g.splits, 33);
        assert!(g.chunk * g.splits >= 32_768 && g.chunk >= DECODE_MIN_CHUNK);
        // Short contexts are not split below the minimum chunk.
        let g = decode_geometry(1, 32, 8, 128, 300, 132).unwrap();
        assert_eq!((g.splits, g.chunk), (2, 150));
        let g = decode_geometry(1, 32, 8, 128, 1, 132).unwrap();
        assert_eq!((g.splits, g.chunk), (1, 1));
        // Never past the cap.
        let g = decode_geometry(1, 8, 1, 128, 1 << 20, 1000).unwrap();
        assert_eq!(g.splits, DECODE_MAX_SPLITS);
    }

    #[test]
    fn head_sizes_and_groups_pick_a_variant_or_none() {
        let smol = decode_geometry(4, 9, 3, 64, 100, 132).unwrap();
        assert_eq!(smol.kernel(true), "decode_f16_d64");
        assert_eq!(
            decode_geometry(4, 32, 4, 128, 100, 132)
                .unwrap()
                .kernel(false),
            "decode_f32_d128"
        );
        assert!(decode_geometry(4, 32, 8, 256, 100, 132).is_none());
        assert!(decode_geometry(4, 32, 8, 66, 100, 132).is_none());
        assert!(
            decode_geometry(4, 64, 4, 128, 100, 132).is_none(),
            "group of 16"
        );
        assert!(decode_geometry(0, 32, 8, 128, 100, 132).is_none());
        assert!(decode_geometry(4, 30, 8, 128, 100, 132).is_none());
    }

    #[test]
    fn the_gemm_takes_prompt_chunks_and_the_gemv_decode_batches() {
        use crate::format::Precision;
        for p in Precision::ALL {
            assert!(gemm_min_rows(p) > 8, "{p}: decode batches stay on the GEMV");
        }
        // Dequantizing costs 2 + 2 bytes a weight on top of the quantized read: at
        // 4.5 bits a weight that is the GEMV's reads for about 64 rows.
        let q4 = Precision::Q4_0.bits_per_weight() / 8.0;
        let gemv_launches = (q4 + 4.0) / q4;
        assert!((gemv_launches * 8.0 - 64.0).abs() < 4.0, "{gemv_launches}");
        assert_eq!(gemm_min_rows(Precision::Q4_0), 64);
        assert_eq!(gemm_min_rows(Precision::Bf16), 16);
    }

    #[test]
    fn prefill_tiles_cover_every_row_once_within_its_sequence() {
        let runs = [(0usize, 40usize), (40, 1), (41, 16), (57, 17)];
        let tiles = prefill_tiles(&runs);
        assert_eq!(
            tiles,
            [
                (0, 16),
                (16, 16),
                (32, 8),
                (40, 1),
                (41, 16),
                (57, 16),
                (73, 1)
            ]
        );
        let mut covered: Vec<u32> = tiles.iter().flat_map(|&(a, n)| a..a + n).collect();
        covered.sort_unstable();
        assert_eq!(covered, (0..74).collect::<Vec<u32>>());
        // No tile crosses from one run into the next.
        for (a, n) in tiles {
            let run = runs
                .iter()
                .find(|r| r.0 as u32 <= a && a < (r.0 + r.1) as u32)
                .unwrap();
            assert!(a + n <= (run.0 + run.1) as u32);
        }
        assert!(prefill_tiles(&[]).is_empty());
    }

    #[test]
    fn moe_groups_give_every_pair_one_slot_of_its_expert() {
        use crate::ops::Routing;
        // 10 rows, top-2 of 4 experts; expert 1 is chosen by every row (two groups).
        let mut experts = Vec::new();
        let mut weights = Vec::new();
        for r in 0..10u32 {
            experts.extend([1, if r % 2 == 0 { 0 } else { 3 }]);
            weights.extend([0.75, 0.25]);
        }
        let routing = Routing {
            top_k: 2,
            experts,
            weights,
        };
        let g = moe_groups(&routing, 4).unwrap();
        assert_eq!(g.group_expert, [0, 1, 1, 3]);
        assert_eq!(g.group_count, [5, 8, 2, 5]);
        assert_eq!(g.slot_row.len(), 4 * MOE_GROUP_SLOTS);
        for (pair, &slot) in g.pair_slot.iter().enumerate() {
            let slot = slot as usize;
            let group = slot / MOE_GROUP_SLOTS;
            assert_eq!(g.group_expert[group], routing.experts[pair], "pair {pair}");
            assert!(slot % MOE_GROUP_SLOTS < g.group_count[group] as usize);
            assert_eq!(g.slot_row[slot] as usize, pair / 2);
        }
        let mut slots = g.pair_slot.clone();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 20, "one slot per pair");
        assert!(moe_groups(&routing, 2).is_none(), "expert 3 of 2");
    }

    #[test]
    fn the_workspace_holds_every_split_of_every_head() {
        let g = decode_geometry(2, 32, 8, 128, 4096, 132).unwrap();
        let (acc, ml) = g.workspace(2, 32, 128);
        assert_eq!(acc, 2 * 32 * g.splits * 128);
        assert_eq!(ml, 2 * 32 * g.splits * 2);
    }
}
