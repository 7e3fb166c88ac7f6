// Shared by every kernel source (prepended before compiling with NVRTC, which needs no
// CUDA headers this way): 16-bit float conversions, warp and block sums.
//
// Conventions: activations are row-major float32 [rows, cols]; weights are row-major
// [out, in] in their storage format (GGUF block layouts for the quantized ones);
// sizes are int (every tensor of the presets has fewer than 2^31 elements per row
// and index products are computed in size_t).

#define WARP 32

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
    return f;
}

// Saturating: magnitudes past f16's largest finite value (65504) become +-65504, not
// +-inf, so one large activation or cached value cannot turn a whole product into NaN.
__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    f = (f == f) ? fminf(fmaxf(f, -65504.0f), 65504.0f) : f;  // NaN stays NaN
    unsigned short h;
    asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
    return h;
}

// Round to nearest even (finite inputs).
__device__ __forceinline__ unsigned short f32_to_bf16_rn(float f) {
    unsigned int u = __float_as_uint(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float bf16_to_f32(unsigned short b) {
    return __uint_as_float(((unsigned int)b) << 16);
}

// A KV-cache element as f32, from an f32 or an f16 cache.
__device__ __forceinline__ float kv_load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float kv_load(const unsigned short* p, size_t i) {
    return f16_to_f32(p[i]);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    const int warps = blockDim.x / WARP;
    v = (threadIdx.x < warps) ? scratch[threadIdx.x] : 0.0f;
    if (warp == 0) {
        v = warp_sum(v);
        if (lane == 0) {
            scratch[0] = v;
        }
    }
    __syncthreads();
    return scratch[0];
}
