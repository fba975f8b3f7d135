/* The vocabulary behind lc_tokenizer: pieces, scores, kinds and a hash from
 * piece text to id. Pieces hold spaces where SentencePiece writes U+2581. */
#ifndef LLAMAC_TOKENIZER_TOKENIZER_H
#define LLAMAC_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

typedef enum token_kind {
    TOKEN_NORMAL = 0, /* takes part in BPE merges */
    TOKEN_BYTE,       /* <0xXX>: byte fallback for characters the vocabulary lacks */
    TOKEN_CONTROL,    /* <unk>, <s>, </s>: never produced from text */
} token_kind;

struct lc_tokenizer {
    int32_t n_vocab;
    char *arena;              /* every piece, NUL-terminated, back to back */
    uint32_t *offset;         /* (n_vocab) start of each piece in arena */
    uint32_t *length;         /* (n_vocab) bytes, without the NUL */
    float *score;             /* (n_vocab) merge priority: higher merges first */
    uint8_t *kind;            /* (n_vocab) token_kind */
    lc_token byte_token[256]; /* id of <0xXX>, or -1 */
    int32_t *slots;           /* open-addressing hash of NORMAL pieces: id or -1 */
    uint32_t slot_mask;
    lc_token unk, bos, eos;
    bool add_bos; /* the vocabulary asks for BOS before a text (GGUF's add_bos_token) */
};

/* Fills byte_token and the hash of NORMAL pieces. With kinds_given, `kind`
 * already holds each token's kind (from the file); else it is inferred as
 * llama2.c does: unk/bos/eos are CONTROL, <0xXX> pieces BYTE, the rest NORMAL. */
lc_status tokenizer_build_index(lc_tokenizer *t, bool kinds_given, lc_error *err);

struct gguf_file;
/* The vocabulary in a GGUF file's tokenizer.ggml.* metadata into t (empty,
 * from calloc). `name` starts error messages. */
lc_status tokenizer_from_gguf(lc_tokenizer *t, const struct gguf_file *g, const char *name,
                              lc_error *err);
/* Parses a GGUF buffer and reads its vocabulary (lc_tokenizer_load on a .gguf). */
lc_status tokenizer_parse_gguf(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                               const char *name, lc_error *err);

/* The byte a "<0xXX>" piece stands for, or -1 for any other piece. */
int tokenizer_byte_value(const char *piece, size_t len);

/* Id of the NORMAL piece equal to s[0..len), or -1. */
lc_token tokenizer_lookup(const lc_tokenizer *tok, const char *s, size_t len);

#endif
