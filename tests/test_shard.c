/* The tensor-parallel shard plan: its ranges tile every dimension with no
 * overlap, GQA groups stay within a rank, column splits keep whole blocks,
 * bad rank counts are refused with the counts that fit; and a forward pass
 * run the sharded way (each rank its heads, kv heads, FFN units and vocab
 * rows, partial sums added as an all-reduce would) gives the engine's logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quant.h"
#include "harness.h"
#include "llamac.h"
#include "model/model.h"
#include "model/shard.h"

/* ---- the plan ---------------------------------------------------------- */

typedef struct shape {
    const char *name;
    lc_config c;
} shape;

static shape make_shape(const char *name, int dim, int n_heads, int n_kv_heads, int hidden,
                        int vocab) {
    return (shape){name,
                   {.dim = dim,
                    .hidden_dim = hidden,
                    .n_layers = 1,
                    .n_heads = n_heads,
                    .n_kv_heads = n_kv_heads,
                    .head_dim = dim / n_heads,
                    .vocab_size = vocab}};
}

/* The ranks' ranges of one dimension, picked out of a shard_rank. */
typedef shard_range (*range_of)(const shard_rank *s);
static shard_range q_heads_of(const shard_rank *s) { return s->q_heads; }
static shard_range kv_heads_of(const shard_rank *s) { return s->kv_heads; }
static shard_range q_rows_of(const shard_rank *s) { return s->q_rows; }
static shard_range kv_rows_of(const shard_rank *s) { return s->kv_rows; }
static shard_range wo_cols_of(const shard_rank *s) { return s->wo_cols; }
static shard_range ffn_of(const shard_rank *s) { return s->ffn; }
static shard_range w2_cols_of(const shard_rank *s) { return s->w2_cols; }
static shard_range vocab_of(const shard_rank *s) { return s->vocab; }

/* Ranks' ranges in order tile [0, total): each starts where the last ended,
 * none is empty, and sizes differ by at most `unit`. */
static void check_tiles(test_ctx *t, const char *what, const shard_plan *p, range_of get,
                        int32_t total, int32_t unit) {
    int32_t at = 0, smallest = total, largest = 0;
    for (int r = 0; r < p->n_ranks; r++) {
        const shard_range s = get(&p->rank[r]);
        CHECK(t, s.begin == at && s.end > s.begin,
              "%s: rank %d of %d has [%d, %d), expected from %d", what, r, p->n_ranks, s.begin,
              s.end, at);
        const int32_t len = shard_range_len(s);
        if (len < smallest) smallest = len;
        if (len > largest) largest = len;
        at = s.end;
    }
    CHECK(t, at == total, "%s: the ranks cover [0, %d) of %d", what, at, total);
    CHECK(t, largest - smallest <= unit, "%s: slices of %d to %d over %d ranks", what, smallest,
          largest, p->n_ranks);
}

static void check_plan(test_ctx *t, const shape *sh, int n, int block) {
    const lc_config *c = &sh->c;
    shard_plan p;
    lc_error err;
    if (shard_plan_make(c, n, block, &p, &err)) {
        CHECK(t, false, "%s over %d (block %d): %s", sh->name, n, block, err.msg);
        return;
    }
    CHECK(t,
          p.n_ranks == n && p.dim == c->dim && p.q_dim == c->n_heads * c->head_dim &&
              p.kv_dim == c->n_kv_heads * c->head_dim,
          "%s over %d: plan header", sh->name, n);
    const int32_t ffn_unit = n == 1 ? c->hidden_dim : block;
    check_tiles(t, "q heads", &p, q_heads_of, c->n_heads, 0);
    check_tiles(t, "kv heads", &p, kv_heads_of, c->n_kv_heads, 0);
    check_tiles(t, "wq rows", &p, q_rows_of, p.q_dim, 0);
    check_tiles(t, "wk/wv rows", &p, kv_rows_of, p.kv_dim, 0);
    check_tiles(t, "wo columns", &p, wo_cols_of, p.q_dim, 0);
    check_tiles(t, "ffn units", &p, ffn_of, c->hidden_dim, ffn_unit);
    check_tiles(t, "w2 columns", &p, w2_cols_of, c->hidden_dim, ffn_unit);
    check_tiles(t, "vocab rows", &p, vocab_of, c->vocab_size, 1);

    /* The stacked Wq|Wk|Wv: every row owned exactly once, each rank's q, k and
     * v rows those of its own heads. */
    const int32_t stacked = p.q_dim + 2 * p.kv_dim;
    unsigned char *owner = calloc((size_t)stacked, 1);
    for (int r = 0; r < n && owner; r++) {
        const shard_rank *s = &p.rank[r];
        CHECK(t, s->qkv_rows[0].begin == s->q_rows.begin && s->qkv_rows[0].end == s->q_rows.end,
              "%s over %d: rank %d stacked q rows", sh->name, n, r);
        CHECK(t,
              s->qkv_rows[1].begin == p.q_dim + s->kv_rows.begin &&
                  shard_range_len(s->qkv_rows[1]) == shard_range_len(s->kv_rows),
              "%s over %d: rank %d stacked k rows", sh->name, n, r);
        CHECK(t,
              s->qkv_rows[2].begin == p.q_dim + p.kv_dim + s->kv_rows.begin &&
                  shard_range_len(s->qkv_rows[2]) == shard_range_len(s->kv_rows),
              "%s over %d: rank %d stacked v rows", sh->name, n, r);
        for (int k = 0; k < 3; k++)
            for (int32_t i = s->qkv_rows[k].begin; i < s->qkv_rows[k].end; i++) owner[i]++;
        /* GQA: every query head of the rank reads one of the rank's kv heads. */
        const int32_t group = c->n_heads / c->n_kv_heads;
        for (int32_t h = s->q_heads.begin; h < s->q_heads.end; h++)
            CHECK(t, h / group >= s->kv_heads.begin && h / group < s->kv_heads.end,
                  "%s over %d: rank %d's query head %d reads kv head %d outside [%d, %d)", sh->name,
                  n, r, h, h / group, s->kv_heads.begin, s->kv_heads.end);
        if (n > 1)
            CHECK(t,
                  shard_range_len(s->wo_cols) % block == 0 && s->w2_cols.begin % block == 0 &&
                      shard_range_len(s->w2_cols) % block == 0,
                  "%s over %d: rank %d's column splits are not whole %d-blocks", sh->name, n, r,
                  block);
    }
    for (int32_t i = 0; owner && i < stacked; i++)
        if (owner[i] != 1) {
            CHECK(t, false, "%s over %d: stacked qkv row %d owned %d times", sh->name, n, i,
                  owner[i]);
            break;
        }
    free(owner);
}

void test_shard_plan_tiles(test_ctx *t) {
    const shape shapes[] = {
        make_shape("llama2-7b", 4096, 32, 32, 11008, 32000),
        make_shape("llama3-8b", 4096, 32, 8, 14336, 128256),
        make_shape("stories260K", 64, 8, 4, 172, 512),
        make_shape("uneven", 96, 12, 6, 200, 1001),
    };
    const int counts[] = {1, 2, 4, 8};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof counts / sizeof counts[0]; j++) {
            const int n = counts[j];
            if (shapes[i].c.n_kv_heads % n) continue;
            check_plan(t, &shapes[i], n, 1);
            /* Quantized wo and w2 (32 per block) split as well where their widths allow. */
            if (shapes[i].c.hidden_dim % 32 == 0 && shapes[i].c.head_dim * 8 % 32 == 0)
                check_plan(t, &shapes[i], n, 32);
        }
    check_plan(t, &shapes[3], 3, 1); /* 6 kv heads over 3: 200 units, 1001 tokens uneven */
    check_plan(t, &shapes[3], 6, 1);

    /* An FFN of 11008 = 344 blocks over 8: 43 blocks each; over 3 (with 6
     * kv heads) 14336 = 448 blocks: 149, 149, 150. */
    shard_plan p;
    lc_error err;
    if (shard_plan_make(&shapes[0].c, 8, 32, &p, &err) == LC_OK)
        CHECK(t, shard_range_len(p.rank[7].ffn) == 43 * 32 && p.rank[1].vocab.begin == 4000,
              "llama2-7b over 8: ffn %d, vocab from %d", shard_range_len(p.rank[7].ffn),
              p.rank[1].vocab.begin);
    shape six = make_shape("six kv heads", 6144, 48, 6, 14336, 128256);
    check_plan(t, &six, 3, 32);
    if (shard_plan_make(&six.c, 3, 32, &p, &err) == LC_OK)
        CHECK(t,
              shard_range_len(p.rank[0].ffn) == 149 * 32 &&
                  shard_range_len(p.rank[2].ffn) == 150 * 32,
              "448 blocks over 3: %d, %d", shard_range_len(p.rank[0].ffn),
              shard_range_len(p.rank[2].ffn));
}

static void expect_error(test_ctx *t, const lc_config *c, int n, int block, const char *want) {
    shard_plan p;
    lc_error err = {0};
    lc_status st = shard_plan_make(c, n, block, &p, &err);
    CHECK(t, st == LC_ERR_ARG, "%d ranks (block %d): status %s, expected an argument error", n,
          block, lc_status_name(st));
    CHECK(t, strstr(err.msg, want), "%d ranks (block %d): '%s' lacks '%s'", n, block, err.msg,
          want);
    CHECK(t, !strchr(err.msg, '\n'), "a multi-line message: %s", err.msg);
}

void test_shard_plan_errors(test_ctx *t) {
    const shape s260 = make_shape("stories260K", 64, 8, 4, 172, 512);
    const shape l3 = make_shape("llama3-8b", 4096, 32, 8, 14336, 128256);
    expect_error(t, &s260.c, 0, 1, "--tensor-parallel 0: must be 1 to 64");
    expect_error(t, &s260.c, -2, 1, "--tensor-parallel -2: must be 1 to 64");
    expect_error(t, &l3.c, 65, 1, "--tensor-parallel 65: must be 1 to 64");
    expect_error(t, &s260.c, 3, 1,
                 "--tensor-parallel 3: the model's 4 kv heads do not split evenly over 3 GPUs "
                 "(use 1, 2 or 4)");
    expect_error(t, &l3.c, 16, 1, "8 kv heads do not split evenly over 16 GPUs (use 1, 2, 4 or 8)");
    expect_error(t, &l3.c, 6, 1, "(use 1, 2, 4 or 8)");
    /* stories260K quantized: 172 hidden units are not whole 32-blocks, so only 1 fits. */
    expect_error(t, &s260.c, 2, 32,
                 "the FFN's 172 hidden units do not split into whole 32-weight blocks");
    expect_error(t, &s260.c, 2, 32, "(use 1)");
    /* Heads of 8 columns: wo's slice over 8 ranks is 8 columns, not a block. */
    const shape narrow = make_shape("narrow heads", 64, 8, 8, 256, 512);
    expect_error(t, &narrow.c, 8, 32, "give wo 8 columns, not whole 32-weight blocks");
    expect_error(t, &narrow.c, 8, 32, "(use 1 or 2)"); /* 4 ranks: 16 columns */
    /* 96 hidden units are 3 blocks: not enough for 4 ranks. */
    const shape small_ffn = make_shape("small ffn", 256, 8, 8, 96, 512);
    expect_error(t, &small_ffn.c, 4, 32, "96 hidden units");
    shard_plan p;
    lc_error err;
    CHECK(t, shard_plan_make(&small_ffn.c, 2, 32, &p, &err) == LC_OK, "3 blocks over 2: %s",
          err.msg);
    CHECK(t, shard_plan_make(&s260.c, 1, 32, &p, &err) == LC_OK, "one rank cuts nothing: %s",
          err.msg);
    CHECK(t, shard_plan_make(&s260.c, 2, 0, &p, &err) == LC_ERR_ARG, "block 0 accepted");
    shape bad = s260;
    bad.c.n_kv_heads = 3; /* 8 query heads do not group over 3 kv heads */
    CHECK(t, shard_plan_make(&bad.c, 1, 1, &p, &err) == LC_ERR_FORMAT,
          "8 heads over 3 kv heads accepted");
}

/* ---- the sharded forward ------------------------------------------------ */

#define N_POS 8

/* Row r of a matrix as floats, whatever its dtype. */
static void weight_row(const weight *w, int64_t r, float *out) {
    const int64_t row_bytes = dtype_row_bytes(w->dtype, w->cols);
    dequantize_row(w->dtype, (const char *)w->data + r * row_bytes, out, w->cols);
}

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void rmsnorm(float *out, const float *x, const weight *w, int64_t n, float eps) {
    double ss = dot(x, x, n);
    const float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    const float *g = w->data;
    for (int64_t i = 0; i < n; i++) out[i] = g[i] * (scale * x[i]);
}

/* out[i - rows.begin] = W[i] · x for the rows of a row split. */
static void matvec_rows(const weight *w, shard_range rows, const float *x, float *out, float *row) {
    for (int32_t i = rows.begin; i < rows.end; i++) {
        weight_row(w, i, row);
        out[i - rows.begin] = (float)dot(row, x, w->cols);
    }
}

/* out[i] = W[i, cols] · x for every row: a column split's partial sum. */
static void matvec_cols(const weight *w, shard_range cols, const float *x, float *out, float *row) {
    for (int64_t i = 0; i < w->rows; i++) {
        weight_row(w, i, row);
        out[i] = (float)dot(row + cols.begin, x, shard_range_len(cols));
    }
}

/* What one rank keeps between tokens: the KV cache of its own kv heads. */
typedef struct rank_cache {
    float *k, *v; /* (n_layers, kv heads of the rank, N_POS, head_dim) */
} rank_cache;

typedef struct sharded {
    const lc_config *c;
    const model_weights *w;
    const shard_plan *plan;
    rank_cache cache[SHARD_MAX_RANKS];
    const float *rope; /* (N_POS, head_dim / 2, 2): model_rope_table */
    /* scratch */
    float *x, *xb, *sum, *part, *row, *q, *k, *v, *att, *gate, *up;
} sharded;

/* Rank r's attention for one token: its q/k/v heads, RoPE, its cache, and
 * the partial output of its wo columns in s->part (dim). */
static void rank_attention(sharded *s, int r, int layer, int pos) {
    const lc_config *c = s->c;
    const layer_weights *L = &s->w->layers[layer];
    const shard_rank *sr = &s->plan->rank[r];
    const int hd = c->head_dim, n_q = shard_range_len(sr->q_heads);
    const int n_kv = shard_range_len(sr->kv_heads), group = c->n_heads / c->n_kv_heads;
    matvec_rows(&L->wq, sr->q_rows, s->xb, s->q, s->row);
    matvec_rows(&L->wk, sr->kv_rows, s->xb, s->k, s->row);
    matvec_rows(&L->wv, sr->kv_rows, s->xb, s->v, s->row);
    /* RoPE on llamac's adjacent pairs (x[2i], x[2i+1]) of every head. */
    const float *cs = s->rope + (int64_t)pos * hd;
    for (int h = 0; h < n_q + n_kv; h++) {
        float *v = h < n_q ? s->q + h * hd : s->k + (h - n_q) * hd;
        for (int i = 0; i < hd / 2; i++) {
            const float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * cs[2 * i] - b * cs[2 * i + 1];
            v[2 * i + 1] = a * cs[2 * i + 1] + b * cs[2 * i];
        }
    }
    const int64_t layer_at = (int64_t)layer * n_kv * N_POS * hd;
    float *kc = s->cache[r].k + layer_at, *vc = s->cache[r].v + layer_at;
    for (int h = 0; h < n_kv; h++) {
        memcpy(kc + ((int64_t)h * N_POS + pos) * hd, s->k + h * hd, (size_t)hd * sizeof(float));
        memcpy(vc + ((int64_t)h * N_POS + pos) * hd, s->v + h * hd, (size_t)hd * sizeof(float));
    }
    for (int h = 0; h < n_q; h++) {
        /* The global query head reads global kv head h / group, which the plan
         * keeps on this rank. */
        const int kv = (sr->q_heads.begin + h) / group - sr->kv_heads.begin;
        const float *q = s->q + h * hd;
        double score[N_POS], most = -INFINITY, total = 0;
        for (int p = 0; p <= pos; p++) {
            score[p] = dot(q, kc + ((int64_t)kv * N_POS + p) * hd, hd) / sqrt((double)hd);
            if (score[p] > most) most = score[p];
        }
        for (int p = 0; p <= pos; p++) total += score[p] = exp(score[p] - most);
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int p = 0; p <= pos; p++) o += score[p] * vc[((int64_t)kv * N_POS + p) * hd + i];
            s->att[h * hd + i] = (float)(o / total);
        }
    }
    matvec_cols(&L->wo, sr->wo_cols, s->att, s->part, s->row);
}

/* Rank r's SwiGLU over its hidden units; the partial w2 output in s->part. */
static void rank_ffn(sharded *s, int r, int layer) {
    const layer_weights *L = &s->w->layers[layer];
    const shard_rank *sr = &s->plan->rank[r];
    matvec_rows(&L->w_gate, sr->ffn, s->xb, s->gate, s->row);
    matvec_rows(&L->w_up, sr->ffn, s->xb, s->up, s->row);
    for (int32_t i = 0; i < shard_range_len(sr->ffn); i++)
        s->gate[i] = s->gate[i] / (1.0f + expf(-s->gate[i])) * s->up[i];
    matvec_cols(&L->w_down, sr->w2_cols, s->gate, s->part, s->row);
}

/* The all-reduce: every rank's partial (dim) output summed in rank order. */
typedef void (*rank_fn)(sharded *s, int r, int layer, int pos);
static void attention_fn(sharded *s, int r, int layer, int pos) {
    rank_attention(s, r, layer, pos);
}
static void ffn_fn(sharded *s, int r, int layer, int pos) { rank_ffn(s, r, layer); }

static void all_reduce_into_x(sharded *s, rank_fn fn, int layer, int pos) {
    const int dim = s->c->dim;
    memset(s->sum, 0, (size_t)dim * sizeof(float));
    for (int r = 0; r < s->plan->n_ranks; r++) {
        fn(s, r, layer, pos);
        for (int i = 0; i < dim; i++) s->sum[i] += s->part[i];
    }
    for (int i = 0; i < dim; i++) s->x[i] += s->sum[i];
}

/* One token through the sharded model; the gathered logits (vocab_size). */
static void sharded_forward(sharded *s, lc_token token, int pos, float *logits) {
    const lc_config *c = s->c;
    const int dim = c->dim;
    /* The vocab-parallel embedding: the rank holding the token's row gives
     * it, every other rank zeros; summed. */
    memset(s->x, 0, (size_t)dim * sizeof(float));
    for (int r = 0; r < s->plan->n_ranks; r++) {
        const shard_range v = s->plan->rank[r].vocab;
        if (token < v.begin || token >= v.end) continue;
        weight_row(&s->w->token_embd, token, s->part);
        for (int i = 0; i < dim; i++) s->x[i] += s->part[i];
    }
    for (int l = 0; l < c->n_layers; l++) {
        rmsnorm(s->xb, s->x, &s->w->layers[l].attn_norm, dim, c->norm_eps);
        all_reduce_into_x(s, attention_fn, l, pos);
        rmsnorm(s->xb, s->x, &s->w->layers[l].ffn_norm, dim, c->norm_eps);
        all_reduce_into_x(s, ffn_fn, l, pos);
    }
    /* The classifier by vocab rows; the gather concatenates the slices. */
    rmsnorm(s->xb, s->x, &s->w->output_norm, dim, c->norm_eps);
    for (int r = 0; r < s->plan->n_ranks; r++) {
        const shard_range v = s->plan->rank[r].vocab;
        matvec_rows(&s->w->output, v, s->xb, logits + v.begin, s->row);
    }
}

static void sharded_free(sharded *s) {
    for (int r = 0; r < SHARD_MAX_RANKS; r++) {
        free(s->cache[r].k);
        free(s->cache[r].v);
    }
    float *bufs[] = {s->x, s->xb, s->sum, s->part, s->row, s->q,
                     s->k, s->v,  s->att, s->gate, s->up};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free((void *)s->rope);
}

static bool sharded_init(sharded *s, const lc_model *m, const shard_plan *plan) {
    memset(s, 0, sizeof *s);
    const lc_config *c = lc_model_config(m);
    s->c = c;
    s->w = &m->weights;
    s->plan = plan;
    const size_t f = sizeof(float);
    int64_t widest = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if (c->n_heads * c->head_dim > widest) widest = (int64_t)c->n_heads * c->head_dim;
    float *rope = malloc((size_t)N_POS * c->head_dim * f);
    if (rope) model_rope_table(c, N_POS, rope);
    s->rope = rope;
    s->x = malloc((size_t)c->dim * f);
    s->xb = malloc((size_t)c->dim * f);
    s->sum = malloc((size_t)c->dim * f);
    s->part = malloc((size_t)c->dim * f);
    s->row = malloc((size_t)widest * f);
    s->q = malloc((size_t)c->n_heads * c->head_dim * f);
    s->k = malloc((size_t)c->n_kv_heads * c->head_dim * f);
    s->v = malloc((size_t)c->n_kv_heads * c->head_dim * f);
    s->att = malloc((size_t)c->n_heads * c->head_dim * f);
    s->gate = malloc((size_t)c->hidden_dim * f);
    s->up = malloc((size_t)c->hidden_dim * f);
    bool ok = rope && s->x && s->xb && s->sum && s->part && s->row && s->q && s->k && s->v &&
              s->att && s->gate && s->up;
    for (int r = 0; r < plan->n_ranks; r++) {
        const size_t n =
            (size_t)c->n_layers * shard_range_len(plan->rank[r].kv_heads) * N_POS * c->head_dim;
        s->cache[r].k = calloc(n, f);
        s->cache[r].v = calloc(n, f);
        ok = ok && s->cache[r].k && s->cache[r].v;
    }
    return ok;
}

/* Runs N_POS tokens through the engine on the CPU (f32) one at a time and
 * through the sharded forward over n ranks; every position's logits must
 * agree within 1e-4 of the logits' scale. */
static void check_sharded_matches_engine(test_ctx *t, const char *name, const lc_model *m, int n) {
    const lc_config *c = lc_model_config(m);
    shard_plan plan;
    lc_error err;
    if (shard_plan_make(c, n, 1, &plan, &err)) {
        CHECK(t, false, "%s over %d: %s", name, n, err.msg);
        return;
    }
    lc_engine_options o = {.device = "cpu", .dtype = "f32", .n_ctx = N_POS};
    lc_engine *e = NULL;
    if (lc_engine_create(m, &o, &e, &err)) {
        CHECK(t, false, "%s: engine: %s", name, err.msg);
        return;
    }
    sharded s;
    float *want = malloc((size_t)c->vocab_size * sizeof(float));
    float *got = malloc((size_t)c->vocab_size * sizeof(float));
    if (!sharded_init(&s, m, &plan) || !want || !got) {
        CHECK(t, false, "out of memory");
        goto done;
    }
    for (int pos = 0; pos < N_POS; pos++) {
        /* A fixed prompt spread over the vocabulary (every rank's slice). */
        const lc_token tok = (lc_token)((1 + 7919 * pos * pos + 104729 * pos) % c->vocab_size);
        const int32_t seq = 0;
        lc_batch b = {1, &tok, &pos, &seq, NULL};
        if (lc_engine_forward(e, &b, want, &err)) {
            CHECK(t, false, "%s: forward at %d: %s", name, pos, err.msg);
            break;
        }
        sharded_forward(&s, tok, pos, got);
        float scale = 0, worst = 0;
        for (int32_t i = 0; i < c->vocab_size; i++) {
            scale = fmaxf(scale, fabsf(want[i]));
            worst = fmaxf(worst, fabsf(want[i] - got[i]));
        }
        CHECK(t, scale > 0 && worst <= 1e-4f * scale,
              "%s over %d ranks, position %d: max |diff| %g, logits' scale %g", name, n, pos, worst,
              scale);
    }
done:
    sharded_free(&s);
    free(want);
    free(got);
    lc_engine_free(e);
}

/* Every rank count the plan accepts for m (1..8, unquantized) must be
 * `fits`, and each runs the sharded forward. */
static void check_model(test_ctx *t, const char *name, const lc_model *m, const char *fits) {
    char accepted[64] = "";
    size_t len = 0;
    for (int n = 1; n <= 8; n++) {
        shard_plan p;
        lc_error err;
        if (shard_plan_make(lc_model_config(m), n, 1, &p, &err)) continue;
        len += (size_t)snprintf(accepted + len, sizeof accepted - len, "%s%d", len ? " " : "", n);
        check_sharded_matches_engine(t, name, m, n);
    }
    CHECK(t, strcmp(accepted, fits) == 0, "%s: the plan accepts %s ranks, expected %s", name,
          accepted, fits);
}

/* A shared model whose head counts the test relies on, through check_model. */
static void check_shared_model(test_ctx *t, const char *path, const char *name, int heads,
                               int kv_heads, const char *fits) {
    lc_model *m = load_shared_model(t, path);
    if (!m) return;
    const lc_config *c = lc_model_config(m);
    CHECK(t, c->n_heads == heads && c->n_kv_heads == kv_heads, "%s: %d heads, %d kv heads", name,
          c->n_heads, c->n_kv_heads);
    check_model(t, name, m, fits);
    lc_model_free(m);
}

void test_shard_forward_stories260k(test_ctx *t) {
    check_shared_model(t, "models/stories260K.bin", "stories260K", 8, 4, "1 2 4");
}

void test_shard_forward_llama3_hf(test_ctx *t) { /* 2 kv heads: 4 ranks do not fit */
    check_shared_model(t, "models/tiny-gutenberg-llama3.hf", "tiny-gutenberg-llama3", 6, 2, "1 2");
}

void test_shard_forward_mkmodel(test_ctx *t) {
    char path[1024];
    temp_path(path, sizeof path, "shard15M.bin");
    lc_error err;
    if (lc_mkmodel("stories15M", path, &(lc_mkmodel_options){.seed = 11}, &err)) {
        CHECK(t, false, "mkmodel: %s", err.msg);
        return;
    }
    lc_model *m = NULL;
    if (lc_model_load(path, &m, &err)) {
        CHECK(t, false, "%s", err.msg);
    } else {
        check_model(t, "random stories15M", m, "1 2 3 6"); /* 6 heads, 6 kv heads */
        lc_model_free(m);
    }
    remove(path);
}

/* lc_engine_options.tensor_parallel: the plan's errors, then the device's;
 * with enough GPUs, LC_ERR_UNSUPPORTED until the multi-GPU backend exists. */
void test_shard_engine_option(test_ctx *t) {
    lc_model *m = load_shared_model(t, "models/stories260K.bin");
    if (!m) return;
    struct {
        const char *device;
        int n;
        lc_status want;
        const char *msg;
    } cases[] = {
        {"cpu", 0, LC_OK, ""},
        {"cpu", 1, LC_OK, ""},
        {"cpu", 3, LC_ERR_ARG, "4 kv heads do not split evenly over 3 GPUs (use 1, 2 or 4)"},
        {"cpu", 65, LC_ERR_ARG, "must be 1 to 64"},
        {"cpu", 2, LC_ERR_ARG, "--tensor-parallel needs --device cuda"},
        {"cuda", 2, lc_cuda_device_count() >= 2 ? LC_ERR_UNSUPPORTED : LC_ERR_ARG,
         lc_cuda_device_count() >= 2 ? "not built yet" : "--tensor-parallel 2 needs 2 GPUs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lc_engine_options o = {
            .device = cases[i].device, .n_ctx = 8, .tensor_parallel = cases[i].n};
        lc_engine *e = NULL;
        lc_error err = {0};
        lc_status st = lc_engine_create(m, &o, &e, &err);
        CHECK(t, st == cases[i].want && strstr(err.msg, cases[i].msg),
              "--device %s --tensor-parallel %d: %s '%s', expected %s '%s'", cases[i].device,
              cases[i].n, lc_status_name(st), err.msg, lc_status_name(cases[i].want), cases[i].msg);
        CHECK(t, (st == LC_OK) == (e != NULL), "an engine %s with status %s",
              e ? "returned" : "missing", lc_status_name(st));
        lc_engine_free(e);
    }
    lc_model_free(m);
}
