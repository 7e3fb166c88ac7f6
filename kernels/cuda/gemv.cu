// Decode GEMV: y[b, n] = sum_k x[b, k] * W[n, k] for up to MAX_BATCH rows of x, W
// row-major [n_out, k] in its storage format. One block per output row; each thread
// strides over k keeping one FP32 accumulator per batch row, then a block sum. Every
// weight element is read once per step, whatever the batch.
//
// - gemv_FMT: one matrix.
// - gemv_gate_up_FMT: the gate and up matrices of a SwiGLU MLP in one launch,
//   y = silu(x . gate^T) * (x . up^T): both rows read by the same block, the
//   intermediate never written.
//
// Float formats read 16 bytes of weights per load (float4; 8 halves) when k is a
// multiple of 4 (f32) or 8 (f16, bf16), which keeps every row aligned; otherwise the
// whole row is read element by element. GGUF blocks are only 2-byte aligned: their
// scales and quants are read 16 bits at a time, their activations as float4; each
// thread takes whole blocks.
//
// Grid: (n_out); block: 128 threads (a multiple of 32).

#define MAX_BATCH 8

// ---- one thread's share of a row's dot products, per format --------------------------

__device__ __forceinline__ void row_dot_f32(const unsigned char* wrow, const float* __restrict__ x,
                                            int k, int batch, float* acc) {
    const float* wr = (const float*)wrow;
    const int k4 = (k % 4 == 0) ? k / 4 : 0;
    for (int i = threadIdx.x; i < k4; i += blockDim.x) {
        const float4 w = ((const float4*)wr)[i];
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                const float4 xv = ((const float4*)(x + (size_t)b * k))[i];
                acc[b] += w.x * xv.x + w.y * xv.y + w.z * xv.z + w.w * xv.w;
            }
        }
    }
    for (int i = k4 * 4 + threadIdx.x; i < k; i += blockDim.x) {
        const float wv = wr[i];
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) acc[b] += wv * x[(size_t)b * k + i];
        }
    }
}

// 16-bit float rows: 8 weights per 16-byte load, `CONVERT` widening each to f32.
#define ROW_DOT_16(NAME, CONVERT)                                                           \
    __device__ __forceinline__ void NAME(const unsigned char* wrow,                          \
                                         const float* __restrict__ x, int k, int batch,      \
                                         float* acc) {                                       \
        const unsigned short* wr = (const unsigned short*)wrow;                             \
        const int k8 = (k % 8 == 0) ? k / 8 : 0;                                             \
        for (int i = threadIdx.x; i < k8; i += blockDim.x) {                                 \
            const uint4 raw = ((const uint4*)wr)[i];                                         \
            float w[8];                                                                      \
            const unsigned int parts[4] = {raw.x, raw.y, raw.z, raw.w};                      \
            _Pragma("unroll") for (int j = 0; j < 4; ++j) {                                  \
                w[2 * j] = CONVERT((unsigned short)(parts[j] & 0xffffu));                    \
                w[2 * j + 1] = CONVERT((unsigned short)(parts[j] >> 16));                    \
            }                                                                                \
            _Pragma("unroll") for (int b = 0; b < MAX_BATCH; ++b) {                          \
                if (b < batch) {                                                             \
                    const float4* xv = (const float4*)(x + (size_t)b * k) + 2 * i;           \
                    const float4 x0 = xv[0];                                                 \
                    const float4 x1 = xv[1];                                                 \
                    acc[b] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w +        \
                              w[4] * x1.x + w[5] * x1.y + w[6] * x1.z + w[7] * x1.w;         \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (int i = k8 * 8 + threadIdx.x; i < k; i += blockDim.x) {                         \
            const float wv = CONVERT(wr[i]);                                                 \
            _Pragma("unroll") for (int b = 0; b < MAX_BATCH; ++b) {                          \
                if (b < batch) acc[b] += wv * x[(size_t)b * k + i];                          \
            }                                                                                \
        }                                                                                    \
    }

ROW_DOT_16(row_dot_f16, f16_to_f32)
ROW_DOT_16(row_dot_bf16, bf16_to_f32)

// GGUF blocks of 32 weights. Q8_0: f16 d, int8 q[32] (34 bytes), w = d*q.
// Q4_0: f16 d, u8 q[16] (18 bytes), w_j = d*((q[j] & 15) - 8), w_{j+16} = d*((q[j] >> 4) - 8).
// Q4_1: f16 d, f16 m, u8 q[16] (20 bytes), w = d*nibble + m.

__device__ __forceinline__ unsigned short load_u16(const unsigned char* p) {
    return *(const unsigned short*)p;
}

// Each block's quants are read 16 bits at a time (blocks are only 2-byte aligned) and
// its 32 activations as eight float4 (a block of x starts 128-byte aligned).

// sum_j (lo(q[j]) + off) x[j] + (hi(q[j]) + off) x[j + 16] over the 16 bytes of q;
// *xs += sum of the 32 x.
__device__ __forceinline__ float nibble_dot(const unsigned char* q, const float* __restrict__ xb,
                                            float off, float* xs) {
    const unsigned short* q16 = (const unsigned short*)q;
    const float4* x4 = (const float4*)xb;
    float s = 0.0f;
    float t = 0.0f;
#pragma unroll
    for (int h = 0; h < 4; ++h) {
        const unsigned int w = (unsigned int)q16[2 * h] | ((unsigned int)q16[2 * h + 1] << 16);
        const float4 lo = x4[h];
        const float4 hi = x4[4 + h];
        s += ((float)(w & 15u) + off) * lo.x + ((float)((w >> 8) & 15u) + off) * lo.y +
             ((float)((w >> 16) & 15u) + off) * lo.z + ((float)((w >> 24) & 15u) + off) * lo.w;
        s += ((float)((w >> 4) & 15u) + off) * hi.x + ((float)((w >> 12) & 15u) + off) * hi.y +
             ((float)((w >> 20) & 15u) + off) * hi.z + ((float)((w >> 28) & 15u) + off) * hi.w;
        t += (lo.x + lo.y) + (lo.z + lo.w) + (hi.x + hi.y) + (hi.z + hi.w);
    }
    *xs += t;
    return s;
}

__device__ __forceinline__ void row_dot_q8_0(const unsigned char* wr, const float* __restrict__ x,
                                             int k, int batch, float* acc) {
    const int blocks = k / 32;
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 34;
        const float d = f16_to_f32(load_u16(p));
        const unsigned short* q16 = (const unsigned short*)(p + 2);
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                const float4* x4 = (const float4*)(x + (size_t)b * k + blk * 32);
                float s = 0.0f;
#pragma unroll
                for (int h = 0; h < 8; ++h) {
                    const unsigned int lo = q16[2 * h];
                    const unsigned int hi = q16[2 * h + 1];
                    const float4 xv = x4[h];
                    // Sign-extend each byte (well defined: shift up, then arithmetic down).
                    s += (float)(((int)(lo << 24)) >> 24) * xv.x +
                         (float)(((int)(lo << 16)) >> 24) * xv.y +
                         (float)(((int)(hi << 24)) >> 24) * xv.z +
                         (float)(((int)(hi << 16)) >> 24) * xv.w;
                }
                acc[b] += d * s;
            }
        }
    }
}

__device__ __forceinline__ void row_dot_q4_0(const unsigned char* wr, const float* __restrict__ x,
                                             int k, int batch, float* acc) {
    const int blocks = k / 32;
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 18;
        const float d = f16_to_f32(load_u16(p));
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                float xs = 0.0f;
                acc[b] += d * nibble_dot(p + 2, x + (size_t)b * k + blk * 32, -8.0f, &xs);
            }
        }
    }
}

__device__ __forceinline__ void row_dot_q4_1(const unsigned char* wr, const float* __restrict__ x,
                                             int k, int batch, float* acc) {
    const int blocks = k / 32;
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 20;
        const float d = f16_to_f32(load_u16(p));
        const float m = f16_to_f32(load_u16(p + 2));
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                float xs = 0.0f;
                const float s = nibble_dot(p + 4, x + (size_t)b * k + blk * 32, 0.0f, &xs);
                acc[b] += d * s + m * xs;
            }
        }
    }
}

// ---- the kernels --------------------------------------------------------------------

// Each batch row's partial sums summed over the block into y[b * n_out + row] (with
// `swiglu`, silu(gate) * up of two sums). Constant-indexed (unrolled), so the
// accumulators stay in registers.
__device__ __forceinline__ void store_rows(const float (&acc)[MAX_BATCH], int batch,
                                           float* __restrict__ y, int n_out, int row,
                                           float* scratch) {
#pragma unroll
    for (int b = 0; b < MAX_BATCH; ++b) {
        if (b < batch) {
            const float s = block_sum(acc[b], scratch);
            if (threadIdx.x == 0) y[(size_t)b * n_out + row] = s;
        }
    }
}

__device__ __forceinline__ void store_swiglu_rows(const float (&gate)[MAX_BATCH],
                                                  const float (&up)[MAX_BATCH], int batch,
                                                  float* __restrict__ y, int n_out, int row,
                                                  float* scratch) {
#pragma unroll
    for (int b = 0; b < MAX_BATCH; ++b) {
        if (b < batch) {
            const float g = block_sum(gate[b], scratch);
            const float u = block_sum(up[b], scratch);
            if (threadIdx.x == 0) y[(size_t)b * n_out + row] = g / (1.0f + __expf(-g)) * u;
        }
    }
}

// ROW_BYTES(k): bytes of one weight row of k elements.
#define GEMV_ENTRIES(FMT, ROW_BYTES)                                                         \
    extern "C" __global__ void gemv_##FMT(const unsigned char* __restrict__ w,               \
                                          const float* __restrict__ x, float* __restrict__ y,\
                                          int n_out, int k, int batch) {                     \
        __shared__ float scratch[32];                                                        \
        const int row = blockIdx.x;                                                          \
        float acc[MAX_BATCH] = {0.0f};                                                       \
        row_dot_##FMT(w + (size_t)row * (ROW_BYTES), x, k, batch, acc);                      \
        store_rows(acc, batch, y, n_out, row, scratch);                                      \
    }                                                                                        \
    extern "C" __global__ void gemv_gate_up_##FMT(const unsigned char* __restrict__ gate,    \
                                                  const unsigned char* __restrict__ up,      \
                                                  const float* __restrict__ x,               \
                                                  float* __restrict__ y, int n_out, int k,   \
                                                  int batch) {                               \
        __shared__ float scratch[32];                                                        \
        const int row = blockIdx.x;                                                          \
        float acc_g[MAX_BATCH] = {0.0f};                                                     \
        float acc_u[MAX_BATCH] = {0.0f};                                                     \
        row_dot_##FMT(gate + (size_t)row * (ROW_BYTES), x, k, batch, acc_g);                 \
        row_dot_##FMT(up + (size_t)row * (ROW_BYTES), x, k, batch, acc_u);                   \
        store_swiglu_rows(acc_g, acc_u, batch, y, n_out, row, scratch);                      \
    }

GEMV_ENTRIES(f32, (size_t)k * 4)
GEMV_ENTRIES(f16, (size_t)k * 2)
GEMV_ENTRIES(bf16, (size_t)k * 2)
GEMV_ENTRIES(q8_0, (size_t)(k / 32) * 34)
GEMV_ENTRIES(q4_0, (size_t)(k / 32) * 18)
GEMV_ENTRIES(q4_1, (size_t)(k / 32) * 20)

// ---- grouped expert products (MoE) --------------------------------------------------
//
// The rows routed to one expert form groups of up to MAX_BATCH slots; x holds each
// group's slots as a slab of MAX_BATCH rows ([groups * MAX_BATCH, k], rows past the
// group's count unused), y likewise ([groups * MAX_BATCH, n_out]). Expert e's matrices
// are at the device addresses w_ptrs[e]. One launch serves every expert of a layer; a
// group of count 0 (past the last used one, when grouped on the device) does nothing.
// Grid: (n_out, groups); block: 128.

#define GROUPED_ENTRIES(FMT, ROW_BYTES)                                                      \
    extern "C" __global__ void gemv_grouped_##FMT(                                           \
        const unsigned long long* __restrict__ w_ptrs,                                       \
        const unsigned int* __restrict__ group_expert,                                       \
        const unsigned int* __restrict__ group_count, const float* __restrict__ x,           \
        float* __restrict__ y, int n_out, int k) {                                           \
        __shared__ float scratch[32];                                                        \
        const int row = blockIdx.x;                                                          \
        const int g = blockIdx.y;                                                            \
        const int batch = (int)group_count[g];                                               \
        if (batch == 0) return; /* an unused group (device-side grouping) */                 \
        const unsigned char* w = (const unsigned char*)w_ptrs[group_expert[g]];              \
        float acc[MAX_BATCH] = {0.0f};                                                       \
        row_dot_##FMT(w + (size_t)row * (ROW_BYTES), x + (size_t)g * MAX_BATCH * k, k, batch, \
                      acc);                                                                  \
        store_rows(acc, batch, y + (size_t)g * MAX_BATCH * n_out, n_out, row, scratch);      \
    }                                                                                        \
    extern "C" __global__ void gemv_grouped_gate_up_##FMT(                                   \
        const unsigned long long* __restrict__ gate_ptrs,                                    \
        const unsigned long long* __restrict__ up_ptrs,                                      \
        const unsigned int* __restrict__ group_expert,                                       \
        const unsigned int* __restrict__ group_count, const float* __restrict__ x,           \
        float* __restrict__ y, int n_out, int k) {                                           \
        __shared__ float scratch[32];                                                        \
        const int row = blockIdx.x;                                                          \
        const int g = blockIdx.y;                                                            \
        const int batch = (int)group_count[g];                                               \
        if (batch == 0) return; /* an unused group (device-side grouping) */                 \
        const unsigned int e = group_expert[g];                                              \
        const float* xg = x + (size_t)g * MAX_BATCH * k;                                     \
        float acc_g[MAX_BATCH] = {0.0f};                                                     \
        float acc_u[MAX_BATCH] = {0.0f};                                                     \
        row_dot_##FMT((const unsigned char*)gate_ptrs[e] + (size_t)row * (ROW_BYTES), xg, k, \
                      batch, acc_g);                                                         \
        row_dot_##FMT((const unsigned char*)up_ptrs[e] + (size_t)row * (ROW_BYTES), xg, k,   \
                      batch, acc_u);                                                         \
        store_swiglu_rows(acc_g, acc_u, batch, y + (size_t)g * MAX_BATCH * n_out, n_out, row, \
                          scratch);                                                          \
    }

GROUPED_ENTRIES(f32, (size_t)k * 4)
GROUPED_ENTRIES(f16, (size_t)k * 2)
GROUPED_ENTRIES(bf16, (size_t)k * 2)
GROUPED_ENTRIES(q8_0, (size_t)(k / 32) * 34)
GROUPED_ENTRIES(q4_0, (size_t)(k / 32) * 18)
GROUPED_ENTRIES(q4_1, (size_t)(k / 32) * 20)

// out[r] = sum_j pair_weight[r * top_k + j] * y[pair_slot[r * top_k + j]], rows of
// `cols` floats: each row's experts combined in a fixed order (deterministic).
// Grid: (rows); block: 256.
extern "C" __global__ void moe_combine_f32(const float* __restrict__ y,
                                           const unsigned int* __restrict__ pair_slot,
                                           const float* __restrict__ pair_weight,
                                           float* __restrict__ out, int cols, int top_k) {
    const int r = blockIdx.x;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float s = 0.0f;
        for (int j = 0; j < top_k; ++j) {
            const size_t p = (size_t)r * top_k + j;
            s += pair_weight[p] * y[(size_t)pair_slot[p] * cols + c];
        }
        out[(size_t)r * cols + c] = s;
    }
}
