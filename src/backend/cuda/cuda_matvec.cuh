/* The matrix-vector products' device code shared by their own kernels
 * (cuda_ops.cu) and the decoding step kernel (cuda_step.cu): what a product
 * does with each finished pair of rows, and how a vector of quantized
 * weights meets the inputs staged as int8. */
#ifndef LLAMAC_BACKEND_CUDA_MATVEC_CUH
#define LLAMAC_BACKEND_CUDA_MATVEC_CUH

#include "backend/cuda/cuda_ops.cuh"

/* Rotates (a, b) by the angle whose (cos, sin) is cs. */
__device__ __forceinline__ void rotate(float2 cs, float &a, float &b) {
    const float x = a, y = b;
    a = x * cs.x - y * cs.y;
    b = x * cs.y + y * cs.x;
}

/* Rotates the pair (a, b) of position `pos`, pair index i within its head. */
__device__ __forceinline__ void rope_pair(const float2 *rope, int half, int pos, int i, float &a,
                                          float &b) {
    rotate(rope[(int64_t)pos * half + i], a, b);
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
    case MV_ADD: /* from L2: in the step kernel another block may have written the line */
        return make_float2(__ldcg(e.out + t * e.out_ld + r), __ldcg(e.out + t * e.out_ld + r + 1));
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
 * epilogue, with `pre` from mv_prepare. Returns what MV_ADD stored (two
 * values) or MV_SWIGLU (one, in .x). */
__device__ __forceinline__ float2 mv_finish(const mv_epilogue &e, int t, int r, float a, float b,
                                            float2 pre, int pos, int seq) {
    switch (e.kind) {
    case MV_STORE:
        e.out[t * e.out_ld + r] = a;
        e.out[t * e.out_ld + r + 1] = b;
        break;
    case MV_ADD:
        a += pre.x, b += pre.y;
        e.out[t * e.out_ld + r] = a;
        e.out[t * e.out_ld + r + 1] = b;
        return make_float2(a, b);
    case MV_SWIGLU: {
        const float h = a / (1.0f + __expf(-a)) * b;
        e.out[t * e.out_ld + r / 2] = h;
        return make_float2(h, 0.0f);
    }
    case MV_QKV: {
        const kv_target &kv = e.kv;
        const int hd = kv.head_dim;
        rotate(pre, a, b); /* RoPE; pre is (1, 0) for v rows */
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
    return make_float2(0.0f, 0.0f);
}

/* The inputs a quantized product meets, as the block staged them: int8
 * groups of MV_QGROUP with a scale and the sum of the group's int8 values
 * (Q4_0's offset of 8 needs it). */
struct mv_stage {
    const int8_t *xq; /* (NT, ld) */
    const float *xd;  /* (NT, ng) */
    const int *xsum;  /* (NT, ng) */
    int ld, ng;
};
static_assert(MV_QGROUP == 16, "the loaders below take a 16-byte vector as one or two groups");

/* The per-type loader of the quantized kernels: V weights per 16-byte vector
 * and how a vector of two rows meets the staged int8 inputs (__dp4a). */
template <typename Q> struct mv_quant;

/* Q8_0: 16 int8 weights per vector, half a block, one group of inputs.
 * EARLY: batches a warp of the separate kernel loads before it waits for the
 * previous kernel. Two (a whole pair of 4096-input rows) measured +0.9 to
 * +1.2% on 7B Q8_0; on Q4_0 they lost 0.8-1.6% while every product staged
 * 16 KB of floats (the copies queued behind them), and won 1.2% once the
 * inputs came handed on as int8 (docs/cuda-notes.md, runs 23, 40, 42, 54). */
template <> struct mv_quant<q8_gpu> {
    static constexpr int V = 16, EARLY = 2;
    static constexpr bool SUMS = false; /* reads the inputs' group sums */
    /* Vector v of rows r0 and r1 (weights w, block scales s) times token t's inputs. */
    __device__ static void dot_vec(uint4 w0, uint4 w1, __half s0, __half s1, int v, int t,
                                   const mv_stage &st, float &acc0, float &acc1) {
        const int4 x = *reinterpret_cast<const int4 *>(st.xq + t * st.ld + v * V);
        int d0 = __dp4a((int)w0.x, x.x, 0), d1 = __dp4a((int)w1.x, x.x, 0);
        d0 = __dp4a((int)w0.y, x.y, d0), d1 = __dp4a((int)w1.y, x.y, d1);
        d0 = __dp4a((int)w0.z, x.z, d0), d1 = __dp4a((int)w1.z, x.z, d1);
        d0 = __dp4a((int)w0.w, x.w, d0), d1 = __dp4a((int)w1.w, x.w, d1);
        const float dx = st.xd[t * st.ng + v];
        acc0 += (float)d0 * __half2float(s0) * dx;
        acc1 += (float)d1 * __half2float(s1) * dx;
    }
};

/* Q4_0: a vector is one block of 32 nibbles, element j in the low nibble of
 * byte j and element j + 16 in the high one (w = d (q - 8)): the low
 * nibbles meet input group 2v, the high ones group 2v + 1. */
template <> struct mv_quant<q4_gpu> {
    static constexpr int V = 32, EARLY = 2;
    static constexpr bool SUMS = true; /* the offset of 8 times the group's sum */
    /* The dot product of 16 nibbles (shift 0: low, 4: high) with 16 int8 inputs. */
    __device__ static int dot_nibbles(uint4 w, int shift, int4 x) {
        const unsigned m = 0x0f0f0f0fu;
        int d = __dp4a((int)((w.x >> shift) & m), x.x, 0);
        d = __dp4a((int)((w.y >> shift) & m), x.y, d);
        d = __dp4a((int)((w.z >> shift) & m), x.z, d);
        return __dp4a((int)((w.w >> shift) & m), x.w, d);
    }
    __device__ static void dot_vec(uint4 w0, uint4 w1, __half s0, __half s1, int v, int t,
                                   const mv_stage &st, float &acc0, float &acc1) {
        const int4 *x = reinterpret_cast<const int4 *>(st.xq + t * st.ld + v * V);
        const int4 lo = x[0], hi = x[1];
        const int2 sum = *reinterpret_cast<const int2 *>(st.xsum + t * st.ng + 2 * v);
        const float2 dx = *reinterpret_cast<const float2 *>(st.xd + t * st.ng + 2 * v);
        const float lo0 = (float)(dot_nibbles(w0, 0, lo) - 8 * sum.x);
        const float hi0 = (float)(dot_nibbles(w0, 4, hi) - 8 * sum.y);
        const float lo1 = (float)(dot_nibbles(w1, 0, lo) - 8 * sum.x);
        const float hi1 = (float)(dot_nibbles(w1, 4, hi) - 8 * sum.y);
        acc0 += (lo0 * dx.x + hi0 * dx.y) * __half2float(s0);
        acc1 += (lo1 * dx.x + hi1 * dx.y) * __half2float(s1);
    }
};

/* The int8 step of a group whose largest magnitude is amax: d = amax / 127
 * and its inverse (0 for an all-zero group), q = v * inv rounded half away
 * from zero, as the CPU's llama.cpp-style activations. Every GPU path that
 * quantizes activations goes through it, so they agree bit for bit. */
struct act_step {
    float d, inv;
};
__device__ __forceinline__ act_step act_step_of(float amax) {
    const float d = amax / 127.0f;
    return {d, d != 0.0f ? 1.0f / d : 0.0f};
}
__device__ __forceinline__ int act_quantize(float v, act_step s) { return (int)roundf(v * s.inv); }
/* Column col of row t of an activation hand-off (mv_qact): x times the next
 * norm's weight g goes in as int8, held by lane col % MV_QGROUP of
 * MV_QGROUP consecutive lanes of one half-warp, all of which call; the
 * group's step, sum of int8 values and sum of squares of x (before g) are
 * found by shuffles within the half-warp and stored by its first lane. */
__device__ __forceinline__ void act_group_store(const mv_qact &q, int t, int col, float x,
                                                float g) {
    static_assert(MV_QGROUP == 16, "a group is one half-warp");
    const unsigned half = 0xffffu << (threadIdx.x & 16);
    const float v = x * g;
    float amax = fabsf(v), ss = x * x;
#pragma unroll
    for (int m = 1; m < MV_QGROUP; m *= 2) {
        amax = fmaxf(amax, __shfl_xor_sync(half, amax, m));
        ss += __shfl_xor_sync(half, ss, m);
    }
    const act_step st = act_step_of(amax);
    const int qv = act_quantize(v, st);
    int sum = qv;
#pragma unroll
    for (int m = 1; m < MV_QGROUP; m *= 2) sum += __shfl_xor_sync(half, sum, m);
    const int ng = q.ld / MV_QGROUP, group = col / MV_QGROUP;
    q.q[(int64_t)t * q.ld + col] = (int8_t)qv;
    if (col % MV_QGROUP == 0) {
        q.d[t * ng + group] = st.d;
        q.sum[t * ng + group] = sum;
        q.ss[t * ng + group] = ss;
    }
}

__device__ __forceinline__ int pack4(const int *q) {
    return (q[0] & 0xff) | (q[1] & 0xff) << 8 | (q[2] & 0xff) << 16 | (q[3] & 0xff) << 24;
}

/* Eight inputs v of a block of 32 shared by four consecutive lanes (part
 * 0..3 holds words part and part + 4 of the block, so v[0..3] lie in the
 * block's first group of 16 and v[4..7] in its second) as int8: each
 * group's step found by shuffles, stored into the block at q8 with the two
 * groups' d and sums at d_out[0..1], sum_out[0..1] (part 0). Every lane of
 * the warp calls it; lanes with `on` false (v zero) only take part in the
 * shuffles. */
__device__ __forceinline__ void quantize_quad(const float (&v)[8], bool on, int part, int8_t *q8,
                                              float *d_out, int *sum_out) {
    float amax[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 8; j++) amax[j / 4] = fmaxf(amax[j / 4], fabsf(v[j]));
    int q[8], sum[2] = {0, 0};
#pragma unroll
    for (int g = 0; g < 2; g++) {
        amax[g] = fmaxf(amax[g], __shfl_xor_sync(0xffffffffu, amax[g], 1));
        amax[g] = fmaxf(amax[g], __shfl_xor_sync(0xffffffffu, amax[g], 2));
        const act_step s = act_step_of(amax[g]);
#pragma unroll
        for (int j = 4 * g; j < 4 * g + 4; j++) sum[g] += q[j] = act_quantize(v[j], s);
        sum[g] += __shfl_xor_sync(0xffffffffu, sum[g], 1);
        sum[g] += __shfl_xor_sync(0xffffffffu, sum[g], 2);
        if (on && part == 0) {
            d_out[g] = s.d;
            sum_out[g] = sum[g];
        }
    }
    if (!on) return;
    int *q4 = reinterpret_cast<int *>(q8 + part * 4);
    q4[0] = pack4(q);
    q4[4] = pack4(q + 4);
}

#endif
