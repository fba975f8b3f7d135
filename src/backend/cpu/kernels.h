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
    void (*matvec)(const float *w, int64_t k, int64_t rows, const float *x, int n_tok,
                   float *out, int64_t out_stride);
    /* The GEMM tile: for `rows` (<= gemm_rows) consecutive weight rows and the
     * gemm_tokens tokens of one packed block, out[t * out_stride + r] =
     * dot(w[r * k ..], token t), t < n_tok. `xpack` is a block packed as
     * xpack[kk * gemm_tokens + t] (zero-padded past the real tokens). */
    void (*gemm_tile)(const float *w, int64_t k, int rows, const float *xpack, int n_tok,
                      float *out, int64_t out_stride);
    int gemm_rows;   /* weight rows per tile */
    int gemm_tokens; /* tokens per packed block */
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n); /* y += a * x */
} cpu_kernels;

extern const cpu_kernels cpu_kernels_scalar;
#if defined(__x86_64__)
extern const cpu_kernels cpu_kernels_avx2;
extern const cpu_kernels cpu_kernels_avx512;
#endif

/* The table for `simd` ("auto", "scalar", "avx2", "avx512"); NULL when this
 * machine or build cannot run it. */
const cpu_kernels *cpu_kernels_select(const char *simd);

/* Packs tokens [t0, t0 + gemm_tokens) of x (n_tok x k, row-major) as one
 * block for gemm_tile; missing tokens are zeros. */
void cpu_pack_block(const cpu_kernels *kern, const float *x, int64_t n_tok, int64_t k,
                    int64_t t0, float *block);

#endif
