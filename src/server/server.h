/* llamac serve: what the HTTP side needs to know (the front end fills it in)
 * and the calls that start and stop it. */
#ifndef LLAMAC_SERVER_SERVER_H
#define LLAMAC_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "llamac.h"
#include "server/api.h"
#include "server/scheduler.h"

typedef struct server_config {
    const char *host; /* IPv4 address to bind, "127.0.0.1" by default */
    int port;
    const char *api_key; /* NULL: no Authorization needed */
    const char *model_name;
    size_t max_body; /* bytes; larger bodies get 413 */
    int max_connections;
    const lc_tokenizer *tok;
    int n_ctx;
    lc_chat_template tpl; /* LC_CHAT_NONE: chat completions are refused */
    lc_chat_marker_ids marks;
    lc_token chat_stop[LC_MAX_STOP_TOKENS]; /* what ends a chat reply */
    int n_chat_stop;
    lc_token text_stop[LC_MAX_STOP_TOKENS]; /* what ends a completion */
    int n_text_stop;
    scheduler *sched;
} server_config;

/* ---- one completion request, from body to answer (reply.c) ---- */

typedef struct reply reply;

/* Validates the body, renders or encodes the prompt and queues it. */
bool reply_start(const server_config *cfg, api_kind kind, const char *body, size_t len, reply **out,
                 api_error *e);
bool reply_streams(const reply *r);
/* Waits for the whole answer; the JSON body (malloc'd) and its status. While
 * it waits, `alive(conn)` is asked now and then whether the client is still
 * there: when not, the request is cancelled and NULL returned. */
char *reply_collect(reply *r, bool (*alive)(void *conn), void *conn, int *status);
/* libmicrohttpd's content reader for a streamed answer (Server-Sent Events). */
ssize_t reply_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
/* Cancels the request if it still runs and frees it (also a content-reader free callback). */
void reply_free(void *r);

/* ---- the HTTP daemon (http.c) ---- */

typedef struct http_server http_server;

lc_status http_start(const server_config *cfg, http_server **out, lc_error *err);
/* The port actually bound (the configured one, or the kernel's pick for 0). */
int http_port(const http_server *h);
/* Stops accepting, waits for every connection thread, frees. */
/* Waits until no connection is open, or timeout_ms: after sched_stop, lets
 * each in-flight stream write its error event and [DONE] before http_stop
 * closes the sockets under it. */
void http_drain(http_server *h, int timeout_ms);
void http_stop(http_server *h);

#endif
