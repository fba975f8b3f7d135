/* State of the CPU backend: the thread pool, the kernels in use, activation
 * buffers for one batch, and the KV cache. */
#ifndef LLAMAC_BACKEND_CPU_CPU_BACKEND_H
#define LLAMAC_BACKEND_CPU_CPU_BACKEND_H

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/threadpool.h"
#include "backend/cpu/weight_store.h"
#include "model/model.h"

/* Attention work item: entries [first, first + count) of the batch, one
 * sequence at consecutive positions, for one query head. */
typedef struct attention_item {
    int32_t first, count, head;
} attention_item;

/* Per-thread scratch for blocked attention (gemm_tokens queries at a time). */
typedef struct attention_scratch {
    float *scores; /* (gemm_tokens, n_ctx) attention weights, a row per query */
    float *qpack;  /* (head_dim, gemm_tokens) the queries packed */
} attention_scratch;

typedef struct cpu_backend {
    backend base;
    const lc_config *cfg;
    weight_store weights;
    const model_weights *w; /* &weights.view */
    const cpu_kernels *kern;
    threadpool *pool;
    int n_threads;
    int chunk_rows; /* matrix rows per work item when decoding; 0: one range per thread */

    /* Activations for up to n_batch entries, one row per entry. */
    float *x;         /* (n_batch, dim) residual stream */
    float *xb;        /* (n_batch, dim) normalized input of a sublayer */
    float *xb2;       /* (n_batch, dim) output of a sublayer, before the residual add */
    float *q;         /* (n_batch, n_heads * head_dim) */
    float *k;         /* (n_batch, n_kv_heads * head_dim) */
    float *v;         /* (n_batch, n_kv_heads * head_dim) */
    float *att;       /* (n_batch, n_heads * head_dim) attention output */
    float *hb;        /* (n_batch, hidden_dim) SwiGLU gate, then gate * up */
    float *hb2;       /* (n_batch, hidden_dim) SwiGLU up */
    float *xpack;     /* GEMM input packed in token blocks: (n_batch rounded up, max width) */
    block_q8_act *xq; /* (GEMM_MIN_TOKENS - 1, max width / QK) matvec input for int8 weights */
    int64_t xq_blocks;
    float **wtile; /* (n_threads) each (gemm_rows, max width): non-f32 weight rows as floats */
    int64_t wtile_floats;
    attention_scratch *attn_scratch; /* (n_threads) */
    attention_item *attn_items;      /* (n_batch * n_heads) this batch's attention work */
    int32_t *logit_rows;             /* (n_batch) batch index of each entry that wants logits */

    /* Logits the backend keeps for `sample` (a forward given no buffer):
     * up to n_seq rows, one per sequence a step decodes. */
    float *kept_logits; /* (n_seq, vocab) */
    int n_kept;         /* rows the last forward kept */
    void **sample_scratch; /* (n_threads) each sampler_scratch_bytes(vocab) */

    /* Head-major, so each head's keys and values are one contiguous stream:
     * the position-major layout made attention a strided, prefetch-poor read. */
    float *key_cache; /* (n_layers, n_seq, n_kv_heads, n_ctx, head_dim) */
    /* The value cache ends with gemm_tokens floats of padding: the GEMM tile
     * reads whole tiles of lanes from a V row even when a head is narrower. */
    float *value_cache; /* (n_layers, n_seq, n_kv_heads, n_ctx, head_dim) + padding */
    float *rope;        /* (n_ctx, head_dim / 2, 2): cos and sin per position and pair */
} cpu_backend;

/* One matrix product of a multi-product call: out (n_tok, w->rows) = x W^T. */
typedef struct matmul_job {
    const weight *w;
    float *out;
} matmul_job;

/* Runs every job over the same input x (n_tok, K), K = each w->cols, on all
 * threads: a row-parallel matvec for a few tokens, a packed GEMM for more. */
void cpu_matmul(cpu_backend *cb, const float *x, int64_t n_tok, const matmul_job *jobs, int n_jobs);

/* Tokens at which matrix products switch from matvec passes to the GEMM. */
#define GEMM_MIN_TOKENS 5

/* Where the (n_ctx, head_dim) block of one kv head of one sequence starts in
 * a layer's key or value cache; position p is head_dim * p further. */
static inline int64_t cpu_cache_head(const cpu_backend *cb, int layer, int32_t seq,
                                     int64_t kv_head) {
    const lc_config *c = cb->cfg;
    return ((((int64_t)layer * cb->base.n_seq + seq) * c->n_kv_heads + kv_head) * cb->base.n_ctx) *
           c->head_dim;
}

/* Splits the batch into attention work items (once per forward); returns how many. */
int64_t cpu_attention_plan(cpu_backend *cb, const lc_batch *batch);
/* Attention for every entry of the batch at one layer: q, the cache -> att. */
void cpu_attention(cpu_backend *cb, const lc_batch *batch, int layer, int64_t n_items);

lc_status cpu_forward(backend *b, const lc_batch *batch, float *logits, lc_error *err);

#endif
