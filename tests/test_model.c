/* Model files: every malformed checkpoint is refused with a message naming
 * the file, and mkmodel writes what the loader reads back. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "llamac.h"

static void write_bytes(const char *path, const void *a, size_t na, const void *b, size_t nb) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (na) fwrite(a, 1, na, f);
    if (nb) fwrite(b, 1, nb, f);
    fclose(f);
}

static void expect_refused(test_ctx *t, const char *path, const char *what, const char *needle) {
    lc_model *m = NULL;
    lc_error err = {0};
    lc_status st = lc_model_load(path, &m, &err);
    CHECK(t, st != LC_OK, "%s: accepted", what);
    CHECK(t, st == LC_OK || strstr(err.msg, path), "%s: message does not name the file: %s", what,
          err.msg);
    CHECK(t, st == LC_OK || !needle || strstr(err.msg, needle), "%s: message lacks '%s': %s", what,
          needle, err.msg);
    lc_model_free(m);
}

void test_model_bad_files(test_ctx *t) {
    char src[1024], path[1024];
    size_t len;
    char *good = read_file(shared_path(src, sizeof src, "models/stories260K.bin"), &len);
    CHECK(t, good != NULL, "cannot read stories260K.bin");
    if (!good) return;
    temp_path(path, sizeof path, "bad.bin");
    static const char zeros[64];

    write_bytes(path, good, len - 100, NULL, 0);
    expect_refused(t, path, "truncated", "truncated");
    write_bytes(path, good, len, zeros, 4);
    expect_refused(t, path, "oversized", "size");
    write_bytes(path, good, 0, NULL, 0);
    expect_refused(t, path, "empty", "empty");
    write_bytes(path, good, 20, NULL, 0);
    expect_refused(t, path, "shorter than a header", "truncated");

    int32_t header[7];
    memcpy(header, good, sizeof header);
    struct {
        int field;
        int32_t value;
        const char *needle;
    } bad[] = {
        {0, -64, "dim"},         {0, 1 << 30, "dim"}, {1, 0, "hidden_dim"},
        {2, 100000, "n_layers"}, {3, 7, "n_heads"},   {4, 3, "n_kv_heads"},
        {4, 16, "n_kv_heads"},   {6, 0, "seq_len"},   {5, INT32_MIN, "vocab_size"},
        {0, 48, "multiple"}, /* dim 48 / 8 heads = 6 is fine, but the size then disagrees */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t h[7];
        memcpy(h, header, sizeof h);
        h[bad[i].field] = bad[i].value;
        write_bytes(path, h, sizeof h, good + sizeof h, len - sizeof h);
        char what[64];
        snprintf(what, sizeof what, "header field %d = %d", bad[i].field, bad[i].value);
        expect_refused(t, path, what, i + 1 == sizeof bad / sizeof bad[0] ? NULL : bad[i].needle);
    }
    /* A version-1 header with a later version number, and a bad shared flag. */
    char *v1 = read_file(shared_path(src, sizeof src, "models/stories260K_v1.bin"), &len);
    CHECK(t, v1 != NULL, "cannot read stories260K_v1.bin");
    if (v1) {
        int32_t version = 3;
        memcpy(v1 + 4, &version, 4);
        write_bytes(path, v1, len, NULL, 0);
        expect_refused(t, path, "version 3", "version 3");
        version = 1;
        memcpy(v1 + 4, &version, 4);
        v1[8 + 28] = 7;
        write_bytes(path, v1, len, NULL, 0);
        expect_refused(t, path, "shared flag 7", "shared_classifier");
        free(v1);
    }
    expect_refused(t, "/nonexistent/model.bin", "missing file", "cannot open");
    expect_refused(t, "/tmp", "a directory without config.json", "config.json");
    expect_refused(t, shared_path(src, sizeof src, "models/tokenizer.bin"), "a tokenizer", NULL);
    remove(path);
    free(good);
}

void test_model_mkmodel_round_trip(test_ctx *t) {
    char path[1024];
    temp_path(path, sizeof path, "mk.bin");
    lc_error err;
    const lc_mkmodel_options o = {.seed = 3};
    CHECK(t, lc_mkmodel("stories260K", path, &o, &err) == LC_OK, "mkmodel: %s", err.msg);
    lc_model *m = NULL;
    CHECK(t, lc_model_load(path, &m, &err) == LC_OK, "load: %s", err.msg);
    if (m) {
        const lc_config *c = lc_model_config(m);
        CHECK(t,
              c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 &&
                  c->n_kv_heads == 4 && c->vocab_size == 512 && c->seq_len == 512 &&
                  c->shared_classifier,
              "config differs from the stories260K shape");
        CHECK(t, lc_model_n_params(m) == 260032, "%llu params",
              (unsigned long long)lc_model_n_params(m));
        lc_model_free(m);
    }
    size_t len;
    char *bytes = read_file(path, &len);
    CHECK(t, bytes && len == 1056540, "file is %zu bytes, llama2.c's is 1056540", len);
    if (bytes && len == 1056540) { /* the embedding, after the 7-int header: normal(0, 0.02) */
        const int n = 512 * 64;
        double sum = 0, sq = 0;
        for (int i = 0; i < n; i++) {
            float v;
            memcpy(&v, bytes + 28 + 4 * (size_t)i, sizeof v);
            sum += v;
            sq += (double)v * v;
        }
        const double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        /* standard errors: 0.02 / sqrt(n) = 1.1e-4 for the mean, ~7.8e-5 for the sd */
        CHECK(t, fabs(mean) < 6e-4 && fabs(sd - 0.02) < 4e-4, "embedding mean %g sd %g", mean, sd);
    }
    free(bytes);
    CHECK(t, lc_mkmodel("stories9000B", path, &o, &err) == LC_ERR_ARG, "unknown shape accepted");
    CHECK(t, lc_mkmodel("stories260K", "/nonexistent/dir/x.bin", &o, &err) == LC_ERR_IO,
          "unwritable path accepted");
    const lc_mkmodel_options bad[] = {{.n_layers = -1}, {.n_layers = 5000}, {.n_threads = -2}};
    for (int i = 0; i < 3; i++)
        CHECK(t, lc_mkmodel("stories260K", path, &bad[i], &err) == LC_ERR_ARG,
              "options %d accepted (layers %d, threads %d)", i, bad[i].n_layers, bad[i].n_threads);
    remove(path);
}

/* --layers writes that many layers of the shape's size, and the weights
 * depend on the seed only: one thread and three write the same bytes (the
 * embedding spans 141 of the generator's chunks, so three threads draw them
 * in rounds, the last one partial). */
void test_model_mkmodel_layers_threads(test_ctx *t) {
    char one[1024], three[1024];
    temp_path(one, sizeof one, "mk1.bin");
    temp_path(three, sizeof three, "mk3.bin");
    lc_error err;
    const lc_mkmodel_options o1 = {.seed = 5, .n_layers = 1, .n_threads = 1};
    const lc_mkmodel_options o3 = {.seed = 5, .n_layers = 1, .n_threads = 3};
    CHECK(t, lc_mkmodel("stories15M", one, &o1, &err) == LC_OK, "mkmodel: %s", err.msg);
    CHECK(t, lc_mkmodel("stories15M", three, &o3, &err) == LC_OK, "mkmodel: %s", err.msg);
    lc_model *m = NULL;
    CHECK(t, lc_model_load(one, &m, &err) == LC_OK, "load: %s", err.msg);
    if (m) {
        const lc_config *c = lc_model_config(m);
        CHECK(t, c->n_layers == 1 && c->dim == 288 && c->hidden_dim == 768, "config %d layers",
              c->n_layers);
        /* embedding + one layer (4 attention, 3 FFN matrices, 2 norms) + the final norm */
        const uint64_t want = 32000ull * 288 + 4 * 288 * 288 + 3 * 288 * 768 + 2 * 288 + 288;
        CHECK(t, lc_model_n_params(m) == want, "%llu params, want %llu",
              (unsigned long long)lc_model_n_params(m), (unsigned long long)want);
        lc_model_free(m);
    }
    size_t n1 = 0, n3 = 0;
    char *b1 = read_file(one, &n1), *b3 = read_file(three, &n3);
    CHECK(t, b1 && b3 && n1 == n3 && memcmp(b1, b3, n1) == 0,
          "1 and 3 threads wrote different files (%zu and %zu bytes)", n1, n3);
    free(b1);
    free(b3);
    remove(one);
    remove(three);
}

void test_model_bytes_per_token(test_ctx *t) {
    lc_model *m;
    if (!(m = load_shared_model(t, "models/tiny-gutenberg-15M.bin"))) return;
    /* Every weight except the RoPE tables; the embedding counts once, as the classifier. */
    uint64_t want = 4ull * (288 * 32000 + 6 * (2 * 288 + 4 * 288 * 288 + 3 * 288 * 768) + 288);
    CHECK(t, lc_model_bytes_per_token(m) == want, "%llu bytes, want %llu",
          (unsigned long long)lc_model_bytes_per_token(m), (unsigned long long)want);
    lc_model_free(m);
}
