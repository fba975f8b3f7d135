/* A vocabulary from GGUF metadata (tokenizer.ggml.*). Two models are read:
 *  - "llama": SentencePiece BPE with byte fallback (Llama 2), the algorithm of
 *    llama2.c's tokenizer.bin, so encode.c serves both. GGUF pieces spell
 *    spaces as U+2581 (SentencePiece's escape); ours hold plain spaces, as
 *    tokenizer.bin does, so they are unescaped here.
 *  - "gpt2": byte-level BPE (Llama 3): normal pieces in GPT-2's byte-to-unicode
 *    alphabet (turned back into bytes here), control and user-defined ones as
 *    text, merges as "a b" strings, tokenizer.ggml.pre naming the regex. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_VOCAB (1 << 22)

/* GGUF's token types (llama.cpp's numbering) to ours. */
static int kind_of_gguf_type(int64_t type) {
    switch (type) {
    case 1: return TOKEN_NORMAL;  /* normal */
    case 2: return TOKEN_CONTROL; /* unknown */
    case 3: return TOKEN_CONTROL; /* control */
    case 4: return TOKEN_NORMAL;  /* user-defined: merged like any piece */
    case 5: return TOKEN_CONTROL; /* unused: never produced from text */
    case 6: return TOKEN_BYTE;    /* <0xXX> */
    default: return -1;
    }
}

/* Bytes of `s` with every U+2581 turned into a space. */
static uint64_t unescaped_length(gguf_str s) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < s.len; i++, n++)
        if (i + 2 < s.len && memcmp(s.ptr + i, "\xE2\x96\x81", 3) == 0) i += 2;
    return n;
}

static void unescape(gguf_str s, char *out) {
    for (uint64_t i = 0; i < s.len; i++) {
        if (i + 2 < s.len && memcmp(s.ptr + i, "\xE2\x96\x81", 3) == 0) {
            *out++ = ' ';
            i += 2;
        } else {
            *out++ = s.ptr[i];
        }
    }
    *out = '\0';
}

/* The pieces: lengths checked, then copied into one arena. */
static lc_status read_pieces(lc_tokenizer *t, const gguf_array *tokens, lc_error *err) {
    const uint8_t *at = tokens->data;
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < tokens->count; i++) {
        uint64_t len = unescaped_length(gguf_array_next_string(&at));
        if (len > LC_MAX_PIECE_BYTES)
            return lc_fail(err, LC_ERR_FORMAT, "token %llu is %llu bytes long (at most %d)",
                           (unsigned long long)i, (unsigned long long)len, LC_MAX_PIECE_BYTES);
        bytes += len + 1;
    }
    if (bytes > UINT32_MAX)
        return lc_fail(err, LC_ERR_FORMAT, "%llu bytes of pieces; at most 4 GiB",
                       (unsigned long long)bytes);
    size_t n = (size_t)tokens->count;
    t->n_vocab = (int32_t)n;
    t->arena = malloc((size_t)bytes);
    t->offset = malloc(n * sizeof *t->offset);
    t->length = malloc(n * sizeof *t->length);
    t->score = calloc(n, sizeof *t->score);
    t->kind = calloc(n, 1);
    if (!t->arena || !t->offset || !t->length || !t->score || !t->kind)
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for %zu tokens", n);
    at = tokens->data;
    uint32_t used = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s = gguf_array_next_string(&at);
        unescape(s, t->arena + used);
        t->offset[i] = used;
        t->length[i] = (uint32_t)unescaped_length(s);
        used += t->length[i] + 1;
    }
    return LC_OK;
}

/* A per-token array (scores, token types) of the vocabulary's length, or absent. */
static lc_status per_token_array(const gguf_file *g, const char *key, gguf_type type, int32_t n,
                                 gguf_array *a, lc_error *err) {
    a->count = 0;
    lc_status st = gguf_get_array(g, key, type, true, a, err);
    if (st) return st;
    if (a->count != 0 && a->count != (uint64_t)n)
        return lc_fail(err, LC_ERR_FORMAT, "%s has %llu entries for %d tokens", key,
                       (unsigned long long)a->count, n);
    return LC_OK;
}

static lc_status special_id(const gguf_file *g, const char *key, int32_t n, lc_token *id,
                            lc_error *err) {
    int64_t v = *id;
    lc_status st = gguf_get_int(g, key, true, 0, n - 1, &v, err);
    *id = (lc_token)v;
    return st;
}

static lc_status read_spm(lc_tokenizer *t, const gguf_file *g, lc_error *err) {
    lc_status st;
    gguf_array tokens, scores, types;
    if ((st = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, false, &tokens, err)))
        return st;
    if (tokens.count < 3 || tokens.count > MAX_VOCAB)
        return lc_fail(err, LC_ERR_FORMAT, "%llu tokens; expected 3 to %d",
                       (unsigned long long)tokens.count, MAX_VOCAB);
    if ((st = read_pieces(t, &tokens, err))) return st;
    const int32_t n = t->n_vocab;
    if ((st = per_token_array(g, "tokenizer.ggml.scores", GGUF_FLOAT32, n, &scores, err)) ||
        (st = per_token_array(g, "tokenizer.ggml.token_type", GGUF_INT32, n, &types, err)))
        return st;
    for (int32_t i = 0; i < (int32_t)scores.count; i++)
        t->score[i] = (float)gguf_array_float(&scores, (uint64_t)i);
    for (int32_t i = 0; i < (int32_t)types.count; i++) {
        int kind = kind_of_gguf_type(gguf_array_int(&types, (uint64_t)i));
        if (kind < 0)
            return lc_fail(err, LC_ERR_FORMAT, "token %d has unknown token type %lld", i,
                           (long long)gguf_array_int(&types, (uint64_t)i));
        t->kind[i] = (uint8_t)kind;
    }
    /* llama2.c's fixed ids are SentencePiece's defaults: the file may differ. */
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = true;
    if ((st = special_id(g, "tokenizer.ggml.unknown_token_id", n, &t->unk, err)) ||
        (st = special_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos, err)) ||
        (st = special_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos, err)) ||
        (st = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", true, &t->add_bos, err)))
        return st;
    return tokenizer_build_index(t, types.count != 0, err);
}

/* gpt2 pieces: NORMAL ones decoded from the byte-level alphabet, the rest as
 * written. Token types come first: they decide which is which. */
static lc_status read_bpe_pieces(lc_tokenizer *t, const gguf_array *tokens, const gguf_array *types,
                                 lc_error *err) {
    const uint8_t *at = tokens->data;
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < tokens->count; i++) {
        uint64_t len = gguf_array_next_string(&at).len;
        if (len > 2 * LC_MAX_PIECE_BYTES)
            return lc_fail(err, LC_ERR_FORMAT, "token %llu is %llu bytes long (at most %d)",
                           (unsigned long long)i, (unsigned long long)len, LC_MAX_PIECE_BYTES);
        bytes += len + 1; /* decoding never lengthens a piece */
    }
    lc_status st = tokenizer_alloc(t, (int32_t)tokens->count, bytes, err);
    if (st) return st;
    at = tokens->data;
    uint32_t used = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        gguf_str s = gguf_array_next_string(&at);
        int64_t type = types->count ? gguf_array_int(types, (uint64_t)i) : 1;
        int kind = type == 4 ? TOKEN_USER : kind_of_gguf_type(type);
        if (kind < 0 || kind == TOKEN_BYTE)
            return lc_fail(err, LC_ERR_FORMAT, "token %d has token type %lld, not one of gpt2's", i,
                           (long long)type);
        int64_t len = (int64_t)s.len;
        if (kind == TOKEN_NORMAL)
            len = byte_unicode_decode(s.ptr, (size_t)s.len, t->arena + used);
        else
            memcpy(t->arena + used, s.ptr, (size_t)s.len);
        if (len < 0)
            return lc_fail(err, LC_ERR_FORMAT,
                           "token %d ('%.*s') is not written in the byte-level alphabet", i,
                           (int)(s.len > 64 ? 64 : s.len), s.ptr);
        if (len > LC_MAX_PIECE_BYTES)
            return lc_fail(err, LC_ERR_FORMAT, "token %d is %lld bytes long (at most %d)", i,
                           (long long)len, LC_MAX_PIECE_BYTES);
        t->arena[used + (uint32_t)len] = '\0';
        t->offset[i] = used;
        t->length[i] = (uint32_t)len;
        t->kind[i] = (uint8_t)kind;
        used += (uint32_t)len + 1;
    }
    return LC_OK;
}

static lc_status read_merges(lc_tokenizer *t, const gguf_file *g, lc_error *err) {
    gguf_array merges;
    lc_status st = gguf_get_array(g, "tokenizer.ggml.merges", GGUF_STRING, false, &merges, err);
    if (st) return st;
    if (merges.count > (1u << 28))
        return lc_fail(err, LC_ERR_FORMAT, "%llu merges", (unsigned long long)merges.count);
    if ((st = bpe_pairs_init(&t->pairs, (uint32_t)merges.count, err))) return st;
    char *buf = malloc(4 * (size_t)LC_MAX_PIECE_BYTES); /* both sides, decoded */
    if (!buf) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    const uint8_t *at = merges.data;
    for (uint32_t rank = 0; rank < merges.count && !st; rank++) {
        gguf_str m = gguf_array_next_string(&at);
        const char *space = m.len ? memchr(m.ptr, ' ', (size_t)m.len) : NULL;
        size_t la = space ? (size_t)(space - m.ptr) : 0, lb = space ? (size_t)m.len - la - 1 : 0;
        int64_t ra = -1, rb = -1;
        if (space && !memchr(space + 1, ' ', lb) && la <= 2 * LC_MAX_PIECE_BYTES &&
            lb <= 2 * LC_MAX_PIECE_BYTES && (ra = byte_unicode_decode(m.ptr, la, buf)) >= 0)
            rb = byte_unicode_decode(space + 1, lb, buf + ra);
        lc_token left = ra > 0 && rb > 0 ? tokenizer_lookup(t, buf, (size_t)ra) : -1;
        lc_token right = left >= 0 ? tokenizer_lookup(t, buf + ra, (size_t)rb) : -1;
        lc_token result = right >= 0 ? tokenizer_lookup(t, buf, (size_t)(ra + rb)) : -1;
        if (result < 0)
            st = lc_fail(err, LC_ERR_FORMAT,
                         "merge %u ('%.*s') is not two pieces whose concatenation is a piece", rank,
                         (int)(m.len > 64 ? 64 : m.len), m.ptr);
        else
            st = bpe_pairs_add(&t->pairs, left, right, (int32_t)rank, result, false, err);
    }
    free(buf);
    return st;
}

/* tokenizer.ggml.pre names the pre-tokenizer; llama.cpp's names. */
static lc_status read_pre(lc_tokenizer *t, const gguf_file *g, lc_error *err) {
    gguf_str pre = {"default", 7};
    lc_status st = gguf_get_string(g, "tokenizer.ggml.pre", true, &pre, err);
    if (st) return st;
    const char *pattern;
    if (gguf_str_eq(pre, "llama-bpe") || gguf_str_eq(pre, "llama3") ||
        gguf_str_eq(pre, "llama-v3")) {
        pattern = TOKENIZER_PATTERN_LLAMA3;
        t->ignore_merges = true; /* as tiktoken: a whole pre-token that is a piece stays one */
    } else if (gguf_str_eq(pre, "default") || gguf_str_eq(pre, "gpt-2") ||
               gguf_str_eq(pre, "gpt2")) {
        pattern = TOKENIZER_PATTERN_GPT2;
    } else {
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "pre-tokenizer '%.*s' is not supported (llama-bpe and default/gpt-2 are)",
                       (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
    }
    return pretokenizer_create(pattern, strlen(pattern), &t->pre, err);
}

static lc_status read_bpe(lc_tokenizer *t, const gguf_file *g, lc_error *err) {
    lc_status st;
    gguf_array tokens, types;
    if ((st = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, false, &tokens, err)))
        return st;
    if (tokens.count < 256 || tokens.count > MAX_VOCAB)
        return lc_fail(err, LC_ERR_FORMAT, "%llu tokens; expected 256 to %d",
                       (unsigned long long)tokens.count, MAX_VOCAB);
    if ((st = per_token_array(g, "tokenizer.ggml.token_type", GGUF_INT32, (int32_t)tokens.count,
                              &types, err)) ||
        (st = read_bpe_pieces(t, &tokens, &types, err)))
        return st;
    const int32_t n = t->n_vocab;
    t->type = TOKENIZER_BYTE_BPE;
    t->unk = t->bos = t->eos = -1;
    lc_token eot = -1, eom = -1;
    if ((st = special_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos, err)) ||
        (st = special_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos, err)) ||
        (st = special_id(g, "tokenizer.ggml.eot_token_id", n, &eot, err)) ||
        (st = special_id(g, "tokenizer.ggml.eom_token_id", n, &eom, err)) ||
        (st = read_pre(t, g, err)))
        return st;
    t->add_bos = t->ignore_merges && t->bos >= 0; /* llama-bpe's default */
    if ((st = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", true, &t->add_bos, err)) ||
        (st = tokenizer_build_index(t, true, err)) || (st = read_merges(t, g, err)))
        return st;
    tokenizer_add_stop(t, eot);
    tokenizer_add_stop(t, eom);
    return LC_OK;
}

static lc_status read_vocab(lc_tokenizer *t, const gguf_file *g, lc_error *err) {
    gguf_str model;
    lc_status st = gguf_get_string(g, "tokenizer.ggml.model", false, &model, err);
    if (st) return st;
    if (gguf_str_eq(model, "llama")) return read_spm(t, g, err);
    if (gguf_str_eq(model, "gpt2")) return read_bpe(t, g, err);
    return lc_fail(err, LC_ERR_UNSUPPORTED,
                   "tokenizer model '%.*s' is not supported (llama, i.e. SentencePiece, and gpt2, "
                   "i.e. byte-level BPE, are)",
                   (int)(model.len > 64 ? 64 : model.len), model.ptr);
}

lc_status tokenizer_from_gguf(lc_tokenizer *t, const gguf_file *g, const char *name,
                              lc_error *err) {
    lc_status st = read_vocab(t, g, err);
    if (st) lc_fail_prefix(err, name);
    return st;
}

lc_status tokenizer_parse_gguf(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                               const char *name, lc_error *err) {
    gguf_file g;
    lc_status st = gguf_parse(&g, data, size, name, err);
    if (st) return st;
    st = tokenizer_from_gguf(t, &g, name, err);
    gguf_free(&g);
    return st;
}
