/* The forward contract and the generation loop: batch validation, sequence
 * isolation in one batch, rewinding, context limits, reproducible sampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "engine/engine.h"
#include "llamac.h"

typedef struct fixture {
    lc_model *model;
    lc_engine *engine;
    int32_t vocab;
} fixture;

static bool setup(test_ctx *t, fixture *f, int n_ctx, int n_seq, int n_batch) {
    lc_error err;
    memset(f, 0, sizeof *f);
    if (!(f->model = load_shared_model(t, "models/stories260K.bin"))) return false;
    lc_engine_options o = {.device = "cpu", .n_ctx = n_ctx, .n_seq = n_seq, .n_batch = n_batch};
    if (lc_engine_create(f->model, &o, &f->engine, &err)) {
        CHECK(t, false, "%s", err.msg);
        lc_model_free(f->model);
        return false;
    }
    f->vocab = lc_model_config(f->model)->vocab_size;
    return true;
}

static void teardown(fixture *f) {
    lc_engine_free(f->engine);
    lc_model_free(f->model);
}

static float max_diff(const float *a, const float *b, int n) {
    float worst = 0;
    for (int i = 0; i < n; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]));
    return worst;
}

void test_engine_rejects_bad_batches(test_ctx *t) {
    fixture f;
    if (!setup(t, &f, 16, 2, 4)) return;
    lc_token tok[5] = {1, 2, 3, 4, 5};
    int32_t pos[5] = {0, 1, 2, 3, 4}, seq[5] = {0, 0, 0, 0, 0};
    float logits[512 * 5];
    lc_error err;
    struct {
        lc_batch b;
        const char *what;
    } bad[] = {
        {{5, tok, pos, seq, NULL}, "more entries than n_batch"},
        {{0, tok, pos, seq, NULL}, "an empty batch"},
        {{1, (lc_token[]){512}, pos, seq, NULL}, "a token past the vocabulary"},
        {{1, (lc_token[]){-1}, pos, seq, NULL}, "a negative token"},
        {{1, tok, pos, (int32_t[]){2}, NULL}, "a sequence past n_seq"},
        {{1, tok, (int32_t[]){3}, seq, NULL}, "a gap before the position"},
        {{2, tok, (int32_t[]){0, 2}, seq, NULL}, "a gap inside the batch"},
        {{2, tok, (int32_t[]){0, 0}, seq, NULL}, "a repeated position"},
        {{1, tok, (int32_t[]){16}, seq, NULL}, "a position past the context"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(t, lc_engine_forward(f.engine, &bad[i].b, logits, &err) != LC_OK, "accepted %s",
              bad[i].what);
        CHECK(t, lc_engine_seq_pos(f.engine, 0) == 0, "%s changed the sequence length",
              bad[i].what);
    }
    lc_batch ok = {3, tok, pos, seq, NULL};
    CHECK(t, lc_engine_forward(f.engine, &ok, NULL, &err) == LC_ERR_ARG,
          "logits wanted but no buffer given: accepted");
    CHECK(t, lc_engine_seq_pos(f.engine, 0) == 0, "a refused batch changed the sequence length");
    CHECK(t, lc_engine_forward(f.engine, &ok, logits, &err) == LC_OK, "valid batch: %s", err.msg);
    CHECK(t, lc_engine_seq_pos(f.engine, 0) == 3, "length %d after 3 tokens",
          lc_engine_seq_pos(f.engine, 0));
    teardown(&f);
}

/* Two sequences interleaved in one batch must not see each other's cache. */
void test_engine_sequences_are_isolated(test_ctx *t) {
    fixture f;
    if (!setup(t, &f, 32, 2, 16)) return;
    const lc_token a[4] = {1, 403, 407, 261}, b[4] = {1, 274, 287, 269};
    lc_token tok[8];
    int32_t pos[8], seq[8];
    uint8_t want[8];
    for (int i = 0; i < 4; i++) { /* a0 b0 a1 b1 ... */
        tok[2 * i] = a[i], pos[2 * i] = i, seq[2 * i] = 0, want[2 * i] = i == 3;
        tok[2 * i + 1] = b[i], pos[2 * i + 1] = i, seq[2 * i + 1] = 1, want[2 * i + 1] = i == 3;
    }
    float *both = malloc(2 * (size_t)f.vocab * sizeof *both);
    lc_error err;
    lc_batch batch = {8, tok, pos, seq, want};
    CHECK(t, lc_engine_forward(f.engine, &batch, both, &err) == LC_OK, "%s", err.msg);
    const float *alone;
    lc_engine_seq_reset(f.engine, 0);
    CHECK(t, lc_engine_prefill(f.engine, 0, a, 4, &alone, &err) == LC_OK, "%s", err.msg);
    CHECK(t, max_diff(both, alone, f.vocab) < 1e-4f, "sequence 0 differs when batched with 1");
    lc_engine_seq_reset(f.engine, 0);
    CHECK(t, lc_engine_prefill(f.engine, 0, b, 4, &alone, &err) == LC_OK, "%s", err.msg);
    CHECK(t, max_diff(both + f.vocab, alone, f.vocab) < 1e-4f,
          "sequence 1 differs when batched with 0");
    free(both);
    teardown(&f);
}

/* Writing at an earlier position rewinds the sequence: the result equals a fresh run. */
void test_engine_rewind(test_ctx *t) {
    fixture f;
    if (!setup(t, &f, 32, 1, 8)) return;
    const lc_token first[5] = {1, 403, 407, 261, 378}, second[4] = {1, 403, 300, 301};
    const float *logits;
    lc_error err;
    float *rewound = malloc((size_t)f.vocab * sizeof *rewound);
    CHECK(t, lc_engine_prefill(f.engine, 0, first, 5, &logits, &err) == LC_OK, "%s", err.msg);
    int32_t pos[2] = {2, 3}, seq[2] = {0, 0};
    lc_batch b = {2, second + 2, pos, seq, NULL};
    CHECK(t, lc_engine_forward(f.engine, &b, rewound, &err) == LC_OK, "rewind: %s", err.msg);
    CHECK(t, lc_engine_seq_pos(f.engine, 0) == 4, "length after rewind is %d",
          lc_engine_seq_pos(f.engine, 0));
    lc_engine_seq_reset(f.engine, 0);
    CHECK(t, lc_engine_prefill(f.engine, 0, second, 4, &logits, &err) == LC_OK, "%s", err.msg);
    CHECK(t, max_diff(rewound, logits, f.vocab) < 1e-4f, "rewound run differs from a fresh one");
    free(rewound);
    teardown(&f);
}

static bool collect(void *user, lc_token tok) {
    lc_token *out = user;
    out[++out[0]] = tok;
    return true;
}

void test_engine_generation_limits(test_ctx *t) {
    fixture f;
    if (!setup(t, &f, 8, 1, 8)) return;
    lc_sampler *s;
    lc_error err;
    lc_sampler_params sp = {0.9f, 0.9f, 0, 77};
    CHECK(t, lc_sampler_create(&sp, f.vocab, &s, &err) == LC_OK, "%s", err.msg);
    const lc_token prompt[3] = {1, 403, 407};
    lc_generate_params gp = {-1, NULL, 0};
    lc_generate_stats st;
    lc_token got[64] = {0};
    CHECK(t, lc_generate(f.engine, 0, prompt, 3, &gp, s, collect, got, &st, &err) == LC_OK, "%s",
          err.msg);
    /* 8 positions: 3 prompt + 5 fed back, and the 6th sampled token has no room. */
    CHECK(t, st.stop == LC_STOP_CONTEXT && st.n_generated == 6 && got[0] == 6,
          "stop %d after %d tokens", st.stop, st.n_generated);
    CHECK(t, lc_engine_seq_pos(f.engine, 0) == 8, "sequence holds %d",
          lc_engine_seq_pos(f.engine, 0));

    lc_engine_seq_reset(f.engine, 0);
    const lc_token long_prompt[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(t,
          lc_generate(f.engine, 0, long_prompt, 9, &gp, s, collect, got, &st, &err) ==
              LC_ERR_CONTEXT,
          "a prompt longer than the context was accepted");

    lc_sampler *wrong;
    CHECK(t, lc_sampler_create(&sp, f.vocab + 1, &wrong, &err) == LC_OK, "%s", err.msg);
    lc_engine_seq_reset(f.engine, 0);
    CHECK(t, lc_generate(f.engine, 0, prompt, 3, &gp, wrong, NULL, NULL, &st, &err) == LC_ERR_ARG,
          "a sampler for another vocabulary size was accepted");
    lc_sampler_free(wrong);

    lc_engine_seq_reset(f.engine, 0);
    gp.max_new_tokens = 2;
    CHECK(t,
          lc_generate(f.engine, 0, prompt, 3, &gp, s, NULL, NULL, &st, &err) == LC_OK &&
              st.stop == LC_STOP_LENGTH && st.n_generated == 2 && st.pending >= 0,
          "max_new_tokens 2: stop %d, %d tokens", st.stop, st.n_generated);
    lc_sampler_free(s);
    teardown(&f);
}

void test_engine_seed_reproducible(test_ctx *t) {
    fixture f;
    if (!setup(t, &f, 64, 1, 16)) return;
    lc_token runs[3][64];
    const uint64_t seeds[3] = {42, 42, 43};
    for (int r = 0; r < 3; r++) {
        lc_sampler *s;
        lc_error err;
        lc_sampler_params sp = {1.0f, 0.95f, 0, seeds[r]};
        lc_sampler_create(&sp, f.vocab, &s, &err);
        memset(runs[r], 0, sizeof runs[r]);
        lc_engine_seq_reset(f.engine, 0);
        const lc_token bos = 1;
        lc_generate_params gp = {40, NULL, 0};
        lc_generate_stats st;
        CHECK(t, lc_generate(f.engine, 0, &bos, 1, &gp, s, collect, runs[r], &st, &err) == LC_OK,
              "%s", err.msg);
        lc_sampler_free(s);
    }
    CHECK(t, memcmp(runs[0], runs[1], sizeof runs[0]) == 0, "seed 42 twice gave different text");
    CHECK(t, memcmp(runs[0], runs[2], sizeof runs[0]) != 0,
          "seeds 42 and 43 gave the same 40 tokens");
    teardown(&f);
}

void test_engine_bad_options(test_ctx *t) {
    lc_model *m;
    lc_error err;
    if (!(m = load_shared_model(t, "models/stories260K.bin"))) return;
    lc_engine_options bad[] = {{.n_ctx = 513},   {.n_ctx = -1},     {.n_threads = -2},
                               {.n_batch = -1},  {.device = "tpu"}, {.simd = "neon9"},
                               {.n_seq = 100000}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lc_engine *e = NULL;
        CHECK(t, lc_engine_create(m, &bad[i], &e, &err) != LC_OK, "bad option set %zu accepted", i);
        lc_engine_free(e);
    }
    lc_model_free(m);
}

/* A long prompt in one batch (blocked GEMM attention over several query
 * blocks) must give the logits that one-token steps give, on every kernel set. */
void test_engine_long_prompt_batched_equals_stepwise(test_ctx *t) {
    lc_model *m;
    lc_error err;
    if (!(m = load_shared_model(t, "models/tiny-gutenberg-15M.bin"))) return;
    enum { N = 150 };
    const int32_t vocab = lc_model_config(m)->vocab_size;
    lc_token tok[N];
    int32_t pos[N], seq[N] = {0};
    uint8_t want[N];
    for (int i = 0; i < N; i++)
        tok[i] = (lc_token)(1 + (i * 7919) % 31000), pos[i] = i, want[i] = 1;
    float *batched = malloc((size_t)N * (size_t)vocab * sizeof *batched);
    float *stepwise = malloc((size_t)N * (size_t)vocab * sizeof *stepwise);
    static const char *const kernels[] = {"scalar", "avx2", "avx512"};
    int ran = 0;
    for (size_t k = 0; k < 3; k++) {
        lc_engine *big = NULL, *one = NULL;
        lc_engine_options ob = {.device = "cpu", .simd = kernels[k], .n_batch = N},
                          o1 = {.simd = kernels[k], .n_batch = 1};
        lc_status st = lc_engine_create(m, &ob, &big, &err);
        if (st == LC_OK) st = lc_engine_create(m, &o1, &one, &err);
        if (st != LC_OK) {
            CHECK(t, st == LC_ERR_UNSUPPORTED, "%s: %s", kernels[k], err.msg);
            lc_engine_free(big);
            continue; /* this CPU lacks the kernel set */
        }
        ran++;
        lc_batch b = {N, tok, pos, seq, want};
        CHECK(t, lc_engine_forward(big, &b, batched, &err) == LC_OK, "%s", err.msg);
        for (int i = 0; i < N; i++) {
            lc_batch s = {1, tok + i, pos + i, seq, want};
            CHECK(t,
                  lc_engine_forward(one, &s, stepwise + (size_t)i * (size_t)vocab, &err) == LC_OK,
                  "%s", err.msg);
        }
        float worst = max_diff(batched, stepwise, N * vocab);
        CHECK(t, worst < 1e-3f, "%s: batched and stepwise logits differ by %g", kernels[k], worst);
        lc_engine_free(big);
        lc_engine_free(one);
    }
    CHECK(t, ran >= 1, "no kernel set ran");
    free(batched);
    free(stepwise);
    lc_model_free(m);
}

/* The CPU backend's `sample` (rows drawn in parallel on the thread pool)
 * against lc_sampler_sample on the same logits: four sequences, four rules,
 * token for token over several steps; and a draw with no kept rows is an
 * error, not a stale read. */
void test_engine_cpu_sample_equals_host(test_ctx *t) {
    fixture kept, host;
    if (!setup(t, &kept, 64, 4, 16)) return;
    if (!setup(t, &host, 64, 4, 16)) {
        teardown(&kept);
        return;
    }
    const lc_sampler_params rule[4] = {
        {0.0f, 1.0f, 0, 1}, {1.0f, 1.0f, 0, 2}, {0.8f, 0.9f, 0, 3}, {1.2f, 0.95f, 20, 4}};
    lc_sampler *sk[4] = {0}, *sh[4] = {0};
    lc_error err;
    bool ok = true;
    for (int i = 0; i < 4 && ok; i++)
        ok = lc_sampler_create(&rule[i], kept.vocab, &sk[i], &err) == LC_OK &&
             lc_sampler_create(&rule[i], host.vocab, &sh[i], &err) == LC_OK;
    CHECK(t, ok, "sampler: %s", err.msg);
    lc_token out[4];
    lc_sampler *spare[4] = {0}; /* a refused draw still advances its samplers' coins */
    for (int i = 0; i < 4 && ok; i++)
        ok = lc_sampler_create(&rule[i], kept.vocab, &spare[i], &err) == LC_OK;
    CHECK(t, ok && engine_sample(kept.engine, spare, 4, out, &err) != LC_OK &&
                 strstr(err.msg, "kept 0"),
          "a draw before any forward: %s", err.msg);
    for (int i = 0; i < 4; i++) lc_sampler_free(spare[i]);
    float *logits = malloc(4 * (size_t)host.vocab * sizeof *logits);
    lc_token tok[4] = {1, 1, 1, 1}, drawn[4];
    int32_t pos[4], seq[4] = {0, 1, 2, 3};
    int same = 0;
    for (int step = 0; ok && step < 12; step++) {
        for (int i = 0; i < 4; i++) pos[i] = step;
        lc_batch b = {4, tok, pos, seq, NULL};
        uint8_t want[4] = {1, 1, 1, 1};
        b.logits = want;
        ok = engine_forward(kept.engine, &b, NULL, &err) == LC_OK &&
             engine_sample(kept.engine, sk, 4, drawn, &err) == LC_OK &&
             lc_engine_forward(host.engine, &b, logits, &err) == LC_OK;
        CHECK(t, ok, "step %d: %s", step, err.msg);
        for (int i = 0; ok && i < 4; i++) {
            const lc_token h = lc_sampler_sample(sh[i], logits + (size_t)i * host.vocab);
            same += h == drawn[i];
            tok[i] = h;
        }
    }
    CHECK(t, same == 48, "%d of 48 draws equal the host sampler's", same);
    CHECK(t, engine_sample(kept.engine, sk, 4, out, &err) != LC_OK,
          "a second draw from rows the first one overwrote was accepted");
    free(logits);
    for (int i = 0; i < 4; i++) lc_sampler_free(sk[i]), lc_sampler_free(sh[i]);
    teardown(&kept);
    teardown(&host);
}
