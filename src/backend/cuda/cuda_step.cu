/* The decoding step kernel (cuda_step.cuh): a producer warp per block keeps
 * its share of the weights streaming into a ring of shared memory while the
 * block's other warps compute the phases one after another, meeting the
 * rest of the grid at a barrier between phases. */
#include "backend/cuda/cuda_attention.cuh"
#include "backend/cuda/cuda_matvec.cuh"
#include "backend/cuda/cuda_step.cuh"

#include <algorithm>

#define STEP_WARPS   8 /* computing warps: ATTN_THREADS threads, as attention_item wants */
#define STEP_THREADS (STEP_WARPS * 32 + 32) /* and one producer warp */
#ifndef STEP_STAGE
#define STEP_STAGE 32768 /* bytes of one slot of the ring */
#endif
/* Slots of the ring: 3-4 measured best (run 37); a deeper ring only lengthens
 * the queue the phases' own loads wait behind. */
#ifndef STEP_MAX_STAGES
#define STEP_MAX_STAGES 4
#endif
/* Groups of 8 inputs per thread whose loads are in flight at once: one
 * round for 7B's 4096 (normed) and 11008 (not) inputs within 168 registers. */
#define STEP_X_UNROLL(norm) ((norm) ? 4 : 6)

/* Timing experiments only (docs/cuda-notes.md run 36; wrong results): a mask
 * of parts left out: 1 grid waits, 2 dot products, 4 input staging, 8 attention. */
#ifndef STEP_DEV_SKIP
#define STEP_DEV_SKIP 0
#endif

typedef sync_named<1, STEP_WARPS * 32> step_sync; /* the computing warps only */
static_assert(STEP_WARPS * 32 == ATTN_THREADS, "attention items take the computing warps");

/* Where block `blk` of `grid` finds its share of a product: row pairs
 * [begin, end), per_tile pairs to a slot of the ring. A slot holds the
 * pairs' quants, then their f16 scales from the 16-byte boundary at or before
 * the first (bulk copies move whole 16-byte units; the arena has 256 bytes
 * of slack after the last matrix). */
struct step_share {
    int row_q; /* bytes of one row's quants */
    int nb;    /* blocks of 32 per row */
    int begin, end, per_tile;
};

__host__ __device__ static inline step_share step_share_of(int rows, int cols, bool q4,
                                                           int stage_bytes, int blk, int grid) {
    step_share s;
    s.row_q = q4 ? cols / 2 : cols;
    s.nb = cols / 32;
    const int n_pairs = rows / 2;
    s.begin = (int)((int64_t)n_pairs * blk / grid);
    s.end = (int)((int64_t)n_pairs * (blk + 1) / grid);
    s.per_tile = (stage_bytes - 32) / (2 * s.row_q + 4 * s.nb);
    return s;
}

#if __CUDA_ARCH__ >= 900 || !defined(__CUDA_ARCH__)

/* ---- Hopper's transaction barriers and bulk copies ---------------------------- */

__device__ __forceinline__ unsigned smem_u32(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void mbar_init(uint64_t *b, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(b)), "r"(count));
}
/* The producer's arrival, announcing the bytes its copies will deliver. */
__device__ __forceinline__ void mbar_expect_tx(uint64_t *b, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)),
                 "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t *b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(b)) : "memory");
}
/* Waits until the phase of parity `parity` of b has completed. */
__device__ __forceinline__ void mbar_wait(uint64_t *b, unsigned parity) {
    unsigned done;
    do {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(smem_u32(b)), "r"(parity)
                     : "memory");
    } while (!done);
}
/* bytes (a multiple of 16, both ends 16-byte aligned) from global memory
 * into shared memory; b counts them when they land. */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, unsigned bytes, uint64_t *b) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
        "[%3];" ::"r"(smem_u32(dst)),
        "l"(src), "r"(bytes), "r"(smem_u32(b))
        : "memory");
}

/* ---- the grid barrier ------------------------------------------------------------ */

__device__ __forceinline__ unsigned load_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* The block is done with a phase: its writes are published, then counted.
 * The last block of the last phase sets the counter back to zero for the
 * next launch (every block has passed its last wait by then). */
__device__ __forceinline__ void grid_arrive(unsigned *bar, unsigned last_total) {
    step_sync::sync();
    if (threadIdx.x == 0) {
        __threadfence();
        if (atomicAdd(bar, 1u) + 1 == last_total) atomicExch(bar, 0u);
    }
}

/* Waits until `target` phase completions have been counted. */
__device__ __forceinline__ void grid_wait(const unsigned *bar, unsigned target) {
    if (threadIdx.x == 0 && !(STEP_DEV_SKIP & 1))
        while (load_acquire(bar) < target) {
        }
    step_sync::sync();
}

/* ---- the producer ------------------------------------------------------------------ */

/* Streams the block's share of every product, slot by slot, as far ahead
 * of the computing warps as the ring allows. */
template <bool Q4>
__device__ void step_produce(const step_phase *ph, int n_ph, char *ring, uint64_t *full,
                             uint64_t *empty, int stage_bytes, int n_stages) {
    unsigned it = 0;
    for (int i = 0; i < n_ph; i++) {
        if (ph[i].kind != STEP_PRODUCT) continue;
        const step_share sh =
            step_share_of(ph[i].rows, ph[i].cols, Q4, stage_bytes, blockIdx.x, gridDim.x);
        const char *w = static_cast<const char *>(ph[i].w);
        const char *sc = reinterpret_cast<const char *>(ph[i].scales);
        for (int p0 = sh.begin; p0 < sh.end; p0 += sh.per_tile, it++) {
            const int np = min(sh.per_tile, sh.end - p0), s = it % n_stages;
            mbar_wait(&empty[s], ((it / n_stages) & 1) ^ 1); /* the slot's last use is done */
            const unsigned q_bytes = 2u * np * sh.row_q;
            const uintptr_t s0 = (uintptr_t)(sc + (size_t)4 * p0 * sh.nb);
            const uintptr_t lo = s0 & ~(uintptr_t)15;
            const uintptr_t hi = (s0 + (size_t)4 * np * sh.nb + 15) & ~(uintptr_t)15;
            char *slot = ring + (size_t)s * stage_bytes;
            mbar_expect_tx(&full[s], q_bytes + (unsigned)(hi - lo));
            bulk_copy(slot, w + (size_t)2 * p0 * sh.row_q, q_bytes, &full[s]);
            bulk_copy(slot + 2 * sh.per_tile * sh.row_q, (const void *)lo, (unsigned)(hi - lo),
                      &full[s]);
        }
    }
}

/* ---- the computing warps ------------------------------------------------------------ */

/* The work area's layout for a product of `cols` inputs: the int8 inputs,
 * their scales and sums (mv_stage), then the norm weights. */
__host__ __device__ static inline size_t step_norm_offset(int cols) {
    return ((size_t)cols + (size_t)cols / MV_QGROUP * 8 + 15) & ~(size_t)15;
}

/* x (cols) as int8 groups (MV_QGROUP) in shared memory, exactly as stage_int8 of
 * cuda_ops.cu makes them (same values, same order of the sum of squares),
 * read from L2 since other blocks wrote it: four threads per block, each
 * taking eight values, the loads of STEP_X_UNROLL groups in flight at once.
 * With the norm, x * g is quantized (g already copied to shared memory at
 * gs, in flight since before the grid wait) and the returned 1 / rms
 * multiplies the finished dot products; without, it returns 1. */
template <bool NORM>
__device__ float step_stage_x(const float *x, const float *gs, int cols, float eps,
                              const mv_stage &st, float *red) {
    const int tid = threadIdx.x, quads = cols / 8;
    int8_t *xq = const_cast<int8_t *>(st.xq);
    float *xd = const_cast<float *>(st.xd);
    int *xsum = const_cast<int *>(st.xsum);
    float ss = 0.0f;
    for (int base = 0; base < quads; base += STEP_WARPS * 32 * STEP_X_UNROLL(NORM)) {
        float4 xv[STEP_X_UNROLL(NORM)][2], gv[STEP_X_UNROLL(NORM)][2];
#pragma unroll
        for (int u = 0; u < STEP_X_UNROLL(NORM); u++) {
            const int c = base + u * STEP_WARPS * 32 + tid, col = (c >> 2) * 32 + (c & 3) * 4;
            if (c < quads) {
                xv[u][0] = __ldcg(reinterpret_cast<const float4 *>(x + col));
                xv[u][1] = __ldcg(reinterpret_cast<const float4 *>(x + col + 16));
            }
        }
        if (NORM && base == 0) { /* the norm weights' copies have landed */
            copy_async_wait_all();
            step_sync::sync();
        }
#pragma unroll
        for (int u = 0; u < STEP_X_UNROLL(NORM); u++) {
            const int c = base + u * STEP_WARPS * 32 + tid, col = (c >> 2) * 32 + (c & 3) * 4;
            if (NORM && c < quads) {
                gv[u][0] = *reinterpret_cast<const float4 *>(gs + col);
                gv[u][1] = *reinterpret_cast<const float4 *>(gs + col + 16);
            }
        }
#pragma unroll
        for (int u = 0; u < STEP_X_UNROLL(NORM); u++) {
            if (base + u * STEP_WARPS * 32 >= quads) break; /* the same for the whole block */
            const int c = base + u * STEP_WARPS * 32 + tid, b = c >> 2, part = c & 3;
            const bool on = c < quads; /* whole quads are on or off; every lane shuffles */
            float v[8];
            if (on) {
                const float4 x0 = xv[u][0], x1 = xv[u][1];
                if (NORM) {
                    const float4 g0 = gv[u][0], g1 = gv[u][1];
                    ss += x0.x * x0.x + x0.y * x0.y + x0.z * x0.z + x0.w * x0.w + x1.x * x1.x +
                          x1.y * x1.y + x1.z * x1.z + x1.w * x1.w;
                    v[0] = x0.x * g0.x, v[1] = x0.y * g0.y, v[2] = x0.z * g0.z, v[3] = x0.w * g0.w;
                    v[4] = x1.x * g1.x, v[5] = x1.y * g1.y, v[6] = x1.z * g1.z, v[7] = x1.w * g1.w;
                } else {
                    v[0] = x0.x, v[1] = x0.y, v[2] = x0.z, v[3] = x0.w;
                    v[4] = x1.x, v[5] = x1.y, v[6] = x1.z, v[7] = x1.w;
                }
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) v[j] = 0.0f;
            }
            quantize_quad(v, on, part, xq + b * 32, xd + 2 * b, xsum + 2 * b);
        }
    }
    if (NORM) return rsqrtf(block_sum<step_sync>(ss, red) / cols + eps); /* publishes xq too */
    step_sync::sync();
    return 1.0f;
}

/* The block's share of a product from the ring: warp w takes the pairs
 * w, w + STEP_WARPS, ... of the share, each lane every 32nd vector of both
 * rows (the order of cuda_ops.cu's kernel, so the sums are the same). */
template <typename Q, bool Q4>
__device__ void step_consume(const step_phase &P, const char *ring, uint64_t *full, uint64_t *empty,
                             int stage_bytes, int n_stages, unsigned &it, const mv_stage &st,
                             float scale) {
    constexpr int V = mv_quant<Q>::V;
    const step_share sh = step_share_of(P.rows, P.cols, Q4, stage_bytes, blockIdx.x, gridDim.x);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_vec = P.cols / V;
    const mv_epilogue &epi = P.epi;
    const bool kv = epi.kind == MV_QKV;
    const int pos = kv ? epi.kv.pos[0] : 0, seq = kv ? epi.kv.seq[0] : 0;
    for (int p0 = sh.begin; p0 < sh.end; p0 += sh.per_tile, it++) {
        const int np = min(sh.per_tile, sh.end - p0), s = it % n_stages;
        mbar_wait(&full[s], (it / n_stages) & 1);
        const char *slot = ring + (size_t)s * stage_bytes;
        const uint4 *tq = reinterpret_cast<const uint4 *>(slot);
        const size_t skew = ((uintptr_t)P.scales + (size_t)4 * p0 * sh.nb) & 15;
        const __half *ts =
            reinterpret_cast<const __half *>(slot + 2 * sh.per_tile * sh.row_q + skew);
        for (int i = ((warp - (p0 - sh.begin)) % STEP_WARPS + STEP_WARPS) % STEP_WARPS;
             i < (STEP_DEV_SKIP & 2 ? 0 : np); i += STEP_WARPS) {
            const int pair = p0 + i;
            float2 pre = make_float2(0.0f, 0.0f);
            if (lane == 0) pre = mv_prepare(epi, 0, 2 * pair, pos);
            const uint4 *r0 = tq + (size_t)2 * i * n_vec, *r1 = r0 + n_vec;
            const __half *s0 = ts + 2 * i * sh.nb, *s1 = s0 + sh.nb;
            float acc0 = 0.0f, acc1 = 0.0f;
#pragma unroll 4
            for (int v = lane; v < n_vec; v += 32) {
                const int blk = v * V / 32;
                mv_quant<Q>::dot_vec(r0[v], r1[v], s0[blk], s1[blk], v, 0, st, acc0, acc1);
            }
            const float a = warp_sum(acc0) * scale, b = warp_sum(acc1) * scale;
            if (lane == 0) mv_finish(epi, 0, 2 * pair, a, b, pre, pos, seq);
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[s]); /* the slot is free for the producer */
    }
}

template <typename Q, bool Q4>
__global__ void __launch_bounds__(STEP_THREADS, 1)
    step_kernel(const step_phase *ph, int n_ph, float eps, unsigned *bar, int stage_bytes,
                int n_stages) {
    extern __shared__ __align__(128) char smem[];
    __shared__ __align__(8) uint64_t full[STEP_MAX_STAGES], empty[STEP_MAX_STAGES];
    __shared__ float red[32];
    char *ring = smem, *work = smem + (size_t)n_stages * stage_bytes;
    if (threadIdx.x == 0) {
        for (int s = 0; s < n_stages; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], STEP_WARPS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x >= STEP_WARPS * 32) {
        if (threadIdx.x == STEP_WARPS * 32)
            step_produce<Q4>(ph, n_ph, ring, full, empty, stage_bytes, n_stages);
        return;
    }
    unsigned it = 0;
    const unsigned total = (unsigned)n_ph * gridDim.x;
    for (int i = 0; i < n_ph; i++) {
        const step_phase &P = ph[i];
        float *gs = reinterpret_cast<float *>(work + step_norm_offset(P.cols));
        if (P.kind == STEP_PRODUCT && P.norm) /* constant: copied while the grid catches up */
            for (int c = threadIdx.x * 4; c < P.cols; c += STEP_WARPS * 32 * 4)
                copy16_async(gs + c, P.norm + c);
        if (i > 0) grid_wait(bar, (unsigned)i * gridDim.x);
        if (P.kind == STEP_PRODUCT) {
            const int ng = P.cols / MV_QGROUP;
            mv_stage st;
            st.xq = reinterpret_cast<const int8_t *>(work);
            st.xd = reinterpret_cast<const float *>(work + P.cols);
            st.xsum = reinterpret_cast<const int *>(st.xd + ng);
            st.ld = P.cols;
            st.ng = ng;
            const float scale = STEP_DEV_SKIP & 4 ? 1.0f
                                : P.norm ? step_stage_x<true>(P.x, gs, P.cols, eps, st, red)
                                         : step_stage_x<false>(P.x, NULL, P.cols, eps, st, red);
            step_consume<Q, Q4>(P, ring, full, empty, stage_bytes, n_stages, it, st, scale);
        } else {
            const attn_args &a = P.attn;
            const int n_items = a.n_kv_heads * a.max_splits;
            for (int item = blockIdx.x; item < (STEP_DEV_SKIP & 8 ? 0 : n_items);
                 item += gridDim.x) {
                const int g = item % a.n_kv_heads, split = item / a.n_kv_heads;
                if (a.kv_dtype == LC_DTYPE_F16)
                    attention_item<__half, step_sync, false>(a, 0, g, split,
                                                             reinterpret_cast<float *>(work));
                else
                    attention_item<float, step_sync, false>(a, 0, g, split,
                                                            reinterpret_cast<float *>(work));
            }
        }
        grid_arrive(bar, total);
    }
}

#else /* built for an older GPU: the step kernel is never launched there */

template <typename Q, bool Q4>
__global__ void step_kernel(const step_phase *ph, int n_ph, float eps, unsigned *bar,
                            int stage_bytes, int n_stages) {}

#endif

static const void *step_kernel_for(lc_dtype wt) {
    return wt == LC_DTYPE_Q8_0   ? (const void *)step_kernel<q8_gpu, false>
           : wt == LC_DTYPE_Q4_0 ? (const void *)step_kernel<q4_gpu, true>
                                 : NULL;
}

lc_status step_supported(int device, lc_error *err) {
    int major = 0;
    CU_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    cudaFuncAttributes fa;
    CU_TRY(cudaFuncGetAttributes(&fa, step_kernel_for(LC_DTYPE_Q8_0)));
    if (major < 9 || fa.binaryVersion < 90)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "the decoding step kernel needs compute capability 9.0 (this GPU %d.x, "
                       "built for %d.%d)",
                       major, fa.binaryVersion / 10, fa.binaryVersion % 10);
    return LC_OK;
}

lc_status step_plan_init(step_plan *plan, const step_phase *phases, int n_phases, lc_dtype wt,
                         float eps, int n_sm, int device, lc_error *err) {
    const void *fn = step_kernel_for(wt);
    if (!fn) return lc_fail(err, LC_ERR_UNSUPPORTED, "step kernel: %s weights", lc_dtype_name(wt));
    size_t work = 0; /* the computing warps' shared memory: int8 inputs, or one attention item */
    for (int i = 0; i < n_phases; i++) {
        const step_phase *p = &phases[i];
        if (p->kind == STEP_ATTENTION) {
            const lc_status st = attention_check(&p->attn, err);
            if (st) return st;
            if (p->attn.n != 1)
                return lc_fail(err, LC_ERR_UNSUPPORTED, "step kernel: %d entries", p->attn.n);
            work = std::max(work, attention_smem_bytes(&p->attn));
            continue;
        }
        if (p->rows % 2 || p->cols % 32 || !p->scales)
            return lc_fail(err, LC_ERR_UNSUPPORTED, "step kernel: a (%d, %d) product", p->rows,
                           p->cols);
        if (p->cols % 4 || (uintptr_t)p->x % 16 || (uintptr_t)p->norm % 16)
            return lc_fail(err, LC_ERR_UNSUPPORTED, "step kernel: unaligned inputs");
        work = std::max(work, step_norm_offset(p->cols) + (p->norm ? (size_t)p->cols * 4 : 0));
        const step_share sh =
            step_share_of(p->rows, p->cols, wt == LC_DTYPE_Q4_0, STEP_STAGE, 0, n_sm);
        if (sh.per_tile < 1)
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "step kernel: a pair of %d-column rows exceeds a %d-byte slot", p->cols,
                           STEP_STAGE);
    }
    work = (work + 127) & ~(size_t)127;
    int optin = 0;
    CU_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    const int64_t room = (int64_t)optin - 1024 - (int64_t)work; /* 1 KB for the static part */
    const int n_stages = (int)std::min<int64_t>(STEP_MAX_STAGES, room / STEP_STAGE);
    if (n_stages < 2)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "step kernel: %zu bytes of shared memory leave no room for the ring", work);
    plan->n_phases = n_phases;
    plan->wt = wt;
    plan->eps = eps;
    plan->grid = n_sm;
    plan->stage_bytes = STEP_STAGE;
    plan->n_stages = n_stages;
    plan->smem = (size_t)n_stages * STEP_STAGE + work;
    CU_TRY(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)plan->smem));
    int per_sm = 0;
    CU_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, STEP_THREADS, plan->smem));
    if (per_sm < 1)
        return lc_fail(err, LC_ERR_UNSUPPORTED, "step kernel: no block fits a multiprocessor");
    return LC_OK;
}

lc_status launch_step(const step_plan *p, cudaStream_t s, lc_error *err) {
    cudaLaunchConfig_t config = {};
    cudaLaunchAttribute attr;
    config.gridDim = dim3(p->grid);
    config.blockDim = dim3(STEP_THREADS);
    config.dynamicSmemBytes = p->smem;
    config.stream = s;
    attr.id = cudaLaunchAttributeCooperative; /* the grid barrier needs every block resident */
    attr.val.cooperative = 1;
    config.attrs = &attr;
    config.numAttrs = 1;
    const step_phase *ph = p->phases;
    int n = p->n_phases;
    float eps = p->eps;
    unsigned *bar = p->barrier;
    int stage = p->stage_bytes, n_stages = p->n_stages;
    void *args[] = {(void *)&ph,  (void *)&n,     (void *)&eps,
                    (void *)&bar, (void *)&stage, (void *)&n_stages};
    CU_TRY(cudaLaunchKernelExC(&config, step_kernel_for(p->wt), args));
    return LC_OK;
}
