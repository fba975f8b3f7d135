/* One completion request: the validated body turned into prompt ids and a
 * sampler, queued on the scheduler, and its tokens turned back into text,
 * cut at stop strings, and written as one JSON answer or as SSE chunks. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server.h"

#define TOKENS_PER_WAIT 64
#define ALIVE_CHECK_MS  50 /* how often a waiting non-streamed request checks its client */

struct reply {
    const server_config *cfg;
    api_request req;
    api_reply id;
    sched_request sr;
    bool submitted;
    lc_detokenizer dt;
    stop_filter sf;
    int seen; /* tokens taken from the scheduler */
    /* Streaming: SSE bytes produced and not yet written. */
    char *pending;
    size_t pend_len, pend_off;
    bool ended; /* [DONE] is in pending */
};

static uint64_t clock_seed(const void *salt) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (uintptr_t)salt;
}

/* The prompt as ids: the chat rendered with the model's template, or the text
 * encoded as `llamac generate` encodes it. */
static bool make_prompt(reply *r, api_error *e) {
    const server_config *cfg = r->cfg;
    lc_error err;
    size_t n = 0;
    lc_status st;
    if (r->req.kind == API_CHAT) {
        if (cfg->tpl == LC_CHAT_NONE)
            return api_fail(e, 400, "messages", "no_chat_template",
                            "the model's chat template is not one llamac knows; use "
                            "/v1/completions or start the server with --chat-template");
        st = lc_chat_render(cfg->tok, cfg->tpl, r->req.msgs, r->req.n_msgs, true, true,
                            &r->sr.prompt, &n, &err);
    } else {
        st = lc_tokenizer_encode(cfg->tok, r->req.prompt, strlen(r->req.prompt),
                                 lc_tokenizer_add_bos(cfg->tok), false, &r->sr.prompt, &n, &err);
    }
    if (st == LC_ERR_NOMEM) return api_fail(e, 500, NULL, NULL, "out of memory");
    if (st)
        return api_fail(e, 400, r->req.kind == API_CHAT ? "messages" : "prompt", "invalid_value",
                        "%s", err.msg);
    if (n == 0) return api_fail(e, 400, "prompt", "invalid_value", "the prompt is empty");
    if (n >= (size_t)cfg->n_ctx)
        return api_fail(
            e, 400, r->req.kind == API_CHAT ? "messages" : "prompt", "context_length_exceeded",
            "the prompt has %zu tokens and the context holds %d; shorten it", n, cfg->n_ctx);
    r->sr.n_prompt = (int)n;
    return true;
}

bool reply_start(const server_config *cfg, api_kind kind, const char *body, size_t len, reply **out,
                 api_error *e) {
    *out = NULL;
    reply *r = calloc(1, sizeof *r);
    if (!r) return api_fail(e, 500, NULL, NULL, "out of memory");
    r->cfg = cfg;
    sched_request_init(&r->sr);
    if (!api_parse(kind, body, len, cfg->n_ctx, &r->req, e) || !make_prompt(r, e)) goto fail;
    stop_filter_init(&r->sf, r->req.stop, r->req.n_stop);
    r->sr.max_tokens = r->req.max_tokens;
    const lc_token *stop = kind == API_CHAT ? cfg->chat_stop : cfg->text_stop;
    r->sr.n_stop = r->req.ignore_eos ? 0 : kind == API_CHAT ? cfg->n_chat_stop : cfg->n_text_stop;
    memcpy(r->sr.stop, stop, (size_t)r->sr.n_stop * sizeof *stop);
    if (!r->req.seed_given) r->req.sampling.seed = clock_seed(r);
    lc_error err;
    if (lc_sampler_create(&r->req.sampling, lc_tokenizer_vocab_size(cfg->tok), &r->sr.sampler,
                          &err)) {
        api_fail(e, 400, NULL, "invalid_value", "%s", err.msg);
        goto fail;
    }
    lc_detokenizer_init(&r->dt);
    /* A chat reply starts like a fresh text (as `llamac chat` prints it); a
     * completion continues its prompt. */
    r->dt.prev = kind == API_CHAT ? lc_tokenizer_bos(cfg->tok) : r->sr.prompt[r->sr.n_prompt - 1];
    r->id.kind = kind;
    r->id.created = (long long)time(NULL);
    r->id.model = cfg->model_name;
    snprintf(r->id.id, sizeof r->id.id, "%s-%016llx", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)clock_seed(r));
    if (!sched_submit(cfg->sched, &r->sr)) {
        api_fail(e, 503, NULL, "shutting_down", "the server is shutting down");
        goto fail;
    }
    r->submitted = true;
    *out = r;
    return true;
fail:
    reply_free(r);
    return false;
}

bool reply_streams(const reply *r) { return r->req.stream; }

/* Takes the next tokens into the stop filter; returns the scheduler's finish
 * state, SCHED_STOP_TOKEN when a stop string ended the text (the request is
 * then cancelled), SCHED_FAILED when out of memory. */
static sched_finish advance(reply *r, int timeout_ms) {
    lc_token ids[TOKENS_PER_WAIT];
    int n;
    sched_finish f =
        sched_wait(r->cfg->sched, &r->sr, r->seen, ids, TOKENS_PER_WAIT, &n, timeout_ms);
    r->seen += n;
    for (int i = 0; i < n; i++) {
        char buf[LC_DETOKENIZE_BUF];
        size_t len = lc_detokenize(r->cfg->tok, &r->dt, ids[i], buf, sizeof buf);
        if (!stop_filter_push(&r->sf, buf, len)) {
            sched_cancel(r->cfg->sched, &r->sr); /* after it, the scheduler never writes r->sr */
            snprintf(r->sr.error, sizeof r->sr.error, "out of memory for the reply");
            return SCHED_FAILED;
        }
        if (r->sf.hit) {
            r->seen -= n - 1 - i; /* usage counts the tokens up to the stop string */
            sched_cancel(r->cfg->sched, &r->sr);
            return SCHED_STOP_TOKEN;
        }
    }
    return f;
}

static const char *finish_reason(sched_finish f) { return f == SCHED_LENGTH ? "length" : "stop"; }

char *reply_collect(reply *r, bool (*alive)(void *conn), void *conn, int *status) {
    sched_finish f;
    while ((f = advance(r, ALIVE_CHECK_MS)) == SCHED_RUNNING)
        if (!alive(conn)) {
            sched_cancel(r->cfg->sched, &r->sr);
            return NULL;
        }
    if (f == SCHED_FAILED || f == SCHED_CANCELLED) {
        api_error e;
        api_fail(&e, f == SCHED_FAILED ? 500 : 503, NULL, NULL, "%s",
                 r->sr.error[0] ? r->sr.error : "the request was cancelled");
        *status = e.status;
        return api_error_json(&e);
    }
    const char *text;
    size_t len = stop_filter_take(&r->sf, true, &text);
    *status = 200;
    return api_response_json(&r->id, text, len, finish_reason(f), r->sr.n_prompt, r->seen);
}

/* Appends "data: JSON\n\n" (or "data: [DONE]\n\n" for NULL json); false when out of memory. */
static bool put_event(reply *r, char *json, bool done) {
    if (!json && !done) return false;
    const char *payload = done ? "[DONE]" : json;
    size_t need = strlen(payload) + 8;
    char *bigger = realloc(r->pending, r->pend_len + need + 1);
    if (!bigger) {
        free(json);
        return false;
    }
    r->pending = bigger;
    r->pend_len += (size_t)snprintf(r->pending + r->pend_len, need + 1, "data: %s\n\n", payload);
    free(json);
    return true;
}

/* Produces the next SSE events into `pending` (waiting for tokens). */
static bool refill(reply *r) {
    free(r->pending);
    r->pending = NULL;
    r->pend_len = r->pend_off = 0;
    sched_finish f = advance(r, -1);
    const char *text;
    size_t len = stop_filter_take(&r->sf, f != SCHED_RUNNING, &text);
    if (len > 0 && !put_event(r, api_chunk_json(&r->id, text, len, false, NULL), false))
        return false;
    if (f == SCHED_RUNNING) return true;
    if (f == SCHED_FAILED || f == SCHED_CANCELLED) {
        api_error e;
        api_fail(&e, 500, NULL, NULL, "%s",
                 r->sr.error[0] ? r->sr.error : "the request was cancelled");
        if (!put_event(r, api_error_json(&e), false)) return false;
    } else if (!put_event(r, api_chunk_json(&r->id, "", 0, false, finish_reason(f)), false) ||
               (r->req.include_usage &&
                !put_event(r, api_usage_chunk_json(&r->id, r->sr.n_prompt, r->seen), false))) {
        return false;
    }
    r->ended = true;
    return put_event(r, NULL, true);
}

ssize_t reply_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    reply *r = cls;
    if (pos == 0 && r->pend_len == 0 && r->id.kind == API_CHAT) {
        if (!put_event(r, api_chunk_json(&r->id, "", 0, true, NULL), false))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    while (r->pend_off == r->pend_len) {
        if (r->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!refill(r)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = r->pend_len - r->pend_off;
    if (n > max) n = max;
    memcpy(buf, r->pending + r->pend_off, n);
    r->pend_off += n;
    return (ssize_t)n;
}

void reply_free(void *cls) {
    reply *r = cls;
    if (!r) return;
    if (r->submitted) sched_cancel(r->cfg->sched, &r->sr);
    sched_request_free(&r->sr);
    api_request_free(&r->req);
    stop_filter_free(&r->sf);
    free(r->pending);
    free(r);
}
