#include "model/shard.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

/* Why a rank count does not fit a model, checked in this order. */
typedef enum shard_fault {
    SHARD_FITS = 0,
    SHARD_BAD_COUNT,   /* outside 1..SHARD_MAX_RANKS */
    SHARD_KV_HEADS,    /* n_kv_heads % n: a rank would hold part of a kv head's group */
    SHARD_HEAD_BLOCKS, /* a rank's wo columns are not whole blocks */
    SHARD_FFN_BLOCKS,  /* the hidden units do not split into whole blocks */
    SHARD_VOCAB,       /* fewer vocabulary rows than ranks */
} shard_fault;

static shard_fault shard_check(const lc_config *c, int n, int block) {
    if (n < 1 || n > SHARD_MAX_RANKS) return SHARD_BAD_COUNT;
    if (n == 1) return SHARD_FITS; /* nothing is cut */
    if (c->n_kv_heads % n) return SHARD_KV_HEADS;
    /* n_heads is a multiple of n_kv_heads (checked by the caller), so the
     * query heads split too, and rank r's queries read only its kv heads. */
    assert(c->n_heads % n == 0);
    if ((int64_t)(c->n_heads / n) * c->head_dim % block) return SHARD_HEAD_BLOCKS;
    if (c->hidden_dim % block || c->hidden_dim / block < n) return SHARD_FFN_BLOCKS;
    if (c->vocab_size < n) return SHARD_VOCAB;
    return SHARD_FITS;
}

/* "1, 2 or 4": every rank count that fits, for the error message. */
static void fitting_counts(const lc_config *c, int block, char *buf, size_t cap) {
    int fits[SHARD_MAX_RANKS], n_fits = 0;
    for (int n = 1; n <= SHARD_MAX_RANKS; n++)
        if (shard_check(c, n, block) == SHARD_FITS) fits[n_fits++] = n;
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n_fits && len < cap; i++) {
        const char *sep = i == 0 ? "" : i == n_fits - 1 ? " or " : ", ";
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", sep, fits[i]);
    }
}

/* Part r of n of [0, total) in units of `unit`: sizes differ by at most one unit. */
static shard_range split(int32_t total, int32_t unit, int r, int n) {
    const int64_t units = total / unit;
    assert((int64_t)unit * units == total);
    return (shard_range){(int32_t)(units * r / n * unit), (int32_t)(units * (r + 1) / n * unit)};
}

static shard_range scaled(shard_range r, int32_t by, int32_t offset) {
    return (shard_range){offset + r.begin * by, offset + r.end * by};
}

lc_status shard_plan_make(const lc_config *c, int n, int block, shard_plan *out, lc_error *err) {
    memset(out, 0, sizeof *out);
    if (block < 1) return lc_fail(err, LC_ERR_ARG, "shard plan: block size %d", block);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads || c->head_dim < 1 || c->dim < 1 ||
        c->hidden_dim < 1 || c->vocab_size < 1)
        return lc_fail(err, LC_ERR_FORMAT,
                       "shard plan: %d heads over %d kv heads of %d (dim %d, hidden %d, vocab %d) "
                       "is not a valid attention layout",
                       c->n_heads, c->n_kv_heads, c->head_dim, c->dim, c->hidden_dim,
                       c->vocab_size);
    char fits[SHARD_MAX_RANKS * 6];
    switch (shard_check(c, n, block)) {
    case SHARD_FITS: break;
    case SHARD_BAD_COUNT:
        return lc_fail(err, LC_ERR_ARG, "--tensor-parallel %d: must be 1 to %d", n,
                       SHARD_MAX_RANKS);
    case SHARD_KV_HEADS:
        fitting_counts(c, block, fits, sizeof fits);
        return lc_fail(err, LC_ERR_ARG,
                       "--tensor-parallel %d: the model's %d kv heads do not split evenly over "
                       "%d GPUs (use %s)",
                       n, c->n_kv_heads, n, fits);
    case SHARD_HEAD_BLOCKS:
        fitting_counts(c, block, fits, sizeof fits);
        return lc_fail(err, LC_ERR_ARG,
                       "--tensor-parallel %d: each GPU's %d heads of %d give wo %d columns, not "
                       "whole %d-weight blocks of its quantized rows (use %s)",
                       n, c->n_heads / n, c->head_dim, c->n_heads / n * c->head_dim, block, fits);
    case SHARD_FFN_BLOCKS:
        fitting_counts(c, block, fits, sizeof fits);
        return lc_fail(err, LC_ERR_ARG,
                       "--tensor-parallel %d: the FFN's %d hidden units do not split into whole "
                       "%d-weight blocks of its quantized rows over %d GPUs (use %s)",
                       n, c->hidden_dim, block, n, fits);
    case SHARD_VOCAB:
        fitting_counts(c, block, fits, sizeof fits);
        return lc_fail(err, LC_ERR_ARG,
                       "--tensor-parallel %d: the vocabulary of %d tokens is smaller than the "
                       "number of GPUs (use %s)",
                       n, c->vocab_size, fits);
    }

    const int32_t hd = c->head_dim;
    const int32_t q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    /* A single rank cuts nothing, so its FFN need not be whole blocks. */
    const int32_t ffn_unit = n == 1 ? c->hidden_dim : block;
    *out = (shard_plan){.n_ranks = n,
                        .block = block,
                        .dim = c->dim,
                        .q_dim = q_dim,
                        .kv_dim = kv_dim,
                        .hidden_dim = c->hidden_dim,
                        .vocab_size = c->vocab_size};
    for (int r = 0; r < n; r++) {
        shard_rank *s = &out->rank[r];
        s->q_heads = split(c->n_heads, 1, r, n);
        s->kv_heads = split(c->n_kv_heads, 1, r, n);
        s->q_rows = scaled(s->q_heads, hd, 0);
        s->kv_rows = scaled(s->kv_heads, hd, 0);
        s->qkv_rows[0] = s->q_rows;
        s->qkv_rows[1] = scaled(s->kv_heads, hd, q_dim);
        s->qkv_rows[2] = scaled(s->kv_heads, hd, q_dim + kv_dim);
        s->wo_cols = s->q_rows;
        s->ffn = split(c->hidden_dim, ffn_unit, r, n);
        s->w2_cols = s->ffn;
        s->vocab = split(c->vocab_size, 1, r, n);
        /* GQA: query head h reads kv head h / group; the rank's first and last
         * query heads must read its own first and last kv heads. */
        const int32_t group = c->n_heads / c->n_kv_heads;
        assert(s->q_heads.begin / group == s->kv_heads.begin);
        assert((s->q_heads.end - 1) / group == s->kv_heads.end - 1);
        assert(n == 1 || shard_range_len(s->wo_cols) % block == 0);
        assert(n == 1 || shard_range_len(s->w2_cols) % block == 0);
        assert(shard_range_len(s->ffn) > 0 && shard_range_len(s->vocab) > 0);
    }
    return LC_OK;
}

int shard_column_block(const lc_model *m, lc_dtype dtype) {
    if (dtype != LC_DTYPE_COUNT) return dtype_info(dtype)->block;
    int block = 1;
    for (int l = 0; l < m->config.n_layers; l++) {
        const layer_weights *L = &m->weights.layers[l];
        const int wo = dtype_info(L->wo.dtype)->block, w2 = dtype_info(L->w_down.dtype)->block;
        if (wo > block) block = wo;
        if (w2 > block) block = w2;
    }
    return block;
}
