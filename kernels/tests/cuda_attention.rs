//! CUDA attention against a float64 reference over the cache's stored values: prompt
//! chunks (tiled prefill and per-row kernels) and decode rows (split-KV), f32 and f16
//! caches, every head shape of the presets. Skipped, saying why, without a GPU.

#![allow(clippy::unwrap_used)]

mod cuda_common;

use cuda_common::{check, gpu, random};

/// One sequence of an attention check: its first query position, its query rows,
/// and its block table.
struct AttnCase {
    start: usize,
    rows: usize,
    blocks: Vec<u32>,
}

/// Attention of prompt chunks (per-row kernel) and of decode rows (split-KV kernel,
/// with the geometry the runtime picks and with forced splits, so the merge is
/// exercised) against a float64 reference over the cache's stored values, for f32 and
/// f16 caches and every head shape of the presets.
#[test]
fn attention_matches_the_reference_for_prompt_chunks_and_split_decode() {
    use infermeter_kernels::cuda::attention::{KvDtype, RowTables};
    use infermeter_kernels::cuda::geometry::{DecodeGeometry, decode_geometry, prefill_tiles};
    let Some(gpu) = gpu("attention") else { return };
    let block_size = 16usize;
    for (heads, kv_heads, head_dim) in [(9usize, 3usize, 64usize), (32, 8, 128), (8, 2, 32)] {
        for dtype in [KvDtype::F32, KvDtype::F16] {
            // A prompt chunk of 5 rows at positions 3..8, two decode rows at 700 and 40.
            let cases = [
                AttnCase {
                    start: 3,
                    rows: 5,
                    blocks: vec![7],
                },
                AttnCase {
                    start: 700,
                    rows: 1,
                    blocks: (8..52).rev().collect(),
                },
                AttnCase {
                    start: 40,
                    rows: 1,
                    blocks: vec![60, 2, 55],
                },
            ];
            let row = kv_heads * head_dim;
            let slots_total = 64 * block_size;
            let store = |x: f32| match dtype {
                KvDtype::F32 => f64::from(x),
                KvDtype::F16 => f64::from(half::f16::from_f32(x).to_f32()),
            };
            let mut kc = gpu.kv_zeros(dtype, slots_total * row).unwrap();
            let mut vc = gpu.kv_zeros(dtype, slots_total * row).unwrap();
            // Host copies of what the cache holds, by slot.
            let mut hk = vec![0f64; slots_total * row];
            let mut hv = vec![0f64; slots_total * row];
            let slot = |c: &AttnCase, p: usize| {
                c.blocks[p / block_size] as usize * block_size + p % block_size
            };
            for (ci, c) in cases.iter().enumerate() {
                let n = c.start + c.rows;
                let (k, v) = (
                    random(n * row, 300 + ci as u64),
                    random(n * row, 400 + ci as u64),
                );
                let slots: Vec<u32> = (0..n).map(|p| slot(c, p) as u32).collect();
                for (p, &s) in slots.iter().enumerate() {
                    for j in 0..row {
                        hk[s as usize * row + j] = store(k[p * row + j]);
                        hv[s as usize * row + j] = store(v[p * row + j]);
                    }
                }
                let max = *slots.iter().max().unwrap();
                gpu.kv_write(
                    &gpu.upload(&k).unwrap(),
                    &gpu.upload(&v).unwrap(),
                    &gpu.upload(&slots).unwrap(),
                    (&mut kc, &mut vc),
                    row,
                    max,
                )
                .unwrap();
            }
            let t_rows: usize = cases.iter().map(|c| c.rows).sum();
            let q = random(t_rows * heads * head_dim, 500);
            let (mut pos, mut table, mut tables) = (Vec::new(), Vec::new(), Vec::new());
            for c in &cases {
                let off = tables.len() as u32;
                tables.extend_from_slice(&c.blocks);
                for i in 0..c.rows {
                    pos.push((c.start + i) as u32);
                    table.push(off);
                }
            }
            let want: Vec<f64> = {
                let mut out = vec![0f64; t_rows * heads * head_dim];
                let mut r = 0;
                for c in &cases {
                    for i in 0..c.rows {
                        let last = c.start + i;
                        for h in 0..heads {
                            let kvh = h / (heads / kv_heads);
                            let qo = (r * heads + h) * head_dim;
                            let scores: Vec<f64> = (0..=last)
                                .map(|p| {
                                    let ko = slot(c, p) * row + kvh * head_dim;
                                    (0..head_dim)
                                        .map(|d| f64::from(q[qo + d]) * hk[ko + d])
                                        .sum::<f64>()
                                        / (head_dim as f64).sqrt()
                                })
                                .collect();
                            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                            let z: f64 = e.iter().sum();
                            for d in 0..head_dim {
                                out[qo + d] = (0..=last)
                                    .map(|p| e[p] * hv[slot(c, p) * row + kvh * head_dim + d])
                                    .sum::<f64>()
                                    / z;
                            }
                        }
                        r += 1;
                    }
                }
                out
            };
            let (d_pos, d_table, d_tables) = (
                gpu.upload(&pos).unwrap(),
                gpu.upload(&table).unwrap(),
                gpu.upload(&tables).unwrap(),
            );
            let t = RowTables {
                pos: &d_pos,
                table: &d_table,
                tables: &d_tables,
            };
            let d_q = gpu.upload(&q).unwrap();
            let dims = (heads, kv_heads, head_dim, block_size);
            let prompt_rows: Vec<u32> = (0..5).collect();
            let decode_rows: Vec<u32> = vec![5, 6];
            let picked =
                decode_geometry(2, heads, kv_heads, head_dim, 701, gpu.sm_count()).unwrap();
            let forced = DecodeGeometry {
                splits: 5,
                chunk: 141,
                ..picked
            };
            for g in [picked, forced] {
                let mut out = gpu.poisoned(q.len()).unwrap();
                gpu.attention(
                    &d_q,
                    (&kc, &vc),
                    &gpu.upload(&prompt_rows).unwrap(),
                    5,
                    &t,
                    &mut out,
                    dims,
                )
                .unwrap();
                gpu.decode_attention(
                    &d_q,
                    (&kc, &vc),
                    &gpu.upload(&decode_rows).unwrap(),
                    2,
                    &t,
                    &mut out,
                    dims,
                    g,
                )
                .unwrap();
                let what = format!("attention {heads}/{kv_heads}x{head_dim} {dtype:?} {g:?}");
                // FP32 sums over up to 701 positions and __expf: 1e-4 of a value of
                // magnitude <= 1.
                check(&what, &gpu.download(&out).unwrap(), &want, |_| 1e-4);
            }
            // The tiled prefill kernel: the chunk as one tile, each decode row as one.
            let mut out = gpu.poisoned(q.len()).unwrap();
            let tiles = prefill_tiles(&[(0, 5), (5, 1), (6, 1)]);
            gpu.prefill_attention(&d_q, (&kc, &vc), &tiles, &t, &mut out, dims)
                .unwrap();
            check(
                &format!("prefill attention {heads}/{kv_heads}x{head_dim} {dtype:?}"),
                &gpu.download(&out).unwrap(),
                &want,
                |_| 1e-4,
            );
            // Every decode row through the per-row kernel gives the same figures.
            let mut out = gpu.poisoned(q.len()).unwrap();
            let all: Vec<u32> = (0..t_rows as u32).collect();
            gpu.attention(
                &d_q,
                (&kc, &vc),
                &gpu.upload(&all).unwrap(),
                t_rows,
                &t,
                &mut out,
                dims,
            )
            .unwrap();
            check(
                "attention, per-row kernel",
                &gpu.download(&out).unwrap(),
                &want,
                |_| 1e-4,
            );
        }
    }
}
