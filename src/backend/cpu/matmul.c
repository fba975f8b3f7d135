/* Matrix products on the thread pool, for weights of every dtype. Work items
 * are chunks of weight rows, handed out in order; every item computes its
 * rows for all tokens, so each weight row is read from memory once per call.
 * A few tokens go through the kernel table's matvec for the weight dtype
 * (int8 dtypes take the activations quantized once per call); more go through
 * the f32 GEMM tile, with non-f32 weight rows converted a tile at a time
 * into a per-thread buffer. */
#include <assert.h>

#include "backend/cpu/cpu_backend.h"
#include "formats/tensor.h"

typedef struct matmul_call {
    cpu_backend *cb;
    const float *x;
    const block_q8_act *xq; /* (n_tok, k / QK) x quantized, when a job has int8 weights */
    int64_t n_tok, k;
    const matmul_job *jobs;
    int n_jobs;
    int64_t rows_per_task;
    int64_t tasks_before[4]; /* first task index of each job, then the total */
} matmul_call;

/* Finds the job and row range of a work item. */
static const matmul_job *locate(const matmul_call *c, int64_t task, int64_t *r0, int64_t *r1) {
    int j = 0;
    while (task >= c->tasks_before[j + 1]) j++;
    const matmul_job *job = &c->jobs[j];
    *r0 = (task - c->tasks_before[j]) * c->rows_per_task;
    *r1 = *r0 + c->rows_per_task < job->w->rows ? *r0 + c->rows_per_task : job->w->rows;
    return job;
}

/* Where row r of a weight starts. */
static const void *weight_row(const weight *w, int64_t r) {
    return (const char *)w->data + r * dtype_row_bytes(w->dtype, w->cols);
}

static void matvec_task(void *ctx, int64_t task, int thread) {
    const matmul_call *c = ctx;
    int64_t r0, r1;
    const matmul_job *job = locate(c, task, &r0, &r1);
    const lc_dtype dt = job->w->dtype;
    const matvec_fn matvec = c->cb->kern->matvec[dt];
    const void *w = weight_row(job->w, r0);
    const int64_t stride = job->w->rows;
    for (int64_t t = 0; t < c->n_tok; t += MATVEC_MAX_TOKENS) {
        int n = c->n_tok - t < MATVEC_MAX_TOKENS ? (int)(c->n_tok - t) : MATVEC_MAX_TOKENS;
        const void *x = cpu_dtype_int8_input(dt) ? (const void *)(c->xq + t * (c->k / QK))
                                                 : (const void *)(c->x + t * c->k);
        matvec(w, c->k, r1 - r0, x, n, job->out + t * stride + r0, stride);
    }
}

static void pack_task(void *ctx, int64_t block, int thread) {
    const matmul_call *c = ctx;
    const cpu_kernels *kern = c->cb->kern;
    cpu_pack_block(kern, c->x, c->k, c->n_tok, c->k, block * kern->gemm_tokens,
                   c->cb->xpack + block * kern->gemm_tokens * c->k);
}

static void gemm_task(void *ctx, int64_t task, int thread) {
    const matmul_call *c = ctx;
    const cpu_kernels *kern = c->cb->kern;
    int64_t r0, r1;
    const matmul_job *job = locate(c, task, &r0, &r1);
    const int64_t stride = job->w->rows, nt = kern->gemm_tokens;
    /* Row tiles outermost: a tile's rows stay in cache while every token block passes. */
    for (int64_t r = r0; r < r1; r += kern->gemm_rows) {
        int rows = r1 - r < kern->gemm_rows ? (int)(r1 - r) : kern->gemm_rows;
        const float *w = weight_row(job->w, r);
        if (job->w->dtype != LC_DTYPE_F32) {
            /* Converted once per tile and reused by every token block. */
            float *tile = c->cb->wtile[thread];
            assert((int64_t)rows * c->k <= c->cb->wtile_floats);
            kern->dequantize(job->w->dtype, w, tile, rows * c->k);
            w = tile;
        }
        for (int64_t t = 0; t < c->n_tok; t += nt) {
            int n = c->n_tok - t < nt ? (int)(c->n_tok - t) : (int)nt;
            kern->gemm_tile(w, c->k, c->k, rows, c->cb->xpack + t * c->k, nt, n,
                            job->out + t * stride + r, 1, stride);
        }
    }
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void cpu_matmul(cpu_backend *cb, const float *x, int64_t n_tok, const matmul_job *jobs,
                int n_jobs) {
    assert(n_jobs >= 1 && n_jobs <= 3 && n_tok >= 1 && n_tok <= cb->base.n_batch);
    matmul_call c = {cb, x, NULL, n_tok, jobs[0].w->cols, jobs, n_jobs, 0, {0}};
    const bool gemm = n_tok >= GEMM_MIN_TOKENS;
    int64_t max_rows = 0;
    bool int8 = false;
    for (int j = 0; j < n_jobs; j++) {
        assert(jobs[j].w->cols == c.k && dtype_row_bytes(jobs[j].w->dtype, c.k) > 0);
        if (jobs[j].w->rows > max_rows) max_rows = jobs[j].w->rows;
        int8 |= cpu_dtype_int8_input(jobs[j].w->dtype);
    }
    if (!gemm && int8) {
        /* Every int8 dtype takes the same quantized activations: once per call. */
        assert(c.k % QK == 0 && n_tok * (c.k / QK) <= cb->xq_blocks);
        for (int64_t t = 0; t < n_tok; t++)
            cb->kern->quantize(x + t * c.k, cb->xq + t * (c.k / QK), c.k);
        c.xq = cb->xq;
    }
    if (gemm) {
        /* Enough items to balance the threads, each a whole number of row tiles. */
        int64_t tile = cb->kern->gemm_rows;
        c.rows_per_task = ceil_div(ceil_div(max_rows, 4 * (int64_t)cb->n_threads), tile) * tile;
    } else if (cb->chunk_rows > 0) {
        c.rows_per_task = cb->chunk_rows;
    } else {
        /* One contiguous range per thread: each thread then streams one long
         * run of memory, which measured fastest (docs/performance.md). */
        c.rows_per_task = ceil_div(ceil_div(max_rows, cb->n_threads), 16) * 16;
    }
    for (int j = 0; j < n_jobs; j++)
        c.tasks_before[j + 1] = c.tasks_before[j] + ceil_div(jobs[j].w->rows, c.rows_per_task);
    if (gemm) threadpool_run(cb->pool, ceil_div(n_tok, cb->kern->gemm_tokens), pack_task, &c);
    threadpool_run(cb->pool, c.tasks_before[n_jobs], gemm ? gemm_task : matvec_task, &c);
}
