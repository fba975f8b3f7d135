/* The byte-level BPE pre-tokenizer: a regex splits text into pieces (words
 * with their leading space, runs of up to three digits, punctuation, runs of
 * whitespace) that BPE then encodes one by one. The regex is run by PCRE2 in
 * UTF mode with Unicode properties (\p{L}, \p{N}, \s as Unicode defines them),
 * JIT-compiled when the library supports it: a hand-written approximation of
 * these classes is what moved llama.cpp's Llama 3 perplexity by percents. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

/* Meta's Llama 3 tokenizer (tokenizer.py) and tokenizer.json's Split regex. */
const char TOKENIZER_PATTERN_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* OpenAI's GPT-2 encoder (tokenizers' ByteLevel with use_regex). */
const char TOKENIZER_PATTERN_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct pretokenizer {
    pcre2_code *code;
    pcre2_match_context *ctx;
    char *pattern;
};

struct pretok_match {
    pcre2_match_data *data;
};

lc_status pretokenizer_create(const char *pattern, size_t len, pretokenizer **out, lc_error *err) {
    *out = NULL;
    pretokenizer *p = calloc(1, sizeof *p);
    if (!p || !(p->pattern = malloc(len + 1))) {
        free(p);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    }
    memcpy(p->pattern, pattern, len);
    p->pattern[len] = '\0';
    int code;
    PCRE2_SIZE at;
    p->code = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        pretokenizer_free(p);
        return lc_fail(err, LC_ERR_FORMAT, "pre-tokenizer regex: %s at offset %zu", (char *)msg,
                       (size_t)at);
    }
    (void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE); /* without JIT, the interpreter runs */
    /* A run of a million spaces backtracks a million steps in \s*[\r\n]+:
     * linear work, but past PCRE2's default limit of ten million. */
    if (!(p->ctx = pcre2_match_context_create(NULL))) {
        pretokenizer_free(p);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    }
    pcre2_set_match_limit(p->ctx, UINT32_MAX);
    pcre2_set_heap_limit(p->ctx, UINT32_MAX);
    *out = p;
    return LC_OK;
}

void pretokenizer_free(pretokenizer *p) {
    if (!p) return;
    pcre2_code_free(p->code);
    pcre2_match_context_free(p->ctx);
    free(p->pattern);
    free(p);
}

const char *pretokenizer_pattern(const pretokenizer *p) { return p->pattern; }

pretok_match *pretok_match_create(const pretokenizer *p) {
    pretok_match *m = malloc(sizeof *m);
    if (m && !(m->data = pcre2_match_data_create_from_pattern(p->code, NULL))) {
        free(m);
        m = NULL;
    }
    return m;
}

void pretok_match_free(pretok_match *m) {
    if (!m) return;
    pcre2_match_data_free(m->data);
    free(m);
}

lc_status pretokenize(const pretokenizer *p, pretok_match *m, const char *s, size_t n,
                      pretok_piece_fn fn, void *user, lc_error *err) {
    size_t at = 0; /* the end of the last piece */
    size_t from = 0;
    lc_status st;
    while (from < n) {
        /* The text is checked UTF-8 already (encode_bpe.c replaces the rest). */
        int rc = pcre2_match(p->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, m->data, p->ctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lc_fail(err, LC_ERR_ARG, "pre-tokenizer regex failed at byte %zu: %s", from,
                           (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->data);
        size_t start = ov[0], end = ov[1];
        if (start > at && (st = fn(user, at, start, err))) return st; /* unmatched text */
        if (end > start) {
            if ((st = fn(user, start, end, err))) return st;
            from = at = end;
        } else {
            /* An empty match (a pattern from a file may allow one): step one
             * character so the search moves on. */
            from = start + 1;
            while (from < n && ((unsigned char)s[from] & 0xC0) == 0x80) from++;
            at = start;
        }
    }
    if (n > at && (st = fn(user, at, n, err))) return st;
    return LC_OK;
}
