/* The quantized matrix-vector products' walk, shared by their own kernel
 * (matvec_quant_kernel in cuda_ops.cu) and the kernel that runs attention in
 * the qkv product (cuda_qkv_attention.cu): a warp's batches of 16-byte
 * weight loads, how its walk steps over row pairs, the staging of the inputs
 * as int8 groups, and the slots of a quantized hand-off. */
#ifndef LLAMAC_BACKEND_CUDA_MATVEC_WALK_CUH
#define LLAMAC_BACKEND_CUDA_MATVEC_WALK_CUH

#include "backend/cuda/cuda_matvec.cuh"

#ifndef MV_WARPS   /* a -D for the dev/cuda ladder */
#define MV_WARPS 8 /* warps per block */
#endif
#define MV_UNROLL 4 /* 16-byte loads in flight per row and thread */

/* Where a warp is in its walk: row pair `pair`, batch `batch` of it. */
struct mv_walk {
    int pair, batch;
};

/* The per-token values a warp's epilogue needs: position and sequence
 * (read once), and what mv_prepare loaded for the current pair. */
template <int NT> struct mv_tokens {
    int pos[NT], seq[NT];
    float2 pre[NT];
    int round; /* pairs the warp has finished (the quantized kernel's hand-off) */
};

/* Whether the input rows and the norm weights can come into shared memory
 * with 16-byte asynchronous copies: all in flight at once, where a
 * load-then-store loop would pay the L2 latency once per element. */
__device__ __forceinline__ bool stage_vec_ok(const mv_input &in, int cols) {
    return cols % 4 == 0 && in.x_ld % 4 == 0 && (uintptr_t)in.x % 16 == 0 &&
           (uintptr_t)in.norm % 16 == 0;
}

/* Issues the block's copy of n floats from src to shared memory at dst:
 * asynchronous when vec (copy_async_wait_all completes them), else a loop. */
__device__ __forceinline__ void stage_copy(float *dst, const float *src, int n, bool vec) {
    if (vec)
        for (int i = threadIdx.x * 4; i < n; i += blockDim.x * 4) copy16_async(dst + i, src + i);
    else
        for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

/* The quantized kernel's batch: as mv_batch, with each vector's block scale,
 * kept as loaded (f16) so no instruction waits for it until the batch is
 * used a step later: converting at load time made every step wait one full
 * memory latency for the scales before computing (docs/cuda-notes.md, run 14). */
struct mv_qbatch {
    uint4 r0[MV_UNROLL], r1[MV_UNROLL];
    __half s0[MV_UNROLL], s1[MV_UNROLL];
};

/* Loads the batch and its scales: rows 2 pair and 2 pair + 1, n_vec 16-byte vectors apart. */
template <typename Q>
__device__ __forceinline__ void mv_qload(mv_qbatch &b, const uint4 *__restrict__ w,
                                         const __half *__restrict__ scales, int nb, int n_vec,
                                         int pair, int batch, int lane) {
    const uint4 *w0 = w + (int64_t)2 * pair * n_vec, *w1 = w0 + n_vec;
#pragma unroll
    for (int u = 0; u < MV_UNROLL; u++) {
        const int v = (batch * MV_UNROLL + u) * 32 + lane;
        if (v < n_vec) {
            const int blk = v * mv_quant<Q>::V / 32;
            b.r0[u] = load_stream16(w0 + v);
            b.r1[u] = load_stream16(w1 + v);
            b.s0[u] = scales[(int64_t)2 * pair * nb + blk];
            b.s1[u] = scales[(int64_t)(2 * pair + 1) * nb + blk];
        } else {
            b.r0[u] = b.r1[u] = make_uint4(0, 0, 0, 0);
            b.s0[u] = b.s1[u] = __float2half(0.0f);
        }
    }
}

template <typename Q, int NT>
__device__ __forceinline__ void mv_qdot(const mv_qbatch &b, const mv_stage &st, int n_vec,
                                        int batch, int lane, float (&acc0)[NT], float (&acc1)[NT]) {
#pragma unroll
    for (int u = 0; u < MV_UNROLL; u++) {
        const int v = (batch * MV_UNROLL + u) * 32 + lane;
        if (v >= n_vec) break;
#pragma unroll
        for (int t = 0; t < NT; t++)
            mv_quant<Q>::dot_vec(b.r0[u], b.r1[u], b.s0[u], b.s1[u], v, t, st, acc0[t], acc1[t]);
    }
}

/* The matrix as the kernel walks it. */
struct mv_matrix {
    const uint4 *__restrict__ w;
    const __half *__restrict__ scales;
    int nb, n_vec, n_batches, n_pairs, pair_stride;
    bool paired_rounds; /* a block's rounds go two by two over 2 MV_WARPS adjacent pairs */
};

/* The fields of m that follow from the stored matrix: rows of ld Q weights. */
template <typename Q>
__device__ __forceinline__ void mv_matrix_place(mv_matrix &m, const void *w, const __half *scales,
                                                int ld) {
    m.w = static_cast<const uint4 *>(w);
    m.scales = scales;
    m.nb = ld / 32;
    m.n_vec = ld / mv_quant<Q>::V;
    m.n_batches = (m.n_vec + 32 * MV_UNROLL - 1) / (32 * MV_UNROLL);
}

/* The step after `at` in a warp's walk: the next batch of the pair, else the
 * warp's pair of the next round. Normally a round of a block covers
 * MV_WARPS adjacent pairs; with paired_rounds (MV_SWIGLU with a quantized
 * output: one value per pair, MV_QGROUP values to a group) two consecutive
 * rounds cover 2 MV_WARPS adjacent pairs, so a group's pairs stay in one block. */
__device__ __forceinline__ mv_walk mv_after(mv_walk at, const mv_matrix &m) {
    if (at.batch + 1 < m.n_batches) return (mv_walk){at.pair, at.batch + 1};
    if (m.paired_rounds && (at.pair / MV_WARPS) % 2 == 0) return (mv_walk){at.pair + MV_WARPS, 0};
    return (mv_walk){at.pair + m.pair_stride - (m.paired_rounds ? MV_WARPS : 0), 0};
}

/* A quantized output (mv_epilogue.qout) is gathered in the block's shared
 * memory and quantized once the block's walk is over: each finished pair's
 * values go into the slot of their group (lane 0, plain stores), and after
 * one barrier at the kernel's end each warp quantizes whole groups. Counting
 * arrivals per pair and quantizing mid-walk (the warp that completed a
 * group) cost more than the consumers saved (docs/cuda-notes.md, runs
 * 46-51): every pair waited for a shared atomic and the completing warp's
 * shuffles stalled its stream. A group's pairs all belong to one block
 * (mv_after's walk keeps them together). */
template <int NT>
__device__ __forceinline__ void mv_group_leave(const mv_epilogue &e, int round,
                                               const float2 (&out)[NT], int lane, mv_qslot *slots) {
    /* The warp's pair of round r: MV_ADD's belongs to the block's group of
     * that round, as its (warp)th pair; MV_SWIGLU's paired rounds 2m and
     * 2m + 1 make up group m, the second one's pairs after the first's.
     * Derived from the round, not from the pair's index: dividing by the
     * grid's size per pair cost ~3% of a 7B Q8_0 step (run 56). Needs
     * MV_WARPS * 2 == MV_QGROUP (launch_matvec checks). */
    if (lane != 0) return;
    const int warp = threadIdx.x >> 5;
    if (e.kind == MV_SWIGLU) {
        mv_qslot &s = slots[round >> 1];
        const int k = warp + MV_WARPS * (round & 1);
#pragma unroll
        for (int t = 0; t < NT; t++) s.v[t][k] = out[t].x;
    } else {
        mv_qslot &s = slots[round];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            s.v[t][2 * warp] = out[t].x;
            s.v[t][2 * warp + 1] = out[t].y;
        }
    }
}

/* Which stored row pair the walk's pair p is, and what becomes of a
 * finished one besides its epilogue. The plain walk meets the matrix as
 * stored and keeps nothing; the qkv-attention kernel walks one head's slice
 * of rows (cuda_qkv_attention.cu). */
struct mv_rows_stored {
    __device__ int pair(int p) const { return p; }
    __device__ void keep(int p, float a, float b, float2 pre) const {}
};

/* mv_step for the quantized kernel, two steps deep: the warp enters with the
 * batches of `at` (in cur) and the step after in flight, uses cur, then
 * reloads cur with the step after next. The kernel issues its first batch
 * (two at Q8_0, mv_quant::EARLY) before it waits for the previous kernel,
 * so it overlaps the staging (runs 16, 23 and 42 of docs/cuda-notes.md).
 * (The plain kernel keeps its own walk: the shared version measured 3%
 * slower on 7B f16, run 11.) `rows` maps the walk's pairs to stored ones
 * and keeps token 0's finished pairs (lane 0). */
template <typename Q, int NT, typename R = mv_rows_stored>
__device__ __forceinline__ bool
mv_qstep(mv_qbatch &cur, mv_walk &at, const mv_matrix &m, const mv_stage &st, int lane,
         float (&acc0)[NT], float (&acc1)[NT], const mv_epilogue &epi, mv_tokens<NT> &tok,
         const float (&scale)[NT], mv_qslot *slots, const R &rows = R()) {
    const mv_walk nx = mv_after(at, m), nx2 = mv_after(nx, m);
    if (at.batch == 0 && lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++)
            tok.pre[t] = mv_prepare(epi, t, 2 * rows.pair(at.pair), tok.pos[t]);
    mv_qdot<Q, NT>(cur, st, m.n_vec, at.batch, lane, acc0, acc1);
    if (nx2.pair < m.n_pairs)
        mv_qload<Q>(cur, m.w, m.scales, m.nb, m.n_vec, rows.pair(nx2.pair), nx2.batch, lane);
    if (nx.batch == 0) { /* the pair is done */
        float2 out[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float a = warp_sum(acc0[t]) * scale[t], b = warp_sum(acc1[t]) * scale[t];
            if (lane == 0) {
                if (t == 0) rows.keep(at.pair, a, b, tok.pre[0]);
                out[t] = mv_finish(epi, t, 2 * rows.pair(at.pair), a, b, tok.pre[t], tok.pos[t],
                                   tok.seq[t]);
            }
            acc0[t] = acc1[t] = 0.0f;
        }
        if (epi.qout.q) mv_group_leave<NT>(epi, tok.round, out, lane, slots);
        tok.round++;
    }
    at = nx;
    return at.pair < m.n_pairs;
}

/* Where the quantized kernel stages its inputs in shared memory
 * (mv_stage_bytes): the rows as floats, the norm weights, then the int8
 * blocks, their scales and sums. */
struct mv_qsmem {
    float *xs, *gs;
    int8_t *xq;
    float *xd;
    int *xsum;
};

/* The layout of a launch's staging at xs: the NT rows as floats, the norm
 * weights, then the int8 side (mv_stage_bytes); or with a hand-off (pre)
 * only the int8 side, then the groups' sums of squares (mv_pre_stage_bytes). */
template <int NT>
__device__ __forceinline__ void mv_qsmem_place(mv_qsmem &sm, float *xs, int ld, bool norm,
                                               bool pre) {
    sm.gs = xs + NT * ld;
    sm.xq = reinterpret_cast<int8_t *>(pre ? xs : xs + mv_stage_floats(NT, ld, norm));
    sm.xd = reinterpret_cast<float *>(sm.xq + NT * ld);
    sm.xsum = reinterpret_cast<int *>(sm.xd + NT * (ld / MV_QGROUP));
    sm.xs = pre ? reinterpret_cast<float *>(sm.xsum + NT * (ld / MV_QGROUP)) : xs;
}

/* The quantized kernel's staging, in two halves around the wait for the
 * previous kernel: the norm weights do not depend on it, so their copies are
 * issued before; after it, the NT input rows (no padding: ld == cols).
 * stage_quant_wait completes both. */
__device__ __forceinline__ void stage_quant_before(const mv_input &in, int cols,
                                                   const mv_qsmem &sm) {
    if (in.norm) stage_copy(sm.gs, in.norm, cols, stage_vec_ok(in, cols));
}

template <int NT>
__device__ __forceinline__ void stage_quant_after(const mv_input &in, int cols, int ld,
                                                  const mv_qsmem &sm) {
    const bool vec = stage_vec_ok(in, cols);
    for (int t = 0; t < NT; t++)
        stage_copy(sm.xs + t * ld, in.x + (in.rows ? in.rows[t] : t) * in.x_ld, cols, vec);
}

__device__ __forceinline__ void stage_quant_wait() {
    copy_async_wait_all();
    __syncthreads();
}

/* The staged rows again as int8 groups of MV_QGROUP (act_step_of). Two
 * ways, each the faster one measured for its case (runs 23-26 of
 * docs/cuda-notes.md):
 *
 * Without a norm, one thread per group, two passes over shared memory so
 * the values stay out of registers (which hold the weights already in
 * flight); a thread walks its values from a different 16-byte word than its
 * neighbours (j + g) so a quarter-warp's reads fall in distinct banks.
 *
 * With the RMS norm, one pass: a block quantizes x * g (g the norm weights),
 * whose scale does not depend on the norm's 1 / rms, so the sum of squares is
 * reduced alongside and 1 / rms multiplies each finished dot product instead
 * (scale[t]). Four threads per block of 32, eight values each (words j and
 * j + 4 of the 32, so a quarter-warp reads 128 contiguous bytes), max and sum
 * by shuffles. It saves the norm's own pass, a barrier and half-idle threads:
 * 0.6 (Q8_0) to 1.1 us (Q4_0) a normed product. */
template <int NT, bool NORM>
__device__ __forceinline__ void stage_int8(const mv_qsmem &sm, int cols, int ld, int ng, float eps,
                                           float *red, float (&scale)[NT]) {
    if (!NORM) {
        for (int g = threadIdx.x; g < NT * ng; g += blockDim.x) {
            const int at = g / ng * ld + (g % ng) * MV_QGROUP;
            const float4 *x4 = reinterpret_cast<const float4 *>(sm.xs + at);
            float amax = 0.0f;
#pragma unroll
            for (int j = 0; j < MV_QGROUP / 4; j++) {
                const float4 x = x4[(j + g) % (MV_QGROUP / 4)];
                amax = fmaxf(amax,
                             fmaxf(fmaxf(fabsf(x.x), fabsf(x.y)), fmaxf(fabsf(x.z), fabsf(x.w))));
            }
            const act_step s = act_step_of(amax);
            int sum = 0;
            int *q4 = reinterpret_cast<int *>(sm.xq + at);
#pragma unroll
            for (int j = 0; j < MV_QGROUP / 4; j++) {
                const float4 x = x4[(j + g) % (MV_QGROUP / 4)];
                const int q[4] = {act_quantize(x.x, s), act_quantize(x.y, s), act_quantize(x.z, s),
                                  act_quantize(x.w, s)};
                sum += q[0] + q[1] + q[2] + q[3];
                q4[(j + g) % (MV_QGROUP / 4)] = pack4(q);
            }
            sm.xd[g] = s.d;
            sm.xsum[g] = sum;
        }
#pragma unroll
        for (int t = 0; t < NT; t++) scale[t] = 1.0f; /* a constant: the products skip it */
        __syncthreads();
        return;
    }
    const int lane = threadIdx.x & 31, nb = ng / 2, quads = NT * nb * 4;
    float ss[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) ss[t] = 0.0f;
    for (int base = threadIdx.x & ~31; base < quads; base += blockDim.x) {
        const int c = base + lane, b = c >> 2, part = c & 3;
        const bool on = c < quads; /* whole quads are on or off; every lane shuffles */
        const int t = on ? b / nb : 0, col = (b % nb) * 32 + part * 4, at = t * ld + col;
        float v[8];
        if (on) {
            const float4 x0 = *reinterpret_cast<const float4 *>(sm.xs + at);
            const float4 x1 = *reinterpret_cast<const float4 *>(sm.xs + at + 16);
            const float4 g0 = *reinterpret_cast<const float4 *>(sm.gs + col);
            const float4 g1 = *reinterpret_cast<const float4 *>(sm.gs + col + 16);
            const float sq = x0.x * x0.x + x0.y * x0.y + x0.z * x0.z + x0.w * x0.w + x1.x * x1.x +
                             x1.y * x1.y + x1.z * x1.z + x1.w * x1.w;
#pragma unroll
            for (int tt = 0; tt < NT; tt++) ss[tt] += tt == t ? sq : 0.0f;
            v[0] = x0.x * g0.x, v[1] = x0.y * g0.y, v[2] = x0.z * g0.z, v[3] = x0.w * g0.w;
            v[4] = x1.x * g1.x, v[5] = x1.y * g1.y, v[6] = x1.z * g1.z, v[7] = x1.w * g1.w;
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = 0.0f;
        }
        quantize_quad(v, on, part, sm.xq + at - part * 4, sm.xd + 2 * b, sm.xsum + 2 * b);
    }
#pragma unroll
    for (int t = 0; t < NT; t++) /* its barriers also publish the int8 blocks */
        scale[t] = rsqrtf(block_sum(ss[t], red) / cols + eps);
}

/* The staging of inputs that came quantized (mv_input.pre, written by the
 * previous product's epilogue): the int8 rows, their groups' scales and
 * sums, and with the norm the groups' sums of squares (at sm.xs), whose
 * total (summed in a fixed order) gives 1 / rms. No pass over the values:
 * run 44 measured the f32 staging and its pass at 1.0-2.2 us a product. */
template <typename Q, int NT, bool NORM>
__device__ __forceinline__ void stage_pre(const mv_input &in, int cols, int ld, const mv_qsmem &sm,
                                          float (&scale)[NT]) {
    const int ng = ld / MV_QGROUP;
    const bool vec = ng % 4 == 0; /* the group arrays' rows start 16-byte aligned */
    for (int t = 0; t < NT; t++) {
        const int64_t r = in.rows ? in.rows[t] : t;
        stage_copy(reinterpret_cast<float *>(sm.xq + t * ld),
                   reinterpret_cast<const float *>(in.pre.q + r * ld), ld / 4, true);
        stage_copy(sm.xd + t * ng, in.pre.d + r * ng, ng, vec);
        if (mv_quant<Q>::SUMS)
            stage_copy(reinterpret_cast<float *>(sm.xsum + t * ng),
                       reinterpret_cast<const float *>(in.pre.sum + r * ng), ng, vec);
        if (NORM) stage_copy(sm.xs + t * ng, in.pre.ss + r * ng, ng, vec);
    }
    stage_quant_wait();
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float ss = 0.0f;
        /* each warp sums all the groups itself, in the same order: no block barrier */
        if (NORM)
            for (int i = threadIdx.x & 31; i < ng; i += 32) ss += sm.xs[t * ng + i];
        scale[t] = NORM ? rsqrtf(warp_sum(ss) / cols + in.eps) : 1.0f;
    }
}

/* The staging after the wait for the previous kernel: the hand-off as it
 * came (mv_input.pre), or the float rows copied and quantized. */
template <typename Q, int NT, bool NORM>
__device__ __forceinline__ void stage_quant_inputs(const mv_input &in, int cols, int ld,
                                                   const mv_qsmem &sm, bool pre, float *red,
                                                   float (&scale)[NT]) {
    if (pre) {
        stage_pre<Q, NT, NORM>(in, cols, ld, sm, scale);
    } else {
        stage_quant_after<NT>(in, cols, ld, sm);
        stage_quant_wait();
        stage_int8<NT, NORM>(sm, cols, ld, ld / MV_QGROUP, in.eps, red, scale);
    }
}

/* Copies the next norm's weights of the block's groups into their slots
 * (asynchronous: issued before the wait for the previous kernel, completed
 * by the staging's wait), or ones without a norm. */
__device__ __forceinline__ void mv_groups_prepare(const mv_epilogue &e, int out_len,
                                                  mv_qslot *slots) {
    const int n_groups = out_len / MV_QGROUP;
    constexpr int Q4 = MV_QGROUP / 4; /* 16-byte copies per group */
    for (int i = threadIdx.x; i < mv_qslots_of(n_groups, gridDim.x) * Q4; i += blockDim.x) {
        const int j = i / Q4, c = i % Q4 * 4, group = j * gridDim.x + blockIdx.x;
        if (group >= n_groups) break;
        if (e.qnorm)
            copy16_async(&slots[j].g[c], e.qnorm + group * MV_QGROUP + c);
        else
            *reinterpret_cast<float4 *>(&slots[j].g[c]) = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    }
}

/* The block's groups as int8 with their scales, sums and sums of squares
 * (of x before the norm weights), after every warp has left its values. */
template <int NT>
__device__ __forceinline__ void mv_groups_finish(const mv_epilogue &e, int out_len,
                                                 const mv_qslot *slots) {
    const int n_groups = out_len / MV_QGROUP, i = threadIdx.x % MV_QGROUP;
    __syncthreads();
    /* each half-warp a group */
    for (int j = threadIdx.x / MV_QGROUP; j < mv_qslots_of(n_groups, gridDim.x);
         j += MV_WARPS * 2) {
        const int group = j * gridDim.x + blockIdx.x;
        if (group >= n_groups) break;
#pragma unroll
        for (int t = 0; t < NT; t++)
            act_group_store(e.qout, t, group * MV_QGROUP + i, slots[j].v[t][i], slots[j].g[i]);
    }
}

#endif
