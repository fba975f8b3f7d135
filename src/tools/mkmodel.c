/* Random-weight llama2.c checkpoints of the standard shapes, for speed tests
 * on models too large to download here: matrices normal(0, 0.02), norms 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/llama2c.h"

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

typedef struct writer {
    FILE *f;
    const char *path;
    const lc_config *cfg;
    uint64_t rng;
    float buf[1 << 16];
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

static lc_status flush(writer *w, size_t n, lc_error *err) {
    if (fwrite(w->buf, sizeof(float), n, w->f) != n)
        return lc_fail(err, LC_ERR_IO, "%s: write failed (disk full?)", w->path);
    w->written += n;
    if (w->progress) w->progress(w->user, (double)w->written / (double)w->total);
    return LC_OK;
}

/* Writes every tensor the layout lists, the RoPE tables the reader skips included. */
static lc_status write_tensor(void *user, const char *name, int n_dims, const int64_t *shape,
                              bool skip, lc_error *err) {
    writer *w = user;
    const size_t cap = sizeof w->buf / sizeof w->buf[0];
    const int64_t n = n_dims == 1 ? shape[0] : shape[0] * shape[1];
    const bool is_rope = strncmp(name, "rope.", 5) == 0,
               is_sin = strcmp(name, "rope.freq_sin") == 0;
    size_t used = 0;
    for (int64_t i = 0; i < n; i += 2) {
        float a, b;
        if (n_dims == 1) {
            a = b = 1.0f; /* RMSNorm weights */
        } else if (is_rope) {
            /* The tables llama2.c's legacy export writes (readers skip them). */
            const int64_t half = shape[1];
            float v[2];
            for (int j = 0; j < 2; j++) {
                int64_t pos = (i + j) / half, k = (i + j) % half;
                float angle =
                    (float)pos / powf(w->cfg->rope_theta, (float)(2 * k) / (float)w->cfg->head_dim);
                v[j] = is_sin ? sinf(angle) : cosf(angle);
            }
            a = v[0];
            b = v[1];
        } else { /* Box-Muller: two normal(0, 0.02) draws per pair of uniforms */
            double r = 0.02 * sqrt(-2.0 * log(uniform_open(&w->rng)));
            double t = 6.283185307179586 * uniform_open(&w->rng);
            a = (float)(r * cos(t));
            b = (float)(r * sin(t));
        }
        w->buf[used++] = a;
        if (i + 1 < n) w->buf[used++] = b;
        if (used + 2 > cap) {
            lc_status st = flush(w, used, err);
            if (st) return st;
            used = 0;
        }
    }
    return used ? flush(w, used, err) : LC_OK;
}

static lc_status count_floats(void *user, const char *name, int n_dims, const int64_t *shape,
                              bool skip, lc_error *err) {
    *(uint64_t *)user += (uint64_t)(n_dims == 1 ? shape[0] : shape[0] * shape[1]);
    return LC_OK;
}

lc_status lc_mkmodel(const char *shape_name, const char *path, uint64_t seed,
                     lc_progress_fn progress, void *user, lc_error *err) {
    const model_shape *sh = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (strcmp(SHAPES[i].name, shape_name) == 0) sh = &SHAPES[i];
    if (!sh)
        return lc_fail(err, LC_ERR_ARG,
                       "--shape %s: unknown; `llamac mkmodel --help` lists the "
                       "shapes",
                       shape_name);
    lc_config config = sh->config;
    config.head_dim = config.dim / config.n_heads;
    llama2c_default_hparams(&config);
    const lc_config *c = &config;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return lc_fail(err, LC_ERR_ARG, "%s: path too long", path);
    writer *w = calloc(1, sizeof *w);
    if (!w) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    *w = (writer){.path = path,
                  .cfg = c,
                  .rng = seed * 2654435761u + 88172645463325252ull,
                  .progress = progress,
                  .user = user};
    lc_status st = llama2c_layout(c, LLAMA2C_LEGACY, count_floats, &w->total, err);
    if (st) goto done;
    if (!(w->f = fopen(tmp, "wb"))) {
        st = lc_fail(err, LC_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    /* Legacy header; a negative vocab size says the classifier is separate. */
    int32_t header[7] = {c->dim,        c->hidden_dim,
                         c->n_layers,   c->n_heads,
                         c->n_kv_heads, c->shared_classifier ? c->vocab_size : -c->vocab_size,
                         c->seq_len};
    if (fwrite(header, sizeof header, 1, w->f) != 1) {
        st = lc_fail(err, LC_ERR_IO, "%s: write failed", tmp);
        goto done;
    }
    st = llama2c_layout(c, LLAMA2C_LEGACY, write_tensor, w, err);
done:
    if (w->f && fclose(w->f) != 0 && st == LC_OK)
        st = lc_fail(err, LC_ERR_IO, "%s: write failed", tmp);
    if (st == LC_OK && rename(tmp, path) != 0)
        st = lc_fail(err, LC_ERR_IO, "%s: cannot rename", path);
    if (st != LC_OK && w->f) unlink(tmp);
    free(w);
    return st;
}
