/* Sampling the next token from logits: greedy at temperature 0, otherwise
 * softmax(logits / T) restricted to the top-k tokens and then to the smallest
 * set whose mass reaches top-p, drawn with a seeded generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "llamac.h"
#include "sampler/sampler.h"

typedef struct candidate {
    float prob;
    lc_token id;
} candidate;

struct lc_sampler {
    lc_sampler_params p;
    int32_t vocab;
    uint64_t rng;
    candidate *cand; /* (vocab) */
};

lc_status lc_sampler_create(const lc_sampler_params *params, int32_t vocab, lc_sampler **out,
                            lc_error *err) {
    *out = NULL;
    if (!(params->temperature >= 0.0f) || !isfinite(params->temperature))
        return lc_fail(err, LC_ERR_ARG, "temperature %g: must be 0 or more", params->temperature);
    if (!(params->top_p > 0.0f && params->top_p <= 1.0f))
        return lc_fail(err, LC_ERR_ARG, "top-p %g: must be in (0, 1]", params->top_p);
    if (params->top_k < 0)
        return lc_fail(err, LC_ERR_ARG, "top-k %d: must be 0 or more", params->top_k);
    if (vocab < 1) return lc_fail(err, LC_ERR_ARG, "vocabulary size %d", vocab);
    lc_sampler *s = calloc(1, sizeof *s);
    if (s) s->cand = malloc((size_t)vocab * sizeof *s->cand);
    if (!s || !s->cand) {
        lc_sampler_free(s);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for the sampler");
    }
    s->p = *params;
    s->vocab = vocab;
    s->rng = params->seed;
    *out = s;
    return LC_OK;
}

void lc_sampler_free(lc_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s);
}

/* splitmix64: any seed, 0 included, gives a good stream. */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float next_unit(uint64_t *state) { /* uniform in [0, 1) */
    return (float)(next_u64(state) >> 40) * (1.0f / 16777216.0f);
}

static lc_token argmax(const float *x, int32_t n) {
    lc_token best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->prob != y->prob) return x->prob < y->prob ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id; /* ties: a stable, seed-independent order */
}

/* Keeps the k most probable candidates (in any order) at the front; returns k. */
static int32_t select_top_k(candidate *c, int32_t n, int32_t k) {
    if (k >= n) return n;
    /* Quickselect on probability, descending. */
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].prob;
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (c[i].prob > pivot) i++;
            while (c[j].prob < pivot) j--;
            if (i <= j) {
                candidate t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    return k;
}

int32_t lc_sampler_vocab_size(const lc_sampler *s) { return s->vocab; }

const lc_sampler_params *sampler_params(const lc_sampler *s) { return &s->p; }

float sampler_next_coin(lc_sampler *s) {
    return s->p.temperature == 0.0f ? 0.0f : next_unit(&s->rng);
}

size_t sampler_scratch_bytes(int32_t vocab) { return (size_t)vocab * sizeof(candidate); }

lc_token lc_sampler_sample(lc_sampler *s, float *logits) {
    return sampler_draw(&s->p, sampler_next_coin(s), logits, s->vocab, s->cand);
}

lc_token sampler_draw(const lc_sampler_params *p, float coin, float *logits, int32_t n,
                      void *scratch) {
    const lc_token best = argmax(logits, n);
    if (p->temperature == 0.0f) return best;

    const float max = logits[best];
    float sum = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        logits[i] = expf((logits[i] - max) / p->temperature);
        sum += logits[i];
    }
    /* NaN or infinite logits leave no distribution to sample: fall back to argmax. */
    if (!(sum > 0.0f) || !isfinite(sum)) return best;

    if (p->top_k == 0 && p->top_p >= 1.0f) { /* plain sampling: one pass, no sort */
        float r = coin * sum, cum = 0.0f;
        for (int32_t i = 0; i < n; i++) {
            cum += logits[i];
            if (r < cum) return i;
        }
        return best; /* rounding left r at the very top */
    }

    candidate *c = scratch;
    int32_t m = 0;
    /* With top-p alone, tokens below (1 - p) / (n - 1) can never be in the
     * nucleus (llama2.c's observation); dropping them keeps the sort short.
     * The most likely token always stays, so the set is never empty. */
    const float floor =
        p->top_k == 0 && n > 1 ? (1.0f - p->top_p) / (float)(n - 1) * sum : 0.0f;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] >= floor || i == best) c[m++] = (candidate){logits[i], i};
    if (p->top_k > 0) m = select_top_k(c, m, p->top_k);
    qsort(c, (size_t)m, sizeof *c, by_prob_desc);

    float mass = 0.0f;
    for (int32_t i = 0; i < m; i++) mass += c[i].prob;
    if (p->top_p < 1.0f) {
        /* The nucleus of the whole distribution, or of the top k when k is set. */
        float target = p->top_p * (p->top_k > 0 ? mass : sum), cum = 0.0f;
        for (int32_t i = 0; i < m; i++) {
            cum += c[i].prob;
            if (cum >= target) {
                m = i + 1;
                mass = cum;
                break;
            }
        }
    }
    float r = coin * mass, cum = 0.0f;
    for (int32_t i = 0; i < m; i++) {
        cum += c[i].prob;
        if (r < cum) return c[i].id;
    }
    return c[m - 1].id; /* m >= 1: the most likely token is always a candidate */
}
