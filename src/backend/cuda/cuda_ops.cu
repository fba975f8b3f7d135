/* Element-wise and matrix-vector kernels of the CUDA backend. Decoding reads
 * every weight once per token, so the matrix-vector product is the kernel
 * that sets the speed: 16-byte streaming loads, several in flight per thread,
 * and the small operations around it (RMSNorm before, RoPE / SwiGLU /
 * residual after) fused in so that no extra pass touches device memory. */
#include "backend/cuda/cuda_ops.cuh"

/* ---- matrix-vector product ------------------------------------------------- */

#ifndef MV_WARPS   /* a -D for the dev/cuda ladder */
#define MV_WARPS 8 /* warps per block */
#endif
#define MV_UNROLL 4 /* 16-byte loads in flight per row and thread */

/* Rotates the pair (a, b) of position `pos`, pair index i within its head. */
__device__ __forceinline__ void rope_pair(const float2 *rope, int half, int pos, int i, float &a,
                                          float &b) {
    const float2 cs = rope[(int64_t)pos * half + i];
    const float x = a, y = b;
    a = x * cs.x - y * cs.y;
    b = x * cs.y + y * cs.x;
}

__device__ __forceinline__ void store_kv(void *cache, lc_dtype t, int64_t idx, float a, float b) {
    if (t == LC_DTYPE_F16)
        *reinterpret_cast<__half2 *>(static_cast<__half *>(cache) + idx) = __floats2half2_rn(a, b);
    else
        *reinterpret_cast<float2 *>(static_cast<float *>(cache) + idx) = make_float2(a, b);
}

/* What the epilogue of rows (r, r + 1) of token t reads from memory: the
 * residual for MV_ADD, RoPE's (cos, sin) for q and k rows. Loaded when the
 * warp starts the pair, so the latency hides behind the pair's weights
 * instead of adding to the kernel's tail. pos is the token's position. */
__device__ __forceinline__ float2 mv_prepare(const mv_epilogue &e, int t, int r, int pos) {
    switch (e.kind) {
    case MV_ADD: return make_float2(e.out[t * e.out_ld + r], e.out[t * e.out_ld + r + 1]);
    case MV_QKV: {
        const kv_target &kv = e.kv;
        if (r >= kv.q_rows + kv.kv_rows) return make_float2(1.0f, 0.0f); /* v: no rotation */
        const int rr = r < kv.q_rows ? r : r - kv.q_rows;
        return kv.rope[(int64_t)pos * (kv.head_dim / 2) + (rr % kv.head_dim) / 2];
    }
    default: return make_float2(0.0f, 0.0f);
    }
}

/* Rows r and r + 1 of token t (at pos in sequence seq) are done: apply the
 * epilogue, with `pre` from mv_prepare. */
__device__ __forceinline__ void mv_finish(const mv_epilogue &e, int t, int r, float a, float b,
                                          float2 pre, int pos, int seq) {
    switch (e.kind) {
    case MV_STORE:
        e.out[t * e.out_ld + r] = a;
        e.out[t * e.out_ld + r + 1] = b;
        break;
    case MV_ADD:
        e.out[t * e.out_ld + r] = pre.x + a;
        e.out[t * e.out_ld + r + 1] = pre.y + b;
        break;
    case MV_SWIGLU: e.out[t * e.out_ld + r / 2] = a / (1.0f + __expf(-a)) * b; break;
    case MV_QKV: {
        const kv_target &kv = e.kv;
        const int hd = kv.head_dim;
        { /* RoPE (pre is (1, 0) for v rows) */
            const float x = a, y = b;
            a = x * pre.x - y * pre.y;
            b = x * pre.y + y * pre.x;
        }
        if (r < kv.q_rows) {
            e.out[t * e.out_ld + r] = a;
            e.out[t * e.out_ld + r + 1] = b;
            break;
        }
        const bool is_k = r < kv.q_rows + kv.kv_rows;
        const int rr = r - kv.q_rows - (is_k ? 0 : kv.kv_rows);
        const int64_t idx =
            seq * kv.seq_stride + (rr / hd) * kv.head_stride + (int64_t)pos * hd + rr % hd;
        store_kv(is_k ? kv.k_cache : kv.v_cache, kv.kv_dtype, idx, a, b);
        break;
    }
    }
}

/* A warp's share of one step: MV_UNROLL 16-byte loads from each row of a
 * pair, vectors batch * 32 * MV_UNROLL + u * 32 + lane. */
struct mv_batch {
    uint4 r0[MV_UNROLL], r1[MV_UNROLL];
};

template <typename W>
__device__ __forceinline__ void mv_load(mv_batch &b, const W *__restrict__ w, int ld, int n_vec,
                                        int pair, int batch, int lane) {
    const uint4 *w0 = reinterpret_cast<const uint4 *>(w + (int64_t)2 * pair * ld);
    const uint4 *w1 = w0 + ld / vec16<W>::N;
#pragma unroll
    for (int u = 0; u < MV_UNROLL; u++) {
        const int v = (batch * MV_UNROLL + u) * 32 + lane;
        if (v < n_vec) {
            b.r0[u] = load_stream16(w0 + v);
            b.r1[u] = load_stream16(w1 + v);
        } else {
            b.r0[u] = b.r1[u] = make_uint4(0, 0, 0, 0);
        }
    }
}

/* acc += the batch's weights times the staged inputs. */
template <typename W, int NT>
__device__ __forceinline__ void mv_dot(const mv_batch &b, const float *xs, int ld, int n_vec,
                                       int batch, int lane, float (&acc0)[NT], float (&acc1)[NT]) {
    constexpr int V = vec16<W>::N;
#pragma unroll
    for (int u = 0; u < MV_UNROLL; u++) {
        const int v = (batch * MV_UNROLL + u) * 32 + lane;
        if (v >= n_vec) break;
        float f0[V], f1[V];
        unpack16<W>(b.r0[u], f0);
        unpack16<W>(b.r1[u], f1);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float4 *xv = reinterpret_cast<const float4 *>(xs + t * ld + v * V);
#pragma unroll
            for (int j = 0; j < V / 4; j++) {
                const float4 x4 = xv[j];
                acc0[t] += f0[4 * j] * x4.x + f0[4 * j + 1] * x4.y + f0[4 * j + 2] * x4.z +
                           f0[4 * j + 3] * x4.w;
                acc1[t] += f1[4 * j] * x4.x + f1[4 * j + 1] * x4.y + f1[4 * j + 2] * x4.z +
                           f1[4 * j + 3] * x4.w;
            }
        }
    }
}

/* Where a warp is in its walk: row pair `pair`, batch `batch` of it. */
struct mv_walk {
    int pair, batch;
};

/* One step of the walk: issue the next step's loads into `next`, then use
 * `cur` (loaded a step earlier), so a warp always has loads in flight while
 * it computes and reduces. Returns whether the walk goes on. */
/* The per-token values a warp's epilogue needs: position and sequence
 * (read once), and what mv_prepare loaded for the current pair. */
template <int NT> struct mv_tokens {
    int pos[NT], seq[NT];
    float2 pre[NT];
};

template <typename W, int NT>
__device__ __forceinline__ bool
mv_step(mv_batch &cur, mv_batch &next, mv_walk &at, const W *__restrict__ w, int ld, int n_vec,
        int n_batches, int n_pairs, int pair_stride, const float *xs, int lane, float (&acc0)[NT],
        float (&acc1)[NT], const mv_epilogue &epi, mv_tokens<NT> &tok) {
    mv_walk nx = {at.pair, at.batch + 1};
    if (nx.batch == n_batches) nx = (mv_walk){at.pair + pair_stride, 0};
    if (nx.pair < n_pairs) mv_load<W>(next, w, ld, n_vec, nx.pair, nx.batch, lane);
    if (at.batch == 0 && lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++) tok.pre[t] = mv_prepare(epi, t, 2 * at.pair, tok.pos[t]);
    mv_dot<W, NT>(cur, xs, ld, n_vec, at.batch, lane, acc0, acc1);
    if (nx.batch == 0) { /* the pair is done */
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float a = warp_sum(acc0[t]), b = warp_sum(acc1[t]);
            if (lane == 0) mv_finish(epi, t, 2 * at.pair, a, b, tok.pre[t], tok.pos[t], tok.seq[t]);
            acc0[t] = acc1[t] = 0.0f;
        }
    }
    at = nx;
    return at.pair < n_pairs;
}

/* The block's copy of the NT input vectors, zero-padded to ld, RMS-normalised
 * when in.norm is set: the rows (and the norm weights, after them in shared
 * memory) come in with asynchronous 16-byte copies, all in flight at once,
 * since a load-then-store loop would pay the L2 latency once per element. */
template <int NT>
__device__ __forceinline__ void stage_inputs(const mv_input &in, int cols, int ld, float *xs,
                                             float *red) {
    float *gs = xs + NT * ld; /* the norm weights */
    const bool vec = cols % 4 == 0 && in.x_ld % 4 == 0 && (uintptr_t)in.x % 16 == 0 &&
                     (uintptr_t)in.norm % 16 == 0;
    for (int t = 0; t < NT; t++) {
        const float *src = in.x + (in.rows ? in.rows[t] : t) * in.x_ld;
        float *dst = xs + t * ld;
        if (vec)
            for (int i = threadIdx.x * 4; i < cols; i += blockDim.x * 4)
                copy16_async(dst + i, src + i);
        else
            for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = src[i];
        for (int i = cols + threadIdx.x; i < ld; i += blockDim.x) dst[i] = 0.0f;
    }
    if (in.norm) {
        if (vec)
            for (int i = threadIdx.x * 4; i < cols; i += blockDim.x * 4)
                copy16_async(gs + i, in.norm + i);
        else
            for (int i = threadIdx.x; i < cols; i += blockDim.x) gs[i] = in.norm[i];
    }
    copy_async_wait_all();
    __syncthreads();
    if (!in.norm) return;
    for (int t = 0; t < NT; t++) { /* blockwide, so every block takes the same branch */
        float *x = xs + t * ld, ss = 0.0f;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) ss += x[i] * x[i];
        const float scale = rsqrtf(block_sum(ss, red) / cols + in.eps);
        for (int i = threadIdx.x; i < cols; i += blockDim.x) x[i] *= scale * gs[i];
    }
    __syncthreads();
}

/* Each warp computes pairs of adjacent rows for NT tokens, striding over the
 * matrix; the grid is at most one wave, so no partial last wave idles most
 * of the GPU. The weights do not depend on the previous kernel, so a warp
 * loads its first batch before it waits for that kernel (programmatic
 * dependent launch) and before the block stages the NT input vectors in
 * shared memory (normalised when asked), which every warp reads. From then
 * on each step loads the next batch before computing the current one: two
 * register buffers, used alternately (a copy would wait for the loads).
 * Rows are stored ld >= cols apart, zero-padded, and the stage likewise. */
template <typename W, int NT>
__global__ void __launch_bounds__(MV_WARPS * 32)
    matvec_kernel(const W *__restrict__ w, int rows, int cols, int ld, mv_input in,
                  mv_epilogue epi) {
    extern __shared__ float xs[]; /* (NT, ld) */
    __shared__ float red[32];
    const int lane = threadIdx.x & 31, n_vec = ld / vec16<W>::N;
    const int n_pairs = rows / 2, pair_stride = gridDim.x * MV_WARPS;
    const int n_batches = (n_vec + 32 * MV_UNROLL - 1) / (32 * MV_UNROLL);
    mv_walk at = {(int)blockIdx.x * MV_WARPS + (int)(threadIdx.x >> 5), 0};
    mv_batch a, b;
    mv_tokens<NT> tok;
    pdl_let_next_start();
    if (at.pair < n_pairs) mv_load<W>(a, w, ld, n_vec, at.pair, 0, lane);
#pragma unroll
    for (int t = 0; t < NT; t++) { /* inputs from the host, copied before the step */
        const bool kv = epi.kind == MV_QKV;
        tok.pos[t] = kv ? epi.kv.pos[t] : 0;
        tok.seq[t] = kv ? epi.kv.seq[t] : 0;
    }
    pdl_wait_for_previous();
    stage_inputs<NT>(in, cols, ld, xs, red);
    if (at.pair >= n_pairs) return;

    float acc0[NT], acc1[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = 0.0f;
    while (mv_step<W, NT>(a, b, at, w, ld, n_vec, n_batches, n_pairs, pair_stride, xs, lane, acc0,
                          acc1, epi, tok) &&
           mv_step<W, NT>(b, a, at, w, ld, n_vec, n_batches, n_pairs, pair_stride, xs, lane, acc0,
                          acc1, epi, tok)) {
    }
}

template <typename W> static const void *matvec_fn(int n) {
    switch (n) {
    case 1: return (const void *)matvec_kernel<W, 1>;
    case 2: return (const void *)matvec_kernel<W, 2>;
    case 3: return (const void *)matvec_kernel<W, 3>;
    case 4: return (const void *)matvec_kernel<W, 4>;
    }
    return NULL;
}

static const void *matvec_for(lc_dtype wt, int n) {
    switch (wt) {
    case LC_DTYPE_F32: return matvec_fn<float>(n);
    case LC_DTYPE_F16: return matvec_fn<__half>(n);
    case LC_DTYPE_BF16: return matvec_fn<__nv_bfloat16>(n);
    default: return NULL;
    }
}

lc_status matvec_setup(int device, int64_t *max_input_floats, lc_error *err) {
    int optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - 32 * (int)sizeof(float) - 1024; /* leave the static part room */
    for (int wt = 0; wt < LC_DTYPE_COUNT; wt++)
        for (int n = 1; n <= MV_MAX_TOKENS; n++)
            if (matvec_for((lc_dtype)wt, n))
                CU_TRY(cudaFuncSetAttribute(matvec_for((lc_dtype)wt, n),
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    *max_input_floats = dynamic / (int64_t)sizeof(float);
    return LC_OK;
}

lc_status launch_matvec(lc_dtype wt, const void *w, int rows, int cols, int ld, const mv_input *in,
                        const mv_epilogue *epi, cudaStream_t s, lc_error *err) {
    const void *fn = matvec_for(wt, in->n);
    if (!fn || rows % 2 || ld % 8 || ld < cols)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "matvec: %s (%d, %d) ld %d for %d tokens",
                       lc_dtype_name(wt), rows, cols, ld, in->n);
    void *args[] = {(void *)&w, (void *)&rows, (void *)&cols, (void *)&ld, (void *)in, (void *)epi};
    const size_t smem = mv_stage_floats(in->n, ld, in->norm != NULL) * sizeof(float);
    int per_sm = 0;
    CU_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, MV_WARPS * 32, smem));
    unsigned blocks = ceil_div(rows, 2 * MV_WARPS);
    if (in->blocks_per_sm > 0 && in->blocks_per_sm < per_sm) per_sm = in->blocks_per_sm;
    if (in->n_sm > 0 && per_sm > 0 && blocks > (unsigned)(in->n_sm * per_sm))
        blocks = (unsigned)(in->n_sm * per_sm);
    pdl_config pc;
    pdl_config_init(&pc, dim3(blocks), dim3(MV_WARPS * 32), smem, s);
    pc.config.numAttrs = in->pdl ? 1 : 0;
    CU_TRY(cudaLaunchKernelExC(&pc.config, fn, args));
    return LC_OK;
}

/* ---- embedding, normalisation, RoPE, SwiGLU, conversion ---------------------- */

template <typename W>
__global__ void embed_kernel(const W *__restrict__ table, int dim, int ld, const int32_t *tokens,
                             float *x) {
    const W *row = table + (int64_t)tokens[blockIdx.x] * ld;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        x[(int64_t)blockIdx.x * dim + i] = to_f32(row[i]);
}

lc_status launch_embed(lc_dtype wt, const void *table, int dim, int ld, const int32_t *tokens,
                       int n, float *x, cudaStream_t s, lc_error *err) {
    switch (wt) {
    case LC_DTYPE_F32:
        embed_kernel<<<n, 256, 0, s>>>((const float *)table, dim, ld, tokens, x);
        break;
    case LC_DTYPE_F16:
        embed_kernel<<<n, 256, 0, s>>>((const __half *)table, dim, ld, tokens, x);
        break;
    case LC_DTYPE_BF16:
        embed_kernel<<<n, 256, 0, s>>>((const __nv_bfloat16 *)table, dim, ld, tokens, x);
        break;
    default: return lc_fail(err, LC_ERR_UNSUPPORTED, "embedding of %s", lc_dtype_name(wt));
    }
    CU_LAUNCHED();
    return LC_OK;
}

template <typename T>
__global__ void rmsnorm_kernel(const float *x, int64_t x_ld, const int32_t *rows, int dim,
                               const float *norm, float eps, T *out, int64_t out_ld) {
    __shared__ float red[32];
    const float *src = x + (rows ? rows[blockIdx.x] : (int)blockIdx.x) * x_ld;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += src[i] * src[i];
    const float scale = rsqrtf(block_sum(ss, red) / dim + eps);
    T *dst = out + blockIdx.x * out_ld;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        dst[i] = from_f32<T>(src[i] * scale * norm[i]);
}

lc_status launch_rmsnorm(const float *x, int64_t x_ld, const int32_t *rows, int n, int dim,
                         const float *norm, float eps, lc_dtype out_t, void *out, int64_t out_ld,
                         cudaStream_t s, lc_error *err) {
    switch (out_t) {
    case LC_DTYPE_F32:
        rmsnorm_kernel<<<n, 256, 0, s>>>(x, x_ld, rows, dim, norm, eps, (float *)out, out_ld);
        break;
    case LC_DTYPE_F16:
        rmsnorm_kernel<<<n, 256, 0, s>>>(x, x_ld, rows, dim, norm, eps, (__half *)out, out_ld);
        break;
    case LC_DTYPE_BF16:
        rmsnorm_kernel<<<n, 256, 0, s>>>(x, x_ld, rows, dim, norm, eps, (__nv_bfloat16 *)out,
                                         out_ld);
        break;
    default: return lc_fail(err, LC_ERR_UNSUPPORTED, "rmsnorm to %s", lc_dtype_name(out_t));
    }
    CU_LAUNCHED();
    return LC_OK;
}

/* One block per batch entry; each thread takes pairs of q, k and v rows. */
template <typename Q>
__global__ void rope_store_kernel(const float *qkv, int64_t qkv_ld, kv_target kv, Q *q_out,
                                  int64_t q_ld) {
    const int t = blockIdx.x, hd = kv.head_dim, pos = kv.pos[t];
    const float *src = qkv + t * qkv_ld;
    const int total = kv.q_rows + 2 * kv.kv_rows;
    for (int r = 2 * threadIdx.x; r < total; r += 2 * blockDim.x) {
        float a = src[r], b = src[r + 1];
        if (r < kv.q_rows) {
            rope_pair(kv.rope, hd / 2, pos, (r % hd) / 2, a, b);
            q_out[t * q_ld + r] = from_f32<Q>(a);
            q_out[t * q_ld + r + 1] = from_f32<Q>(b);
            continue;
        }
        const bool is_k = r < kv.q_rows + kv.kv_rows;
        const int rr = r - kv.q_rows - (is_k ? 0 : kv.kv_rows);
        if (is_k) rope_pair(kv.rope, hd / 2, pos, (rr % hd) / 2, a, b);
        const int64_t idx =
            kv.seq[t] * kv.seq_stride + (rr / hd) * kv.head_stride + (int64_t)pos * hd + rr % hd;
        store_kv(is_k ? kv.k_cache : kv.v_cache, kv.kv_dtype, idx, a, b);
    }
}

lc_status launch_rope_store(const float *qkv, int64_t qkv_ld, int n, const kv_target *kv,
                            lc_dtype q_t, void *q_out, int64_t q_ld, cudaStream_t s,
                            lc_error *err) {
    switch (q_t) {
    case LC_DTYPE_F32:
        rope_store_kernel<<<n, 256, 0, s>>>(qkv, qkv_ld, *kv, (float *)q_out, q_ld);
        break;
    case LC_DTYPE_F16:
        rope_store_kernel<<<n, 256, 0, s>>>(qkv, qkv_ld, *kv, (__half *)q_out, q_ld);
        break;
    default: return lc_fail(err, LC_ERR_UNSUPPORTED, "queries as %s", lc_dtype_name(q_t));
    }
    CU_LAUNCHED();
    return LC_OK;
}

template <typename T>
__global__ void swiglu_kernel(const float *g13, int64_t g13_ld, int hidden, T *out,
                              int64_t out_ld) {
    const float2 *src = reinterpret_cast<const float2 *>(g13 + blockIdx.x * g13_ld);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const float2 gu = src[i];
        out[blockIdx.x * out_ld + i] = from_f32<T>(gu.x / (1.0f + __expf(-gu.x)) * gu.y);
    }
}

lc_status launch_swiglu(const float *g13, int64_t g13_ld, int n, int hidden, lc_dtype out_t,
                        void *out, int64_t out_ld, cudaStream_t s, lc_error *err) {
    switch (out_t) {
    case LC_DTYPE_F32:
        swiglu_kernel<<<n, 256, 0, s>>>(g13, g13_ld, hidden, (float *)out, out_ld);
        break;
    case LC_DTYPE_F16:
        swiglu_kernel<<<n, 256, 0, s>>>(g13, g13_ld, hidden, (__half *)out, out_ld);
        break;
    case LC_DTYPE_BF16:
        swiglu_kernel<<<n, 256, 0, s>>>(g13, g13_ld, hidden, (__nv_bfloat16 *)out, out_ld);
        break;
    default: return lc_fail(err, LC_ERR_UNSUPPORTED, "swiglu to %s", lc_dtype_name(out_t));
    }
    CU_LAUNCHED();
    return LC_OK;
}

template <typename S, typename D>
__global__ void convert_kernel(const S *src, int64_t src_ld, int64_t cols, D *dst, int64_t dst_ld) {
    const S *row = src + blockIdx.x * src_ld;
    D *out = dst + blockIdx.x * dst_ld;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[i] = from_f32<D>(to_f32(row[i]));
}

template <typename S>
static lc_status convert_from(const S *src, int64_t src_ld, int64_t rows, int64_t cols,
                              lc_dtype dst_t, void *dst, int64_t dst_ld, cudaStream_t s,
                              lc_error *err) {
    for (int64_t r0 = 0; r0 < rows; r0 += 65535) { /* the grid's y limit does not apply to x, */
        const int64_t nr = rows - r0 < 65535 ? rows - r0 : 65535; /* but keep launches modest */
        const S *sp = src + r0 * src_ld;
        switch (dst_t) {
        case LC_DTYPE_F32:
            convert_kernel<<<nr, 256, 0, s>>>(sp, src_ld, cols, (float *)dst + r0 * dst_ld, dst_ld);
            break;
        case LC_DTYPE_F16:
            convert_kernel<<<nr, 256, 0, s>>>(sp, src_ld, cols, (__half *)dst + r0 * dst_ld,
                                              dst_ld);
            break;
        case LC_DTYPE_BF16:
            convert_kernel<<<nr, 256, 0, s>>>(sp, src_ld, cols, (__nv_bfloat16 *)dst + r0 * dst_ld,
                                              dst_ld);
            break;
        default: return lc_fail(err, LC_ERR_UNSUPPORTED, "conversion to %s", lc_dtype_name(dst_t));
        }
        CU_LAUNCHED();
    }
    return LC_OK;
}

lc_status launch_convert(lc_dtype src_t, const void *src, int64_t src_ld, int64_t rows,
                         int64_t cols, lc_dtype dst_t, void *dst, int64_t dst_ld, cudaStream_t s,
                         lc_error *err) {
    switch (src_t) {
    case LC_DTYPE_F32:
        return convert_from((const float *)src, src_ld, rows, cols, dst_t, dst, dst_ld, s, err);
    case LC_DTYPE_F16:
        return convert_from((const __half *)src, src_ld, rows, cols, dst_t, dst, dst_ld, s, err);
    case LC_DTYPE_BF16:
        return convert_from((const __nv_bfloat16 *)src, src_ld, rows, cols, dst_t, dst, dst_ld, s,
                            err);
    default: return lc_fail(err, LC_ERR_UNSUPPORTED, "conversion from %s", lc_dtype_name(src_t));
    }
}
