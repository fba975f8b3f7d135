/* The merge table of byte-level BPE: (left id, right id) -> (rank, merged id)
 * in an open-addressing hash, so the merge loop costs one probe per pair. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

static uint64_t pair_key(lc_token left, lc_token right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static uint32_t pair_hash(uint64_t key) {
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32); /* Fibonacci hashing */
}

lc_status bpe_pairs_init(bpe_pairs *p, uint32_t expected, lc_error *err) {
    uint32_t n_slots = 1024;
    while (n_slots < 2u * expected && n_slots < (1u << 30)) n_slots <<= 1;
    p->slots = malloc((size_t)n_slots * sizeof *p->slots);
    if (!p->slots) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %u merges", expected);
    for (uint32_t i = 0; i < n_slots; i++) p->slots[i].key = BPE_PAIR_EMPTY;
    p->mask = n_slots - 1;
    p->n = 0;
    return LC_OK;
}

void bpe_pairs_free(bpe_pairs *p) {
    free(p->slots);
    memset(p, 0, sizeof *p);
}

/* Doubles the table; the load factor stays at or below one half. */
static lc_status grow(bpe_pairs *p, lc_error *err) {
    bpe_pairs bigger;
    if ((p->mask + 1) >= (1u << 30))
        return lc_fail(err, LC_ERR_FORMAT, "more than %u merges", 1u << 29);
    lc_status st = bpe_pairs_init(&bigger, p->mask + 1, err);
    if (st) return st;
    for (uint32_t i = 0; i <= p->mask; i++) {
        if (p->slots[i].key == BPE_PAIR_EMPTY) continue;
        uint32_t j = pair_hash(p->slots[i].key) & bigger.mask;
        while (bigger.slots[j].key != BPE_PAIR_EMPTY) j = (j + 1) & bigger.mask;
        bigger.slots[j] = p->slots[i];
    }
    bigger.n = p->n;
    free(p->slots);
    *p = bigger;
    return LC_OK;
}

lc_status bpe_pairs_add(bpe_pairs *p, lc_token left, lc_token right, int32_t rank, lc_token result,
                        bool keep_first, lc_error *err) {
    if (2 * (p->n + 1) > p->mask + 1) {
        lc_status st = grow(p, err);
        if (st) return st;
    }
    uint64_t key = pair_key(left, right);
    uint32_t i = pair_hash(key) & p->mask;
    for (; p->slots[i].key != BPE_PAIR_EMPTY; i = (i + 1) & p->mask) {
        if (p->slots[i].key != key) continue;
        if (!keep_first) p->slots[i] = (bpe_pair){key, rank, result};
        return LC_OK;
    }
    p->slots[i] = (bpe_pair){key, rank, result};
    p->n++;
    return LC_OK;
}

const bpe_pair *bpe_pairs_find(const bpe_pairs *p, lc_token left, lc_token right) {
    uint64_t key = pair_key(left, right);
    for (uint32_t i = pair_hash(key) & p->mask;; i = (i + 1) & p->mask) {
        if (p->slots[i].key == key) return &p->slots[i];
        if (p->slots[i].key == BPE_PAIR_EMPTY) return NULL;
    }
}

lc_status bpe_pairs_from_ranks(lc_tokenizer *t, lc_error *err) {
    lc_status st = bpe_pairs_init(&t->pairs, (uint32_t)t->n_vocab * 2, err);
    if (st) return st;
    for (lc_token id = 0; id < t->n_vocab; id++) {
        if (t->kind[id] != TOKEN_NORMAL) continue;
        const char *s = t->arena + t->offset[id];
        uint32_t len = t->length[id];
        for (uint32_t k = 1; k < len; k++) {
            lc_token left = tokenizer_lookup(t, s, k);
            if (left < 0) continue;
            lc_token right = tokenizer_lookup(t, s + k, len - k);
            if (right < 0) continue;
            if ((st = bpe_pairs_add(&t->pairs, left, right, id, id, true, err))) return st;
        }
    }
    return LC_OK;
}

static int by_rank(const void *a, const void *b) {
    const bpe_pair *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

lc_status bpe_pairs_sorted(const bpe_pairs *p, bpe_pair **out, lc_error *err) {
    *out = malloc(((size_t)p->n + 1) * sizeof **out);
    if (!*out) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %u merges", p->n);
    uint32_t n = 0;
    for (uint32_t i = 0; p->slots && i <= p->mask; i++)
        if (p->slots[i].key != BPE_PAIR_EMPTY) (*out)[n++] = p->slots[i];
    qsort(*out, n, sizeof **out, by_rank);
    return LC_OK;
}
