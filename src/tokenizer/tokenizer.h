/* The vocabulary behind lc_tokenizer: pieces, scores, kinds and a hash from
 * piece bytes to id. Two algorithms share it:
 *  - SentencePiece BPE (Llama 2: tokenizer.bin, GGUF "llama"): pieces hold
 *    spaces where SentencePiece writes U+2581; merges by score (encode.c).
 *  - byte-level BPE (Llama 3: tiktoken tokenizer.model, tokenizer.json,
 *    GGUF "gpt2"): pieces hold raw bytes (GPT-2's byte-to-unicode alphabet is
 *    undone at load), text is split by a regex first (pretokenize.c), then
 *    merged by pair rank (bpe_byte.c). */
#ifndef LLAMAC_TOKENIZER_TOKENIZER_H
#define LLAMAC_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llamac.h"

typedef enum token_kind {
    TOKEN_NORMAL = 0, /* takes part in BPE merges */
    TOKEN_BYTE,    /* <0xXX>: byte fallback for characters the vocabulary lacks (SentencePiece) */
    TOKEN_CONTROL, /* <unk>, <s>, <|eot_id|>: never produced from plain text; byte-level
                      BPE matches their text only when the caller asks (parse_special) */
    TOKEN_USER,    /* byte-level BPE: an added token that is not special ("special": false
                      in tokenizer.json, GGUF's user-defined): matched in any text */
} token_kind;

typedef enum tokenizer_type {
    TOKENIZER_SPM = 0,  /* SentencePiece BPE with byte fallback */
    TOKENIZER_BYTE_BPE, /* byte-level BPE with a regex pre-tokenizer */
} tokenizer_type;

/* Byte-level BPE merges: (left id, right id) -> (rank, merged id), an
 * open-addressing hash. Lower ranks merge first. */
typedef struct bpe_pair {
    uint64_t key; /* left << 32 | right; BPE_PAIR_EMPTY when the slot is free */
    int32_t rank, result;
} bpe_pair;
#define BPE_PAIR_EMPTY UINT64_MAX

typedef struct bpe_pairs {
    bpe_pair *slots;
    uint32_t mask, n;
} bpe_pairs;

struct pretokenizer;

#define TOKENIZER_MAX_STOP 8

struct lc_tokenizer {
    tokenizer_type type;
    int32_t n_vocab;
    char *arena;              /* every piece, NUL-terminated, back to back */
    uint32_t *offset;         /* (n_vocab) start of each piece in arena */
    uint32_t *length;         /* (n_vocab) bytes, without the NUL */
    float *score;             /* (n_vocab) SentencePiece merge priority: higher merges first */
    uint8_t *kind;            /* (n_vocab) token_kind */
    lc_token byte_token[256]; /* SPM: id of <0xXX>; byte-level BPE: the one-byte piece; or -1 */
    int32_t *slots;           /* open-addressing hash of NORMAL pieces: id or -1 */
    uint32_t slot_mask;
    lc_token unk, bos, eos; /* -1 when the vocabulary has none */
    bool add_bos;           /* the vocabulary asks for BOS before a text (GGUF's add_bos_token) */
    /* CONTROL and USER tokens with text, sorted by first byte and longest
     * first within one, for matching them in text (special.c). */
    lc_token *special;         /* (n_special) */
    int32_t n_special, n_user; /* n_user: how many are USER */
    int32_t special_at[257];   /* special[special_at[b] .. special_at[b + 1]) start with b */
    lc_token stop[TOKENIZER_MAX_STOP]; /* end-of-turn / end-of-text candidates */
    int n_stop;
    /* byte-level BPE only */
    bpe_pairs pairs;
    struct pretokenizer *pre;
    bool ignore_merges; /* a pre-token that is a whole vocabulary piece is that token */
};

/* Fills byte_token, the hash of NORMAL pieces and the special list. With
 * kinds_given, `kind` already holds each token's kind (from the file); else it
 * is inferred as llama2.c does: unk/bos/eos are CONTROL, <0xXX> pieces BYTE,
 * the rest NORMAL. Byte-level BPE vocabularies must give kinds, hold every
 * byte as a one-byte piece, and no piece twice. */
lc_status tokenizer_build_index(lc_tokenizer *t, bool kinds_given, lc_error *err);

/* Allocates the per-token arrays for n tokens whose pieces take `bytes` bytes
 * including one NUL each; offsets and lengths are then filled by the caller. */
lc_status tokenizer_alloc(lc_tokenizer *t, int32_t n, uint64_t bytes, lc_error *err);

struct gguf_file;
/* The vocabulary in a GGUF file's tokenizer.ggml.* metadata into t (empty,
 * from calloc). `name` starts error messages. */
lc_status tokenizer_from_gguf(lc_tokenizer *t, const struct gguf_file *g, const char *name,
                              lc_error *err);
/* Parses a GGUF buffer and reads its vocabulary (lc_tokenizer_load on a .gguf). */
lc_status tokenizer_parse_gguf(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                               const char *name, lc_error *err);
/* llama2.c's tokenizer.bin. */
lc_status tokenizer_parse_llama2c(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                                  const char *name, lc_error *err);
/* Meta's tiktoken tokenizer.model (Llama 3). */
bool tokenizer_is_tiktoken(const uint8_t *data, uint64_t size);
lc_status tokenizer_parse_tiktoken(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                                   const char *name, lc_error *err);
/* Hugging Face tokenizer.json; `config` (tokenizer_config.json) may be NULL. */
lc_status tokenizer_parse_hf(lc_tokenizer *t, const uint8_t *json, uint64_t size,
                             const uint8_t *config, uint64_t config_size, const char *name,
                             lc_error *err);

struct gguf_writer;
/* Writes the vocabulary as GGUF tokenizer.ggml.* metadata (vocab_gguf_write.c):
 * model "llama" or "gpt2", as vocab_gguf.c reads them back. */
lc_status tokenizer_write_gguf(struct gguf_writer *g, const lc_tokenizer *t, lc_error *err);

/* The byte a "<0xXX>" piece stands for, or -1 for any other piece. */
int tokenizer_byte_value(const char *piece, size_t len);

/* Id of the NORMAL piece equal to s[0..len), or -1. */
lc_token tokenizer_lookup(const lc_tokenizer *tok, const char *s, size_t len);

/* The list of special tokens, and the stop candidates: EOS and the
 * end-of-turn tokens known by name (special.c; tokenizer_build_index calls it). */
lc_status tokenizer_index_specials(lc_tokenizer *t, lc_error *err);
/* Adds a stop candidate (ignored when present, out of range or the list is full). */
void tokenizer_add_stop(lc_tokenizer *t, lc_token id);
/* The CONTROL or USER token whose text starts s[0..n) (the longest), or -1;
 * CONTROL tokens only when `control`. *len is its length. */
lc_token tokenizer_match_special(const lc_tokenizer *t, const char *s, size_t n, bool control,
                                 size_t *len);

/* GPT-2's byte-to-unicode alphabet (byte_unicode.c): byte-level BPE files
 * write each byte as one printable code point. Decodes such a string into raw
 * bytes (out holds at least len bytes); returns the byte count, or -1 when a
 * character is outside the alphabet or the UTF-8 is malformed. */
int64_t byte_unicode_decode(const char *s, size_t len, char *out);
/* Encodes raw bytes into the alphabet (out holds at least 2 * len bytes);
 * returns the length. */
size_t byte_unicode_encode(const char *s, size_t len, char *out);

/* Merges (bpe_merges.c). */
lc_status bpe_pairs_init(bpe_pairs *p, uint32_t expected, lc_error *err);
void bpe_pairs_free(bpe_pairs *p);
/* Adds a merge; a pair already present keeps its first rank when keep_first,
 * else takes the new one. */
lc_status bpe_pairs_add(bpe_pairs *p, lc_token left, lc_token right, int32_t rank, lc_token result,
                        bool keep_first, lc_error *err);
const bpe_pair *bpe_pairs_find(const bpe_pairs *p, lc_token left, lc_token right);
/* tiktoken has no merge list: a pair of pieces merges when their
 * concatenation is a piece, with that piece's rank (its id). Builds the pairs
 * from the vocabulary so one merge loop serves every format. */
lc_status bpe_pairs_from_ranks(lc_tokenizer *t, lc_error *err);
/* Every merge sorted by rank (then left, right): for writing a GGUF. *out is
 * malloc'd. */
lc_status bpe_pairs_sorted(const bpe_pairs *p, bpe_pair **out, lc_error *err);

/* The Llama 3 and GPT-2 pre-tokenizer patterns (facts from Meta's tokenizer
 * and OpenAI's GPT-2 encoder). */
extern const char TOKENIZER_PATTERN_LLAMA3[];
extern const char TOKENIZER_PATTERN_GPT2[];

/* Pre-tokenizer (pretokenize.c): a PCRE2 regex compiled once per tokenizer
 * with UTF and Unicode properties (JIT when the library has it). */
typedef struct pretokenizer pretokenizer;
typedef struct pretok_match pretok_match; /* per-call match state: the tokenizer stays const */
lc_status pretokenizer_create(const char *pattern, size_t len, pretokenizer **out, lc_error *err);
void pretokenizer_free(pretokenizer *p);
const char *pretokenizer_pattern(const pretokenizer *p);
pretok_match *pretok_match_create(const pretokenizer *p);
void pretok_match_free(pretok_match *m);
/* Calls fn(user, start, end) for every piece of s[0..n) (valid UTF-8): the
 * matches and, as Hugging Face's "Isolated" split keeps them, any text
 * between matches. Stops at fn's first error. */
typedef lc_status (*pretok_piece_fn)(void *user, size_t start, size_t end, lc_error *err);
lc_status pretokenize(const pretokenizer *p, pretok_match *m, const char *s, size_t n,
                      pretok_piece_fn fn, void *user, lc_error *err);

/* Byte-level BPE of one pre-token (bpe_byte.c): appends its ids to out,
 * which has room for n ids. Returns how many were written. */
typedef struct bpe_scratch {
    struct bpe_symbol *sym;
    struct bpe_candidate *heap;
    size_t cap; /* symbols the arrays hold */
} bpe_scratch;
void bpe_scratch_free(bpe_scratch *s);
lc_status bpe_encode_piece(const lc_tokenizer *t, bpe_scratch *s, const char *p, size_t n,
                           lc_token *out, size_t *n_out, lc_error *err);

/* Byte-level BPE encoding of a whole text (encode_bpe.c). */
lc_status tokenizer_encode_bpe(const lc_tokenizer *t, const char *text, size_t len,
                               const lc_encode_options *opts, lc_token **out, size_t *n_out,
                               lc_error *err);

#endif
