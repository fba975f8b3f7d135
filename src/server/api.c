#include "server/api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json_file.h"

bool api_fail(api_error *e, int status, const char *param, const char *code, const char *fmt, ...) {
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

/* A number field in [lo, hi], or absent/null (keeps *out). */
static bool get_number(const cJSON *root, const char *name, double lo, double hi, float *out,
                       api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return api_fail(e, 400, name, "invalid_value", "'%s' must be a number from %g to %g", name,
                        lo, hi);
    *out = (float)v->valuedouble;
    return true;
}

/* An integer field in [lo, hi], or absent/null (keeps *out, *given false). */
static bool get_int(const cJSON *root, const char *name, int64_t lo, int64_t hi, int64_t *out,
                    bool *given, api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (given) *given = false;
    if (!v || cJSON_IsNull(v)) return true;
    if (!json_int(v, lo, hi, out))
        return api_fail(e, 400, name, "invalid_value", "'%s' must be an integer from %lld to %lld",
                        name, (long long)lo, (long long)hi);
    if (given) *given = true;
    return true;
}

/* A boolean field, or absent/null (keeps *out). */
static bool get_bool(const cJSON *root, const char *name, bool *out, api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v))
        return api_fail(e, 400, name, "invalid_type", "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return true;
}

static bool get_stop(const cJSON *root, api_request *r, api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v)) return true;
    const cJSON *one = cJSON_IsString(v) ? v : NULL;
    if (!one && !cJSON_IsArray(v))
        return api_fail(e, 400, "stop", "invalid_type", "'stop' must be a string or a list");
    if (!one && cJSON_GetArraySize(v) > API_MAX_STOP)
        return api_fail(e, 400, "stop", "invalid_value", "'stop' holds at most %d strings",
                        API_MAX_STOP);
    const cJSON *s = one ? one : v->child;
    for (; s; s = one ? NULL : s->next) {
        if (!cJSON_IsString(s) || !s->valuestring[0] || strlen(s->valuestring) > API_MAX_STOP_LEN)
            return api_fail(e, 400, "stop", "invalid_value",
                            "each stop sequence must be a non-empty string of at most %d bytes",
                            API_MAX_STOP_LEN);
        r->stop[r->n_stop++] = s->valuestring;
    }
    return true;
}

static bool get_messages(const cJSON *root, api_request *r, api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!v) return api_fail(e, 400, "messages", "missing_field", "'messages' is required");
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 1 || n > API_MAX_MESSAGES)
        return api_fail(e, 400, "messages", "invalid_value",
                        "'messages' must be a list of 1 to %d messages", API_MAX_MESSAGES);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs) return api_fail(e, 500, NULL, NULL, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
            return api_fail(e, 400, "messages", "invalid_type",
                            "message %zu must be an object with string 'role' and 'content'",
                            r->n_msgs);
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
            strcmp(role->valuestring, "assistant"))
            return api_fail(e, 400, "messages", "invalid_value",
                            "message %zu: role must be system, user or assistant", r->n_msgs);
        r->msgs[r->n_msgs++] = (lc_chat_message){role->valuestring, content->valuestring};
    }
    return true;
}

bool api_parse(api_kind kind, const char *body, size_t len, int max_tokens_cap, api_request *r,
               api_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
    r->sampling = (lc_sampler_params){.temperature = 1.0f, .top_p = 1.0f, .top_k = 0};
    lc_error perr;
    if (json_parse_buffer(body, len, "request body", &r->root, &perr))
        return api_fail(e, 400, NULL, "invalid_json", "%s", perr.msg);
    const cJSON *root = r->root;
    if (!cJSON_IsObject(root))
        return api_fail(e, 400, NULL, "invalid_json", "the request body must be a JSON object");
    int64_t v;
    bool given;
    if (!get_int(root, "n", 1, 1, &v, NULL, e)) return false;
    if (!get_int(root, "max_tokens", 1, max_tokens_cap, &v, &given, e)) return false;
    if (given) r->max_tokens = (int)v;
    if (kind == API_CHAT && !given) {
        if (!get_int(root, "max_completion_tokens", 1, max_tokens_cap, &v, &given, e)) return false;
        if (given) r->max_tokens = (int)v;
    }
    if (!get_number(root, "temperature", 0, 2, &r->sampling.temperature, e) ||
        !get_number(root, "top_p", 0, 1, &r->sampling.top_p, e))
        return false;
    if (r->sampling.top_p <= 0)
        return api_fail(e, 400, "top_p", "invalid_value", "'top_p' must be above 0");
    if (!get_int(root, "top_k", 0, 1 << 30, &v, &given, e)) return false;
    if (given) r->sampling.top_k = (int)v;
    if (!get_int(root, "seed", 0, (int64_t)1 << 53, &v, &r->seed_given, e)) return false;
    if (r->seed_given) r->sampling.seed = (uint64_t)v;
    if (!get_bool(root, "stream", &r->stream, e)) return false;
    if (!get_bool(root, "ignore_eos", &r->ignore_eos, e)) return false;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return api_fail(e, 400, "stream_options", "invalid_type",
                            "'stream_options' must be an object");
        if (!r->stream)
            return api_fail(e, 400, "stream_options", "invalid_value",
                            "'stream_options' is only allowed with \"stream\": true");
        if (!get_bool(so, "include_usage", &r->include_usage, e)) return false;
    }
    if (!get_stop(root, r, e)) return false;
    if (kind == API_CHAT) return get_messages(root, r, e);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
    if (!cJSON_IsString(p))
        return api_fail(e, 400, "prompt", p ? "invalid_type" : "missing_field",
                        "'prompt' must be a string");
    r->prompt = p->valuestring;
    return true;
}

void api_request_free(api_request *r) {
    cJSON_Delete(r->root);
    free(r->msgs);
    memset(r, 0, sizeof *r);
}

/* cJSON_PrintUnformatted, then the tree freed. */
static char *finish_json(cJSON *root) {
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

static void add_string_or_null(cJSON *o, const char *name, const char *s) {
    if (s)
        cJSON_AddStringToObject(o, name, s);
    else
        cJSON_AddNullToObject(o, name);
}

char *api_error_json(const api_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    if (!err) return finish_json(root);
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "server_error");
    add_string_or_null(err, "param", e->param);
    add_string_or_null(err, "code", e->code);
    return finish_json(root);
}

/* `len` bytes as a JSON string (generated text holds no NUL: the
 * detokenizer emits no control bytes but tab and newline). */
static cJSON *text_item(const char *text, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    cJSON *s = cJSON_CreateString(copy);
    free(copy);
    return s;
}

static cJSON *reply_root(const api_reply *r, bool chunk) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "object",
                            r->kind == API_CHAT
                                ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)r->created);
    cJSON_AddStringToObject(root, "model", r->model);
    return root;
}

/* One entry of "choices": the text as a chat message/delta or a completion's text. */
static cJSON *choice(const api_reply *r, const char *text, size_t len, bool chunk, bool first,
                     const char *finish) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *t = text_item(text, len);
    if (r->kind == API_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (!chunk || first) cJSON_AddStringToObject(msg, "role", "assistant");
        if (t && (!chunk || len > 0))
            cJSON_AddItemToObject(msg, "content", t);
        else
            cJSON_Delete(t);
    } else {
        if (t) cJSON_AddItemToObject(c, "text", t);
        cJSON_AddNullToObject(c, "logprobs");
    }
    add_string_or_null(c, "finish_reason", finish);
    return c;
}

static void add_usage(cJSON *root, int prompt_tokens, int completion_tokens) {
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", prompt_tokens + completion_tokens);
}

char *api_response_json(const api_reply *r, const char *text, size_t len, const char *finish,
                        int prompt_tokens, int completion_tokens) {
    cJSON *root = reply_root(r, false);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON_AddItemToArray(choices, choice(r, text, len, false, true, finish));
    add_usage(root, prompt_tokens, completion_tokens);
    return finish_json(root);
}

char *api_usage_chunk_json(const api_reply *r, int prompt_tokens, int completion_tokens) {
    cJSON *root = reply_root(r, true);
    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, prompt_tokens, completion_tokens);
    return finish_json(root);
}

char *api_chunk_json(const api_reply *r, const char *text, size_t len, bool first,
                     const char *finish) {
    cJSON *root = reply_root(r, true);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON_AddItemToArray(choices, choice(r, text, len, true, first, finish));
    return finish_json(root);
}

void stop_filter_init(stop_filter *f, const char *const *stop, int n_stop) {
    memset(f, 0, sizeof *f);
    f->stop = stop;
    f->n_stop = n_stop;
}

void stop_filter_free(stop_filter *f) { free(f->text); }

bool stop_filter_push(stop_filter *f, const char *s, size_t n) {
    if (f->hit || n == 0) return true;
    if (f->len + n > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < f->len + n) cap *= 2;
        char *bigger = realloc(f->text, cap);
        if (!bigger) return false;
        f->text = bigger;
        f->cap = cap;
    }
    memcpy(f->text + f->len, s, n);
    /* Only a match that ends in the new bytes can be new. */
    size_t from = f->len > API_MAX_STOP_LEN ? f->len - API_MAX_STOP_LEN : 0;
    f->len += n;
    size_t best = f->len;
    for (int i = 0; i < f->n_stop; i++) {
        const char *at = memmem(f->text + from, f->len - from, f->stop[i], strlen(f->stop[i]));
        if (at && (size_t)(at - f->text) < best) best = (size_t)(at - f->text);
    }
    if (best < f->len) {
        f->hit = true;
        f->len = best;
    }
    return true;
}

/* How many trailing bytes could begin a stop string. */
static size_t held_back(const stop_filter *f) {
    size_t keep = 0;
    for (int i = 0; i < f->n_stop; i++) {
        size_t sl = strlen(f->stop[i]);
        for (size_t k = sl - 1 < f->len ? sl - 1 : f->len; k > keep; k--)
            if (memcmp(f->text + f->len - k, f->stop[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return keep;
}

size_t stop_filter_take(stop_filter *f, bool final, const char **out) {
    size_t end = final || f->hit ? f->len : f->len - held_back(f);
    if (end < f->emitted) end = f->emitted;
    *out = f->text ? f->text + f->emitted : "";
    size_t n = end - f->emitted;
    f->emitted = end;
    return n;
}
