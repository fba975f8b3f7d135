/* Element-wise and matrix-vector kernels of the CUDA backend. Decoding reads
 * every weight once per token, so the matrix-vector product is the kernel
 * that sets the speed: 16-byte streaming loads, several in flight per thread,
 * and the small operations around it (RMSNorm before, RoPE / SwiGLU /
 * residual after) fused in so that no extra pass touches device memory. */
#include "backend/cuda/cuda_ops.cuh"

/* ---- matrix-vector product ------------------------------------------------- */

#define MV_WARPS  8 /* warps per block */
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

/* Rows r and r + 1 of token t are done: apply the epilogue. */
__device__ __forceinline__ void mv_finish(const mv_epilogue &e, int t, int r, float a, float b) {
    switch (e.kind) {
    case MV_STORE:
        e.out[t * e.out_ld + r] = a;
        e.out[t * e.out_ld + r + 1] = b;
        break;
    case MV_ADD:
        e.out[t * e.out_ld + r] += a;
        e.out[t * e.out_ld + r + 1] += b;
        break;
    case MV_SWIGLU: e.out[t * e.out_ld + r / 2] = a / (1.0f + __expf(-a)) * b; break;
    case MV_QKV: {
        const kv_target &kv = e.kv;
        const int hd = kv.head_dim, pos = kv.pos[t];
        if (r < kv.q_rows) {
            rope_pair(kv.rope, hd / 2, pos, (r % hd) / 2, a, b);
            e.out[t * e.out_ld + r] = a;
            e.out[t * e.out_ld + r + 1] = b;
            break;
        }
        const bool is_k = r < kv.q_rows + kv.kv_rows;
        const int rr = r - kv.q_rows - (is_k ? 0 : kv.kv_rows);
        if (is_k) rope_pair(kv.rope, hd / 2, pos, (rr % hd) / 2, a, b);
        const int64_t idx =
            kv.seq[t] * kv.seq_stride + (rr / hd) * kv.head_stride + (int64_t)pos * hd + rr % hd;
        store_kv(is_k ? kv.k_cache : kv.v_cache, kv.kv_dtype, idx, a, b);
        break;
    }
    }
}

/* Each warp computes pairs of adjacent rows for NT tokens, striding over the
 * matrix: the grid is as large as the device holds at once, so no partial
 * last wave idles most of the GPU. The block first stages the NT input
 * vectors in shared memory (normalised when asked), since every warp reads
 * all of them; rows are stored ld >= cols apart, zero-padded, and the stage
 * is zero-padded to match. */
template <typename W, int NT>
__global__ void __launch_bounds__(MV_WARPS * 32)
    matvec_kernel(const W *__restrict__ w, int rows, int cols, int ld, mv_input in,
                  mv_epilogue epi) {
    extern __shared__ float xs[]; /* (NT, ld) */
    __shared__ float red[32];
    constexpr int V = vec16<W>::N;
    const int lane = threadIdx.x & 31, n_vec = ld / V;
    pdl_let_next_start();
    { /* the weights do not depend on the previous kernel: start pulling the first ones into L2 */
        const int r = (blockIdx.x * MV_WARPS + (threadIdx.x >> 5)) * 2;
        if (r < rows)
            for (int v = lane; v < n_vec && v < 32 * MV_UNROLL; v += 32) {
                asm volatile("prefetch.global.L2 [%0];" ::"l"(w + (int64_t)r * ld + v * V));
                asm volatile("prefetch.global.L2 [%0];" ::"l"(w + (int64_t)(r + 1) * ld + v * V));
            }
    }
    pdl_wait_for_previous();
    for (int t = 0; t < NT; t++) {
        const float *src = in.x + (in.rows ? in.rows[t] : t) * in.x_ld;
        float *dst = xs + t * ld;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < ld; i += blockDim.x) {
            const float v = i < cols ? src[i] : 0.0f;
            dst[i] = v;
            ss += v * v;
        }
        if (in.norm) { /* blockwide, so every block takes the same branch */
            const float scale = rsqrtf(block_sum(ss, red) / cols + in.eps);
            for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] *= scale * in.norm[i];
        }
    }
    __syncthreads();

    for (int r = (blockIdx.x * MV_WARPS + (threadIdx.x >> 5)) * 2; r < rows;
         r += gridDim.x * MV_WARPS * 2) {
        const uint4 *w0 = reinterpret_cast<const uint4 *>(w + (int64_t)r * ld);
        const uint4 *w1 = reinterpret_cast<const uint4 *>(w + (int64_t)(r + 1) * ld);
        float acc0[NT], acc1[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc0[t] = acc1[t] = 0.0f;

        for (int base = lane; base < n_vec; base += 32 * MV_UNROLL) {
            uint4 raw0[MV_UNROLL], raw1[MV_UNROLL];
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) { /* issue every load before the first use */
                const int v = base + u * 32;
                if (v < n_vec) {
                    raw0[u] = load_stream16(w0 + v);
                    raw1[u] = load_stream16(w1 + v);
                }
            }
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                const int v = base + u * 32;
                if (v >= n_vec) break;
                float f0[V], f1[V];
                unpack16<W>(raw0[u], f0);
                unpack16<W>(raw1[u], f1);
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
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float a = warp_sum(acc0[t]), b = warp_sum(acc1[t]);
            if (lane == 0) mv_finish(epi, t, r, a, b);
        }
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
    const size_t smem = (size_t)in->n * ld * sizeof(float);
    int per_sm = 0;
    CU_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, MV_WARPS * 32, smem));
    unsigned blocks = ceil_div(rows, 2 * MV_WARPS);
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
