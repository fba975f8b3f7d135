#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/shard.h"
#include "sampler/sampler.h"

#define DEFAULT_N_BATCH 512

static lc_status resolve_options(const lc_config *c, const lc_engine_options *in,
                                 lc_engine_options *o, lc_error *err) {
    *o = in ? *in : (lc_engine_options){0};
    if (!o->device) o->device = "auto";
    if (!o->simd) o->simd = "auto";
    if (!o->dtype) o->dtype = "auto";
    if (!o->weights) o->weights = "auto";
    if (o->n_threads == 0) o->n_threads = lc_n_cores();
    if (o->n_ctx == 0) o->n_ctx = c->seq_len;
    if (o->n_seq == 0) o->n_seq = 1;
    if (o->tensor_parallel == 0) o->tensor_parallel = 1;
    if (o->n_batch == 0) o->n_batch = o->n_ctx < DEFAULT_N_BATCH ? o->n_ctx : DEFAULT_N_BATCH;
    if (o->n_threads < 1 || o->n_threads > 1024)
        return lc_fail(err, LC_ERR_ARG, "--threads %d: must be 1 to 1024", o->n_threads);
    if (o->n_ctx < 1 || o->n_ctx > c->seq_len)
        return lc_fail(err, LC_ERR_ARG, "--ctx %d: must be 1 to the model's context length %d",
                       o->n_ctx, c->seq_len);
    if (o->n_seq < 1 || o->n_seq > 4096)
        return lc_fail(err, LC_ERR_ARG, "n_seq %d: must be 1 to 4096", o->n_seq);
    if (o->n_batch < 1 || o->n_batch > 65536)
        return lc_fail(err, LC_ERR_ARG, "--batch %d: must be 1 to 65536", o->n_batch);
    if (o->chunk_rows < 0 || o->chunk_rows > (1 << 20))
        return lc_fail(err, LC_ERR_ARG, "--chunk %d: must be 0 to %d", o->chunk_rows, 1 << 20);
    return LC_OK;
}

/* --tensor-parallel: the shard plan must fit the model (whole kv heads per
 * GPU, column splits of whole blocks of the weights as they will be stored);
 * more than one rank needs the CUDA device and as many GPUs. */
static lc_status check_tensor_parallel(const lc_model *model, const lc_engine_options *o,
                                       bool on_cuda, lc_error *err) {
    const int n = o->tensor_parallel;
    const lc_dtype stored =
        strcmp(o->dtype, "auto") == 0 ? LC_DTYPE_COUNT : dtype_by_name(o->dtype);
    shard_plan plan;
    lc_status st =
        shard_plan_make(lc_model_config(model), n, shard_column_block(model, stored), &plan, err);
    if (st || n == 1) return st;
    if (!on_cuda) return lc_fail(err, LC_ERR_ARG, "--tensor-parallel needs --device cuda");
    const int have = cuda_device_count();
    if (have < n) {
        if (have == 0)
            return lc_fail(err, LC_ERR_ARG,
                           "--tensor-parallel %d needs %d GPUs; this machine has none this build "
                           "can use",
                           n, n);
        return lc_fail(err, LC_ERR_ARG, "--tensor-parallel %d needs %d GPUs; this machine has %d",
                       n, n, have);
    }
    return lc_fail(err, LC_ERR_UNSUPPORTED,
                   "--tensor-parallel %d: the multi-GPU backend is not built yet (the shard plan "
                   "is; see docs/architecture.md); use --tensor-parallel 1",
                   n);
}

lc_status lc_engine_create(const lc_model *model, const lc_engine_options *opts, lc_engine **out,
                           lc_error *err) {
    *out = NULL;
    const lc_config *c = lc_model_config(model);
    lc_engine_options o;
    lc_status st = resolve_options(c, opts, &o, err);
    if (st) return st;
    lc_engine *e = calloc(1, sizeof *e);
    if (!e) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    e->model = model;
    e->n_ctx = o.n_ctx;
    e->n_seq = o.n_seq;
    e->fed_seq = -1;
    e->n_batch = o.n_batch;
    const bool is_auto = strcmp(o.device, "auto") == 0;
    const bool on_cuda = strcmp(o.device, "cuda") == 0 || (is_auto && cuda_device_count() > 0);
    if (on_cuda || is_auto || strcmp(o.device, "cpu") == 0) {
        st = check_tensor_parallel(model, &o, on_cuda, err);
        if (st == LC_OK && on_cuda) st = cuda_backend_create(model, &o, &e->backend, err);
        if (st == LC_OK && !on_cuda) st = cpu_backend_create(model, &o, &e->backend, err);
    } else {
        st = lc_fail(err, LC_ERR_ARG, "--device %s: unknown device (expected auto, cpu or cuda)",
                     o.device);
    }
    if (st) goto fail;
    e->seq_len = calloc((size_t)e->n_seq, sizeof *e->seq_len);
    e->batch_next = calloc((size_t)e->n_seq, sizeof *e->batch_next);
    e->tokens = calloc((size_t)e->n_batch, sizeof *e->tokens);
    e->pos = calloc((size_t)e->n_batch, sizeof *e->pos);
    e->seq = calloc((size_t)e->n_batch, sizeof *e->seq);
    e->no_logits = calloc((size_t)e->n_batch, 1);
    e->logits = calloc((size_t)c->vocab_size, sizeof *e->logits);
    e->row_params = calloc((size_t)e->n_seq, sizeof *e->row_params);
    e->row_coins = calloc((size_t)e->n_seq, sizeof *e->row_coins);
    if (!e->row_params || !e->row_coins || !e->seq_len || !e->batch_next || !e->tokens || !e->pos ||
        !e->seq || !e->no_logits || !e->logits) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int s = 0; s < e->n_seq; s++) e->batch_next[s] = -1;
    *out = e;
    return LC_OK;
fail:
    lc_engine_free(e);
    return st;
}

void lc_engine_free(lc_engine *e) {
    if (!e) return;
    if (e->backend) e->backend->ops->destroy(e->backend);
    free(e->seq_len);
    free(e->batch_next);
    free(e->tokens);
    free(e->pos);
    free(e->seq);
    free(e->no_logits);
    free(e->logits);
    free(e->row_params);
    free(e->row_coins);
    free(e);
}

lc_status lc_engine_membw(lc_engine *e, int n_threads, double *gb_s, lc_error *err) {
    if (e->backend->ops->membw) return e->backend->ops->membw(e->backend, gb_s, err);
    double best;
    return lc_membw((size_t)1 << 30, n_threads > 0 ? n_threads : lc_n_cores(), 10, gb_s, &best,
                    err);
}

int lc_cuda_device_count(void) { return cuda_device_count(); }

const char *lc_engine_describe(const lc_engine *e) { return e->backend->description; }
int lc_engine_n_ctx(const lc_engine *e) { return e->n_ctx; }
uint64_t lc_engine_bytes_per_token(const lc_engine *e, int pos) {
    return e->backend->weight_bytes_per_token +
           (uint64_t)(pos + 1) * e->backend->kv_bytes_per_position;
}
int lc_engine_n_batch(const lc_engine *e) { return e->n_batch; }

int lc_engine_seq_pos(const lc_engine *e, int seq) {
    return seq >= 0 && seq < e->n_seq ? e->seq_len[seq] : -1;
}

void lc_engine_seq_reset(lc_engine *e, int seq) {
    if (seq >= 0 && seq < e->n_seq) e->seq_len[seq] = 0;
    e->fed_seq = -1;
}

/* Every entry must be in range, and the entries of a sequence must continue
 * it: consecutive positions starting at most at its current length (earlier
 * rewinds it). Checked here once, so no backend reads outside its cache. On
 * success batch_next holds each touched sequence's new length. */
static lc_status check_batch(lc_engine *e, const lc_batch *b, lc_error *err) {
    const int32_t vocab = lc_model_config(e->model)->vocab_size;
    for (int32_t i = 0; i < b->n; i++) {
        const lc_token tok = b->token[i];
        const int32_t pos = b->pos[i], seq = b->seq[i];
        if (tok < 0 || tok >= vocab)
            return lc_fail(err, LC_ERR_ARG, "token %d is outside the vocabulary [0, %d)", tok,
                           vocab);
        if (seq < 0 || seq >= e->n_seq)
            return lc_fail(err, LC_ERR_ARG, "sequence %d: the engine has %d", seq, e->n_seq);
        if (pos < 0 || pos >= e->n_ctx)
            return lc_fail(err, LC_ERR_CONTEXT, "position %d is outside the context of %d", pos,
                           e->n_ctx);
        int32_t expected = e->batch_next[seq];
        if (expected < 0 ? pos > e->seq_len[seq] : pos != expected)
            return lc_fail(err, LC_ERR_ARG,
                           "sequence %d: position %d does not continue it (next "
                           "is %d)",
                           seq, pos, expected < 0 ? e->seq_len[seq] : expected);
        e->batch_next[seq] = pos + 1;
    }
    return LC_OK;
}

/* Commits the new sequence lengths when the forward ran, and always clears the scratch. */
static void finish_batch(lc_engine *e, const lc_batch *b, bool ran) {
    for (int32_t i = 0; i < b->n; i++) {
        int32_t seq = b->seq[i];
        if (seq < 0 || seq >= e->n_seq || e->batch_next[seq] < 0) continue;
        if (ran) e->seq_len[seq] = e->batch_next[seq];
        e->batch_next[seq] = -1;
    }
}

static lc_status check_shape(const lc_engine *e, const lc_batch *b, lc_error *err) {
    if (!b || b->n < 1 || b->n > e->n_batch || !b->token || !b->pos || !b->seq)
        return lc_fail(err, LC_ERR_ARG,
                       "batch of %d entries: must be 1 to %d with tokens, "
                       "positions and sequences",
                       b ? b->n : 0, e->n_batch);
    return LC_OK;
}

static bool wants_logits(const lc_batch *b) {
    bool wants = !b->logits;
    for (int32_t i = 0; b->logits && i < b->n; i++) wants |= b->logits[i] != 0;
    return wants;
}

/* One validation pass for both entry points: callers of the public one must
 * take the logits; the engine itself may leave them in the backend. */
static lc_status forward(lc_engine *e, const lc_batch *b, float *logits, bool may_keep,
                         lc_error *err) {
    lc_status st = check_shape(e, b, err);
    if (st) return st;
    if (wants_logits(b) && !logits && !may_keep)
        return lc_fail(err, LC_ERR_ARG, "the batch asks for logits but no buffer was given");
    st = check_batch(e, b, err);
    e->fed_seq = -1; /* this forward replaces a fed step's kept row */
    if (st == LC_OK) st = e->backend->ops->forward(e->backend, b, logits, err);
    finish_batch(e, b, st == LC_OK);
    return st;
}

lc_status lc_engine_forward(lc_engine *e, const lc_batch *b, float *logits, lc_error *err) {
    return forward(e, b, logits, false, err);
}

lc_status engine_forward(lc_engine *e, const lc_batch *b, float *logits, lc_error *err) {
    return forward(e, b, logits, true, err);
}

lc_status engine_sample(lc_engine *e, lc_sampler *const *samplers, int n, lc_token *out,
                        lc_error *err) {
    if (n < 1 || n > e->n_seq)
        return lc_fail(err, LC_ERR_ARG, "sampling %d rows: must be 1 to %d", n, e->n_seq);
    for (int i = 0; i < n; i++) {
        e->row_params[i] = *sampler_params(samplers[i]);
        e->row_coins[i] = sampler_next_coin(samplers[i]);
    }
    return e->backend->ops->sample(e->backend, n, e->row_params, e->row_coins, out, err);
}

bool engine_can_feed(const lc_engine *e) { return e->backend->ops->sample_and_feed != NULL; }

lc_status engine_sample_and_feed(lc_engine *e, lc_sampler *sampler, int seq, lc_token *out,
                                 lc_error *err) {
    if (!engine_can_feed(e))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "this backend does not feed its draws");
    if (seq < 0 || seq >= e->n_seq)
        return lc_fail(err, LC_ERR_ARG, "sequence %d: the engine has %d", seq, e->n_seq);
    const int32_t pos = e->seq_len[seq];
    if (pos >= e->n_ctx)
        return lc_fail(err, LC_ERR_CONTEXT, "position %d is outside the context of %d", pos,
                       e->n_ctx);
    const lc_sampler_params p = *sampler_params(sampler);
    const float coin = sampler_next_coin(sampler);
    e->fed_seq = -1;
    lc_status st = e->backend->ops->sample_and_feed(e->backend, &p, coin, seq, pos, out, err);
    if (st == LC_OK) e->fed_seq = seq, e->fed_pos = pos;
    return st;
}

lc_status engine_commit_fed(lc_engine *e, int seq, lc_error *err) {
    if (seq < 0 || seq >= e->n_seq || e->fed_seq != seq || e->seq_len[seq] != e->fed_pos)
        return lc_fail(err, LC_ERR_ARG,
                       "sequence %d changed while its next step ran (did on_token use the "
                       "engine?)",
                       seq);
    e->seq_len[seq]++;
    e->fed_seq = -1;
    return LC_OK;
}

lc_status lc_engine_prefill(lc_engine *e, int seq, const lc_token *tokens, size_t n,
                            const float **logits, lc_error *err) {
    *logits = NULL;
    lc_status st = engine_append(e, seq, tokens, n, e->logits, err);
    if (st == LC_OK) *logits = e->logits;
    return st;
}

lc_status engine_append(lc_engine *e, int seq, const lc_token *tokens, size_t n, float *logits,
                        lc_error *err) {
    if (seq < 0 || seq >= e->n_seq)
        return lc_fail(err, LC_ERR_ARG, "sequence %d: the engine has %d", seq, e->n_seq);
    if (n == 0) return lc_fail(err, LC_ERR_ARG, "nothing to prefill: no tokens");
    const int32_t start = e->seq_len[seq];
    if (n > (size_t)(e->n_ctx - start))
        return lc_fail(err, LC_ERR_CONTEXT,
                       "%zu tokens do not fit: the context holds %d "
                       "positions and %d are used",
                       n, e->n_ctx, start);
    for (size_t done = 0; done < n;) {
        int32_t count = n - done < (size_t)e->n_batch ? (int32_t)(n - done) : e->n_batch;
        for (int32_t i = 0; i < count; i++) {
            e->tokens[i] = tokens[done + (size_t)i];
            e->pos[i] = start + (int32_t)done + i;
            e->seq[i] = seq;
        }
        /* Only the final entry's logits are wanted; earlier chunks skip the classifier. */
        bool last_chunk = done + (size_t)count == n;
        lc_batch b = {count, e->tokens, e->pos, e->seq, last_chunk ? NULL : e->no_logits};
        lc_status st = engine_forward(e, &b, logits, err);
        if (st) return st;
        done += (size_t)count;
    }
    return LC_OK;
}
