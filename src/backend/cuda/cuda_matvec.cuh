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
}

/* What the block staged: the inputs as floats (normalised when asked) and,
 * for the quantized weight types, as int8 blocks of 32 with a scale and the
 * sum of the block's int8 values (Q4_0's offset of 8 needs it). */
struct mv_stage {
    const float *xs;  /* (NT, ld) */
    const int8_t *xq; /* (NT, ld) */
    const float *xd;  /* (NT, nb) */
    const int *xsum;  /* (NT, nb) */
    int ld, nb;
};

/* The per-type loader of the quantized kernels: V weights per 16-byte vector
 * and how a vector of two rows meets the staged int8 inputs (__dp4a). */
template <typename Q> struct mv_quant;

/* Q8_0: 16 int8 weights per vector, half a block. EARLY: batches a warp of
 * the separate kernel loads before it waits for the previous kernel: two
 * (a whole pair of 4096-input rows) measured +0.9 to +1.2% on 7B Q8_0 and
 * -0.8 to -1.6% on Q4_0, whose inputs' copies then queue behind them
 * (docs/cuda-notes.md, runs 23, 40, 41). */
template <> struct mv_quant<q8_gpu> {
    static constexpr int V = 16, EARLY = 2;
    /* Vector v of rows r0 and r1 (weights w, block scales s) times token t's inputs. */
    __device__ static void dot_vec(uint4 w0, uint4 w1, __half s0, __half s1, int v, int t,
                                   const mv_stage &st, float &acc0, float &acc1) {
        const int4 x = *reinterpret_cast<const int4 *>(st.xq + t * st.ld + v * V);
        int d0 = __dp4a((int)w0.x, x.x, 0), d1 = __dp4a((int)w1.x, x.x, 0);
        d0 = __dp4a((int)w0.y, x.y, d0), d1 = __dp4a((int)w1.y, x.y, d1);
        d0 = __dp4a((int)w0.z, x.z, d0), d1 = __dp4a((int)w1.z, x.z, d1);
        d0 = __dp4a((int)w0.w, x.w, d0), d1 = __dp4a((int)w1.w, x.w, d1);
        const float dx = st.xd[t * st.nb + v / 2];
        acc0 += (float)d0 * __half2float(s0) * dx;
        acc1 += (float)d1 * __half2float(s1) * dx;
    }
};

/* Q4_0: a vector is one block of 32 nibbles, element j in the low nibble of
 * byte j and element j + 16 in the high one; w = d (q - 8). */
template <> struct mv_quant<q4_gpu> {
    static constexpr int V = 32, EARLY = 1;
    __device__ static int dot_nibbles(uint4 w, int4 lo_x, int4 hi_x) {
        const unsigned m = 0x0f0f0f0fu;
        int d = __dp4a((int)(w.x & m), lo_x.x, 0);
        d = __dp4a((int)(w.y & m), lo_x.y, d);
        d = __dp4a((int)(w.z & m), lo_x.z, d);
        d = __dp4a((int)(w.w & m), lo_x.w, d);
        d = __dp4a((int)((w.x >> 4) & m), hi_x.x, d);
        d = __dp4a((int)((w.y >> 4) & m), hi_x.y, d);
        d = __dp4a((int)((w.z >> 4) & m), hi_x.z, d);
        return __dp4a((int)((w.w >> 4) & m), hi_x.w, d);
    }
    __device__ static void dot_vec(uint4 w0, uint4 w1, __half s0, __half s1, int v, int t,
                                   const mv_stage &st, float &acc0, float &acc1) {
        const int4 *x = reinterpret_cast<const int4 *>(st.xq + t * st.ld + v * V);
        const int4 lo = x[0], hi = x[1];
        const int offset = 8 * st.xsum[t * st.nb + v];
        const float dx = st.xd[t * st.nb + v];
        acc0 += (float)(dot_nibbles(w0, lo, hi) - offset) * __half2float(s0) * dx;
        acc1 += (float)(dot_nibbles(w1, lo, hi) - offset) * __half2float(s1) * dx;
    }
};

/* Eight inputs v of a block of 32 shared by four consecutive lanes (part
 * 0..3 holds words part and part + 4 of the block) as int8, the
 * llama.cpp-style activations: the block's scale d = max|x| / 127 found by
 * shuffles, q = v / d rounded half away from zero, stored into the block at
 * q8 with d and the block's sum (part 0). Every lane of the warp calls it;
 * lanes with `on` false (v zero) only take part in the shuffles. */
__device__ __forceinline__ void quantize_quad(const float (&v)[8], bool on, int part, int8_t *q8,
                                              float *d_out, int *sum_out) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(v[j]));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
    const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    int q[8], sum = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) sum += q[j] = (int)roundf(v[j] * inv);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (!on) return;
    int *q4 = reinterpret_cast<int *>(q8 + part * 4);
    q4[0] = (q[0] & 0xff) | (q[1] & 0xff) << 8 | (q[2] & 0xff) << 16 | (q[3] & 0xff) << 24;
    q4[4] = (q[4] & 0xff) | (q[5] & 0xff) << 8 | (q[6] & 0xff) << 16 | (q[7] & 0xff) << 24;
    if (part == 0) {
        *d_out = d;
        *sum_out = sum;
    }
}

#endif
