/* The CUDA backend's state: weights, KV cache and activations all on the
 * device, uploaded once. Everything lives here, none in file statics. */
#ifndef LLAMAC_BACKEND_CUDA_BACKEND_CUH
#define LLAMAC_BACKEND_CUDA_BACKEND_CUH

#include <cublas_v2.h>

#include "backend/cuda/cuda_ops.cuh"
#include "backend/cuda/cuda_step.cuh"
extern "C" {
#include "backend/backend.h"
}

/* One layer's weights as the kernels want them (dtype cuda_backend.wt). */
/* Matrices are stored with rows mv_ld(cols) apart. */
typedef struct cuda_layer {
    float *attn_norm, *ffn_norm; /* (dim) f32 */
    void *wqkv; /* (q_dim + 2 kv_dim, dim): Wq, Wk, Wv stacked, one product for all three */
    void *wo;   /* (dim, q_dim) */
    void *w13;  /* (2 hidden, dim): rows of W1 and W3 interleaved, so SwiGLU pairs are adjacent */
    void *w2;   /* (dim, hidden) */
} cuda_layer;

typedef struct cuda_backend {
    backend base;
    const lc_config *cfg;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    lc_dtype wt;    /* weights and the activations fed to matrix products */
    lc_dtype kv_t;  /* KV cache and prefill queries: f16, or f32 with f32 weights */
    lc_dtype act_t; /* inputs of prefill products: wt, or f16 for quantized weights */
    __half *w_f16;  /* quantized weights: one matrix as f16 for a prefill product */
    int q_dim, kv_dim, qkv_rows;

    void *weights; /* one allocation holding every matrix and norm */
    size_t weight_bytes;
    void *token_embd;   /* (vocab, dim) */
    void *output;       /* (vocab, dim); token_embd when shared */
    float *output_norm; /* (dim) */
    cuda_layer *layers; /* (n_layers) host array of device pointers */

    void *k_cache, *v_cache; /* (n_layers, n_seq, n_kv_heads, n_ctx, head_dim) of kv_t */
    int64_t layer_stride, seq_stride, head_stride;
    float2 *rope; /* (n_ctx, head_dim / 2) */

    /* Activations for up to n_batch entries. */
    float *x;   /* (n_batch, dim) the residual stream */
    float *q;   /* (n_batch, q_dim) rotated queries, f32 */
    float *att; /* (n_batch, q_dim) attention output */
    float *hb;  /* (n_batch, hidden) SwiGLU output of a decoding step */
    /* With `handoff` (Q8_0 / Q4_0 decoding), the products also leave their
     * outputs as the next product's int8 input: qx = x * the next norm's
     * weights (from wo and w2), qh = the SwiGLU output (from w13), each
     * (MV_MAX_TOKENS, dim / hidden). LLAMAC_CUDA_HANDOFF=0 turns it off. */
    mv_qact qx, qh, qa; /* qa: the attention output, wo's input (head_dim % MV_QGROUP == 0) */
    bool handoff;
    float *qkv; /* (n_batch, qkv_rows) prefill projections */
    float *g13; /* (n_batch, 2 hidden) prefill W1/W3 products, interleaved */
    void *xa;   /* (n_batch, xa_ld) of act_t: normalised input of a prefill product */
    int64_t xa_ld;
    void *q_kv;    /* (n_batch, q_dim) of kv_t: queries for the prefill attention products */
    float *scores; /* (kv_chunk * rep, n_batch, n_ctx) prefill attention scores */
    void *probs;   /* same shape, of kv_t */
    int kv_chunk;  /* kv heads per round of prefill attention */
    float *logits; /* (n_batch, vocab) */
    float *sample_scratch; /* (sample_rows, vocab) */
    sample_row *rows_host; /* (sample_rows) pinned: each row's rule and draw */
    sample_row *rows_dev;  /* (sample_rows) */
    int sample_rows;       /* rows one sample call may draw: min(n_seq, n_batch) */

    int attn_chunk, attn_max_splits;
    float *o_part, *ml_part;
    unsigned *attn_done;

    /* Per-forward inputs: tokens, pos, seq and the rows that want logits,
     * n_batch each, staged in pinned memory and sent in one copy. */
    int32_t *in_host, *in_dev;
    int32_t *token_host, *token_dev; /* (sample_rows) the drawn tokens */
    /* sample_and_feed: the draw is done (on `stream`), the token's copy to
     * the host is done (on `copy_stream`, so the next step does not wait
     * for it). */
    cudaEvent_t token_drawn, token_copied;
    cudaStream_t copy_stream;
    int2 *draw_partial;      /* (ARGMAX_BLOCKS) a spread greedy draw's slices */
    unsigned *draw_done;     /* its counter, 0 between draws */
    bool draw_spread;        /* fed greedy draws by 32 blocks (LLAMAC_CUDA_SPREAD=1) */
    bool feed_steps;         /* offer sample_and_feed (LLAMAC_CUDA_FEED=0: not) */
    int n_logits;            /* rows the last forward produced */
    int64_t mv_max_stage;    /* bytes of shared memory a matvec may stage */
    int64_t sample_max_smem; /* bytes of shared memory a sampler block may use */
    int n_sm;                /* multiprocessors: matrix-vector grids are one wave */
    int mv_blocks_per_sm;    /* matrix-vector blocks per multiprocessor; 0: as many as fit */
    /* Programmatic dependent launch in decoding steps (LLAMAC_CUDA_PDL=0 turns
     * it off): on an H200 +25% on stories110M, +3% on 7B (docs/cuda-notes.md). */
    bool pdl;
    /* One-entry decoding steps whose keys fit the short-context graph run
     * attention inside the qkv product (cuda_qkv_attention.cu). Opt-in,
     * LLAMAC_CUDA_QKV_ATTN=1, where this device runs it: no faster than the
     * separate kernels for Q8_0, 1-3% slower for Q4_0 (docs/cuda-notes.md,
     * runs 90 and 97-98). */
    bool qkv_attention;

    /* A decoding step of one entry as one kernel (cuda_step.cuh) for Q8_0 /
     * Q4_0 weights on Hopper when LLAMAC_CUDA_STEP=1 (an experiment, slower
     * so far); step.phases NULL: the separate kernels. The last phase is the
     * classifier. */
    step_plan step;

    /* Decoding steps replay a captured graph, one per (every entry below
     * ATTN_SPLIT_FROM keys, entries, logits rows). */
    cudaGraphExec_t graphs[2][MV_MAX_TOKENS + 1][MV_MAX_TOKENS + 1];
} cuda_backend;

/* Device copies of the batch inputs, n_batch apart. */
static inline int32_t *in_tokens(cuda_backend *cb) { return cb->in_dev; }
static inline int32_t *in_pos(cuda_backend *cb) { return cb->in_dev + cb->base.n_batch; }
static inline int32_t *in_seq(cuda_backend *cb) { return cb->in_dev + 2 * cb->base.n_batch; }
static inline int32_t *in_rows(cuda_backend *cb) { return cb->in_dev + 3 * cb->base.n_batch; }

lc_status cuda_forward(backend *b, const lc_batch *batch, float *logits, lc_error *err);
lc_status cuda_sample(backend *b, int n, const lc_sampler_params *p, const float *coins,
                      lc_token *out, lc_error *err);
lc_status cuda_sample_and_feed(backend *b, const lc_sampler_params *p, float coin, int seq, int pos,
                               lc_token *out, lc_error *err);
/* Plans cb->step for this model when the step kernel can run it (else
 * leaves it unset; only a device failure is an error). */
lc_status cuda_step_setup(cuda_backend *cb, lc_error *err);
lc_status cublas_check(cublasStatus_t s, const char *what, lc_error *err);

#endif
