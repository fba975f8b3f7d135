/* The transformer forward pass on the CPU, for a batch of entries at once:
 *   x = embed(tokens)
 *   per layer:  x += Wo · attention(rope(Wq · norm(x)), rope(Wk · norm(x)), Wv · norm(x))
 *               x += W2 · (silu(W1 · norm(x)) * (W3 · norm(x)))
 *   logits = Wcls · norm(x)            (only for entries that asked)
 * Matrix products go through cpu_matmul and attention through cpu_attention;
 * per-entry work (norms, RoPE) runs on the same thread pool. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

/* ---- per-entry operations ---------------------------------------------- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = w[i] * (scale * x[i]);
}

/* Rotates each adjacent pair (x[2i], x[2i+1]) of every head by pos * theta_i. */
static void rope(float *x, int n_heads, int head_dim, const float *cos_sin) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int i = 0; i < head_dim / 2; i++) {
            float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = a * s + b * c;
        }
    }
}

/* ---- running per-entry work on the pool --------------------------------- */

typedef struct step {
    cpu_backend *cb;
    const lc_batch *batch;
    int layer;
    const float *norm_w; /* for norm_task */
    int64_t n_out;       /* entries whose logits are wanted */
    const int32_t *rows; /* for gather_task: batch index of each wanted entry */
} step;

/* Per-entry work is tiny; below this many entries the pool costs more than it saves. */
#define PARALLEL_MIN_ENTRIES 8

static void for_each_entry(step *s, int64_t n, task_fn fn) {
    if (n < PARALLEL_MIN_ENTRIES) {
        for (int64_t i = 0; i < n; i++) fn(s, i, 0);
    } else {
        threadpool_run(s->cb->pool, n, fn, s);
    }
}

static void norm_task(void *ctx, int64_t t, int thread) {
    const step *s = ctx;
    const int64_t dim = s->cb->cfg->dim;
    rmsnorm(s->cb->xb + t * dim, s->cb->x + t * dim, s->norm_w, dim, s->cb->cfg->norm_eps);
}

static void residual_task(void *ctx, int64_t t, int thread) {
    const step *s = ctx;
    const int64_t dim = s->cb->cfg->dim;
    float *x = s->cb->x + t * dim;
    const float *d = s->cb->xb2 + t * dim;
    for (int64_t i = 0; i < dim; i++) x[i] += d[i];
}

static void swiglu_task(void *ctx, int64_t t, int thread) {
    const step *s = ctx;
    const int64_t hidden = s->cb->cfg->hidden_dim;
    float *gate = s->cb->hb + t * hidden;
    const float *up = s->cb->hb2 + t * hidden;
    for (int64_t i = 0; i < hidden; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* RoPE on q and k, then k and v into the entry's KV-cache slot. */
static void rope_store_task(void *ctx, int64_t t, int thread) {
    const step *s = ctx;
    cpu_backend *cb = s->cb;
    const lc_config *c = cb->cfg;
    const int64_t q_dim = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    const int32_t pos = s->batch->pos[t];
    const float *cos_sin = cb->rope + (int64_t)pos * c->head_dim;
    rope(cb->q + t * q_dim, c->n_heads, c->head_dim, cos_sin);
    rope(cb->k + t * kv_dim, c->n_kv_heads, c->head_dim, cos_sin);
    for (int64_t h = 0; h < c->n_kv_heads; h++) {
        int64_t at = cpu_cache_head(cb, s->layer, s->batch->seq[t], h) + (int64_t)pos * c->head_dim;
        const int64_t from = t * kv_dim + h * c->head_dim;
        memcpy(cb->key_cache + at, cb->k + from, (size_t)c->head_dim * sizeof(float));
        memcpy(cb->value_cache + at, cb->v + from, (size_t)c->head_dim * sizeof(float));
    }
}

static void gather_task(void *ctx, int64_t i, int thread) {
    const step *s = ctx;
    const int64_t dim = s->cb->cfg->dim;
    rmsnorm(s->cb->xb + i * dim, s->cb->x + (int64_t)s->rows[i] * dim, s->norm_w, dim,
            s->cb->cfg->norm_eps);
}

/* ---- the forward pass ---------------------------------------------------- */

lc_status cpu_forward(backend *b, const lc_batch *batch, float *logits, lc_error *err) {
    cpu_backend *cb = (cpu_backend *)b;
    const lc_config *c = cb->cfg;
    const model_weights *w = cb->w;
    const int64_t n = batch->n, dim = c->dim;
    assert(n >= 1 && n <= b->n_batch);
    step s = {.cb = cb, .batch = batch};
    const int64_t n_attention_items = cpu_attention_plan(cb, batch);

    /* The embedding row of each token, as floats whatever the table's dtype. */
    const weight *embd = &w->token_embd;
    const int64_t embd_row = dtype_row_bytes(embd->dtype, dim);
    assert(embd_row > 0 && embd->cols == dim);
    for (int64_t t = 0; t < n; t++)
        cb->kern->dequantize(embd->dtype, (const char *)embd->data + batch->token[t] * embd_row,
                             cb->x + t * dim, dim);

    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *L = &w->layers[l];
        s.layer = l;

        s.norm_w = L->attn_norm.data;
        for_each_entry(&s, n, norm_task);
        matmul_job qkv[] = {{&L->wq, cb->q}, {&L->wk, cb->k}, {&L->wv, cb->v}};
        cpu_matmul(cb, cb->xb, n, qkv, 3);
        for_each_entry(&s, n, rope_store_task);
        cpu_attention(cb, batch, l, n_attention_items);
        matmul_job out_proj[] = {{&L->wo, cb->xb2}};
        cpu_matmul(cb, cb->att, n, out_proj, 1);
        for_each_entry(&s, n, residual_task);

        s.norm_w = L->ffn_norm.data;
        for_each_entry(&s, n, norm_task);
        matmul_job gate_up[] = {{&L->w_gate, cb->hb}, {&L->w_up, cb->hb2}};
        cpu_matmul(cb, cb->xb, n, gate_up, 2);
        for_each_entry(&s, n, swiglu_task);
        matmul_job down[] = {{&L->w_down, cb->xb2}};
        cpu_matmul(cb, cb->hb, n, down, 1);
        for_each_entry(&s, n, residual_task);
    }

    /* Only the entries that asked for logits pay for the classifier. */
    int32_t *rows = cb->logit_rows;
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; t++)
        if (batch->logits ? batch->logits[t] != 0 : t == n - 1) rows[n_out++] = (int32_t)t;
    cb->n_kept = 0;
    if (n_out == 0) return LC_OK;
    if (!logits) { /* kept for `sample` (cpu_backend.c) */
        if (n_out > b->n_seq)
            return lc_fail(err, LC_ERR_ARG,
                           "%lld rows of logits to keep for sampling: at most %d (one per sequence)",
                           (long long)n_out, b->n_seq);
        logits = cb->kept_logits;
        cb->n_kept = (int)n_out;
    }
    s.rows = rows;
    s.norm_w = w->output_norm.data;
    for_each_entry(&s, n_out, gather_task);
    matmul_job classifier[] = {{&w->output, logits}};
    cpu_matmul(cb, cb->xb, n_out, classifier, 1);
    return LC_OK;
}
