#include "hf_folder.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"

bool st_read_shared(test_ctx *t, const char *rel, st_file *f) {
    char path[1024];
    size_t len = 0;
    memset(f, 0, sizeof *f);
    f->bytes = read_file(shared_path(path, sizeof path, rel), &len);
    uint64_t n = 0;
    if (f->bytes && len >= 8) memcpy(&n, f->bytes, 8); /* little-endian hosts only */
    if (f->bytes && n <= len - 8) f->header = cJSON_ParseWithLength(f->bytes + 8, (size_t)n);
    CHECK(t, f->header != NULL, "%s: unreadable", path);
    if (!f->header) return false;
    f->data = (uint8_t *)f->bytes + 8 + n;
    f->data_len = len - 8 - (size_t)n;
    return true;
}

void st_free(st_file *f) {
    cJSON_Delete(f->header);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const uint8_t *st_tensor(const st_file *f, const char *name, size_t *bytes) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!o) return NULL;
    size_t begin = (size_t)cJSON_GetArrayItem(o, 0)->valuedouble;
    *bytes = (size_t)cJSON_GetArrayItem(o, 1)->valuedouble - begin;
    return f->data + begin;
}

void st_write(const char *dir, const char *name, const cJSON *header, const void *data,
              size_t data_len) {
    char *text = cJSON_PrintUnformatted(header);
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    size_t total = 8 + padded + data_len;
    uint8_t *buf = malloc(total);
    uint64_t le = padded;
    memcpy(buf, &le, 8);
    memcpy(buf + 8, text, n);
    memset(buf + 8 + n, ' ', padded - n);
    if (data_len) memcpy(buf + 8 + padded, data, data_len);
    hf_write(dir, name, buf, total);
    free(buf);
    cJSON_free(text);
}

const char *hf_mkdir(char *buf, size_t cap, const char *name) {
    temp_path(buf, cap, name);
    hf_rmdir(buf);
    mkdir(buf, 0700);
    return buf;
}

void hf_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[2048];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

void hf_write(const char *dir, const char *name, const void *data, size_t len) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path); /* it may be a link into ../shared */
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

void hf_write_json(const char *dir, const char *name, const cJSON *json) {
    char *text = cJSON_Print(json);
    hf_write(dir, name, text, strlen(text));
    cJSON_free(text);
}

void hf_link_shared(const char *dir, const char *name, const char *rel) {
    char src[1024], abs[PATH_MAX], path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (realpath(shared_path(src, sizeof src, rel), abs) && symlink(abs, path) != 0) perror(path);
}

cJSON *hf_read_json_shared(test_ctx *t, const char *rel) {
    char path[1024];
    char *text = read_file(shared_path(path, sizeof path, rel), NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(t, j != NULL, "%s: unreadable", path);
    return j;
}

/* normal(0, sd) by Box-Muller from a splitmix64 stream */
static float normal_draw(uint64_t *state, float sd) {
    uint64_t z[2];
    for (int i = 0; i < 2; i++) {
        uint64_t x = (*state += 0x9e3779b97f4a7c15ull);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        z[i] = x ^ (x >> 31);
    }
    const double u1 = ((double)(z[0] >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    const double u2 = (double)(z[1] >> 11) / 9007199254740992.0;
    return (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Appends tensor `name` of rows x cols (cols 0: a vector) to the header and data. */
static void add_random_tensor(cJSON *h, float *data, size_t *at, const char *name, int rows,
                              int cols, float sd, uint64_t *state) {
    const size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    for (size_t i = 0; i < n; i++) data[*at + i] = cols ? normal_draw(state, sd) : 1.0f;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(rows));
    if (cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(cols));
    cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(*at * 4)));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)((*at + n) * 4)));
    cJSON_AddItemToObject(h, name, e);
    *at += n;
}

void hf_write_random_llama(const char *dir, const hf_shape *s, uint64_t seed) {
    const int q = s->heads * s->head_dim, kv = s->kv_heads * s->head_dim;
    const size_t per_layer = (size_t)s->dim * (2 + 2 * (size_t)q + 2 * (size_t)kv) +
                             3 * (size_t)s->dim * (size_t)s->hidden;
    float *data = malloc(((size_t)s->vocab * s->dim + s->dim + s->layers * per_layer) * 4);
    if (!data) return;
    cJSON *h = cJSON_CreateObject();
    size_t at = 0;
    uint64_t state = seed;
    char name[128];
    add_random_tensor(h, data, &at, "model.embed_tokens.weight", s->vocab, s->dim, 0.02f, &state);
    add_random_tensor(h, data, &at, "model.norm.weight", s->dim, 0, 0, &state);
    for (int l = 0; l < s->layers; l++) {
        const struct {
            const char *what;
            int rows, cols;
            float sd;
        } parts[] = {
            {"input_layernorm", s->dim, 0, 0},           {"self_attn.q_proj", q, s->dim, s->qk_sd},
            {"self_attn.k_proj", kv, s->dim, s->qk_sd},  {"self_attn.v_proj", kv, s->dim, 0.02f},
            {"self_attn.o_proj", s->dim, q, 0.02f},      {"post_attention_layernorm", s->dim, 0, 0},
            {"mlp.gate_proj", s->hidden, s->dim, 0.02f}, {"mlp.up_proj", s->hidden, s->dim, 0.02f},
            {"mlp.down_proj", s->dim, s->hidden, 0.02f}};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, parts[i].what);
            add_random_tensor(h, data, &at, name, parts[i].rows, parts[i].cols, parts[i].sd,
                              &state);
        }
    }
    st_write(dir, "model.safetensors", h, data, at * 4);
    cJSON_Delete(h);
    free(data);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", "llama");
    const struct {
        const char *key;
        double value;
    } keys[] = {{"hidden_size", s->dim},
                {"intermediate_size", s->hidden},
                {"num_hidden_layers", s->layers},
                {"num_attention_heads", s->heads},
                {"num_key_value_heads", s->kv_heads},
                {"head_dim", s->head_dim},
                {"vocab_size", s->vocab},
                {"max_position_embeddings", s->ctx},
                {"rms_norm_eps", 1e-5},
                {"rope_theta", 10000},
                {"bos_token_id", 1}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cJSON_AddNumberToObject(c, keys[i].key, keys[i].value);
    cJSON_AddTrueToObject(c, "tie_word_embeddings");
    hf_write_json(dir, "config.json", c);
    cJSON_Delete(c);
}

void hf_check_same_weights(test_ctx *t, const lc_model *a, const lc_model *b, const char *what) {
    const lc_config *ca = &a->config, *cb = &b->config;
    CHECK(t,
          ca->dim == cb->dim && ca->hidden_dim == cb->hidden_dim && ca->n_layers == cb->n_layers &&
              ca->n_heads == cb->n_heads && ca->n_kv_heads == cb->n_kv_heads &&
              ca->head_dim == cb->head_dim && ca->vocab_size == cb->vocab_size &&
              ca->seq_len == cb->seq_len && ca->rope_theta == cb->rope_theta &&
              ca->norm_eps == cb->norm_eps && ca->shared_classifier == cb->shared_classifier &&
              ca->rope_scaling == cb->rope_scaling,
          "%s: configs differ", what);
    if (ca->n_layers != cb->n_layers) return;
    weight *wa[4096], *wb[4096];
    int na = model_weight_list(&a->weights, ca->n_layers, wa, 4096);
    int nb = model_weight_list(&b->weights, cb->n_layers, wb, 4096);
    CHECK(t, na == nb && na <= 4096, "%s: %d weights against %d", what, na, nb);
    for (int i = 0; i < na && i < nb && i < 4096; i++) {
        const weight *x = wa[i], *y = wb[i];
        bool same = x->dtype == y->dtype && x->rows == y->rows && x->cols == y->cols &&
                    !memcmp(x->data, y->data, (size_t)weight_bytes(x));
        CHECK(t, same, "%s: weight %d differs (%s [%lld, %lld] against %s [%lld, %lld])", what, i,
              lc_dtype_name(x->dtype), (long long)x->rows, (long long)x->cols,
              lc_dtype_name(y->dtype), (long long)y->rows, (long long)y->cols);
    }
}
