/* The memory-bandwidth ceiling for batch-1 decoding: all threads stream a
 * large buffer once per pass, each summing its share with the same SIMD dot
 * kernel the matvec uses. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/threadpool.h"
#include "core/error.h"

#define SLICE_FLOATS (1 << 18) /* 1 MiB per work item */

typedef struct pass {
    const float *buf;
    int64_t n;
    const cpu_kernels *kern;
    float sums[1024]; /* per thread, so the reads cannot be optimized away */
} pass;

static void read_slice(void *ctx, int64_t task, int thread) {
    pass *p = ctx;
    int64_t start = task * SLICE_FLOATS;
    int64_t len = p->n - start < SLICE_FLOATS ? p->n - start : SLICE_FLOATS;
    /* dot(a, a) reads one stream: the second load of each line hits L1. */
    p->sums[thread] += p->kern->dot(p->buf + start, p->buf + start, len);
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
    float *buf = malloc(bytes);
    double *gbs = calloc((size_t)repeats, sizeof *gbs);
    threadpool *pool = NULL;
    lc_status st = LC_OK;
    if (!p || !buf || !gbs) {
        st = lc_fail(err, LC_ERR_NOMEM, "membw: cannot allocate %zu bytes", bytes);
        goto done;
    }
    if ((st = threadpool_create(n_threads, &pool, err))) goto done;
    for (size_t i = 0; i < bytes / sizeof(float); i++) buf[i] = 1.0f; /* faults every page in */
    *p = (pass){.buf = buf, .n = (int64_t)(bytes / sizeof(float)), .kern = cpu_kernels_select("auto")};
    const int64_t n_tasks = (p->n + SLICE_FLOATS - 1) / SLICE_FLOATS;
    threadpool_run(pool, n_tasks, read_slice, p); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double t0 = lc_time_seconds();
        threadpool_run(pool, n_tasks, read_slice, p);
        gbs[r] = (double)bytes / (lc_time_seconds() - t0) / 1e9;
    }
    qsort(gbs, (size_t)repeats, sizeof *gbs, cmp_double);
    *median = gbs[repeats / 2];
    *best = gbs[repeats - 1];
done:
    threadpool_free(pool);
    free(gbs);
    free(buf);
    free(p);
    return st;
}
