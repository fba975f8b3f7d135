/* The prefill + decode loop every front end shares. */
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"
#include "model/model.h"
#include "sampler/sampler.h"

/* The two limits that end generation after a token: known before its draw,
 * so the loop also asks them ahead to decide whether to feed it back. */
static bool at_length(const lc_generate_params *p, int n_generated) {
    return p->max_new_tokens > 0 && n_generated >= p->max_new_tokens;
}

static bool context_full(const lc_engine *e, int seq) {
    return lc_engine_seq_pos(e, seq) >= e->n_ctx;
}

static bool is_stop(const lc_generate_params *p, lc_token tok) {
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == tok) return true;
    return false;
}

lc_status lc_generate(lc_engine *e, int seq, const lc_token *prompt, size_t n_prompt,
                      const lc_generate_params *params, lc_sampler *sampler, lc_token_fn on_token,
                      void *user, lc_generate_stats *stats, lc_error *err) {
    memset(stats, 0, sizeof *stats);
    stats->pending = -1;
    const int32_t vocab = lc_model_config(e->model)->vocab_size;
    if (lc_sampler_vocab_size(sampler) != vocab)
        return lc_fail(err, LC_ERR_ARG, "the sampler was made for %d tokens, the model has %d",
                       lc_sampler_vocab_size(sampler), vocab);
    /* The backend keeps the logits where they are and draws the token:
     * each step returns one token id instead of a row of logits (a prompt
     * with nothing to generate still leaves its row in the engine's). */
    float *logits = params->max_new_tokens != 0 ? NULL : e->logits;
    double t0 = lc_time_seconds();
    lc_status st = engine_append(e, seq, prompt, n_prompt, logits, err);
    if (st) return st;
    stats->n_prompt = (int)n_prompt;

    if (params->max_new_tokens == 0) {
        stats->prompt_seconds = lc_time_seconds() - t0;
        stats->stop = LC_STOP_LENGTH;
        return LC_OK;
    }
    double step_start = -1.0; /* a decoding step ends when its token is known */
    for (;;) {
        lc_token next;
        /* A backend that can starts the step feeding the token back before
         * the host has read it (a GPU then never waits for the host); a stop
         * token or the caller quitting drops that step uncommitted. */
        const bool fed = engine_can_feed(e) && !context_full(e, seq) &&
                         !at_length(params, stats->n_generated + 1);
        st = fed ? engine_sample_and_feed(e, sampler, seq, &next, err)
                 : engine_sample(e, &sampler, 1, &next, err);
        if (st) return st;
        /* A backend may run asynchronously: the prompt is done once its token is. */
        if (step_start < 0.0)
            stats->prompt_seconds = lc_time_seconds() - t0;
        else
            stats->decode_seconds += lc_time_seconds() - step_start;
        stats->pending = next; /* until it is fed back below */
        if (is_stop(params, next)) {
            stats->stop = LC_STOP_TOKEN;
            break;
        }
        stats->n_generated++;
        if (on_token && !on_token(user, next)) {
            stats->stop = LC_STOP_CALLER;
            break;
        }
        if (at_length(params, stats->n_generated)) {
            stats->stop = LC_STOP_LENGTH;
            break;
        }
        if (context_full(e, seq)) {
            stats->stop = LC_STOP_CONTEXT;
            break;
        }
        step_start = lc_time_seconds();
        st = fed ? engine_commit_fed(e, seq, err) : engine_append(e, seq, &next, 1, logits, err);
        if (st) return st;
        stats->n_decoded++;
        stats->pending = -1;
    }
    return LC_OK;
}
