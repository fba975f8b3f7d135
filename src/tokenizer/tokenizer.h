/* The vocabulary behind lc_tokenizer: pieces, scores, kinds and a hash from
 * piece text to id. Pieces hold spaces where SentencePiece writes U+2581. */
#ifndef LLAMAC_TOKENIZER_TOKENIZER_H
#define LLAMAC_TOKENIZER_TOKENIZER_H

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
};

/* The byte a "<0xXX>" piece stands for, or -1 for any other piece. */
int tokenizer_byte_value(const char *piece, size_t len);

/* Id of the NORMAL piece equal to s[0..len), or -1. */
lc_token tokenizer_lookup(const lc_tokenizer *tok, const char *s, size_t len);

#endif
