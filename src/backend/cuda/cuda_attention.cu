/* Attention over the device KV cache. Decoding: each block takes one kv head
 * (with the query heads that share it) and one chunk of the keys, so a long
 * context spreads over many blocks (flash-decoding); the last block of a
 * head to finish merges the chunks' partial results. Prefill of one long run
 * uses matrix products instead (cuda_prefill.cu), with the causal softmax here. */

#include "backend/cuda/cuda_attention.cuh"

void attention_split(int n_ctx, int *chunk, int *max_splits) {
    int c = 256;
    if ((n_ctx + c - 1) / c > 64) c = ((n_ctx + 63) / 64 + 63) / 64 * 64; /* at most 64 chunks */
    *chunk = c;
    *max_splits = (n_ctx + c - 1) / c;
}

template <typename KV>
__global__ void __launch_bounds__(ATTN_THREADS) attention_kernel(attn_args a) {
    extern __shared__ float sm[];
    pdl_let_next_start();
    attention_item<KV, sync_block, true>(a, blockIdx.z, blockIdx.x, blockIdx.y, sm);
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
    const lc_status st = attention_check(a, err);
    if (st) return st;
    if (a->splits < 0 || a->splits > a->max_splits)
        return lc_fail(err, LC_ERR_ARG, "attention: %d chunks launched of %d", a->splits,
                       a->max_splits);
    const size_t smem = attention_smem_bytes(a);
    const dim3 grid(a->n_kv_heads, a->splits ? a->splits : a->max_splits, a->n);
    pdl_config pc;
    pdl_config_init(&pc, grid, dim3(ATTN_THREADS), smem, s, a->pdl);
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

#ifdef LLAMAC_CUDA_STAMPS
extern "C" void cuda_stamps_dump_attention(void) { stamps_dump("attn"); }
#endif
