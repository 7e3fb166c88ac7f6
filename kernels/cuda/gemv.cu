// Decode GEMV, first version (simple and correct; the fast one comes with a GPU to
// measure it on): y[b, n] = sum_k x[b, k] * W[n, k] for up to MAX_BATCH rows of x,
// W row-major [n_out, k] in its storage format. One block per output row; each thread
// strides over k keeping one FP32 accumulator per batch row, then a block sum. Every
// weight element is read once per step, whatever the batch.
//
// Grid: (n_out); block: 128 threads (a multiple of 32).

#define MAX_BATCH 8

#define GEMV_EPILOGUE                                                   \
    __shared__ float scratch[32];                                        \
    for (int b = 0; b < batch; ++b) {                                    \
        const float s = block_sum(acc[b], scratch);                      \
        if (threadIdx.x == 0) {                                          \
            y[(size_t)b * n_out + row] = s;                              \
        }                                                                \
    }

extern "C" __global__ void gemv_f32(const float* __restrict__ w, const float* __restrict__ x,
                                    float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const float* wr = w + (size_t)row * k;
    float acc[MAX_BATCH] = {0.0f};
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const float wv = wr[i];
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) acc[b] += wv * x[(size_t)b * k + i];
        }
    }
    GEMV_EPILOGUE
}

extern "C" __global__ void gemv_f16(const unsigned short* __restrict__ w, const float* __restrict__ x,
                                    float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const unsigned short* wr = w + (size_t)row * k;
    float acc[MAX_BATCH] = {0.0f};
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const float wv = f16_to_f32(wr[i]);
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) acc[b] += wv * x[(size_t)b * k + i];
        }
    }
    GEMV_EPILOGUE
}

extern "C" __global__ void gemv_bf16(const unsigned short* __restrict__ w, const float* __restrict__ x,
                                     float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const unsigned short* wr = w + (size_t)row * k;
    float acc[MAX_BATCH] = {0.0f};
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const float wv = bf16_to_f32(wr[i]);
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) acc[b] += wv * x[(size_t)b * k + i];
        }
    }
    GEMV_EPILOGUE
}

// GGUF blocks of 32 weights. Q8_0: f16 d, int8 q[32] (34 bytes), w = d*q.
// Q4_0: f16 d, u8 q[16] (18 bytes), w_j = d*((q[j] & 15) - 8), w_{j+16} = d*((q[j] >> 4) - 8).
// Q4_1: f16 d, f16 m, u8 q[16] (20 bytes), w = d*nibble + m.
// Blocks are only 2-byte aligned: 16-bit loads for the scales, bytes for the quants.
// Each thread takes whole blocks.

__device__ __forceinline__ unsigned short load_u16(const unsigned char* p) {
    return *(const unsigned short*)p;
}

extern "C" __global__ void gemv_q8_0(const unsigned char* __restrict__ w, const float* __restrict__ x,
                                     float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const int blocks = k / 32;
    const unsigned char* wr = w + (size_t)row * blocks * 34;
    float acc[MAX_BATCH] = {0.0f};
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 34;
        const float d = f16_to_f32(load_u16(p));
        const signed char* q = (const signed char*)(p + 2);
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                const float* xb = x + (size_t)b * k + blk * 32;
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < 32; ++j) s += (float)q[j] * xb[j];
                acc[b] += d * s;
            }
        }
    }
    GEMV_EPILOGUE
}

extern "C" __global__ void gemv_q4_0(const unsigned char* __restrict__ w, const float* __restrict__ x,
                                     float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const int blocks = k / 32;
    const unsigned char* wr = w + (size_t)row * blocks * 18;
    float acc[MAX_BATCH] = {0.0f};
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 18;
        const float d = f16_to_f32(load_u16(p));
        const unsigned char* q = p + 2;
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                const float* xb = x + (size_t)b * k + blk * 32;
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < 16; ++j) {
                    s += (float)((int)(q[j] & 15) - 8) * xb[j];
                    s += (float)((int)(q[j] >> 4) - 8) * xb[j + 16];
                }
                acc[b] += d * s;
            }
        }
    }
    GEMV_EPILOGUE
}

extern "C" __global__ void gemv_q4_1(const unsigned char* __restrict__ w, const float* __restrict__ x,
                                     float* __restrict__ y, int n_out, int k, int batch) {
    const int row = blockIdx.x;
    const int blocks = k / 32;
    const unsigned char* wr = w + (size_t)row * blocks * 20;
    float acc[MAX_BATCH] = {0.0f};
    for (int blk = threadIdx.x; blk < blocks; blk += blockDim.x) {
        const unsigned char* p = wr + (size_t)blk * 20;
        const float d = f16_to_f32(load_u16(p));
        const float m = f16_to_f32(load_u16(p + 2));
        const unsigned char* q = p + 4;
#pragma unroll
        for (int b = 0; b < MAX_BATCH; ++b) {
            if (b < batch) {
                const float* xb = x + (size_t)b * k + blk * 32;
                float s = 0.0f;
                float xs = 0.0f;
#pragma unroll
                for (int j = 0; j < 16; ++j) {
                    s += (float)(q[j] & 15) * xb[j] + (float)(q[j] >> 4) * xb[j + 16];
                    xs += xb[j] + xb[j + 16];
                }
                acc[b] += d * s + m * xs;
            }
        }
    }
    GEMV_EPILOGUE
}
