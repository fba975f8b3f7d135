/* SIMD kernels, written once with GCC/Clang vector extensions and compiled
 * once per instruction set (the Makefile passes -DSIMD_ISA_avx2 or
 * -DSIMD_ISA_avx512 with the matching -m flags). Row and token counts are
 * compile-time constants inside, so every accumulator stays in a register. */
#include <string.h>

#include "backend/cpu/kernels.h"

#if defined(SIMD_ISA_avx512)
#define VL        16 /* floats per vector */
#define GEMM_ROWS 12 /* 12 rows x 2 vectors = 24 accumulators of 32 zmm */
#define TABLE     cpu_kernels_avx512
#define NAME      "avx512"
#elif defined(SIMD_ISA_avx2)
#define VL        8
#define GEMM_ROWS 6 /* 6 rows x 2 vectors = 12 accumulators of 16 ymm */
#define TABLE     cpu_kernels_avx2
#define NAME      "avx2"
#else
#error "compile with -DSIMD_ISA_avx2 or -DSIMD_ISA_avx512"
#endif
#define GEMM_TOKENS     (2 * VL)
#define PREFETCH_FLOATS 2048 /* how far ahead the matvec prefetches weights */
#define INLINE          static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(VL * sizeof(float))));

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
#else
    return (vf){s, s, s, s, s, s, s, s};
#endif
}

/* Horizontal sum as a tree of half-width adds. */
INLINE float vsum(vf v) {
#if VL == 16
    typedef float v8 __attribute__((vector_size(32)));
    v8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    typedef float v8 __attribute__((vector_size(32)));
    v8 h = v;
#endif
    typedef float v4 __attribute__((vector_size(16)));
    v4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
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

/* One weight row against NT tokens. Rows are taken one after another, so each
 * thread streams one contiguous range of memory: interleaving several rows
 * measured ~20% slower (short streams defeat the hardware prefetcher). */
INLINE void matvec_row(const float *w, int64_t k, const float *x, float *out, int64_t os,
                       const int NT) {
    /* Two accumulators per token: one FMA chain alone caps a core near 16 B/cycle. */
    vf acc[MATVEC_MAX_TOKENS][2] = {{{0}}};
    int64_t i = 0;
    for (; i + 2 * VL <= k; i += 2 * VL) {
        /* Both cache lines 8 KiB ahead: +16% decode on the stories15M shape,
         * +7% on stories42M, neutral on stories110M (alternating runs). */
        __builtin_prefetch(w + i + PREFETCH_FLOATS, 0, 3);
        __builtin_prefetch(w + i + PREFETCH_FLOATS + 16, 0, 3);
        vf w0 = vload(w + i), w1 = vload(w + i + VL);
        for (int t = 0; t < NT; t++) {
            acc[t][0] += w0 * vload(x + t * k + i);
            acc[t][1] += w1 * vload(x + t * k + i + VL);
        }
    }
    if (i + VL <= k) {
        vf w0 = vload(w + i);
        for (int t = 0; t < NT; t++) acc[t][0] += w0 * vload(x + t * k + i);
        i += VL;
    }
    if (i < k) {
        vf w0 = vtail(w + i, k - i);
        for (int t = 0; t < NT; t++) acc[t][1] += w0 * vtail(x + t * k + i, k - i);
    }
    for (int t = 0; t < NT; t++) out[t * os] = vsum(acc[t][0] + acc[t][1]);
}

INLINE void matvec_tokens(const float *w, int64_t k, int64_t rows, const float *x, float *out,
                          int64_t os, const int NT) {
    for (int64_t r = 0; r < rows; r++) matvec_row(w + r * k, k, x, out + r, os, NT);
}

static void matvec_simd(const float *w, int64_t k, int64_t rows, const float *x, int n_tok,
                        float *out, int64_t os) {
    switch (n_tok) {
    case 1: matvec_tokens(w, k, rows, x, out, os, 1); break;
    case 2: matvec_tokens(w, k, rows, x, out, os, 2); break;
    case 3: matvec_tokens(w, k, rows, x, out, os, 3); break;
    case 4: matvec_tokens(w, k, rows, x, out, os, 4); break;
    }
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
    .matvec = matvec_simd,
    .gemm_tile = gemm_tile_simd,
    .gemm_rows = GEMM_ROWS,
    .gemm_tokens = GEMM_TOKENS,
    .dot = dot_simd,
};
