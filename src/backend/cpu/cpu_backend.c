/* Creating and destroying the CPU backend: kernels, threads, buffers, KV cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "sampler/sampler.h"

static void cpu_destroy(backend *b) {
    cpu_backend *cb = (cpu_backend *)b;
    if (!cb) return;
    threadpool_free(cb->pool);
    weight_store_free(&cb->weights);
    float *buffers[] = {cb->x,         cb->xb,          cb->xb2, cb->q,   cb->k,
                        cb->v,         cb->att,         cb->hb,  cb->hb2, cb->xpack,
                        cb->key_cache, cb->value_cache, cb->rope};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(cb->xq);
    for (int t = 0; cb->wtile && t < cb->n_threads; t++) free(cb->wtile[t]);
    free(cb->wtile);
    for (int t = 0; cb->attn_scratch && t < cb->n_threads; t++) {
        attention_scratch *s = &cb->attn_scratch[t];
        free(s->scores);
        free(s->qpack);
    }
    free(cb->attn_scratch);
    free(cb->attn_items);
    free(cb->logit_rows);
    free(cb->kept_logits);
    for (int t = 0; cb->sample_scratch && t < cb->n_threads; t++) free(cb->sample_scratch[t]);
    free(cb->sample_scratch);
    free(cb);
}

typedef struct sample_call {
    cpu_backend *cb;
    const lc_sampler_params *p;
    const float *coins;
    lc_token *out;
} sample_call;

static void sample_task(void *ctx, int64_t row, int thread) {
    const sample_call *c = ctx;
    const int32_t vocab = c->cb->cfg->vocab_size;
    c->out[row] = sampler_draw(&c->p[row], c->coins[row], c->cb->kept_logits + row * vocab, vocab,
                               c->cb->sample_scratch[thread]);
}

/* The rows of a step drawn in parallel, one per work item, each exactly as
 * lc_sampler_sample draws it: with many sequences the host's one-at-a-time
 * loop was 30% of a CPU server step (docs/performance.md). */
static lc_status cpu_sample(backend *b, int n, const lc_sampler_params *p, const float *coins,
                            lc_token *out, lc_error *err) {
    cpu_backend *cb = (cpu_backend *)b;
    if (n < 1 || n != cb->n_kept)
        return lc_fail(err, LC_ERR_ARG, "sample: %d rows asked; the last forward kept %d", n,
                       cb->n_kept);
    sample_call c = {cb, p, coins, out};
    threadpool_run(cb->pool, n, sample_task, &c);
    cb->n_kept = 0; /* drawing overwrote them */
    return LC_OK;
}

static const backend_ops CPU_OPS = {.forward = cpu_forward,
                                    .sample = cpu_sample,
                                    .destroy = cpu_destroy}; /* lc_membw measures the host */

/* A zeroed buffer of n floats, or NULL with a message. calloc maps large
 * buffers lazily, so an unused KV cache costs no memory. */
static float *alloc_floats(uint64_t n, const char *what, lc_error *err) {
    float *p = n && n < UINT64_MAX / 8 ? calloc((size_t)n, sizeof(float)) : NULL;
    if (!p)
        lc_fail(err, LC_ERR_NOMEM, "out of memory: the %s needs %.2f GiB", what,
                (double)n * sizeof(float) / (1u << 30));
    return p;
}

lc_status cpu_backend_create(const lc_model *model, const lc_engine_options *opts, backend **out,
                             lc_error *err) {
    *out = NULL;
    const lc_config *c = lc_model_config(model);
    const cpu_kernels *kern = cpu_kernels_select(opts->simd);
    if (!kern)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "--simd %s: not supported by this CPU or build "
                       "(try auto, scalar, avx2 or avx512)",
                       opts->simd);
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    cb->base.ops = &CPU_OPS;
    cb->base.model = model;
    cb->base.n_ctx = opts->n_ctx;
    cb->base.n_seq = opts->n_seq;
    cb->base.n_batch = opts->n_batch;
    cb->base.kv_bytes_per_position = (uint64_t)c->n_layers * 2 * c->n_kv_heads * c->head_dim * 4;
    cb->cfg = c;
    cb->kern = kern;
    cb->n_threads = opts->n_threads;
    cb->chunk_rows = opts->chunk_rows; /* 0: one range per thread */

    lc_status st = weight_store_init(&cb->weights, model, opts->weights, opts->dtype, err);
    if (st) goto fail;
    cb->w = &cb->weights.view;
    cb->base.weight_bytes_per_token = model_weights_bytes_per_token(cb->w, c->n_layers);
    st = threadpool_create(opts->n_threads, &cb->pool, err);
    if (st) goto fail;

    const uint64_t nb = (uint64_t)opts->n_batch, dim = (uint64_t)c->dim;
    const uint64_t q_dim = (uint64_t)c->n_heads * (uint64_t)c->head_dim;
    const uint64_t kv_dim = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim;
    const uint64_t hidden = (uint64_t)c->hidden_dim;
    uint64_t widest = dim > hidden ? dim : hidden;
    widest = widest > q_dim ? widest : q_dim;
    const uint64_t blocks = (nb + (uint64_t)kern->gemm_tokens - 1) / (uint64_t)kern->gemm_tokens;
    const uint64_t cache =
        (uint64_t)c->n_layers * (uint64_t)opts->n_seq * (uint64_t)opts->n_ctx * kv_dim;
    st = LC_ERR_NOMEM;
    if (!(cb->x = alloc_floats(nb * dim, "residual stream", err)) ||
        !(cb->xb = alloc_floats(nb * dim, "activations", err)) ||
        !(cb->xb2 = alloc_floats(nb * dim, "activations", err)) ||
        !(cb->q = alloc_floats(nb * q_dim, "activations", err)) ||
        !(cb->k = alloc_floats(nb * kv_dim, "activations", err)) ||
        !(cb->v = alloc_floats(nb * kv_dim, "activations", err)) ||
        !(cb->att = alloc_floats(nb * q_dim, "activations", err)) ||
        !(cb->hb = alloc_floats(nb * hidden, "activations", err)) ||
        !(cb->hb2 = alloc_floats(nb * hidden, "activations", err)) ||
        !(cb->xpack =
              alloc_floats(blocks * (uint64_t)kern->gemm_tokens * widest, "GEMM buffer", err)) ||
        !(cb->key_cache = alloc_floats(cache, "KV cache", err)) ||
        /* padded by one tile, see cpu_backend.h */
        !(cb->value_cache = alloc_floats(cache + (uint64_t)kern->gemm_tokens, "KV cache", err)) ||
        !(cb->rope =
              alloc_floats((uint64_t)opts->n_ctx * (uint64_t)c->head_dim, "RoPE table", err)))
        goto fail;
    const uint64_t nt = (uint64_t)kern->gemm_tokens, ctx = (uint64_t)opts->n_ctx,
                   hd = (uint64_t)c->head_dim;
    cb->attn_scratch = calloc((size_t)opts->n_threads, sizeof *cb->attn_scratch);
    if (!cb->attn_scratch) {
        lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    cb->xq_blocks = (GEMM_MIN_TOKENS - 1) * (int64_t)(widest / QK + 1);
    cb->xq = calloc((size_t)cb->xq_blocks, sizeof *cb->xq);
    cb->wtile = calloc((size_t)opts->n_threads, sizeof *cb->wtile);
    if (!cb->xq || !cb->wtile) {
        lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    cb->wtile_floats = (int64_t)kern->gemm_rows * (int64_t)widest;
    for (int t = 0; t < opts->n_threads; t++)
        if (!(cb->wtile[t] = alloc_floats((uint64_t)cb->wtile_floats, "weight tile", err)))
            goto fail;
    for (int t = 0; t < opts->n_threads; t++) {
        attention_scratch *s = &cb->attn_scratch[t];
        if (!(s->scores = alloc_floats(nt * ctx, "attention buffer", err)) ||
            !(s->qpack = alloc_floats(hd * nt, "attention buffer", err)))
            goto fail;
    }
    cb->attn_items = calloc(nb * (uint64_t)c->n_heads, sizeof *cb->attn_items);
    cb->logit_rows = calloc(nb, sizeof *cb->logit_rows);
    cb->sample_scratch = calloc((size_t)opts->n_threads, sizeof *cb->sample_scratch);
    if (!cb->logit_rows || !cb->attn_items || !cb->sample_scratch) {
        lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!(cb->kept_logits = alloc_floats((uint64_t)opts->n_seq * (uint64_t)c->vocab_size,
                                         "logits kept for sampling", err)))
        goto fail;
    for (int t = 0; t < opts->n_threads; t++)
        if (!(cb->sample_scratch[t] = malloc(sampler_scratch_bytes(c->vocab_size)))) {
            lc_fail(err, LC_ERR_NOMEM, "out of memory for the samplers");
            goto fail;
        }
    model_rope_table(c, opts->n_ctx, cb->rope);
    snprintf(cb->base.description, sizeof cb->base.description, "cpu (%s, %d thread%s, %s)",
             kern->name, opts->n_threads, opts->n_threads == 1 ? "" : "s",
             cb->weights.buffer.data ? "aligned weight copy"
                                     : "weights read from the file mapping");
    *out = &cb->base;
    return LC_OK;
fail:
    cpu_destroy(&cb->base);
    return st;
}
