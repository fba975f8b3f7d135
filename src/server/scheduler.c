#include "server/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "model/model.h"

/* One KV-cache slot of the engine and the request it serves. */
typedef struct slot {
    sched_request *req; /* NULL: free */
    int fed;            /* prompt tokens in the cache */
    lc_token next;      /* a sampled token to feed at the next step, or -1 */
    int n_gen;          /* tokens generated */
} slot;

struct scheduler {
    lc_engine *engine;
    int n_seq, n_ctx, n_batch;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a request arrived, was cancelled, or shutdown began */
    sched_request *head, *tail;
    int n_queued;
    long long n_done, n_cancelled; /* requests finished, and of them cancelled */
    long long n_steps, n_tokens;   /* forwards run, tokens sampled */
    double forward_s, sample_s;    /* where a step's time goes: engine or host sampler */
    bool stopping, started;
    pthread_t thread;
    slot *slots; /* (n_seq) */
    /* One step's batch, built by the scheduler thread alone. */
    lc_token *tok;            /* (n_batch) */
    int32_t *pos;             /* (n_batch) */
    int32_t *seq;             /* (n_batch) */
    uint8_t *want;            /* (n_batch) produce logits */
    int *row_slot;            /* (n_seq) the slot of each logits row */
    lc_token *picks;          /* (n_seq) the token sampled from each row */
    lc_sampler **row_sampler; /* (n_seq) the sampler of each row; the backend draws */
};

void sched_request_init(sched_request *r) {
    memset(r, 0, sizeof *r);
    r->max_tokens = -1;
    pthread_cond_init(&r->ready, NULL);
}

void sched_request_free(sched_request *r) {
    pthread_cond_destroy(&r->ready);
    free(r->prompt);
    free(r->out);
    lc_sampler_free(r->sampler);
}

/* The request is done: the client side may read the outcome and free it. */
static void finish_locked(scheduler *s, sched_request *r, sched_finish f, const char *error) {
    s->n_done++;
    s->n_cancelled += f == SCHED_CANCELLED;
    r->finish = f;
    if (error) snprintf(r->error, sizeof r->error, "%s", error);
    r->released = true;
    pthread_cond_broadcast(&r->ready);
}

static void free_slot(scheduler *s, int i) {
    s->slots[i] = (slot){.next = -1};
    lc_engine_seq_reset(s->engine, i);
}

static bool push_token_locked(sched_request *r, lc_token t) {
    if (r->n_out == r->cap_out) {
        int cap = r->cap_out ? 2 * r->cap_out : 64;
        lc_token *bigger = realloc(r->out, (size_t)cap * sizeof *bigger);
        if (!bigger) return false;
        r->out = bigger;
        r->cap_out = cap;
    }
    r->out[r->n_out++] = t;
    pthread_cond_broadcast(&r->ready);
    return true;
}

/* Between steps: drop cancelled requests (active or queued), then give free
 * slots to queued requests in arrival order. */
static void admit_locked(scheduler *s) {
    for (int i = 0; i < s->n_seq; i++)
        if (s->slots[i].req && s->slots[i].req->cancel) {
            finish_locked(s, s->slots[i].req, SCHED_CANCELLED, NULL);
            free_slot(s, i);
        }
    for (sched_request **p = &s->head; *p;) {
        sched_request *r = *p;
        if (r->cancel) {
            *p = r->next;
            s->n_queued--;
            finish_locked(s, r, SCHED_CANCELLED, NULL);
        } else {
            p = &r->next;
        }
    }
    s->tail = NULL;
    for (sched_request *r = s->head; r; r = r->next) s->tail = r;
    for (int i = 0; i < s->n_seq && s->head; i++) {
        if (s->slots[i].req) continue;
        sched_request *r = s->head;
        s->head = r->next;
        if (!s->head) s->tail = NULL;
        s->n_queued--;
        free_slot(s, i);
        s->slots[i].req = r;
    }
}

static bool any_active(const scheduler *s) {
    for (int i = 0; i < s->n_seq; i++)
        if (s->slots[i].req) return true;
    return false;
}

/* Fills the batch: every decoding sequence's next token first (one entry
 * each), then prompt chunks up to n_batch. Returns the entry count. */
static int build_batch(scheduler *s, int *n_rows) {
    int n = 0;
    *n_rows = 0;
    for (int i = 0; i < s->n_seq; i++) {
        slot *sl = &s->slots[i];
        if (!sl->req || sl->fed < sl->req->n_prompt || sl->next < 0) continue;
        s->tok[n] = sl->next;
        s->pos[n] = lc_engine_seq_pos(s->engine, i);
        s->seq[n] = i;
        s->want[n++] = 1;
        s->row_slot[(*n_rows)++] = i;
    }
    for (int i = 0; i < s->n_seq && n < s->n_batch; i++) {
        slot *sl = &s->slots[i];
        if (!sl->req || sl->fed >= sl->req->n_prompt) continue;
        int k = sl->req->n_prompt - sl->fed;
        if (k > s->n_batch - n) k = s->n_batch - n;
        for (int j = 0; j < k; j++) {
            s->tok[n] = sl->req->prompt[sl->fed + j];
            s->pos[n] = sl->fed + j;
            s->seq[n] = i;
            s->want[n++] = 0;
        }
        sl->fed += k;
        if (sl->fed == sl->req->n_prompt) { /* the prompt's last token: sample from it */
            s->want[n - 1] = 1;
            s->row_slot[(*n_rows)++] = i;
        }
    }
    return n;
}

/* Mirrors lc_generate's order: a stop token ends the reply unseen; a token is
 * handed out, then max_tokens and the context are checked. */
static void take_token_locked(scheduler *s, int i, lc_token t) {
    slot *sl = &s->slots[i];
    sched_request *r = sl->req;
    sl->next = -1;
    if (r->cancel) return; /* dropped by admit_locked */
    for (int k = 0; k < r->n_stop; k++)
        if (r->stop[k] == t) {
            finish_locked(s, r, SCHED_STOP_TOKEN, NULL);
            free_slot(s, i);
            return;
        }
    if (!push_token_locked(r, t)) {
        finish_locked(s, r, SCHED_FAILED, "out of memory for the generated tokens");
        free_slot(s, i);
        return;
    }
    sl->n_gen++;
    if ((r->max_tokens > 0 && sl->n_gen >= r->max_tokens) ||
        lc_engine_seq_pos(s->engine, i) >= s->n_ctx) {
        finish_locked(s, r, SCHED_LENGTH, NULL);
        free_slot(s, i);
        return;
    }
    sl->next = t;
}

static void *sched_main(void *arg) {
    scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        admit_locked(s);
        if (s->stopping) break;
        if (!any_active(s)) {
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        /* Only this thread touches slots' fed/next and the engine, so the
         * step runs unlocked; clients only set `cancel`, read at the next step. */
        int n_rows;
        const int n = build_batch(s, &n_rows);
        const lc_batch b = {n, s->tok, s->pos, s->seq, s->want};
        lc_error err;
        const double t0 = lc_time_seconds();
        lc_status st = engine_forward(s->engine, &b, NULL, &err);
        const double t1 = lc_time_seconds();
        for (int r = 0; r < n_rows; r++) s->row_sampler[r] = s->slots[s->row_slot[r]].req->sampler;
        if (st == LC_OK && n_rows > 0)
            st = engine_sample(s->engine, s->row_sampler, n_rows, s->picks, &err);
        pthread_mutex_lock(&s->mu);
        s->n_steps++;
        s->n_tokens += st == LC_OK ? n_rows : 0;
        s->forward_s += t1 - t0;
        s->sample_s += lc_time_seconds() - t1;
        if (st) { /* every sequence of the batch is in an unknown state: end them */
            for (int k = 0; k < n; k++)
                if (s->slots[s->seq[k]].req) {
                    finish_locked(s, s->slots[s->seq[k]].req, SCHED_FAILED, err.msg);
                    free_slot(s, s->seq[k]);
                }
            continue;
        }
        for (int r = 0; r < n_rows; r++) take_token_locked(s, s->row_slot[r], s->picks[r]);
    }
    for (int i = 0; i < s->n_seq; i++)
        if (s->slots[i].req) {
            finish_locked(s, s->slots[i].req, SCHED_FAILED, "the server is shutting down");
            free_slot(s, i);
        }
    while (s->head) {
        sched_request *r = s->head;
        s->head = r->next;
        finish_locked(s, r, SCHED_FAILED, "the server is shutting down");
    }
    s->tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void sched_stop(scheduler *s) {
    if (!s || !s->started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void sched_free(scheduler *s) {
    if (!s) return;
    sched_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    free(s->slots);
    free(s->tok);
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->row_slot);
    free(s->picks);
    free(s->row_sampler);
    free(s);
}

lc_status sched_create(lc_engine *engine, scheduler **out, lc_error *err) {
    *out = NULL;
    /* Every decoding sequence takes one entry of each step's batch. */
    if (engine->n_batch < engine->n_seq) {
        if (err) {
            err->status = LC_ERR_ARG;
            snprintf(err->msg, sizeof err->msg,
                     "--batch %d is below --parallel %d: each step decodes one token of every "
                     "sequence",
                     engine->n_batch, engine->n_seq);
        }
        return LC_ERR_ARG;
    }
    scheduler *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->engine = engine;
    s->n_ctx = engine->n_ctx;
    s->n_batch = engine->n_batch;
    s->n_seq = engine->n_seq;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    s->slots = calloc((size_t)s->n_seq, sizeof *s->slots);
    s->tok = calloc((size_t)s->n_batch, sizeof *s->tok);
    s->pos = calloc((size_t)s->n_batch, sizeof *s->pos);
    s->seq = calloc((size_t)s->n_batch, sizeof *s->seq);
    s->want = calloc((size_t)s->n_batch, 1);
    s->row_slot = calloc((size_t)s->n_seq, sizeof *s->row_slot);
    s->picks = calloc((size_t)s->n_seq, sizeof *s->picks);
    s->row_sampler = calloc((size_t)s->n_seq, sizeof *s->row_sampler);
    if (!s->slots || !s->tok || !s->pos || !s->seq || !s->want || !s->row_slot || !s->picks ||
        !s->row_sampler)
        goto oom;
    for (int i = 0; i < s->n_seq; i++) s->slots[i].next = -1;
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        sched_free(s);
        if (err) {
            err->status = LC_ERR_NOMEM;
            snprintf(err->msg, sizeof err->msg, "cannot start the scheduler thread");
        }
        return LC_ERR_NOMEM;
    }
    s->started = true;
    *out = s;
    return LC_OK;
oom:
    sched_free(s);
    if (err) {
        err->status = LC_ERR_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory for the scheduler");
    }
    return LC_ERR_NOMEM;
}

bool sched_submit(scheduler *s, sched_request *r) {
    pthread_mutex_lock(&s->mu);
    bool ok = !s->stopping;
    if (ok) {
        r->next = NULL;
        if (s->tail)
            s->tail->next = r;
        else
            s->head = r;
        s->tail = r;
        s->n_queued++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

sched_finish sched_wait(scheduler *s, sched_request *r, int seen, lc_token *out, int cap, int *n,
                        int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline); /* the clock condition variables use by default */
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (r->n_out <= seen && r->finish == SCHED_RUNNING)
        if (timeout_ms < 0)
            pthread_cond_wait(&r->ready, &s->mu);
        else if (pthread_cond_timedwait(&r->ready, &s->mu, &deadline) != 0)
            break;
    int k = r->n_out - seen;
    if (k > cap) k = cap;
    if (k < 0) k = 0;
    if (k > 0) memcpy(out, r->out + seen, (size_t)k * sizeof *out);
    *n = k;
    /* Finished only once every token has been handed out. */
    sched_finish f = seen + k < r->n_out ? SCHED_RUNNING : r->finish;
    pthread_mutex_unlock(&s->mu);
    return f;
}

void sched_cancel(scheduler *s, sched_request *r) {
    pthread_mutex_lock(&s->mu);
    if (!r->released) {
        r->cancel = true;
        pthread_cond_signal(&s->wake);
        while (!r->released) pthread_cond_wait(&r->ready, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

void sched_load(scheduler *s, sched_stats *st) {
    pthread_mutex_lock(&s->mu);
    int b = 0;
    for (int i = 0; i < s->n_seq; i++) b += s->slots[i].req != NULL;
    *st = (sched_stats){b,          s->n_seq,    s->n_queued,  s->n_done,  s->n_cancelled,
                        s->n_steps, s->n_tokens, s->forward_s, s->sample_s};
    pthread_mutex_unlock(&s->mu);
}
