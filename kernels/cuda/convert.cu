// Conversions for the prefill GEMM through cuBLAS: activations f32 -> bf16 or f16, and
// quantized weights (GGUF Q8_0, Q4_0, Q4_1 blocks) dequantized to bf16 into a
// workspace, row-major [n_out, k] as the weights. Grid-stride over elements (or blocks of
// 32 weights); block: 256.

extern "C" __global__ void f32_to_bf16(const float* __restrict__ x, unsigned short* __restrict__ y,
                                       unsigned long long n) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        y[i] = f32_to_bf16_rn(x[i]);
    }
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ x, unsigned short* __restrict__ y,
                                      unsigned long long n) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        y[i] = f32_to_f16(x[i]);
    }
}

__device__ __forceinline__ unsigned short load_u16_at(const unsigned char* p) {
    return *(const unsigned short*)p;
}

// `blocks` GGUF blocks of 32 weights, block b at w + b * BYTES, to y[32 b .. 32 b + 32).
#define DEQUANT_ENTRY(NAME, BYTES, BODY)                                                     \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ w,                     \
                                    unsigned short* __restrict__ y,                          \
                                    unsigned long long blocks) {                             \
        const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;        \
        for (unsigned long long b = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
             b < blocks; b += stride) {                                                      \
            const unsigned char* p = w + b * (BYTES);                                        \
            unsigned short* out = y + b * 32;                                                \
            BODY                                                                             \
        }                                                                                    \
    }

DEQUANT_ENTRY(dequant_q8_0_bf16, 34, {
    const float d = f16_to_f32(load_u16_at(p));
    const signed char* q = (const signed char*)(p + 2);
    for (int j = 0; j < 32; ++j) out[j] = f32_to_bf16_rn(d * (float)q[j]);
})

DEQUANT_ENTRY(dequant_q4_0_bf16, 18, {
    const float d = f16_to_f32(load_u16_at(p));
    const unsigned char* q = p + 2;
    for (int j = 0; j < 16; ++j) {
        out[j] = f32_to_bf16_rn(d * (float)((int)(q[j] & 15) - 8));
        out[j + 16] = f32_to_bf16_rn(d * (float)((int)(q[j] >> 4) - 8));
    }
})

DEQUANT_ENTRY(dequant_q4_1_bf16, 20, {
    const float d = f16_to_f32(load_u16_at(p));
    const float m = f16_to_f32(load_u16_at(p + 2));
    const unsigned char* q = p + 4;
    for (int j = 0; j < 16; ++j) {
        out[j] = f32_to_bf16_rn(d * (float)(q[j] & 15) + m);
        out[j + 16] = f32_to_bf16_rn(d * (float)(q[j] >> 4) + m);
    }
})
