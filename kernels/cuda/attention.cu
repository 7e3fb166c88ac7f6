// The paged KV cache and attention over it, first version (simple and correct): f32
// keys and values, slot-major [slots, kv_heads, head_dim] per layer, as on the CPU.

// Writes rows of k and v [T, row] (row = kv_heads*head_dim) into slots[i] of the
// layer's caches. Grid: (T); block: 256.
extern "C" __global__ void kv_write_f32(const float* __restrict__ k, const float* __restrict__ v,
                                        const unsigned int* __restrict__ slots,
                                        float* __restrict__ kc, float* __restrict__ vc, int row) {
    const size_t src = (size_t)blockIdx.x * row;
    const size_t dst = (size_t)slots[blockIdx.x] * row;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        kc[dst + i] = k[src + i];
        vc[dst + i] = v[src + i];
    }
}

#define MAX_DIMS_PER_THREAD 4

// Causal grouped-query attention of one query row and one query head per block, over
// positions 0..=row_pos[r] of its sequence: position p lives in slot
// tables[row_table[r] + p / block_size] * block_size + p % block_size. Online softmax
// in position order, FP32 throughout. q and out are [T, heads*head_dim].
// Grid: (T, heads); block: 128 threads (head_dim <= 128 * MAX_DIMS_PER_THREAD).
extern "C" __global__ void attention_f32(const float* __restrict__ q, const float* __restrict__ kc,
                                         const float* __restrict__ vc,
                                         const unsigned int* __restrict__ row_pos,
                                         const unsigned int* __restrict__ row_table,
                                         const unsigned int* __restrict__ tables,
                                         float* __restrict__ out, int heads, int kv_heads,
                                         int head_dim, int block_size, float scale) {
    __shared__ float scratch[32];
    const int r = blockIdx.x;
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
            if (d < head_dim) part += qd[j] * kc[koff + d];
        }
        const float s = block_sum(part, scratch) * scale;
        const float m_new = fmaxf(m, s);
        const float corr = __expf(m - m_new);
        const float e = __expf(s - m_new);
        l = l * corr + e;
#pragma unroll
        for (int j = 0; j < MAX_DIMS_PER_THREAD; ++j) {
            const int d = threadIdx.x + j * blockDim.x;
            if (d < head_dim) acc[j] = acc[j] * corr + e * vc[koff + d];
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

// out[rows[i]] += w[i] * y[i] for rows of `cols` floats (one expert's outputs into the
// combined result; a row appears at most once per launch). Grid: (n); block: 256.
extern "C" __global__ void scatter_add_scaled_f32(const float* __restrict__ y,
                                                  const unsigned int* __restrict__ rows,
                                                  const float* __restrict__ w,
                                                  float* __restrict__ out, int cols) {
    const size_t src = (size_t)blockIdx.x * cols;
    const size_t dst = (size_t)rows[blockIdx.x] * cols;
    const float s = w[blockIdx.x];
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        out[dst + i] += s * y[src + i];
    }
}
