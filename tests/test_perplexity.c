/* Perplexity and KL divergence (lc_eval_*) against an independent reference:
 * the test cuts the documents itself, runs each one token at a time through
 * a one-entry engine, and takes the log-softmax of every row in long double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llamac.h"

#define REL_TOL 1e-6

/* The reference's scores: every scored NLL, and against a base model the
 * KL(base || model) per position and how often the argmaxes agree. */
typedef struct reference {
    double *nll, *base_nll, *kl; /* (n) */
    int n, cap;
    int n_top1_same;
} reference;

static void ref_push(reference *r, double nll, double base_nll, double kl) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->nll = realloc(r->nll, (size_t)r->cap * sizeof *r->nll);
        r->base_nll = realloc(r->base_nll, (size_t)r->cap * sizeof *r->base_nll);
        r->kl = realloc(r->kl, (size_t)r->cap * sizeof *r->kl);
    }
    r->nll[r->n] = nll;
    r->base_nll[r->n] = base_nll;
    r->kl[r->n++] = kl;
}

static void ref_free(reference *r) {
    free(r->nll);
    free(r->base_nll);
    free(r->kl);
}

/* Two-pass mean and standard error of the mean. */
static double mean_se(const double *x, int n, double *se) {
    long double sum = 0, dev = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    long double mean = sum / n;
    for (int i = 0; i < n; i++) dev += (x[i] - mean) * (x[i] - mean);
    *se = n > 1 ? (double)sqrtl(dev / (n - 1) / n) : 0.0;
    return (double)mean;
}

static long double log_softmax_norm(const float *x, int v, int *argmax) {
    int best = 0;
    for (int i = 1; i < v; i++) best = x[i] > x[best] ? i : best;
    long double sum = 0;
    for (int i = 0; i < v; i++) sum += expl((long double)x[i] - x[best]);
    *argmax = best;
    return x[best] + logl(sum);
}

static lc_engine *one_step_engine(test_ctx *t, const lc_model *m, int ctx) {
    lc_engine_options o = {
        .device = "cpu", .n_ctx = ctx, .n_batch = 1, .n_threads = 1, .weights = "mmap"};
    lc_engine *e = NULL;
    lc_error err;
    if (lc_engine_create(m, &o, &e, &err)) CHECK(t, false, "engine: %s", err.msg);
    return e;
}

/* Runs `ids` one token at a time from an empty cache (and through `base`
 * too when given) and pushes the scores of tokens first .. n-1. */
static void ref_document(test_ctx *t, lc_engine *e, lc_engine *base, int vocab, const lc_token *ids,
                         int n, int first, reference *r) {
    float *row = malloc((size_t)vocab * sizeof *row), *base_row = malloc((size_t)vocab * 4);
    lc_engine_seq_reset(e, 0);
    if (base) lc_engine_seq_reset(base, 0);
    lc_error err;
    for (int p = 0; p + 1 < n; p++) {
        int32_t pos = p, seq = 0;
        lc_batch b = {1, &ids[p], &pos, &seq, NULL};
        if (lc_engine_forward(e, &b, row, &err) ||
            (base && lc_engine_forward(base, &b, base_row, &err))) {
            CHECK(t, false, "forward: %s", err.msg);
            break;
        }
        if (p + 1 < first) continue;
        int top, base_top = -1;
        long double lse = log_softmax_norm(row, vocab, &top), nll = lse - row[ids[p + 1]];
        long double base_nll = 0, kl = 0;
        if (base) {
            long double lse_b = log_softmax_norm(base_row, vocab, &base_top);
            base_nll = lse_b - base_row[ids[p + 1]];
            for (int i = 0; i < vocab; i++) {
                long double lp = base_row[i] - lse_b, lq = row[i] - lse;
                kl += expl(lp) * (lp - lq);
            }
            r->n_top1_same += top == base_top;
        }
        ref_push(r, (double)nll, (double)base_nll, (double)kl);
    }
    free(row);
    free(base_row);
}

static bool close_rel(double a, double b, double tol) {
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) || fabs(a - b) < 1e-12;
}

/* The start of a corpus, cut at a space so the UTF-8 stays whole. */
static char *corpus_head(test_ctx *t, const char *rel, size_t want, size_t *len) {
    char path[1024];
    char *text = read_file(shared_path(path, sizeof path, rel), len);
    CHECK(t, text != NULL, "cannot read %s", path);
    if (!text) return NULL;
    size_t n = want < *len ? want : *len;
    while (n > 0 && text[n] != ' ') n--;
    text[n] = '\0';
    *len = n;
    return text;
}

static void check_windows_against_stepwise(test_ctx *t, const char *model_rel, const char *tok_rel,
                                           const char *corpus_rel, size_t bytes, int ctx) {
    lc_model *m = load_shared_model(t, model_rel);
    lc_tokenizer *tok = load_shared_tokenizer(t, tok_rel);
    size_t len = 0, n_ids = 0;
    char *text = m && tok ? corpus_head(t, corpus_rel, bytes, &len) : NULL;
    lc_token *ids = NULL, *cut = NULL;
    lc_eval_doc *docs = NULL;
    lc_engine *batched = NULL, *stepwise = NULL;
    lc_error err;
    int n_docs = 0;
    if (!text) goto done;
    const int vocab = lc_model_config(m)->vocab_size;
    CHECK(t, lc_tokenizer_encode(tok, text, len, true, false, &ids, &n_ids, &err) == LC_OK, "%s",
          err.msg);
    cut = malloc(n_ids * sizeof *cut);
    memcpy(cut, ids, n_ids * sizeof *cut);
    if (lc_eval_windows(cut, n_ids, ctx, lc_tokenizer_bos(tok), &docs, &n_docs, &err)) {
        CHECK(t, false, "windows: %s", err.msg);
        goto done;
    }
    lc_engine_options o = {.device = "cpu",
                           .n_ctx = ctx,
                           .n_seq = 3,
                           .n_batch = 2 * ctx - 5,
                           .weights = "mmap",
                           .n_threads = 1};
    if (lc_engine_create(m, &o, &batched, &err) || !(stepwise = one_step_engine(t, m, ctx))) {
        CHECK(t, false, "engine: %s", err.msg);
        goto done;
    }
    lc_eval_result got;
    if (lc_eval_score(batched, NULL, docs, n_docs, NULL, NULL, &got, &err)) {
        CHECK(t, false, "score: %s", err.msg);
        goto done;
    }
    /* The reference: window w is BOS + tokens w*ctx+1 .. (w+1)*ctx-1 of the
     * text, scored from window position ctx/2+1 on, as llama.cpp does. */
    reference ref = {0};
    const int n_windows = (int)(n_ids / (size_t)ctx);
    lc_token *window = malloc((size_t)ctx * sizeof *window);
    for (int w = 0; w < n_windows; w++) {
        memcpy(window, ids + (size_t)w * (size_t)ctx, (size_t)ctx * sizeof *window);
        window[0] = lc_tokenizer_bos(tok);
        ref_document(t, stepwise, NULL, vocab, window, ctx, ctx / 2 + 1, &ref);
    }
    free(window);
    double se_nll, mean = mean_se(ref.nll, ref.n, &se_nll);
    double ppl_ref = exp(mean), ppl_se_ref = ppl_ref * se_nll, se;
    double ppl = lc_eval_perplexity(&got.nll, &se);
    CHECK(t, n_windows >= 2, "%s: only %d windows; the test wants several", model_rel, n_windows);
    CHECK(t, n_docs == n_windows, "%d windows, expected %zu / %d = %d", n_docs, n_ids, ctx,
          n_windows);
    CHECK(t, got.nll.n == (int64_t)n_windows * (ctx - 1 - ctx / 2) && got.nll.n == ref.n,
          "%s: scored %lld, reference %d", model_rel, (long long)got.nll.n, ref.n);
    CHECK(t, got.n_evaluated == (int64_t)n_windows * ctx, "evaluated %lld",
          (long long)got.n_evaluated);
    CHECK(t, close_rel(ppl, ppl_ref, REL_TOL), "%s: PPL %.9f, stepwise reference %.9f", model_rel,
          ppl, ppl_ref);
    CHECK(t, close_rel(se, ppl_se_ref, REL_TOL), "%s: PPL error %.9f, reference %.9f", model_rel,
          se, ppl_se_ref);
    ref_free(&ref);
done:
    lc_engine_free(batched);
    lc_engine_free(stepwise);
    free(docs);
    free(cut);
    free(ids);
    free(text);
    lc_tokenizer_free(tok);
    lc_model_free(m);
}

void test_perplexity_windows_match_stepwise(test_ctx *t) {
    check_windows_against_stepwise(t, "models/stories260K.bin", "models/tok512.bin",
                                   "corpora/tinystories_valid_head_794K.txt", 700, 32);
    check_windows_against_stepwise(t, "models/tiny-gutenberg-15M.bin", "models/tokenizer.bin",
                                   "corpora/tiny-gutenberg-heldout.txt", 600, 40);
}

/* Window bookkeeping: n / ctx windows of ctx tokens, BOS first, ctx-1-ctx/2
 * scored in each, the rest of the tokens untouched; too short is an error. */
void test_perplexity_window_bookkeeping(test_ctx *t) {
    const int sizes[] = {3, 10, 100, 257}, ctxs[] = {2, 3, 4, 7, 32, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof ctxs / sizeof ctxs[0]; j++) {
            const int n = sizes[i], ctx = ctxs[j];
            lc_token ids[257];
            for (int k = 0; k < n; k++) ids[k] = 1000 + k;
            lc_eval_doc *docs;
            int n_docs;
            lc_error err;
            lc_status st = lc_eval_windows(ids, (size_t)n, ctx, 1, &docs, &n_docs, &err);
            if (ctx < 3 || ctx > n) {
                CHECK(t, st == LC_ERR_ARG && n_docs == 0, "%d tokens, ctx %d: accepted", n, ctx);
                continue;
            }
            CHECK(t, st == LC_OK, "%d tokens, ctx %d: %s", n, ctx, err.msg);
            if (st) continue;
            int64_t scored = 0;
            CHECK(t, n_docs == n / ctx, "%d tokens, ctx %d: %d windows", n, ctx, n_docs);
            for (int w = 0; w < n_docs; w++) {
                CHECK(t, docs[w].tokens == ids + w * ctx && docs[w].n == ctx,
                      "window %d is not tokens %d..%d", w, w * ctx, (w + 1) * ctx - 1);
                scored += docs[w].n - docs[w].first;
            }
            for (int k = 0; k < n; k++) {
                bool window_start = k % ctx == 0 && k / ctx < n_docs;
                CHECK(t, ids[k] == (window_start ? 1 : 1000 + k), "token %d is %d", k, ids[k]);
            }
            /* llama.cpp: logits n_ctx/2 .. n_ctx-2 of each window are scored. */
            int per_window = 0;
            for (int p = ctx / 2; p <= ctx - 2; p++) per_window++;
            CHECK(t, scored == (int64_t)(n / ctx) * per_window, "%d tokens, ctx %d: %lld scored", n,
                  ctx, (long long)scored);
            free(docs);
        }
}

/* --per-line on three lines (CRLF, an empty line, one longer than the
 * context) equals the per-line computation done here, with the documents
 * packed into several KV-cache slots and split across batches. */
void test_perplexity_per_line_matches_stepwise(test_ctx *t) {
    static const char text[] = "Once upon a time there was a cat.\r\n\r\nThe cat liked milk.\n"
                               "She ran to the park and played with her friends all day long.";
    static const char *lines[] = {"Once upon a time there was a cat.", "The cat liked milk.",
                                  "She ran to the park and played with her friends all day long."};
    const int ctx = 16;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tok512.bin");
    lc_engine *batched = NULL, *stepwise = NULL;
    lc_token *ids = NULL;
    lc_eval_doc *docs = NULL;
    lc_error err;
    int n_docs = 0;
    if (!m || !tok) goto done;
    const int vocab = lc_model_config(m)->vocab_size;
    if (lc_eval_lines(tok, text, strlen(text), ctx, &ids, &docs, &n_docs, &err)) {
        CHECK(t, false, "lines: %s", err.msg);
        goto done;
    }
    CHECK(t, n_docs == 3, "%d documents from 3 non-empty lines", n_docs);
    lc_engine_options o = {.device = "cpu",
                           .n_ctx = ctx,
                           .n_seq = 2,
                           .n_batch = 11,
                           .weights = "mmap",
                           .n_threads = 1};
    if (lc_engine_create(m, &o, &batched, &err) || !(stepwise = one_step_engine(t, m, ctx))) {
        CHECK(t, false, "engine: %s", err.msg);
        goto done;
    }
    lc_eval_result got;
    if (lc_eval_score(batched, NULL, docs, n_docs, NULL, NULL, &got, &err)) {
        CHECK(t, false, "score: %s", err.msg);
        goto done;
    }
    reference ref = {0};
    bool truncated = false;
    for (int i = 0; i < 3; i++) {
        lc_token *line;
        size_t n;
        CHECK(t,
              lc_tokenizer_encode(tok, lines[i], strlen(lines[i]), true, false, &line, &n, &err) ==
                  LC_OK,
              "%s", err.msg);
        truncated |= n > (size_t)ctx;
        ref_document(t, stepwise, NULL, vocab, line, n < (size_t)ctx ? (int)n : ctx, 1, &ref);
        free(line);
    }
    CHECK(t, truncated, "the long line fits in %d tokens; the test wants it truncated", ctx);
    double se_nll, ppl_ref = exp(mean_se(ref.nll, ref.n, &se_nll)), se;
    double ppl = lc_eval_perplexity(&got.nll, &se);
    CHECK(t, got.nll.n == ref.n, "scored %lld, reference %d", (long long)got.nll.n, ref.n);
    CHECK(t, close_rel(ppl, ppl_ref, REL_TOL), "PPL %.9f, stepwise reference %.9f", ppl, ppl_ref);
    CHECK(t, close_rel(se, ppl_ref * se_nll, REL_TOL), "PPL error %.9f, reference %.9f", se,
          ppl_ref * se_nll);
    ref_free(&ref);
done:
    lc_engine_free(batched);
    lc_engine_free(stepwise);
    free(ids);
    free(docs);
    lc_tokenizer_free(tok);
    lc_model_free(m);
}

/* KL(model || model) is 0 with full top-1 agreement; KL against another
 * model with the same vocabulary equals the stepwise computation, and a
 * different vocabulary is refused. */
void test_perplexity_kl_divergence(test_ctx *t) {
    const int ctx = 24;
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    lc_model *other = load_shared_model(t, "models/llama2xs-tinystories.bin");
    lc_model *wide = load_shared_model(t, "models/tiny-gutenberg-15M.bin");
    lc_tokenizer *tok = load_shared_tokenizer(t, "models/tok512.bin");
    lc_engine *e = NULL, *self = NULL, *base = NULL, *wide_e = NULL, *step = NULL,
              *step_base = NULL;
    size_t len = 0, n_ids = 0;
    char *text = m && other && wide && tok
                     ? corpus_head(t, "corpora/tinystories_valid_head_794K.txt", 400, &len)
                     : NULL;
    lc_token *ids = NULL;
    lc_eval_doc *docs = NULL;
    lc_error err;
    int n_docs = 0;
    if (!text) goto done;
    const int vocab = lc_model_config(m)->vocab_size;
    CHECK(t, lc_tokenizer_encode(tok, text, len, true, false, &ids, &n_ids, &err) == LC_OK, "%s",
          err.msg);
    lc_token *original = malloc(n_ids * sizeof *original);
    memcpy(original, ids, n_ids * sizeof *original);
    if (lc_eval_windows(ids, n_ids, ctx, lc_tokenizer_bos(tok), &docs, &n_docs, &err)) {
        CHECK(t, false, "windows: %s", err.msg);
        free(original);
        goto done;
    }
    lc_engine_options o = {.device = "cpu",
                           .n_ctx = ctx,
                           .n_seq = 2,
                           .n_batch = 40,
                           .weights = "mmap",
                           .n_threads = 1};
    if (lc_engine_create(m, &o, &e, &err) || lc_engine_create(m, &o, &self, &err) ||
        lc_engine_create(other, &o, &base, &err) || lc_engine_create(wide, &o, &wide_e, &err)) {
        CHECK(t, false, "engine: %s", err.msg);
        free(original);
        goto done;
    }
    lc_eval_result r;
    CHECK(t, lc_eval_score(e, self, docs, n_docs, NULL, NULL, &r, &err) == LC_OK, "%s", err.msg);
    CHECK(t, r.kl.n > 0 && fabs(r.kl.mean) < 1e-12 && r.n_top1_same == r.nll.n,
          "against itself: KL %g, top-1 %lld of %lld", r.kl.mean, (long long)r.n_top1_same,
          (long long)r.nll.n);
    CHECK(t, r.base_nll.mean == r.nll.mean, "against itself: base NLL %.9f, model %.9f",
          r.base_nll.mean, r.nll.mean);

    CHECK(t, lc_eval_score(e, base, docs, n_docs, NULL, NULL, &r, &err) == LC_OK, "%s", err.msg);
    reference ref = {0};
    step = one_step_engine(t, m, ctx);
    step_base = one_step_engine(t, other, ctx);
    lc_token window[24];
    for (int w = 0; step && step_base && w < (int)(n_ids / ctx); w++) {
        memcpy(window, original + (size_t)w * ctx, sizeof window);
        window[0] = lc_tokenizer_bos(tok);
        ref_document(t, step, step_base, vocab, window, ctx, ctx / 2 + 1, &ref);
    }
    free(original);
    double se_kl, kl_ref = mean_se(ref.kl, ref.n, &se_kl), se_base;
    double base_ppl_ref = exp(mean_se(ref.base_nll, ref.n, &se_base));
    CHECK(t, r.kl.n == ref.n && ref.n > 0, "scored %lld, reference %d", (long long)r.kl.n, ref.n);
    CHECK(t, kl_ref > 0.01, "the two models agree suspiciously well: KL %g", kl_ref);
    CHECK(t, close_rel(r.kl.mean, kl_ref, REL_TOL), "KL %.9f, stepwise reference %.9f", r.kl.mean,
          kl_ref);
    CHECK(t, close_rel(lc_eval_stat_se(&r.kl), se_kl, 1e-5), "KL error %.9f, reference %.9f",
          lc_eval_stat_se(&r.kl), se_kl);
    CHECK(t, close_rel(lc_eval_perplexity(&r.base_nll, NULL), base_ppl_ref, REL_TOL),
          "base PPL %.9f, reference %.9f", lc_eval_perplexity(&r.base_nll, NULL), base_ppl_ref);
    CHECK(t, r.n_top1_same == ref.n_top1_same, "top-1 agreement %lld, reference %d",
          (long long)r.n_top1_same, ref.n_top1_same);
    ref_free(&ref);

    CHECK(t,
          lc_eval_score(e, wide_e, docs, n_docs, NULL, NULL, &r, &err) == LC_ERR_ARG &&
              strstr(err.msg, "vocabulary"),
          "a base with 32000 tokens against 512 was accepted");
done:
    lc_engine_free(e);
    lc_engine_free(self);
    lc_engine_free(base);
    lc_engine_free(wide_e);
    lc_engine_free(step);
    lc_engine_free(step_base);
    free(docs);
    free(ids);
    free(text);
    lc_tokenizer_free(tok);
    lc_model_free(m);
    lc_model_free(other);
    lc_model_free(wide);
}
