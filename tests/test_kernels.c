/* Every SIMD kernel against the scalar reference, on odd sizes that exercise
 * the vector tails, and the scalar GEMM tile against a double-precision
 * product. (The matmul and attention drivers are covered end to end by the
 * logits and engine tests, on every kernel set.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "formats/quant.h"
#include "formats/tensor.h"
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
            simd->matvec[LC_DTYPE_F32](w, k, rows, x, nt, a, rows);
            ref->matvec[LC_DTYPE_F32](w, k, rows, x, nt, b, rows);
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
            ref->matvec[LC_DTYPE_F32](w, k, r, x, 1, b, rows); /* token 0 */
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

/* The kernel tables this machine can run, besides scalar. */
static int simd_tables(const cpu_kernels **out) {
    static const char *const names[] = {"avx2", "avx512", "avx512vnni", "neon"};
    int n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cpu_kernels *k = cpu_kernels_select(names[i]);
        bool seen = false;
        for (int j = 0; j < n; j++) seen |= out[j] == k;
        if (k && !seen) out[n++] = k;
    }
#if defined(__x86_64__)
    /* "avx512" is the VNNI table on a CPU with VNNI: the plain one too. */
    if (cpu_kernels_select("avx512vnni")) out[n++] = &cpu_kernels_avx512;
#endif
    return n;
}

void test_kernels_simd_match_scalar(test_ctx *t) {
    static const char *const names[] = {"avx2", "avx512", "neon"};
    int tested = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
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

/* ---- every weight dtype ---------------------------------------------------- */

/* A reference for one weight row: dequantize (the loader's reference code),
 * then a double-precision dot product with the activations as the kernel saw
 * them. Returns the dot product and, in *mass, sum |w_i x_i| (the scale for
 * rounding tolerances). */
static double reference_dot(lc_dtype dt, const void *wrow, const float *x, int64_t k,
                            double *mass) {
    float *wf = malloc((size_t)k * sizeof *wf);
    dequantize_row(dt, wrow, wf, k);
    double sum = 0, m = 0;
    for (int64_t i = 0; i < k; i++) {
        sum += (double)wf[i] * x[i];
        m += fabs((double)wf[i] * x[i]);
    }
    free(wf);
    *mass = m;
    return sum;
}

/* sum over blocks of (max|x_b| / 127 / 2) * sum |w_i| in the block: how far
 * quantizing the activations to int8 (|x - d q| <= d / 2) can move a dot. */
static double int8_input_bound(lc_dtype dt, const void *wrow, const float *x, int64_t k) {
    float *wf = malloc((size_t)k * sizeof *wf);
    dequantize_row(dt, wrow, wf, k);
    double bound = 0;
    for (int64_t b = 0; b < k / QK; b++) {
        double amax = 0, wsum = 0;
        for (int i = 0; i < QK; i++) {
            amax = fmax(amax, fabs(x[b * QK + i]));
            wsum += fabs(wf[b * QK + i]);
        }
        bound += amax / 127.0 / 2.0 * wsum * 1.0001;
    }
    free(wf);
    return bound;
}

static void check_dtype(test_ctx *t, const cpu_kernels *kern, lc_dtype dt, int64_t k, int64_t rows,
                        uint64_t *rng) {
    const bool int8 = cpu_dtype_int8_input(dt);
    const int64_t row_bytes = dtype_row_bytes(dt, k);
    CHECK(t, row_bytes > 0, "%s: row of %lld", lc_dtype_name(dt), (long long)k);
    if (row_bytes <= 0) return;
    float *wf = random_floats((size_t)(rows * k), rng);
    float *x = random_floats((size_t)(MATVEC_MAX_TOKENS * k), rng);
    for (int64_t i = 0; i < MATVEC_MAX_TOKENS * k; i += 5) x[i] *= 8; /* outliers in a block */
    uint8_t *w = malloc((size_t)(rows * row_bytes));
    for (int64_t r = 0; r < rows; r++) quantize_row(dt, wf + r * k, w + r * row_bytes, k);
    block_q8_act *xq = calloc((size_t)(MATVEC_MAX_TOKENS * (k / QK) + 1), sizeof *xq);
    float *xdq = malloc((size_t)(MATVEC_MAX_TOKENS * k) * sizeof *xdq); /* xq as floats */
    for (int tok = 0; tok < MATVEC_MAX_TOKENS && int8; tok++) {
        cpu_quantize_activations(x + tok * k, xq + tok * (k / QK), k);
        for (int64_t i = 0; i < k; i++) {
            const block_q8_act *xb = xq + tok * (k / QK) + i / QK;
            xdq[tok * k + i] = xb->d * (float)xb->qs[i % QK];
        }
    }
    const void *input = int8 ? (const void *)xq : (const void *)x;
    float got[MATVEC_MAX_TOKENS * 16], want[MATVEC_MAX_TOKENS * 16];
    for (int nt = 1; nt <= MATVEC_MAX_TOKENS; nt++) {
        kern->matvec[dt](w, k, rows, input, nt, got, rows);
        cpu_kernels_scalar.matvec[dt](w, k, rows, input, nt, want, rows);
        for (int tok = 0; tok < nt; tok++)
            for (int64_t r = 0; r < rows; r++) {
                const void *wrow = w + r * row_bytes;
                double mass;
                /* Against the exact product of what the kernel multiplied
                 * (int8 types: the quantized activations): float rounding only. */
                const double exact = reference_dot(dt, wrow, (int8 ? xdq : x) + tok * k, k, &mass);
                const double tol = 2e-6 * mass + 1e-6;
                const float g = got[tok * rows + r], s = want[tok * rows + r];
                CHECK(t, fabs(g - exact) <= tol && fabs(s - exact) <= tol,
                      "%s %s k=%lld tokens=%d row=%lld: kernel %g, scalar %g, exact %g (tol %g)",
                      kern->name, lc_dtype_name(dt), (long long)k, nt, (long long)r, g, s, exact,
                      tol);
                if (!int8) continue;
                /* Against the unquantized activations: within what quantizing
                 * them to int8 can move a dot product. */
                double mass_x;
                const double ideal = reference_dot(dt, wrow, x + tok * k, k, &mass_x);
                const double bound = int8_input_bound(dt, wrow, x + tok * k, k) + tol;
                CHECK(t, fabs(g - ideal) <= bound,
                      "%s %s k=%lld row=%lld: %g vs unquantized %g, beyond the int8 bound %g",
                      kern->name, lc_dtype_name(dt), (long long)k, (long long)r, g, ideal, bound);
            }
    }
    /* The GEMM path's conversion equals the reference dequantizer exactly. */
    float *a = malloc((size_t)(rows * k) * sizeof *a), *b = malloc((size_t)(rows * k) * sizeof *b);
    kern->dequantize(dt, w, a, rows * k);
    dequantize_row(dt, w, b, rows * k);
    CHECK(t, memcmp(a, b, (size_t)(rows * k) * sizeof *a) == 0, "%s dequantize %s k=%lld differs",
          kern->name, lc_dtype_name(dt), (long long)k);
    free(a);
    free(b);
    free(wf);
    free(x);
    free(w);
    free(xq);
    free(xdq);
}

void test_kernels_dtypes_match_reference(test_ctx *t) {
    const cpu_kernels *tables[8] = {&cpu_kernels_scalar};
    const int n = 1 + simd_tables(tables + 1);
    /* Ragged row counts (13, 3) and lengths that are not a multiple of any
     * vector width for the float types (blocks of 32 for the int8 ones). */
    static const int64_t ks[] = {32, 64, 96, 288, 768, 2080};
    uint64_t rng = 1234;
    for (int i = 0; i < n; i++)
        for (int dt = 0; dt < LC_DTYPE_COUNT; dt++) {
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                check_dtype(t, tables[i], (lc_dtype)dt, ks[ki], ki % 2 ? 3 : 13, &rng);
            if (!cpu_dtype_int8_input((lc_dtype)dt))
                for (int64_t k = 1; k <= 41; k += 5)
                    check_dtype(t, tables[i], (lc_dtype)dt, k, 7, &rng);
        }
    CHECK(t, n >= 2 || cpu_kernels_select("auto") == &cpu_kernels_scalar,
          "a SIMD table exists but none was tested");
}

/* runq blocks are added in runq.c's order by every table: each block's exact
 * integer sum times d_w, then fma'd with d_x into one float, block after
 * block. x86 finds eight blocks' sums at once and reduces them together; a
 * lane taken from the wrong block or the chain reordered changes the bits.
 * Rows of 3 blocks have no group of eight; 9, 15 and 65 leave a tail. */
void test_kernels_runq_block_order(test_ctx *t) {
    const cpu_kernels *tables[8] = {&cpu_kernels_scalar};
    const int n = 1 + simd_tables(tables + 1);
    static const int64_t ks[] = {3 * QK, 9 * QK, 15 * QK, 24 * QK, 65 * QK};
    enum { ROWS = 5 };
    uint64_t rng = 4321;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t k = ks[ki], nb = k / QK;
        float *wf = random_floats((size_t)(ROWS * k), &rng);
        float *x = random_floats((size_t)(MATVEC_MAX_TOKENS * k), &rng);
        /* Block scales 2^-6 to 2^6 apart, so the order of the float sum shows. */
        for (int64_t i = 0; i < ROWS * k; i++) wf[i] = ldexpf(wf[i], (int)((i / QK) * 5 % 13) - 6);
        block_q8_runq *w = malloc((size_t)(ROWS * nb) * sizeof *w);
        block_q8_act *xq = malloc((size_t)(MATVEC_MAX_TOKENS * nb) * sizeof *xq);
        for (int r = 0; r < ROWS; r++) quantize_row(LC_DTYPE_Q8_RUNQ, wf + r * k, w + r * nb, k);
        for (int tok = 0; tok < MATVEC_MAX_TOKENS; tok++)
            cpu_quantize_activations(x + tok * k, xq + tok * nb, k);
        float want[MATVEC_MAX_TOKENS * ROWS], got[MATVEC_MAX_TOKENS * ROWS];
        for (int tok = 0; tok < MATVEC_MAX_TOKENS; tok++)
            for (int r = 0; r < ROWS; r++) {
                float sum = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const block_q8_runq *wb = w + r * nb + b;
                    const block_q8_act *xb = xq + tok * nb + b;
                    int32_t isum = 0;
                    for (int i = 0; i < QK; i++) isum += wb->qs[i] * xb->qs[i];
                    sum = fmaf((float)isum * wb->d, xb->d, sum);
                }
                want[tok * ROWS + r] = sum;
            }
        for (int i = 0; i < n; i++)
            for (int nt = 1; nt <= MATVEC_MAX_TOKENS; nt++) {
                memset(got, 0xff, sizeof got); /* NaNs: an output not written fails */
                tables[i]->matvec[LC_DTYPE_Q8_RUNQ](w, k, ROWS, xq, nt, got, ROWS);
                int bad = 0;
                for (int tok = 0; tok < nt; tok++)
                    for (int r = 0; r < ROWS; r++)
                        bad +=
                            memcmp(&got[tok * ROWS + r], &want[tok * ROWS + r], sizeof(float)) != 0;
                CHECK(t, bad == 0, "%s q8_runq k=%lld tokens=%d: %d of %d outputs differ in bits",
                      tables[i]->name, (long long)k, nt, bad, nt * ROWS);
            }
        free(wf);
        free(x);
        free(w);
        free(xq);
    }
}

/* The activation blocks hold runq.c's quantization unchanged (the runq golden
 * text depends on it) plus the negated sum Q4_0's x86 dot product uses; every
 * table's quantize gives them bit for bit. */
void test_kernels_activation_blocks(test_ctx *t) {
    enum { K = 12 * QK };
    uint64_t rng = 99;
    float *x = random_floats(K, &rng);
    for (int i = 0; i < QK; i++) x[i] = 1.0f;       /* block 0 at +127 throughout */
    for (int i = QK; i < 2 * QK; i++) x[i] = -2.0f; /* block 1 at -127 */
    /* Block 2: d = 0.25 exactly, x / d = +-(j + 0.5): halves round away from zero. */
    float *b2 = x + 2 * QK;
    for (int i = 0; i < QK; i++) b2[i] = (i % 2 ? -0.25f : 0.25f) * ((float)(i % 16) + 0.5f);
    b2[7] = 31.75f; /* max|x| = 127 * 0.25 */
    b2[8] =
        0.25f * 0.49999997f; /* just below a half: 0, not 1 (adding 0.5 then truncating gives 1) */
    for (int i = 0; i < QK; i++) x[3 * QK + i] = 0.0f; /* block 3: all zero */
    /* Block 4: d = 1/127; these x divide to 4.5 and 87.5 exactly, while x
     * times 1 / d lands just below (llama.cpp's way, not runq.c's). */
    float *b4 = x + 4 * QK;
    b4[0] = 1.0f;
    b4[1] = 0x1.224488p-5f;
    b4[2] = 0x1.60c182p-1f;
    b4[3] = -0.0f;
    /* Block 5: a NaN, skipped by the max and 0 as a value, in the lane of the
     * block's largest magnitude (a max that kept the NaN there would lose it). */
    x[5 * QK + 5] = 5.0f;
    x[5 * QK + 29] = NAN;
    x[6 * QK + 9] = INFINITY; /* block 6: d = inf, every value 0 */
    for (int i = 0; i < QK; i++)
        x[7 * QK + i] = ldexpf((float)(5 * i), -149); /* block 7: denormals */
    block_q8_act want[K / QK];
    cpu_quantize_activations(x, want, K);
    block_q8_runq runq[K / QK];
    quantize_row(LC_DTYPE_Q8_RUNQ, x, runq, K);
    for (int b = 0; b < K / QK; b++)
        CHECK(t, want[b].d == runq[b].d && memcmp(want[b].qs, runq[b].qs, QK) == 0,
              "block %d: scale or values differ from quantize_row(Q8_RUNQ)", b);
    CHECK(t, want[0].neg_sum == -127 * QK && want[1].neg_sum == 127 * QK,
          "constant blocks: neg_sum %d and %d", want[0].neg_sum, want[1].neg_sum);
    CHECK(t,
          want[2].d == 0.25f && want[2].qs[7] == 127 && want[2].qs[0] == 1 && want[2].qs[1] == -2 &&
              want[2].qs[8] == 0,
          "halves: d %g, values %d %d %d %d", want[2].d, want[2].qs[7], want[2].qs[0],
          want[2].qs[1], want[2].qs[8]);
    CHECK(t, want[3].d == 0.0f && want[4].qs[1] == 5 && want[4].qs[2] == 88 && want[4].qs[3] == 0,
          "zero block d %g; block 4 values %d %d %d", want[3].d, want[4].qs[1], want[4].qs[2],
          want[4].qs[3]);
    CHECK(t, want[5].qs[29] == 0 && isinf(want[6].d) && want[7].qs[QK - 1] == 127,
          "NaN value %d, infinite block d %g, clamped denormal value %d", want[5].qs[29], want[6].d,
          want[7].qs[QK - 1]);
    const cpu_kernels *tables[8] = {&cpu_kernels_scalar};
    const int n = 1 + simd_tables(tables + 1);
    for (int i = 0; i < n; i++) {
        block_q8_act got[K / QK];
        memset(got, 0x55, sizeof got);
        tables[i]->quantize(x, got, K);
        for (int b = 0; b < K / QK; b++) {
            int32_t sum = 0;
            for (int j = 0; j < QK; j++) sum += got[b].qs[j];
            CHECK(t, memcmp(&got[b], &want[b], sizeof got[b]) == 0 && got[b].neg_sum == -sum,
                  "%s quantize, block %d: differs from the reference (d %g / %g, neg_sum %d / %d, "
                  "-sum %d)",
                  tables[i]->name, b, got[b].d, want[b].d, got[b].neg_sum, want[b].neg_sum, -sum);
        }
    }
    free(x);
}
