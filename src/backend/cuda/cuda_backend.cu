/* Creating the CUDA backend: pick the device, upload the weights once
 * (converted to the storage dtype on the device), allocate the KV cache and
 * the activations. Every failure unwinds through cuda_destroy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.cuh"
extern "C" {
#include "model/model.h"
}

/* Knobs for measuring (docs/cuda-notes.md), like llama.cpp's GGML_CUDA_*:
 * LLAMAC_CUDA_PDL=0|1 forces programmatic dependent launch off or on,
 * LLAMAC_CUDA_MV_BLOCKS=N caps matrix-vector blocks per multiprocessor,
 * LLAMAC_CUDA_FEED=0 makes every decoding step wait for the host to read
 * the previous token, LLAMAC_CUDA_SPREAD=1 draws a fed greedy token over 32
 * blocks (not yet run on a GPU, so off by default; and
 * LLAMAC_CUDA_HANDOFF=0, handoff_wanted). */
static void env_switch(const char *name, bool *on) { /* "0" or "1"; else left as is */
    const char *v = getenv(name);
    if (v && (v[0] == '0' || v[0] == '1') && !v[1]) *on = v[0] == '1';
}

static void tuning_from_env(cuda_backend *cb) {
    const char *blocks = getenv("LLAMAC_CUDA_MV_BLOCKS");
    env_switch("LLAMAC_CUDA_PDL", &cb->pdl);
    env_switch("LLAMAC_CUDA_FEED", &cb->feed_steps);
    env_switch("LLAMAC_CUDA_SPREAD", &cb->draw_spread);
    if (blocks) {
        const long n = strtol(blocks, NULL, 10);
        if (n > 0 && n <= 32) cb->mv_blocks_per_sm = (int)n;
    }
}
#define STAGE_BYTES       ((size_t)64 << 20)  /* host-to-device upload chunk */
#define ATTN_SCORE_BUDGET ((size_t)512 << 20) /* prefill attention scores + probabilities */

lc_status cublas_check(cublasStatus_t s, const char *what, lc_error *err) {
    if (s == CUBLAS_STATUS_SUCCESS) return LC_OK;
    return lc_fail(err, LC_ERR_DEVICE, "cuBLAS: %s: %s", what, cublasGetStatusString(s));
}

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear it: no driver or no device is an answer, not an error */
        return 0;
    }
    return n;
}

#ifdef LLAMAC_CUDA_STAMPS /* cuda_stamps.cuh */
extern "C" void cuda_stamps_dump_attention(void);
extern "C" void cuda_stamps_dump_products(void);
#endif

static void cuda_destroy(backend *b) {
    cuda_backend *cb = (cuda_backend *)b;
    if (!cb) return;
    cudaSetDevice(cb->device);
    if (cb->stream) cudaStreamSynchronize(cb->stream);
    if (cb->copy_stream) cudaStreamSynchronize(cb->copy_stream);
#ifdef LLAMAC_CUDA_STAMPS
    cuda_stamps_dump_attention();
    cuda_stamps_dump_products();
#endif
    for (int f = 0; f < 2; f++)
        for (int i = 0; i <= MV_MAX_TOKENS; i++)
            for (int j = 0; j <= MV_MAX_TOKENS; j++)
                if (cb->graphs[f][i][j]) cudaGraphExecDestroy(cb->graphs[f][i][j]);
    void *dev[] = {cb->weights,
                   cb->k_cache,
                   cb->v_cache,
                   cb->rope,
                   cb->x,
                   cb->q,
                   cb->att,
                   cb->hb,
                   cb->qkv,
                   cb->g13,
                   cb->xa,
                   cb->q_kv,
                   cb->scores,
                   cb->probs,
                   cb->logits,
                   cb->sample_scratch,
                   cb->o_part,
                   cb->ml_part,
                   cb->attn_done,
                   cb->in_dev,
                   cb->token_dev,
                   cb->draw_partial,
                   cb->draw_done,
                   cb->w_f16,
                   cb->rows_dev,
                   cb->step.phases,
                   cb->step.barrier,
                   cb->qx.q,
                   cb->qh.q,
                   cb->qa.q};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    if (cb->in_host) cudaFreeHost(cb->in_host);
    if (cb->token_host) cudaFreeHost(cb->token_host);
    if (cb->rows_host) cudaFreeHost(cb->rows_host);
    if (cb->token_drawn) cudaEventDestroy(cb->token_drawn);
    if (cb->token_copied) cudaEventDestroy(cb->token_copied);
    if (cb->copy_stream) cudaStreamDestroy(cb->copy_stream);
    if (cb->blas) cublasDestroy(cb->blas);
    if (cb->stream) cudaStreamDestroy(cb->stream);
    free(cb->layers);
    free(cb);
}

/* A 2 GiB device-to-device copy, ten times: the ceiling a decoding step is measured against. */
static lc_status cuda_membw(backend *b, double *gb_s, lc_error *err) {
    cuda_backend *cb = (cuda_backend *)b;
    const size_t bytes = (size_t)2 << 30;
    void *src = NULL, *dst = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    float ms[10];
    lc_status st = LC_OK;
    cudaError_t e = cudaMalloc(&src, bytes);
    if (e == cudaSuccess) e = cudaMalloc(&dst, bytes);
    if (e == cudaSuccess) e = cudaMemset(src, 1, bytes);
    if (e == cudaSuccess) e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    for (int i = -1; e == cudaSuccess && i < 10; i++) { /* one warm-up */
        e = cudaEventRecord(t0, cb->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cb->stream);
        if (e == cudaSuccess) e = cudaEventRecord(t1, cb->stream);
        if (e == cudaSuccess) e = cudaEventSynchronize(t1);
        if (e == cudaSuccess && i >= 0) e = cudaEventElapsedTime(&ms[i], t0, t1);
    }
    if (e != cudaSuccess) {
        st = cuda_fail(err, e, "measuring the copy bandwidth", __FILE__, __LINE__);
    } else {
        for (int i = 1; i < 10; i++) /* insertion sort for the median */
            for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
                float x = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = x;
            }
        *gb_s = 2.0 * bytes / (0.5 * (ms[4] + ms[5]) * 1e-3) / 1e9;
    }
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    cudaFree(src);
    cudaFree(dst);
    cudaGetLastError();
    return st;
}

static const backend_ops CUDA_OPS = {cuda_forward, cuda_sample, cuda_sample_and_feed, cuda_membw,
                                     cuda_destroy};
static const backend_ops CUDA_OPS_UNFED = {cuda_forward, cuda_sample, NULL, cuda_membw,
                                           cuda_destroy};

/* Bump allocation inside the one weight buffer, 256-byte aligned for 16-byte loads. */
typedef struct arena {
    char *base;
    size_t used, cap;
} arena;

static void *arena_take(arena *a, size_t bytes) {
    void *p = a->base ? a->base + a->used : NULL;
    a->used += (bytes + 255) & ~(size_t)255;
    return p;
}

/* Copies the rows of `src` into the stored matrix `dst` (total_rows rows of
 * ld elements of `to`, cuda_matrix_bytes): source row r becomes row
 * row0 + r * step (step 2 interleaves W1 and W3). Converted or quantized on
 * the device, through a staging buffer. */
static lc_status upload(cuda_backend *cb, const weight *src, lc_dtype to, void *dst,
                        int64_t total_rows, int64_t ld, int64_t row0, int64_t step, void *stage,
                        lc_error *err) {
    /* Block-quantized rows from the file (GGUF Q8_0 / Q4_0, runq) are expanded to
     * f32 in the second half of the stage first, then take the same paths. */
    const bool blocks = dtype_info(src->dtype)->block != 1;
    const size_t half = STAGE_BYTES / 2;
    const int64_t row_bytes = dtype_row_bytes(src->dtype, src->cols);
    const size_t per_row = blocks ? (size_t)src->cols * sizeof(float) : (size_t)row_bytes;
    if (row_bytes < 0 || per_row > (blocks ? half : STAGE_BYTES))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "a weight row of %lld %s elements",
                       (long long)src->cols, lc_dtype_name(src->dtype));
    const int64_t rows_per = (int64_t)((blocks ? half : STAGE_BYTES) / per_row);
    for (int64_t r = 0; r < src->rows; r += rows_per) {
        const int64_t n = src->rows - r < rows_per ? src->rows - r : rows_per;
        CU_TRY(cudaMemcpyAsync(stage, (const char *)src->data + (size_t)r * row_bytes,
                               (size_t)n * row_bytes, cudaMemcpyHostToDevice, cb->stream));
        lc_dtype from = src->dtype;
        const void *rows = stage;
        lc_status st;
        if (blocks) {
            float *wide = (float *)((char *)stage + half);
            if ((st = launch_dequantize_blocks(src->dtype, stage, n * src->cols, wide, cb->stream,
                                               err)))
                return st;
            from = LC_DTYPE_F32;
            rows = wide;
        }
        if (cuda_quantized(to))
            st = launch_quantize(from, rows, src->cols, n, src->cols, to, dst, total_rows, ld,
                                 row0 + r * step, step, cb->stream, err);
        else
            st = launch_convert(from, rows, src->cols, n, src->cols, to,
                                (char *)dst +
                                    (size_t)(row0 + r * step) * ld * dtype_info(to)->block_bytes,
                                step * ld, cb->stream, err);
        if (st) return st;
        CU_TRY(cudaStreamSynchronize(cb->stream)); /* the stage is reused */
    }
    return LC_OK;
}

/* Lays out every weight in the arena; with a->base set, uploads them too. */
static lc_status place_weights(cuda_backend *cb, arena *a, void *stage, lc_error *err) {
    const lc_config *c = cb->cfg;
    const model_weights *w = &cb->base.model->weights;
    const lc_dtype wt = cb->wt;
    const bool go = a->base != NULL;
    lc_status st = LC_OK;
#define PUT(src, to, dst, total, ld, row0, step)                                                   \
    do {                                                                                           \
        if (go &&                                                                                  \
            (st = upload(cb, (src), (to), (dst), (total), (ld), (row0), (step), stage, err)))      \
            return st;                                                                             \
    } while (0)
    /* Matrices are stored mv_ld(cols) apart (zero padding; the arena is cleared). */
    const int64_t ld_dim = mv_ld(c->dim), ld_q = mv_ld(cb->q_dim), ld_hidden = mv_ld(c->hidden_dim);
    cb->token_embd = arena_take(a, cuda_matrix_bytes(wt, c->vocab_size, ld_dim));
    PUT(&w->token_embd, wt, cb->token_embd, c->vocab_size, ld_dim, 0, 1);
    if (c->shared_classifier) {
        cb->output = cb->token_embd;
    } else {
        cb->output = arena_take(a, cuda_matrix_bytes(wt, c->vocab_size, ld_dim));
        PUT(&w->output, wt, cb->output, c->vocab_size, ld_dim, 0, 1);
    }
    cb->output_norm = (float *)arena_take(a, (size_t)c->dim * 4);
    PUT(&w->output_norm, LC_DTYPE_F32, cb->output_norm, c->dim, 1, 0, 1);
    for (int l = 0; l < c->n_layers; l++) {
        const layer_weights *lw = &w->layers[l];
        cuda_layer *L = &cb->layers[l];
        L->attn_norm = (float *)arena_take(a, (size_t)c->dim * 4);
        L->ffn_norm = (float *)arena_take(a, (size_t)c->dim * 4);
        PUT(&lw->attn_norm, LC_DTYPE_F32, L->attn_norm, c->dim, 1, 0, 1);
        PUT(&lw->ffn_norm, LC_DTYPE_F32, L->ffn_norm, c->dim, 1, 0, 1);
        const int64_t qkv = cb->qkv_rows, h2 = 2 * (int64_t)c->hidden_dim;
        L->wqkv = arena_take(a, cuda_matrix_bytes(wt, qkv, ld_dim));
        PUT(&lw->wq, wt, L->wqkv, qkv, ld_dim, 0, 1);
        PUT(&lw->wk, wt, L->wqkv, qkv, ld_dim, cb->q_dim, 1);
        PUT(&lw->wv, wt, L->wqkv, qkv, ld_dim, cb->q_dim + cb->kv_dim, 1);
        L->wo = arena_take(a, cuda_matrix_bytes(wt, c->dim, ld_q));
        PUT(&lw->wo, wt, L->wo, c->dim, ld_q, 0, 1);
        L->w13 = arena_take(a, cuda_matrix_bytes(wt, h2, ld_dim));
        PUT(&lw->w_gate, wt, L->w13, h2, ld_dim, 0, 2);
        PUT(&lw->w_up, wt, L->w13, h2, ld_dim, 1, 2);
        L->w2 = arena_take(a, cuda_matrix_bytes(wt, c->dim, ld_hidden));
        PUT(&lw->w_down, wt, L->w2, c->dim, ld_hidden, 0, 1);
    }
#undef PUT
    return st;
}

/* Whether the products that hand their outputs on quantized (wo: MV_ADD
 * from q_dim floats; w2: MV_ADD from the hand-off of hidden; w13:
 * MV_SWIGLU from the normed hand-off of dim) fit their group slots in shared
 * memory next to MV_MAX_TOKENS staged inputs. A grid has at least n_sm
 * blocks or one group per block, so this bounds the slots.
 * LLAMAC_CUDA_HANDOFF=0 turns the hand-off off (a knob for measuring). */
static bool handoff_wanted(const cuda_backend *cb) {
    const lc_config *c = cb->cfg;
    const char *env = getenv("LLAMAC_CUDA_HANDOFF");
    if (!cuda_quantized(cb->wt) || (env && !strcmp(env, "0"))) return false;
    const struct {
        int rows, cols;
        bool norm, pre;
        mv_epilogue_kind kind;
    } producers[] = {{c->dim, cb->q_dim, false, false, MV_ADD}, /* floats: the larger stage */
                     {c->dim, c->hidden_dim, false, true, MV_ADD},
                     {2 * c->hidden_dim, c->dim, true, true, MV_SWIGLU}};
    for (int i = 0; i < 3; i++) {
        const auto &p = producers[i];
        const size_t need = mv_qslot_offset(MV_MAX_TOKENS, p.cols, p.norm, p.pre) +
                            (size_t)mv_qslots(p.rows, p.kind, cb->n_sm) * sizeof(mv_qslot);
        if ((int64_t)need > cb->mv_max_stage) return false;
    }
    return true;
}

/* Sets cb->qkv_attention (cuda_backend.cuh): on with LLAMAC_CUDA_QKV_ATTN=1
 * where the device and build run it, saying why not otherwise, and saying so
 * when not all its clusters (one per kv head) fit at once, since the rest
 * then run as a second wave. */
static lc_status pick_qkv_attention(cuda_backend *cb, lc_error *err) {
    const lc_config *c = cb->cfg;
    const char *env = getenv("LLAMAC_CUDA_QKV_ATTN");
    cb->qkv_attention = false;
    if (!env || strcmp(env, "1") != 0 || !cuda_quantized(cb->wt)) return LC_OK;
    int clusters = 0;
    lc_error why;
    const lc_status st =
        qkv_attention_supported(cb->device, cb->wt, cb->kv_t, c->head_dim,
                                c->n_heads / c->n_kv_heads, c->dim, &clusters, &why);
    if (st == LC_ERR_DEVICE) {
        *err = why;
        return st;
    }
    if (st != LC_OK) {
        fprintf(stderr, "llamac: LLAMAC_CUDA_QKV_ATTN=1: %s\n", why.msg);
        return LC_OK;
    }
    if (clusters < c->n_kv_heads)
        fprintf(stderr, "llamac: LLAMAC_CUDA_QKV_ATTN=1: %d of its %d clusters fit at once\n",
                clusters, c->n_kv_heads);
    cb->qkv_attention = true;
    return LC_OK;
}

static lc_status check_shape(const lc_config *c, lc_dtype wt, int64_t mv_max, bool handoff,
                             lc_error *err) {
    if (c->head_dim % 8 || c->vocab_size % 2 || c->dim % 2 || c->hidden_dim % 2)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "the CUDA backend needs head_dim a multiple of 8 and an even dim, "
                       "hidden_dim and vocabulary (this model: %d, %d, %d, %d)",
                       c->head_dim, c->dim, c->hidden_dim, c->vocab_size);
    const int q_dim = c->n_heads * c->head_dim;
    if (cuda_quantized(wt) && (c->dim % 32 || c->hidden_dim % 32 || q_dim % 32))
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "%s weights on the GPU need dim, hidden_dim and heads x head_dim multiples "
                       "of 32 (this model: %d, %d, %d)",
                       lc_dtype_name(wt), c->dim, c->hidden_dim, q_dim);
    /* every product's staged inputs, up to MV_MAX_TOKENS, must fit in shared
     * memory: as floats, except w2's from a hand-off */
    const struct {
        int cols;
        bool norm, pre;
    } products[] = {{c->dim, true, false}, {q_dim, false, false}, {c->hidden_dim, false, handoff}};
    for (int i = 0; i < 3; i++) {
        const int ld = mv_ld(products[i].cols);
        const size_t need =
            products[i].pre
                ? mv_pre_stage_bytes(MV_MAX_TOKENS, ld, products[i].norm)
                : mv_stage_bytes(MV_MAX_TOKENS, ld, products[i].norm, cuda_quantized(wt));
        if ((int64_t)need > mv_max)
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "the CUDA backend's matrix-vector kernel stages %lld bytes; rows of %d "
                           "need %zu%s",
                           (long long)mv_max, products[i].cols, need,
                           !handoff && getenv("LLAMAC_CUDA_HANDOFF") ? " (LLAMAC_CUDA_HANDOFF=0)"
                                                                     : "");
    }
    return LC_OK;
}

/* --dtype: `auto` keeps the file's matrix type where the GPU has it (GGUF
 * f16 / bf16 / q8_0 / q4_0), else f16. */
static lc_status pick_dtype(const char *name, lc_dtype stored, lc_dtype *wt, lc_error *err) {
    if (!strcmp(name, "auto"))
        *wt = stored == LC_DTYPE_BF16 || cuda_quantized(stored) ? stored : LC_DTYPE_F16;
    else if (!strcmp(name, "f16"))
        *wt = LC_DTYPE_F16;
    else if (!strcmp(name, "f32"))
        *wt = LC_DTYPE_F32;
    else if (!strcmp(name, "bf16"))
        *wt = LC_DTYPE_BF16;
    else if (!strcmp(name, "q8_0"))
        *wt = LC_DTYPE_Q8_0;
    else if (!strcmp(name, "q4_0"))
        *wt = LC_DTYPE_Q4_0;
    else
        return lc_fail(err, LC_ERR_ARG,
                       "--dtype %s: expected auto, f32, f16, bf16, q8_0 or q4_0 on the GPU", name);
    return LC_OK;
}

#define DEV_ALLOC(ptr, bytes) CU_TRY(cudaMalloc((void **)&(ptr), (bytes)))

static lc_status allocate(cuda_backend *cb, lc_error *err) {
    const lc_config *c = cb->cfg;
    const int64_t nb = cb->base.n_batch, n_ctx = cb->base.n_ctx, n_seq = cb->base.n_seq;
    const size_t kvs = dtype_info(cb->kv_t)->block_bytes, ws = dtype_info(cb->act_t)->block_bytes;
    cb->head_stride = n_ctx * c->head_dim;
    cb->seq_stride = (int64_t)c->n_kv_heads * cb->head_stride;
    cb->layer_stride = n_seq * cb->seq_stride;
    const size_t cache_bytes = (size_t)c->n_layers * cb->layer_stride * kvs;
    DEV_ALLOC(cb->k_cache, cache_bytes);
    DEV_ALLOC(cb->v_cache, cache_bytes);

    float2 *rope = (float2 *)malloc((size_t)n_ctx * c->head_dim / 2 * sizeof(float2));
    if (!rope) return lc_fail(err, LC_ERR_NOMEM, "out of memory for the RoPE table");
    model_rope_table(c, (int)n_ctx, (float *)rope); /* float2 = (cos, sin) */
    cudaError_t e =
        cudaMalloc((void **)&cb->rope, (size_t)n_ctx * c->head_dim / 2 * sizeof(float2));
    if (e == cudaSuccess)
        e = cudaMemcpy(cb->rope, rope, (size_t)n_ctx * c->head_dim / 2 * sizeof(float2),
                       cudaMemcpyHostToDevice);
    free(rope);
    CU_TRY(e);

    const int widest = c->hidden_dim > c->dim ? c->hidden_dim : c->dim;
    cb->xa_ld = widest > cb->q_dim ? widest : cb->q_dim;
    DEV_ALLOC(cb->x, nb * c->dim * 4);
    DEV_ALLOC(cb->q, nb * cb->q_dim * 4);
    DEV_ALLOC(cb->att, nb * cb->q_dim * 4);
    DEV_ALLOC(cb->hb, nb * c->hidden_dim * 4);
    if (cb->handoff) {
        void *qx, *qh;
        DEV_ALLOC(qx, mv_qact_bytes(MV_MAX_TOKENS, c->dim));
        cb->qx = mv_qact_at(qx, MV_MAX_TOKENS, c->dim);
        DEV_ALLOC(qh, mv_qact_bytes(MV_MAX_TOKENS, c->hidden_dim));
        cb->qh = mv_qact_at(qh, MV_MAX_TOKENS, c->hidden_dim);
    }
    if (cb->handoff && c->head_dim % MV_QGROUP == 0) { /* attention hands on whole groups */
        void *qa;
        DEV_ALLOC(qa, mv_qact_bytes(MV_MAX_TOKENS, cb->q_dim));
        cb->qa = mv_qact_at(qa, MV_MAX_TOKENS, cb->q_dim);
    }
    DEV_ALLOC(cb->qkv, nb * cb->qkv_rows * 4);
    DEV_ALLOC(cb->g13, nb * 2 * c->hidden_dim * 4);
    DEV_ALLOC(cb->xa, nb * cb->xa_ld * ws);
    DEV_ALLOC(cb->q_kv, nb * cb->q_dim * kvs);
    DEV_ALLOC(cb->logits, nb * c->vocab_size * 4);
    cb->sample_rows = cb->base.n_seq < nb ? cb->base.n_seq : (int)nb;
    DEV_ALLOC(cb->sample_scratch, (size_t)cb->sample_rows * c->vocab_size * 4);
    DEV_ALLOC(cb->rows_dev, (size_t)cb->sample_rows * sizeof(sample_row));
    if (cuda_quantized(cb->wt)) { /* prefill products run on f16 copies, one matrix at a time */
        int64_t most = (int64_t)c->vocab_size * mv_ld(c->dim);
        const int64_t sizes[] = {
            (int64_t)cb->qkv_rows * mv_ld(c->dim), (int64_t)c->dim * mv_ld(cb->q_dim),
            2 * (int64_t)c->hidden_dim * mv_ld(c->dim), (int64_t)c->dim * mv_ld(c->hidden_dim)};
        for (int i = 0; i < 4; i++) most = sizes[i] > most ? sizes[i] : most;
        DEV_ALLOC(cb->w_f16, (size_t)most * sizeof(__half));
    }

    const int rep = c->n_heads / c->n_kv_heads;
    const size_t per_kv_head = (size_t)rep * nb * n_ctx * (4 + kvs);
    int64_t chunk = (int64_t)(ATTN_SCORE_BUDGET / per_kv_head);
    cb->kv_chunk = chunk < 1 ? 1 : chunk > c->n_kv_heads ? c->n_kv_heads : (int)chunk;
    DEV_ALLOC(cb->scores, (size_t)cb->kv_chunk * rep * nb * n_ctx * 4);
    DEV_ALLOC(cb->probs, (size_t)cb->kv_chunk * rep * nb * n_ctx * kvs);

    attention_split((int)n_ctx, &cb->attn_chunk, &cb->attn_max_splits);
    DEV_ALLOC(cb->o_part, (size_t)nb * c->n_heads * cb->attn_max_splits * c->head_dim * 4);
    DEV_ALLOC(cb->ml_part, (size_t)nb * c->n_heads * cb->attn_max_splits * 2 * 4);
    DEV_ALLOC(cb->attn_done, (size_t)nb * c->n_kv_heads * sizeof(unsigned));
    CU_TRY(cudaMemsetAsync(cb->attn_done, 0, (size_t)nb * c->n_kv_heads * sizeof(unsigned),
                           cb->stream));

    DEV_ALLOC(cb->in_dev, (size_t)4 * nb * sizeof(int32_t));
    DEV_ALLOC(cb->token_dev, (size_t)cb->sample_rows * sizeof(int32_t));
    CU_TRY(cudaMallocHost((void **)&cb->in_host, (size_t)4 * nb * sizeof(int32_t)));
    CU_TRY(cudaMallocHost((void **)&cb->token_host, (size_t)cb->sample_rows * sizeof(int32_t)));
    CU_TRY(cudaMallocHost((void **)&cb->rows_host, (size_t)cb->sample_rows * sizeof(sample_row)));
    DEV_ALLOC(cb->draw_partial, ARGMAX_BLOCKS * sizeof(int2));
    DEV_ALLOC(cb->draw_done, sizeof(unsigned));
    CU_TRY(cudaMemsetAsync(cb->draw_done, 0, sizeof(unsigned), cb->stream));
    CU_TRY(cudaEventCreateWithFlags(&cb->token_drawn, cudaEventDisableTiming));
    CU_TRY(cudaEventCreateWithFlags(&cb->token_copied, cudaEventDisableTiming));
    CU_TRY(cudaStreamCreateWithFlags(&cb->copy_stream, cudaStreamNonBlocking));
    return LC_OK;
}

extern "C" lc_status cuda_backend_create(const lc_model *model, const lc_engine_options *opts,
                                         backend **out, lc_error *err) {
    *out = NULL;
    const lc_config *c = lc_model_config(model);
    lc_dtype wt = LC_DTYPE_F16;
    lc_status st = pick_dtype(opts->dtype, model->weights.layers[0].wq.dtype, &wt, err);
    if (st) return st;
    int n_dev = 0;
    cudaError_t probe = cudaGetDeviceCount(&n_dev);
    if (probe != cudaSuccess || n_dev < 1) {
        cudaGetLastError();
        return lc_fail(err, LC_ERR_UNSUPPORTED, "--device cuda: no CUDA device is present (%s)",
                       probe != cudaSuccess ? cudaGetErrorString(probe) : "none found");
    }
    cuda_backend *cb = (cuda_backend *)calloc(1, sizeof *cb);
    if (!cb) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    cb->base.ops = &CUDA_OPS;
    cb->base.model = model;
    cb->base.n_ctx = opts->n_ctx;
    cb->base.n_seq = opts->n_seq;
    cb->base.n_batch = opts->n_batch;
    cb->cfg = c;
    cb->wt = wt;
    cb->kv_t = wt == LC_DTYPE_F32 ? LC_DTYPE_F32 : LC_DTYPE_F16;
    cb->act_t = cuda_quantized(wt) ? LC_DTYPE_F16 : wt;
    cb->q_dim = c->n_heads * c->head_dim;
    cb->kv_dim = c->n_kv_heads * c->head_dim;
    cb->qkv_rows = cb->q_dim + 2 * cb->kv_dim;
    cb->device = 0;
    void *stage = NULL;
    cudaDeviceProp prop;
    arena a = {0};
    cb->layers = (cuda_layer *)calloc((size_t)c->n_layers, sizeof *cb->layers);
    if (!cb->layers) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((st = (call))) goto fail;                                                              \
    } while (0)
#define TRY_CU(call) CU_TRY_GOTO(call, fail)
    TRY_CU(cudaSetDevice(cb->device));
    TRY_CU(cudaGetDeviceProperties(&prop, cb->device));
    TRY_CU(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
    TRY(cublas_check(cublasCreate(&cb->blas), "cublasCreate", err));
    TRY(cublas_check(cublasSetStream(cb->blas, cb->stream), "cublasSetStream", err));
    TRY(matvec_setup(cb->device, &cb->mv_max_stage, err));
    TRY(attention_setup(cb->device, err));
    TRY(sample_setup(cb->device, &cb->sample_max_smem, err));
    cb->n_sm = prop.multiProcessorCount;
    cb->handoff = handoff_wanted(cb);
    TRY(check_shape(c, wt, cb->mv_max_stage, cb->handoff, err));

    place_weights(cb, &a, NULL, err); /* sizes only */
    cb->weight_bytes = a.used;
    /* A step reads every matrix once, but of the embedding table only one row
     * unless it doubles as the classifier. */
    cb->base.weight_bytes_per_token =
        a.used -
        (c->shared_classifier ? 0 : (uint64_t)cuda_matrix_bytes(wt, c->vocab_size, mv_ld(c->dim)));
    cb->base.kv_bytes_per_position =
        (uint64_t)c->n_layers * 2 * cb->kv_dim * dtype_info(cb->kv_t)->block_bytes;
    {
        /* 256 bytes of slack: the step kernel's bulk copies of the last
         * matrix's scales may reach up to 15 bytes past it. */
        cudaError_t e = cudaMalloc((void **)&a.base, a.used + 256);
        if (e != cudaSuccess) {
            cudaGetLastError();
            st = lc_fail(err, LC_ERR_NOMEM,
                         "--device cuda: %.2f GB of %s weights do not fit on %s (%s)", a.used / 1e9,
                         lc_dtype_name(wt), prop.name, cudaGetErrorString(e));
            goto fail;
        }
    }
    cb->weights = a.base;
    cb->pdl = true; /* measured: +25% on stories110M, +3% on 7B (docs/cuda-notes.md, run 6) */
    cb->feed_steps = true;
    cb->draw_spread = false; /* until argmax_spread_kernel has run on a GPU */
    tuning_from_env(cb);
    if (!cb->feed_steps) cb->base.ops = &CUDA_OPS_UNFED;
    TRY_CU(cudaMemset(a.base, 0, a.used + 256));
    a.used = 0;
    TRY_CU(cudaMalloc(&stage, STAGE_BYTES));
    TRY(place_weights(cb, &a, stage, err));
    TRY_CU(cudaFree(stage));
    stage = NULL;
    TRY(allocate(cb, err));
    TRY(cuda_step_setup(cb, err));
    TRY(pick_qkv_attention(cb, err));
    TRY_CU(cudaStreamSynchronize(cb->stream));
    snprintf(cb->base.description, sizeof cb->base.description,
             "cuda (%s, %s weights %.2f GB, %s KV cache%s%s)", prop.name, lc_dtype_name(wt),
             cb->weight_bytes / 1e9, lc_dtype_name(cb->kv_t),
             cb->step.phases ? ", one kernel per token" : "",
             cb->qkv_attention ? ", attention in the qkv kernel" : "");
    *out = &cb->base;
    return LC_OK;
fail:
    if (stage) cudaFree(stage);
    cudaGetLastError();
    cuda_destroy(&cb->base);
    return st;
#undef TRY
#undef TRY_CU
}
