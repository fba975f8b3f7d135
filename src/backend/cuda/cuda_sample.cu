/* Sampling on the device, so a decoding step sends the host one token id
 * instead of a row of logits. The same rule as lc_sampler_sample (argmax at
 * temperature 0; otherwise softmax(logits / T), cut to the top-k and then
 * to the top-p nucleus, drawn with the host's coin) in one block. The cuts
 * are found as probability thresholds by bisection over the float bit
 * patterns, so no sort is needed; every sum runs in a fixed order, so a
 * seed gives the same tokens on every run. One block per row: the rows of a
 * batch (one per sequence a server step decodes) are drawn in one launch.
 *
 * Each warp owns one contiguous run of the vocabulary and reads it 32
 * consecutive entries at a time, so every load is one coalesced 128-byte
 * line (a thread per contiguous slice made each warp load touch 32 lines:
 * 19 us for a greedy draw over 32 000 logits, 600 us at T 0.8 with the
 * bisection's passes; now 6-7 and 75 us, docs/cuda-notes.md, runs 28-29).
 * The probabilities stay in shared memory when the row fits, so those passes
 * do not go to L2. A fed greedy draw (sample_and_feed) is instead spread
 * over 32 blocks (argmax_spread_kernel), since it stands between two steps. */
#include "backend/cuda/cuda_ops.cuh"

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS   (SAMPLE_THREADS / 32)
/* Loads in flight per lane: 16 (64 KB a block) drew at T 0.8, top-p 0.9
 * +11% faster than 4 on stories15M and +6% on stories110M (H100, run 103),
 * greedy +1%. 1024 threads leave 64 registers each, so 32 would spill. */
#ifndef SAMPLE_UNROLL
#define SAMPLE_UNROLL 16
#endif

/* The run of the vocabulary a warp owns: a multiple of 32 entries. */
struct span {
    int begin, end;
    __device__ span(int vocab) {
        const int per = (vocab + 32 * SAMPLE_WARPS - 1) / (32 * SAMPLE_WARPS) * 32;
        begin = min(vocab, (int)(threadIdx.x >> 5) * per);
        end = min(vocab, begin + per);
    }
};

/* Calls f(i, p[i]) for the lane's entries of the warp's span, in increasing
 * i, with SAMPLE_UNROLL loads in flight; f is a functor whose state stays in
 * registers (a lambda capturing by reference put it on the stack). */
template <typename F> __device__ __forceinline__ void for_span(const float *p, span s, F &f) {
    const int lane = threadIdx.x & 31;
    for (int i0 = s.begin; i0 < s.end; i0 += 32 * SAMPLE_UNROLL) {
        float v[SAMPLE_UNROLL];
#pragma unroll
        for (int u = 0; u < SAMPLE_UNROLL; u++) {
            const int i = i0 + 32 * u + lane;
            v[u] = i < s.end ? p[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < SAMPLE_UNROLL; u++)
            if (i0 + 32 * u + lane < s.end) f(i0 + 32 * u + lane, v[u]);
    }
}

struct argmax_of { /* the first index of the largest value */
    float v = -INFINITY;
    int i;
    __device__ void operator()(int j, float x) {
        if (x > v) v = x, i = j;
    }
};
struct mass_of { /* the sum (or count) of the values whose bits are >= t */
    unsigned t;
    bool count;
    float m = 0.0f;
    __device__ void operator()(int, float x) {
        if (__float_as_uint(x) >= t) m += count ? 1.0f : x;
    }
};
struct exp_of { /* e = exp((x - max) / T), and their sum */
    float *e, max, temperature, sum = 0.0f;
    __device__ void operator()(int j, float x) {
        const float y = __expf((x - max) / temperature);
        e[j] = y;
        sum += y;
    }
};

/* Probability mass (or count) of the entries whose bits are >= t. */
__device__ float mass_at_least(const float *e, span s, unsigned t, bool count, float *red) {
    mass_of f = {t, count};
    for_span(e, s, f);
    return block_sum(f.m, red);
}

/* The largest threshold in [lo, hi] whose kept mass (or count) is >= goal. */
__device__ unsigned bisect(const float *e, span s, unsigned lo, unsigned hi, float goal, bool count,
                           float *red) {
    while (lo < hi) {
        const unsigned mid = lo + (hi - lo + 1) / 2;
        if (mass_at_least(e, s, mid, count, red) >= goal)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Keeps (v, i) or (v2, i2), whichever is larger, the lower index on a tie. */
__device__ __forceinline__ void keep_max(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

/* keep_max over the 32 lanes of a warp: every lane ends with the answer. */
__device__ __forceinline__ void warp_keep_max(float &v, int &i) {
    for (int o = 16; o > 0; o >>= 1)
        keep_max(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
}

/* The answer for row `row`: its token, and the next step's inputs when the
 * draw feeds one. */
__device__ __forceinline__ void put_token(int32_t *tokens, int row, const sample_feed &feed,
                                          int t) {
    tokens[row] = t;
    if (feed.token) {
        *feed.token = t;
        *feed.pos = feed.next_pos;
        *feed.seq = feed.next_seq;
        *feed.row = 0;
    }
}

__global__ void __launch_bounds__(SAMPLE_THREADS, 1)
    sample_kernel(const float *all_logits, int vocab, const sample_row *rows, float *scratch,
                  bool in_smem, int32_t *tokens, const sample_feed feed) {
    extern __shared__ float e_smem[]; /* the probabilities, when in_smem */
    const sample_row rule = feed.token ? feed.rule : rows[blockIdx.x];
    const float temperature = rule.temperature, top_p = rule.top_p, coin = rule.coin;
    const int top_k = rule.top_k;
    const float *logits = all_logits + (size_t)blockIdx.x * vocab;
    float *e = in_smem ? e_smem : scratch + (size_t)blockIdx.x * vocab;
    __shared__ float red[32];
    __shared__ float red_v[SAMPLE_WARPS], warp_base[SAMPLE_WARPS + 1];
    __shared__ int red_i[SAMPLE_WARPS];
    __shared__ int picked, last_warp;
    const span sp(vocab);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    /* argmax, the first index among equal maxima (as the host's) */
    argmax_of am;
    am.i = vocab;
    for_span(logits, sp, am);
    float bv = am.v;
    int bi = am.i;
    warp_keep_max(bv, bi);
    if (lane == 0) red_v[warp] = bv, red_i[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        bv = red_v[lane];
        bi = red_i[lane];
        warp_keep_max(bv, bi);
        if (lane == 0) red_v[0] = bv, red_i[0] = bi < vocab ? bi : 0, picked = -1;
    }
    __syncthreads();
    const int best = red_i[0];
    const float max = logits[best];
    if (temperature == 0.0f) {
        if (threadIdx.x == 0) put_token(tokens, blockIdx.x, feed, best);
        return;
    }

    exp_of ex = {e, max, temperature};
    for_span(logits, sp, ex);
    const float sum = block_sum(ex.sum, red); /* its barriers also publish e */
    if (!(sum > 0.0f) || !isfinite(sum)) {    /* no distribution to draw from */
        if (threadIdx.x == 0) put_token(tokens, blockIdx.x, feed, best);
        return;
    }

    /* Keep the entries whose bits are >= t: all, the top-k, then the nucleus. */
    unsigned t = 0;
    float mass = sum;
    if (top_k > 0 && top_k < vocab) {
        t = bisect(e, sp, 0, 0x7f800000u, (float)top_k, true, red);
        mass = mass_at_least(e, sp, t, false, red);
    }
    if (top_p < 1.0f) t = bisect(e, sp, t, __float_as_uint(1.0f), top_p * mass, false, red);

    /* Draw: the first kept entry, in vocabulary order, where the running mass
     * passes r = coin * (the kept mass), the warps' masses added in order. */
    mass_of kept = {t, false};
    for_span(e, sp, kept);
    const float local = warp_sum(kept.m);
    if (lane == 0) red_v[warp] = local;
    __syncthreads();
    if (threadIdx.x == 0) {
        float run = 0.0f;
        last_warp = 0;
        for (int w = 0; w < SAMPLE_WARPS; w++) {
            warp_base[w] = run;
            run += red_v[w];
            if (red_v[w] > 0.0f) last_warp = w;
        }
        warp_base[SAMPLE_WARPS] = run;
    }
    __syncthreads();
    const float r = coin * warp_base[SAMPLE_WARPS];
    float cum = warp_base[warp];
    /* r < the total, but rounding may put it at the end: the last warp with mass then */
    if (red_v[warp] > 0.0f && r >= cum && (r < cum + red_v[warp] || warp == last_warp)) {
        /* This warp's span holds it: 32 entries at a time, a scan across the lanes. */
        int choice = -1, last_kept = -1;
        for (int i0 = sp.begin; i0 < sp.end && choice < 0; i0 += 32) {
            const int i = i0 + lane;
            const bool kept = i < sp.end && __float_as_uint(e[i]) >= t;
            float x = kept ? e[i] : 0.0f;
            for (int o = 1; o < 32; o <<= 1) { /* inclusive prefix sum over the lanes */
                const float y = __shfl_up_sync(0xffffffffu, x, o);
                if (lane >= o) x += y;
            }
            const unsigned hit = __ballot_sync(0xffffffffu, kept && r < cum + x);
            const unsigned any = __ballot_sync(0xffffffffu, kept);
            if (hit) choice = i0 + __ffs(hit) - 1;
            if (any) last_kept = i0 + 31 - __clz(any);
            cum += __shfl_sync(0xffffffffu, x, 31);
        }
        if (choice < 0) choice = last_kept; /* rounding: the span's last kept entry */
        if (lane == 0 && choice >= 0) atomicCAS(&picked, -1, choice);
    }
    __syncthreads();
    if (threadIdx.x == 0) put_token(tokens, blockIdx.x, feed, picked >= 0 ? picked : best);
}

/* A greedy draw of one row spread over ARGMAX_BLOCKS blocks: each finds its
 * slice's largest entry (the lowest index on a tie), and the last block to
 * finish (a counter) merges the slices. The same token as sample_kernel at
 * temperature 0, without one block reading the whole row alone (5-6 us for
 * 32 000 logits); used by sample_and_feed, where the draw is the only thing
 * between two decoding steps. */
__global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_spread_kernel(const float *logits, int vocab, int2 *partial, unsigned *done,
                         int32_t *tokens, const sample_feed feed) {
    __shared__ float red_v[ARGMAX_THREADS / 32];
    __shared__ int red_i[ARGMAX_THREADS / 32];
    __shared__ bool last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* slices of whole 128-byte lines, so no warp load straddles two */
    const int per = (vocab + 32 * ARGMAX_BLOCKS - 1) / (32 * ARGMAX_BLOCKS) * 32;
    const int begin = min(vocab, (int)blockIdx.x * per), end = min(vocab, begin + per);
    argmax_of am;
    am.i = vocab; /* none yet (a row of NaN or -inf): loses every tie, token 0 */
#pragma unroll 4
    for (int j = begin + threadIdx.x; j < end; j += ARGMAX_THREADS) am(j, logits[j]);
    float v = am.v;
    int i = am.i;
    warp_keep_max(v, i);
    if (lane == 0) red_v[warp] = v, red_i[warp] = i;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < ARGMAX_THREADS / 32; w++) keep_max(v, i, red_v[w], red_i[w]);
        partial[blockIdx.x] = make_int2(__float_as_int(v), i);
        __threadfence(); /* the partial is visible before the count says so */
        /* atomicInc wraps to 0 at the last arrival, ready for the next draw */
        last = atomicInc(done, ARGMAX_BLOCKS - 1) == ARGMAX_BLOCKS - 1;
    }
    __syncthreads();
    if (!last || warp != 0) return;
    __threadfence();
    v = -INFINITY, i = vocab;
    for (int b = lane; b < ARGMAX_BLOCKS; b += 32) {
        const int2 pb = __ldcg(partial + b); /* from L2: other SMs wrote it */
        keep_max(v, i, __int_as_float(pb.x), pb.y);
    }
    warp_keep_max(v, i);
    if (lane == 0) put_token(tokens, 0, feed, i < vocab ? i : 0);
}

lc_status launch_argmax_spread(const float *logits, int vocab, int2 *partial, unsigned *done,
                               int32_t *tokens, const sample_feed *feed, cudaStream_t s,
                               lc_error *err) {
    const sample_feed none = {};
    argmax_spread_kernel<<<ARGMAX_BLOCKS, ARGMAX_THREADS, 0, s>>>(logits, vocab, partial, done,
                                                                  tokens, feed ? *feed : none);
    CU_LAUNCHED();
    return LC_OK;
}

lc_status sample_setup(int device, int64_t *max_smem_bytes, lc_error *err) {
    int optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - 1024; /* room for the static part */
    CU_TRY(
        cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    *max_smem_bytes = dynamic;
    return LC_OK;
}

lc_status launch_sample(const float *logits, int vocab, const sample_row *rows, int n,
                        float *scratch, int64_t max_smem_bytes, int32_t *tokens,
                        const sample_feed *feed, cudaStream_t s, lc_error *err) {
    if (feed && n != 1) return lc_fail(err, LC_ERR_ARG, "a fed draw is of one row, not %d", n);
    const sample_feed none = {};
    const size_t row_bytes = (size_t)vocab * sizeof(float);
    const bool in_smem = (int64_t)row_bytes <= max_smem_bytes;
    sample_kernel<<<n, SAMPLE_THREADS, in_smem ? row_bytes : 0, s>>>(
        logits, vocab, rows, scratch, in_smem, tokens, feed ? *feed : none);
    CU_LAUNCHED();
    return LC_OK;
}
