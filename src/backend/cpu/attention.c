/* Causal self-attention over the KV cache, on the thread pool.
 *
 * The batch is cut into runs: consecutive entries of one sequence at
 * consecutive positions (a prompt), at most gemm_tokens long. Each (run, head)
 * is one work item:
 *  - a short run (a decoding step) goes entry by entry: scores = q . K[0..pos],
 *    softmax, then the weighted sum of V[0..pos];
 *  - a long run (a prompt block) does the same math as two GEMMs on the tile
 *    kernel, against keys 0..P-1 with P one past the block's last position:
 *      S = Q K^T (key rows broadcast against the packed queries), masked past
 *      each query's own position, softmax by rows;
 *      O = S V (score rows broadcast against V rows, read in place from the
 *      cache; the cache is padded so the tile's full-width reads stay inside).
 * A decoding step computes its weighted sum of V rows with the same tile.
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"

/* Below this many queries in a run, the GEMM's idle lanes cost more than it saves. */
#define ATTENTION_GEMM_MIN_QUERIES 4

typedef struct attention_call {
    cpu_backend *cb;
    const lc_batch *batch;
    int layer;
} attention_call;

static void softmax_in_place(float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; i++) x[i] /= sum;
}

/* out[r][d] = sum over p < n_keys of scores[r][p] * values[p][d], for `rows`
 * score rows (scores_stride apart) and d < head_dim. */
static void weighted_values(const cpu_kernels *kern, const float *scores, int64_t scores_stride,
                            int rows, int64_t n_keys, const float *values, int64_t v_stride,
                            int64_t hd, float *out, int64_t out_stride) {
    const int64_t lanes = kern->gemm_tokens, tile_rows = kern->gemm_rows;
    for (int64_t q = 0; q < rows; q += tile_rows) {
        int r = rows - q < tile_rows ? (int)(rows - q) : (int)tile_rows;
        for (int64_t d = 0; d < hd; d += lanes) {
            int n = hd - d < lanes ? (int)(hd - d) : (int)lanes;
            kern->gemm_tile(scores + q * scores_stride, scores_stride, n_keys, r, values + d,
                            v_stride, n, out + q * out_stride + d, out_stride, 1);
        }
    }
}

/* One entry, one head: the decoding step. */
static void attend_one(const attention_call *a, int64_t t, int64_t h, float *scores) {
    const cpu_backend *cb = a->cb;
    const lc_config *c = cb->cfg;
    const int64_t hd = c->head_dim, q_dim = (int64_t)c->n_heads * hd;
    const int64_t kv_head = h / (c->n_heads / c->n_kv_heads);
    const int32_t pos = a->batch->pos[t];
    const int64_t base = cpu_cache_head(cb, a->layer, a->batch->seq[t], kv_head);
    const float *q = cb->q + t * q_dim + h * hd;
    const float *keys = cb->key_cache + base, *values = cb->value_cache + base;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t p = 0; p <= pos; p++) scores[p] = cb->kern->dot(q, keys + p * hd, hd) * scale;
    softmax_in_place(scores, pos + 1);
    weighted_values(cb->kern, scores, 0, 1, pos + 1, values, hd, hd, cb->att + t * q_dim + h * hd,
                    q_dim);
}

/* A block of `count` queries at consecutive positions of one sequence, one head. */
static void attend_block(const attention_call *a, int64_t first, int count, int64_t h, int thread) {
    const cpu_backend *cb = a->cb;
    const cpu_kernels *kern = cb->kern;
    const lc_config *c = cb->cfg;
    const int64_t hd = c->head_dim, q_dim = (int64_t)c->n_heads * hd;
    const int64_t kv_head = h / (c->n_heads / c->n_kv_heads);
    const int64_t n_ctx = cb->base.n_ctx, lanes = kern->gemm_tokens, rows = kern->gemm_rows;
    const int32_t pos0 = a->batch->pos[first];
    const int64_t n_keys = (int64_t)pos0 + count; /* keys 0 .. last query's position */
    const int64_t base = cpu_cache_head(cb, a->layer, a->batch->seq[first], kv_head);
    const float *keys = cb->key_cache + base, *values = cb->value_cache + base;
    attention_scratch *s = &cb->attn_scratch[thread];

    /* S = Q K^T: scores[t * n_ctx + p] = key p . query t */
    cpu_pack_block(kern, cb->q + first * q_dim + h * hd, q_dim, count, hd, 0, s->qpack);
    for (int64_t p = 0; p < n_keys; p += rows) {
        int r = n_keys - p < rows ? (int)(n_keys - p) : (int)rows;
        kern->gemm_tile(keys + p * hd, hd, hd, r, s->qpack, lanes, count, s->scores + p, 1, n_ctx);
    }
    const float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < count; t++) {
        float *row = s->scores + t * n_ctx;
        const int64_t visible = (int64_t)pos0 + t + 1; /* causal: keys up to its own position */
        for (int64_t p = 0; p < visible; p++) row[p] *= scale;
        softmax_in_place(row, visible);
        memset(row + visible, 0, (size_t)(n_keys - visible) * sizeof *row);
    }

    weighted_values(kern, s->scores, n_ctx, count, n_keys, values, hd, hd,
                    cb->att + first * q_dim + h * hd, q_dim);
}

static void attention_task(void *ctx, int64_t task, int thread) {
    const attention_call *a = ctx;
    const attention_item *item = &a->cb->attn_items[task];
    if (item->count >= ATTENTION_GEMM_MIN_QUERIES) {
        attend_block(a, item->first, item->count, item->head, thread);
    } else {
        for (int i = 0; i < item->count; i++)
            attend_one(a, item->first + i, item->head, a->cb->attn_scratch[thread].scores);
    }
}

int64_t cpu_attention_plan(cpu_backend *cb, const lc_batch *b) {
    const int64_t max_run = cb->kern->gemm_tokens;
    int64_t n_items = 0;
    for (int32_t i = 0; i < b->n;) {
        int32_t j = i + 1;
        while (j < b->n && j - i < max_run && b->seq[j] == b->seq[i] &&
               b->pos[j] == b->pos[j - 1] + 1)
            j++;
        for (int32_t h = 0; h < cb->cfg->n_heads; h++)
            cb->attn_items[n_items++] = (attention_item){i, j - i, h};
        i = j;
    }
    return n_items;
}

void cpu_attention(cpu_backend *cb, const lc_batch *batch, int layer, int64_t n_items) {
    attention_call a = {cb, batch, layer};
    threadpool_run(cb->pool, n_items, attention_task, &a);
}
