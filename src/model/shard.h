/* The shard plan of Megatron-style tensor parallelism: which slice of every
 * matrix each of N ranks (one GPU each) owns, so that one layer costs two
 * all-reduces and the classifier one gather.
 *
 *   wq, wk, wv   split by rows, whole heads: rank r owns its query heads and
 *                exactly the kv heads they read (GQA groups never cross ranks)
 *   wo           split by columns (its input: the rank's query heads' outputs);
 *                every rank writes a partial (dim) sum → all-reduce
 *   w1, w3       split by rows (hidden units [f0, f1))
 *   w2           split by columns (the same hidden units) → all-reduce
 *   classifier   split by vocab rows [v0, v1); the logits are gathered
 *   embedding    the same vocab rows: a rank looks up the tokens it holds and
 *                writes zeros for the rest; summed by an all-reduce
 *   KV cache     each rank holds its own kv heads only
 *
 * A row split keeps whole rows, so any dtype works. A column split cuts every
 * row of wo and w2, so with block-quantized weights (Q8_0, Q4_0: 32 weights per
 * block along a row) each rank's column slice must be whole blocks. */
#ifndef LLAMAC_MODEL_SHARD_H
#define LLAMAC_MODEL_SHARD_H

#include <stdint.h>

#include "llamac.h"

#define SHARD_MAX_RANKS 64

/* Indices [begin, end) along one dimension. */
typedef struct shard_range {
    int32_t begin, end;
} shard_range;

static inline int32_t shard_range_len(shard_range r) { return r.end - r.begin; }

/* What rank r owns. Row and column indices are of the full (unsharded)
 * matrices as model.h describes them. */
typedef struct shard_rank {
    shard_range q_heads;  /* query heads, of n_heads */
    shard_range kv_heads; /* key/value heads, of n_kv_heads: the ones q_heads read */
    shard_range q_rows;   /* rows of wq: q_heads * head_dim */
    shard_range kv_rows;  /* rows of wk and of wv: kv_heads * head_dim */
    /* Rows of Wq|Wk|Wv stacked into one (q_dim + 2 * kv_dim, dim) matrix, as
     * the CUDA backend stores it: the rank's q, k and v rows, in that order. */
    shard_range qkv_rows[3];
    shard_range wo_cols; /* columns of wo (dim, q_dim) the rank reads: = q_rows */
    shard_range ffn;     /* hidden units: rows of w1 and w3 */
    shard_range w2_cols; /* columns of w2 (dim, hidden_dim) the rank reads: = ffn */
    shard_range vocab;   /* rows of the classifier and of the embedding table */
} shard_rank;

typedef struct shard_plan {
    int n_ranks; /* 1 .. SHARD_MAX_RANKS */
    int block;   /* the column alignment the plan kept (1: none) */
    int32_t dim; /* every rank's residual stream is whole: (dim) */
    int32_t q_dim, kv_dim, hidden_dim, vocab_size;
    shard_rank rank[SHARD_MAX_RANKS]; /* (n_ranks) */
} shard_plan;

/* Plans `n_ranks` shards of a model of config `c`. `block` is how many
 * weights one block of wo's and w2's dtype holds along a row (1 for f32,
 * f16, bf16; 32 for Q8_0 and Q4_0): every column split is a multiple of it.
 * Fails with LC_ERR_ARG and a message naming --tensor-parallel when n_ranks is
 * outside 1..SHARD_MAX_RANKS, when the heads or kv heads do not divide evenly
 * (listing the counts that do), or when the FFN or heads cannot be split into
 * whole blocks. */
lc_status shard_plan_make(const lc_config *c, int n_ranks, int block, shard_plan *out,
                          lc_error *err);

/* The largest block (in weights along a row) of the matrices whose columns a
 * plan splits (wo and w2 of every layer) when stored as `dtype`, or as the
 * model's file stores them when dtype is LC_DTYPE_COUNT. */
struct lc_model;
int shard_column_block(const struct lc_model *m, lc_dtype dtype);

#endif
