/* The CPU backend's inner loops, as a table per instruction set. The scalar
 * table is the reference the SIMD ones are tested against; kernels_simd.c is
 * one source compiled once per ISA (AVX2+FMA, AVX-512, AVX-512 with VNNI). */
#ifndef LLAMAC_BACKEND_CPU_KERNELS_H
#define LLAMAC_BACKEND_CPU_KERNELS_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "formats/quant.h"
#include "llamac.h"

#define MATVEC_MAX_TOKENS 4

/* Activations of a product with int8 weights (Q8_0, Q4_0, Q8_RUNQ) are
 * quantized once per product to these blocks: runq.c's scheme, d = max|x| / 127,
 * q = round(x / d), one f32 scale per 32 (d and qs exactly as
 * quantize_row(LC_DTYPE_Q8_RUNQ) writes them). neg_sum lets x86 multiply
 * Q4_0's nibbles 0..15 as they are stored: sum (n - 8) q = sum n q + 8 neg_sum. */
typedef struct block_q8_act {
    float d;
    int32_t neg_sum; /* -(qs[0] + ... + qs[31]) */
    int8_t qs[QK];
} block_q8_act;

static_assert(sizeof(block_q8_act) == 40, "activation blocks: scale, sum and 32 int8");

/* k floats (a multiple of QK) into k / QK activation blocks. */
void cpu_quantize_activations(const float *x, block_q8_act *out, int64_t k);

/* True when a product with weights of `dtype` takes block_q8_act inputs
 * rather than floats. */
static inline bool cpu_dtype_int8_input(lc_dtype dtype) {
    return dtype == LC_DTYPE_Q8_0 || dtype == LC_DTYPE_Q4_0 || dtype == LC_DTYPE_Q8_RUNQ;
}

/* out[t * out_stride + r] = dot(row r of w, token t of x) for r < rows and
 * t < n_tok <= MATVEC_MAX_TOKENS: one pass over the rows serves every token.
 * w holds rows of k elements of the table entry's dtype (dtype_row_bytes
 * apart); x holds n_tok tokens of k floats, or of k / 32 block_q8_act for the
 * int8 dtypes (cpu_dtype_int8_input). */
typedef void (*matvec_fn)(const void *w, int64_t k, int64_t rows, const void *x, int n_tok,
                          float *out, int64_t out_stride);

typedef struct cpu_kernels {
    const char *name;
    matvec_fn matvec[LC_DTYPE_COUNT]; /* per weight dtype; every entry is set */
    /* n floats of `dtype` (a whole number of blocks) into floats: a weight
     * tile for the GEMM, an embedding row. */
    void (*dequantize)(lc_dtype dtype, const void *in, float *out, int64_t n);
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
    /* cpu_quantize_activations, bit for bit: runs once per int8 product on
     * the calling thread while the workers wait. */
    void (*quantize)(const float *x, block_q8_act *out, int64_t k);
} cpu_kernels;

extern const cpu_kernels cpu_kernels_scalar;
#if defined(__x86_64__)
extern const cpu_kernels cpu_kernels_avx2;
extern const cpu_kernels cpu_kernels_avx512;
extern const cpu_kernels cpu_kernels_avx512vnni;
#elif defined(__aarch64__)
extern const cpu_kernels cpu_kernels_neon;
#endif

/* The table for `simd` ("auto", "scalar", "avx2", "avx512", "avx512vnni",
 * "neon"); NULL when this machine or build cannot run it. "avx512" is the
 * VNNI table when the CPU has VNNI. */
const cpu_kernels *cpu_kernels_select(const char *simd);

/* Packs tokens [t0, t0 + gemm_tokens) of x (n_tok rows of k floats,
 * x_stride apart) as one block for gemm_tile; missing tokens are zeros. */
void cpu_pack_block(const cpu_kernels *kern, const float *x, int64_t x_stride, int64_t n_tok,
                    int64_t k, int64_t t0, float *block);

#endif
