/* Reference kernels: plain loops in the order the math is written. Every SIMD
 * kernel is tested against these, so they stay simple rather than fast. */
#include "backend/cpu/kernels.h"

#include <math.h>

#include "formats/tensor.h"

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* Weight element i of a half-precision row. */
static float half_at(lc_dtype dtype, const void *w, int64_t i) {
    const uint16_t h = ((const uint16_t *)w)[i];
    return dtype == LC_DTYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/* The 32 weights of block b as integers and the block's scale. */
static float int8_block(lc_dtype dtype, const void *w, int64_t b, int32_t q[QK]) {
    switch (dtype) {
    case LC_DTYPE_Q8_0: {
        const block_q8_0 *blk = (const block_q8_0 *)w + b;
        for (int i = 0; i < QK; i++) q[i] = blk->qs[i];
        return f16_to_f32(blk->d);
    }
    case LC_DTYPE_Q4_0: {
        const block_q4_0 *blk = (const block_q4_0 *)w + b;
        for (int j = 0; j < QK / 2; j++) {
            q[j] = (blk->qs[j] & 0xf) - 8;
            q[j + QK / 2] = (blk->qs[j] >> 4) - 8;
        }
        return f16_to_f32(blk->d);
    }
    default: {
        const block_q8_runq *blk = (const block_q8_runq *)w + b;
        for (int i = 0; i < QK; i++) q[i] = blk->qs[i];
        return blk->d;
    }
    }
}

/* One row against one token. Int8 types: an exact integer sum per block,
 * then sum = fma(isum * d_w, d_x, sum) block after block, in runq.c's order
 * (the SIMD tables keep it exactly for runq blocks; a test checks). */
static float row_dot(lc_dtype dtype, const void *w, const void *x, int64_t k) {
    float sum = 0.0f;
    if (dtype == LC_DTYPE_F32) return dot_scalar(w, x, k);
    if (!cpu_dtype_int8_input(dtype)) {
        for (int64_t i = 0; i < k; i++) sum += half_at(dtype, w, i) * ((const float *)x)[i];
        return sum;
    }
    const block_q8_act *xb = x;
    for (int64_t b = 0; b < k / QK; b++) {
        int32_t q[QK], isum = 0;
        const float d = int8_block(dtype, w, b, q);
        for (int i = 0; i < QK; i++) isum += q[i] * xb[b].qs[i];
        sum = fmaf((float)isum * d, xb[b].d, sum);
    }
    return sum;
}

static void matvec_scalar(lc_dtype dtype, const void *w, int64_t k, int64_t rows, const void *x,
                          int n_tok, float *out, int64_t out_stride) {
    const int64_t row_bytes = dtype_row_bytes(dtype, k);
    const int64_t x_bytes = cpu_dtype_int8_input(dtype) ? k / QK * (int64_t)sizeof(block_q8_act)
                                                        : k * (int64_t)sizeof(float);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++)
            out[t * out_stride + r] =
                row_dot(dtype, (const char *)w + r * row_bytes, (const char *)x + t * x_bytes, k);
}

#define MATVEC(DT, name)                                                                           \
    static void name(const void *w, int64_t k, int64_t rows, const void *x, int n_tok, float *out, \
                     int64_t os) {                                                                 \
        matvec_scalar(DT, w, k, rows, x, n_tok, out, os);                                          \
    }
MATVEC(LC_DTYPE_F32, matvec_f32)
MATVEC(LC_DTYPE_F16, matvec_f16)
MATVEC(LC_DTYPE_BF16, matvec_bf16)
MATVEC(LC_DTYPE_Q8_0, matvec_q8_0)
MATVEC(LC_DTYPE_Q4_0, matvec_q4_0)
MATVEC(LC_DTYPE_Q8_RUNQ, matvec_q8_runq)
#undef MATVEC

#define SCALAR_GEMM_TOKENS 8

static void gemm_tile_scalar(const float *a, int64_t a_stride, int64_t k, int rows, const float *b,
                             int64_t b_stride, int n_lanes, float *c, int64_t c_row,
                             int64_t c_lane) {
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n_lanes; t++) {
            float sum = 0.0f;
            for (int64_t i = 0; i < k; i++) sum += a[r * a_stride + i] * b[i * b_stride + t];
            c[r * c_row + t * c_lane] = sum;
        }
}

const cpu_kernels cpu_kernels_scalar = {
    .name = "scalar",
    .matvec = {[LC_DTYPE_F32] = matvec_f32,
               [LC_DTYPE_F16] = matvec_f16,
               [LC_DTYPE_BF16] = matvec_bf16,
               [LC_DTYPE_Q8_0] = matvec_q8_0,
               [LC_DTYPE_Q4_0] = matvec_q4_0,
               [LC_DTYPE_Q8_RUNQ] = matvec_q8_runq},
    .dequantize = dequantize_row,
    .gemm_tile = gemm_tile_scalar,
    .gemm_rows = 4,
    .gemm_tokens = SCALAR_GEMM_TOKENS,
    .dot = dot_scalar,
    .quantize = cpu_quantize_activations,
};
