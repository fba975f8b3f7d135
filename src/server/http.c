/* The libmicrohttpd glue: one thread per connection (a streamed answer blocks
 * in its content reader while the scheduler produces tokens), the body read
 * up to a size cap, then routing, the API key, and JSON answers. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/chat_page.h"
#include "server/server.h"

struct http_server {
    const server_config *cfg;
    struct MHD_Daemon *daemon;
    int port;
};

typedef enum route { R_NONE, R_PAGE, R_HEALTH, R_MODELS, R_CHAT, R_COMPLETIONS } route;

static const struct {
    const char *path, *method;
    route r;
} ROUTES[] = {
    {"/", "GET", R_PAGE},
    {"/health", "GET", R_HEALTH},
    {"/v1/models", "GET", R_MODELS},
    {"/v1/chat/completions", "POST", R_CHAT},
    {"/v1/completions", "POST", R_COMPLETIONS},
};

/* One request's state across libmicrohttpd's calls. */
typedef struct conn {
    char *body;
    size_t len, cap;
    bool too_big;
} conn;

static enum MHD_Result send_body(struct MHD_Connection *c, int status, char *json,
                                 const char *allow) {
    if (!json) return MHD_NO; /* out of memory: drop the connection */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const api_error *e, const char *allow) {
    return send_body(c, e->status, api_error_json(e), allow);
}

/* A constant-time comparison of the Authorization header with "Bearer KEY". */
static bool authorized(const server_config *cfg, struct MHD_Connection *c) {
    if (!cfg->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t hl = strlen(h), kl = strlen(cfg->api_key);
    unsigned diff = hl != kl;
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)cfg->api_key[i] ^ (unsigned char)h[i < hl ? i : 0];
    return diff == 0;
}

/* The chat page. It holds no secret, so it needs no key; its script asks
 * for one when the API does. The policy keeps it to this server. */
static enum MHD_Result page(struct MHD_Connection *c) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        chat_page_html_len, (void *)chat_page_html, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; connect-src 'self'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result health(const server_config *cfg, struct MHD_Connection *c) {
    sched_stats st;
    sched_load(cfg->sched, &st);
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"status\":\"ok\",\"slots_busy\":%d,\"slots_free\":%d,\"slots_total\":%d,"
             "\"queued\":%d,\"requests_done\":%lld,\"requests_cancelled\":%lld,"
             "\"steps\":%lld,\"tokens_sampled\":%lld,\"forward_s\":%.3f,\"sample_s\":%.3f}",
             st.busy, st.total - st.busy, st.total, st.queued, st.done, st.cancelled, st.steps,
             st.tokens, st.forward_s, st.sample_s);
    return send_body(c, 200, strdup(buf), NULL);
}

static enum MHD_Result models(const server_config *cfg, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", cfg->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "llamac");
    cJSON_AddItemToArray(data, m);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return send_body(c, 200, json, NULL);
}

/* Whether the peer of a connection whose handler is blocked still listens:
 * its socket reports hang-up once the client closes it. */
static bool client_alive(void *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return true;
    struct pollfd p = {.fd = info->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static enum MHD_Result completion(const server_config *cfg, struct MHD_Connection *c, api_kind kind,
                                  const conn *cn) {
    api_error e;
    reply *r;
    if (!reply_start(cfg, kind, cn->body ? cn->body : "", cn->len, &r, &e))
        return send_error(c, &e, NULL);
    if (!reply_streams(r)) {
        int status;
        char *json = reply_collect(r, client_alive, c, &status);
        reply_free(r);
        return json ? send_body(c, status, json, NULL) : MHD_NO; /* NULL: the client left */
    }
    /* libmicrohttpd owns r from here: reply_free runs when the stream ends
     * or the client goes away, which cancels the sequence. */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reply_stream_read, r, reply_free);
    if (!resp) {
        reply_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result dispatch(const server_config *cfg, struct MHD_Connection *c, const char *url,
                                const char *method, const conn *cn) {
    api_error e;
    route r = R_NONE;
    const char *allow = NULL;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        if (strcmp(url, ROUTES[i].path) == 0) {
            allow = ROUTES[i].method;
            if (strcmp(method, ROUTES[i].method) == 0) r = ROUTES[i].r;
        }
    if (r == R_NONE && allow) {
        api_fail(&e, 405, NULL, "method_not_allowed", "%s %s: use %s", method, url, allow);
        return send_error(c, &e, allow);
    }
    if (r == R_NONE) {
        api_fail(&e, 404, NULL, "not_found", "no endpoint %s %s", method, url);
        return send_error(c, &e, NULL);
    }
    if (r != R_HEALTH && r != R_PAGE && !authorized(cfg, c)) {
        api_fail(&e, 401, NULL, "invalid_api_key",
                 "a valid API key is required: Authorization: Bearer KEY");
        return send_error(c, &e, NULL);
    }
    if (cn->too_big) {
        api_fail(&e, 413, NULL, "request_too_large", "the request body is over %zu bytes",
                 cfg->max_body);
        return send_error(c, &e, NULL);
    }
    switch (r) {
    case R_PAGE: return page(c);
    case R_HEALTH: return health(cfg, c);
    case R_MODELS: return models(cfg, c);
    case R_CHAT: return completion(cfg, c, API_CHAT, cn);
    default: return completion(cfg, c, API_COMPLETION, cn);
    }
}

/* Called first with the headers, then with each piece of the body, then
 * once more with none: the answer is sent then, so a client is never cut
 * off while it still sends (bodies over the cap are read and dropped). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    const server_config *cfg = cls;
    conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (!cn->too_big && cn->len + n > cfg->max_body) {
            cn->too_big = true;
            free(cn->body);
            cn->body = NULL;
            cn->len = 0;
        }
        if (!cn->too_big) {
            if (cn->len + n + 1 > cn->cap) {
                size_t cap = cn->cap ? cn->cap : 4096;
                while (cap < cn->len + n + 1) cap *= 2;
                char *bigger = realloc(cn->body, cap);
                if (!bigger) return MHD_NO;
                cn->body = bigger;
                cn->cap = cap;
            }
            memcpy(cn->body + cn->len, upload_data, n);
            cn->len += n;
            cn->body[cn->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(cfg, c, url, method, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

lc_status http_start(const server_config *cfg, http_server **out, lc_error *err) {
    *out = NULL;
    /* An address literal, never a name: what to bind should not depend on DNS. */
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr = {.v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)}};
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
    if (inet_pton(AF_INET, cfg->host, &addr.v4.sin_addr) != 1) {
        addr.v6 =
            (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)cfg->port)};
        if (inet_pton(AF_INET6, cfg->host, &addr.v6.sin6_addr) != 1) {
            snprintf(err->msg, sizeof err->msg,
                     "--host %s: not an IPv4 or IPv6 address (such as 127.0.0.1 or ::1)",
                     cfg->host);
            return err->status = LC_ERR_ARG;
        }
        flags |= MHD_USE_IPv6;
    }
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return err->status = LC_ERR_NOMEM;
    }
    h->cfg = cfg;
    h->daemon =
        MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, (void *)cfg,
                         MHD_OPTION_SOCK_ADDR, &addr.sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                         NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        snprintf(err->msg, sizeof err->msg, "cannot listen on %s port %d (in use, or not allowed)",
                 cfg->host, cfg->port);
        return err->status = LC_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->port;
    *out = h;
    return LC_OK;
}

int http_port(const http_server *h) { return h->port; }

void http_drain(http_server *h, int timeout_ms) {
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int waited = 0; h && waited < timeout_ms; waited += 10) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0) return;
        nanosleep(&tick, NULL);
    }
}

void http_stop(http_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
