/* A vocabulary as GGUF tokenizer.ggml.* metadata, the inverse of
 * vocab_gguf.c: SentencePiece vocabularies as model "llama" (spaces back to
 * U+2581), byte-level BPE as model "gpt2" (pieces back into GPT-2's
 * byte-to-unicode alphabet, merges as "a b" in rank order, the regex by
 * llama.cpp's pre-tokenizer name). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/gguf_write.h"
#include "tokenizer/tokenizer.h"

/* llama2.c's tokenizer.bin stores BOS and EOS as "\n<s>\n" and "\n</s>\n", the
 * display form its export script gives them; SentencePiece, and llama.cpp's
 * Llama 2 vocabulary, name them "<s>" and "</s>". Returns the SentencePiece
 * name for those two, else the piece as stored. */
static const char *piece_text(const lc_tokenizer *t, lc_token id, uint32_t *len) {
    const char *s = t->arena + t->offset[id];
    *len = t->length[id];
    const char *display = id == t->bos ? "\n<s>\n" : id == t->eos ? "\n</s>\n" : NULL;
    if (display && *len == strlen(display) && memcmp(s, display, *len) == 0) {
        *len -= 2;
        return s + 1;
    }
    return s;
}

static lc_status put_spm(gguf_writer *g, const lc_tokenizer *t, lc_error *err) {
    char *buf = malloc(3 * LC_MAX_PIECE_BYTES);
    if (!buf) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    gguf_put_string(g, "tokenizer.ggml.model", "llama", 5);
    gguf_put_array(g, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++) {
        uint32_t len;
        const char *s = piece_text(t, id, &len);
        size_t n = 0;
        for (uint32_t i = 0; i < len; i++) {
            if (s[i] == ' ') {
                memcpy(buf + n, "\xE2\x96\x81", 3);
                n += 3;
            } else {
                buf[n++] = s[i];
            }
        }
        gguf_put_elem_string(g, buf, n);
    }
    free(buf);
    gguf_put_array(g, "tokenizer.ggml.scores", GGUF_FLOAT32, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++) gguf_put_elem_f32(g, t->score[id]);
    /* GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte. */
    gguf_put_array(g, "tokenizer.ggml.token_type", GGUF_INT32, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++)
        gguf_put_elem_i32(g, id == t->unk                   ? 2
                             : t->kind[id] == TOKEN_CONTROL ? 3
                             : t->kind[id] == TOKEN_BYTE    ? 6
                                                            : 1);
    gguf_put_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    gguf_put_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    gguf_put_u32(g, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
    gguf_put_bool(g, "tokenizer.ggml.add_bos_token", t->add_bos);
    gguf_put_bool(g, "tokenizer.ggml.add_eos_token", false);
    return LC_OK;
}

/* The GGUF name of the pre-tokenizer; it also implies ignore_merges when read back. */
static const char *pre_name(const lc_tokenizer *t) {
    const char *pattern = pretokenizer_pattern(t->pre);
    if (strcmp(pattern, TOKENIZER_PATTERN_LLAMA3) == 0 && t->ignore_merges) return "llama-bpe";
    if (strcmp(pattern, TOKENIZER_PATTERN_GPT2) == 0 && !t->ignore_merges) return "gpt-2";
    return NULL;
}

static lc_status put_bpe(gguf_writer *g, const lc_tokenizer *t, lc_error *err) {
    const char *pre = pre_name(t);
    if (!pre)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "the pre-tokenizer regex has no GGUF name (Llama 3's and GPT-2's have)");
    bpe_pair *merges;
    lc_status st = bpe_pairs_sorted(&t->pairs, &merges, err);
    if (st) return st;
    char *buf = malloc(4 * LC_MAX_PIECE_BYTES + 1); /* two pieces, two bytes per byte */
    if (!buf) {
        free(merges);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    }
    gguf_put_string(g, "tokenizer.ggml.model", "gpt2", 4);
    gguf_put_string(g, "tokenizer.ggml.pre", pre, strlen(pre));
    gguf_put_array(g, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++) {
        const char *s = t->arena + t->offset[id];
        if (t->kind[id] == TOKEN_NORMAL)
            gguf_put_elem_string(g, buf, byte_unicode_encode(s, t->length[id], buf));
        else
            gguf_put_elem_string(g, s, t->length[id]);
    }
    /* GGUF token types: 1 normal, 3 control, 4 user-defined. */
    gguf_put_array(g, "tokenizer.ggml.token_type", GGUF_INT32, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++)
        gguf_put_elem_i32(g, t->kind[id] == TOKEN_CONTROL ? 3 : t->kind[id] == TOKEN_USER ? 4 : 1);
    gguf_put_array(g, "tokenizer.ggml.merges", GGUF_STRING, t->pairs.n);
    for (uint32_t i = 0; i < t->pairs.n; i++) {
        lc_token left = (lc_token)(merges[i].key >> 32), right = (lc_token)(uint32_t)merges[i].key;
        size_t n = byte_unicode_encode(t->arena + t->offset[left], t->length[left], buf);
        buf[n++] = ' ';
        n += byte_unicode_encode(t->arena + t->offset[right], t->length[right], buf + n);
        gguf_put_elem_string(g, buf, n);
    }
    if (t->bos >= 0) gguf_put_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->eos >= 0) gguf_put_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    /* Llama 3 Instruct ends a turn with <|eot_id|>, not EOS: name it so every
     * reader stops there. */
    const lc_token eot = lc_tokenizer_token_id(t, "<|eot_id|>");
    if (eot >= 0 && eot != t->eos) gguf_put_u32(g, "tokenizer.ggml.eot_token_id", (uint32_t)eot);
    gguf_put_bool(g, "tokenizer.ggml.add_bos_token", t->add_bos);
    gguf_put_bool(g, "tokenizer.ggml.add_eos_token", false);
    free(buf);
    free(merges);
    return LC_OK;
}

lc_status tokenizer_write_gguf(gguf_writer *g, const lc_tokenizer *t, lc_error *err) {
    return t->type == TOKENIZER_BYTE_BPE ? put_bpe(g, t, err) : put_spm(g, t, err);
}
