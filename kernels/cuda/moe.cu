// MoE routing and grouping on the device, so a MoE layer never waits for the host:
//
// - moe_route_f32: per row of router logits [rows, E], softmax over all experts, the
//   top_k largest probabilities (ties to the lower id, as the host reference
//   `route_row`), optionally renormalised to sum to one. One block per row.
// - moe_group: the (row, choice) pairs grouped by expert, in pair order, into groups
//   of up to 8 slots: group_expert/group_count per group (unused groups count 0),
//   slot_row per slot, pair_slot per pair (the tables the grouped GEMVs and
//   moe_combine_f32 read). One block; deterministic.
//
// E <= MOE_MAX_EXPERTS, top_k <= MOE_MAX_TOP_K.

#define MOE_MAX_EXPERTS 1024
#define MOE_MAX_TOP_K 8
#define MOE_SLOTS 8

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int warps = blockDim.x / WARP;
    v = (threadIdx.x < warps) ? scratch[threadIdx.x] : __int_as_float(0xff800000);
    if (warp == 0) {
        v = warp_max(v);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}

// Grid: (rows); block: 128.
extern "C" __global__ void moe_route_f32(const float* __restrict__ logits,
                                         unsigned int* __restrict__ experts,
                                         float* __restrict__ weights, int n_experts,
                                         int top_k, int renormalise) {
    __shared__ float p[MOE_MAX_EXPERTS];
    __shared__ float scratch[WARP];
    __shared__ float cand_v[WARP];
    __shared__ int cand_i[WARP];
    const float* row = logits + (size_t)blockIdx.x * n_experts;
    float m = __int_as_float(0xff800000);
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) m = fmaxf(m, row[e]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
        const float v = expf(row[e] - m);
        p[e] = v;
        s += v;
    }
    const float sum = block_sum(s, scratch);  // its barriers also publish p
    const int lane = threadIdx.x % WARP;
    const int warp = threadIdx.x / WARP;
    float picked = 0.0f;
    for (int j = 0; j < top_k; ++j) {
        float bv = -1.0f;
        int bi = 0x7fffffff;
        for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
            // NaN ranks below every probability but above the picked (-1): a row of
            // NaN still picks distinct, valid experts, the lowest ids (as the host).
            const float v = (p[e] == p[e]) ? p[e] : -0.5f;
            if (v > bv || (v == bv && e < bi)) {
                bv = v;
                bi = e;
            }
        }
        for (int o = WARP / 2; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            cand_v[warp] = bv;
            cand_i[warp] = bi;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < (int)(blockDim.x / WARP); ++w) {
                if (cand_v[w] > bv || (cand_v[w] == bv && cand_i[w] < bi)) {
                    bv = cand_v[w];
                    bi = cand_i[w];
                }
            }
            if (bi >= n_experts) bi = 0;  // never: top_k <= n_experts; kept in range anyway
            const size_t o = (size_t)blockIdx.x * top_k + j;
            experts[o] = (unsigned int)bi;
            weights[o] = bv / sum;
            picked += bv / sum;
            p[bi] = -1.0f;  // below every probability: never picked again
        }
        __syncthreads();
    }
    if (threadIdx.x == 0 && renormalise) {
        for (int j = 0; j < top_k; ++j) weights[(size_t)blockIdx.x * top_k + j] /= picked;
    }
}

// Grid: (1); block: 256. slot_row must be zeroed before (unused slots read row 0);
// groups past the last used one get count 0.
extern "C" __global__ void moe_group(const unsigned int* __restrict__ experts, int pairs,
                                     int top_k, int n_experts,
                                     unsigned int* __restrict__ group_expert,
                                     unsigned int* __restrict__ group_count,
                                     unsigned int* __restrict__ slot_row,
                                     unsigned int* __restrict__ pair_slot, int max_groups) {
    __shared__ unsigned int count[MOE_MAX_EXPERTS];
    __shared__ unsigned int first[MOE_MAX_EXPERTS + 1];
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
        unsigned int c = 0;
        for (int q = 0; q < pairs; ++q) c += experts[q] == (unsigned int)e;
        count[e] = c;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned int g = 0;
        for (int e = 0; e < n_experts; ++e) {
            first[e] = g;
            g += (count[e] + MOE_SLOTS - 1) / MOE_SLOTS;
        }
        first[n_experts] = g;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
        const unsigned int c = count[e];
        const unsigned int g0 = first[e];
        for (unsigned int q = 0; q * MOE_SLOTS < c; ++q) {
            group_expert[g0 + q] = (unsigned int)e;
            group_count[g0 + q] = min((unsigned int)MOE_SLOTS, c - q * MOE_SLOTS);
        }
        unsigned int slot = 0;
        for (int q = 0; q < pairs; ++q) {
            if (experts[q] == (unsigned int)e) {
                const unsigned int s = g0 * MOE_SLOTS + slot;
                slot_row[s] = (unsigned int)(q / top_k);
                pair_slot[q] = s;
                ++slot;
            }
        }
    }
    for (int g = (int)first[n_experts] + threadIdx.x; g < max_groups; g += blockDim.x) {
        group_expert[g] = 0;
        group_count[g] = 0;
    }
}
