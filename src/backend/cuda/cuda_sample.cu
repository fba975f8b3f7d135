/* Sampling on the device, so a decoding step sends the host one token id
 * instead of a row of logits. The same rule as lc_sampler_sample (argmax at
 * temperature 0; otherwise softmax(logits / T), cut to the top-k and then
 * to the top-p nucleus, drawn with the host's coin) in one block. The cuts
 * are found as probability thresholds by bisection over the float bit
 * patterns, so no sort is needed; every sum runs in a fixed order, so a
 * seed gives the same tokens on every run. One block per row: the rows of a
 * batch (one per sequence a server step decodes) are drawn in one launch. */
#include "backend/cuda/cuda_ops.cuh"

#define SAMPLE_THREADS 1024

/* Each thread owns one contiguous slice of the vocabulary. */
struct slice {
    int begin, end;
    __device__ slice(int vocab) {
        const int per = (vocab + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
        begin = min(vocab, (int)threadIdx.x * per);
        end = min(vocab, begin + per);
    }
};

/* Probability mass (or count) of the entries whose bits are >= t. */
__device__ float mass_at_least(const float *e, slice sl, unsigned t, bool count, float *red) {
    float s = 0.0f;
    for (int i = sl.begin; i < sl.end; i++)
        if (__float_as_uint(e[i]) >= t) s += count ? 1.0f : e[i];
    return block_sum(s, red);
}

/* The largest threshold in [lo, hi] whose kept mass (or count) is >= goal. */
__device__ unsigned bisect(const float *e, slice sl, unsigned lo, unsigned hi, float goal,
                           bool count, float *red) {
    while (lo < hi) {
        const unsigned mid = lo + (hi - lo + 1) / 2;
        if (mass_at_least(e, sl, mid, count, red) >= goal)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel(const float *all_logits, int vocab, const sample_row *rows, float *scratch,
                  int32_t *tokens) {
    const sample_row rule = rows[blockIdx.x];
    const float temperature = rule.temperature, top_p = rule.top_p, coin = rule.coin;
    const int top_k = rule.top_k;
    const float *logits = all_logits + (size_t)blockIdx.x * vocab;
    float *e = scratch + (size_t)blockIdx.x * vocab;
    int32_t *token = tokens + blockIdx.x;
    __shared__ float red[32];
    __shared__ float red_v[32];
    __shared__ int red_i[32];
    __shared__ float prefix[SAMPLE_THREADS];
    __shared__ int picked;
    const slice sl(vocab);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    /* argmax, the first index among equal maxima (as the host's) */
    float bv = -INFINITY;
    int bi = vocab;
    for (int i = sl.begin; i < sl.end; i++)
        if (logits[i] > bv) bv = logits[i], bi = i;
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i = __shfl_xor_sync(0xffffffffu, bi, o);
        if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
    }
    if (lane == 0) red_v[warp] = bv, red_i[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        bv = red_v[lane];
        bi = red_i[lane];
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_xor_sync(0xffffffffu, bv, o);
            const int i = __shfl_xor_sync(0xffffffffu, bi, o);
            if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
        }
        if (lane == 0) red_v[0] = bv, red_i[0] = bi < vocab ? bi : 0, picked = -1;
    }
    __syncthreads();
    const int best = red_i[0];
    const float max = logits[best];
    if (temperature == 0.0f) {
        if (threadIdx.x == 0) *token = best;
        return;
    }

    float local = 0.0f;
    for (int i = sl.begin; i < sl.end; i++) {
        e[i] = __expf((logits[i] - max) / temperature);
        local += e[i];
    }
    const float sum = block_sum(local, red);
    if (!(sum > 0.0f) || !isfinite(sum)) { /* no distribution to draw from */
        if (threadIdx.x == 0) *token = best;
        return;
    }

    /* Keep the entries whose bits are >= t: all, the top-k, then the nucleus. */
    unsigned t = 0;
    float mass = sum;
    if (top_k > 0 && top_k < vocab) {
        t = bisect(e, sl, 0, 0x7f800000u, (float)top_k, true, red);
        mass = mass_at_least(e, sl, t, false, red);
    }
    if (top_p < 1.0f) {
        t = bisect(e, sl, t, __float_as_uint(1.0f), top_p * mass, false, red);
        mass = mass_at_least(e, sl, t, false, red);
    }

    /* Draw: the first kept entry, in vocabulary order, where the running mass passes r. */
    local = 0.0f;
    for (int i = sl.begin; i < sl.end; i++)
        if (__float_as_uint(e[i]) >= t) local += e[i];
    prefix[threadIdx.x] = local;
    __syncthreads();
    if (threadIdx.x == 0) { /* 1024 adds: cheaper to read than a parallel scan */
        float run = 0.0f;
        for (int i = 0; i < SAMPLE_THREADS; i++) {
            const float v = prefix[i];
            prefix[i] = run;
            run += v;
        }
    }
    __syncthreads();
    const float r = coin * mass;
    float cum = prefix[threadIdx.x];
    if (r >= cum && r < cum + local) {
        int choice = -1;
        for (int i = sl.begin; i < sl.end && choice < 0; i++)
            if (__float_as_uint(e[i]) >= t && r < (cum += e[i])) choice = i;
        if (choice < 0) /* rounding: the slice's last kept entry */
            for (int i = sl.end - 1; i >= sl.begin && choice < 0; i--)
                if (__float_as_uint(e[i]) >= t) choice = i;
        atomicCAS(&picked, -1, choice);
    }
    __syncthreads();
    if (threadIdx.x == 0) *token = picked >= 0 ? picked : best;
}

lc_status launch_sample(const float *logits, int vocab, const sample_row *rows, int n,
                        float *scratch, int32_t *tokens, cudaStream_t s, lc_error *err) {
    sample_kernel<<<n, SAMPLE_THREADS, 0, s>>>(logits, vocab, rows, scratch, tokens);
    CU_LAUNCHED();
    return LC_OK;
}
