/* Meta's Llama 3 tokenizer.model, in tiktoken's format: one line per piece,
 * "BASE64 RANK", where the rank is both the merge priority and the token id.
 * The file holds no special tokens: Meta's tokenizer adds 256 after the last
 * rank, and no merge list: a pair merges when its concatenation is a piece
 * (bpe_pairs_from_ranks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#define N_SPECIAL 256
#define MAX_RANKS (1 << 22)

/* The special tokens' names and order are those of Meta's Llama 3.1
 * tokenizer (meta-llama/llama-models, models/llama3/tokenizer.py): eleven
 * named ones, then <|reserved_special_token_3|> .. _247|>. Llama 3.0's list
 * has the same ids for begin/end_of_text, start/end_header_id and eot_id and
 * calls every other one a reserved token (numbered 0..250), so a 3.0
 * tokenizer_config.json differs from this only in names chat does not use. */
static void special_name(int i, char *buf, size_t cap) {
    static const char *const named[] = {"<|begin_of_text|>",
                                        "<|end_of_text|>",
                                        "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>",
                                        "<|finetune_right_pad_id|>",
                                        "<|reserved_special_token_2|>",
                                        "<|start_header_id|>",
                                        "<|end_header_id|>",
                                        "<|eom_id|>",
                                        "<|eot_id|>",
                                        "<|python_tag|>"};
    const int n_named = (int)(sizeof named / sizeof named[0]);
    if (i < n_named)
        snprintf(buf, cap, "%s", named[i]);
    else
        snprintf(buf, cap, "<|reserved_special_token_%d|>", i - n_named + 3);
}

static int base64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard padded base64; returns the byte count, or -1. out may be
 * NULL to only check and measure. */
static int64_t base64_decode(const uint8_t *s, size_t n, char *out) {
    if (n == 0 || n % 4 != 0) return -1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    int64_t len = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = i + k >= n - pad ? 0 : base64_value(s[i + k]);
            if (d < 0) return -1;
            v = v << 6 | (uint32_t)d;
        }
        size_t bytes = i + 4 == n ? 3 - pad : 3;
        for (size_t k = 0; k < bytes; k++)
            if (out) out[len + (int64_t)k] = (char)(v >> (16 - 8 * k));
        len += (int64_t)bytes;
    }
    return len;
}

typedef struct line {
    const uint8_t *token; /* base64 */
    size_t token_len;
    int64_t rank; /* -1 when malformed */
    const uint8_t *next;
} line;

/* Splits the line at p: "BASE64 RANK", then "\n" (or "\r\n") or the end. */
static line read_line(const uint8_t *p, const uint8_t *end) {
    line l = {p, 0, -1, end};
    const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
    l.next = eol ? eol + 1 : end;
    if (!eol) eol = end;
    if (eol > p && eol[-1] == '\r') eol--;
    const uint8_t *space = memchr(p, ' ', (size_t)(eol - p));
    if (!space || space == p || space + 1 == eol || eol - space > 10) return l;
    l.token_len = (size_t)(space - p);
    int64_t rank = 0;
    for (const uint8_t *d = space + 1; d < eol; d++) {
        if (*d < '0' || *d > '9') return l;
        rank = rank * 10 + (*d - '0');
    }
    l.rank = rank;
    return l;
}

bool tokenizer_is_tiktoken(const uint8_t *data, uint64_t size) {
    line l = read_line(data, data + size);
    if (l.rank < 0) return false;
    for (size_t i = 0; i < l.token_len; i++)
        if (base64_value(l.token[i]) < 0 && l.token[i] != '=') return false;
    return true;
}

static lc_status parse(lc_tokenizer *t, const uint8_t *data, uint64_t size, lc_error *err) {
    const uint8_t *end = data + size;
    while (end > data && (end[-1] == '\n' || end[-1] == '\r')) end--; /* final line ends */
    /* First pass: check every line, count pieces and bytes. */
    uint64_t n = 0, bytes = 0;
    for (const uint8_t *p = data; p < end;) {
        line l = read_line(p, end);
        if (l.rank < 0)
            return lc_fail(err, LC_ERR_FORMAT, "line %llu is not \"BASE64 RANK\"",
                           (unsigned long long)n + 1);
        int64_t len = base64_decode(l.token, l.token_len, NULL);
        if (len < 1 || len > LC_MAX_PIECE_BYTES)
            return lc_fail(err, LC_ERR_FORMAT, "line %llu: %s", (unsigned long long)n + 1,
                           len < 1 ? "the token is not valid base64" : "the token is too long");
        if (l.rank >= MAX_RANKS)
            return lc_fail(err, LC_ERR_FORMAT, "line %llu: rank %lld is past %d",
                           (unsigned long long)n + 1, (long long)l.rank, MAX_RANKS);
        bytes += (uint64_t)len + 1;
        n++;
        p = l.next;
    }
    if (n < 256)
        return lc_fail(err, LC_ERR_FORMAT, "%llu pieces; a byte-level vocabulary has at least 256",
                       (unsigned long long)n);
    char name[64];
    for (int i = 0; i < N_SPECIAL; i++) {
        special_name(i, name, sizeof name);
        bytes += strlen(name) + 1;
    }
    lc_status st = tokenizer_alloc(t, (int32_t)(n + N_SPECIAL), bytes, err);
    if (st) return st;
    /* Second pass: pieces in rank order; the ranks must be 0 .. n-1, once each. */
    uint8_t *seen = calloc((size_t)n, 1);
    if (!seen) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    uint32_t at = 0;
    uint64_t i = 0;
    for (const uint8_t *p = data; i < n; i++) {
        line l = read_line(p, end);
        if (l.rank >= (int64_t)n || seen[l.rank]) {
            free(seen);
            return lc_fail(err, LC_ERR_FORMAT, "line %llu: rank %lld %s", (unsigned long long)i + 1,
                           (long long)l.rank,
                           l.rank >= (int64_t)n ? "leaves a gap: ranks must be 0 to the line count"
                                                : "appears twice");
        }
        seen[l.rank] = 1;
        int64_t len = base64_decode(l.token, l.token_len, t->arena + at);
        t->arena[at + (uint32_t)len] = '\0';
        t->offset[l.rank] = at;
        t->length[l.rank] = (uint32_t)len;
        at += (uint32_t)len + 1;
        p = l.next;
    }
    free(seen);
    for (int k = 0; k < N_SPECIAL; k++) {
        lc_token id = (lc_token)n + k;
        special_name(k, name, sizeof name);
        size_t len = strlen(name);
        memcpy(t->arena + at, name, len + 1);
        t->offset[id] = at;
        t->length[id] = (uint32_t)len;
        t->kind[id] = TOKEN_CONTROL;
        at += (uint32_t)len + 1;
    }
    t->type = TOKENIZER_BYTE_BPE;
    t->unk = -1;
    t->bos = (lc_token)n;     /* <|begin_of_text|> */
    t->eos = (lc_token)n + 1; /* <|end_of_text|> */
    t->add_bos = true;
    t->ignore_merges = true; /* tiktoken looks a whole pre-token up first */
    if ((st = tokenizer_build_index(t, true, err)) || (st = bpe_pairs_from_ranks(t, err)))
        return st;
    return pretokenizer_create(TOKENIZER_PATTERN_LLAMA3, strlen(TOKENIZER_PATTERN_LLAMA3), &t->pre,
                               err);
}

lc_status tokenizer_parse_tiktoken(lc_tokenizer *t, const uint8_t *data, uint64_t size,
                                   const char *name, lc_error *err) {
    lc_status st = parse(t, data, size, err);
    if (st) lc_fail_prefix(err, name);
    return st;
}
