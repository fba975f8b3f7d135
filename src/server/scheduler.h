/* Continuous batching: one thread owns the engine and advances every active
 * sequence (one per KV-cache slot) in one lc_engine_forward per step.
 * Requests arrive from any thread through a queue, join between steps (their
 * prompts prefilled in chunks that share the step's batch with the decoding
 * sequences) and leave when they stop or are cancelled; their slot is reset.
 * Each request gets its tokens back through its own buffer and condition. */
#ifndef LLAMAC_SERVER_SCHEDULER_H
#define LLAMAC_SERVER_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>

#include "llamac.h"

typedef struct scheduler scheduler;

typedef enum sched_finish {
    SCHED_RUNNING = 0,
    SCHED_STOP_TOKEN, /* a stop token was sampled */
    SCHED_LENGTH,     /* max_tokens, or the context is full */
    SCHED_CANCELLED,  /* the client went away or asked to stop */
    SCHED_FAILED,     /* the engine failed or the server shuts down: see error */
} sched_finish;

typedef struct sched_request {
    /* Set before sched_submit, then read-only. The request owns prompt and sampler. */
    lc_token *prompt; /* (n_prompt) */
    int n_prompt;
    int max_tokens; /* -1: until a stop token or the context is full */
    lc_token stop[LC_MAX_STOP_TOKENS];
    int n_stop;
    lc_sampler *sampler;

    /* Guarded by the scheduler's mutex. */
    pthread_cond_t ready; /* signalled when tokens arrive or the request ends */
    lc_token *out;        /* (n_out) generated tokens, stop tokens excluded */
    int n_out, cap_out;
    sched_finish finish;
    bool cancel;   /* set by the client side: the scheduler drops it at the next step */
    bool released; /* the scheduler holds no pointer to it any more */
    char error[256];
    struct sched_request *next; /* queue link */
} sched_request;

lc_status sched_create(lc_engine *engine, scheduler **out, lc_error *err);
/* Ends every request (SCHED_FAILED, "the server is shutting down") and stops
 * the thread; later submits fail, waits and cancels still answer. */
void sched_stop(scheduler *s);
/* sched_stop, then frees the scheduler. The engine stays the caller's. */
void sched_free(scheduler *s);

/* Takes a prompt and sampler the caller allocated (freed by sched_request_free). */
void sched_request_init(sched_request *r);
void sched_request_free(sched_request *r);

/* Queues r; false when the scheduler is shutting down. */
bool sched_submit(scheduler *s, sched_request *r);
/* Waits until r has more than `seen` tokens or has finished, or at most
 * timeout_ms (< 0: no limit); copies up to `cap` new tokens to `out`, sets *n
 * and returns r->finish once every token has been taken, else SCHED_RUNNING. */
sched_finish sched_wait(scheduler *s, sched_request *r, int seen, lc_token *out, int cap, int *n,
                        int timeout_ms);
/* Asks the scheduler to drop r and waits until it has (r may then be freed). */
void sched_cancel(scheduler *s, sched_request *r);
typedef struct sched_stats {
    int busy, total;     /* slots in use, of total */
    int queued;          /* requests waiting for a slot */
    long long done;      /* requests finished since the start */
    long long cancelled; /* of them, cancelled (client gone, stop string) */
    long long steps;     /* batched forwards run */
    long long tokens;    /* tokens sampled (one per logits row) */
    double forward_s;    /* seconds in the forwards, logits copied out included */
    double sample_s;       /* seconds drawing tokens: the host sampler, or the device's draw */
} sched_stats;

void sched_load(scheduler *s, sched_stats *st);

#endif
