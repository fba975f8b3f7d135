/* Decoding attention inside the qkv product, for one entry whose keys all fit
 * the short-context graph (fewer than ATTN_SPLIT_FROM).
 *
 * With separate kernels, attention's chain at short context (~10 us a 7B
 * layer, 14% of a Q8_0 step) is the latency of a few L2 round trips under
 * the load of the whole memory system: the queries and the newest key,
 * written by the qkv kernel, read back by attention's blocks after a
 * grid-wide wait; every way tried of loading them sooner lost
 * (docs/cuda-notes.md, runs 59-89). Here they never leave the SMs. The qkv
 * product's rows are dealt out by head: a thread-block cluster per kv head,
 * one block per QA_SLICE (16) of its head dims, each block computing those
 * dims of the group's queries, key and value. A block then scores every key
 * over its own dims (the earlier keys' slices came into shared memory while
 * the previous kernel ran), the cluster adds its blocks' shares through
 * distributed shared memory, and each block finishes softmax and the output
 * for its dims, which are one int8 group of wo's input.
 *
 * Opt-in (LLAMAC_CUDA_QKV_ATTN=1), a measured negative result: on an H100
 * its first form (blocks of eight warps) made 7B 7-8% slower (run 90), this
 * one within noise for Q8_0 and 1-3% slower for Q4_0 (runs 97-98). The tail
 * saves ~1.5 us of attention's ~5 us a layer, but the product, dealt out by
 * head over half the warps of the qkv kernel, loses 2-4 us, and the cluster
 * barrier ties each block to its cluster's slowest (docs/cuda-notes.md,
 * session 16). */
#include <cooperative_groups.h>

#include "backend/cuda/cuda_matvec_walk.cuh"

namespace cg = cooperative_groups;

/* Four warps a block, four blocks an SM (the separate kernels: two of
 * eight), so a cluster of 8 blocks takes two SMs. With eight-warp blocks a
 * cluster took four, and an H100 did not hold 7B's 32 clusters at once
 * (run 90; GPCs of 14-18 SMs leave SMs out of four-SM clusters): the rest
 * ran as a second wave. The price of fitting: 7B's product runs on 1024
 * warps, half the qkv kernel's, each walking twice the rows (run 98). */
#define QA_WARPS    4
#define QA_THREADS  (QA_WARPS * 32)
#define QA_SLICE    MV_QGROUP               /* head dims per block: one group of wo's int8 input */
#define QA_MAX_KEYS ATTN_SPLIT_FROM         /* the short-context graph's entries have fewer keys */
#define QA_PARTS    (QA_THREADS / QA_SLICE) /* key ranges of the output's partial sums */
#define QA_CLUSTER  8 /* the most blocks of a portable cluster: head_dim up to 128 */
static_assert(QA_SLICE % 8 == 0, "a slice of f16 keys is whole 16-byte copies");

/* The block's attention in shared memory, after the product's staging. */
struct qa_smem {
    __half *keys;  /* (QA_MAX_KEYS, QA_SLICE) earlier keys' dims, from the cache */
    __half *vals;  /* (QA_MAX_KEYS, QA_SLICE) */
    float *kept;   /* (rep + 2, QA_SLICE) the dims of each query head, the new key and value */
    float *share;  /* (rep, QA_MAX_KEYS) the block's share of each score, read by the cluster */
    float *scores; /* (rep, QA_MAX_KEYS) whole scores, then exp(score - max) */
    float *obuf;   /* (QA_PARTS, QA_SLICE) the output's partial sums */
};

/* Bytes of the product's staging (pre: from a hand-off), 16-byte aligned. */
__host__ __device__ static inline size_t qa_stage_bytes(int ld, bool pre) {
    const size_t b = pre ? mv_pre_stage_bytes(1, ld, true) : mv_stage_bytes(1, ld, true, true);
    return (b + 15) & ~(size_t)15;
}

__host__ __device__ static inline size_t qa_smem_bytes(int ld, bool pre, int rep) {
    const size_t floats =
        (size_t)(rep + 2) * QA_SLICE + 2 * (size_t)rep * QA_MAX_KEYS + (size_t)QA_PARTS * QA_SLICE;
    return qa_stage_bytes(ld, pre) + 2 * sizeof(__half) * QA_MAX_KEYS * QA_SLICE +
           floats * sizeof(float);
}

/* The layout at base (16-byte aligned): the same in every block of a
 * cluster, so a block finds another's shares at its own offset. */
__device__ __forceinline__ qa_smem qa_smem_at(char *base, int rep) {
    qa_smem s;
    s.keys = reinterpret_cast<__half *>(base);
    s.vals = s.keys + QA_MAX_KEYS * QA_SLICE;
    s.kept = reinterpret_cast<float *>(s.vals + QA_MAX_KEYS * QA_SLICE);
    s.share = s.kept + (rep + 2) * QA_SLICE;
    s.scores = s.share + rep * QA_MAX_KEYS;
    s.obuf = s.scores + rep * QA_MAX_KEYS;
    return s;
}

/* The block's walk over the qkv rows (mv_qstep's `rows`): the QA_SLICE rows
 * from d0 of each query head of kv group g, then of its key, then of its
 * value; pair j is pair j % (QA_SLICE / 2) of segment j / (QA_SLICE / 2).
 * Finished pairs are kept, rotated as mv_finish rotates them, the key and
 * value rounded to f16 as the cache holds them. */
struct qa_rows {
    int q_rows, kv_rows, head_dim, rep, g, d0;
    float *kept;
    __device__ int pair(int j) const {
        constexpr int P = QA_SLICE / 2;
        const int seg = j / P;
        const int row =
            seg < rep ? (g * rep + seg) * head_dim : q_rows + (seg - rep) * kv_rows + g * head_dim;
        return (row + d0) / 2 + j % P;
    }
    __device__ void keep(int j, float a, float b, float2 pre) const {
        rotate(pre, a, b); /* RoPE on q and k; pre is (1, 0) for v */
        if (j >= rep * (QA_SLICE / 2)) {
            a = __half2float(__float2half_rn(a));
            b = __half2float(__float2half_rn(b));
        }
        kept[2 * j] = a;
        kept[2 * j + 1] = b;
    }
};

/* Issues the copies of keys and values 0 .. n - 1 of sequence seq, kv head
 * g, dims d0 .. d0 + QA_SLICE of the f16 cache: written by earlier steps, so
 * they need not wait for the previous kernel. */
__device__ __forceinline__ void qa_load_cache(const attn_args &a, int seq, int g, int d0, int n,
                                              const qa_smem &s) {
    constexpr int H = QA_SLICE / 8; /* 16-byte copies per key */
    const int64_t off = seq * a.seq_stride + g * a.head_stride + d0;
    const __half *k = static_cast<const __half *>(a.k_cache) + off;
    const __half *v = static_cast<const __half *>(a.v_cache) + off;
    for (int i = threadIdx.x; i < n * H; i += blockDim.x) {
        const int key = i / H, h = i % H;
        const int64_t at = (int64_t)key * a.head_dim + 8 * h;
        copy16_async(reinterpret_cast<float *>(s.keys + key * QA_SLICE + 8 * h),
                     reinterpret_cast<const float *>(k + at));
        copy16_async(reinterpret_cast<float *>(s.vals + key * QA_SLICE + 8 * h),
                     reinterpret_cast<const float *>(v + at));
    }
}

__device__ __forceinline__ void cluster_arrive() {
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/* Key k's slice as floats: an earlier one from shared memory, the newest
 * (k == pos) as this step computed it. */
__device__ __forceinline__ void qa_key(const qa_smem &s, int rep, int k, int pos,
                                       float (&x)[QA_SLICE]) {
    if (k == pos) {
#pragma unroll
        for (int j = 0; j < QA_SLICE; j++) x[j] = s.kept[rep * QA_SLICE + j];
        return;
    }
#pragma unroll
    for (int h = 0; h < QA_SLICE / 8; h++) {
        float f[8];
        unpack16<__half>(*reinterpret_cast<const uint4 *>(s.keys + k * QA_SLICE + 8 * h), f);
#pragma unroll
        for (int i = 0; i < 8; i++) x[8 * h + i] = f[i];
    }
}

/* Attention of kv group g's query heads over keys 0 .. pos, by the cluster:
 * this block's dims d0 .. d0 + QA_SLICE of every output. */
__device__ void qa_attend(const attn_args &a, const cg::cluster_group &cluster, int g, int d0,
                          int pos, const qa_smem &s, float *red) {
    const int rep = a.n_heads / a.n_kv_heads, len = pos + 1;
    const int n_slices = (int)cluster.num_blocks();
    const float scale = rsqrtf((float)a.head_dim);
    for (int i = threadIdx.x; i < rep * QA_MAX_KEYS; i += blockDim.x) {
        const int r = i / QA_MAX_KEYS, k = i % QA_MAX_KEYS;
        if (k >= len) continue;
        float key[QA_SLICE];
        qa_key(s, rep, k, pos, key);
        const float *q = s.kept + r * QA_SLICE;
        float d = 0.0f;
#pragma unroll
        for (int j = 0; j < QA_SLICE; j++) d += q[j] * key[j];
        s.share[i] = d * scale;
    }
    cluster_arrive();
    cluster_wait(); /* every block's shares are written */
    /* Whole scores: the blocks' shares added in rank order, so every block
     * of the cluster gets the same scores and the same softmax. */
    for (int i = threadIdx.x; i < rep * QA_MAX_KEYS; i += blockDim.x) {
        if (i % QA_MAX_KEYS >= len) continue;
        float sc = 0.0f;
        for (int c = 0; c < n_slices; c++) sc += cluster.map_shared_rank(s.share, c)[i];
        s.scores[i] = sc;
    }
    cluster_arrive(); /* done with the others' shares; waited for before the exit */
    __syncthreads();
    const int d = threadIdx.x % QA_SLICE, part = threadIdx.x / QA_SLICE;
    const float *vnew = s.kept + (rep + 1) * QA_SLICE;
    for (int r = 0; r < rep; r++) {
        float *sr = s.scores + r * QA_MAX_KEYS;
        float m = -INFINITY;
        for (int k = threadIdx.x; k < len; k += blockDim.x) m = fmaxf(m, sr[k]);
        m = block_max(m, red);
        float l = 0.0f;
        for (int k = threadIdx.x; k < len; k += blockDim.x) {
            const float e = __expf(sr[k] - m);
            sr[k] = e;
            l += e;
        }
        l = block_sum(l, red); /* its barriers also publish sr */
        float o = 0.0f;
        for (int k = part; k < len; k += QA_PARTS)
            o += sr[k] * (k < pos ? __half2float(s.vals[k * QA_SLICE + d]) : vnew[d]);
        s.obuf[part * QA_SLICE + d] = o;
        __syncthreads();
        if (threadIdx.x < QA_SLICE) { /* the first half-warp: one group of wo's input */
            float sum = 0.0f;
            for (int p = 0; p < QA_PARTS; p++) sum += s.obuf[p * QA_SLICE + d];
            const int col = (g * rep + r) * a.head_dim + d0 + d;
            a.out[col] = sum / l;
            if (a.qout.q) act_group_store(a.qout, 0, col, sum / l, 1.0f);
        }
        __syncthreads(); /* obuf is reused */
    }
    cluster_wait(); /* no block exits while another may read its shares */
}

/* The qkv product (epi MV_QKV, normed, one entry) as matvec_quant_kernel
 * computes it, each cluster taking kv head blockIdx.x / cluster size and
 * each block one slice of its dims, then the attention of that head (a). */
template <typename Q>
__global__ void __launch_bounds__(QA_THREADS, 4)
    qkv_attention_kernel(const void *__restrict__ w, const __half *__restrict__ scales, int cols,
                         mv_input in, mv_epilogue epi, attn_args a) {
#if __CUDA_ARCH__ >= 900
    extern __shared__ float xs[]; /* qa_smem_bytes */
    __shared__ float red[32];
    const cg::cluster_group cluster = cg::this_cluster();
    const int lane = threadIdx.x & 31, ld = cols, rep = a.n_heads / a.n_kv_heads;
    const int g = blockIdx.x / cluster.num_blocks(), d0 = cluster.block_rank() * QA_SLICE;
    const bool pre = in.pre.q != NULL;
    mv_qsmem sm;
    mv_qsmem_place<1>(sm, xs, ld, true, pre);
    const qa_smem s = qa_smem_at(reinterpret_cast<char *>(xs) + qa_stage_bytes(ld, pre), rep);
    const kv_target &kv = epi.kv;
    const qa_rows rows = {kv.q_rows, kv.kv_rows, kv.head_dim, rep, g, d0, s.kept};
    mv_matrix m;
    mv_matrix_place<Q>(m, w, scales, ld);
    m.n_pairs = (rep + 2) * (QA_SLICE / 2);
    m.pair_stride = QA_WARPS;
    m.paired_rounds = false;
    mv_walk at = {(int)(threadIdx.x >> 5), 0};
    mv_qbatch b0, b1;
    mv_tokens<1> tok;
    tok.round = 0;
    float scale[1];
    pdl_let_next_start();
    if (!pre) stage_quant_before(in, cols, sm);
    if (at.pair < m.n_pairs)
        mv_qload<Q>(b0, m.w, m.scales, m.nb, m.n_vec, rows.pair(at.pair), 0, lane);
    tok.pos[0] = kv.pos[0]; /* from the host, copied before the step */
    tok.seq[0] = kv.seq[0];
    const int pos = tok.pos[0];
    if (pos + 1 > QA_MAX_KEYS) __trap(); /* the host launches this for short contexts only */
    qa_load_cache(a, tok.seq[0], g, d0, pos, s);
    const mv_walk at1 = mv_after(at, m);
    if (mv_quant<Q>::EARLY > 1 && at1.pair < m.n_pairs)
        mv_qload<Q>(b1, m.w, m.scales, m.nb, m.n_vec, rows.pair(at1.pair), at1.batch, lane);
    pdl_wait_for_previous();
    stage_quant_inputs<Q, 1, true>(in, cols, ld, sm, pre, red, scale); /* and the cache's copies */
    if (mv_quant<Q>::EARLY == 1 && at1.pair < m.n_pairs)
        mv_qload<Q>(b1, m.w, m.scales, m.nb, m.n_vec, rows.pair(at1.pair), at1.batch, lane);
    const mv_stage st = {sm.xq, sm.xd, sm.xsum, ld, ld / MV_QGROUP};
    if (at.pair < m.n_pairs) {
        float acc0[1] = {0.0f}, acc1[1] = {0.0f};
        while (mv_qstep<Q, 1>(b0, at, m, st, lane, acc0, acc1, epi, tok, scale, NULL, rows) &&
               mv_qstep<Q, 1>(b1, at, m, st, lane, acc0, acc1, epi, tok, scale, NULL, rows)) {
        }
    }
    __syncthreads(); /* every warp's kept pairs */
    qa_attend(a, cluster, g, d0, pos, s, red);
#else
    __trap(); /* qkv_attention_supported says no below compute capability 9.0 */
#endif
}

static const void *qa_kernel_for(lc_dtype wt) {
    switch (wt) {
    case LC_DTYPE_Q8_0: return (const void *)qkv_attention_kernel<q8_gpu>;
    case LC_DTYPE_Q4_0: return (const void *)qkv_attention_kernel<q4_gpu>;
    default: return NULL;
    }
}

lc_status qkv_attention_supported(int device, lc_dtype wt, lc_dtype kv_t, int head_dim, int rep,
                                  int cols, int *clusters, lc_error *err) {
    *clusters = 0;
    const void *fn = qa_kernel_for(wt);
    if (!fn || kv_t != LC_DTYPE_F16 || head_dim % QA_SLICE || head_dim / QA_SLICE > QA_CLUSTER)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "attention in the qkv kernel needs Q8_0 / Q4_0 weights, an f16 cache and "
                       "head_dim a multiple of %d up to %d (this model: %s, %d)",
                       QA_SLICE, QA_SLICE * QA_CLUSTER, lc_dtype_name(wt), head_dim);
    int major = 0, optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    cudaFuncAttributes fa;
    CU_TRY(cudaFuncGetAttributes(&fa, fn));
    if (major < 9 || fa.binaryVersion < 90)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "attention in the qkv kernel needs thread-block clusters, compute "
                       "capability 9.0 (this GPU %d.x, built for %d.%d)",
                       major, fa.binaryVersion / 10, fa.binaryVersion % 10);
    const size_t smem = qa_smem_bytes(cols, false, rep); /* the float staging: the larger */
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int dynamic = optin - 32 * (int)sizeof(float) - 1024; /* room for the static part */
    if (smem > (size_t)dynamic)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "attention in the qkv kernel: %zu bytes of shared memory for rows of %d",
                       smem, cols);
    /* the device's limit, not this model's need: another engine may have a larger one */
    CU_TRY(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    const int n_slices = head_dim / QA_SLICE;
    pdl_config pc;
    pdl_config_init(&pc, dim3(n_slices), dim3(QA_THREADS), smem, 0, false);
    pdl_config_cluster(&pc, n_slices);
    CU_TRY(cudaOccupancyMaxActiveClusters(clusters, fn, &pc.config));
    return LC_OK;
}

lc_status launch_qkv_attention(lc_dtype wt, const void *w, int cols, const mv_input *in,
                               const mv_epilogue *epi, const attn_args *a, cudaStream_t s,
                               lc_error *err) {
    const void *fn = qa_kernel_for(wt);
    const int hd = a->head_dim, rep = a->n_heads / a->n_kv_heads;
    if (!fn || in->n != 1 || a->n != 1 || !in->norm || epi->kind != MV_QKV || epi->qout.q ||
        a->kv_dtype != LC_DTYPE_F16 || hd % QA_SLICE || hd / QA_SLICE > QA_CLUSTER || cols % 32 ||
        (in->pre.q && in->pre.ld != cols))
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "qkv-attention: %s weights, %d inputs of %d, head_dim %d, %d entries",
                       lc_dtype_name(wt), in->n, cols, hd, a->n);
    const __half *scales = cuda_matrix_scales(wt, w, epi->kv.q_rows + 2 * epi->kv.kv_rows, cols);
    const int n_slices = hd / QA_SLICE;
    pdl_config pc;
    pdl_config_init(&pc, dim3(a->n_kv_heads * n_slices), dim3(QA_THREADS),
                    qa_smem_bytes(cols, in->pre.q != NULL, rep), s, a->pdl);
    pdl_config_cluster(&pc, n_slices);
    void *args[] = {(void *)&w, (void *)&scales, (void *)&cols, (void *)in, (void *)epi, (void *)a};
    CU_TRY(cudaLaunchKernelExC(&pc.config, fn, args));
    return LC_OK;
}
