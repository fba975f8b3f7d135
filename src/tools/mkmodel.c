/* Random-weight llama2.c checkpoints of the standard shapes, for speed tests
 * on models too large to download here: matrices normal(0, 0.02), norms 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/threadpool.h"
#include "core/error.h"
#include "formats/llama2c.h"

#define MAX_LAYERS 1024 /* --layers: far past any Llama, short of absurd files */

typedef struct model_shape {
    const char *name;
    lc_config config;
} model_shape;

/* The tinyllamas configs (karpathy/llama2.c README) and Llama 2 7B's
 * params.json; head_dim and the Llama 2 defaults are filled in by lc_mkmodel. */
static const model_shape SHAPES[] = {
    {"stories260K",
     {.dim = 64,
      .hidden_dim = 172,
      .n_layers = 5,
      .n_heads = 8,
      .n_kv_heads = 4,
      .vocab_size = 512,
      .seq_len = 512,
      .shared_classifier = true}},
    {"stories15M",
     {.dim = 288,
      .hidden_dim = 768,
      .n_layers = 6,
      .n_heads = 6,
      .n_kv_heads = 6,
      .vocab_size = 32000,
      .seq_len = 256,
      .shared_classifier = true}},
    {"stories42M",
     {.dim = 512,
      .hidden_dim = 1376,
      .n_layers = 8,
      .n_heads = 8,
      .n_kv_heads = 8,
      .vocab_size = 32000,
      .seq_len = 1024,
      .shared_classifier = true}},
    {"stories110M",
     {.dim = 768,
      .hidden_dim = 2048,
      .n_layers = 12,
      .n_heads = 12,
      .n_kv_heads = 12,
      .vocab_size = 32000,
      .seq_len = 1024,
      .shared_classifier = true}},
    {"llama2-7b",
     {.dim = 4096,
      .hidden_dim = 11008,
      .n_layers = 32,
      .n_heads = 32,
      .n_kv_heads = 32,
      .vocab_size = 32000,
      .seq_len = 4096,
      .shared_classifier = false}},
};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

const char *lc_mkmodel_shape(int i) {
    return i >= 0 && (size_t)i < N_SHAPES ? SHAPES[i].name : NULL;
}

/* Floats one task draws from a random stream of its own, seeded by (seed,
 * tensor, chunk): the weights do not depend on how many threads draw them. */
#define CHUNK (1 << 16)

typedef struct writer {
    FILE *f;
    const char *path;
    const lc_config *cfg;
    uint64_t seed;
    int tensor_index; /* index of the tensor being written, in layout order */
    threadpool *pool;
    int n_threads;
    float *bufs;             /* n_threads chunks */
    uint64_t written, total; /* floats */
    lc_progress_fn progress;
    void *user;
} writer;

static double uniform_open(uint64_t *s) { /* (0, 1), never 0: log() needs that */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return ((double)(*s >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* A xorshift state for chunk `chunk` of tensor `tensor_index` (splitmix64's mixer:
 * nearby inputs give unrelated states). Never 0, which xorshift cannot leave. */
static uint64_t stream_state(uint64_t seed, int tensor_index, int64_t chunk) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (uint64_t)tensor_index * 0xd1b54a32d192ed03ull +
                 (uint64_t)chunk * 0x8cb92ba72f3d8dd7ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 0x9e3779b97f4a7c15ull;
}

static lc_status flush(writer *w, const float *data, size_t n, lc_error *err) {
    if (fwrite(data, sizeof(float), n, w->f) != n)
        return lc_fail(err, LC_ERR_IO, "%s: write failed (disk full?)", w->path);
    w->written += n;
    if (w->progress) w->progress(w->user, (double)w->written / (double)w->total);
    return LC_OK;
}

typedef struct draw_job {
    writer *w;
    int64_t n, first_chunk; /* the tensor's floats; the chunk task 0 draws */
    int tensor_index;
} draw_job;

/* Task i of a draw_job: chunk first_chunk + i, normal(0, 0.02) by
 * Box-Muller (two draws per pair of uniforms), into the i-th buffer. */
static void draw_chunk(void *ctx, int64_t task, int thread) {
    const draw_job *j = ctx;
    const int64_t chunk = j->first_chunk + task, i0 = chunk * CHUNK;
    const int64_t m = j->n - i0 < CHUNK ? j->n - i0 : CHUNK;
    float *out = j->w->bufs + task * CHUNK;
    uint64_t s = stream_state(j->w->seed, j->tensor_index, chunk);
    for (int64_t i = 0; i < m; i += 2) {
        const double r = 0.02 * sqrt(-2.0 * log(uniform_open(&s)));
        const double t = 6.283185307179586 * uniform_open(&s);
        out[i] = (float)(r * cos(t));
        if (i + 1 < m) out[i + 1] = (float)(r * sin(t));
    }
}

/* A random matrix of n floats: n_threads chunks drawn at once, written in order. */
static lc_status write_random(writer *w, int tensor_index, int64_t n, lc_error *err) {
    const int64_t n_chunks = (n + CHUNK - 1) / CHUNK;
    for (int64_t c0 = 0; c0 < n_chunks; c0 += w->n_threads) {
        const int64_t k = n_chunks - c0 < w->n_threads ? n_chunks - c0 : w->n_threads;
        draw_job job = {w, n, c0, tensor_index};
        threadpool_run(w->pool, k, draw_chunk, &job);
        const int64_t end = (c0 + k) * CHUNK < n ? (c0 + k) * CHUNK : n;
        lc_status st = flush(w, w->bufs, (size_t)(end - c0 * CHUNK), err);
        if (st) return st;
    }
    return LC_OK;
}

/* Element i of the RoPE table llama2.c's legacy export writes (readers skip
 * them): rows of `half` frequencies, one row per position. */
static float rope_value(const lc_config *c, int64_t half, bool is_sin, int64_t i) {
    const int64_t pos = i / half, k = i % half;
    const float angle = (float)pos / powf(c->rope_theta, (float)(2 * k) / (float)c->head_dim);
    return is_sin ? sinf(angle) : cosf(angle);
}

/* Writes every tensor the layout lists, the RoPE tables the reader skips included. */
static lc_status write_tensor(void *user, const char *name, int n_dims, const int64_t *shape,
                              bool skip, lc_error *err) {
    writer *w = user;
    const int64_t n = n_dims == 1 ? shape[0] : shape[0] * shape[1];
    const bool is_rope = strncmp(name, "rope.", 5) == 0,
               is_sin = strcmp(name, "rope.freq_sin") == 0;
    const int tensor_index = w->tensor_index++;
    if (n_dims == 2 && !is_rope) return write_random(w, tensor_index, n, err);
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) { /* RMSNorm weights (1) or a RoPE table */
        const int64_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (int64_t i = 0; i < m; i++)
            w->bufs[i] = n_dims == 1 ? 1.0f : rope_value(w->cfg, shape[1], is_sin, i0 + i);
        lc_status st = flush(w, w->bufs, (size_t)m, err);
        if (st) return st;
    }
    return LC_OK;
}

static lc_status count_floats(void *user, const char *name, int n_dims, const int64_t *shape,
                              bool skip, lc_error *err) {
    *(uint64_t *)user += (uint64_t)(n_dims == 1 ? shape[0] : shape[0] * shape[1]);
    return LC_OK;
}

lc_status lc_mkmodel(const char *shape_name, const char *path, const lc_mkmodel_options *o,
                     lc_error *err) {
    const model_shape *sh = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (strcmp(SHAPES[i].name, shape_name) == 0) sh = &SHAPES[i];
    if (!sh)
        return lc_fail(err, LC_ERR_ARG,
                       "--shape %s: unknown; `llamac mkmodel --help` lists the "
                       "shapes",
                       shape_name);
    if (o->n_layers < 0 || o->n_layers > MAX_LAYERS)
        return lc_fail(err, LC_ERR_ARG, "--layers %d: expected 1 to %d (0: the shape's)",
                       o->n_layers, MAX_LAYERS);
    if (o->n_threads < 0 || o->n_threads > 1024)
        return lc_fail(err, LC_ERR_ARG, "--threads %d: expected 1 to 1024 (0: every core)",
                       o->n_threads);
    lc_config config = sh->config;
    if (o->n_layers) config.n_layers = o->n_layers;
    config.head_dim = config.dim / config.n_heads;
    llama2c_default_hparams(&config);
    const lc_config *c = &config;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return lc_fail(err, LC_ERR_ARG, "%s: path too long", path);
    writer w = {.path = path,
                .cfg = c,
                .seed = o->seed,
                .n_threads = o->n_threads ? o->n_threads : lc_n_cores(),
                .progress = o->progress,
                .user = o->user};
    lc_status st = threadpool_create(w.n_threads, &w.pool, err);
    if (st) return st;
    if (!(w.bufs = malloc((size_t)w.n_threads * CHUNK * sizeof(float)))) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory for %d chunks of weights", w.n_threads);
        goto done;
    }
    st = llama2c_layout(c, LLAMA2C_LEGACY, count_floats, &w.total, err);
    if (st) goto done;
    if (!(w.f = fopen(tmp, "wb"))) {
        st = lc_fail(err, LC_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    /* Legacy header; a negative vocab size says the classifier is separate. */
    int32_t header[7] = {c->dim,        c->hidden_dim,
                         c->n_layers,   c->n_heads,
                         c->n_kv_heads, c->shared_classifier ? c->vocab_size : -c->vocab_size,
                         c->seq_len};
    if (fwrite(header, sizeof header, 1, w.f) != 1) {
        st = lc_fail(err, LC_ERR_IO, "%s: write failed", tmp);
        goto done;
    }
    st = llama2c_layout(c, LLAMA2C_LEGACY, write_tensor, &w, err);
done:
    if (w.f && fclose(w.f) != 0 && st == LC_OK)
        st = lc_fail(err, LC_ERR_IO, "%s: write failed", tmp);
    if (st == LC_OK && rename(tmp, path) != 0)
        st = lc_fail(err, LC_ERR_IO, "%s: cannot rename", path);
    if (st != LC_OK && w.f) unlink(tmp);
    free(w.bufs);
    threadpool_free(w.pool);
    return st;
}
