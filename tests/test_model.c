/* Model files: every malformed checkpoint is refused with a message naming
 * the file, and mkmodel writes what the loader reads back. */
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
    CHECK(t, lc_mkmodel("stories260K", path, 3, NULL, NULL, &err) == LC_OK, "mkmodel: %s", err.msg);
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
    free(bytes);
    CHECK(t, lc_mkmodel("stories9000B", path, 3, NULL, NULL, &err) == LC_ERR_ARG,
          "unknown shape accepted");
    CHECK(t, lc_mkmodel("stories260K", "/nonexistent/dir/x.bin", 3, NULL, NULL, &err) == LC_ERR_IO,
          "unwritable path accepted");
    remove(path);
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
