// Row-wise and elementwise ops of the runtime: RMSNorm, RoPE, SwiGLU, add, embedding
// gather, greedy argmax.

// RMSNorm of each group of `width` columns of x [rows, groups*width], times w [width].
// Grid: (rows * groups); block: 256 threads.
extern "C" __global__ void rms_norm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                        float* __restrict__ y, int groups, int width,
                                        float eps) {
    __shared__ float scratch[32];
    const size_t base = (size_t)blockIdx.x * width;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const float v = x[base + i];
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float scale = rsqrtf(ss / (float)width + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        y[base + i] = x[base + i] * scale * w[i];
    }
}

// RoPE of x [rows, heads*head_dim] in place, row r at positions[r], with cos/sin tables
// [context, head_dim/2]. interleaved != 0: pairs (2i, 2i+1); else halves (i, i+d/2).
// Grid: (rows, heads); block: head_dim/2 threads (rounded up to a warp).
extern "C" __global__ void rope_f32(float* __restrict__ x, const unsigned int* __restrict__ positions,
                                    const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                    int heads, int head_dim, int interleaved) {
    const int half = head_dim / 2;
    const int i = threadIdx.x;
    if (i >= half) {
        return;
    }
    const int row = blockIdx.x;
    const int head = blockIdx.y;
    const size_t pos = positions[row];
    const float c = cos_t[pos * half + i];
    const float s = sin_t[pos * half + i];
    float* h = x + ((size_t)row * heads + head) * head_dim;
    const int a = interleaved ? 2 * i : i;
    const int b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = h[a];
    const float x1 = h[b];
    h[a] = x0 * c - x1 * s;
    h[b] = x0 * s + x1 * c;
}

// y = silu(gate) * up, n elements. Grid-stride loop.
extern "C" __global__ void swiglu_f32(const float* __restrict__ gate, const float* __restrict__ up,
                                      float* __restrict__ y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        y[i] = g / (1.0f + __expf(-g)) * up[i];
    }
}

// y = a + b, n elements. Grid-stride loop.
extern "C" __global__ void add_f32(const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        y[i] = a[i] + b[i];
    }
}

// y[r] = table[ids[r]], rows of `cols` floats. Grid: (rows); block: 256.
extern "C" __global__ void embed_f32(const float* __restrict__ table, const unsigned int* __restrict__ ids,
                                     float* __restrict__ y, int cols) {
    const size_t src = (size_t)ids[blockIdx.x] * cols;
    const size_t dst = (size_t)blockIdx.x * cols;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        y[dst + i] = table[src + i];
    }
}

// Index of the largest value of each row of x [rows, cols] (ties to the lower index).
// Grid: (rows); block: 256.
extern "C" __global__ void argmax_f32(const float* __restrict__ x, unsigned int* __restrict__ out,
                                      int cols) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const size_t base = (size_t)blockIdx.x * cols;
    float v = __int_as_float(0xff800000);  // -inf (no math headers under NVRTC)
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        const float c = x[base + i];
        if (c > v) {
            v = c;
            idx = i;
        }
    }
    for (int o = WARP / 2; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx)) {
            v = ov;
            idx = oi;
        }
    }
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    if (lane == 0) {
        best_v[warp] = v;
        best_i[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float bv = best_v[0];
        int bi = best_i[0];
        for (int w = 1; w < (int)(blockDim.x / WARP); ++w) {
            if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) {
                bv = best_v[w];
                bi = best_i[w];
            }
        }
        // A row of NaN or -inf only picks no index: token 0, never an id out of range.
        out[blockIdx.x] = bi == 0x7fffffff ? 0u : (unsigned int)bi;
    }
}
