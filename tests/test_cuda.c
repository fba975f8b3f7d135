/* The CUDA backend against the CPU f32 reference, like llama.cpp's
 * test-backend-ops: every operation on random inputs with a tolerance per
 * dtype in normalised mean squared error (NMSE = sum (a - b)^2 / sum b^2),
 * then the whole forward, the golden text and device sampling. Skipped,
 * with the reason printed, where there is no GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_test.h"
#include "engine/engine.h"
#include "formats/quant.h"
#include "formats/tensor.h"
#include "golden.h"
#include "harness.h"
#include "hf_folder.h"
#include "llamac.h"

/* f32 differs only in summation order; f16 and bf16 weights carry 11 and 8
 * significant bits, so their relative squared error is ~2^-24 and ~2^-18. */
static double tolerance(lc_dtype t) {
    return t == LC_DTYPE_F32 ? 1e-10 : t == LC_DTYPE_F16 ? 1e-6 : 3e-5;
}

/* Quantized weights are compared with the CPU's own quantization
 * (src/formats/quant.c) dequantized, so what remains is the GPU's int8
 * activations: a step of max|x| / 127 per 16 inputs, NMSE ~ (2.1 / 127)^2 / 12. */
#define QUANT_ACTIVATION_TOLERANCE 1e-4

static double nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num; /* NaN stays NaN and fails every check */
}

static float *randn(size_t n, uint64_t *state) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        double u = 0;
        for (int k = 0; k < 4; k++) { /* sum of uniforms: roughly normal, never zero */
            *state = *state * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(*state >> 11) / 9007199254740992.0 - 0.5;
        }
        x[i] = (float)u;
    }
    return x;
}

static void ref_rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void check_matvec(test_ctx *t, lc_dtype wt, int rows, int cols, int n, bool norm,
                         bool swiglu, uint64_t *rng) {
    float *w = randn((size_t)rows * cols, rng), *x = randn((size_t)n * cols, rng);
    float *nw = randn((size_t)cols, rng), *xn = malloc((size_t)cols * sizeof *xn);
    float *w_ref = malloc((size_t)rows * cols * sizeof *w_ref); /* what the GPU's weights hold */
    if (dtype_info(wt)->block > 1) {
        void *q = malloc((size_t)dtype_row_bytes(wt, cols));
        for (int r = 0; r < rows; r++) {
            quantize_row(wt, w + (size_t)r * cols, q, cols);
            dequantize_row(wt, q, w_ref + (size_t)r * cols, cols);
        }
        free(q);
    } else {
        memcpy(w_ref, w, (size_t)rows * cols * sizeof *w);
    }
    const int out_cols = swiglu ? rows / 2 : rows;
    float *y = malloc((size_t)n * out_cols * sizeof *y),
          *ref = malloc((size_t)n * out_cols * sizeof *ref);
    lc_error err;
    lc_status st =
        cuda_test_matvec(wt, rows, cols, n, w, x, norm ? nw : NULL, 1e-5f, swiglu, y, &err);
    CHECK(t, st == LC_OK, "matvec: %s", err.msg);
    for (int k = 0; st == LC_OK && k < n; k++) {
        const float *xi = x + (size_t)k * cols;
        if (norm) {
            ref_rmsnorm(xi, nw, cols, 1e-5f, xn);
            xi = xn;
        }
        for (int r = 0; r < rows; r += 2) {
            double a = 0, b = 0;
            for (int c = 0; c < cols; c++) {
                a += (double)w_ref[(size_t)r * cols + c] * xi[c];
                b += (double)w_ref[(size_t)(r + 1) * cols + c] * xi[c];
            }
            if (swiglu) {
                ref[(size_t)k * out_cols + r / 2] = (float)(a / (1.0 + exp(-a)) * b);
            } else {
                ref[(size_t)k * out_cols + r] = (float)a;
                ref[(size_t)k * out_cols + r + 1] = (float)b;
            }
        }
    }
    if (st == LC_OK) {
        const double e = nmse(y, ref, (size_t)n * out_cols);
        /* silu(a) * b carries the errors of both rows (measured: 1.7e-4 for Q8_0) */
        const double tol = dtype_info(wt)->block > 1 ? QUANT_ACTIVATION_TOLERANCE * (swiglu ? 5 : 1)
                                                     : tolerance(wt);
        CHECK(t, e <= tol, "matvec %s (%d, %d) x%d norm %d swiglu %d: NMSE %g > %g",
              lc_dtype_name(wt), rows, cols, n, norm, swiglu, e, tol);
    }
    free(w), free(w_ref), free(x), free(nw), free(xn), free(y), free(ref);
}

/* Attention of one query over len keys, its blocks sized for a context of
 * n_ctx (its chunks per head; the keys spread over them from ATTN_SPLIT_FROM). */
static void check_attention(test_ctx *t, lc_dtype kv_t, int n_heads, int n_kv, int hd, int len,
                            int n_ctx, uint64_t *rng) {
    float *q = randn((size_t)n_heads * hd, rng), *k = randn((size_t)n_kv * len * hd, rng);
    float *v = randn((size_t)n_kv * len * hd, rng);
    float *out = malloc((size_t)n_heads * hd * sizeof *out),
          *ref = calloc((size_t)n_heads * hd, sizeof *ref);
    double *s = malloc((size_t)len * sizeof *s);
    lc_error err;
    lc_status st = cuda_test_attention(kv_t, n_heads, n_kv, hd, len, n_ctx, q, k, v, out, &err);
    CHECK(t, st == LC_OK, "attention: %s", err.msg);
    for (int h = 0; st == LC_OK && h < n_heads; h++) {
        const int g = h / (n_heads / n_kv);
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < len; j++) {
            double d = 0;
            for (int i = 0; i < hd; i++)
                d += (double)q[h * hd + i] * k[((size_t)g * len + j) * hd + i];
            s[j] = d / sqrt((double)hd);
            m = s[j] > m ? s[j] : m;
        }
        for (int j = 0; j < len; j++) sum += (s[j] = exp(s[j] - m));
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int j = 0; j < len; j++) o += s[j] * v[((size_t)g * len + j) * hd + i];
            ref[h * hd + i] = (float)(o / sum);
        }
    }
    if (st == LC_OK) {
        /* The cache rounds keys and values to f16, the same order as f16 weights. */
        double e = nmse(out, ref, (size_t)n_heads * hd);
        CHECK(t, e <= tolerance(kv_t), "attention %s heads %d/%d hd %d len %d ctx %d: NMSE %g > %g",
              lc_dtype_name(kv_t), n_heads, n_kv, hd, len, n_ctx, e, tolerance(kv_t));
    }
    free(q), free(k), free(v), free(out), free(ref), free(s);
}

static int cmp_double_desc(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* The spread greedy draw (sample_and_feed's) gives the first largest logit,
 * also with the maximum tied at an earlier and a later index, and leaves
 * its counter ready for the next draw. */
static void check_argmax_spread(test_ctx *t, int vocab, const float *logits, int best) {
    float *l = malloc((size_t)vocab * sizeof *l);
    int32_t tok[2];
    lc_error err;
    for (int tie = 0; tie < 3; tie++) {
        int expect = best;
        memcpy(l, logits, (size_t)vocab * sizeof *l);
        if (tie == 1 && best > 0) l[expect = best / 3] = l[best]; /* an earlier equal one */
        if (tie == 2) l[vocab - 1] = l[best];                     /* a later equal one */
        CHECK(t, cuda_test_argmax_spread(vocab, l, tok, &err) == LC_OK, "argmax: %s", err.msg);
        CHECK(t, tok[0] == expect && tok[1] == expect,
              "vocab %d tie %d: spread argmax %d then %d, expected %d", vocab, tie, tok[0], tok[1],
              expect);
    }
    free(l);
}

/* The spread greedy draw on small handmade rows: slices shorter than a
 * block or empty, the largest entry first or last, and rows with nothing
 * above -inf, which give token 0 as the one-block draw and the host do. */
static void check_argmax_spread_edges(test_ctx *t) {
    const int vocabs[] = {1, 5, 33, 2000};
    float l[2000];
    for (size_t n = 0; n < sizeof vocabs / sizeof vocabs[0]; n++) {
        const int vocab = vocabs[n];
        for (int i = 0; i < vocab; i++) l[i] = -1.0f - (float)(i % 7);
        l[0] = 2.0f;
        check_argmax_spread(t, vocab, l, 0);
        l[0] = -1.0f, l[vocab - 1] = 2.0f;
        check_argmax_spread(t, vocab, l, vocab - 1);
        for (int i = 0; i < vocab; i++) l[i] = -INFINITY;
        check_argmax_spread(t, vocab, l, 0);
        l[0] = NAN;
        check_argmax_spread(t, vocab, l, 0);
    }
}

/* The device sampler on random rows: the shared-memory and global-memory
 * paths draw the same tokens; greedy is the first argmax; every draw lies
 * inside its row's top-k and top-p nucleus (recomputed here in double). */
static void check_sample(test_ctx *t, int vocab, uint64_t *rng) {
    enum { ROWS = 6 };
    const float temperature[ROWS] = {0.0f, 1.0f, 0.8f, 1.0f, 0.7f, 1.3f};
    const float top_p[ROWS] = {1.0f, 1.0f, 0.9f, 1.0f, 0.5f, 0.95f};
    const int top_k[ROWS] = {0, 0, 0, 40, 5, 0};
    float *logits = randn((size_t)ROWS * vocab, rng), *coin = randn(ROWS, rng);
    double *p = malloc((size_t)vocab * sizeof *p), *sorted = malloc((size_t)vocab * sizeof *sorted);
    for (size_t i = 0; i < (size_t)ROWS * vocab; i++) logits[i] *= 6.0f; /* peaked rows */
    for (int i = 0; i < ROWS; i++) coin[i] = fabsf(coin[i]) - floorf(fabsf(coin[i]));
    int32_t in_smem[ROWS], in_global[ROWS];
    lc_error err;
    CHECK(t,
          cuda_test_sample(vocab, ROWS, logits, temperature, top_p, top_k, coin, true, in_smem,
                           &err) == LC_OK,
          "sample: %s", err.msg);
    CHECK(t,
          cuda_test_sample(vocab, ROWS, logits, temperature, top_p, top_k, coin, false, in_global,
                           &err) == LC_OK,
          "sample: %s", err.msg);
    for (int r = 0; r < ROWS; r++) {
        CHECK(t, in_smem[r] == in_global[r], "vocab %d row %d: shared %d, global %d", vocab, r,
              in_smem[r], in_global[r]);
        const float *l = logits + (size_t)r * vocab;
        const int tok = in_global[r];
        if (tok < 0 || tok >= vocab) {
            CHECK(t, false, "vocab %d row %d: token %d", vocab, r, tok);
            continue;
        }
        int best = 0, above = 0;
        for (int i = 1; i < vocab; i++) best = l[i] > l[best] ? i : best;
        if (temperature[r] == 0.0f) {
            CHECK(t, tok == best, "vocab %d: greedy %d, argmax %d", vocab, tok, best);
            check_argmax_spread(t, vocab, l, best);
            continue;
        }
        for (int i = 0; i < vocab; i++) above += l[i] > l[tok];
        CHECK(t, top_k[r] == 0 || above < top_k[r],
              "vocab %d row %d: %d logits above the draw (top-k %d)", vocab, r, above, top_k[r]);
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += p[i] = exp((l[i] - l[best]) / temperature[r]);
        memcpy(sorted, p, (size_t)vocab * sizeof *p);
        qsort(sorted, (size_t)vocab, sizeof *sorted, cmp_double_desc);
        const int k = top_k[r] > 0 ? top_k[r] : vocab;
        double kept = 0, cum = 0, floor_p = 0;
        for (int i = 0; i < k; i++) kept += sorted[i];
        for (int i = 0; i < k && cum < top_p[r] * kept * (1 - 1e-6); i++)
            cum += floor_p = sorted[i];
        CHECK(t, p[tok] >= floor_p * (1 - 1e-4), "vocab %d row %d: p %g below the nucleus's %g",
              vocab, r, p[tok] / sum, floor_p / sum);
    }
    free(logits), free(coin), free(p), free(sorted);
}

void test_cuda_ops(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    uint64_t rng = 42;
    for (int wt = 0; wt <= LC_DTYPE_BF16; wt++)
        for (int n = 1; n <= 4; n++) {
            check_matvec(t, (lc_dtype)wt, 96, 64, n, false, false, &rng);
            check_matvec(t, (lc_dtype)wt, 512, 1000, n, true, false, &rng);   /* ragged tail */
            check_matvec(t, (lc_dtype)wt, 344, 172, n, true, true, &rng);     /* stories260K's w2 */
            check_matvec(t, (lc_dtype)wt, 20000, 256, n, false, false, &rng); /* > one wave */
        }
    const lc_dtype quant[] = {LC_DTYPE_Q8_0, LC_DTYPE_Q4_0}; /* rows of whole blocks of 32 */
    for (int i = 0; i < 2; i++)
        for (int n = 1; n <= 4; n++) {
            check_matvec(t, quant[i], 96, 64, n, false, false, &rng);
            check_matvec(t, quant[i], 512, 1024, n, true, false, &rng);
            check_matvec(t, quant[i], 384, 192, n, true, true, &rng); /* llama2xs's w13 */
            check_matvec(t, quant[i], 20000, 256, n, false, false, &rng);
        }
    for (int kv = 0; kv < 2; kv++) {
        const lc_dtype kv_t = kv ? LC_DTYPE_F16 : LC_DTYPE_F32;
        const int lens[] = {1, 7, 256, 257, 1500, 4000};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            check_attention(t, kv_t, 8, 2, 64, lens[i], lens[i], &rng); /* grouped-query */
            /* Llama-2-7B's head size */
            check_attention(t, kv_t, 4, 4, 128, lens[i], lens[i], &rng);
        }
        /* 7B's context (16 chunks per head): one block below 128 keys, then 2-8
         * blocks of 64-256 keys, then up to 16 blocks of 256 */
        const int short_lens[] = {127, 128, 200, 1000, 3000};
        for (size_t i = 0; i < sizeof short_lens / sizeof short_lens[0]; i++)
            check_attention(t, kv_t, 4, 4, 128, short_lens[i], 4096, &rng);
        check_attention(t, kv_t, 8, 8, 8, 300, 300, &rng);    /* stories260K's head size */
        check_attention(t, kv_t, 6, 6, 48, 600, 600, &rng);   /* tiny-gutenberg-15M's: lanes idle */
        check_attention(t, kv_t, 4, 2, 24, 2000, 2000, &rng); /* hd / 8 not a power of two either */
    }
    check_sample(t, 32000, &rng);  /* the Llama 2 vocabulary: fits in shared memory */
    check_sample(t, 128256, &rng); /* Llama 3's: global memory only */
    check_sample(t, 1000, &rng);   /* spans shorter than a warp's 128-entry loads */
    check_argmax_spread_edges(t);
    /* rmsnorm and RoPE through the prefill kernels */
    float *x = randn(3 * 288, &rng), *w = randn(288, &rng), *y = malloc(3 * 288 * sizeof *y),
          *ref = malloc(3 * 288 * sizeof *ref);
    lc_error err;
    CHECK(t, cuda_test_rmsnorm(3, 288, x, w, 1e-5f, y, &err) == LC_OK, "rmsnorm: %s", err.msg);
    for (int r = 0; r < 3; r++) ref_rmsnorm(x + r * 288, w, 288, 1e-5f, ref + r * 288);
    CHECK(t, nmse(y, ref, 3 * 288) <= 1e-10, "rmsnorm NMSE %g", nmse(y, ref, 3 * 288));
    const int hd = 64, nh = 4, nkv = 2, pos = 1234;
    float *q = randn(nh * hd, &rng), *k = randn(nkv * hd, &rng);
    float *qo = malloc(nh * hd * sizeof *qo), *ko = malloc(nkv * hd * sizeof *ko);
    float *qr = malloc(nh * hd * sizeof *qr), *kr = malloc(nkv * hd * sizeof *kr);
    CHECK(t, cuda_test_rope(nh, nkv, hd, pos, 10000.0f, q, k, qo, ko, &err) == LC_OK, "rope: %s",
          err.msg);
    for (int v = 0; v < nh + nkv; v++) {
        const float *src = v < nh ? q + v * hd : k + (v - nh) * hd;
        float *dst = v < nh ? qr + v * hd : kr + (v - nh) * hd;
        for (int i = 0; i < hd; i += 2) {
            double freq = pow(10000.0, -(double)i / hd), a = pos * freq;
            dst[i] = (float)(src[i] * cos(a) - src[i + 1] * sin(a));
            dst[i + 1] = (float)(src[i] * sin(a) + src[i + 1] * cos(a));
        }
    }
    /* float angles at position 1234 lose ~1e-4 rad to rounding (as in llama2.c and transformers) */
    CHECK(t, nmse(qo, qr, nh * hd) <= 1e-7, "rope q NMSE %g", nmse(qo, qr, nh * hd));
    CHECK(t, nmse(ko, kr, nkv * hd) <= 1e-7, "rope k NMSE %g", nmse(ko, kr, nkv * hd));
    free(x), free(w), free(y), free(ref), free(q), free(k), free(qo), free(ko), free(qr), free(kr);
}

/* Logits of a whole sequence, n_batch entries per forward. */
static float *sequence_logits(test_ctx *t, const lc_model *m, const char *device, const char *dtype,
                              const lc_token *ids, int n, int n_batch) {
    const lc_engine_options o = {.device = device, .dtype = dtype};
    return golden_run(t, m, ids, n, &o, n_batch);
}

/* sequence_logits on the GPU, one token per forward, with the backend's
 * environment knob `var` set to `value` while the engine is created. */
static float *knob_logits(test_ctx *t, const lc_model *m, const char *dtype, const char *var,
                          const char *value, const lc_token *ids, int n) {
    setenv(var, value, 1);
    float *logits = sequence_logits(t, m, "cuda", dtype, ids, n, 1);
    unsetenv(var);
    return logits;
}

/* Whether an engine created with knob var=value says `marker` of itself
 * (the knob's path runs on this GPU and build); false, with a failed check,
 * where no engine can be created. */
static bool knob_engine_says(test_ctx *t, const lc_model *m, const char *dtype, const char *var,
                             const char *value, const char *marker, const char *what) {
    const lc_engine_options o = {.device = "cuda", .dtype = dtype};
    lc_engine *e;
    lc_error err;
    setenv(var, value, 1);
    const lc_status st = lc_engine_create(m, &o, &e, &err);
    unsetenv(var);
    if (st != LC_OK) {
        CHECK(t, false, "%s %s: %s", what, dtype, err.msg);
        return false;
    }
    const bool says = strstr(lc_engine_describe(e), marker) != NULL;
    lc_engine_free(e);
    return says;
}

/* The products' quantized hand-off: the int8 groups a producer writes equal
 * its own float outputs quantized here, the hand-off leaves those floats
 * untouched (also with SwiGLU's paired walk, and on a grid of two blocks
 * where each block takes many groups), and a consumer reading it computes
 * what it computes from the floats (normed: up to the order of the sum of
 * squares; unnormed: the same int8 inputs, the same result). */
void test_cuda_handoff(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    const lc_dtype quant[] = {LC_DTYPE_Q8_0, LC_DTYPE_Q4_0};
    for (int i = 0; i < 2; i++)
        for (int swiglu = 0; swiglu < 2; swiglu++)
            for (int n = 1; n <= 4; n++)
                for (int blocks = 0; blocks <= 2; blocks += 2) {
                    int q_bad = -1;
                    double ss_err = 1, out_diff = 1, nmse_c = 1;
                    lc_error err;
                    const lc_status st = cuda_test_handoff(quant[i], swiglu, n, blocks, &q_bad,
                                                           &ss_err, &out_diff, &nmse_c, &err);
                    CHECK(t, st == LC_OK, "hand-off: %s", err.msg);
                    if (st) return;
                    const char *name = lc_dtype_name(quant[i]);
                    CHECK(t, q_bad == 0,
                          "%s swiglu %d x%d grid %d: %d int8 values/scales/sums differ", name,
                          swiglu, n, blocks, q_bad);
                    CHECK(t, ss_err <= 1e-5, "%s swiglu %d x%d: sum of squares off by %g", name,
                          swiglu, n, ss_err);
                    CHECK(t, out_diff == 0, "%s swiglu %d x%d grid %d: outputs differ by %g", name,
                          swiglu, n, blocks, out_diff);
                    CHECK(t, nmse_c <= (swiglu ? 0 : 1e-12),
                          "%s swiglu %d x%d: consumer NMSE %g between hand-off and floats", name,
                          swiglu, n, nmse_c);
                }
}

/* Positions of n (rows vocab apart) where a and b pick the same argmax. */
static int argmax_agreement(const float *a, const float *b, int n, int32_t vocab) {
    int agree = 0;
    for (int p = 0; p < n; p++) {
        const float *ra = a + (size_t)p * vocab, *rb = b + (size_t)p * vocab;
        int ia = 0, ib = 0;
        for (int v = 1; v < vocab; v++) {
            ia = ra[v] > ra[ia] ? v : ia;
            ib = rb[v] > rb[ib] ? v : ib;
        }
        agree += ia == ib;
    }
    return agree;
}

/* Two GPU paths' logits (n positions) that differ only by an int8 rounding
 * flipped now and then: NMSE at most 1e-4, the same argmax at 97% of the
 * positions or more. */
static void check_rounding_close(test_ctx *t, const float *a, const float *b, int n, int32_t vocab,
                                 const char *label) {
    const double e = nmse(a, b, (size_t)n * vocab);
    const int agree = argmax_agreement(a, b, n, vocab);
    CHECK(t, e <= 1e-4, "%s NMSE %g", label, e);
    CHECK(t, agree >= n * 97 / 100, "%s: argmax agrees at %d of %d", label, agree, n);
    printf("     (%s NMSE %.3g, argmax %d of %d)\n", label, e, agree, n);
}

/* n token ids: BOS, then a fixed walk over the vocabulary. */
static lc_token *walk_ids(int n, int32_t vocab) {
    lc_token *ids = malloc((size_t)n * sizeof *ids);
    if (ids)
        for (int i = 0; i < n; i++) ids[i] = i == 0 ? 1 : (lc_token)((i * 7919) % vocab);
    return ids;
}

/* The two models of the one-token-per-forward GPU tests: 0 a trained
 * grouped-query model (head_dim 8), 1 stories42M's shape with random weights
 * (head_dim 64), written to `big` by lc_mkmodel when mi is 1. NULL (with a
 * failed check) when it cannot be had. */
static lc_model *walk_model(test_ctx *t, int mi, const char *big) {
    if (mi == 0) return load_shared_model(t, "models/llama2xs-tinystories.bin");
    lc_model *m = NULL;
    lc_error err;
    if (lc_mkmodel("stories42M", big, &(lc_mkmodel_options){.seed = 7}, &err) ||
        lc_model_load(big, &m, &err))
        CHECK(t, false, "%s: %s", big, err.msg);
    return m;
}

/* The full forward against the CPU, per dtype, batched (cuBLAS) and one
 * entry at a time (the graph), over the whole context of a trained
 * grouped-query model. */
void test_cuda_forward_matches_cpu(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    lc_model *m = load_shared_model(t, "models/llama2xs-tinystories.bin");
    if (!m) return;
    const int32_t vocab = lc_model_config(m)->vocab_size;
    const int n = 256;
    lc_token ids[256];
    for (int i = 0; i < n; i++) ids[i] = i == 0 ? 1 : (lc_token)((i * 7919) % vocab);
    float *cpu = sequence_logits(t, m, "cpu", "auto", ids, n, 512);
    static const char *const dtypes[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    /* f16 / bf16 weights and an f16 cache through 5 layers: rounding of 2^-11 / 2^-8 per
     * element, squared, times a few for accumulation through the layers; Q8_0 and Q4_0
     * weights (and int8 activations): a step of max|w| / 127 and max|w| / 8 per 32 */
    /* measured on the H200 (docs/cuda-notes.md): Q8_0 NMSE 1.0e-3..1.3e-3 with the argmax
     * kept at 88-90%; Q4_0 7.5e-2, 29%: this 0.28M-parameter model has 64-wide rows, and
     * the ids are arbitrary, so its logits are flat and 4-bit weights reorder them */
    static const double tol[] = {1e-8, 1e-4, 1e-3, 4e-3, 2e-1};
    static const int agree_pct[] = {97, 97, 97, 80, 20};
    for (int d = 0; cpu && d < 5; d++)
        for (int n_batch = 1; n_batch <= 512; n_batch *= 512) {
            float *gpu = sequence_logits(t, m, "cuda", dtypes[d], ids, n, n_batch);
            if (!gpu) continue;
            double e = nmse(gpu, cpu, (size_t)n * vocab);
            const int agree = argmax_agreement(gpu, cpu, n, vocab);
            CHECK(t, e <= tol[d], "%s batch %d: NMSE %g > %g", dtypes[d], n_batch, e, tol[d]);
            CHECK(t, agree >= n * agree_pct[d] / 100, "%s batch %d: argmax agrees at %d of %d",
                  dtypes[d], n_batch, agree, n);
            if (d >= 3)
                printf("     (%s batch %d: NMSE %.3g, argmax agrees at %d of %d)\n", dtypes[d],
                       n_batch, e, agree, n);
            free(gpu);
        }
    free(cpu);
    lc_model_free(m);
}

/* A GGUF written by `quantize` (Q8_0 blocks from the CPU's quantizer) runs on
 * the GPU as stored and gives the logits of the f32 checkpoint quantized at
 * upload by the GPU's own quantizer: the two quantizers agree. */
void test_cuda_gguf_quantized(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    char src[1024], tok[1024], out[64];
    shared_path(src, sizeof src, "models/llama2xs-tinystories.bin");
    shared_path(tok, sizeof tok, "models/tok512.bin");
    snprintf(out, sizeof out, "/tmp/llamac-test-%d-q8.gguf", (int)getpid());
    lc_quantize_params qp = {src, tok, out, "q8_0", NULL};
    lc_error err;
    CHECK(t, lc_quantize(&qp, NULL, NULL, &err) == LC_OK, "quantize: %s", err.msg);
    lc_model *f32 = load_shared_model(t, "models/llama2xs-tinystories.bin"), *q8 = NULL;
    CHECK(t, lc_model_load(out, &q8, &err) == LC_OK, "loading %s: %s", out, err.msg);
    remove(out);
    if (!f32 || !q8) {
        if (f32) lc_model_free(f32);
        if (q8) lc_model_free(q8);
        return;
    }
    const int32_t vocab = lc_model_config(f32)->vocab_size;
    enum { N = 64 };
    lc_token ids[N];
    for (int i = 0; i < N; i++) ids[i] = i == 0 ? 1 : (lc_token)((i * 7919) % vocab);
    float *a = sequence_logits(t, q8, "cuda", "auto", ids, N, 1);
    float *b = sequence_logits(t, f32, "cuda", "q8_0", ids, N, 1);
    if (a && b) {
        const double e = nmse(a, b, (size_t)N * vocab);
        CHECK(t, e <= 1e-6, "GGUF q8_0 vs f32 quantized on the GPU: NMSE %g", e);
    }
    free(a), free(b);
    lc_model_free(f32);
    lc_model_free(q8);
}

typedef struct text_sink {
    const lc_tokenizer *tok;
    lc_detokenizer dt;
    char buf[8192];
    size_t len;
} text_sink;

/* A decoding step as one kernel (Q8_0 / Q4_0 on Hopper, cuda_step.cu,
 * LLAMAC_CUDA_STEP=1) computes what the separate kernels compute when they
 * stage floats too (LLAMAC_CUDA_HANDOFF=0): the same int8 inputs and every
 * sum in the same order, so the logits of a whole sequence, one token per
 * forward, agree to rounding (measured: equal). With the hand-off the
 * norm's sum of squares comes in another order, and an ulp there flips an
 * int8 rounding now and then (NMSE 1e-7 to 1e-4 over 600 positions). */
void test_cuda_step_kernel(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    /* A trained grouped-query model (head_dim 8), and stories42M's shape with
     * random weights at 600 positions: several tiles per block, and
     * attention over several chunks of keys merged inside the kernel. */
    char big[64];
    snprintf(big, sizeof big, "/tmp/llamac-step-%d.bin", (int)getpid());
    for (int mi = 0; mi < 2; mi++) {
        lc_model *m = walk_model(t, mi, big);
        if (!m) continue;
        const int32_t vocab = lc_model_config(m)->vocab_size;
        const int n = mi == 0 ? 200 : 600;
        lc_token *ids = walk_ids(n, vocab);
        char what[16];
        snprintf(what, sizeof what, "model %d", mi);
        for (int d = 0; ids && d < 2; d++) {
            static const char *const dtypes[] = {"q8_0", "q4_0"};
            const bool fused = knob_engine_says(t, m, dtypes[d], "LLAMAC_CUDA_STEP", "1",
                                                "one kernel per token", what);
            lc_error why;
            if (!fused && cuda_test_step_supported(&why) != LC_OK) {
                printf("     (model %d %s: %s)\n", mi, dtypes[d], why.msg);
                continue;
            }
            CHECK(t, fused, "model %d %s: the step kernel runs here but was not used", mi,
                  dtypes[d]);
            float *one = knob_logits(t, m, dtypes[d], "LLAMAC_CUDA_STEP", "1", ids, n);
            float *sep = knob_logits(t, m, dtypes[d], "LLAMAC_CUDA_HANDOFF", "0", ids, n);
            if (one && sep) {
                const double e2 = nmse(one, sep, (size_t)n * vocab);
                CHECK(t, e2 <= 1e-10, "model %d %s: step kernel vs separate kernels NMSE %g", mi,
                      dtypes[d], e2);
                printf("     (model %d %s: step kernel vs separate kernels NMSE %.3g)\n", mi,
                       dtypes[d], e2);
            }
            free(one);
            free(sep);
        }
        free(ids);
        lc_model_free(m);
    }
    unlink(big);
}

/* The whole decoding step with the products' inputs handed on quantized
 * (the default for Q8_0 / Q4_0) against the same kernels staging floats
 * (LLAMAC_CUDA_HANDOFF=0): the int8 inputs are the same values, only the
 * norm's sum of squares comes in another order, so an ulp flips an int8
 * rounding now and then. A trained grouped-query model (head_dim 8: the
 * attention output stays floats) and stories42M's shape with random weights
 * (head_dim 64: attention hands on int8 too), one token per forward. */
void test_cuda_handoff_forward(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    char big[64];
    snprintf(big, sizeof big, "/tmp/llamac-handoff-%d.bin", (int)getpid());
    for (int mi = 0; mi < 2; mi++) {
        lc_model *m = walk_model(t, mi, big);
        if (!m) continue;
        const int32_t vocab = lc_model_config(m)->vocab_size;
        const int n = mi == 0 ? 200 : 300;
        lc_token *ids = walk_ids(n, vocab);
        for (int d = 0; ids && d < 2; d++) {
            static const char *const dtypes[] = {"q8_0", "q4_0"};
            float *handed = sequence_logits(t, m, "cuda", dtypes[d], ids, n, 1);
            float *floats = knob_logits(t, m, dtypes[d], "LLAMAC_CUDA_HANDOFF", "0", ids, n);
            if (handed && floats) {
                char label[64];
                snprintf(label, sizeof label, "model %d %s: hand-off vs floats", mi, dtypes[d]);
                check_rounding_close(t, handed, floats, n, vocab, label);
            }
            free(handed);
            free(floats);
        }
        free(ids);
        lc_model_free(m);
    }
    unlink(big);
}

/* Logits of model m (n positions of `ids`, one token per forward) with
 * attention inside the qkv kernel (LLAMAC_CUDA_QKV_ATTN=1) against the
 * separate qkv and attention kernels, and for q8_0 against the CPU's f32:
 * the scores come as sums of 16-dim shares and the outputs leave as wo's
 * int8 groups, so an ulp flips an int8 rounding now and then, and a random
 * model's logits move with it (7B's over 32 layers: docs/cuda-notes.md). */
static void check_qkv_attention(test_ctx *t, const lc_model *m, const char *what) {
    const int n = 120; /* positions the short-context graph covers: below 128 keys */
    const int32_t vocab = lc_model_config(m)->vocab_size;
    lc_token *ids = walk_ids(n, vocab);
    float *cpu = ids ? sequence_logits(t, m, "cpu", "auto", ids, n, 512) : NULL;
    for (int d = 0; cpu && d < 2; d++) {
        static const char *const dtypes[] = {"q8_0", "q4_0"};
        if (!knob_engine_says(t, m, dtypes[d], "LLAMAC_CUDA_QKV_ATTN", "1",
                              "attention in the qkv kernel", what)) {
            /* the engine said why on stderr: not on this GPU or build */
            printf("     (%s %s: attention in the qkv kernel does not run here)\n", what,
                   dtypes[d]);
            continue;
        }
        float *one = knob_logits(t, m, dtypes[d], "LLAMAC_CUDA_QKV_ATTN", "1", ids, n);
        float *sep = knob_logits(t, m, dtypes[d], "LLAMAC_CUDA_QKV_ATTN", "0", ids, n);
        if (one && sep) {
            char label[128];
            snprintf(label, sizeof label, "%s %s: qkv-attention vs separate kernels", what,
                     dtypes[d]);
            check_rounding_close(t, one, sep, n, vocab, label);
        }
        if (one && sep && d == 0) { /* as close to the f32 logits as the separate kernels */
            const double ec = nmse(one, cpu, (size_t)n * vocab);
            const double es = nmse(sep, cpu, (size_t)n * vocab);
            CHECK(t, ec <= 1.5 * es + 1e-4, "%s q8_0: against the CPU's f32 NMSE %g (separate %g)",
                  what, ec, es);
            printf("     (%s q8_0: against the CPU's f32 NMSE %.3g, separate kernels %.3g)\n", what,
                   ec, es);
        }
        free(one);
        free(sep);
    }
    free(cpu);
    free(ids);
}

/* Attention inside the qkv kernel (cuda_qkv_attention.cu) on random models
 * whose clusters have 2 (grouped queries, 3 per kv head, head_dim 32), 3
 * (head_dim 48), 4 (stories42M's shape) and 8 blocks (grouped queries, 2 per
 * kv head, head_dim 128 as Llama 2 7B's). */
void test_cuda_qkv_attention(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    static const hf_shape shapes[] = {{.dim = 192,
                                       .hidden = 512,
                                       .layers = 2,
                                       .heads = 6,
                                       .kv_heads = 2,
                                       .head_dim = 32,
                                       .vocab = 512,
                                       .ctx = 256,
                                       .qk_sd = 0.15f},
                                      {.dim = 192,
                                       .hidden = 512,
                                       .layers = 2,
                                       .heads = 4,
                                       .kv_heads = 4,
                                       .head_dim = 48,
                                       .vocab = 512,
                                       .ctx = 256,
                                       .qk_sd = 0.15f},
                                      {.dim = 512,
                                       .hidden = 1024,
                                       .layers = 2,
                                       .heads = 4,
                                       .kv_heads = 2,
                                       .head_dim = 128,
                                       .vocab = 512,
                                       .ctx = 256,
                                       .qk_sd = 0.1f}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char dir[1024], what[64];
        hf_mkdir(dir, sizeof dir, "qkv-attn");
        hf_write_random_llama(dir, &shapes[i], 7 + i);
        lc_model *m = NULL;
        lc_error err;
        snprintf(what, sizeof what, "head_dim %d, %d/%d heads", shapes[i].head_dim, shapes[i].heads,
                 shapes[i].kv_heads);
        if (lc_model_load(dir, &m, &err))
            CHECK(t, false, "%s: %s", what, err.msg);
        else
            check_qkv_attention(t, m, what);
        if (m) lc_model_free(m);
        hf_rmdir(dir);
    }
    char big[64];
    snprintf(big, sizeof big, "/tmp/llamac-qkv-attn-%d.bin", (int)getpid());
    lc_model *m = walk_model(t, 1, big);
    if (m) check_qkv_attention(t, m, "stories42M shape");
    if (m) lc_model_free(m);
    unlink(big);
}

/* The same on trained models: tiny-gutenberg-15M (head_dim 48) and the
 * Llama 3 folder (grouped queries, head_dim 32). */
void test_cuda_qkv_attention_trained(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    static const char *const models[] = {"models/tiny-gutenberg-15M.bin",
                                         "models/tiny-gutenberg-llama3.hf"};
    for (int i = 0; i < 2; i++) {
        lc_model *m = load_shared_model(t, models[i]);
        if (m) check_qkv_attention(t, m, models[i]);
        if (m) lc_model_free(m);
    }
}

static bool collect(void *user, lc_token id) {
    text_sink *s = user;
    char piece[LC_DETOKENIZE_BUF];
    size_t k = lc_detokenize(s->tok, &s->dt, id, piece, sizeof piece);
    if (s->len + k < sizeof s->buf) memcpy(s->buf + s->len, piece, k), s->len += k;
    return true;
}

/* Generates n_gen tokens after BOS, as `llamac generate -n n_gen` does. */
static void generate_text(test_ctx *t, lc_engine *e, const lc_tokenizer *tok,
                          const lc_sampler_params *sp, int n_gen, text_sink *out) {
    lc_sampler *s;
    lc_error err;
    lc_token bos = lc_tokenizer_bos(tok);
    memset(out, 0, sizeof *out);
    out->tok = tok;
    lc_detokenizer_init(&out->dt);
    out->dt.prev = bos; /* the text follows the BOS: its first piece loses the leading space */
    if (lc_sampler_create(sp, lc_tokenizer_vocab_size(tok), &s, &err)) {
        CHECK(t, false, "sampler: %s", err.msg);
        return;
    }
    lc_engine_seq_reset(e, 0);
    lc_generate_params gp = {n_gen, &bos, 1};
    lc_generate_stats st;
    CHECK(t, lc_generate(e, 0, &bos, 1, &gp, s, collect, out, &st, &err) == LC_OK, "generate: %s",
          err.msg);
    lc_sampler_free(s);
}

void test_cuda_golden_text(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    char path[1024];
    size_t len;
    char *golden =
        read_file(shared_path(path, sizeof path, "golden/stories260K.t0.n200.txt"), &len);
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tok512.bin");
    CHECK(t, golden != NULL, "%s missing", path);
    static const char *const dtypes[] = {"f32", "f16", "bf16"};
    for (int d = 0; golden && m && tok && d < 3; d++) {
        lc_engine_options o = {.device = "cuda", .dtype = dtypes[d]};
        lc_engine *e;
        lc_error err;
        if (lc_engine_create(m, &o, &e, &err)) {
            CHECK(t, false, "%s: %s", dtypes[d], err.msg);
            continue;
        }
        text_sink out;
        lc_sampler_params greedy = {0.0f, 1.0f, 0, 0};
        generate_text(t, e, tok, &greedy, 200, &out); /* as tests/cli_test.sh's golden run */
        /* The golden file is "Once upon a time..." after the BOS, plus run.c's newline. */
        while (len > 0 && golden[len - 1] == '\n') len--;
        CHECK(t, out.len == len && memcmp(out.buf, golden, len) == 0,
              "%s: greedy text differs from the golden:\n%.*s", dtypes[d], (int)out.len, out.buf);
        lc_engine_free(e);
    }
    free(golden);
    lc_tokenizer_free(tok);
    lc_model_free(m);
}

/* Sampling on the device: a seed gives the same text twice; greedy and
 * top-k 1 give the argmax; at temperature 1 with top-p the text differs from
 * greedy but stays readable words from the vocabulary. */
void test_cuda_device_sampling(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tok512.bin");
    lc_engine_options o = {.device = "cuda", .dtype = "f32"}, oc = {.device = "cpu"};
    lc_engine *e = NULL, *ec = NULL;
    lc_error err;
    if (!m || !tok || lc_engine_create(m, &o, &e, &err) || lc_engine_create(m, &oc, &ec, &err)) {
        CHECK(t, false, "setup: %s", err.msg);
        goto done;
    }
    text_sink a, b, g, k1;
    lc_sampler_params hot = {1.0f, 0.9f, 0, 7}, greedy = {0.0f, 1.0f, 0, 0},
                      top1 = {1.0f, 1.0f, 1, 3};
    generate_text(t, e, tok, &hot, 150, &a);
    generate_text(t, e, tok, &hot, 150, &b);
    generate_text(t, e, tok, &greedy, 150, &g);
    generate_text(t, e, tok, &top1, 150, &k1);
    CHECK(t, a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0, "a seed gave two texts");
    CHECK(t, g.len == k1.len && memcmp(g.buf, k1.buf, g.len) == 0, "top-k 1 differs from greedy");
    CHECK(t, a.len > 0 && (a.len != g.len || memcmp(a.buf, g.buf, a.len) != 0),
          "temperature 1 gave the greedy text");
    /* Plain sampling (no cut) on the device against the host sampler on the
     * CPU: the same seed gives the same coins, and the two draw from the same
     * distribution, so their first tokens agree unless a coin lands within
     * rounding of a boundary. Over 20 seeds, expect nearly all to agree. */
    int same = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        lc_sampler_params plain = {1.0f, 1.0f, 0, seed};
        text_sink x, y;
        generate_text(t, e, tok, &plain, 3, &x);
        generate_text(t, ec, tok, &plain, 3, &y);
        same += x.len == y.len && memcmp(x.buf, y.buf, x.len) == 0;
    }
    CHECK(t, same >= 18, "device and host plain sampling agree for %d of 20 seeds", same);
done:
    lc_engine_free(e);
    lc_engine_free(ec);
    lc_tokenizer_free(tok);
    lc_model_free(m);
}

/* Whether token `pick` is among the most probable tokens of softmax(logits / T)
 * whose mass first reaches top_p (ties at the edge counted in). */
static bool in_top_p(const float *logits, int vocab, float temperature, float top_p,
                     lc_token pick) {
    float max = logits[0];
    for (int i = 1; i < vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0, p_pick = exp((logits[pick] - max) / temperature), above = 0;
    for (int i = 0; i < vocab; i++) {
        const double p = exp((logits[i] - max) / temperature);
        sum += p;
        if (p > p_pick) above += p;
    }
    return above / sum < top_p + 1e-6; /* the mass strictly above pick has not reached top_p */
}

/* The rows of one batch drawn in one device call (what a server step does),
 * each by its own rule, against the host sampler on the same rows: greedy
 * and top-k 1 rows exactly; plain draws (both walk the vocabulary in order)
 * agree unless a coin lands within rounding of a boundary, so nearly all of
 * 10 seeds. A top-p draw walks another order than the host's sorted one, so
 * it is checked to lie in the host's nucleus. */
void test_cuda_sample_rows(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    if (!m) return;
    enum { ROWS = 4 };
    const int32_t vocab = lc_model_config(m)->vocab_size;
    lc_engine_options o = {.device = "cuda", .dtype = "f32", .n_seq = ROWS};
    lc_engine *e = NULL;
    lc_error err;
    float *rows = malloc(ROWS * (size_t)vocab * sizeof *rows), *row = malloc(vocab * sizeof *row);
    lc_sampler *dev[ROWS] = {0}, *host[ROWS] = {0};
    if (!rows || !row || lc_engine_create(m, &o, &e, &err)) {
        CHECK(t, false, "setup: %s", err.msg);
        goto done;
    }
    lc_token tok[ROWS] = {1, 403, 300, 261};
    int32_t pos[ROWS] = {0, 0, 0, 0}, seq[ROWS] = {0, 1, 2, 3};
    uint8_t want[ROWS] = {1, 1, 1, 1};
    lc_batch b = {ROWS, tok, pos, seq, want};
    if (lc_engine_forward(e, &b, rows, &err)) { /* copies the rows out and keeps them */
        CHECK(t, false, "forward: %s", err.msg);
        goto done;
    }
    int same = 0, exact_ok = 1, in_nucleus = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        const lc_sampler_params rule[ROWS] = {{0.0f, 1.0f, 0, seed},
                                              {1.0f, 1.0f, 0, seed},
                                              {0.8f, 0.9f, 0, seed},
                                              {1.0f, 1.0f, 1, seed}};
        for (int i = 0; i < ROWS; i++) {
            lc_sampler_free(dev[i]);
            lc_sampler_free(host[i]);
            dev[i] = host[i] = NULL;
            if (lc_sampler_create(&rule[i], vocab, &dev[i], &err) ||
                lc_sampler_create(&rule[i], vocab, &host[i], &err)) {
                CHECK(t, false, "sampler: %s", err.msg);
                goto done;
            }
        }
        lc_token picks[ROWS];
        if (engine_sample(e, dev, ROWS, picks, &err)) {
            CHECK(t, false, "engine_sample: %s", err.msg);
            goto done;
        }
        for (int i = 0; i < ROWS; i++) {
            memcpy(row, rows + (size_t)i * vocab, vocab * sizeof *row);
            const lc_token want_tok = lc_sampler_sample(host[i], row);
            if (i == 2)
                in_nucleus += in_top_p(rows + (size_t)2 * vocab, vocab, 0.8f, 0.9f, picks[2]);
            else
                same += picks[i] == want_tok;
            if ((i == 0 || i == 3) && picks[i] != want_tok) exact_ok = 0;
        }
    }
    CHECK(t, exact_ok, "a greedy or top-k 1 row drew another token than the host");
    CHECK(t, same >= 28, "device and host agree on %d of 30 draws", same);
    CHECK(t, in_nucleus == 10, "%d of 10 top-p draws lie in the nucleus", in_nucleus);
    CHECK(t, engine_sample(e, dev, ROWS - 1, tok, &err) != LC_OK,
          "sampling 3 rows of a forward that kept 4 was accepted");
done:
    for (int i = 0; i < ROWS; i++) {
        lc_sampler_free(dev[i]);
        lc_sampler_free(host[i]);
    }
    free(rows);
    free(row);
    lc_engine_free(e);
    lc_model_free(m);
}

/* Two sequences decoded in one batch equal each decoded alone. */
void test_cuda_sequences_isolated(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    if (!m) return;
    const int32_t vocab = lc_model_config(m)->vocab_size;
    lc_engine_options o = {.device = "cuda", .dtype = "f32", .n_seq = 2};
    lc_engine *e;
    lc_error err;
    if (lc_engine_create(m, &o, &e, &err)) {
        CHECK(t, false, "%s", err.msg);
        lc_model_free(m);
        return;
    }
    float *both = malloc(2 * (size_t)vocab * sizeof *both),
          *one = malloc((size_t)vocab * sizeof *one);
    lc_token ta[8] = {1, 403, 407, 261, 378, 432, 383, 286},
             tb[8] = {1, 300, 301, 302, 303, 304, 305, 306};
    for (int p = 0; p < 8; p++) { /* interleaved: both sequences in every batch */
        lc_token tok[2] = {ta[p], tb[p]};
        int32_t pos[2] = {p, p}, seq[2] = {0, 1};
        uint8_t want[2] = {1, 1};
        lc_batch b = {2, tok, pos, seq, want};
        CHECK(t, lc_engine_forward(e, &b, both, &err) == LC_OK, "%s", err.msg);
    }
    lc_engine_seq_reset(e, 0);
    const float *alone;
    CHECK(t, lc_engine_prefill(e, 0, tb, 8, &alone, &err) == LC_OK, "%s", err.msg);
    memcpy(one, alone, (size_t)vocab * sizeof *one);
    CHECK(t, nmse(both + vocab, one, (size_t)vocab) <= 1e-10, "sequence 1 in a batch: NMSE %g",
          nmse(both + vocab, one, (size_t)vocab));
    free(both), free(one);
    lc_engine_free(e);
    lc_model_free(m);
}

/* The sequence the runs use: the second of two, so a fed step's sequence is
 * the kernel's to write, not a slot's leftover 0. */
#define FED_SEQ 1

/* The ids one lc_generate call draws, stopping the caller's way after `quit_after`. */
typedef struct id_sink {
    lc_token ids[256];
    int n, quit_after;
} id_sink;

static bool record_id(void *user, lc_token id) {
    id_sink *s = user;
    if (s->n < (int)(sizeof s->ids / sizeof s->ids[0])) s->ids[s->n] = id;
    s->n++;
    return s->quit_after <= 0 || s->n < s->quit_after;
}

/* An on_token that breaks its contract: it resets the sequence at the 5th token. */
typedef struct reset_sink {
    lc_engine *e;
    int n;
} reset_sink;

static bool reset_at_5(void *user, lc_token id) {
    reset_sink *r = user;
    if (++r->n == 5) lc_engine_seq_reset(r->e, FED_SEQ);
    return true;
}

typedef struct fed_run {
    id_sink out;
    lc_generate_stats st;
    int32_t seq_pos; /* after the call */
} fed_run;

/* One lc_generate from a one-token prompt on FED_SEQ (appended to what it holds). */
static void fed_generate(test_ctx *t, lc_engine *e, int32_t vocab, const lc_token *prompt,
                         const lc_sampler_params *sp, int max_new, const lc_token *stop, int n_stop,
                         int quit_after, fed_run *r) {
    const int n_prompt = 1;
    lc_sampler *s;
    lc_error err;
    memset(r, 0, sizeof *r);
    r->out.quit_after = quit_after;
    if (lc_sampler_create(sp, vocab, &s, &err)) {
        CHECK(t, false, "sampler: %s", err.msg);
        return;
    }
    lc_generate_params gp = {max_new, stop, n_stop};
    CHECK(t,
          lc_generate(e, FED_SEQ, prompt, (size_t)n_prompt, &gp, s, record_id, &r->out, &r->st,
                      &err) == LC_OK,
          "generate: %s", err.msg);
    r->seq_pos = lc_engine_seq_pos(e, FED_SEQ);
    lc_sampler_free(s);
}

static void check_same_run(test_ctx *t, const fed_run *a, const fed_run *b, const char *what) {
    CHECK(t,
          a->out.n == b->out.n &&
              memcmp(a->out.ids, b->out.ids,
                     (size_t)(a->out.n < 256 ? a->out.n : 256) * sizeof(lc_token)) == 0,
          "%s: fed steps drew %d tokens, unfed %d, or other ones", what, a->out.n, b->out.n);
    CHECK(t,
          a->st.stop == b->st.stop && a->st.n_generated == b->st.n_generated &&
              a->st.n_decoded == b->st.n_decoded && a->st.pending == b->st.pending &&
              a->seq_pos == b->seq_pos,
          "%s: fed stop %d generated %d decoded %d pending %d pos %d; unfed %d %d %d %d %d", what,
          a->st.stop, a->st.n_generated, a->st.n_decoded, a->st.pending, a->seq_pos, b->st.stop,
          b->st.n_generated, b->st.n_decoded, b->st.pending, b->seq_pos);
}

/* Steps fed the drawn token on the device (the default) against steps
 * that wait for the host (LLAMAC_CUDA_FEED=0): the same tokens, stop
 * reasons and sequence lengths, greedy and seeded, at a length limit, at
 * the context's end, at a stop token and when the caller quits. After a
 * stop the step already started for the stop token is dropped: a
 * continuation fed another token at that position draws what it draws
 * without fed steps. */
void test_cuda_fed_steps(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    if (!m) return;
    const lc_engine_options o = {.device = "cuda", .dtype = "f32", .n_ctx = 160, .n_seq = 2};
    lc_engine *fed = NULL, *unfed = NULL;
    lc_error err;
    unsetenv("LLAMAC_CUDA_FEED");
    lc_status st = lc_engine_create(m, &o, &fed, &err);
    setenv("LLAMAC_CUDA_FEED", "0", 1);
    if (st == LC_OK) st = lc_engine_create(m, &o, &unfed, &err);
    unsetenv("LLAMAC_CUDA_FEED");
    if (st) {
        CHECK(t, false, "setup: %s", err.msg);
        goto done;
    }
    CHECK(t, engine_can_feed(fed) && !engine_can_feed(unfed),
          "the default engine must feed its steps and LLAMAC_CUDA_FEED=0's must not");
    const int32_t vocab = lc_model_config(m)->vocab_size;
    const lc_token bos = 1, other = 300;
    const lc_sampler_params greedy = {0.0f, 1.0f, 0, 0}, hot = {1.0f, 0.9f, 0, 11};
    fed_run a, b, whole;
    lc_engine_seq_reset(fed, FED_SEQ), lc_engine_seq_reset(unfed, FED_SEQ);
    fed_generate(t, fed, vocab, &bos, &greedy, 100, NULL, 0, 0, &whole);
    lc_engine_seq_reset(unfed, FED_SEQ);
    fed_generate(t, unfed, vocab, &bos, &greedy, 100, NULL, 0, 0, &b);
    check_same_run(t, &whole, &b, "greedy, 100 tokens");
    CHECK(t, whole.st.stop == LC_STOP_LENGTH && whole.out.n == 100 && whole.seq_pos == 100,
          "greedy: stop %d after %d tokens at %d", whole.st.stop, whole.out.n, whole.seq_pos);

    lc_engine_seq_reset(fed, FED_SEQ), lc_engine_seq_reset(unfed, FED_SEQ);
    fed_generate(t, fed, vocab, &bos, &hot, 120, NULL, 0, 0, &a);
    fed_generate(t, unfed, vocab, &bos, &hot, 120, NULL, 0, 0, &b);
    check_same_run(t, &a, &b, "T 1, top-p 0.9, seeded");

    lc_engine_seq_reset(fed, FED_SEQ), lc_engine_seq_reset(unfed, FED_SEQ);
    fed_generate(t, fed, vocab, &bos, &greedy, -1, NULL, 0, 0, &a);
    fed_generate(t, unfed, vocab, &bos, &greedy, -1, NULL, 0, 0, &b);
    check_same_run(t, &a, &b, "to the context's end");
    CHECK(t, a.st.stop == LC_STOP_CONTEXT && a.seq_pos == 160, "context end: stop %d at %d",
          a.st.stop, a.seq_pos);

    /* A stop token first drawn at k > 20, then the caller quitting at 37. */
    int k = 21;
    while (k < whole.out.n) {
        int seen = 0;
        for (int i = 0; i < k; i++) seen |= whole.out.ids[i] == whole.out.ids[k];
        if (!seen) break;
        k++;
    }
    CHECK(t, k < whole.out.n, "no token of the greedy text appears first after 20");
    for (int how = 0; how < 2 && k < whole.out.n; how++) {
        const lc_token stop = whole.out.ids[k];
        const char *what = how == 0 ? "a stop token" : "the caller quitting";
        lc_engine_seq_reset(fed, FED_SEQ), lc_engine_seq_reset(unfed, FED_SEQ);
        fed_generate(t, fed, vocab, &bos, &greedy, 100, how == 0 ? &stop : NULL, how == 0,
                     how == 0 ? 0 : 37, &a);
        fed_generate(t, unfed, vocab, &bos, &greedy, 100, how == 0 ? &stop : NULL, how == 0,
                     how == 0 ? 0 : 37, &b);
        check_same_run(t, &a, &b, what);
        const int n_expect = how == 0 ? k : 37;
        CHECK(t, a.out.n == n_expect && a.seq_pos == 1 + n_expect - (how == 1),
              "%s: %d tokens, position %d", what, a.out.n, a.seq_pos);
        fed_generate(t, fed, vocab, &other, &greedy, 30, NULL, 0, 0, &a);
        fed_generate(t, unfed, vocab, &other, &greedy, 30, NULL, 0, 0, &b);
        check_same_run(t, &a, &b, what);
    }

    /* An on_token that uses the engine while the fed step runs is an error. */
    lc_sampler *s;
    if (lc_sampler_create(&greedy, vocab, &s, &err) == LC_OK) {
        reset_sink rs = {fed, 0};
        lc_generate_params gp = {20, NULL, 0};
        lc_generate_stats gs;
        lc_engine_seq_reset(fed, FED_SEQ);
        const lc_status gst =
            lc_generate(fed, FED_SEQ, &bos, 1, &gp, s, reset_at_5, &rs, &gs, &err);
        CHECK(t, gst == LC_ERR_ARG && strstr(err.msg, "changed") != NULL,
              "a reset inside on_token: status %d (%s)", gst, gst ? err.msg : "no error");
        lc_sampler_free(s);
    }
done:
    lc_engine_free(fed);
    lc_engine_free(unfed);
    lc_model_free(m);
}

/* Without a GPU, --device cuda is a clear error, and auto falls back to the CPU. */
void test_cuda_absent_is_an_error(test_ctx *t) {
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    if (!m) return;
    lc_engine_options o = {.device = "cuda"}, bad = {.device = "cuda", .dtype = "q3"};
    lc_engine *e = NULL;
    lc_error err;
    lc_status st = lc_engine_create(m, &o, &e, &err);
    if (lc_cuda_device_count() == 0)
        CHECK(t, st == LC_ERR_UNSUPPORTED && strstr(err.msg, "--device cuda"), "got %d: %s", st,
              err.msg);
    else
        CHECK(t, st == LC_OK, "%s", err.msg);
    lc_engine_free(e);
    e = NULL;
    st = lc_engine_create(m, &bad, &e, &err);
    CHECK(t, st != LC_OK, "--dtype q3 accepted");
    lc_engine_free(e);
    lc_model_free(m);
}
