/* The OpenAI-shaped request and response bodies of llamac serve: parsing
 * and validating what a client sent (everything from the network is checked
 * here, before it reaches the engine), and writing the JSON answers. No I/O. */
#ifndef LLAMAC_SERVER_API_H
#define LLAMAC_SERVER_API_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "llamac.h"

#define API_MAX_STOP     4   /* OpenAI's limit on `stop` strings */
#define API_MAX_STOP_LEN 256 /* bytes per stop string */
#define API_MAX_MESSAGES 1024

typedef enum api_kind { API_CHAT, API_COMPLETION } api_kind;

/* An error as the client sees it: the HTTP status and OpenAI's error object. */
typedef struct api_error {
    int status;        /* 400, 401, 404, 405, 413, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error" */
    const char *param; /* the field at fault, or NULL */
    const char *code;  /* a machine-readable code, or NULL */
    char message[256];
} api_error;

/* A validated request. Strings point into `root`, which it owns. */
typedef struct api_request {
    api_kind kind;
    cJSON *root;
    lc_chat_message *msgs; /* (n_msgs) chat only */
    size_t n_msgs;
    const char *prompt; /* completions only */
    int max_tokens;     /* -1: until a stop token or the context is full */
    lc_sampler_params sampling;
    bool seed_given;
    bool stream;
    bool include_usage; /* stream_options.include_usage: a last chunk with the counts */
    bool ignore_eos;    /* an extension (vLLM, llama.cpp): stop tokens do not end the text */
    const char *stop[API_MAX_STOP];
    int n_stop;
} api_request;

/* Parses and validates `len` bytes of body; max_tokens above `max_tokens_cap`
 * is an error. Returns false with *e filled on any problem. */
bool api_parse(api_kind kind, const char *body, size_t len, int max_tokens_cap, api_request *req,
               api_error *e);
void api_request_free(api_request *req);

/* Fills *e (printf-style message) and returns false, for one-line error paths. */
bool api_fail(api_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* {"error": {"message", "type", "param", "code"}}, malloc'd (NULL when out of memory). */
char *api_error_json(const api_error *e);

/* The identity of one answer, shared by all of its chunks. */
typedef struct api_reply {
    api_kind kind;
    char id[48];
    long long created;
    const char *model;
} api_reply;

/* The whole non-streaming answer; `finish` is "stop" or "length". */
char *api_response_json(const api_reply *r, const char *text, size_t len, const char *finish,
                        int prompt_tokens, int completion_tokens);
/* One streamed chunk: `text` (may be empty) and, on the last, `finish` (else NULL);
 * `first` adds the assistant role to a chat delta. */
char *api_chunk_json(const api_reply *r, const char *text, size_t len, bool first,
                     const char *finish);
/* The chunk stream_options.include_usage asks for: empty choices and the counts. */
char *api_usage_chunk_json(const api_reply *r, int prompt_tokens, int completion_tokens);

/* Holds back generated text that may be the start of a stop string, and finds
 * the first stop string. Text is kept whole (bounded by the context). */
typedef struct stop_filter {
    const char *const *stop;
    int n_stop;
    char *text;
    size_t len, cap;
    size_t emitted; /* bytes already handed out */
    bool hit;       /* a stop string was found: len was cut before it */
} stop_filter;

void stop_filter_init(stop_filter *f, const char *const *stop, int n_stop);
void stop_filter_free(stop_filter *f);
/* Appends text; false when out of memory. */
bool stop_filter_push(stop_filter *f, const char *s, size_t n);
/* The next bytes that are safe to hand out (all of them when `final`);
 * advances `emitted`. */
size_t stop_filter_take(stop_filter *f, bool final, const char **out);

#endif
