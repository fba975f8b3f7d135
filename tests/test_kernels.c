/* Every SIMD kernel against the scalar reference, on odd sizes that exercise
 * the vector tails, and the scalar GEMM tile against a double-precision
 * product. (The matmul and attention drivers are covered end to end by the
 * logits and engine tests, on every kernel set.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "harness.h"

static float *random_floats(size_t n, uint64_t *state) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(*state >> 40) / (double)(1ull << 24) - 0.5);
    }
    return p;
}

/* Relative to the size of the terms: sums of k products differ in rounding. */
static bool close_enough(float a, float b, int64_t k) {
    return fabsf(a - b) <= 1e-5f * (float)k * 0.25f + 1e-6f;
}

static void check_table(test_ctx *t, const cpu_kernels *simd) {
    const cpu_kernels *ref = &cpu_kernels_scalar;
    uint64_t rng = 42;
    static const int64_t ks[] = {1, 7, 8, 15, 16, 17, 33, 63, 64, 65, 172, 288};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t k = ks[ki];
        const int64_t rows = 13; /* not a multiple of any row tile */
        float *w = random_floats((size_t)(rows * k), &rng);
        float *x = random_floats((size_t)(64 * k), &rng);
        float a[64 * 13], b[64 * 13];

        CHECK(t, close_enough(simd->dot(w, x, k), ref->dot(w, x, k), k), "%s dot k=%lld",
              simd->name, (long long)k);
        for (int nt = 1; nt <= MATVEC_MAX_TOKENS; nt++) {
            simd->matvec(w, k, rows, x, nt, a, rows);
            ref->matvec(w, k, rows, x, nt, b, rows);
            for (int i = 0; i < nt * rows; i++)
                CHECK(t, close_enough(a[i], b[i], k), "%s matvec k=%lld tokens=%d i=%d: %g vs %g",
                      simd->name, (long long)k, nt, i, a[i], b[i]);
        }

        /* GEMM tiles: every row count up to the tile, a partial token block. */
        const int nt = simd->gemm_tokens - 3;
        float *block = malloc((size_t)(simd->gemm_tokens * k) * sizeof *block);
        cpu_pack_block(simd, x, k, nt, k, 0, block);
        for (int r = 1; r <= simd->gemm_rows; r++) {
            memset(a, 0, sizeof a);
            simd->gemm_tile(w, k, k, r, block, simd->gemm_tokens, nt, a, 1, rows);
            ref->matvec(w, k, r, x, 1, b, rows); /* token 0 */
            for (int row = 0; row < r; row++)
                CHECK(t, close_enough(a[row], b[row], k), "%s gemm k=%lld rows=%d row=%d",
                      simd->name, (long long)k, r, row);
            for (int tok = 0; tok < nt; tok++) { /* every token of the last row */
                float want = ref->dot(w + (r - 1) * k, x + tok * k, k);
                CHECK(t, close_enough(a[tok * rows + r - 1], want, k),
                      "%s gemm k=%lld rows=%d token=%d", simd->name, (long long)k, r, tok);
            }
            for (int i = nt * (int)rows; i < 64 * 13; i++)
                if (a[i] != 0.0f) {
                    CHECK(t, false, "%s gemm wrote past its %d tokens (element %d)", simd->name, nt,
                          i);
                    break;
                }
        }
        free(block);
        free(w);
        free(x);
    }
}

/* The tile as attention uses it: strided B rows, rows of C contiguous. */
static void check_strided_tile(test_ctx *t, const cpu_kernels *k) {
    uint64_t rng = 99;
    const int64_t depth = 37, a_stride = 41, b_stride = k->gemm_tokens + 5, rows = k->gemm_rows;
    float *a = random_floats((size_t)(rows * a_stride), &rng);
    float *b = random_floats((size_t)(depth * b_stride), &rng);
    for (int lanes = k->gemm_tokens; lanes >= 1; lanes -= k->gemm_tokens - 1) {
        float got[16 * 64] = {0}, want[16 * 64] = {0};
        const int64_t c_row = 70;
        k->gemm_tile(a, a_stride, depth, (int)rows, b, b_stride, lanes, got, c_row, 1);
        cpu_kernels_scalar.gemm_tile(a, a_stride, depth, (int)rows, b, b_stride, lanes, want, c_row,
                                     1);
        for (int64_t r = 0; r < rows; r++)
            for (int l = 0; l < 70; l++)
                CHECK(t, close_enough(got[r * c_row + l], want[r * c_row + l], depth),
                      "%s strided tile: lanes %d, row %lld, lane %d: %g vs %g", k->name, lanes,
                      (long long)r, l, got[r * c_row + l], want[r * c_row + l]);
    }
    free(a);
    free(b);
}

void test_kernels_simd_match_scalar(test_ctx *t) {
    static const char *const names[] = {"avx2", "avx512"};
    int tested = 0;
    for (size_t i = 0; i < 2; i++) {
        const cpu_kernels *k = cpu_kernels_select(names[i]);
        if (!k) continue; /* this CPU lacks it */
        check_table(t, k);
        check_strided_tile(t, k);
        tested++;
    }
#if defined(__x86_64__)
    /* Every x86-64 CPU CI and developers use has AVX2: not testing one is a failure. */
    __builtin_cpu_init();
    bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    CHECK(t, !has_avx2 || tested >= 1, "this CPU has AVX2 but no SIMD kernel set was selectable");
    CHECK(t, cpu_kernels_select("auto") != &cpu_kernels_scalar || !has_avx2,
          "auto picked scalar kernels on a CPU with AVX2");
#endif
    CHECK(t, cpu_kernels_select("auto") != NULL, "no kernels for auto");
    CHECK(t, cpu_kernels_select("scalar") == &cpu_kernels_scalar, "scalar must always exist");
    CHECK(t, cpu_kernels_select("sse9") == NULL, "unknown kernel name accepted");
}

void test_kernels_scalar_gemm(test_ctx *t) {
    /* The scalar GEMM tile too, since the SIMD tests lean on scalar matvec. */
    uint64_t rng = 7;
    const int64_t k = 19;
    const cpu_kernels *s = &cpu_kernels_scalar;
    float *w = random_floats((size_t)(s->gemm_rows * k), &rng),
          *x = random_floats((size_t)(8 * k), &rng);
    float *block = malloc((size_t)(s->gemm_tokens * k) * sizeof *block), out[64];
    cpu_pack_block(s, x, k, 5, k, 0, block);
    s->gemm_tile(w, k, k, s->gemm_rows, block, s->gemm_tokens, 5, out, 1, s->gemm_rows);
    for (int tok = 0; tok < 5; tok++)
        for (int r = 0; r < s->gemm_rows; r++) {
            double want = 0;
            for (int64_t i = 0; i < k; i++) want += (double)w[r * k + i] * x[tok * k + i];
            CHECK(t, fabs(out[tok * s->gemm_rows + r] - want) < 1e-5, "scalar gemm r=%d t=%d", r,
                  tok);
        }
    free(w);
    free(x);
    free(block);
}
