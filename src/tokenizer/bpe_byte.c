/* Byte-level BPE of one pre-token: start from one symbol per byte, then
 * repeatedly merge the adjacent pair with the lowest merge rank (ties: the
 * leftmost), as tiktoken and Hugging Face tokenizers do. A pre-token that is
 * itself a piece is taken whole first (tiktoken always does; tokenizer.json
 * says so with ignore_merges), which is also the fast path for most words.
 *
 * Candidates live in a binary min-heap, so a long pre-token (a run of a
 * thousand spaces or letters) costs O(n log n), not the O(n^2) of rescanning. */
#include <stdlib.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct bpe_symbol {
    lc_token id;
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    bool dead;          /* merged into its left neighbour */
} bpe_symbol;

typedef struct bpe_candidate {
    int32_t rank;
    int32_t left, right;        /* symbol indices */
    lc_token left_id, right_id; /* when pushed: a changed symbol makes the entry stale */
    lc_token result;
} bpe_candidate;

/* a comes first: lower rank, then the leftmost pair. */
static bool before(const bpe_candidate *a, const bpe_candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void push(bpe_candidate *heap, size_t *n, bpe_candidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&c, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = c;
}

static bpe_candidate pop(bpe_candidate *heap, size_t *n) {
    bpe_candidate top = heap[0], last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n) heap[i] = last;
    return top;
}

static void try_pair(const lc_tokenizer *t, const bpe_symbol *sym, bpe_candidate *heap,
                     size_t *n_heap, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const bpe_pair *p = bpe_pairs_find(&t->pairs, sym[left].id, sym[right].id);
    if (p)
        push(heap, n_heap,
             (bpe_candidate){p->rank, left, right, sym[left].id, sym[right].id, p->result});
}

void bpe_scratch_free(bpe_scratch *s) {
    free(s->sym);
    free(s->heap);
    s->sym = NULL;
    s->heap = NULL;
    s->cap = 0;
}

static lc_status reserve(bpe_scratch *s, size_t n, lc_error *err) {
    if (n <= s->cap) return LC_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    bpe_scratch_free(s);
    s->sym = malloc(cap * sizeof *s->sym);
    /* the first n - 1 pairs, then at most two per merge */
    s->heap = malloc(3 * cap * sizeof *s->heap);
    if (!s->sym || !s->heap) {
        bpe_scratch_free(s);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for a pre-token of %zu bytes", n);
    }
    s->cap = cap;
    return LC_OK;
}

lc_status bpe_encode_piece(const lc_tokenizer *t, bpe_scratch *s, const char *p, size_t n,
                           lc_token *out, size_t *n_out, lc_error *err) {
    *n_out = 0;
    if (n == 0) return LC_OK;
    if (t->ignore_merges || n == 1) {
        lc_token whole = tokenizer_lookup(t, p, n);
        if (whole >= 0) {
            out[0] = whole;
            *n_out = 1;
            return LC_OK;
        }
    }
    lc_status st = reserve(s, n, err);
    if (st) return st;
    bpe_symbol *sym = s->sym;
    for (size_t i = 0; i < n; i++) /* every byte has a piece: checked at load */
        sym[i] = (bpe_symbol){t->byte_token[(uint8_t)p[i]], (int32_t)i - 1,
                              i + 1 < n ? (int32_t)i + 1 : -1, false};
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(t, sym, s->heap, &n_heap, (int32_t)i, (int32_t)i + 1);
    while (n_heap > 0) {
        bpe_candidate c = pop(s->heap, &n_heap);
        bpe_symbol *l = &sym[c.left], *r = &sym[c.right];
        if (l->dead || r->dead || l->next != c.right || l->id != c.left_id || r->id != c.right_id)
            continue; /* stale: one side merged since */
        l->id = c.result;
        l->next = r->next;
        r->dead = true;
        if (r->next >= 0) sym[r->next].prev = c.left;
        try_pair(t, sym, s->heap, &n_heap, l->prev, c.left);
        try_pair(t, sym, s->heap, &n_heap, c.left, l->next);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) out[k++] = sym[i].id;
    *n_out = k;
    return LC_OK;
}
