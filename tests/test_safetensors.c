/* The safetensors reader: every malformed header is a one-line error naming
 * the file (and the tensor), never a crash; sharded folders load to the same
 * weights as one file, and a broken index or shard is refused. Buffers are
 * allocated to their exact size so the sanitizer build sees any overread. */
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "harness.h"
#include "hf_folder.h"
#include "llamac.h"

#define NAME "x.safetensors"

/* Parses an 8-byte header length `len`, `header`, then `data_len` zero bytes. */
static lc_status parse(uint64_t len, const char *header, size_t data_len, tensor_table *tt,
                       lc_error *err) {
    const size_t n = strlen(header), total = 8 + n + data_len;
    uint8_t *buf = calloc(1, total);
    memcpy(buf, &len, 8);
    memcpy(buf + 8, header, n);
    lc_status st = safetensors_parse(buf, total, NAME, tt, err);
    free(buf);
    return st;
}

static void expect_bad_len(test_ctx *t, uint64_t len, const char *header, size_t data_len,
                           const char *needle) {
    tensor_table tt = {0};
    lc_error err = {0};
    lc_status st = parse(len, header, data_len, &tt, &err);
    CHECK(t, st != LC_OK, "accepted: %.80s", header);
    CHECK(t, st == LC_OK || (strstr(err.msg, NAME) && strstr(err.msg, needle)),
          "'%.60s': message lacks the file or '%s': %s", header, needle, err.msg);
    CHECK(t, tt.count == 0, "'%.60s': %d tensors left in the table", header, tt.count);
    tensor_table_free(&tt);
}

static void expect_bad(test_ctx *t, const char *header, const char *needle) {
    expect_bad_len(t, strlen(header), header, 32, needle);
}

/* Two tensors in 32 bytes, with `a` described by a_entry. */
static const char *with_a(char *buf, size_t cap, const char *a_entry) {
    snprintf(buf, cap,
             "{\"__metadata__\":{\"format\":\"pt\"},\"a\":%s,"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}",
             a_entry);
    return buf;
}

void test_safetensors_reads_valid_header(test_ctx *t) {
    char h[512];
    with_a(h, sizeof h, "{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}");
    const size_t n = strlen(h);
    uint8_t *buf = calloc(1, 8 + n + 2 + 32);
    const uint64_t len = n + 2; /* trailing spaces pad the header, as writers do */
    memcpy(buf, &len, 8);
    memcpy(buf + 8, h, n);
    memcpy(buf + 8 + n, "  ", 2);
    tensor_table tt = {0};
    lc_error err;
    CHECK(t, safetensors_parse(buf, 8 + len + 32, NAME, &tt, &err) == LC_OK, "%s", err.msg);
    CHECK(t, tt.count == 2, "%d tensors", tt.count);
    if (tt.count == 2) {
        const tensor *a = &tt.items[0], *b = &tt.items[1];
        CHECK(t,
              !strcmp(a->name, "a") && a->dtype == LC_DTYPE_F32 && a->n_dims == 2 &&
                  a->shape[0] == 2 && a->shape[1] == 3 && a->data == buf + 8 + len,
              "tensor a misread");
        CHECK(t,
              !strcmp(b->name, "b") && b->dtype == LC_DTYPE_BF16 && b->n_dims == 1 &&
                  b->shape[0] == 4 && b->data == buf + 8 + len + 24,
              "tensor b misread");
    }
    tensor_table_free(&tt);
    free(buf);
    /* Empty tensors take no bytes and overlap nothing; F16 is read too. */
    CHECK(t, parse(0, "", 0, &tt, &err) != LC_OK, "an empty header accepted");
    const char *empty = "{\"e\":{\"dtype\":\"F16\",\"shape\":[0,8],\"data_offsets\":[4,4]},"
                        "\"f\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}";
    CHECK(t, parse(strlen(empty), empty, 8, &tt, &err) == LC_OK, "%s", err.msg);
    CHECK(t, tt.count == 2, "%d tensors", tt.count);
    tensor_table_free(&tt);
}

void test_safetensors_rejects_malformed(test_ctx *t) {
    char h[1024];
    /* The header length itself. */
    {
        tensor_table tt = {0};
        lc_error err = {0};
        uint8_t four[4] = {1, 0, 0, 0};
        CHECK(t,
              safetensors_parse(four, 4, NAME, &tt, &err) == LC_ERR_FORMAT &&
                  strstr(err.msg, "truncated"),
              "a 4-byte file: %s", err.msg);
    }
    expect_bad_len(t, 1000, "{}", 20, "runs past the end");
    expect_bad_len(t, UINT64_MAX, "{}", 20, "over the");
    expect_bad_len(t, (uint64_t)1 << 62, "{}", 20, "over the");
    expect_bad_len(t, 0, "", 32, "empty JSON");
    /* The JSON. */
    expect_bad(t, "{\"a\":", "malformed JSON");
    expect_bad(t, "{\"a\":{\"dtype\":\"F32\"} ", "malformed JSON");
    expect_bad(t, "[1,2]", "not a JSON object");
    expect_bad(t, "{} x", "text after");
    {
        char deep[6001]; /* past cJSON's nesting limit: refused, not a stack overflow */
        for (int i = 0; i < 3000; i++) deep[i] = '[', deep[3000 + i] = ']';
        deep[6000] = '\0';
        expect_bad(t, deep, "malformed JSON");
    }
    /* Each tensor entry. */
    const struct {
        const char *a, *needle;
    } bad[] = {
        {"5", "not a JSON object"},
        {"{\"shape\":[2,3],\"data_offsets\":[0,24]}", "no dtype"},
        {"{\"dtype\":7,\"shape\":[2,3],\"data_offsets\":[0,24]}", "no dtype"},
        {"{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}", "tensor a: dtype I64"},
        {"{\"dtype\":\"F8_E4M3\",\"shape\":[24],\"data_offsets\":[0,24]}", "dtype F8_E4M3"},
        {"{\"dtype\":\"f32\",\"shape\":[2,3],\"data_offsets\":[0,24]}", "dtype f32"},
        {"{\"dtype\":\"F32\",\"shape\":\"2x3\",\"data_offsets\":[0,24]}", "shape"},
        {"{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}", "shape"},
        {"{\"dtype\":\"F32\",\"shape\":[1,1,1,1,6],\"data_offsets\":[0,24]}", "shape"},
        {"{\"dtype\":\"F32\",\"shape\":[-2,-3],\"data_offsets\":[0,24]}", "shape entry 0"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3.5],\"data_offsets\":[0,24]}", "shape entry 1"},
        {"{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,24]}", "shape entry 0"},
        {"{\"dtype\":\"F32\",\"shape\":[2,\"3\"],\"data_offsets\":[0,24]}", "shape entry 1"},
        {"{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}", "needs 32 bytes of F32"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}", "hold 20"},
        {"{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,24]}",
         "more than 2^64"},
        {"{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],\"data_offsets\":[0,"
         "24]}",
         "more than 2^64"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,40]}", "past the 32-byte"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}", "overlap"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[25,1]}", "end before they begin"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0]}", "data_offsets"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,24]}", "data_offsets"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,\"24\"]}", "data_offsets"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[-8,16]}", "data_offsets"},
        {"{\"dtype\":\"F32\",\"shape\":[2,3]}", "data_offsets"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad(t, with_a(h, sizeof h, bad[i].a), bad[i].needle);
    /* A name too long for the tensor table, and an unsupported dtype's status. */
    expect_bad(t,
               "{\"model.layers.0.self_attn.a_name_much_longer_than_any_llama_tensor.weight\":"
               "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               "longer than");
    tensor_table tt = {0};
    lc_error err;
    const char *i8 = "{\"a\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
    CHECK(t, parse(strlen(i8), i8, 32, &tt, &err) == LC_ERR_UNSUPPORTED,
          "an I8 tensor is not LC_ERR_UNSUPPORTED: %s", err.msg);
    tensor_table_free(&tt);
}

/* ---- sharded folders ---------------------------------------------------- */

typedef struct shards {
    cJSON *header[2];
    uint8_t *data[2];
    size_t len[2];
    cJSON *index;
} shards;

static const char *SHARD[2] = {"model-00001-of-00002.safetensors",
                               "model-00002-of-00002.safetensors"};

/* stories260K.hf split in two: the embedding and layers 0-1, then the rest. */
static void split(const st_file *f, shards *s) {
    memset(s, 0, sizeof *s);
    s->index = cJSON_CreateObject();
    cJSON *map = cJSON_AddObjectToObject(s->index, "weight_map");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(s->index, "metadata"), "total_size",
                            (double)f->data_len);
    for (int k = 0; k < 2; k++) {
        s->header[k] = cJSON_CreateObject();
        s->data[k] = malloc(f->data_len);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const int k = strstr(e->string, "embed") || strstr(e->string, "layers.0.") ||
                              strstr(e->string, "layers.1.")
                          ? 0
                          : 1;
        size_t bytes;
        const uint8_t *src = st_tensor(f, e->string, &bytes);
        cJSON *copy = cJSON_Duplicate(e, true);
        cJSON *off = cJSON_GetObjectItem(copy, "data_offsets");
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), (double)s->len[k]);
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), (double)(s->len[k] + bytes));
        memcpy(s->data[k] + s->len[k], src, bytes);
        s->len[k] += bytes;
        cJSON_AddItemToObject(s->header[k], e->string, copy);
        cJSON_AddStringToObject(map, e->string, SHARD[k]);
    }
}

static void free_shards(shards *s) {
    for (int k = 0; k < 2; k++) {
        cJSON_Delete(s->header[k]);
        free(s->data[k]);
    }
    cJSON_Delete(s->index);
}

static void write_shards(const char *dir, const shards *s) {
    hf_link_shared(dir, "config.json", "models/stories260K.hf/config.json");
    for (int k = 0; k < 2; k++) st_write(dir, SHARD[k], s->header[k], s->data[k], s->len[k]);
    hf_write_json(dir, "model.safetensors.index.json", s->index);
}

static void expect_folder_refused(test_ctx *t, const char *dir, const char *what,
                                  const char *needle) {
    lc_model *m = NULL;
    lc_error err = {0};
    lc_status st = lc_model_load(dir, &m, &err);
    CHECK(t, st != LC_OK, "%s: accepted", what);
    CHECK(t, st == LC_OK || (strstr(err.msg, dir) && strstr(err.msg, needle)),
          "%s: message lacks the folder or '%s': %s", what, needle, err.msg);
    lc_model_free(m);
}

void test_safetensors_sharded_folder(test_ctx *t) {
    st_file f;
    if (!st_read_shared(t, "models/stories260K.hf/model.safetensors", &f)) return;
    char dir[1024];
    hf_mkdir(dir, sizeof dir, "shards");
    shards s;
    split(&f, &s);
    write_shards(dir, &s);
    lc_model *sharded = NULL, *single = load_shared_model(t, "models/stories260K.hf");
    lc_error err;
    CHECK(t, lc_model_load(dir, &sharded, &err) == LC_OK, "sharded: %s", err.msg);
    if (sharded && single) {
        hf_check_same_weights(t, sharded, single, "2 shards against 1 file");
        CHECK(t, !strcmp(lc_model_format(sharded), "safetensors (f32), 2 shards"), "format '%s'",
              lc_model_format(sharded));
    }
    lc_model_free(sharded);
    lc_model_free(single);

    /* A shard the index lists is missing. */
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, SHARD[1]);
    remove(path);
    expect_folder_refused(t, dir, "missing shard", SHARD[1]);
    /* A shard shorter than its header says, and one cut inside the header. */
    write_shards(dir, &s);
    st_write(dir, SHARD[1], s.header[1], s.data[1], s.len[1] - 100);
    expect_folder_refused(t, dir, "short shard", "past the");
    char *whole = read_file(path, NULL);
    hf_write(dir, SHARD[1], whole, 100);
    expect_folder_refused(t, dir, "shard cut in its header", "runs past the end");
    free(whole);
    /* The index puts a tensor in the wrong shard, or outside the folder. */
    write_shards(dir, &s);
    cJSON *map = cJSON_GetObjectItem(s.index, "weight_map");
    cJSON *entry = cJSON_GetObjectItem(map, "model.norm.weight");
    cJSON_SetValuestring(entry, SHARD[0]);
    hf_write_json(dir, "model.safetensors.index.json", s.index);
    expect_folder_refused(t, dir, "tensor in the wrong shard", "does not hold it");
    cJSON_SetValuestring(entry, "../model.safetensors");
    hf_write_json(dir, "model.safetensors.index.json", s.index);
    expect_folder_refused(t, dir, "shard outside the folder", "not a file name");
    cJSON_SetValuestring(entry, SHARD[1]);
    /* A tensor in both shards. */
    cJSON *dup = cJSON_Duplicate(cJSON_GetObjectItem(s.header[1], "model.norm.weight"), true);
    cJSON *off = cJSON_GetObjectItem(dup, "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), (double)s.len[0]); /* appended: 256 bytes */
    cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), (double)s.len[0] + 256);
    cJSON *h0 = cJSON_Duplicate(s.header[0], true);
    cJSON_AddItemToObject(h0, "model.norm.weight", dup);
    write_shards(dir, &s);
    st_write(dir, SHARD[0], h0, s.data[0], s.len[0] + 256);
    cJSON_Delete(h0);
    expect_folder_refused(t, dir, "tensor in two shards", "appears twice");
    /* Broken index files. */
    write_shards(dir, &s);
    hf_write(dir, "model.safetensors.index.json", "{\"weight_map\":", 14);
    expect_folder_refused(t, dir, "malformed index", "malformed JSON");
    hf_write(dir, "model.safetensors.index.json", "{\"metadata\":{}}", 15);
    expect_folder_refused(t, dir, "index without weight_map", "weight_map");
    hf_write(dir, "model.safetensors.index.json", "{\"weight_map\":{}}", 17);
    expect_folder_refused(t, dir, "empty weight_map", "empty");
    free_shards(&s);
    st_free(&f);
    hf_rmdir(dir);
}
