// Tiled (flash-style) causal attention of prompt chunks over the paged KV cache:
// one block per (tile of up to PF_ROWS consecutive query rows of one sequence, query
// head). The block stages the tile's queries, then walks the positions in tiles of
// 32: K and V rows of the tile go to shared memory (converted to f32), each lane
// scores one position for a query row, the warp takes the tile's max and sum, and
// each lane folds the tile's values into its dimensions of the output (online
// softmax, so nothing of size context is kept). Four warps share the block, each
// taking every fourth query row of the tile.
//
// Rows of a tile belong to one sequence: row tile_row0[t] + i is at position
// row_pos[tile_row0[t] + i], and its positions live in the sequence's block table.
// head_dim <= PF_MAX_DIM. Grid: (tiles, heads); block: PF_WARPS * 32.

#define PF_ROWS 16
#define PF_WARPS 4
#define PF_KEYS 32
#define PF_MAX_DIM 128
#define PF_DIMS_PER_LANE (PF_MAX_DIM / 32)

template <typename T>
__device__ void prefill(const float* __restrict__ q, const T* __restrict__ kc,
                        const T* __restrict__ vc, const unsigned int* __restrict__ tile_row0,
                        const unsigned int* __restrict__ tile_rows,
                        const unsigned int* __restrict__ row_pos,
                        const unsigned int* __restrict__ row_table,
                        const unsigned int* __restrict__ tables, float* __restrict__ out,
                        int heads, int kv_heads, int head_dim, int block_size, float scale) {
    // K rows padded by one float so that lanes reading position `lane` hit distinct banks.
    __shared__ float sk[PF_KEYS][PF_MAX_DIM + 1];
    __shared__ float sv[PF_KEYS][PF_MAX_DIM];
    __shared__ float sq[PF_ROWS][PF_MAX_DIM];
    const float neg_inf = __int_as_float(0xff800000);
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int kvh = h / (heads / kv_heads);
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    const unsigned int row0 = tile_row0[t];
    const int n = (int)tile_rows[t];
    const unsigned int* table = tables + row_table[row0];
    const unsigned int last = row_pos[row0 + n - 1];

    for (int idx = threadIdx.x; idx < PF_ROWS * head_dim; idx += blockDim.x) {
        const int r = idx / head_dim;
        const int d = idx % head_dim;
        sq[r][d] = r < n ? q[((size_t)(row0 + r) * heads + h) * head_dim + d] * scale : 0.0f;
    }

    // Each warp's rows: warp, warp + PF_WARPS, ...
    float m[PF_ROWS / PF_WARPS];
    float l[PF_ROWS / PF_WARPS];
    float acc[PF_ROWS / PF_WARPS][PF_DIMS_PER_LANE];
#pragma unroll
    for (int i = 0; i < PF_ROWS / PF_WARPS; ++i) {
        m[i] = neg_inf;
        l[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < PF_DIMS_PER_LANE; ++j) acc[i][j] = 0.0f;
    }

    for (unsigned int t0 = 0; t0 <= last; t0 += PF_KEYS) {
        __syncthreads();  // the previous tile is no longer read (and sq is written)
        for (int idx = threadIdx.x; idx < PF_KEYS * head_dim; idx += blockDim.x) {
            const int k = idx / head_dim;
            const int d = idx % head_dim;
            const unsigned int p = t0 + k;
            float kv = 0.0f, vv = 0.0f;
            if (p <= last) {
                const size_t slot = (size_t)table[p / block_size] * block_size + p % block_size;
                const size_t off = (slot * kv_heads + kvh) * head_dim + d;
                kv = kv_load(kc, off);
                vv = kv_load(vc, off);
            }
            sk[k][d] = kv;
            sv[k][d] = vv;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < PF_ROWS / PF_WARPS; ++i) {
            const int r = warp + i * PF_WARPS;
            if (r >= n) continue;  // uniform across the warp
            const unsigned int pos = row_pos[row0 + r];
            if (t0 > pos) continue;  // every position of this tile is after the row
            const unsigned int p = t0 + lane;
            float s = neg_inf;
            if (p <= pos) {
                float dot = 0.0f;
                for (int d = 0; d < head_dim; ++d) dot += sq[r][d] * sk[lane][d];
                s = dot;
            }
            const float m_new = fmaxf(m[i], warp_max(s));
            const float e = (s == neg_inf) ? 0.0f : __expf(s - m_new);
            const float corr = (m[i] == neg_inf) ? 0.0f : __expf(m[i] - m_new);
            l[i] = l[i] * corr + warp_sum(e);
#pragma unroll
            for (int j = 0; j < PF_DIMS_PER_LANE; ++j) acc[i][j] *= corr;
            for (int k = 0; k < PF_KEYS; ++k) {
                const float ek = __shfl_sync(0xffffffffu, e, k);
#pragma unroll
                for (int j = 0; j < PF_DIMS_PER_LANE; ++j) {
                    const int d = lane + j * WARP;
                    if (d < head_dim) acc[i][j] += ek * sv[k][d];
                }
            }
            m[i] = m_new;
        }
    }
#pragma unroll
    for (int i = 0; i < PF_ROWS / PF_WARPS; ++i) {
        const int r = warp + i * PF_WARPS;
        if (r >= n) continue;
        const float inv = 1.0f / l[i];
        const size_t o = ((size_t)(row0 + r) * heads + h) * head_dim;
#pragma unroll
        for (int j = 0; j < PF_DIMS_PER_LANE; ++j) {
            const int d = lane + j * WARP;
            if (d < head_dim) out[o + d] = acc[i][j] * inv;
        }
    }
}

#define PREFILL_ENTRY(NAME, T)                                                               \
    extern "C" __global__ void NAME(const float* __restrict__ q, const T* __restrict__ kc,   \
                                    const T* __restrict__ vc,                                \
                                    const unsigned int* __restrict__ tile_row0,              \
                                    const unsigned int* __restrict__ tile_rows,              \
                                    const unsigned int* __restrict__ row_pos,                \
                                    const unsigned int* __restrict__ row_table,              \
                                    const unsigned int* __restrict__ tables,                 \
                                    float* __restrict__ out, int heads, int kv_heads,        \
                                    int head_dim, int block_size, float scale) {             \
        prefill(q, kc, vc, tile_row0, tile_rows, row_pos, row_table, tables, out, heads,     \
                kv_heads, head_dim, block_size, scale);                                      \
    }

PREFILL_ENTRY(prefill_f32, float)
PREFILL_ENTRY(prefill_f16, unsigned short)
