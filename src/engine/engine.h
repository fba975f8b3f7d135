/* The engine: one backend, its KV-cache slots, and the bookkeeping of how
 * far each sequence has been filled. */
#ifndef LLAMAC_ENGINE_ENGINE_H
#define LLAMAC_ENGINE_ENGINE_H

#include "backend/backend.h"
#include "llamac.h"

struct lc_engine {
    const lc_model *model;
    backend *backend;
    int n_ctx, n_seq, n_batch;
    int32_t *seq_len;    /* (n_seq) positions filled per sequence */
    int32_t *batch_next; /* (n_seq) validation scratch: next position expected in a batch */
    /* A batch built by lc_engine_prefill. */
    lc_token *tokens;              /* (n_batch) */
    int32_t *pos, *seq;            /* (n_batch) */
    uint8_t *no_logits;            /* (n_batch) all zero: a batch that wants no logits */
    float *logits;                 /* (vocab_size) the last row lc_engine_prefill produced */
    lc_sampler_params *row_params; /* (n_seq) engine_sample's per-row rules */
    float *row_coins;              /* (n_seq) and draws */
    /* The step engine_sample_and_feed started and not yet committed:
     * sequence and position, or -1 (a forward or reset in between voids it). */
    int32_t fed_seq, fed_pos;
};

/* lc_engine_forward, where logits may be NULL: the rows then stay in the
 * backend for engine_sample. */
lc_status engine_forward(lc_engine *e, const lc_batch *b, float *logits, lc_error *err);
/* lc_engine_prefill writing the last row to `logits` (NULL: kept as above). */
lc_status engine_append(lc_engine *e, int seq, const lc_token *tokens, size_t n, float *logits,
                        lc_error *err);

/* After an engine_forward that kept n logits rows in the backend (n <=
 * n_seq): draws row i's token with samplers[i], as lc_sampler_sample
 * would from that row. */
lc_status engine_sample(lc_engine *e, lc_sampler *const *samplers, int n, lc_token *out,
                        lc_error *err);

/* Whether the backend feeds a drawn token to the next step itself. */
bool engine_can_feed(const lc_engine *e);
/* After an engine_forward that kept one row, of sequence seq: engine_sample
 * of that row, and the next step of seq (the drawn token at its next
 * position) already started. The position joins the sequence only with
 * engine_commit_fed; until then the step's cache entry is outside it, so
 * dropping the step (a stop token) leaves the sequence as it was; the
 * backend's kept row is then the dropped step's, which no caller samples. */
lc_status engine_sample_and_feed(lc_engine *e, lc_sampler *sampler, int seq, lc_token *out,
                                 lc_error *err);
/* Commits that step; an error if a forward or a reset of the sequence came
 * in between (the step's row and cache entry no longer belong to it). */
lc_status engine_commit_fed(lc_engine *e, int seq, lc_error *err);

#endif
