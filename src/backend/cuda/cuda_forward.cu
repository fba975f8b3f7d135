/* The forward pass on the GPU, the same contract as the CPU backend's.
 *   per layer:  x += Wo · attention(rope(Wq · norm(x)), rope(Wk · norm(x)), Wv · norm(x))
 *               x += W2 · (silu(W1 · norm(x)) * (W3 · norm(x)))
 *   then        logits = Wcls · norm(x)
 * Decoding (up to MV_MAX_TOKENS entries) runs fused matrix-vector kernels,
 * five per layer, captured once in a CUDA graph and replayed; a longer batch
 * runs each product as one cuBLAS matrix product on the tensor cores. The
 * host waits only when it reads a result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.cuh"

static kv_target kv_for(cuda_backend *cb, int layer) {
    const lc_config *c = cb->cfg;
    const size_t kvs = cb->kv_t == LC_DTYPE_F16 ? 2 : 4;
    kv_target kv;
    kv.q_rows = cb->q_dim;
    kv.kv_rows = cb->kv_dim;
    kv.head_dim = c->head_dim;
    kv.rope = cb->rope;
    kv.pos = in_pos(cb);
    kv.seq = in_seq(cb);
    kv.k_cache = (char *)cb->k_cache + (size_t)layer * cb->layer_stride * kvs;
    kv.v_cache = (char *)cb->v_cache + (size_t)layer * cb->layer_stride * kvs;
    kv.kv_dtype = cb->kv_t;
    kv.seq_stride = cb->seq_stride;
    kv.head_stride = cb->head_stride;
    return kv;
}

/* `one_chunk`: every entry has fewer than ATTN_SPLIT_FROM keys, which one
 * block takes (a decoding step's graph for short contexts launches no
 * blocks for other chunks). */
static attn_args attention_args(cuda_backend *cb, int layer, int n, bool one_chunk) {
    const lc_config *c = cb->cfg;
    const kv_target kv = kv_for(cb, layer);
    attn_args a;
    a.q = cb->q;
    a.out = cb->att;
    a.k_cache = kv.k_cache;
    a.v_cache = kv.v_cache;
    a.kv_dtype = cb->kv_t;
    a.pos = in_pos(cb);
    a.seq = in_seq(cb);
    a.n = n;
    a.n_heads = c->n_heads;
    a.n_kv_heads = c->n_kv_heads;
    a.head_dim = c->head_dim;
    a.seq_stride = cb->seq_stride;
    a.head_stride = cb->head_stride;
    a.chunk = cb->attn_chunk;
    a.max_splits = cb->attn_max_splits;
    a.o_part = cb->o_part;
    a.ml_part = cb->ml_part;
    a.done = cb->attn_done;
    a.pdl = cb->pdl;
    memset(&a.qout, 0, sizeof a.qout);
    a.splits = one_chunk ? 1 : cb->attn_max_splits;
    return a;
}

static lc_status attention(cuda_backend *cb, int layer, int n, lc_error *err) {
    const attn_args a = attention_args(cb, layer, n, false);
    return launch_attention(&a, cb->stream, err);
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        lc_status st_ = (call);                                                                    \
        if (st_) return st_;                                                                       \
    } while (0)

static mv_input matvec_input(cuda_backend *cb, const float *x, int64_t x_ld, const int32_t *x_rows,
                             const float *norm, mv_qact pre, int n) {
    return (mv_input){x,
                      x_ld,
                      x_rows,
                      norm,
                      cb->cfg->norm_eps,
                      n,
                      cb->n_sm,
                      cb->mv_blocks_per_sm,
                      cb->mv_max_stage,
                      cb->pdl,
                      pre};
}

static lc_status matvec(cuda_backend *cb, const void *w, int rows, int cols, const float *x,
                        int64_t x_ld, const int32_t *x_rows, const float *norm, mv_qact pre, int n,
                        mv_epilogue e, lc_error *err) {
    const mv_input in = matvec_input(cb, x, x_ld, x_rows, norm, pre, n);
    return launch_matvec(cb->wt, w, rows, cols, mv_ld(cols), &in, &e, cb->stream, err);
}

static lc_status embed(cuda_backend *cb, int n, lc_error *err) {
    const lc_config *c = cb->cfg;
    if (cuda_quantized(cb->wt))
        return launch_embed_quant(cb->wt, cb->token_embd, c->vocab_size, c->dim, mv_ld(c->dim),
                                  in_tokens(cb), n, cb->x, cb->stream, err);
    return launch_embed(cb->wt, cb->token_embd, c->dim, mv_ld(c->dim), in_tokens(cb), n, cb->x,
                        cb->stream, err);
}

/* One product of a decoding step: epi(W x), x normalised by norm when set. */
static step_phase step_product(cuda_backend *cb, const void *w, int rows, int cols, const float *x,
                               const float *norm, mv_epilogue epi) {
    step_phase p;
    memset(&p, 0, sizeof p);
    p.kind = STEP_PRODUCT;
    p.w = w;
    p.scales = cuda_quantized(cb->wt) ? cuda_matrix_scales(cb->wt, w, rows, mv_ld(cols)) : NULL;
    p.rows = rows;
    p.cols = cols;
    p.x = x;
    p.norm = norm;
    p.epi = epi;
    return p;
}

/* Layer l of a decoding step of n entries as its five phases, in order: what
 * the separate kernels launch one by one and the step kernel runs in one.
 * `one_chunk` as attention_args. */
#define LAYER_PHASES 5
static void layer_phases(cuda_backend *cb, int l, int n, bool one_chunk,
                         step_phase *ph /* LAYER_PHASES */) {
    const lc_config *c = cb->cfg;
    const cuda_layer *L = &cb->layers[l];
    ph[0] = step_product(cb, L->wqkv, cb->qkv_rows, c->dim, cb->x, L->attn_norm,
                         (mv_epilogue){MV_QKV, cb->q, cb->q_dim, kv_for(cb, l)});
    memset(&ph[1], 0, sizeof ph[1]);
    ph[1].kind = STEP_ATTENTION;
    ph[1].attn = attention_args(cb, l, n, one_chunk);
    ph[2] = step_product(cb, L->wo, c->dim, cb->q_dim, cb->att, NULL,
                         (mv_epilogue){MV_ADD, cb->x, c->dim});
    ph[3] = step_product(cb, L->w13, 2 * c->hidden_dim, c->dim, cb->x, L->ffn_norm,
                         (mv_epilogue){MV_SWIGLU, cb->hb, c->hidden_dim});
    ph[4] = step_product(cb, L->w2, c->dim, c->hidden_dim, cb->hb, NULL,
                         (mv_epilogue){MV_ADD, cb->x, c->dim});
    if (cb->handoff) { /* outputs leave as the next product's int8 input (runs 44, 53-57) */
        const bool last = l + 1 == c->n_layers;
        if (l > 0) ph[0].pre = cb->qx; /* layer 0's input is the embedding's floats */
        if (cb->qa.q) {                /* head_dim a multiple of MV_QGROUP */
            ph[1].attn.qout = cb->qa;
            ph[2].pre = cb->qa;
        }
        ph[2].epi.qout = cb->qx;
        ph[2].epi.qnorm = L->ffn_norm;
        ph[3].pre = cb->qx;
        ph[3].epi.qout = cb->qh;
        ph[4].pre = cb->qh;
        ph[4].epi.qout = cb->qx;
        ph[4].epi.qnorm = last ? cb->output_norm : cb->layers[l + 1].attn_norm;
    }
}

/* The classifier's phase: logits = Wcls norm(x). */
static step_phase classifier_phase(cuda_backend *cb) {
    const lc_config *c = cb->cfg;
    step_phase p = step_product(cb, cb->output, c->vocab_size, c->dim, cb->x, cb->output_norm,
                                (mv_epilogue){MV_STORE, cb->logits, c->vocab_size});
    if (cb->handoff) p.pre = cb->qx; /* from the last layer's w2 */
    return p;
}

/* A phase as its own kernel, for n entries (inputs x[x_rows[i]] when set). */
static lc_status launch_phase(cuda_backend *cb, const step_phase *p, int n, const int32_t *x_rows,
                              lc_error *err) {
    if (p->kind == STEP_ATTENTION) return launch_attention(&p->attn, cb->stream, err);
    return matvec(cb, p->w, p->rows, p->cols, p->x, p->cols, x_rows, p->norm, p->pre, n, p->epi,
                  err);
}

lc_status cuda_step_setup(cuda_backend *cb, lc_error *err) {
    const lc_config *c = cb->cfg;
    /* Opt-in: slower than the separate kernels so far (docs/cuda-notes.md,
     * runs 33-37), kept as the base of that work. */
    const char *env = getenv("LLAMAC_CUDA_STEP");
    lc_error why;
    if (!cuda_quantized(cb->wt) || !env || strcmp(env, "1") != 0) return LC_OK;
    if (step_supported(cb->device, &why) != LC_OK) {
        fprintf(stderr, "llamac: LLAMAC_CUDA_STEP=1: %s\n", why.msg);
        return LC_OK;
    }
    const int n_ph = LAYER_PHASES * c->n_layers + 1;
    step_phase *ph = (step_phase *)calloc((size_t)n_ph, sizeof *ph);
    if (!ph) return lc_fail(err, LC_ERR_NOMEM, "step plan of %d phases", n_ph);
    for (int l = 0; l < c->n_layers; l++) layer_phases(cb, l, 1, false, ph + LAYER_PHASES * l);
    ph[n_ph - 1] = classifier_phase(cb);
    step_plan plan;
    memset(&plan, 0, sizeof plan);
    lc_status st = LC_OK;
    if (step_plan_init(&plan, ph, n_ph, cb->wt, c->norm_eps, cb->n_sm, cb->device, &why) != LC_OK) {
        fprintf(stderr, "llamac: LLAMAC_CUDA_STEP=1: %s\n", why.msg);
    } else {
        cudaError_t e = cudaMalloc((void **)&plan.phases, (size_t)n_ph * sizeof *ph);
        if (e == cudaSuccess) e = cudaMalloc((void **)&plan.barrier, sizeof(unsigned));
        if (e == cudaSuccess)
            e = cudaMemcpy(plan.phases, ph, (size_t)n_ph * sizeof *ph, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaMemset(plan.barrier, 0, sizeof(unsigned));
        if (e == cudaSuccess)
            cb->step = plan;
        else
            st = cuda_fail(err, e, "step plan", __FILE__, __LINE__);
        if (st) {
            cudaFree(plan.phases);
            cudaFree(plan.barrier);
        }
    }
    free(ph);
    return st;
}

/* A layer's qkv product (p) and its attention (attn) as one kernel. */
static lc_status launch_qkv_with_attention(cuda_backend *cb, const step_phase *p,
                                           const step_phase *attn, lc_error *err) {
    const mv_input in = matvec_input(cb, p->x, p->cols, NULL, p->norm, p->pre, 1);
    return launch_qkv_attention(cb->wt, p->w, p->cols, &in, &p->epi, &attn->attn, cb->stream, err);
}

/* A decoding step of n entries, n_logits of them wanting logits: 2 + 5 L
 * launches (2 + 4 L with attention inside the qkv kernel), or the embedding
 * and the step kernel for one entry. */
static lc_status enqueue_decode(cuda_backend *cb, int n, int n_logits, bool one_chunk,
                                lc_error *err) {
    TRY(embed(cb, n, err));
    if (n == 1 && cb->step.phases) {
        step_plan p = cb->step;
        if (n_logits == 0) p.n_phases--; /* no classifier */
        return launch_step(&p, cb->stream, err);
    }
    const bool qkv_attention = n == 1 && one_chunk && cb->qkv_attention;
    for (int l = 0; l < cb->cfg->n_layers; l++) {
        step_phase ph[LAYER_PHASES];
        layer_phases(cb, l, n, one_chunk, ph);
        int k = 0;
        if (qkv_attention) { /* phases 0 and 1 */
            TRY(launch_qkv_with_attention(cb, &ph[0], &ph[1], err));
            k = 2;
        }
        for (; k < LAYER_PHASES; k++) TRY(launch_phase(cb, &ph[k], n, NULL, err));
    }
    if (n_logits == 0) return LC_OK;
    const step_phase cls = classifier_phase(cb);
    return launch_phase(cb, &cls, n_logits, in_rows(cb), err);
}

static cudaDataType blas_type(lc_dtype t) {
    return t == LC_DTYPE_F16 ? CUDA_R_16F : t == LC_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* y(n, rows) f32 = x(n, cols) W(rows, cols)^T + beta y, all row-major; x of
 * act_t. Quantized weights go through an f16 copy of the matrix first. */
static lc_status gemm(cuda_backend *cb, const void *w, int rows, int cols, const void *x,
                      int64_t x_ld, int n, float *y, int64_t y_ld, float beta, lc_error *err) {
    const float alpha = 1.0f;
    if (cuda_quantized(cb->wt)) {
        TRY(launch_dequantize(cb->wt, w, rows, mv_ld(cols), cb->w_f16, cb->stream, err));
        w = cb->w_f16;
    }
    const cudaDataType t = blas_type(cb->act_t);
    return cublas_check(cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &alpha, w,
                                     t, mv_ld(cols), x, t, (int)x_ld, &beta, y, CUDA_R_32F,
                                     (int)y_ld, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        "cublasGemmEx", err);
}

/* Causal attention of one run of n entries of sequence `seq` at positions
 * p0 .. p0 + n - 1 as two batched products per kv head group:
 * S = Q K^T / sqrt(hd) over keys 0 .. p0 + n - 1, P = softmax(S) masked, O = P V. */
static lc_status attention_run(cuda_backend *cb, int layer, int n, int seq, int p0, lc_error *err) {
    const lc_config *c = cb->cfg;
    const kv_target kv = kv_for(cb, layer);
    const int hd = c->head_dim, rep = c->n_heads / c->n_kv_heads, L = p0 + n;
    const size_t kvs = cb->kv_t == LC_DTYPE_F16 ? 2 : 4;
    const cudaDataType t = blas_type(cb->kv_t);
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    const int64_t mat = (int64_t)n * L; /* elements of one head's S */
    for (int g0 = 0; g0 < c->n_kv_heads; g0 += cb->kv_chunk) {
        const int gc = c->n_kv_heads - g0 < cb->kv_chunk ? c->n_kv_heads - g0 : cb->kv_chunk;
        const char *k = (const char *)kv.k_cache +
                        ((size_t)seq * cb->seq_stride + (size_t)g0 * cb->head_stride) * kvs;
        const char *v = (const char *)kv.v_cache +
                        ((size_t)seq * cb->seq_stride + (size_t)g0 * cb->head_stride) * kvs;
        for (int r = 0; r < rep; r++) {
            const char *q = (const char *)cb->q_kv + (size_t)(g0 * rep + r) * hd * kvs;
            TRY(cublas_check(cublasGemmStridedBatchedEx(
                                 cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, L, n, hd, &scale, k, t, hd,
                                 cb->head_stride, q, t, cb->q_dim, (int64_t)rep * hd, &zero,
                                 cb->scores + r * mat, CUDA_R_32F, L, rep * mat, gc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                             "attention scores", err));
        }
        TRY(launch_causal_softmax(cb->scores, gc * rep, n, L, p0, cb->kv_t, cb->probs, cb->stream,
                                  err));
        for (int r = 0; r < rep; r++) {
            TRY(cublas_check(cublasGemmStridedBatchedEx(
                                 cb->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, n, L, &one, v, t, hd,
                                 cb->head_stride, (const char *)cb->probs + r * mat * kvs, t, L,
                                 rep * mat, &zero, cb->att + (size_t)(g0 * rep + r) * hd,
                                 CUDA_R_32F, cb->q_dim, (int64_t)rep * hd, gc, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
                             "attention output", err));
        }
    }
    return LC_OK;
}

/* A batch of more than MV_MAX_TOKENS entries. `run_seq` >= 0: the batch is one
 * run of sequence run_seq from position p0 (a prompt), which takes the
 * matrix-product attention; otherwise every entry attends on its own. */
static lc_status enqueue_prefill(cuda_backend *cb, int n, int n_logits, int run_seq, int p0,
                                 lc_error *err) {
    const lc_config *c = cb->cfg;
    const lc_dtype wt = cb->act_t; /* what the products take as input */
    cudaStream_t s = cb->stream;
    const float eps = c->norm_eps;
    TRY(embed(cb, n, err));
    for (int l = 0; l < c->n_layers; l++) {
        const cuda_layer *L = &cb->layers[l];
        const kv_target kv = kv_for(cb, l);
        TRY(launch_rmsnorm(cb->x, c->dim, NULL, n, c->dim, L->attn_norm, eps, wt, cb->xa, cb->xa_ld,
                           s, err));
        TRY(gemm(cb, L->wqkv, cb->qkv_rows, c->dim, cb->xa, cb->xa_ld, n, cb->qkv, cb->qkv_rows,
                 0.0f, err));
        if (run_seq >= 0) {
            TRY(launch_rope_store(cb->qkv, cb->qkv_rows, n, &kv, cb->kv_t, cb->q_kv, cb->q_dim, s,
                                  err));
            TRY(attention_run(cb, l, n, run_seq, p0, err));
        } else {
            TRY(launch_rope_store(cb->qkv, cb->qkv_rows, n, &kv, LC_DTYPE_F32, cb->q, cb->q_dim, s,
                                  err));
            TRY(attention(cb, l, n, err));
        }
        const void *att = cb->att;
        int64_t att_ld = cb->q_dim;
        if (wt != LC_DTYPE_F32) { /* the product's inputs share the weights' dtype */
            TRY(launch_convert(LC_DTYPE_F32, cb->att, cb->q_dim, n, cb->q_dim, wt, cb->xa,
                               cb->xa_ld, s, err));
            att = cb->xa;
            att_ld = cb->xa_ld;
        }
        TRY(gemm(cb, L->wo, c->dim, cb->q_dim, att, att_ld, n, cb->x, c->dim, 1.0f, err));
        TRY(launch_rmsnorm(cb->x, c->dim, NULL, n, c->dim, L->ffn_norm, eps, wt, cb->xa, cb->xa_ld,
                           s, err));
        TRY(gemm(cb, L->w13, 2 * c->hidden_dim, c->dim, cb->xa, cb->xa_ld, n, cb->g13,
                 2 * c->hidden_dim, 0.0f, err));
        TRY(launch_swiglu(cb->g13, 2 * c->hidden_dim, n, c->hidden_dim, wt, cb->xa, cb->xa_ld, s,
                          err));
        TRY(gemm(cb, L->w2, c->dim, c->hidden_dim, cb->xa, cb->xa_ld, n, cb->x, c->dim, 1.0f, err));
    }
    if (n_logits == 0) return LC_OK;
    if (n_logits <= MV_MAX_TOKENS) {
        mv_epilogue e = {MV_STORE, cb->logits, c->vocab_size};
        const mv_qact floats = {}; /* after a prefill x holds floats only */
        return matvec(cb, cb->output, c->vocab_size, c->dim, cb->x, c->dim, in_rows(cb),
                      cb->output_norm, floats, n_logits, e, err);
    }
    TRY(launch_rmsnorm(cb->x, c->dim, in_rows(cb), n_logits, c->dim, cb->output_norm, eps, wt,
                       cb->xa, cb->xa_ld, s, err));
    return gemm(cb, cb->output, c->vocab_size, c->dim, cb->xa, cb->xa_ld, n_logits, cb->logits,
                c->vocab_size, 0.0f, err);
}

/* Replays (capturing on first use) the graph of a decoding step. */
static lc_status run_decode_graph(cuda_backend *cb, int n, int n_logits, bool one_chunk,
                                  lc_error *err) {
    cudaGraphExec_t *exec = &cb->graphs[one_chunk][n][n_logits];
    if (!*exec) {
        cudaGraph_t graph = NULL;
        CU_TRY(cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal));
        lc_status st = enqueue_decode(cb, n, n_logits, one_chunk, err);
        cudaError_t e = cudaStreamEndCapture(cb->stream, &graph);
        if (st == LC_OK && e != cudaSuccess)
            st = cuda_fail(err, e, "capturing a decoding step", __FILE__, __LINE__);
        if (st == LC_OK) {
            e = cudaGraphInstantiate(exec, graph, 0);
            if (e != cudaSuccess)
                st = cuda_fail(err, e, "cudaGraphInstantiate", __FILE__, __LINE__);
        }
        if (graph) cudaGraphDestroy(graph);
        if (st) {
            *exec = NULL;
            cudaGetLastError();
            return st;
        }
    }
    CU_TRY(cudaGraphLaunch(*exec, cb->stream));
    return LC_OK;
}

lc_status cuda_forward(backend *b, const lc_batch *batch, float *logits, lc_error *err) {
    cuda_backend *cb = (cuda_backend *)b;
    const int n = batch->n, nb = cb->base.n_batch;
    int32_t *h = cb->in_host;
    int n_logits = 0;
    bool one_run = true, one_chunk = true; /* every entry's keys in one attention block */
    for (int i = 0; i < n; i++) {
        if (batch->pos[i] + 1 >= ATTN_SPLIT_FROM) one_chunk = false;
        h[i] = batch->token[i];
        h[nb + i] = batch->pos[i];
        h[2 * nb + i] = batch->seq[i];
        if (batch->logits ? batch->logits[i] != 0 : i == n - 1) h[3 * nb + n_logits++] = i;
        if (i > 0 && (batch->seq[i] != batch->seq[0] || batch->pos[i] != batch->pos[0] + i))
            one_run = false;
    }
    CU_TRY(cudaSetDevice(cb->device));
    /* The host buffer is reused by the next call: it must not change before
     * this copy ran, which the synchronisation at the end of every step
     * that reads a result (and the one here otherwise) guarantees. */
    CU_TRY(cudaMemcpyAsync(cb->in_dev, h, (size_t)4 * nb * sizeof(int32_t), cudaMemcpyHostToDevice,
                           cb->stream));
    lc_status st;
    if (n <= MV_MAX_TOKENS && n_logits <= MV_MAX_TOKENS)
        st = run_decode_graph(cb, n, n_logits, one_chunk, err);
    else
        st = enqueue_prefill(cb, n, n_logits, one_run ? batch->seq[0] : -1, batch->pos[0], err);
    if (st) return st;
    cb->n_logits = n_logits;
    if (logits && n_logits)
        CU_TRY(cudaMemcpyAsync(logits, cb->logits,
                               (size_t)n_logits * cb->cfg->vocab_size * sizeof(float),
                               cudaMemcpyDeviceToHost, cb->stream));
    if (logits || n_logits == 0) CU_TRY(cudaStreamSynchronize(cb->stream));
    return LC_OK;
}

static lc_status check_kept(const cuda_backend *cb, int n, lc_error *err) {
    if (n < 1 || n != cb->n_logits || n > cb->sample_rows)
        return lc_fail(err, LC_ERR_ARG,
                       "sample: %d rows asked; the last forward kept %d (at most %d per call)", n,
                       cb->n_logits, cb->sample_rows);
    return LC_OK;
}

lc_status cuda_sample(backend *b, int n, const lc_sampler_params *p, const float *coins,
                      lc_token *out, lc_error *err) {
    cuda_backend *cb = (cuda_backend *)b;
    TRY(check_kept(cb, n, err));
    CU_TRY(cudaSetDevice(cb->device));
    for (int i = 0; i < n; i++)
        cb->rows_host[i] = (sample_row){p[i].temperature, p[i].top_p, coins[i], p[i].top_k};
    /* The pinned rows are rewritten by the next call, which comes after the
     * synchronisation below. */
    CU_TRY(cudaMemcpyAsync(cb->rows_dev, cb->rows_host, (size_t)n * sizeof(sample_row),
                           cudaMemcpyHostToDevice, cb->stream));
    TRY(launch_sample(cb->logits, cb->cfg->vocab_size, cb->rows_dev, n, cb->sample_scratch,
                      cb->sample_max_smem, cb->token_dev, NULL, cb->stream, err));
    CU_TRY(cudaMemcpyAsync(cb->token_host, cb->token_dev, (size_t)n * sizeof(int32_t),
                           cudaMemcpyDeviceToHost, cb->stream));
    CU_TRY(cudaStreamSynchronize(cb->stream));
    for (int i = 0; i < n; i++) out[i] = cb->token_host[i];
    return LC_OK;
}

/* On the stream: the draw, which also writes the next step's inputs, then
 * that step; nothing else, so the GPU goes from one step to the next
 * without the host and without a copy in between. The token's copy to the
 * host runs on a side stream after the draw, and the host waits for that
 * copy only. The next call's draw follows this wait, so token_dev and the
 * pinned token_host are never rewritten before the copy read them. */
lc_status cuda_sample_and_feed(backend *b, const lc_sampler_params *p, float coin, int seq, int pos,
                               lc_token *out, lc_error *err) {
    cuda_backend *cb = (cuda_backend *)b;
    TRY(check_kept(cb, 1, err));
    const sample_feed feed = {in_tokens(cb),
                              in_pos(cb),
                              in_seq(cb),
                              in_rows(cb),
                              pos,
                              seq,
                              {p->temperature, p->top_p, coin, p->top_k}};
    CU_TRY(cudaSetDevice(cb->device));
    if (p->temperature == 0.0f && cb->draw_spread)
        TRY(launch_argmax_spread(cb->logits, cb->cfg->vocab_size, cb->draw_partial, cb->draw_done,
                                 cb->token_dev, &feed, cb->stream, err));
    else
        TRY(launch_sample(cb->logits, cb->cfg->vocab_size, NULL, 1, cb->sample_scratch,
                          cb->sample_max_smem, cb->token_dev, &feed, cb->stream, err));
    CU_TRY(cudaEventRecord(cb->token_drawn, cb->stream));
    CU_TRY(cudaStreamWaitEvent(cb->copy_stream, cb->token_drawn, 0));
    CU_TRY(cudaMemcpyAsync(cb->token_host, cb->token_dev, sizeof(int32_t), cudaMemcpyDeviceToHost,
                           cb->copy_stream));
    CU_TRY(cudaEventRecord(cb->token_copied, cb->copy_stream));
    const lc_status st = run_decode_graph(cb, 1, 1, pos + 1 < ATTN_SPLIT_FROM, err);
    /* Waited for even when the step failed: the next draw rewrites token_dev. */
    const cudaError_t copied = cudaEventSynchronize(cb->token_copied);
    if (st) return st;
    CU_TRY(copied);
    cb->n_logits = 1;
    *out = cb->token_host[0];
    return LC_OK;
}
