/* What every vocabulary shares (the piece arrays, the hash from piece bytes
 * to id, kinds, freeing), and llama2.c's tokenizer.bin: int32
 * max_token_length, then per token a float32 score, an int32 byte length and
 * the bytes. The count is implied by the file size; ids 0, 1, 2 are <unk>,
 * <s>, </s> by llama2.c's convention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

lc_token tokenizer_lookup(const lc_tokenizer *tok, const char *s, size_t len) {
    for (uint32_t i = hash_bytes(s, len) & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        int32_t id = tok->slots[i];
        if (id < 0) return -1;
        if (tok->length[id] == len && memcmp(tok->arena + tok->offset[id], s, len) == 0) return id;
    }
}

int tokenizer_byte_value(const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

lc_status tokenizer_alloc(lc_tokenizer *t, int32_t n, uint64_t bytes, lc_error *err) {
    if (bytes > UINT32_MAX)
        return lc_fail(err, LC_ERR_FORMAT, "%llu bytes of pieces; at most 4 GiB",
                       (unsigned long long)bytes);
    t->n_vocab = n;
    t->arena = malloc(bytes ? (size_t)bytes : 1);
    t->offset = calloc((size_t)n, sizeof *t->offset);
    t->length = calloc((size_t)n, sizeof *t->length);
    t->score = calloc((size_t)n, sizeof *t->score);
    t->kind = calloc((size_t)n, 1);
    if (!t->arena || !t->offset || !t->length || !t->score || !t->kind)
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d tokens", n);
    return LC_OK;
}

static lc_status insert(lc_tokenizer *t, lc_token id, lc_error *err) {
    const char *s = t->arena + t->offset[id];
    lc_token other = tokenizer_lookup(t, s, t->length[id]);
    if (other >= 0) {
        /* SentencePiece: a duplicate piece keeps its first id. Byte-level BPE
         * maps bytes to ids, so two ids for one piece is a broken file. */
        if (t->type == TOKENIZER_SPM) return LC_OK;
        return lc_fail(err, LC_ERR_FORMAT, "tokens %d and %d are the same piece", other, id);
    }
    uint32_t i = hash_bytes(s, t->length[id]) & t->slot_mask;
    while (t->slots[i] >= 0) i = (i + 1) & t->slot_mask;
    t->slots[i] = id;
    return LC_OK;
}

lc_status tokenizer_build_index(lc_tokenizer *t, bool kinds_given, lc_error *err) {
    uint32_t n_slots = 1;
    while (n_slots < 2u * (uint32_t)t->n_vocab) n_slots <<= 1;
    t->slots = malloc(n_slots * sizeof *t->slots);
    if (!t->slots) return lc_fail(err, LC_ERR_NOMEM, "out of memory for the vocabulary index");
    memset(t->slots, 0xff, n_slots * sizeof *t->slots);
    t->slot_mask = n_slots - 1;
    for (int i = 0; i < 256; i++) t->byte_token[i] = -1;
    const bool spm = t->type == TOKENIZER_SPM;
    for (lc_token id = 0; id < t->n_vocab; id++) {
        const char *s = t->arena + t->offset[id];
        int byte = spm ? tokenizer_byte_value(s, t->length[id]) : -1;
        if (!kinds_given) {
            t->kind[id] = id == t->unk || id == t->bos || id == t->eos ? TOKEN_CONTROL
                          : byte >= 0                                  ? TOKEN_BYTE
                                                                       : TOKEN_NORMAL;
        } else if (id == t->unk || id == t->bos || id == t->eos) {
            t->kind[id] = TOKEN_CONTROL;
        }
        if (t->kind[id] == TOKEN_BYTE) {
            if (byte < 0)
                return lc_fail(err, LC_ERR_FORMAT, "token %d is marked a byte but is not <0xXX>",
                               id);
            if (t->byte_token[byte] < 0) t->byte_token[byte] = id;
        } else if (t->kind[id] == TOKEN_NORMAL) {
            if (!spm && t->length[id] == 0)
                return lc_fail(err, LC_ERR_FORMAT, "token %d is empty", id);
            lc_status st = insert(t, id, err);
            if (st) return st;
        }
    }
    if (!spm) {
        /* Byte-level BPE starts from one symbol per byte: each needs a piece. */
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            if ((t->byte_token[b] = tokenizer_lookup(t, &c, 1)) < 0)
                return lc_fail(err, LC_ERR_FORMAT,
                               "no token for the byte 0x%02x: not a byte-level vocabulary", b);
        }
    }
    return tokenizer_index_specials(t, err);
}

lc_status tokenizer_parse_llama2c(lc_tokenizer *t, const uint8_t *p, uint64_t size,
                                  const char *path, lc_error *err) {
    if (size < 4) return lc_fail(err, LC_ERR_FORMAT, "%s: truncated tokenizer header", path);
    int32_t max_len;
    memcpy(&max_len, p, 4);
    if (max_len < 1 || max_len > LC_MAX_PIECE_BYTES)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: max_token_length %d is out of range [1, %d]; "
                       "not a llama2.c tokenizer.bin?",
                       path, max_len, LC_MAX_PIECE_BYTES);
    /* First pass: count tokens and bytes, checking every record fits. */
    uint64_t off = 4, n = 0, bytes = 0;
    while (off < size) {
        int32_t len;
        if (size - off < 8)
            return lc_fail(err, LC_ERR_FORMAT, "%s: truncated at token %llu", path,
                           (unsigned long long)n);
        memcpy(&len, p + off + 4, 4);
        if (len < 0 || len > max_len || (uint64_t)len > size - off - 8)
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: token %llu has length %d (max_token_length "
                           "%d, %llu bytes left)",
                           path, (unsigned long long)n, len, max_len,
                           (unsigned long long)(size - off - 8));
        off += 8 + (uint64_t)len;
        bytes += (uint64_t)len + 1;
        n++;
    }
    if (n < 3 || n > (1u << 22))
        return lc_fail(err, LC_ERR_FORMAT, "%s: %llu tokens; expected 3 to %u", path,
                       (unsigned long long)n, 1u << 22);
    lc_status st = tokenizer_alloc(t, (int32_t)n, bytes, err);
    if (st) {
        lc_fail_prefix(err, path);
        return st;
    }
    off = 4;
    uint32_t at = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t len;
        memcpy(&t->score[i], p + off, 4);
        memcpy(&len, p + off + 4, 4);
        memcpy(t->arena + at, p + off + 8, (size_t)len);
        t->arena[at + (uint32_t)len] = '\0';
        t->offset[i] = at;
        t->length[i] = (uint32_t)len;
        at += (uint32_t)len + 1;
        off += 8 + (uint64_t)len;
    }
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = true;
    return tokenizer_build_index(t, false, err);
}

void lc_tokenizer_free(lc_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->offset);
    free(t->length);
    free(t->score);
    free(t->kind);
    free(t->slots);
    free(t->special);
    bpe_pairs_free(&t->pairs);
    pretokenizer_free(t->pre);
    free(t);
}

int32_t lc_tokenizer_vocab_size(const lc_tokenizer *t) { return t->n_vocab; }
lc_token lc_tokenizer_bos(const lc_tokenizer *t) { return t->bos; }
lc_token lc_tokenizer_eos(const lc_tokenizer *t) { return t->eos; }
bool lc_tokenizer_add_bos(const lc_tokenizer *t) { return t->add_bos; }

const char *lc_tokenizer_piece(const lc_tokenizer *t, lc_token id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->length[id];
    return t->arena + t->offset[id];
}
