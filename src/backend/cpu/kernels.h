/* The CPU backend's inner loops, as a table per instruction set. The scalar
 * table is the reference the SIMD ones are tested against; kernels_simd.c is
 * one source compiled once per ISA (AVX2+FMA, AVX-512). */
#ifndef LLAMAC_BACKEND_CPU_KERNELS_H
#define LLAMAC_BACKEND_CPU_KERNELS_H

#include <stdint.h>

#define MATVEC_MAX_TOKENS 4

typedef struct cpu_kernels {
    const char *name;
    /* out[t * out_stride + r] = dot(w[r * k ..], x[t * k ..]) for r < rows,
     * t < n_tok <= MATVEC_MAX_TOKENS: one pass over the rows serves every token. */
    void (*matvec)(const float *w, int64_t k, int64_t rows, const float *x, int n_tok, float *out,
                   int64_t out_stride);
    /* The GEMM tile, C = A B for one block: for r < rows (<= gemm_rows) and
     * lanes t < n_lanes (<= gemm_tokens),
     *   c[r * c_row + t * c_lane] = sum over i < k of a[r * a_stride + i] * b[i * b_stride + t].
     * A's elements are broadcast; each B row must hold gemm_tokens readable
     * floats (lanes past n_lanes are computed and dropped). A matrix product
     * uses weight rows as A and a packed token block as B. */
    void (*gemm_tile)(const float *a, int64_t a_stride, int64_t k, int rows, const float *b,
                      int64_t b_stride, int n_lanes, float *c, int64_t c_row, int64_t c_lane);
    int gemm_rows;   /* A rows per tile */
    int gemm_tokens; /* B lanes per tile: tokens per packed block */
    float (*dot)(const float *a, const float *b, int64_t n);
} cpu_kernels;

extern const cpu_kernels cpu_kernels_scalar;
#if defined(__x86_64__)
extern const cpu_kernels cpu_kernels_avx2;
extern const cpu_kernels cpu_kernels_avx512;
#endif

/* The table for `simd` ("auto", "scalar", "avx2", "avx512"); NULL when this
 * machine or build cannot run it. */
const cpu_kernels *cpu_kernels_select(const char *simd);

/* Packs tokens [t0, t0 + gemm_tokens) of x (n_tok rows of k floats,
 * x_stride apart) as one block for gemm_tile; missing tokens are zeros. */
void cpu_pack_block(const cpu_kernels *kern, const float *x, int64_t x_stride, int64_t n_tok,
                    int64_t k, int64_t t0, float *block);

#endif
