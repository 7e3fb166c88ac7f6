// Memory-bandwidth probes for the roofline: copy, read (a sum) and triad over 16-byte
// vectors, grid-stride loops so that one launch covers a buffer of any size.

extern "C" __global__ void copy_f32x4(const float4* __restrict__ src,
                                      float4* __restrict__ dst,
                                      unsigned long long n4) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += stride) {
        dst[i] = src[i];
    }
}

// One partial sum per block into out[blockIdx.x] (so the reads cannot be dropped).
extern "C" __global__ void read_sum_f32x4(const float4* __restrict__ x,
                                          unsigned long long n4,
                                          float* __restrict__ out) {
    __shared__ float scratch[WARP];
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    float acc = 0.0f;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += stride) {
        const float4 v = x[i];
        acc += (v.x + v.y) + (v.z + v.w);
    }
    const float s = block_sum(acc, scratch);
    if (threadIdx.x == 0) {
        out[blockIdx.x] = s;
    }
}

// STREAM triad: a = b + scalar * c.
extern "C" __global__ void triad_f32x4(float4* __restrict__ a,
                                       const float4* __restrict__ b,
                                       const float4* __restrict__ c,
                                       float scalar,
                                       unsigned long long n4) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += stride) {
        const float4 x = b[i];
        const float4 y = c[i];
        a[i] = make_float4(x.x + scalar * y.x, x.y + scalar * y.y, x.z + scalar * y.z,
                           x.w + scalar * y.w);
    }
}
