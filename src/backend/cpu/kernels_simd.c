/* SIMD kernels, written once with GCC/Clang vector extensions and compiled
 * once per instruction set (the Makefile passes -DSIMD_ISA_avx2,
 * -DSIMD_ISA_avx512 (+ -DSIMD_VNNI) or -DSIMD_ISA_neon with the matching -m
 * flags). Row and token counts are compile-time constants inside, so every
 * accumulator stays in a register. The weight dtype is a compile-time
 * parameter of one generic matvec; only loading a vector of weights (f32,
 * f16, bf16) or the integer dot product of one 32-element block (int8
 * types) differs per dtype and ISA. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "formats/tensor.h"

#if defined(SIMD_ISA_avx512)
#include <immintrin.h>
#define VL        16 /* floats per vector */
#define GEMM_ROWS 12 /* 12 rows x 2 vectors = 24 accumulators of 32 zmm */
#if defined(SIMD_VNNI)
#define TABLE cpu_kernels_avx512vnni
#define NAME  "avx512vnni"
#else
#define TABLE cpu_kernels_avx512
#define NAME  "avx512"
#endif
#elif defined(SIMD_ISA_avx2)
#include <immintrin.h>
#define VL        8
#define GEMM_ROWS 6 /* 6 rows x 2 vectors = 12 accumulators of 16 ymm */
#define TABLE     cpu_kernels_avx2
#define NAME      "avx2"
#elif defined(SIMD_ISA_neon)
#include <arm_neon.h>
#define VL        4
#define GEMM_ROWS 12 /* 12 rows x 2 vectors = 24 accumulators of 32 q registers */
#define TABLE     cpu_kernels_neon
#define NAME      "neon"
#else
#error "compile with -DSIMD_ISA_avx2, -DSIMD_ISA_avx512 or -DSIMD_ISA_neon"
#endif
#define GEMM_TOKENS (2 * VL)
/* How far ahead the matvecs ask for weights: float rows 4 KiB, int8 rows
 * 8 KiB, the best of 2-16 KiB for each on the Intel VM (docs/performance.md,
 * session 20; 8 KiB for all was tuned on an AMD VM before). */
#define PREFETCH_FLOAT_BYTES 4096
#define PREFETCH_INT8_BYTES  8192
#define INLINE               static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(VL * sizeof(float))));

/* Weights are read once per step, so on x86 most rows are asked into L2
 * (prefetcht1), not L1: on the Intel VM q8_0, runq and f32 decoded faster
 * that way (docs/performance.md, session 20). Q4_0, whose blocks take the
 * most instructions per byte, lost a little and still asks into L1, as
 * NEON does for all (not measured there). */
INLINE void prefetch_weights(const void *p, const lc_dtype DT) {
#if VL >= 8
    if (DT != LC_DTYPE_Q4_0) {
        __builtin_prefetch(p, 0, 2);
        return;
    }
#endif
    __builtin_prefetch(p, 0, 3);
}

INLINE vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v); /* an unaligned load */
    return v;
}

/* A broadcast. Not (vf){0} + s: that is a real add (0 + -0 is +0), which GCC
 * keeps as a vaddss in front of every broadcast in the GEMM loop. */
INLINE vf vsplat(float s) {
#if VL == 16
    return (vf){s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s};
#elif VL == 8
    return (vf){s, s, s, s, s, s, s, s};
#else
    return (vf){s, s, s, s};
#endif
}

/* Horizontal sum as a tree of half-width adds. */
INLINE float vsum(vf v) {
    typedef float v4 __attribute__((vector_size(16)));
#if VL == 16
    typedef float v8 __attribute__((vector_size(32)));
    v8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
#elif VL == 8
    v4 q = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#else
    v4 q = v;
#endif
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* The last n < VL elements of a and b, zero-padded to a full vector each, so
 * tails keep the vector order of summation instead of a serial scalar loop. */
INLINE vf vtail(const float *p, int64_t n) {
    float pad[VL] = {0};
    memcpy(pad, p, (size_t)n * sizeof *pad);
    return vload(pad);
}

static float dot_simd(const float *a, const float *b, int64_t n) {
    vf acc0 = {0}, acc1 = {0};
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        acc0 += vload(a + i) * vload(b + i);
        acc1 += vload(a + i + VL) * vload(b + i + VL);
    }
    for (; i + VL <= n; i += VL) acc0 += vload(a + i) * vload(b + i);
    if (i < n) acc1 += vtail(a + i, n - i) * vtail(b + i, n - i);
    return vsum(acc0 + acc1);
}

/* ---- weights as float vectors: f32, f16, bf16 --------------------------- */

/* Bytes of one weight element of a float-like dtype. */
#define ELEM_BYTES(DT) ((DT) == LC_DTYPE_F32 ? 4 : 2)

/* VL weights from element i of a row of dtype DT, as floats. f16 goes
 * through the hardware conversion (F16C, NEON fcvt); bf16 is the high half
 * of an f32, so widening and shifting by 16 is exact. */
INLINE vf wload(const void *w, int64_t i, const lc_dtype DT) {
    if (DT == LC_DTYPE_F32) return vload((const float *)w + i);
    const uint16_t *h = (const uint16_t *)w + i;
#if VL == 16
    __m256i raw = _mm256_loadu_si256((const __m256i *)h);
    if (DT == LC_DTYPE_F16) return (vf)_mm512_cvtph_ps(raw);
    return (vf)_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
#elif VL == 8
    __m128i raw = _mm_loadu_si128((const __m128i *)h);
    if (DT == LC_DTYPE_F16) return (vf)_mm256_cvtph_ps(raw);
    return (vf)_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
#else
    uint16x4_t raw = vld1_u16(h);
    if (DT == LC_DTYPE_F16) return (vf)vcvt_f32_f16(vreinterpret_f16_u16(raw));
    return (vf)vreinterpretq_f32_u32(vshll_n_u16(raw, 16));
#endif
}

/* The last n < VL weights from element i, zero-padded (a zero f16/bf16 is 0.0f). */
INLINE vf wtail(const void *w, int64_t i, int64_t n, const lc_dtype DT) {
    uint8_t pad[VL * 4] = {0};
    memcpy(pad, (const uint8_t *)w + i * ELEM_BYTES(DT), (size_t)(n * ELEM_BYTES(DT)));
    return wload(pad, 0, DT);
}

/* One weight row against NT tokens. Rows are taken one after another, so each
 * thread streams one contiguous range of memory: interleaving several rows
 * measured ~20% slower (short streams defeat the hardware prefetcher). */
INLINE void matvec_row_float(const void *w, int64_t k, const float *x, float *out, int64_t os,
                             const int NT, const lc_dtype DT) {
    /* Two accumulators per token: one FMA chain alone caps a core near 16 B/cycle. */
    vf acc[MATVEC_MAX_TOKENS][2] = {{{0}}};
    const char *wb = w;
    int64_t i = 0;
    for (; i + 2 * VL <= k; i += 2 * VL) {
        /* Both cache lines of the iteration ahead (with f16, or f32 on
         * AVX2, the second repeats the next iteration's first; harmless).
         * On the AMD VM, 8 KiB into L1 gave +16% decode on the stories15M
         * shape, +7% on stories42M, neutral on stories110M. */
        prefetch_weights(wb + i * ELEM_BYTES(DT) + PREFETCH_FLOAT_BYTES, DT);
        prefetch_weights(wb + i * ELEM_BYTES(DT) + PREFETCH_FLOAT_BYTES + 64, DT);
        vf w0 = wload(w, i, DT), w1 = wload(w, i + VL, DT);
        for (int t = 0; t < NT; t++) {
            acc[t][0] += w0 * vload(x + t * k + i);
            acc[t][1] += w1 * vload(x + t * k + i + VL);
        }
    }
    if (i + VL <= k) {
        vf w0 = wload(w, i, DT);
        for (int t = 0; t < NT; t++) acc[t][0] += w0 * vload(x + t * k + i);
        i += VL;
    }
    if (i < k) {
        vf w0 = wtail(w, i, k - i, DT);
        for (int t = 0; t < NT; t++) acc[t][1] += w0 * vtail(x + t * k + i, k - i);
    }
    for (int t = 0; t < NT; t++) out[t * os] = vsum(acc[t][0] + acc[t][1]);
}

/* ---- int8 weights: integer dot products of 32-element blocks ------------ */

/* A block's 32 weights as bytes: signed, except Q4_0's nibbles on x86 (0..15). */
#if VL >= 8
typedef __m256i vq; /* 32 int8 */
#else
typedef int8x16x2_t vq;
#endif

INLINE vq qload(const int8_t *p) {
#if VL >= 8
    return _mm256_loadu_si256((const __m256i *)p);
#else
    return (vq){{vld1q_s8(p), vld1q_s8(p + 16)}};
#endif
}

INLINE float f16_scale(uint16_t h) {
#if VL >= 8
    return _cvtsh_ss(h);
#else
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
#endif
}

/* The f16 scale of Q8_0 or Q4_0 block b, as stored. */
INLINE uint16_t wscale_f16(const void *w, int64_t b, const lc_dtype DT) {
    return DT == LC_DTYPE_Q8_0 ? ((const block_q8_0 *)w)[b].d : ((const block_q4_0 *)w)[b].d;
}

/* The scale of weight block b. */
INLINE float wscale(const void *w, int64_t b, const lc_dtype DT) {
    if (DT == LC_DTYPE_Q8_RUNQ) return ((const block_q8_runq *)w)[b].d;
    return f16_scale(wscale_f16(w, b, DT));
}

INLINE vq wblock(const void *w, int64_t b, const lc_dtype DT) {
    if (DT == LC_DTYPE_Q8_0) return qload(((const block_q8_0 *)w)[b].qs);
    if (DT == LC_DTYPE_Q8_RUNQ) return qload(((const block_q8_runq *)w)[b].qs);
    /* Q4_0: element j < 16 is the low nibble of byte j, j + 16 its high nibble.
     * x86 keeps the nibbles unsigned (0..15); block_dot takes the 8 off. */
    const block_q4_0 *blk = (const block_q4_0 *)w + b;
#if VL >= 8
    /* The 16 bytes in both halves, the high half's dwords shifted right by 4:
     * no lane-crossing insert, and the mask keeps each byte's own nibble. */
    __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk->qs));
    __m256i nib = _mm256_srlv_epi32(raw, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
    return _mm256_and_si256(nib, _mm256_set1_epi8(0x0f));
#else
    uint8x16_t raw = vld1q_u8(blk->qs);
    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
    int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
    return (vq){{vsubq_s8(lo, vdupq_n_s8(8)), vsubq_s8(hi, vdupq_n_s8(8))}};
#endif
}

/* Integer partial sums of w . x over one block, as float lanes whose sum is
 * the exact dot product. x86 multiplies unsigned by signed bytes (maddubs,
 * or VNNI's dpbusd): Q4_0's nibbles go in as they are, and the 8 they are
 * offset by comes off as -sum(x) added to each of the 8 lanes (neg_sum; with
 * VNNI as the accumulator's start, three instructions a block fewer than the
 * other types' way, which puts |w| in unsigned and moves w's sign onto x).
 * Pair sums stay below 2 * 128 * 127 < 2^15 because activations are in
 * [-127, 127]. */
#if VL >= 8
typedef __m256 vdot;
#else
typedef float32x4_t vdot;
#endif

#if VL >= 8
/* The same as 8 int32 lanes. */
INLINE __m256i block_isum(vq w, const block_q8_act *xb, const lc_dtype DT) {
    const vq x = qload(xb->qs);
    const bool nibbles = DT == LC_DTYPE_Q4_0;
    const __m256i bias = nibbles ? _mm256_set1_epi32(xb->neg_sum) : _mm256_setzero_si256();
    const __m256i u = nibbles ? w : _mm256_sign_epi8(w, w);
    const __m256i s = nibbles ? x : _mm256_sign_epi8(x, w);
#if defined(SIMD_VNNI)
    return _mm256_dpbusd_epi32(bias, u, s);
#else
    return _mm256_add_epi32(bias,
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* Lane j: the sum of s[j]'s 8 lanes (a transposing reduction; integer, so exact). */
INLINE __m256i isum8(const __m256i s[8]) {
    const __m256i s01 = _mm256_hadd_epi32(s[0], s[1]), s23 = _mm256_hadd_epi32(s[2], s[3]);
    const __m256i s45 = _mm256_hadd_epi32(s[4], s[5]), s67 = _mm256_hadd_epi32(s[6], s[7]);
    /* Each 128-bit half: the four sums of s[0..3] (s[4..7]) over that half's lanes. */
    const __m256i a = _mm256_hadd_epi32(s01, s23), b = _mm256_hadd_epi32(s45, s67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}
#endif

INLINE vdot block_dot(vq w, const block_q8_act *xb, const lc_dtype DT) {
#if VL >= 8
    return _mm256_cvtepi32_ps(block_isum(w, xb, DT));
#elif defined(__ARM_FEATURE_DOTPROD)
    const vq x = qload(xb->qs);
    /* NEON multiplies signed by signed: wblock gave Q4_0's weights as n - 8. */
    int32x4_t sum = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w.val[0], x.val[0]), w.val[1], x.val[1]);
    return vcvtq_f32_s32(sum);
#else
    const vq x = qload(xb->qs);
    int16x8_t p0 = vmull_s8(vget_low_s8(w.val[0]), vget_low_s8(x.val[0]));
    int16x8_t p1 = vmull_s8(vget_high_s8(w.val[0]), vget_high_s8(x.val[0]));
    int16x8_t p2 = vmull_s8(vget_low_s8(w.val[1]), vget_low_s8(x.val[1]));
    int16x8_t p3 = vmull_s8(vget_high_s8(w.val[1]), vget_high_s8(x.val[1]));
    int32x4_t sum = vpaddlq_s16(p0);
    sum = vpadalq_s16(sum, p1);
    sum = vpadalq_s16(sum, p2);
    sum = vpadalq_s16(sum, p3);
    return vcvtq_f32_s32(sum);
#endif
}

/* d_w * d_x in every lane. x86 widens the f16 scale already broadcast
 * (vpbroadcastw, vcvtph2ps): no scalar conversion to broadcast afterwards. */
INLINE vdot block_scale(const void *w, int64_t b, float xd, const lc_dtype DT) {
#if VL >= 8
    if (DT != LC_DTYPE_Q8_RUNQ) {
        const __m128i h = _mm_set1_epi16((short)wscale_f16(w, b, DT));
        return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(xd));
    }
    return _mm256_set1_ps(wscale(w, b, DT) * xd);
#else
    return vdupq_n_f32(wscale(w, b, DT) * xd);
#endif
}

INLINE vdot vdot_fma(vdot acc, vdot v, vdot s) {
#if VL >= 8
    return _mm256_fmadd_ps(v, s, acc);
#else
    return vfmaq_f32(acc, v, s);
#endif
}

INLINE float vdot_sum(vdot v) {
#if VL >= 8
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
#else
    return vaddvq_f32(v);
#endif
}

/* One row of runq int8 weights against NT quantized tokens, in runq.c's
 * order: each block's exact integer sum times d_w, times d_x added to one
 * float in turn (one fma: GCC contracted the same line so in our x86 build
 * before it was written out, and the golden text holds with it). The lanes'
 * own order changed rounding enough that greedy text left runq.c's after
 * 192 bytes on stories260K (its golden text is a test). x86 finds eight
 * blocks' integer sums together, reduced in one transpose instead of a
 * horizontal sum each; only the float chain stays serial. */
INLINE void matvec_row_runq(const void *w, int64_t k, const block_q8_act *x, float *out, int64_t os,
                            const int NT) {
    const lc_dtype DT = LC_DTYPE_Q8_RUNQ;
    const int64_t nb = k / QK;
    float val[MATVEC_MAX_TOKENS] = {0};
    int64_t b = 0;
#if VL >= 8
    for (; b + 8 <= nb; b += 8) {
        /* A prefetch beside each block's load: without them the Intel VM of
         * docs/performance.md streamed runq rows at 9 GB/s instead of 22
         * (its hardware prefetcher barely helps), and the group's five lines
         * asked in one burst ran 15-20% slower on one thread. */
        const char *ahead = (const char *)w + PREFETCH_INT8_BYTES;
        vq wq[8];
        for (int j = 0; j < 8; j++) {
            prefetch_weights(ahead + (b + j) * sizeof(block_q8_runq), DT);
            wq[j] = wblock(w, b + j, DT);
        }
        for (int t = 0; t < NT; t++) {
            const block_q8_act *xb = x + t * nb + b;
            __m256i s[8];
            for (int j = 0; j < 8; j++) s[j] = block_isum(wq[j], xb + j, DT);
            float isum[8];
            _mm256_storeu_ps(isum, _mm256_cvtepi32_ps(isum8(s)));
            for (int j = 0; j < 8; j++)
                val[t] = fmaf(isum[j] * wscale(w, b + j, DT), xb[j].d, val[t]);
        }
    }
#endif
    for (; b < nb; b++) {
        prefetch_weights((const char *)w + b * sizeof(block_q8_runq) + PREFETCH_INT8_BYTES, DT);
        const float d = wscale(w, b, DT);
        const vq wq = wblock(w, b, DT);
        for (int t = 0; t < NT; t++) {
            const block_q8_act *xb = x + t * nb + b;
            val[t] = fmaf(vdot_sum(block_dot(wq, xb, DT)) * d, xb->d, val[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t * os] = val[t];
}

/* One Q8_0 / Q4_0 weight row against NT quantized tokens: per block, the
 * integer dot product scaled by d_w * d_x, accumulated in f32 (two chains per
 * token, even and odd blocks, to hide the FMA latency). */
INLINE void matvec_row_int8(const void *w, int64_t k, const block_q8_act *x, float *out, int64_t os,
                            const int NT, const lc_dtype DT) {
    const int64_t nb = k / QK;
    if (DT == LC_DTYPE_Q8_RUNQ) {
        matvec_row_runq(w, k, x, out, os, NT);
        return;
    }
    const size_t bb = DT == LC_DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    /* Constant indices only: a runtime index (b & 1) kept acc in memory and
     * ran at a third of the speed. */
    vdot acc[MATVEC_MAX_TOKENS][2];
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = (vdot){0};
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        prefetch_weights((const char *)w + b * bb + PREFETCH_INT8_BYTES, DT);
        vq w0 = wblock(w, b, DT), w1 = wblock(w, b + 1, DT);
        for (int t = 0; t < NT; t++) {
            const block_q8_act *xb = x + t * nb + b;
            acc[t][0] = vdot_fma(acc[t][0], block_dot(w0, xb, DT), block_scale(w, b, xb[0].d, DT));
            acc[t][1] =
                vdot_fma(acc[t][1], block_dot(w1, xb + 1, DT), block_scale(w, b + 1, xb[1].d, DT));
        }
    }
    if (b < nb) {
        vq w0 = wblock(w, b, DT);
        for (int t = 0; t < NT; t++) {
            const block_q8_act *xb = x + t * nb + b;
            acc[t][0] = vdot_fma(acc[t][0], block_dot(w0, xb, DT), block_scale(w, b, xb->d, DT));
        }
    }
    for (int t = 0; t < NT; t++) {
#if VL >= 8
        out[t * os] = vdot_sum(_mm256_add_ps(acc[t][0], acc[t][1]));
#else
        out[t * os] = vdot_sum(vaddq_f32(acc[t][0], acc[t][1]));
#endif
    }
}

/* ---- activations to int8 blocks ----------------------------------------- */

/* Sets a block's scale from its largest magnitude, as quantize_row does;
 * false, with the block zeroed, when that is 0. */
INLINE bool set_block_scale(block_q8_act *blk, float max_abs) {
    blk->d = max_abs / 127.0f;
    if (blk->d != 0.0f) return true;
    memset(blk->qs, 0, sizeof blk->qs);
    blk->neg_sum = 0;
    return false;
}

#if VL >= 8
/* The reference's round_int8 on 8 lanes, as int32: NaN to 0, clamped to
 * [-127, 127] (before rounding: the bounds are whole), then truncated and
 * stepped away from zero where the dropped fraction is at least one half
 * (halves round away from zero, as runq.c's round()). Every step is exact. */
INLINE __m256i round_int8_lanes(__m256 v) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 dropped = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
    const __m256 away = _mm256_or_ps(_mm256_and_ps(v, sign_bit), _mm256_set1_ps(1.0f));
    const __m256 half_or_more = _mm256_cmp_ps(dropped, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(half_or_more, away)));
}

/* The scalar quantize_int8's arithmetic (max|x| / 127, x / d, round_int8)
 * on 8 lanes at a time; MAXPS with |x| first skips a NaN as fmaxf does. */
static void quantize_simd(const float *x, block_q8_act *out, int64_t k) {
    assert(k % QK == 0);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / QK; b++) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + b * QK + 8 * i);
            m = _mm256_max_ps(_mm256_andnot_ps(sign_bit, v[i]), m);
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        if (!set_block_scale(&out[b], _mm_cvtss_f32(h))) continue;
        const __m256 d = _mm256_set1_ps(out[b].d);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = round_int8_lanes(_mm256_div_ps(v[i], d));
        /* The packs work per 128-bit half: dword j of their result holds
         * elements 4 (j / 4) to 4 (j / 4) + 3 of q[j % 4]; the permutation
         * puts the 32 bytes back in element order. */
        __m256i bytes =
            _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].qs, bytes);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        out[b].neg_sum = -_mm_cvtsi128_si32(s4);
    }
}
#else
/* The reference's round_int8 on 4 lanes: NEON has roundf's rounding as an
 * instruction (vcvtaq: to nearest, halves away from zero, NaN to 0); the
 * clamp to [-127, 127] follows the conversion. */
INLINE int32x4_t round_int8_lanes(float32x4_t v) {
    return vminq_s32(vmaxq_s32(vcvtaq_s32_f32(v), vdupq_n_s32(-127)), vdupq_n_s32(127));
}

/* As the x86 version; vmaxnmq skips a NaN as fmaxf does. */
static void quantize_simd(const float *x, block_q8_act *out, int64_t k) {
    assert(k % QK == 0);
    for (int64_t b = 0; b < k / QK; b++) {
        float32x4_t v[8], m = vdupq_n_f32(0.0f);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(x + b * QK + 4 * i);
            m = vmaxnmq_f32(m, vabsq_f32(v[i]));
        }
        if (!set_block_scale(&out[b], vmaxnmvq_f32(m))) continue;
        const float32x4_t d = vdupq_n_f32(out[b].d);
        int32x4_t sum = vdupq_n_s32(0);
        for (int i = 0; i < 8; i += 2) {
            const int32x4_t q0 = round_int8_lanes(vdivq_f32(v[i], d));
            const int32x4_t q1 = round_int8_lanes(vdivq_f32(v[i + 1], d));
            sum = vaddq_s32(sum, vaddq_s32(q0, q1));
            const int16x8_t q16 = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
            vst1_s8(out[b].qs + 4 * i, vmovn_s16(q16));
        }
        out[b].neg_sum = -vaddvq_s32(sum);
    }
}
#endif

/* ---- the generic matvec ------------------------------------------------- */

INLINE void matvec_tokens(const void *w, int64_t k, int64_t rows, const void *x, float *out,
                          int64_t os, const int NT, const lc_dtype DT) {
    const int64_t row_bytes = dtype_row_bytes(DT, k);
    for (int64_t r = 0; r < rows; r++) {
        const char *row = (const char *)w + r * row_bytes;
        if (cpu_dtype_int8_input(DT))
            matvec_row_int8(row, k, x, out + r, os, NT, DT);
        else
            matvec_row_float(row, k, x, out + r, os, NT, DT);
    }
}

INLINE void matvec_dtype(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                         float *out, int64_t os, const lc_dtype DT) {
    switch (n_tok) {
    case 1: matvec_tokens(w, k, rows, x, out, os, 1, DT); break;
    case 2: matvec_tokens(w, k, rows, x, out, os, 2, DT); break;
    case 3: matvec_tokens(w, k, rows, x, out, os, 3, DT); break;
    case 4: matvec_tokens(w, k, rows, x, out, os, 4, DT); break;
    }
}

static void matvec_f32(const void *w, int64_t k, int64_t rows, const void *x, int n_tok, float *out,
                       int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_F32);
}
static void matvec_f16(const void *w, int64_t k, int64_t rows, const void *x, int n_tok, float *out,
                       int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_F16);
}
static void matvec_bf16(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                        float *out, int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_BF16);
}
static void matvec_q8_0(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                        float *out, int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_Q8_0);
}
static void matvec_q4_0(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                        float *out, int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_Q4_0);
}
static void matvec_q8_runq(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                           float *out, int64_t os) {
    matvec_dtype(w, k, rows, x, n_tok, out, os, LC_DTYPE_Q8_RUNQ);
}

/* Weights to floats for the GEMM tile: vector conversions for the
 * half-precision types, the reference for the rest (the tile's arithmetic
 * dominates; docs/performance.md). */
static void dequantize_simd(lc_dtype dtype, const void *in, float *out, int64_t n) {
    if (dtype != LC_DTYPE_F16 && dtype != LC_DTYPE_BF16) {
        dequantize_row(dtype, in, out, n);
        return;
    }
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v = dtype == LC_DTYPE_F16 ? wload(in, i, LC_DTYPE_F16) : wload(in, i, LC_DTYPE_BF16);
        memcpy(out + i, &v, sizeof v);
    }
    if (i < n) dequantize_row(dtype, (const uint16_t *)in + i, out + i, n - i);
}

/* R rows of A x GEMM_TOKENS lanes of B: per k, two B vectors are loaded and
 * each row's A element is broadcast into them. */
INLINE void gemm_block(const float *a, int64_t as, int64_t k, const float *b, int64_t bs,
                       int n_lanes, float *c, int64_t c_row, int64_t c_lane, const int R) {
    vf acc[GEMM_ROWS][2] = {{{0}}};
    for (int64_t i = 0; i < k; i++) {
        vf b0 = vload(b + i * bs), b1 = vload(b + i * bs + VL);
        for (int r = 0; r < R; r++) {
            vf x = vsplat(a[r * as + i]);
            acc[r][0] += x * b0;
            acc[r][1] += x * b1;
        }
    }
    /* Spill with constant indices (keeps acc in registers, no zeroing), then
     * write lane by lane so each lane's R values land side by side: for a
     * matrix product those are R neighbouring outputs of one token. */
    float tile[GEMM_ROWS][GEMM_TOKENS];
    for (int r = 0; r < R; r++) {
        memcpy(tile[r], &acc[r][0], sizeof acc[r][0]);
        memcpy(tile[r] + VL, &acc[r][1], sizeof acc[r][1]);
    }
    if (c_lane == 1) {
        for (int r = 0; r < R; r++) memcpy(c + r * c_row, tile[r], (size_t)n_lanes * sizeof(float));
    } else {
        for (int t = 0; t < n_lanes; t++)
            for (int r = 0; r < R; r++) c[t * c_lane + r * c_row] = tile[r][t];
    }
}

static void gemm_tile_simd(const float *a, int64_t as, int64_t k, int rows, const float *b,
                           int64_t bs, int n_lanes, float *c, int64_t c_row, int64_t c_lane) {
    switch (rows) {
#define CASE(R)                                                                                    \
    case R: gemm_block(a, as, k, b, bs, n_lanes, c, c_row, c_lane, R); break;
        CASE(1)
        CASE(2)
        CASE(3)
        CASE(4)
        CASE(5)
        CASE(6)
#if GEMM_ROWS == 12
        CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#endif
#undef CASE
    }
}

const cpu_kernels TABLE = {
    .name = NAME,
    .matvec = {[LC_DTYPE_F32] = matvec_f32,
               [LC_DTYPE_F16] = matvec_f16,
               [LC_DTYPE_BF16] = matvec_bf16,
               [LC_DTYPE_Q8_0] = matvec_q8_0,
               [LC_DTYPE_Q4_0] = matvec_q4_0,
               [LC_DTYPE_Q8_RUNQ] = matvec_q8_runq},
    .dequantize = dequantize_simd,
    .gemm_tile = gemm_tile_simd,
    .gemm_rows = GEMM_ROWS,
    .gemm_tokens = GEMM_TOKENS,
    .dot = dot_simd,
    .quantize = quantize_simd,
};
