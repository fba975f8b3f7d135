/* Attention over the device KV cache. Decoding: each block takes one kv head
 * (with the query heads that share it) and one chunk of the keys, so a long
 * context spreads over many blocks (flash-decoding); the last block of a
 * head to finish merges the chunks' partial results. Prefill of one long run
 * uses matrix products instead (cuda_prefill.cu), with the causal softmax here. */
#include "backend/cuda/cuda_ops.cuh"

#define ATTN_THREADS 256
#define ATTN_UNROLL  8 /* keys whose loads are in flight at once per thread */

/* Lanes that share one key row, 16 bytes (v elements) each: hd / v rounded
 * up to a power of two so their sum is a shuffle tree; lanes past the row idle. */
__host__ __device__ static inline int lanes_per_key(int hd, int v) {
    int lanes = 1;
    while (lanes * v < hd) lanes *= 2;
    return lanes;
}

void attention_split(int n_ctx, int *chunk, int *max_splits) {
    int c = 256;
    if ((n_ctx + c - 1) / c > 64) c = ((n_ctx + 63) / 64 + 63) / 64 * 64; /* at most 64 chunks */
    *chunk = c;
    *max_splits = (n_ctx + c - 1) / c;
}

/* Loads keys (or values) (p0 + u) * n_slots + slot of a chunk, for u < ATTN_UNROLL,
 * that lie in [from, to): 16 bytes per thread and row. */
template <typename KV>
__device__ __forceinline__ void load_rows(uint4 (&raw)[ATTN_UNROLL], const KV *rows, int hd, int p0,
                                          int n_slots, int slot, int from, int to) {
#pragma unroll
    for (int u = 0; u < ATTN_UNROLL; u++) {
        const int kk = (p0 + u) * n_slots + slot;
        if (kk >= from && kk < to)
            raw[u] = *reinterpret_cast<const uint4 *>(rows + (int64_t)kk * hd);
    }
}

template <typename KV>
__global__ void __launch_bounds__(ATTN_THREADS) attention_kernel(attn_args a) {
    constexpr int V = vec16<KV>::N;
    pdl_let_next_start();
    /* pos and seq come from the host before the step; the cache at positions
     * before this step was written by earlier steps, so with one entry per
     * step every key but the newest can be loaded before the previous kernel
     * (which writes the queries and the newest key) is done. */
    const int t = blockIdx.z, g = blockIdx.x, split = blockIdx.y;
    const int len = a.pos[t] + 1, n_active = (len + a.chunk - 1) / a.chunk;
    if (split >= n_active) return;
    const int k0 = split * a.chunk, nk = min(len - k0, a.chunk);
    const int hd = a.head_dim, rep = a.n_heads / a.n_kv_heads;
    const int lpk = lanes_per_key(hd, V); /* a power of two <= 32 (checked at launch) */
    const int slot = threadIdx.x / lpk, sub = threadIdx.x % lpk;
    const bool lane_on = sub * V < hd;
    const int n_slots = ATTN_THREADS / lpk; /* keys per pass */
    const int64_t head_off = a.seq[t] * a.seq_stride + g * a.head_stride;
    const KV *keys = static_cast<const KV *>(a.k_cache) + head_off + (int64_t)k0 * hd + sub * V;
    const KV *vals = static_cast<const KV *>(a.v_cache) + head_off + (int64_t)k0 * hd + sub * V;
    const int ready = a.n == 1 ? nk - (split == n_active - 1) : 0; /* keys written before */
    uint4 raw[ATTN_UNROLL], raw_v[ATTN_UNROLL]; /* keys; values of the first pass */
    const int nk_lane = lane_on ? nk : 0;       /* keys this lane loads */
    load_rows<KV>(raw, keys, hd, 0, n_slots, slot, 0, min(ready, nk_lane));
    load_rows<KV>(raw_v, vals, hd, 0, n_slots, slot, 0, min(ready, nk_lane));
    pdl_wait_for_previous();
    load_rows<KV>(raw, keys, hd, 0, n_slots, slot, ready, nk_lane);
    load_rows<KV>(raw_v, vals, hd, 0, n_slots, slot, ready, nk_lane);

    extern __shared__ float sm[];
    float *qs = sm;                       /* (rep, hd) scaled queries */
    float *scores = qs + rep * hd;        /* (rep, chunk) */
    float *obuf = scores + rep * a.chunk; /* (n_slots, hd) */
    __shared__ float red[32];
    __shared__ float stats[2];
    __shared__ bool last;

    const float scale = rsqrtf((float)hd);
    const float *q = a.q + (int64_t)t * a.n_heads * hd + (int64_t)g * rep * hd;
    for (int i = threadIdx.x; i < rep * hd; i += ATTN_THREADS) qs[i] = q[i] * scale;
    __syncthreads();

    /* Every thread walks the same number of passes so the shuffles stay converged. */
    const int n_pass = (nk + n_slots - 1) / n_slots;

    for (int p0 = 0; p0 < n_pass; p0 += ATTN_UNROLL) {
        if (p0 > 0) load_rows<KV>(raw, keys, hd, p0, n_slots, slot, 0, nk_lane);
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) {
            if (p0 + u >= n_pass) break;
            const int kk = (p0 + u) * n_slots + slot;
            float kf[V];
            if (kk < nk_lane)
                unpack16<KV>(raw[u], kf);
            else
#pragma unroll
                for (int i = 0; i < V; i++) kf[i] = 0.0f;
            for (int r = 0; r < rep; r++) {
                const float *qr = qs + r * hd + sub * V;
                float s = 0.0f;
                if (lane_on)
#pragma unroll
                    for (int i = 0; i < V; i++) s += kf[i] * qr[i];
                for (int o = lpk / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                if (sub == 0 && kk < nk) scores[r * a.chunk + kk] = s;
            }
        }
    }
    __syncthreads();

    float *o_part = a.o_part + ((int64_t)t * a.n_heads + g * rep) * a.max_splits * hd;
    float *ml_part = a.ml_part + ((int64_t)t * a.n_heads + g * rep) * a.max_splits * 2;
    for (int r = 0; r < rep; r++) {
        float *sr = scores + r * a.chunk;
        float m = -INFINITY;
        for (int i = threadIdx.x; i < nk; i += ATTN_THREADS) m = fmaxf(m, sr[i]);
        m = block_max(m, red);
        float l = 0.0f;
        for (int i = threadIdx.x; i < nk; i += ATTN_THREADS) {
            const float e = __expf(sr[i] - m);
            sr[i] = e;
            l += e;
        }
        l = block_sum(l, red); /* its barriers also publish sr */

        float acc[V];
#pragma unroll
        for (int i = 0; i < V; i++) acc[i] = 0.0f;
        for (int p0 = 0; p0 < n_pass; p0 += ATTN_UNROLL) {
            if (p0 > 0 || r > 0) load_rows<KV>(raw_v, vals, hd, p0, n_slots, slot, 0, nk_lane);
#pragma unroll
            for (int u = 0; u < ATTN_UNROLL; u++) {
                const int kk = (p0 + u) * n_slots + slot;
                if (p0 + u >= n_pass || kk >= nk_lane) break;
                float vf[V];
                unpack16<KV>(raw_v[u], vf);
                const float p = sr[kk];
#pragma unroll
                for (int i = 0; i < V; i++) acc[i] += p * vf[i];
            }
        }
        if (lane_on)
#pragma unroll
            for (int i = 0; i < V; i++) obuf[slot * hd + sub * V + i] = acc[i];
        __syncthreads();
        if (n_active == 1) { /* the only chunk: the result is final, no merge */
            float *out = a.out + (int64_t)t * a.n_heads * hd + (int64_t)(g * rep + r) * hd;
            for (int d = threadIdx.x; d < hd; d += ATTN_THREADS) {
                float o = 0.0f;
                for (int k = 0; k < n_slots; k++) o += obuf[k * hd + d];
                out[d] = o / l;
            }
            __syncthreads();
            continue;
        }
        for (int d = threadIdx.x; d < hd; d += ATTN_THREADS) {
            float o = 0.0f;
            for (int k = 0; k < n_slots; k++) o += obuf[k * hd + d];
            o_part[((int64_t)r * a.max_splits + split) * hd + d] = o;
        }
        if (threadIdx.x == 0) {
            ml_part[((int64_t)r * a.max_splits + split) * 2] = m;
            ml_part[((int64_t)r * a.max_splits + split) * 2 + 1] = l;
        }
        __syncthreads();
    }

    if (n_active == 1) return;
    /* The last chunk of this head to finish merges them all. */
    __threadfence();
    if (threadIdx.x == 0) {
        unsigned *done = a.done + (int64_t)t * a.n_kv_heads + g;
        last = atomicAdd(done, 1u) == (unsigned)n_active - 1;
        if (last) *done = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int r = 0; r < rep; r++) {
        const float *ml = ml_part + (int64_t)r * a.max_splits * 2;
        if (threadIdx.x == 0) {
            float m = -INFINITY, l = 0.0f;
            for (int s = 0; s < n_active; s++) m = fmaxf(m, __ldcg(ml + 2 * s));
            for (int s = 0; s < n_active; s++)
                l += __ldcg(ml + 2 * s + 1) * __expf(__ldcg(ml + 2 * s) - m);
            stats[0] = m;
            stats[1] = 1.0f / l;
        }
        __syncthreads();
        const float *op = o_part + (int64_t)r * a.max_splits * hd;
        float *out = a.out + (int64_t)t * a.n_heads * hd + (int64_t)(g * rep + r) * hd;
        for (int d = threadIdx.x; d < hd; d += ATTN_THREADS) {
            float o = 0.0f;
            for (int s = 0; s < n_active; s++)
                o += __ldcg(op + (int64_t)s * hd + d) * __expf(__ldcg(ml + 2 * s) - stats[0]);
            out[d] = o * stats[1];
        }
        __syncthreads();
    }
}

lc_status attention_setup(int device, lc_error *err) {
    int optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - 1024; /* room for the static part */
    CU_TRY(cudaFuncSetAttribute(attention_kernel<__half>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    CU_TRY(cudaFuncSetAttribute(attention_kernel<float>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    return LC_OK;
}

lc_status launch_attention(const attn_args *a, cudaStream_t s, lc_error *err) {
    const int v = a->kv_dtype == LC_DTYPE_F16 ? 8 : 4, lpk = lanes_per_key(a->head_dim, v);
    if (a->head_dim % v || lpk > 32 || a->n_heads % a->n_kv_heads)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "attention: head_dim %d with a %s cache (needs a multiple of %d up to %d)",
                       a->head_dim, lc_dtype_name(a->kv_dtype), v, 32 * v);
    const int rep = a->n_heads / a->n_kv_heads, n_slots = ATTN_THREADS / lpk;
    const size_t smem =
        (size_t)(rep * a->head_dim + rep * a->chunk + n_slots * a->head_dim) * sizeof(float);
    const dim3 grid(a->n_kv_heads, a->max_splits, a->n);
    pdl_config pc;
    pdl_config_init(&pc, grid, dim3(ATTN_THREADS), smem, s);
    pc.config.numAttrs = a->pdl ? 1 : 0;
    if (a->kv_dtype == LC_DTYPE_F16)
        CU_TRY(cudaLaunchKernelEx(&pc.config, attention_kernel<__half>, *a));
    else
        CU_TRY(cudaLaunchKernelEx(&pc.config, attention_kernel<float>, *a));
    CU_LAUNCHED();
    return LC_OK;
}

/* One block per (row, matrix): row r of a matrix is query position p0 + r. */
template <typename P>
__global__ void causal_softmax_kernel(const float *S, int n, int L, int p0, P *out) {
    __shared__ float red[32];
    const int r = blockIdx.x;
    const int64_t off = ((int64_t)blockIdx.y * n + r) * L;
    const float *s = S + off;
    const int visible = p0 + r + 1;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, s[j]);
    m = block_max(m, red);
    float l = 0.0f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) l += __expf(s[j] - m);
    const float inv = 1.0f / block_sum(l, red);
    for (int j = threadIdx.x; j < L; j += blockDim.x)
        out[off + j] = from_f32<P>(j < visible ? __expf(s[j] - m) * inv : 0.0f);
}

lc_status launch_causal_softmax(const float *S, int n_mats, int n, int L, int p0, lc_dtype p_t,
                                void *P, cudaStream_t s, lc_error *err) {
    const dim3 grid(n, n_mats);
    if (p_t == LC_DTYPE_F16)
        causal_softmax_kernel<<<grid, 256, 0, s>>>(S, n, L, p0, (__half *)P);
    else
        causal_softmax_kernel<<<grid, 256, 0, s>>>(S, n, L, p0, (float *)P);
    CU_LAUNCHED();
    return LC_OK;
}
