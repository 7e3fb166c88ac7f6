// The paged KV cache and attention over it. Keys and values are slot-major
// [slots, kv_heads, head_dim] per layer, as on the CPU, in f32 (parity tests) or f16
// (the GPU default: half the bytes per decode step). Position p of a sequence lives in
// slot tables[row_table[r] + p / block_size] * block_size + p % block_size.
//
// - kv_write_*: a step's K and V rows into their slots.
// - attention_*: one block per (listed query row, query head), online softmax over the
//   row's positions in order: prompt chunks (and any row decode_* cannot take).
// - decode_*: split-KV decode attention (FlashInfer style): one block per (decode row,
//   KV head, split of the positions); the block serves every query head of the KV
//   head's group, so each K and V row is read once; four warps take positions in turn,
//   each lane a contiguous run of DPL dimensions. Each block writes its split's
//   unnormalised sum with its running max and denominator; merge_splits combines them.

__device__ __forceinline__ void kv_store(float* p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void kv_store(unsigned short* p, size_t i, float v) {
    p[i] = f32_to_f16(v);
}

// Writes rows of k and v [T, row] (row = kv_heads*head_dim) into slots[i] of the
// layer's caches. Grid: (T); block: 256.
template <typename T>
__device__ void kv_write(const float* __restrict__ k, const float* __restrict__ v,
                         const unsigned int* __restrict__ slots, T* __restrict__ kc,
                         T* __restrict__ vc, int row) {
    const size_t src = (size_t)blockIdx.x * row;
    const size_t dst = (size_t)slots[blockIdx.x] * row;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        kv_store(kc, dst + i, k[src + i]);
        kv_store(vc, dst + i, v[src + i]);
    }
}

extern "C" __global__ void kv_write_f32(const float* __restrict__ k, const float* __restrict__ v,
                                        const unsigned int* __restrict__ slots,
                                        float* __restrict__ kc, float* __restrict__ vc, int row) {
    kv_write(k, v, slots, kc, vc, row);
}

extern "C" __global__ void kv_write_f16(const float* __restrict__ k, const float* __restrict__ v,
                                        const unsigned int* __restrict__ slots,
                                        unsigned short* __restrict__ kc,
                                        unsigned short* __restrict__ vc, int row) {
    kv_write(k, v, slots, kc, vc, row);
}

#define MAX_DIMS_PER_THREAD 4

// Causal grouped-query attention of one listed query row (rows[blockIdx.x]) and one
// query head per block, over positions 0..=row_pos[r] of its sequence. Online
// softmax in position order, FP32 arithmetic. q and out are [T, heads*head_dim].
// Grid: (listed rows, heads); block: 128 threads (head_dim <= 128 * MAX_DIMS_PER_THREAD).
template <typename T>
__device__ void attention(const float* __restrict__ q, const T* __restrict__ kc,
                          const T* __restrict__ vc, const unsigned int* __restrict__ rows,
                          const unsigned int* __restrict__ row_pos,
                          const unsigned int* __restrict__ row_table,
                          const unsigned int* __restrict__ tables, float* __restrict__ out,
                          int heads, int kv_heads, int head_dim, int block_size, float scale) {
    __shared__ float scratch[32];
    const int r = rows[blockIdx.x];
    const int h = blockIdx.y;
    const int kvh = h / (heads / kv_heads);
    const size_t qoff = ((size_t)r * heads + h) * head_dim;
    float qd[MAX_DIMS_PER_THREAD];
    float acc[MAX_DIMS_PER_THREAD];
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_THREAD; ++j) {
        const int d = threadIdx.x + j * blockDim.x;
        qd[j] = d < head_dim ? q[qoff + d] : 0.0f;
        acc[j] = 0.0f;
    }
    float m = __int_as_float(0xff800000);  // -inf
    float l = 0.0f;
    const unsigned int* table = tables + row_table[r];
    const unsigned int last = row_pos[r];
    for (unsigned int p = 0; p <= last; ++p) {
        const size_t slot = (size_t)table[p / block_size] * block_size + p % block_size;
        const size_t koff = (slot * kv_heads + kvh) * head_dim;
        float part = 0.0f;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_THREAD; ++j) {
            const int d = threadIdx.x + j * blockDim.x;
            if (d < head_dim) part += qd[j] * kv_load(kc, koff + d);
        }
        const float s = block_sum(part, scratch) * scale;
        const float m_new = fmaxf(m, s);
        const float corr = __expf(m - m_new);
        const float e = __expf(s - m_new);
        l = l * corr + e;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_THREAD; ++j) {
            const int d = threadIdx.x + j * blockDim.x;
            if (d < head_dim) acc[j] = acc[j] * corr + e * kv_load(vc, koff + d);
        }
        m = m_new;
    }
    const float inv = 1.0f / l;
#pragma unroll
    for (int j = 0; j < MAX_DIMS_PER_THREAD; ++j) {
        const int d = threadIdx.x + j * blockDim.x;
        if (d < head_dim) out[qoff + d] = acc[j] * inv;
    }
}

#define ATTENTION_ENTRY(NAME, T)                                                             \
    extern "C" __global__ void NAME(const float* __restrict__ q, const T* __restrict__ kc,   \
                                    const T* __restrict__ vc,                                \
                                    const unsigned int* __restrict__ rows,                   \
                                    const unsigned int* __restrict__ row_pos,                \
                                    const unsigned int* __restrict__ row_table,              \
                                    const unsigned int* __restrict__ tables,                 \
                                    float* __restrict__ out, int heads, int kv_heads,        \
                                    int head_dim, int block_size, float scale) {             \
        attention(q, kc, vc, rows, row_pos, row_table, tables, out, heads, kv_heads,         \
                  head_dim, block_size, scale);                                              \
    }

ATTENTION_ENTRY(attention_f32, float)
ATTENTION_ENTRY(attention_f16, unsigned short)

#define DEC_WARPS 4
#define DEC_MAX_GROUP 8

// DPL consecutive elements at p[i..i+DPL) as floats (one 8- or 16-byte load where the
// type allows: i is a multiple of DPL and rows start 16-byte aligned).
template <int DPL>
__device__ __forceinline__ void load_run(const float* p, size_t i, float* out) {
    if (DPL == 4) {
        const float4 v = *(const float4*)(p + i);
        out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
    } else {
        const float2 v = *(const float2*)(p + i);
        out[0] = v.x; out[1] = v.y;
    }
}
template <int DPL>
__device__ __forceinline__ void load_run(const unsigned short* p, size_t i, float* out) {
    if (DPL == 4) {
        const uint2 v = *(const uint2*)(p + i);
        out[0] = f16_to_f32((unsigned short)(v.x & 0xffffu));
        out[1] = f16_to_f32((unsigned short)(v.x >> 16));
        out[2] = f16_to_f32((unsigned short)(v.y & 0xffffu));
        out[3] = f16_to_f32((unsigned short)(v.y >> 16));
    } else {
        const unsigned int v = *(const unsigned int*)(p + i);
        out[0] = f16_to_f32((unsigned short)(v & 0xffffu));
        out[1] = f16_to_f32((unsigned short)(v >> 16));
    }
}

// One split of one decode row's positions for one KV head's group of query heads.
// part_acc [rows, heads, splits, head_dim] gets sum_p exp(s_p - m) v_p, part_ml
// [rows, heads, splits, 2] gets (m, l = sum_p exp(s_p - m)); an empty split writes
// (-inf, 0) and zeros. Grid: (decode rows, kv_heads, splits); block: DEC_WARPS * 32.
// head_dim <= 32 * DPL, head_dim % DPL == 0, heads / kv_heads <= DEC_MAX_GROUP.
template <typename T, int DPL>
__device__ void decode(const float* __restrict__ q, const T* __restrict__ kc,
                       const T* __restrict__ vc, const unsigned int* __restrict__ rows,
                       const unsigned int* __restrict__ row_pos,
                       const unsigned int* __restrict__ row_table,
                       const unsigned int* __restrict__ tables, float* __restrict__ part_acc,
                       float* __restrict__ part_ml, int heads, int kv_heads, int head_dim,
                       int block_size, int chunk, float scale) {
    __shared__ float sm_m[DEC_WARPS][DEC_MAX_GROUP];
    __shared__ float sm_l[DEC_WARPS][DEC_MAX_GROUP];
    __shared__ float sm_acc[DEC_WARPS][DEC_MAX_GROUP][32 * DPL];
    const float neg_inf = __int_as_float(0xff800000);
    const int i = blockIdx.x;
    const int r = rows[i];
    const int kvh = blockIdx.y;
    const int split = blockIdx.z;
    const int splits = gridDim.z;
    const int group = heads / kv_heads;
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    const int d0 = lane * DPL;
    const bool active = d0 < head_dim;
    const unsigned int n_pos = row_pos[r] + 1;
    const unsigned int begin = (unsigned int)split * chunk;
    const unsigned int end = min(n_pos, begin + (unsigned int)chunk);

    float qv[DEC_MAX_GROUP][DPL];
    float acc[DEC_MAX_GROUP][DPL];
    float m[DEC_MAX_GROUP];
    float l[DEC_MAX_GROUP];
#pragma unroll
    for (int g = 0; g < DEC_MAX_GROUP; ++g) {
        m[g] = neg_inf;
        l[g] = 0.0f;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
            acc[g][j] = 0.0f;
            qv[g][j] = 0.0f;
        }
        if (g < group && active) {
            const size_t qoff = ((size_t)r * heads + kvh * group + g) * head_dim + d0;
#pragma unroll
            for (int j = 0; j < DPL; ++j) qv[g][j] = q[qoff + j] * scale;
        }
    }
    const unsigned int* table = tables + row_table[r];
    for (unsigned int p = begin + warp; p < end; p += DEC_WARPS) {
        const size_t slot = (size_t)table[p / block_size] * block_size + p % block_size;
        const size_t koff = (slot * kv_heads + kvh) * head_dim + d0;
        float kx[DPL], vx[DPL];
        if (active) {
            load_run<DPL>(kc, koff, kx);
            load_run<DPL>(vc, koff, vx);
        } else {
#pragma unroll
            for (int j = 0; j < DPL; ++j) { kx[j] = 0.0f; vx[j] = 0.0f; }
        }
#pragma unroll
        for (int g = 0; g < DEC_MAX_GROUP; ++g) {
            if (g < group) {
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < DPL; ++j) s += qv[g][j] * kx[j];
                s = warp_sum(s);
                const float m_new = fmaxf(m[g], s);
                const float corr = __expf(m[g] - m_new);
                const float e = __expf(s - m_new);
                l[g] = l[g] * corr + e;
#pragma unroll
                for (int j = 0; j < DPL; ++j) acc[g][j] = acc[g][j] * corr + e * vx[j];
                m[g] = m_new;
            }
        }
    }
    // Combine the warps' partial softmaxes in shared memory.
#pragma unroll
    for (int g = 0; g < DEC_MAX_GROUP; ++g) {
        if (g < group) {
            if (lane == 0) {
                sm_m[warp][g] = m[g];
                sm_l[warp][g] = l[g];
            }
#pragma unroll
            for (int j = 0; j < DPL; ++j) sm_acc[warp][g][d0 + j] = acc[g][j];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < group * head_dim; idx += blockDim.x) {
        const int g = idx / head_dim;
        const int d = idx % head_dim;
        float mm = neg_inf;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; ++w) mm = fmaxf(mm, sm_m[w][g]);
        float ll = 0.0f;
        float a = 0.0f;
        if (mm != neg_inf) {
#pragma unroll
            for (int w = 0; w < DEC_WARPS; ++w) {
                const float c = sm_m[w][g] == neg_inf ? 0.0f : __expf(sm_m[w][g] - mm);
                ll += sm_l[w][g] * c;
                a += sm_acc[w][g][d] * c;
            }
        }
        const size_t o = ((size_t)i * heads + kvh * group + g) * splits + split;
        part_acc[o * head_dim + d] = a;
        if (d == 0) {
            part_ml[o * 2] = mm;
            part_ml[o * 2 + 1] = ll;
        }
    }
}

#define DECODE_ENTRY(NAME, T, DPL)                                                           \
    extern "C" __global__ void NAME(const float* __restrict__ q, const T* __restrict__ kc,   \
                                    const T* __restrict__ vc,                                \
                                    const unsigned int* __restrict__ rows,                   \
                                    const unsigned int* __restrict__ row_pos,                \
                                    const unsigned int* __restrict__ row_table,              \
                                    const unsigned int* __restrict__ tables,                 \
                                    float* __restrict__ part_acc, float* __restrict__ part_ml,\
                                    int heads, int kv_heads, int head_dim, int block_size,   \
                                    int chunk, float scale) {                                \
        decode<T, DPL>(q, kc, vc, rows, row_pos, row_table, tables, part_acc, part_ml, heads, \
                       kv_heads, head_dim, block_size, chunk, scale);                       \
    }

DECODE_ENTRY(decode_f32_d64, float, 2)
DECODE_ENTRY(decode_f32_d128, float, 4)
DECODE_ENTRY(decode_f16_d64, unsigned short, 2)
DECODE_ENTRY(decode_f16_d128, unsigned short, 4)

// out[rows[i], h] = sum_s part_acc[i, h, s] exp(m_s - M) / sum_s l_s exp(m_s - M),
// M = max_s m_s, over the splits that saw a position. Grid: (decode rows, heads);
// block: 128.
extern "C" __global__ void merge_splits(const float* __restrict__ part_acc,
                                        const float* __restrict__ part_ml,
                                        const unsigned int* __restrict__ rows,
                                        float* __restrict__ out, int heads, int head_dim,
                                        int splits) {
    const float neg_inf = __int_as_float(0xff800000);
    const int i = blockIdx.x;
    const int h = blockIdx.y;
    const size_t base = ((size_t)i * heads + h) * splits;
    float mm = neg_inf;
    for (int s = 0; s < splits; ++s) mm = fmaxf(mm, part_ml[(base + s) * 2]);
    float ll = 0.0f;
    for (int s = 0; s < splits; ++s) {
        const float ms = part_ml[(base + s) * 2];
        if (ms != neg_inf) ll += part_ml[(base + s) * 2 + 1] * __expf(ms - mm);
    }
    const float inv = 1.0f / ll;
    const size_t o = ((size_t)rows[i] * heads + h) * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < splits; ++s) {
            const float ms = part_ml[(base + s) * 2];
            if (ms != neg_inf) a += part_acc[(base + s) * head_dim + d] * __expf(ms - mm);
        }
        out[o + d] = a * inv;
    }
}
