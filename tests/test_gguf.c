/* The GGUF reader against malformed input: a small valid file is built byte
 * by byte here (so every field's offset is known), then each field is broken
 * the way llama.cpp's GGUF CVEs did (counts, lengths and offsets past the
 * end, overflowing sizes, unknown types) and the parse must fail with a
 * message naming the problem. Every prefix of the file and every single-byte
 * corruption must fail or succeed cleanly; the sanitizer run checks that no
 * byte outside the buffer is read. */
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "harness.h"
#include "llamac.h"

typedef struct builder {
    uint8_t d[1024];
    size_t n;
} builder;

static size_t put(builder *b, const void *p, size_t n) {
    size_t at = b->n;
    memcpy(b->d + b->n, p, n);
    b->n += n;
    return at;
}
static size_t put_u32(builder *b, uint32_t v) { return put(b, &v, 4); }
static size_t put_u64(builder *b, uint64_t v) { return put(b, &v, 8); }
static size_t put_str(builder *b, const char *s) {
    size_t at = put_u64(b, strlen(s));
    put(b, s, strlen(s));
    return at;
}

/* Where the fields the tests break live in the valid file. */
typedef struct layout {
    size_t n_tensors, n_kv, alignment, str_len, inner_type, bool_value, n_dims, dim0, type, offset;
    size_t second_key;
} layout;

static builder valid_file(layout *at) {
    builder b = {{0}, 0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    at->n_tensors = put_u64(&b, 1);
    at->n_kv = put_u64(&b, 4);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_UINT32);
    at->alignment = put_u32(&b, 32);
    at->second_key = put_str(&b, "s");
    put_u32(&b, GGUF_STRING);
    at->str_len = put_str(&b, "hello");
    put_str(&b, "nested"); /* [[1, 2]]: an array of one array of int32 */
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_ARRAY);
    put_u64(&b, 1);
    at->inner_type = put_u32(&b, GGUF_INT32);
    put_u64(&b, 2);
    put_u32(&b, 1);
    put_u32(&b, 2);
    put_str(&b, "f");
    put_u32(&b, GGUF_BOOL);
    uint8_t one = 1;
    at->bool_value = put(&b, &one, 1);
    put_str(&b, "t"); /* a 2 x 32 f32 matrix */
    at->n_dims = put_u32(&b, 2);
    at->dim0 = put_u64(&b, 32);
    put_u64(&b, 2);
    at->type = put_u32(&b, GGML_TYPE_F32);
    at->offset = put_u64(&b, 0);
    while (b.n % 32) b.d[b.n++] = 0;
    for (int i = 0; i < 64; i++) {
        float x = (float)i;
        put(&b, &x, 4);
    }
    return b;
}

static void patch_u32(builder *b, size_t at, uint32_t v) { memcpy(b->d + at, &v, 4); }
static void patch_u64(builder *b, size_t at, uint64_t v) { memcpy(b->d + at, &v, 8); }

static void expect_fails(test_ctx *t, const builder *b, size_t n, const char *what,
                         const char *needle) {
    gguf_file g;
    lc_error err = {0};
    lc_status st = gguf_parse(&g, b->d, n, "bad.gguf", &err);
    CHECK(t, st != LC_OK, "%s: accepted", what);
    CHECK(t, st == LC_OK || strstr(err.msg, needle), "%s: message lacks '%s': %s", what, needle,
          err.msg);
    CHECK(t, st == LC_OK || strncmp(err.msg, "bad.gguf: ", 10) == 0,
          "%s: message does not name the file: %s", what, err.msg);
    CHECK(t, st == LC_OK || !strchr(err.msg, '\n'), "%s: message is not one line", what);
    gguf_free(&g);
}

void test_gguf_reads_valid_file(test_ctx *t) {
    layout at;
    builder b = valid_file(&at);
    gguf_file g;
    lc_error err;
    CHECK(t, gguf_parse(&g, b.d, b.n, "ok.gguf", &err) == LC_OK, "%s", err.msg);
    if (t->failures) return;
    CHECK(t, g.version == 3 && g.n_kv == 4 && g.n_tensors == 1 && g.alignment == 32,
          "header fields");
    gguf_str s;
    bool flag = false;
    gguf_array nested;
    CHECK(t, gguf_get_string(&g, "s", false, &s, &err) == LC_OK && gguf_str_eq(s, "hello"),
          "string value");
    CHECK(t, gguf_get_bool(&g, "f", false, &flag, &err) == LC_OK && flag, "bool value");
    CHECK(t,
          gguf_get_array(&g, "nested", GGUF_ARRAY, false, &nested, &err) == LC_OK &&
              nested.count == 1,
          "nested array");
    int64_t v;
    CHECK(t, gguf_get_int(&g, "s", false, 0, 10, &v, &err) == LC_ERR_FORMAT, "string as int");
    CHECK(t,
          gguf_get_int(&g, "missing", false, 0, 10, &v, &err) == LC_ERR_FORMAT &&
              strstr(err.msg, "missing"),
          "missing key");
    const gguf_tensor_info *ti = &g.tensors[0];
    CHECK(t, ti->ne[0] == 32 && ti->ne[1] == 2 && ti->dtype == LC_DTYPE_F32 && ti->bytes == 256,
          "tensor info");
    CHECK(t, ti->offset == g.data_offset && g.data_offset % 32 == 0 && g.data_offset + 256 == b.n,
          "data placement");
    tensor_table tt = {0};
    CHECK(t, gguf_tensor_table(&g, &tt, &err) == LC_OK && tt.count == 1, "tensor table");
    if (tt.count == 1) {
        /* GGUF's ne = {32, 2} is our row-major {2, 32}, data straight from the buffer. */
        CHECK(t, tt.items[0].shape[0] == 2 && tt.items[0].shape[1] == 32, "shape reversed");
        CHECK(t, ((const float *)tt.items[0].data)[33] == 33.0f, "data pointer");
    }
    tensor_table_free(&tt);
    gguf_free(&g);
}

void test_gguf_rejects_malformed(test_ctx *t) {
    layout at;
    const builder good = valid_file(&at);
    builder b;
#define BROKEN(what, needle, edit)                                                                 \
    do {                                                                                           \
        b = good;                                                                                  \
        edit;                                                                                      \
        expect_fails(t, &b, b.n, what, needle);                                                    \
    } while (0)
    expect_fails(t, &good, good.n - 10, "truncated data", "past the end");
    expect_fails(t, &good, at.offset + 4, "truncated tensor info", "truncated");
    expect_fails(t, &good, 3, "shorter than the magic", "not a GGUF");
    BROKEN("huge tensor count", "tensors", patch_u64(&b, at.n_tensors, UINT64_MAX / 2));
    BROKEN("huge metadata count", "metadata pairs", patch_u64(&b, at.n_kv, 1ull << 60));
    BROKEN("offset past the end", "past the end", patch_u64(&b, at.offset, 1ull << 40));
    BROKEN("offset wraps around", "past the end", patch_u64(&b, at.offset, UINT64_MAX - 31));
    BROKEN("unaligned offset", "multiple of the alignment", patch_u64(&b, at.offset, 4));
    BROKEN("unknown tensor type", "unsupported tensor type 3 (t)", patch_u32(&b, at.type, 3));
    BROKEN("string length past the end", "past the end", patch_u64(&b, at.str_len, 1u << 20));
    BROKEN("string length 2^64-1", "past the end", patch_u64(&b, at.str_len, UINT64_MAX));
    BROKEN("key length past the end", "past the end", patch_u64(&b, at.second_key, 5000));
    BROKEN("alignment 0", "general.alignment 0", patch_u32(&b, at.alignment, 0));
    BROKEN("alignment 48", "not a power of two", patch_u32(&b, at.alignment, 48));
    BROKEN("nested array of bad type", "unknown type 99", patch_u32(&b, at.inner_type, 99));
    BROKEN("n_dims 5", "5 dimensions", patch_u32(&b, at.n_dims, 5));
    BROKEN("n_dims 0", "0 dimensions", patch_u32(&b, at.n_dims, 0));
    BROKEN("size overflow", "overflows", patch_u64(&b, at.dim0, 1ull << 62));
    BROKEN("byte size overflow", "overflows",
           (patch_u64(&b, at.dim0, 1ull << 61), patch_u64(&b, at.dim0 + 8, 2)));
    BROKEN("zero dimension", "dimension 0", patch_u64(&b, at.dim0, 0));
    BROKEN("q8_0 row not whole blocks", "blocks",
           (patch_u64(&b, at.dim0, 16), patch_u32(&b, at.type, GGML_TYPE_Q8_0)));
    BROKEN("bool 2", "neither 0 nor 1", b.d[at.bool_value] = 2);
    BROKEN("version 1", "version 1", patch_u32(&b, 4, 1));
    BROKEN("version 4", "version 4", patch_u32(&b, 4, 4));
    BROKEN("big-endian", "big-endian", patch_u32(&b, 4, 3u << 24));
    BROKEN("duplicate key", "appears twice", memcpy(b.d + at.second_key + 8, "f", 1));
    BROKEN("alignment of another type", "not a uint32",
           patch_u32(&b, at.alignment - 4, GGUF_INT32));
#undef BROKEN
    /* Every prefix fails cleanly; every single-byte corruption either parses
     * or fails with a message (ASan/UBSan watch for anything worse). */
    int prefixes_failed = 0;
    for (size_t n = 0; n < good.n; n++) {
        gguf_file g;
        lc_error err;
        if (gguf_parse(&g, good.d, n, "p.gguf", &err) != LC_OK) prefixes_failed++;
        gguf_free(&g);
    }
    CHECK(t, prefixes_failed == (int)good.n, "%d of %zu prefixes parsed",
          (int)good.n - prefixes_failed, good.n);
    for (size_t i = 0; i < good.n; i++)
        for (int bit = 0; bit < 8; bit++) {
            b = good;
            b.d[i] ^= (uint8_t)(1u << bit);
            gguf_file g;
            lc_error err = {0};
            if (gguf_parse(&g, b.d, b.n, "flip.gguf", &err) != LC_OK)
                CHECK(t, err.msg[0] != '\0', "byte %zu bit %d: failure without a message", i, bit);
            gguf_free(&g);
        }
}

void test_gguf_model_errors_name_the_file(test_ctx *t) {
    layout at;
    builder b = valid_file(&at);
    char path[1024];
    temp_path(path, sizeof path, "bad.gguf");
    FILE *f = fopen(path, "wb");
    CHECK(t, f != NULL, "cannot write %s", path);
    if (!f) return;
    fwrite(b.d, 1, b.n, f);
    fclose(f);
    lc_model *m = NULL;
    lc_error err;
    /* A valid GGUF that is no llama model: the missing key is named. */
    CHECK(t, lc_model_load(path, &m, &err) != LC_OK, "accepted a file without architecture");
    CHECK(t, strstr(err.msg, path) && strstr(err.msg, "general.architecture"), "message: %s",
          err.msg);
    lc_model_free(m);
    lc_tokenizer *tok = NULL;
    CHECK(t,
          lc_tokenizer_load(path, &tok, &err) != LC_OK && strstr(err.msg, "tokenizer.ggml.model"),
          "vocabulary-less GGUF as tokenizer: %s", err.msg);
    lc_tokenizer_free(tok);
    remove(path);
}
