/* Reference kernels: plain loops in the order the math is written. Every SIMD
 * kernel is tested against these, so they stay simple rather than fast. */
#include "backend/cpu/kernels.h"

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void matvec_scalar(const float *w, int64_t k, int64_t rows, const float *x, int n_tok,
                          float *out, int64_t out_stride) {
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++)
            out[t * out_stride + r] = dot_scalar(w + r * k, x + t * k, k);
}

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
    .matvec = matvec_scalar,
    .gemm_tile = gemm_tile_scalar,
    .gemm_rows = 4,
    .gemm_tokens = SCALAR_GEMM_TOKENS,
    .dot = dot_scalar,
};
