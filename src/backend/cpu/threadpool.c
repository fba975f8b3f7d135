#include "backend/cpu/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spins before sleeping: long enough to cover the gap between the jobs of a
 * forward pass and between decode steps, short enough not to burn a core
 * while a chat waits for input. */
#define SPIN_ROUNDS 200000
/* Pauses the caller spins waiting for the workers before it starts yielding
 * its core (~50 us): past that, a worker is likely descheduled (another
 * process holds the other cores), and spinning on would keep it from running
 * for a whole time slice per job: 2 llamac processes on 2 cores fell from
 * hundreds of tokens per second to 5. */
#define YIELD_AFTER 1024
/* STALL_RUN jobs in a row whose workers kept the caller waiting this long
 * after its own share (a worker descheduled mid-task) make the next
 * BACKOFF_JOBS jobs run on the caller alone: with every core busy elsewhere,
 * one thread beats a fork-join that loses a time slice per job (17 vs 586
 * tok/s on stories15M with two other processes on 2 cores). Then it tries
 * the workers again. In a row, because one stall is often only a short
 * preemption (the server's HTTP threads), after which the workers are fine:
 * backing off on single stalls cost the CPU server a quarter of its
 * throughput (docs/performance.md). */
#define STALL_SECONDS 0.002
#define STALL_RUN     3
#define BACKOFF_JOBS  512

typedef struct worker {
    threadpool *pool;
    int index;
    pthread_t thread;
} worker;

struct threadpool {
    int n_threads;
    int spin_rounds; /* 0 when there are more threads than cores: spinning would
                        take the core from the thread that has the work */
    worker *workers; /* (n_threads - 1) */

    /* The current job; written by the caller before bumping `generation`. */
    task_fn fn;
    void *ctx;
    int64_t n_tasks;
    _Atomic int64_t next_task;
    _Atomic int busy; /* workers still on the current job */

    _Atomic unsigned generation; /* bumped once per job; workers wait for a change */
    _Atomic int n_sleeping;
    _Atomic bool stop;
    int serial_jobs; /* jobs left to run on the caller alone after stalls (caller's only) */
    int stalls;      /* jobs in a row that stalled (caller's only) */
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static void run_tasks(threadpool *p, int thread) {
    for (;;) {
        int64_t task = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (task >= p->n_tasks) break;
        p->fn(p->ctx, task, thread);
    }
}

static unsigned wait_for_job(threadpool *p, unsigned seen) {
    for (int i = 0; i < p->spin_rounds; i++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->n_sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->lock);
    return g;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        run_tasks(p, w->index);
        atomic_fetch_sub_explicit(&p->busy, 1, memory_order_release);
    }
}

static void publish(threadpool *p) {
    atomic_fetch_add(&p->generation, 1); /* seq_cst: pairs with n_sleeping below */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
}

void threadpool_run(threadpool *p, int64_t n_tasks, task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1 || p->serial_jobs > 0) {
        if (p->serial_jobs > 0) p->serial_jobs--;
        for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&p->busy, p->n_threads - 1, memory_order_relaxed);
    publish(p);
    run_tasks(p, 0);
    double yield_start = -1.0;
    for (int spins = 0; atomic_load_explicit(&p->busy, memory_order_acquire) > 0; spins++) {
        if (p->spin_rounds && spins < YIELD_AFTER) {
            cpu_relax();
            continue;
        }
        if (yield_start < 0.0) yield_start = lc_time_seconds();
        sched_yield(); /* a worker is not running: let it have this core */
    }
    const bool stalled = yield_start >= 0.0 && lc_time_seconds() - yield_start > STALL_SECONDS;
    p->stalls = stalled ? p->stalls + 1 : 0;
    if (p->stalls >= STALL_RUN) {
        p->serial_jobs = BACKOFF_JOBS;
        p->stalls = 0;
    }
}

lc_status threadpool_create(int n_threads, threadpool **out, lc_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return lc_fail(err, LC_ERR_ARG, "thread count %d is out of range [1, 1024]", n_threads);
    threadpool *p = calloc(1, sizeof *p);
    if (!p) return lc_fail(err, LC_ERR_NOMEM, "out of memory for the thread pool");
    p->n_threads = n_threads;
    p->spin_rounds = n_threads <= lc_n_cores() ? SPIN_ROUNDS : 0;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        p->n_threads = 1; /* no workers started, none to join */
        threadpool_free(p);
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for the thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        worker *w = &p->workers[i - 1];
        w->pool = p;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->n_threads = i; /* only the started workers get joined */
            threadpool_free(p);
            return lc_fail(err, LC_ERR_NOMEM, "cannot start worker thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return LC_OK;
}

void threadpool_free(threadpool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    publish(p);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i - 1].thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}
