/* Scoring documents: batched forwards over the engine's KV-cache slots,
 * then per scored position the negative log-likelihood of the next token
 * and, against a base model, the KL divergence and top-1 agreement. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

void lc_eval_stat_add(lc_eval_stat *s, double x) {
    s->n++;
    double delta = x - s->mean;
    s->mean += delta / (double)s->n;
    s->m2 += delta * (x - s->mean);
}

double lc_eval_stat_se(const lc_eval_stat *s) {
    if (s->n < 2) return 0.0;
    double variance = s->m2 / (double)(s->n - 1); /* sample variance */
    return sqrt(variance / (double)s->n);
}

double lc_eval_perplexity(const lc_eval_stat *nll, double *se) {
    double ppl = exp(nll->mean);
    /* d exp(m) / dm = exp(m): the error of the mean scales by ppl. */
    if (se) *se = ppl * lc_eval_stat_se(nll);
    return ppl;
}

/* log(sum(exp(x))) in double, with the max subtracted so no term overflows;
 * *argmax gets the first index of the largest logit. */
static double log_sum_exp(const float *x, int32_t n, int32_t *argmax) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    const double max = x[best];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)x[i] - max);
    *argmax = best;
    return max + log(sum);
}

/* KL(p || q) = sum_i p_i (log p_i - log q_i), with log p_i = xp_i - lse_p. */
static double kl_divergence(const float *xp, double lse_p, const float *xq, double lse_q,
                            int32_t n) {
    double kl = 0.0;
    for (int32_t i = 0; i < n; i++) {
        double log_p = (double)xp[i] - lse_p, log_q = (double)xq[i] - lse_q;
        kl += exp(log_p) * (log_p - log_q);
    }
    return kl;
}

/* What one scoring run holds: the batch being built and its logits. */
typedef struct scorer {
    lc_engine *engine, *base;
    int32_t vocab, n_batch, n_seq, n_ctx;
    lc_token *token;             /* (n_batch) */
    int32_t *pos, *seq;          /* (n_batch) */
    uint8_t *want;               /* (n_batch) 1: a scored position, its logits are needed */
    lc_token *target;            /* (n_batch) the token each row of logits is scored against */
    float *logits, *base_logits; /* (n_batch, vocab) */
    double *row_nll, *row_base_nll, *row_kl; /* (n_batch) per row of logits */
    uint8_t *row_same;                       /* (n_batch) both argmaxes agree */
    int *slot_doc;                           /* (n_seq) the document in each slot, -1 when free */
    int32_t *slot_pos;                       /* (n_seq) its next position */
} scorer;

static void scorer_free(scorer *s) {
    free(s->token);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->target);
    free(s->logits);
    free(s->base_logits);
    free(s->row_nll);
    free(s->row_base_nll);
    free(s->row_kl);
    free(s->row_same);
    free(s->slot_doc);
    free(s->slot_pos);
}

static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

static lc_status scorer_init(scorer *s, lc_engine *engine, lc_engine *base, lc_error *err) {
    memset(s, 0, sizeof *s);
    s->engine = engine;
    s->base = base;
    s->vocab = lc_model_config(engine->model)->vocab_size;
    s->n_batch = engine->n_batch;
    s->n_seq = engine->n_seq;
    s->n_ctx = engine->n_ctx;
    if (base) {
        int32_t base_vocab = lc_model_config(base->model)->vocab_size;
        if (base_vocab != s->vocab)
            return lc_fail(err, LC_ERR_ARG,
                           "the base model has a vocabulary of %d tokens but the model has %d: "
                           "KL divergence needs the same vocabulary",
                           base_vocab, s->vocab);
        s->n_batch = min32(s->n_batch, base->n_batch);
        s->n_seq = min32(s->n_seq, base->n_seq);
        s->n_ctx = min32(s->n_ctx, base->n_ctx);
    }
    const size_t nb = (size_t)s->n_batch, rows = nb * (size_t)s->vocab;
    s->token = malloc(nb * sizeof *s->token);
    s->pos = malloc(nb * sizeof *s->pos);
    s->seq = malloc(nb * sizeof *s->seq);
    s->want = malloc(nb);
    s->target = malloc(nb * sizeof *s->target);
    s->logits = malloc(rows * sizeof *s->logits);
    s->base_logits = base ? malloc(rows * sizeof *s->base_logits) : NULL;
    s->row_nll = malloc(nb * sizeof *s->row_nll);
    s->row_base_nll = malloc(nb * sizeof *s->row_base_nll);
    s->row_kl = malloc(nb * sizeof *s->row_kl);
    s->row_same = malloc(nb);
    s->slot_doc = malloc((size_t)s->n_seq * sizeof *s->slot_doc);
    s->slot_pos = calloc((size_t)s->n_seq, sizeof *s->slot_pos);
    if (!s->token || !s->pos || !s->seq || !s->want || !s->target || !s->logits ||
        (base && !s->base_logits) || !s->row_nll || !s->row_base_nll || !s->row_kl ||
        !s->row_same || !s->slot_doc || !s->slot_pos) {
        scorer_free(s);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d rows of logits", s->n_batch);
    }
    for (int32_t i = 0; i < s->n_seq; i++) s->slot_doc[i] = -1;
    return LC_OK;
}

static lc_status check_docs(const scorer *s, const lc_eval_doc *docs, int n_docs, lc_error *err) {
    if (n_docs < 1 || !docs) return lc_fail(err, LC_ERR_ARG, "no documents to score");
    for (int i = 0; i < n_docs; i++) {
        const lc_eval_doc *d = &docs[i];
        if (!d->tokens || d->n < 2 || d->n > s->n_ctx || d->first < 1 || d->first >= d->n)
            return lc_fail(err, LC_ERR_ARG,
                           "document %d: %d tokens scored from %d (needs 2 to %d tokens and "
                           "1 <= first < n)",
                           i, d->n, d->first, s->n_ctx);
    }
    return LC_OK;
}

/* Fills the batch from the documents in the slots, taking the next
 * documents into free slots; returns the number of entries and sets *n_rows
 * to how many want logits. Each slot holds one document per batch, since a
 * sequence's entries in a batch must continue each other. */
static int32_t fill_batch(scorer *s, const lc_eval_doc *docs, int n_docs, int *next_doc,
                          int32_t *n_rows) {
    int32_t n = 0;
    *n_rows = 0;
    for (int32_t slot = 0; slot < s->n_seq && n < s->n_batch; slot++) {
        if (s->slot_doc[slot] < 0) {
            if (*next_doc >= n_docs) continue;
            s->slot_doc[slot] = (*next_doc)++;
            s->slot_pos[slot] = 0;
            lc_engine_seq_reset(s->engine, slot);
            if (s->base) lc_engine_seq_reset(s->base, slot);
        }
        const lc_eval_doc *d = &docs[s->slot_doc[slot]];
        while (s->slot_pos[slot] < d->n && n < s->n_batch) {
            int32_t p = s->slot_pos[slot]++;
            s->token[n] = d->tokens[p];
            s->pos[n] = p;
            s->seq[n] = slot;
            /* The logits at p predict token p+1: scored for p+1 in [first, n). */
            s->want[n] = p >= d->first - 1 && p + 1 < d->n;
            if (s->want[n]) s->target[(*n_rows)++] = d->tokens[p + 1];
            n++;
        }
    }
    return n;
}

/* Rows [begin, end) of the batch's logits, scored into the per-row arrays. */
typedef struct row_range {
    const scorer *s;
    int32_t begin, end;
} row_range;

static void *score_range(void *arg) {
    const row_range *rr = arg;
    const scorer *s = rr->s;
    const int32_t v = s->vocab;
    for (int32_t r = rr->begin; r < rr->end; r++) {
        const float *x = s->logits + (size_t)r * (size_t)v;
        int32_t top, base_top;
        double lse = log_sum_exp(x, v, &top);
        s->row_nll[r] = lse - (double)x[s->target[r]];
        if (!s->base) continue;
        const float *xb = s->base_logits + (size_t)r * (size_t)v;
        double lse_b = log_sum_exp(xb, v, &base_top);
        s->row_base_nll[r] = lse_b - (double)xb[s->target[r]];
        s->row_kl[r] = kl_divergence(xb, lse_b, x, lse, v);
        s->row_same[r] = top == base_top;
    }
    return NULL;
}

/* A double-precision log-softmax over a 32000-token vocabulary costs about
 * as much as a small model's forward, so the rows are split over the cores;
 * the sums are then taken in row order, so the result does not depend on
 * how many threads ran. */
#define MAX_SCORE_THREADS   64
#define MIN_ROWS_PER_THREAD 8

static void score_rows(const scorer *s, int32_t n_rows, lc_eval_result *out) {
    int n_threads = lc_n_cores();
    if (n_threads > MAX_SCORE_THREADS) n_threads = MAX_SCORE_THREADS;
    if (n_threads > n_rows / MIN_ROWS_PER_THREAD) n_threads = n_rows / MIN_ROWS_PER_THREAD;
    if (n_threads < 1) n_threads = 1;
    row_range ranges[MAX_SCORE_THREADS];
    pthread_t threads[MAX_SCORE_THREADS];
    bool started[MAX_SCORE_THREADS] = {false};
    for (int t = 0; t < n_threads; t++) {
        ranges[t] = (row_range){s, (int32_t)((int64_t)n_rows * t / n_threads),
                                (int32_t)((int64_t)n_rows * (t + 1) / n_threads)};
        /* A thread that cannot start leaves its range to this one. */
        if (t > 0) started[t] = pthread_create(&threads[t], NULL, score_range, &ranges[t]) == 0;
    }
    score_range(&ranges[0]);
    for (int t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            score_range(&ranges[t]);
    }
    for (int32_t r = 0; r < n_rows; r++) {
        lc_eval_stat_add(&out->nll, s->row_nll[r]);
        if (!s->base) continue;
        lc_eval_stat_add(&out->base_nll, s->row_base_nll[r]);
        lc_eval_stat_add(&out->kl, s->row_kl[r]);
        out->n_top1_same += s->row_same[r];
    }
}

lc_status lc_eval_score(lc_engine *engine, lc_engine *base, const lc_eval_doc *docs, int n_docs,
                        lc_eval_progress_fn progress, void *user, lc_eval_result *out,
                        lc_error *err) {
    memset(out, 0, sizeof *out);
    scorer s;
    lc_status st = scorer_init(&s, engine, base, err);
    if (st) return st;
    if ((st = check_docs(&s, docs, n_docs, err))) goto done;
    const double t0 = lc_time_seconds();
    int next_doc = 0, n_done = 0;
    while (n_done < n_docs) {
        int32_t n_rows;
        int32_t n = fill_batch(&s, docs, n_docs, &next_doc, &n_rows);
        lc_batch b = {n, s.token, s.pos, s.seq, s.want};
        if ((st = lc_engine_forward(engine, &b, s.logits, err))) goto done;
        if (base && (st = lc_engine_forward(base, &b, s.base_logits, err))) {
            lc_fail_prefix(err, "base model");
            goto done;
        }
        score_rows(&s, n_rows, out);
        out->n_evaluated += n;
        for (int32_t slot = 0; slot < s.n_seq; slot++) {
            int doc = s.slot_doc[slot];
            if (doc >= 0 && s.slot_pos[slot] == docs[doc].n) {
                s.slot_doc[slot] = -1;
                n_done++;
            }
        }
        if (progress) progress(user, n_done, n_docs);
    }
    out->seconds = lc_time_seconds() - t0;
done:
    scorer_free(&s);
    return st;
}
