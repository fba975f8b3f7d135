/* Decoding attention's device code, shared by its own kernel
 * (cuda_attention.cu) and the decoding step kernel (cuda_step.cu). */
#ifndef LLAMAC_BACKEND_CUDA_ATTENTION_CUH
#define LLAMAC_BACKEND_CUDA_ATTENTION_CUH

#include "backend/cuda/cuda_matvec.cuh"
#include "backend/cuda/cuda_stamps.cuh"

#define ATTN_THREADS 256
#define ATTN_UNROLL  8 /* keys whose loads are in flight at once per thread */

/* Lanes that share one key row, 16 bytes (v elements) each: hd / v rounded
 * up to a power of two so their sum is a shuffle tree; lanes past the row idle. */
__host__ __device__ static inline int lanes_per_key(int hd, int v) {
    int lanes = 1;
    while (lanes * v < hd) lanes *= 2;
    return lanes;
}

/* Whether attention_item handles a's shapes. */
static inline lc_status attention_check(const attn_args *a, lc_error *err) {
    const int v = a->kv_dtype == LC_DTYPE_F16 ? 8 : 4, lpk = lanes_per_key(a->head_dim, v);
    if (a->head_dim % v || lpk > 32 || a->n_heads % a->n_kv_heads)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "attention: head_dim %d with a %s cache (needs a multiple of %d up to %d)",
                       a->head_dim, lc_dtype_name(a->kv_dtype), v, 32 * v);
    return LC_OK;
}

/* Shared memory of one attention_item: the scaled queries, the chunk's
 * scores and each slot's partial output. */
static inline size_t attention_smem_bytes(const attn_args *a) {
    const int v = a->kv_dtype == LC_DTYPE_F16 ? 8 : 4, lpk = lanes_per_key(a->head_dim, v);
    const int rep = a->n_heads / a->n_kv_heads, n_slots = ATTN_THREADS / lpk;
    return (size_t)(rep * a->head_dim + rep * a->chunk + n_slots * a->head_dim) * sizeof(float);
}

/* Loads keys (or values) (p0 + u) * n_slots + slot of a chunk, for u < ATTN_UNROLL,
 * that lie in [from, to): 16 bytes per thread and row, from L2 (the decoding
 * step kernel reads what other blocks wrote in the same launch). */
template <typename KV>
__device__ __forceinline__ void load_rows(uint4 (&raw)[ATTN_UNROLL], const KV *rows, int hd, int p0,
                                          int n_slots, int slot, int from, int to) {
#pragma unroll
    for (int u = 0; u < ATTN_UNROLL; u++) {
        const int kk = (p0 + u) * n_slots + slot;
        if (kk >= from && kk < to)
            raw[u] = __ldcg(reinterpret_cast<const uint4 *>(rows + (int64_t)kk * hd));
    }
}

/* One work item of decoding attention: chunk `split` of kv head g for batch
 * entry t, by the ATTN_THREADS threads of S (the first ones of the block).
 * EARLY (a kernel of its own, launched with PDL): keys written before this
 * step are loaded before waiting for the previous kernel. `sm` is
 * attention_smem_bytes of shared memory. */
template <typename KV, typename S, bool EARLY>
__device__ __forceinline__ void attention_item(const attn_args &a, int t, int g, int split,
                                               float *sm) {
    constexpr int V = vec16<KV>::N;
    /* pos and seq come from the host before the step; the cache at positions
     * before this step was written by earlier steps, so with one entry per
     * step every key but the newest can be loaded before the previous kernel
     * (which writes the queries and the newest key) is done. */
    STAMP_BEGIN(EARLY);
    const int len = a.pos[t] + 1;
    const int chunk = attention_chunk_for(len, a.chunk, a.splits ? a.splits : a.max_splits);
    const int n_active = (len + chunk - 1) / chunk;
    if (split >= n_active) return;
    const int k0 = split * chunk, nk = min(len - k0, chunk);
    const int hd = a.head_dim, rep = a.n_heads / a.n_kv_heads;
    const int lpk = lanes_per_key(hd, V); /* a power of two <= 32 (checked at launch) */
    const int slot = threadIdx.x / lpk, sub = threadIdx.x % lpk;
    const bool lane_on = sub * V < hd;
    const int n_slots = ATTN_THREADS / lpk; /* keys per pass */
    const int64_t head_off = a.seq[t] * a.seq_stride + g * a.head_stride;
    const KV *keys = static_cast<const KV *>(a.k_cache) + head_off + (int64_t)k0 * hd + sub * V;
    const KV *vals = static_cast<const KV *>(a.v_cache) + head_off + (int64_t)k0 * hd + sub * V;
    const int ready =
        EARLY && a.n == 1 ? nk - (split == n_active - 1) : 0; /* keys written before */
    uint4 raw[ATTN_UNROLL], raw_v[ATTN_UNROLL];               /* keys; values of the first pass */
    const int nk_lane = lane_on ? nk : 0;                     /* keys this lane loads */
    load_rows<KV>(raw, keys, hd, 0, n_slots, slot, 0, min(ready, nk_lane));
    load_rows<KV>(raw_v, vals, hd, 0, n_slots, slot, 0, min(ready, nk_lane));
    if (EARLY) pdl_wait_for_previous();
    STAMP_WAITED();
    load_rows<KV>(raw, keys, hd, 0, n_slots, slot, ready, nk_lane);
    load_rows<KV>(raw_v, vals, hd, 0, n_slots, slot, ready, nk_lane);

    float *qs = sm;                       /* (rep, hd) scaled queries */
    float *scores = qs + rep * hd;        /* (rep, chunk) */
    float *obuf = scores + rep * a.chunk; /* (n_slots, hd) */
    __shared__ float red[32];
    __shared__ float stats[2];
    __shared__ bool last;

    const float scale = rsqrtf((float)hd);
    const float *q = a.q + (int64_t)t * a.n_heads * hd + (int64_t)g * rep * hd;
    for (int i = threadIdx.x; i < rep * hd; i += ATTN_THREADS) qs[i] = __ldcg(q + i) * scale;
    S::sync();
    STAMP_MARK(0);

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
    S::sync();
    STAMP_MARK(1);

    float *o_part = a.o_part + ((int64_t)t * a.n_heads + g * rep) * a.max_splits * hd;
    float *ml_part = a.ml_part + ((int64_t)t * a.n_heads + g * rep) * a.max_splits * 2;
    for (int r = 0; r < rep; r++) {
        float *sr = scores + r * a.chunk;
        float m = -INFINITY;
        for (int i = threadIdx.x; i < nk; i += ATTN_THREADS) m = fmaxf(m, sr[i]);
        m = block_max<S>(m, red);
        if (r == 0) STAMP_MARK(2);
        float l = 0.0f;
        for (int i = threadIdx.x; i < nk; i += ATTN_THREADS) {
            const float e = __expf(sr[i] - m);
            sr[i] = e;
            l += e;
        }
        l = block_sum<S>(l, red); /* its barriers also publish sr */
        if (r == 0) STAMP_MARK(3);

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
        S::sync();
        if (r == 0) STAMP_MARK(4);
        if (n_active == 1) { /* the only chunk: the result is final, no merge */
            float *out = a.out + (int64_t)t * a.n_heads * hd + (int64_t)(g * rep + r) * hd;
            for (int d = threadIdx.x; d < hd; d += ATTN_THREADS) {
                float o = 0.0f;
                for (int k = 0; k < n_slots; k++) o += obuf[k * hd + d];
                out[d] = o / l;
                if (a.qout.q) act_group_store(a.qout, t, (g * rep + r) * hd + d, o / l, 1.0f);
            }
            S::sync();
            if (r == 0) STAMP_MARK(5);
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
        S::sync();
        if (r == 0) STAMP_MARK(5);
    }

    if (n_active == 1) {
        STAMP_END(STAMP_ATTN_ONE, 0);
        return;
    }
    /* The last chunk of this head to finish merges them all. */
    __threadfence();
    if (threadIdx.x == 0) {
        unsigned *done = a.done + (int64_t)t * a.n_kv_heads + g;
        last = atomicAdd(done, 1u) == (unsigned)n_active - 1;
        if (last) *done = 0; /* ready for the next launch */
    }
    S::sync();
    if (!last) {
        STAMP_END(STAMP_ATTN_PART, 0);
        return;
    }
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
        S::sync();
        const float *op = o_part + (int64_t)r * a.max_splits * hd;
        float *out = a.out + (int64_t)t * a.n_heads * hd + (int64_t)(g * rep + r) * hd;
        for (int d = threadIdx.x; d < hd; d += ATTN_THREADS) {
            float o = 0.0f;
            for (int s = 0; s < n_active; s++)
                o += __ldcg(op + (int64_t)s * hd + d) * __expf(__ldcg(ml + 2 * s) - stats[0]);
            out[d] = o * stats[1];
            if (a.qout.q) act_group_store(a.qout, t, (g * rep + r) * hd + d, o * stats[1], 1.0f);
        }
        S::sync();
    }
    STAMP_MARK(6);
    STAMP_END(STAMP_ATTN_MERGE, 0);
}

#endif
