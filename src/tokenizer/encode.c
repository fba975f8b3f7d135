/* SentencePiece BPE encoding, exactly as SentencePiece does it for Llama 2:
 * escape spaces, prepend the dummy-prefix space, split into UTF-8 characters,
 * then repeatedly merge the adjacent pair whose concatenation is the
 * highest-scoring vocabulary piece (ties: leftmost first). Characters the
 * vocabulary lacks fall back to <0xXX> byte tokens.
 *
 * Merge candidates live in a binary max-heap, so encoding is O(n log n): a
 * merge invalidates at most two candidates, which are skipped when popped. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

typedef struct symbol {
    uint32_t start, len; /* bytes of the normalized text; len 0 once merged away */
    int32_t prev, next;  /* neighbours in the live list, -1 at the ends */
} symbol;

typedef struct candidate {
    float score;
    int32_t left, right; /* symbol indices */
    uint32_t len;        /* left.len + right.len when pushed: detects stale entries */
} candidate;

typedef struct heap {
    candidate *items;
    size_t n;
} heap;

/* a outranks b: higher score, then the leftmost pair. */
static int outranks(const candidate *a, const candidate *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(heap *h, candidate c) {
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!outranks(&c, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = c;
}

static candidate heap_pop(heap *h) {
    candidate top = h->items[0], last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && outranks(&h->items[child + 1], &h->items[child])) child++;
        if (!outranks(&h->items[child], &last)) break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->n) h->items[i] = last;
    return top;
}

typedef struct encoder {
    const lc_tokenizer *tok;
    const char *text; /* normalized */
    symbol *sym;
    heap heap;
} encoder;

static void try_pair(encoder *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const symbol *l = &e->sym[left], *r = &e->sym[right];
    lc_token id = tokenizer_lookup(e->tok, e->text + l->start, l->len + r->len);
    if (id < 0) return;
    heap_push(&e->heap, (candidate){e->tok->score[id], left, right, l->len + r->len});
}

/* Normalizes as Llama 2's SentencePiece model does: a dummy-prefix space, and
 * U+2581 (SentencePiece's escaped space) read as a space. */
static char *normalize(const char *text, size_t len, size_t *out_len) {
    char *out = malloc(len + 2);
    if (!out) return NULL;
    size_t n = 0;
    out[n++] = ' ';
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && (uint8_t)text[i] == 0xE2 && (uint8_t)text[i + 1] == 0x96 &&
            (uint8_t)text[i + 2] == 0x81) {
            out[n++] = ' ';
            i += 2;
        } else {
            out[n++] = text[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static size_t emit_symbol(const encoder *e, const symbol *s, lc_token *out) {
    lc_token id = tokenizer_lookup(e->tok, e->text + s->start, s->len);
    if (id >= 0) {
        out[0] = id;
        return 1;
    }
    /* Byte fallback; a vocabulary without it gets one <unk> per character, as
     * SentencePiece gives. */
    for (uint32_t i = 0; i < s->len; i++)
        if (e->tok->byte_token[(uint8_t)e->text[s->start + i]] < 0) {
            out[0] = e->tok->unk;
            return 1;
        }
    for (uint32_t i = 0; i < s->len; i++)
        out[i] = e->tok->byte_token[(uint8_t)e->text[s->start + i]];
    return s->len;
}

static lc_status encode_spm(const lc_tokenizer *tok, const char *text, size_t len, bool add_bos,
                            bool add_eos, lc_token **out, size_t *n_out, lc_error *err) {
    /* Symbol indices are int32 and offsets uint32: keep well inside both. */
    if (len > (size_t)INT32_MAX / 2)
        return lc_fail(err, LC_ERR_ARG, "text of %zu bytes is too long to encode (limit 1 GiB)",
                       len);
    size_t bad = utf8_first_invalid(text, len);
    if (bad < len)
        return lc_fail(err, LC_ERR_ARG, "text is not valid UTF-8 (byte 0x%02x at offset %zu)",
                       (uint8_t)text[bad], bad);
    size_t n_text = 0;
    encoder e = {tok, NULL, NULL, {NULL, 0}};
    lc_token *ids = NULL;
    lc_status st = LC_ERR_NOMEM;
    if (len > 0) {
        char *norm = normalize(text, len, &n_text);
        e.text = norm;
        e.sym = malloc(n_text * sizeof *e.sym);
        /* Each merge pushes at most two candidates after the initial n - 1. */
        e.heap.items = malloc(3 * n_text * sizeof *e.heap.items);
        if (!norm || !e.sym || !e.heap.items) goto done;
    }
    /* Worst case every byte becomes a byte token, plus BOS and EOS. */
    ids = malloc((n_text + 2) * sizeof *ids);
    if (!ids) goto done;
    size_t n = 0;
    if (add_bos) ids[n++] = tok->bos;
    if (len > 0) {
        int32_t n_sym = 0;
        for (uint32_t at = 0; at < n_text;) {
            uint32_t clen = (uint32_t)utf8_char_length((const uint8_t *)e.text + at, n_text - at);
            e.sym[n_sym] = (symbol){at, clen, n_sym - 1, -1};
            if (n_sym > 0) e.sym[n_sym - 1].next = n_sym;
            n_sym++;
            at += clen;
        }
        for (int32_t i = 0; i + 1 < n_sym; i++) try_pair(&e, i, i + 1);
        while (e.heap.n > 0) {
            candidate c = heap_pop(&e.heap);
            symbol *l = &e.sym[c.left], *r = &e.sym[c.right];
            if (l->len == 0 || r->len == 0 || l->len + r->len != c.len) continue; /* stale */
            l->len += r->len;
            r->len = 0;
            l->next = r->next;
            if (r->next >= 0) e.sym[r->next].prev = c.left;
            try_pair(&e, l->prev, c.left);
            try_pair(&e, c.left, l->next);
        }
        for (int32_t i = 0; i >= 0; i = e.sym[i].next) n += emit_symbol(&e, &e.sym[i], ids + n);
    }
    if (add_eos) ids[n++] = tok->eos;
    *out = ids;
    *n_out = n;
    ids = NULL;
    st = LC_OK;
done:
    free(ids);
    free((char *)e.text);
    free(e.sym);
    free(e.heap.items);
    if (st) lc_fail(err, st, "out of memory encoding %zu bytes", len);
    return st;
}

lc_status lc_tokenizer_encode_ex(const lc_tokenizer *tok, const char *text, size_t len,
                                 const lc_encode_options *opts, lc_token **out, size_t *n_out,
                                 lc_error *err) {
    *out = NULL;
    *n_out = 0;
    lc_encode_options defaults = {tok->add_bos, false, false};
    if (!opts) opts = &defaults;
    if (tok->type == TOKENIZER_BYTE_BPE)
        return tokenizer_encode_bpe(tok, text, len, opts, out, n_out, err);
    return encode_spm(tok, text, len, opts->add_bos, opts->add_eos, out, n_out, err);
}

lc_status lc_tokenizer_encode(const lc_tokenizer *tok, const char *text, size_t len, bool add_bos,
                              bool add_eos, lc_token **out, size_t *n_out, lc_error *err) {
    lc_encode_options opts = {add_bos, add_eos, false};
    return lc_tokenizer_encode_ex(tok, text, len, &opts, out, n_out, err);
}
