/* Element-wise and matrix-vector kernels of the CUDA backend. Decoding reads
 * every weight once per token, so the matrix-vector product is the kernel
 * that sets the speed: 16-byte streaming loads, several in flight per thread,
 * and the small operations around it (RMSNorm before, RoPE / SwiGLU /
 * residual after) fused in so that no extra pass touches device memory. */
#include "backend/cuda/cuda_matvec_walk.cuh"
#include "backend/cuda/cuda_stamps.cuh"

/* ---- matrix-vector product ------------------------------------------------- */

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

/* One step of the walk: issue the next step's loads into `next`, then use
 * `cur` (loaded a step earlier), so a warp always has loads in flight while
 * it computes and reduces. Returns whether the walk goes on. */
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
 * when in.norm is set (the norm weights after them in shared memory). */
template <int NT>
__device__ __forceinline__ void stage_inputs(const mv_input &in, int cols, int ld, float *xs,
                                             float *red) {
    float *gs = xs + NT * ld; /* the norm weights */
    const bool vec = stage_vec_ok(in, cols);
    for (int t = 0; t < NT; t++) {
        float *dst = xs + t * ld;
        stage_copy(dst, in.x + (in.rows ? in.rows[t] : t) * in.x_ld, cols, vec);
        for (int i = cols + threadIdx.x; i < ld; i += blockDim.x) dst[i] = 0.0f;
    }
    if (in.norm) stage_copy(gs, in.norm, cols, vec);
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

/* The matrix-vector kernel for Q8_0 / Q4_0 weights: the same walk as
 * matvec_kernel, the inputs staged as int8 groups (from floats, or as the
 * previous product left them), each vector met with __dp4a and its block
 * scale. */
template <typename Q, int NT, bool NORM>
__global__ void __launch_bounds__(MV_WARPS * 32, 2) /* two blocks per SM: at most 128 registers */
    matvec_quant_kernel(const void *__restrict__ w, const __half *__restrict__ scales, int rows,
                        int cols, int ld, mv_input in, mv_epilogue epi) {
    extern __shared__ float xs[]; /* mv_stage_bytes, then mv_qslot for a quantized output */
    __shared__ float red[32];
    const int lane = threadIdx.x & 31;
    const bool qout = epi.qout.q != NULL;
    mv_matrix m;
    mv_matrix_place<Q>(m, w, scales, ld);
    m.n_pairs = rows / 2;
    m.paired_rounds = qout && epi.kind == MV_SWIGLU;
    m.pair_stride = gridDim.x * MV_WARPS * (m.paired_rounds ? 2 : 1);
    mv_walk at = {(int)blockIdx.x * MV_WARPS * (m.paired_rounds ? 2 : 1) + (int)(threadIdx.x >> 5),
                  0};
    mv_qbatch a, b;
    mv_tokens<NT> tok;
    tok.round = 0;
    float scale[NT]; /* the norm's 1 / rms per token (stage_int8) */
    const bool pre = in.pre.q != NULL;
    mv_qsmem sm; /* floats first (mv_stage_bytes), or only the int8 side (mv_pre_stage_bytes) */
    mv_qsmem_place<NT>(sm, xs, ld, in.norm != NULL, pre);
    mv_qslot *slots = reinterpret_cast<mv_qslot *>(reinterpret_cast<char *>(xs) +
                                                   mv_qslot_offset(NT, ld, in.norm != NULL, pre));
    STAMP_BEGIN(true);
    pdl_let_next_start();
    if (!pre) stage_quant_before(in, cols, sm);
    if (at.pair < m.n_pairs) mv_qload<Q>(a, m.w, m.scales, m.nb, m.n_vec, at.pair, 0, lane);
#pragma unroll
    for (int t = 0; t < NT; t++) { /* inputs from the host, copied before the step */
        const bool kv = epi.kind == MV_QKV;
        tok.pos[t] = kv ? epi.kv.pos[t] : 0;
        tok.seq[t] = kv ? epi.kv.seq[t] : 0;
    }
    const int out_len = epi.kind == MV_SWIGLU ? rows / 2 : rows;
    if (qout) mv_groups_prepare(epi, out_len, slots);
    /* The second batch before the wait or after the staging, as measured
     * best per type (mv_quant::EARLY). */
    const mv_walk at1 = mv_after(at, m);
    if (mv_quant<Q>::EARLY > 1 && at1.pair < m.n_pairs)
        mv_qload<Q>(b, m.w, m.scales, m.nb, m.n_vec, at1.pair, at1.batch, lane);
    pdl_wait_for_previous();
    STAMP_WAITED();
    stage_quant_inputs<Q, NT, NORM>(in, cols, ld, sm, pre, red, scale);
    STAMP_MARK(0);
    if (mv_quant<Q>::EARLY == 1 && at1.pair < m.n_pairs)
        mv_qload<Q>(b, m.w, m.scales, m.nb, m.n_vec, at1.pair, at1.batch, lane);
    const mv_stage st = {sm.xq, sm.xd, sm.xsum, ld, ld / MV_QGROUP};
    if (at.pair < m.n_pairs) {
        float acc0[NT], acc1[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = 0.0f;
        while (mv_qstep<Q, NT>(a, at, m, st, lane, acc0, acc1, epi, tok, scale, slots) &&
               mv_qstep<Q, NT>(b, at, m, st, lane, acc0, acc1, epi, tok, scale, slots)) {
        }
    }
    STAMP_MARK(1); /* warp 0's last pair */
    if (qout) mv_groups_finish<NT>(epi, out_len, slots);
#ifdef LLAMAC_CUDA_STAMPS
    __syncthreads(); /* the block's end: its slowest warp */
#endif
    STAMP_MARK(2);
    STAMP_END((unsigned)rows, (unsigned)cols);
}
#ifdef LLAMAC_CUDA_STAMPS
extern "C" void cuda_stamps_dump_products(void) { stamps_dump("ops"); }
#endif

/* One instantiation per token count and per norm-or-not: without a norm the
 * kernel carries no 1 / rms at all. */
template <typename Q, bool NORM> static const void *matvec_quant_fn(int n) {
    switch (n) {
    case 1: return (const void *)matvec_quant_kernel<Q, 1, NORM>;
    case 2: return (const void *)matvec_quant_kernel<Q, 2, NORM>;
    case 3: return (const void *)matvec_quant_kernel<Q, 3, NORM>;
    case 4: return (const void *)matvec_quant_kernel<Q, 4, NORM>;
    }
    return NULL;
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

static const void *matvec_for(lc_dtype wt, int n, bool norm) {
    switch (wt) {
    case LC_DTYPE_F32: return matvec_fn<float>(n);
    case LC_DTYPE_F16: return matvec_fn<__half>(n);
    case LC_DTYPE_BF16: return matvec_fn<__nv_bfloat16>(n);
    case LC_DTYPE_Q8_0:
        return norm ? matvec_quant_fn<q8_gpu, true>(n) : matvec_quant_fn<q8_gpu, false>(n);
    case LC_DTYPE_Q4_0:
        return norm ? matvec_quant_fn<q4_gpu, true>(n) : matvec_quant_fn<q4_gpu, false>(n);
    default: return NULL;
    }
}

lc_status matvec_setup(int device, int64_t *max_stage_bytes, lc_error *err) {
    int optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - 32 * (int)sizeof(float) - 1024; /* leave the static part room */
    for (int wt = 0; wt < LC_DTYPE_COUNT; wt++)
        for (int n = 1; n <= MV_MAX_TOKENS; n++)
            for (int norm = 0; norm < 2; norm++)
                if (matvec_for((lc_dtype)wt, n, norm))
                    CU_TRY(cudaFuncSetAttribute(matvec_for((lc_dtype)wt, n, norm),
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                dynamic));
    *max_stage_bytes = dynamic;
    return LC_OK;
}

lc_status launch_matvec(lc_dtype wt, const void *w, int rows, int cols, int ld, const mv_input *in,
                        const mv_epilogue *epi, cudaStream_t s, lc_error *err) {
    const void *fn = matvec_for(wt, in->n, in->norm != NULL);
    const bool quant = dtype_info(wt) && dtype_info(wt)->block > 1;
    if (!fn || rows % 2 || ld % 8 || ld < cols || (quant && (ld != cols || cols % 32)))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "matvec: %s (%d, %d) ld %d for %d tokens",
                       lc_dtype_name(wt), rows, cols, ld, in->n);
    const bool pre = in->pre.q != NULL, qout = epi->qout.q != NULL;
    const int out_len = epi->kind == MV_SWIGLU ? rows / 2 : rows;
    if ((pre && (!quant || in->pre.ld != ld)) ||
        (qout &&
         (!quant || MV_WARPS * 2 != MV_QGROUP || (epi->kind != MV_ADD && epi->kind != MV_SWIGLU) ||
          epi->qout.ld != out_len || out_len % MV_QGROUP)))
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "matvec: quantized input or output of %s (%d, %d) for %d tokens",
                       lc_dtype_name(wt), rows, cols, in->n);
    const __half *scales = quant ? cuda_matrix_scales(wt, w, rows, ld) : NULL;
    void *plain_args[] = {(void *)&w,  (void *)&rows, (void *)&cols,
                          (void *)&ld, (void *)in,    (void *)epi};
    void *quant_args[] = {(void *)&w,  (void *)&scales, (void *)&rows, (void *)&cols,
                          (void *)&ld, (void *)in,      (void *)epi};
    void **args = quant ? quant_args : plain_args;
    size_t smem = pre ? mv_pre_stage_bytes(in->n, ld, in->norm != NULL)
                      : mv_stage_bytes(in->n, ld, in->norm != NULL, quant);
    /* Blocks for a grid of one wave; a quantized output's group slots come
     * on top, and may lower how many blocks fit, so twice. */
    unsigned blocks = 0;
    for (int pass = 0; pass < 2; pass++) {
        int per_sm = 0;
        CU_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, MV_WARPS * 32, smem));
        unsigned want = ceil_div(rows, 2 * MV_WARPS * (qout && epi->kind == MV_SWIGLU ? 2 : 1));
        if (in->blocks_per_sm > 0 && in->blocks_per_sm < per_sm) per_sm = in->blocks_per_sm;
        if (in->n_sm > 0 && per_sm > 0 && want > (unsigned)(in->n_sm * per_sm))
            want = (unsigned)(in->n_sm * per_sm);
        if (blocks == 0 || want < blocks) blocks = want;
        if (qout)
            smem = mv_qslot_offset(in->n, ld, in->norm != NULL, pre) +
                   (size_t)mv_qslots(rows, epi->kind, (int)blocks) * sizeof(mv_qslot);
    }
    if ((int64_t)smem > in->max_stage_bytes)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "matvec: %d inputs of %d need %zu bytes of shared memory", in->n, cols,
                       smem);
    pdl_config pc;
    pdl_config_init(&pc, dim3(blocks), dim3(MV_WARPS * 32), smem, s, in->pdl);
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

/* Element (r, c) of a stored Q8_0 / Q4_0 matrix of rows ld elements
 * (cuda_matrix_bytes: the int8 or nibble rows, then the f16 scales). */
template <bool Q4>
__device__ __forceinline__ float stored_quant_at(const uint8_t *__restrict__ qs,
                                                 const __half *scales, int64_t r, int ld, int c) {
    const float d = __half2float(scales[r * (ld / 32) + c / 32]);
    if (!Q4) return d * (float)(int8_t)qs[r * ld + c];
    const int j = c % 32, byte = qs[r * (ld / 2) + c / 32 * 16 + j % 16];
    return d * (float)((j < 16 ? byte & 15 : byte >> 4) - 8);
}

/* A row of a stored Q8_0 / Q4_0 table (vocab rows of ld). */
template <bool Q4>
__global__ void embed_quant_kernel(const uint8_t *__restrict__ table, const __half *scales, int dim,
                                   int ld, const int32_t *tokens, float *x) {
    const int64_t row = tokens[blockIdx.x];
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        x[(int64_t)blockIdx.x * dim + i] = stored_quant_at<Q4>(table, scales, row, ld, i);
}

lc_status launch_embed_quant(lc_dtype wt, const void *table, int64_t vocab, int dim, int ld,
                             const int32_t *tokens, int n, float *x, cudaStream_t s,
                             lc_error *err) {
    const __half *scales = cuda_matrix_scales(wt, table, vocab, ld);
    if (wt == LC_DTYPE_Q8_0)
        embed_quant_kernel<false>
            <<<n, 256, 0, s>>>((const uint8_t *)table, scales, dim, ld, tokens, x);
    else if (wt == LC_DTYPE_Q4_0)
        embed_quant_kernel<true>
            <<<n, 256, 0, s>>>((const uint8_t *)table, scales, dim, ld, tokens, x);
    else
        return lc_fail(err, LC_ERR_UNSUPPORTED, "embedding of %s", lc_dtype_name(wt));
    CU_LAUNCHED();
    return LC_OK;
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

/* ---- quantized weights: upload and prefill ------------------------------------- */

/* One warp per block of 32: lane i holds element i. */
template <typename S, bool Q4>
__global__ void quantize_kernel(const S *__restrict__ src, int64_t src_ld, int64_t rows, int cols,
                                uint8_t *qs, int64_t row_bytes, __half *scales, int nb,
                                int64_t row0, int64_t step) {
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (warp >= rows * nb) return;
    const int64_t r = warp / nb, blk = warp % nb, dst_row = row0 + r * step;
    const float x = to_f32(src[r * src_ld + blk * 32 + lane]);
    if (!Q4) {
        const float d = warp_max(fabsf(x)) / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
        qs[dst_row * row_bytes + blk * 32 + lane] = (uint8_t)(int8_t)roundf(x * inv);
        if (lane == 0) scales[dst_row * nb + blk] = __float2half_rn(d);
        return;
    }
    /* the element of largest magnitude, sign kept; on ties the lowest index, as on the CPU */
    float best = fabsf(x);
    int at = lane;
    for (int o = 16; o > 0; o >>= 1) {
        const float other = __shfl_xor_sync(0xffffffffu, best, o);
        const int other_at = __shfl_xor_sync(0xffffffffu, at, o);
        if (other > best || (other == best && other_at < at)) {
            best = other;
            at = other_at;
        }
    }
    const float m = __shfl_sync(0xffffffffu, x, at);
    const float d = m / -8.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    int q = (int)(x * inv + 8.5f);
    q = q > 15 ? 15 : q;
    const int hi = __shfl_down_sync(0xffffffffu, q, 16);
    if (lane < 16) qs[dst_row * row_bytes + blk * 16 + lane] = (uint8_t)(q | hi << 4);
    if (lane == 0) scales[dst_row * nb + blk] = __float2half_rn(d);
}

template <typename S>
static lc_status quantize_from(const S *src, int64_t src_ld, int64_t rows, int64_t cols,
                               lc_dtype to, void *dst, int64_t total_rows, int64_t ld, int64_t row0,
                               int64_t step, cudaStream_t s, lc_error *err) {
    const int nb = (int)(cols / 32);
    const int64_t warps = rows * nb, threads = warps * 32;
    const unsigned grid = (unsigned)((threads + 255) / 256);
    uint8_t *qs = (uint8_t *)dst;
    __half *scales = (__half *)cuda_matrix_scales(to, dst, total_rows, ld);
    const int64_t row_bytes = (int64_t)cuda_row_bytes(to, ld);
    if (to == LC_DTYPE_Q8_0)
        quantize_kernel<S, false><<<grid, 256, 0, s>>>(src, src_ld, rows, (int)cols, qs, row_bytes,
                                                       scales, (int)(ld / 32), row0, step);
    else
        quantize_kernel<S, true><<<grid, 256, 0, s>>>(src, src_ld, rows, (int)cols, qs, row_bytes,
                                                      scales, (int)(ld / 32), row0, step);
    CU_LAUNCHED();
    return LC_OK;
}

lc_status launch_quantize(lc_dtype src_t, const void *src, int64_t src_ld, int64_t rows,
                          int64_t cols, lc_dtype to, void *dst, int64_t total_rows, int64_t ld,
                          int64_t row0, int64_t step, cudaStream_t s, lc_error *err) {
    if (!cuda_quantized(to) || cols % 32 || ld != cols)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "%s weights need rows of a multiple of 32 elements (this one: %lld)",
                       lc_dtype_name(to), (long long)cols);
    switch (src_t) {
    case LC_DTYPE_F32:
        return quantize_from((const float *)src, src_ld, rows, cols, to, dst, total_rows, ld, row0,
                             step, s, err);
    case LC_DTYPE_F16:
        return quantize_from((const __half *)src, src_ld, rows, cols, to, dst, total_rows, ld, row0,
                             step, s, err);
    case LC_DTYPE_BF16:
        return quantize_from((const __nv_bfloat16 *)src, src_ld, rows, cols, to, dst, total_rows,
                             ld, row0, step, s, err);
    default:
        return lc_fail(err, LC_ERR_UNSUPPORTED, "quantizing %s weights on the device",
                       lc_dtype_name(src_t));
    }
}

template <bool Q4>
__global__ void dequantize_kernel(const uint8_t *__restrict__ qs, const __half *scales,
                                  int64_t rows, int ld, __half *out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * ld) return;
    out[i] = __float2half_rn(stored_quant_at<Q4>(qs, scales, i / ld, ld, (int)(i % ld)));
}

lc_status launch_dequantize(lc_dtype t, const void *w, int64_t rows, int64_t ld, __half *out,
                            cudaStream_t s, lc_error *err) {
    const __half *scales = cuda_matrix_scales(t, w, rows, ld);
    const unsigned grid = (unsigned)((rows * ld + 255) / 256);
    if (t == LC_DTYPE_Q8_0)
        dequantize_kernel<false>
            <<<grid, 256, 0, s>>>((const uint8_t *)w, scales, rows, (int)ld, out);
    else if (t == LC_DTYPE_Q4_0)
        dequantize_kernel<true>
            <<<grid, 256, 0, s>>>((const uint8_t *)w, scales, rows, (int)ld, out);
    else
        return lc_fail(err, LC_ERR_UNSUPPORTED, "dequantizing %s", lc_dtype_name(t));
    CU_LAUNCHED();
    return LC_OK;
}

/* The files' block layouts (src/formats/quant.h), one thread per element. */
__global__ void dequantize_blocks_kernel(int t, const uint8_t *__restrict__ in, int64_t n,
                                         float *out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int64_t b = i / 32;
    const int j = (int)(i % 32);
    if (t == LC_DTYPE_Q8_0) { /* f16 d, 32 int8 */
        const uint8_t *blk = in + b * 34;
        const float d = __half2float(__ushort_as_half((unsigned short)(blk[0] | blk[1] << 8)));
        out[i] = d * (float)(int8_t)blk[2 + j];
    } else if (t == LC_DTYPE_Q4_0) { /* f16 d, 16 bytes of nibbles */
        const uint8_t *blk = in + b * 18;
        const float d = __half2float(__ushort_as_half((unsigned short)(blk[0] | blk[1] << 8)));
        const int byte = blk[2 + j % 16];
        out[i] = d * (float)((j < 16 ? byte & 15 : byte >> 4) - 8);
    } else { /* Q8_RUNQ: f32 d, 32 int8 */
        const uint8_t *blk = in + b * 36;
        float d;
        memcpy(&d, blk, sizeof d);
        out[i] = d * (float)(int8_t)blk[4 + j];
    }
}

lc_status launch_dequantize_blocks(lc_dtype t, const void *blocks, int64_t n, float *out,
                                   cudaStream_t s, lc_error *err) {
    if (t != LC_DTYPE_Q8_0 && t != LC_DTYPE_Q4_0 && t != LC_DTYPE_Q8_RUNQ)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "expanding %s weights", lc_dtype_name(t));
    dequantize_blocks_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(
        (int)t, (const uint8_t *)blocks, n, out);
    CU_LAUNCHED();
    return LC_OK;
}
