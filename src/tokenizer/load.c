/* lc_tokenizer_load: which format a path holds, told by content (file names
 * lie: Llama 2's and Llama 3's are both "tokenizer.model"), and which file of
 * a model directory holds the tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "tokenizer/tokenizer.h"

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_json(const uint8_t *p, uint64_t size) {
    uint64_t i = 0;
    while (i < size && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i < size && p[i] == '{';
}

/* SentencePiece's ModelProto starts with its first piece: field 1, a
 * length-delimited message that itself starts with field 1 (the piece text). */
static bool is_sentencepiece_proto(const uint8_t *p, uint64_t size) {
    return size > 3 && p[0] == 0x0A && p[1] < 0x80 && p[2] == 0x0A;
}

/* tokenizer.json's tokenizer_config.json lives beside it. */
static lc_status parse_hf_file(lc_tokenizer *t, const mapped_file *f, const char *path,
                               lc_error *err) {
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    size_t cap = strlen(path) + 32;
    char *config = malloc(cap);
    if (!config) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    snprintf(config, cap, "%.*stokenizer_config.json", dir_len, path);
    mapped_file c = {NULL, 0};
    lc_status st = LC_OK;
    if (is_file(config)) st = mapped_file_open(&c, config, err);
    if (st == LC_OK) st = tokenizer_parse_hf(t, f->data, f->size, c.data, c.size, path, err);
    if (c.data) mapped_file_close(&c);
    free(config);
    return st;
}

static lc_status load_file(lc_tokenizer *t, const char *path, lc_error *err) {
    mapped_file f;
    lc_status st = mapped_file_open(&f, path, err);
    if (st) return st;
    if (f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0)
        st = tokenizer_parse_gguf(t, f.data, f.size, path, err);
    else if (is_json(f.data, f.size))
        st = parse_hf_file(t, &f, path, err);
    else if (tokenizer_is_tiktoken(f.data, f.size))
        st = tokenizer_parse_tiktoken(t, f.data, f.size, path, err);
    else if (is_sentencepiece_proto(f.data, f.size))
        st = lc_fail(err, LC_ERR_UNSUPPORTED,
                     "%s: a SentencePiece protobuf model; llamac reads its vocabulary as "
                     "llama2.c's tokenizer.bin (made by llama2.c's tokenizer.py) or from a GGUF",
                     path);
    else
        st = tokenizer_parse_llama2c(t, f.data, f.size, path, err);
    mapped_file_close(&f); /* everything was copied */
    return st;
}

/* A Hugging Face folder: tokenizer.json, or Meta's original/tokenizer.model. */
static lc_status load_dir(lc_tokenizer *t, const char *dir, lc_error *err) {
    static const char *const names[] = {"tokenizer.json", "original/tokenizer.model",
                                        "tokenizer.model", "tokenizer.bin"};
    size_t cap = strlen(dir) + 32;
    char *path = malloc(cap);
    if (!path) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, cap, "%s/%s", dir, names[i]);
        if (is_file(path)) {
            lc_status st = load_file(t, path, err);
            free(path);
            return st;
        }
    }
    free(path);
    return lc_fail(err, LC_ERR_IO,
                   "%s: the directory holds no tokenizer (looked for tokenizer.json, "
                   "original/tokenizer.model, tokenizer.model, tokenizer.bin)",
                   dir);
}

bool lc_tokenizer_in_path(const char *path) {
    if (is_dir(path)) return true;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return false;
    const size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == sizeof magic && memcmp(magic, "GGUF", 4) == 0;
}

lc_status lc_tokenizer_load(const char *path, lc_tokenizer **out, lc_error *err) {
    *out = NULL;
    lc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    t->unk = t->bos = t->eos = -1;
    lc_status st = is_dir(path) ? load_dir(t, path, err) : load_file(t, path, err);
    if (st) {
        lc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LC_OK;
}
