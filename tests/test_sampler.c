/* The sampler: greedy, reproducible seeds, and the distributions top-k and
 * top-p must produce, checked by counting many draws. */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "llamac.h"

static lc_sampler *make(test_ctx *t, float temp, float top_p, int top_k, uint64_t seed, int32_t n) {
    lc_sampler_params p = {temp, top_p, top_k, seed};
    lc_sampler *s = NULL;
    lc_error err;
    CHECK(t, lc_sampler_create(&p, n, &s, &err) == LC_OK, "create: %s", err.msg);
    return s;
}

/* Counts draws over the distribution probs (as logits at temperature 1). */
static void draw(lc_sampler *s, const float *probs, int n, int draws, int *counts) {
    memset(counts, 0, (size_t)n * sizeof *counts);
    float logits[8];
    for (int d = 0; d < draws; d++) {
        for (int i = 0; i < n; i++) logits[i] = logf(probs[i]);
        counts[lc_sampler_sample(s, logits)]++;
    }
}

void test_sampler_distributions(test_ctx *t) {
    const float probs[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    int counts[4];
    const int draws = 40000;
    lc_sampler *s = make(t, 1.0f, 1.0f, 0, 5, 4);
    if (!s) return;
    draw(s, probs, 4, draws, counts);
    for (int i = 0; i < 4; i++)
        CHECK(t, fabs(counts[i] / (double)draws - probs[i]) < 0.015,
              "plain: token %d drawn %.3f, want %.1f", i, counts[i] / (double)draws, probs[i]);
    lc_sampler_free(s);

    s = make(t, 1.0f, 1.0f, 2, 5, 4); /* top-k 2: tokens 3 and 2, renormalized 4:3 */
    draw(s, probs, 4, draws, counts);
    CHECK(t, counts[0] == 0 && counts[1] == 0, "top-k 2 drew outside the top two");
    CHECK(t, fabs(counts[3] / (double)draws - 4.0 / 7.0) < 0.015, "top-k 2: %.3f",
          counts[3] / (double)draws);
    lc_sampler_free(s);

    s = make(t, 1.0f, 0.5f, 0, 5, 4); /* nucleus 0.5: 0.4 < 0.5, 0.4 + 0.3 >= 0.5 */
    draw(s, probs, 4, draws, counts);
    CHECK(t, counts[0] == 0 && counts[1] == 0, "top-p 0.5 drew outside {0.4, 0.3}");
    CHECK(t, fabs(counts[3] / (double)draws - 4.0 / 7.0) < 0.015, "top-p 0.5: %.3f",
          counts[3] / (double)draws);
    lc_sampler_free(s);

    s = make(t, 0.5f, 1.0f, 0, 5, 4); /* temperature 0.5 squares the odds: p^2 / sum p^2 */
    draw(s, probs, 4, draws, counts);
    CHECK(t, fabs(counts[3] / (double)draws - 0.16 / 0.30) < 0.015, "temperature 0.5: %.3f",
          counts[3] / (double)draws);
    lc_sampler_free(s);
}

void test_sampler_greedy_and_seeds(test_ctx *t) {
    float logits[100];
    for (int i = 0; i < 100; i++) logits[i] = sinf((float)i);
    int best = 0;
    for (int i = 1; i < 100; i++) best = logits[i] > logits[best] ? i : best;
    float copy[100];
    lc_sampler *g = make(t, 0.0f, 0.9f, 0, 1, 100), *k1 = make(t, 1.5f, 1.0f, 1, 9, 100),
               *p0 = make(t, 1.0f, 1e-6f, 0, 9, 100);
    if (!g || !k1 || !p0) return;
    memcpy(copy, logits, sizeof copy);
    CHECK(t, lc_sampler_sample(g, copy) == best, "greedy is not argmax");
    memcpy(copy, logits, sizeof copy);
    CHECK(t, lc_sampler_sample(k1, copy) == best, "top-k 1 is not argmax");
    memcpy(copy, logits, sizeof copy);
    CHECK(t, lc_sampler_sample(p0, copy) == best, "a tiny nucleus is not argmax");
    lc_sampler_free(g);
    lc_sampler_free(k1);
    lc_sampler_free(p0);

    lc_token a[50], b[50], c[50];
    lc_sampler *s1 = make(t, 1.0f, 0.9f, 0, 1234, 100), *s2 = make(t, 1.0f, 0.9f, 0, 1234, 100),
               *s3 = make(t, 1.0f, 0.9f, 0, 4321, 100);
    for (int i = 0; i < 50; i++) {
        memcpy(copy, logits, sizeof copy);
        a[i] = lc_sampler_sample(s1, copy);
        memcpy(copy, logits, sizeof copy);
        b[i] = lc_sampler_sample(s2, copy);
        memcpy(copy, logits, sizeof copy);
        c[i] = lc_sampler_sample(s3, copy);
    }
    CHECK(t, memcmp(a, b, sizeof a) == 0, "the same seed gave different draws");
    CHECK(t, memcmp(a, c, sizeof a) != 0, "different seeds gave the same 50 draws");
    lc_sampler_free(s1);
    lc_sampler_free(s2);
    lc_sampler_free(s3);
}

void test_sampler_bad_params(test_ctx *t) {
    lc_sampler *s = NULL;
    lc_error err;
    lc_sampler_params bad[] = {{-1.0f, 0.9f, 0, 1},
                               {1.0f, 0.0f, 0, 1},
                               {1.0f, 1.5f, 0, 1},
                               {1.0f, 0.9f, -3, 1},
                               {NAN, 0.9f, 0, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(t, lc_sampler_create(&bad[i], 10, &s, &err) == LC_ERR_ARG, "bad params %zu accepted",
              i);
        lc_sampler_free(s);
        s = NULL;
    }
}

/* Cases where a naive nucleus cut-off keeps no candidate at all. */
void test_sampler_degenerate_inputs(test_ctx *t) {
    struct {
        float temp, top_p;
        int32_t n;
    } cases[] = {{1.0f, 0.3f, 2}, {1e6f, 0.001f, 512}, {1.0f, 0.9f, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lc_sampler *s = make(t, cases[c].temp, cases[c].top_p, 0, 3, cases[c].n);
        if (!s) continue;
        float logits[512];
        for (int r = 0; r < 50; r++) {
            for (int32_t i = 0; i < cases[c].n; i++) logits[i] = c == 2 ? NAN : 0.0f;
            lc_token id = lc_sampler_sample(s, logits);
            CHECK(t, id >= 0 && id < cases[c].n, "case %zu: drew %d outside [0, %d)", c, id,
                  cases[c].n);
        }
        lc_sampler_free(s);
    }
    lc_sampler *s = make(t, 1.0f, 1.0f, 0, 3, 8); /* infinite logits: argmax, not a crash */
    float inf_logits[8] = {0, 1, INFINITY, 2, 0, 0, 0, 0};
    if (s) CHECK(t, lc_sampler_sample(s, inf_logits) == 2, "an infinite logit must win");
    lc_sampler_free(s);
}
