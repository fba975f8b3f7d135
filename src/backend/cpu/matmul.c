/* Matrix products on the thread pool. Work items are chunks of weight rows,
 * handed out in order; every item computes its rows for all tokens, so each
 * weight row is read from memory once per call. */
#include <assert.h>

#include "backend/cpu/cpu_backend.h"

typedef struct matmul_call {
    cpu_backend *cb;
    const float *x;
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

static void matvec_task(void *ctx, int64_t task, int thread) {
    const matmul_call *c = ctx;
    int64_t r0, r1;
    const matmul_job *job = locate(c, task, &r0, &r1);
    const float *w = (const float *)job->w->data + r0 * c->k;
    const int64_t stride = job->w->rows;
    for (int64_t t = 0; t < c->n_tok; t += MATVEC_MAX_TOKENS) {
        int n = c->n_tok - t < MATVEC_MAX_TOKENS ? (int)(c->n_tok - t) : MATVEC_MAX_TOKENS;
        c->cb->kern->matvec(w, c->k, r1 - r0, c->x + t * c->k, n, job->out + t * stride + r0,
                            stride);
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
        const float *w = (const float *)job->w->data + r * c->k;
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
    matmul_call c = {cb, x, n_tok, jobs[0].w->cols, jobs, n_jobs, 0, {0}};
    const bool gemm = n_tok >= GEMM_MIN_TOKENS;
    int64_t max_rows = 0;
    for (int j = 0; j < n_jobs; j++) {
        assert(jobs[j].w->cols == c.k && jobs[j].w->dtype == LC_DTYPE_F32);
        if (jobs[j].w->rows > max_rows) max_rows = jobs[j].w->rows;
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
