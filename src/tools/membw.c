/* The memory-bandwidth ceiling for batch-1 decoding: every thread streams one
 * contiguous share of a large buffer per pass with the SIMD dot kernel the
 * matvec uses, on 64-byte aligned huge pages like the weight copy, so the
 * ceiling is measured under the same best conditions decoding gets. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/threadpool.h"
#include "core/error.h"
#include "core/huge_pages.h"

typedef struct pass {
    const float *buf;
    int64_t n, per_task;
    const cpu_kernels *kern;
    float sums[1024]; /* per thread, so the reads cannot be optimized away */
} pass;

static void read_share(void *ctx, int64_t task, int thread) {
    pass *p = ctx;
    int64_t start = task * p->per_task;
    int64_t len = p->n - start < p->per_task ? p->n - start : p->per_task;
    /* dot(a, a) reads one stream: the second load of each line hits L1. */
    if (len > 0) p->sums[thread] += p->kern->dot(p->buf + start, p->buf + start, len);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

lc_status lc_membw(size_t bytes, int n_threads, int repeats, double *median, double *best,
                   lc_error *err) {
    if (n_threads <= 0) n_threads = lc_n_cores();
    if (repeats < 1 || repeats > 1000 || bytes < (1u << 20))
        return lc_fail(err, LC_ERR_ARG, "membw: need at least 1 MiB and 1 to 1000 repeats");
    pass *p = calloc(1, sizeof *p);
    huge_buffer hb;
    float *buf = huge_buffer_alloc(&hb, bytes) ? hb.data : NULL;
    double *gbs = calloc((size_t)repeats, sizeof *gbs);
    threadpool *pool = NULL;
    lc_status st = LC_OK;
    if (!p || !buf || !gbs) {
        st = lc_fail(err, LC_ERR_NOMEM, "membw: cannot allocate %zu bytes", bytes);
        goto done;
    }
    if ((st = threadpool_create(n_threads, &pool, err))) goto done;
    for (size_t i = 0; i < bytes / sizeof(float); i++) buf[i] = 1.0f; /* faults every page in */
    *p = (pass){
        .buf = buf, .n = (int64_t)(bytes / sizeof(float)), .kern = cpu_kernels_select("auto")};
    p->per_task = (p->n + n_threads - 1) / n_threads;
    threadpool_run(pool, n_threads, read_share, p); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double t0 = lc_time_seconds();
        threadpool_run(pool, n_threads, read_share, p);
        gbs[r] = (double)bytes / (lc_time_seconds() - t0) / 1e9;
    }
    qsort(gbs, (size_t)repeats, sizeof *gbs, cmp_double);
    *median = gbs[repeats / 2];
    *best = gbs[repeats - 1];
done:
    threadpool_free(pool);
    free(gbs);
    if (buf) huge_buffer_free(&hb);
    free(p);
    return st;
}
