/* Cutting a text into the documents perplexity scores: fixed windows of one
 * long token stream (standard mode) or one document per line (--per-line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "llamac.h"

lc_status lc_eval_windows(lc_token *tokens, size_t n_tokens, int ctx, lc_token bos,
                          lc_eval_doc **docs, int *n_docs, lc_error *err) {
    *docs = NULL;
    *n_docs = 0;
    /* ctx 2 would leave nothing to score: the window's only prediction is
     * from its first half. */
    if (ctx < 3)
        return lc_fail(err, LC_ERR_ARG,
                       "--ctx %d: standard mode needs at least 3 (each window scores its "
                       "tokens ctx/2+1 .. ctx-1)",
                       ctx);
    if (n_tokens < (size_t)ctx)
        return lc_fail(err, LC_ERR_ARG,
                       "the text has %zu tokens, fewer than one window of --ctx %d", n_tokens, ctx);
    if (n_tokens / (size_t)ctx > 0x7fffffff)
        return lc_fail(err, LC_ERR_ARG, "%zu tokens make too many windows", n_tokens);
    const int n = (int)(n_tokens / (size_t)ctx);
    lc_eval_doc *d = malloc((size_t)n * sizeof *d);
    if (!d) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d windows", n);
    for (int w = 0; w < n; w++) {
        lc_token *start = tokens + (size_t)w * (size_t)ctx;
        /* Each window is evaluated from a fresh cache, so it starts like a
         * document; its original first token is context only, never scored. */
        start[0] = bos;
        d[w] = (lc_eval_doc){start, ctx, ctx / 2 + 1};
    }
    *docs = d;
    *n_docs = n;
    return LC_OK;
}

/* Appends `n` ids to the growing array; false when out of memory. */
static bool append(lc_token **ids, size_t *len, size_t *cap, const lc_token *src, size_t n) {
    if (*len + n > *cap) {
        size_t want = *cap ? *cap : 4096;
        while (want < *len + n) want *= 2;
        lc_token *bigger = realloc(*ids, want * sizeof *bigger);
        if (!bigger) return false;
        *ids = bigger;
        *cap = want;
    }
    memcpy(*ids + *len, src, n * sizeof *src);
    *len += n;
    return true;
}

lc_status lc_eval_lines(const lc_tokenizer *tok, const char *text, size_t len, int ctx,
                        lc_token **tokens, lc_eval_doc **docs, int *n_docs, lc_error *err) {
    *tokens = NULL;
    *docs = NULL;
    *n_docs = 0;
    if (ctx < 2)
        return lc_fail(err, LC_ERR_ARG, "--ctx %d: a line needs at least 2 (BOS and a token)", ctx);
    lc_token *ids = NULL, *line_ids = NULL;
    size_t n_ids = 0, cap_ids = 0;
    /* Documents hold offsets into ids while it may still move. */
    size_t *offset = NULL, cap_docs = 0;
    lc_eval_doc *d = NULL;
    int n = 0;
    lc_status st = LC_OK;
    for (size_t at = 0, line_no = 1; at < len; line_no++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, next = nl ? end + 1 : len;
        size_t stop = end;
        while (stop > at && (text[stop - 1] == '\r' || text[stop - 1] == '\n')) stop--;
        if (stop == at) {
            at = next;
            continue;
        }
        size_t n_line;
        st = lc_tokenizer_encode(tok, text + at, stop - at, true, false, &line_ids, &n_line, err);
        if (st) {
            char where[64];
            snprintf(where, sizeof where, "line %zu", line_no);
            lc_fail_prefix(err, where);
            goto fail;
        }
        if (n_line > (size_t)ctx) n_line = (size_t)ctx; /* truncated to the context */
        if (n_line >= 2) {
            if (n == 0x7fffffff) {
                st = lc_fail(err, LC_ERR_ARG, "too many lines");
                goto fail;
            }
            if ((size_t)n == cap_docs) {
                cap_docs = cap_docs ? 2 * cap_docs : 256;
                size_t *o = realloc(offset, cap_docs * sizeof *o);
                lc_eval_doc *dd = realloc(d, cap_docs * sizeof *dd);
                if (o) offset = o;
                if (dd) d = dd;
                if (!o || !dd) goto nomem;
            }
            offset[n] = n_ids;
            d[n] = (lc_eval_doc){NULL, (int32_t)n_line, 1};
            if (!append(&ids, &n_ids, &cap_ids, line_ids, n_line)) goto nomem;
            n++;
        }
        free(line_ids);
        line_ids = NULL;
        at = next;
    }
    for (int i = 0; i < n; i++) d[i].tokens = ids + offset[i];
    free(offset);
    *tokens = ids;
    *docs = d;
    *n_docs = n;
    return LC_OK;
nomem:
    st = lc_fail(err, LC_ERR_NOMEM, "out of memory for the tokens of %d lines", n);
fail:
    free(line_ids);
    free(ids);
    free(offset);
    free(d);
    return st;
}
