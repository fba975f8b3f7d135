/* A persistent pool of worker threads. The calling thread works too, so a
 * pool of n threads starts n - 1 workers. Workers spin briefly between jobs
 * (a decode step dispatches ~5 jobs per layer) and then sleep. */
#ifndef LLAMAC_BACKEND_CPU_THREADPOOL_H
#define LLAMAC_BACKEND_CPU_THREADPOOL_H

#include <stdint.h>

#include "llamac.h"

typedef struct threadpool threadpool;

/* Runs task `task` of a job on thread `thread` (0 .. n_threads - 1). */
typedef void (*task_fn)(void *ctx, int64_t task, int thread);

lc_status threadpool_create(int n_threads, threadpool **out, lc_error *err);
void threadpool_free(threadpool *pool);

/* Runs fn(ctx, i, thread) for every i in [0, n_tasks), handing tasks out in
 * index order to whichever thread is free; returns when all have finished. */
void threadpool_run(threadpool *pool, int64_t n_tasks, task_fn fn, void *ctx);

#endif
