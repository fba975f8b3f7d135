/* llamac serve's request validation and stop strings (src/server/api.c):
 * what a client sends is checked field by field, and a stop string split
 * across tokens is neither streamed out nor missed. */
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "tests.h"

static bool parse(api_kind kind, const char *body, api_request *r, api_error *e) {
    return api_parse(kind, body, strlen(body), 256, r, e);
}

void test_server_parse_requests(test_ctx *t) {
    api_request r;
    api_error e;
    CHECK(t,
          parse(API_CHAT,
                "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                "{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":10,\"temperature\":0,"
                "\"top_p\":0.5,\"top_k\":3,\"seed\":7,\"stop\":[\"a\",\"bc\"],\"stream\":true}",
                &r, &e),
          "%s", e.message);
    CHECK(t,
          r.n_msgs == 2 && strcmp(r.msgs[1].content, "Hi") == 0 && r.max_tokens == 10 &&
              r.sampling.temperature == 0 && r.sampling.top_p == 0.5f && r.sampling.top_k == 3 &&
              r.seed_given && r.sampling.seed == 7 && r.n_stop == 2 &&
              strcmp(r.stop[1], "bc") == 0 && r.stream,
          "chat fields read wrongly");
    api_request_free(&r);
    CHECK(t, parse(API_COMPLETION, "{\"prompt\":[\"The king\"],\"stop\":\"x\",\"n\":1}", &r, &e),
          "%s", e.message);
    CHECK(t,
          strcmp(r.prompt, "The king") == 0 && r.n_stop == 1 && r.max_tokens == -1 && !r.stream &&
              r.sampling.temperature == 1.0f && !r.include_usage && !r.ignore_eos,
          "completion defaults read wrongly");
    api_request_free(&r);
    CHECK(t,
          parse(API_COMPLETION,
                "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                "\"ignore_eos\":true}",
                &r, &e),
          "%s", e.message);
    CHECK(t, r.stream && r.include_usage && r.ignore_eos, "stream_options/ignore_eos read wrongly");
    api_request_free(&r);

    static const struct {
        api_kind kind;
        const char *body, *param;
    } bad[] = {
        {API_CHAT, "{\"messages\":[}", NULL},
        {API_CHAT, "", NULL},
        {API_CHAT, "[]", NULL},
        {API_CHAT, "{}", "messages"},
        {API_CHAT, "{\"messages\":[]}", "messages"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages"},
        {API_CHAT, "{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", "messages"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":257}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"9\"}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-1}", "temperature"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":0}", "top_p"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"top_k\":-1}", "top_k"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":-1}", "seed"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"n\":2}", "n"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "stream"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[1]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}",
         "stream_options"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":[]}",
         "stream_options"},
        {API_COMPLETION,
         "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
         "include_usage"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"ignore_eos\":\"yes\"}", "ignore_eos"},
        {API_COMPLETION, "{\"prompt\":7}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = parse(bad[i].kind, bad[i].body, &r, &e);
        CHECK(t,
              !ok && e.status == 400 &&
                  (bad[i].param ? e.param && !strcmp(e.param, bad[i].param) : !e.param),
              "%s: accepted, or the wrong status/param (%d, %s)", bad[i].body, e.status,
              e.param ? e.param : "null");
        api_request_free(&r);
    }
    api_fail(&e, 401, NULL, "invalid_api_key", "no key");
    char *json = api_error_json(&e);
    CHECK(t,
          json && strcmp(json, "{\"error\":{\"message\":\"no key\",\"type\":"
                               "\"authentication_error\",\"param\":null,\"code\":"
                               "\"invalid_api_key\"}}") == 0,
          "error object: %s", json ? json : "NULL");
    free(json);
}

/* Feeds `pieces` through a filter and returns what it hands out, in order. */
static void run_filter(const char *const *stop, int n_stop, const char *const *pieces, size_t n,
                       char *out, bool *hit) {
    stop_filter f;
    stop_filter_init(&f, stop, n_stop);
    out[0] = '\0';
    const char *s;
    size_t len;
    for (size_t i = 0; i < n && !f.hit; i++) {
        stop_filter_push(&f, pieces[i], strlen(pieces[i]));
        len = stop_filter_take(&f, false, &s);
        strncat(out, s, len);
    }
    len = stop_filter_take(&f, true, &s);
    strncat(out, s, len);
    *hit = f.hit;
    stop_filter_free(&f);
}

void test_server_stop_strings(test_ctx *t) {
    char out[256];
    bool hit;
    const char *stop[] = {"END", "\n\n"};
    const char *split[] = {"Hello E", "N", "D more"};
    run_filter(stop, 2, split, 3, out, &hit);
    CHECK(t, hit && strcmp(out, "Hello ") == 0, "split stop string: '%s'", out);
    const char *almost[] = {"an E", "N", "d"};
    run_filter(stop, 2, almost, 3, out, &hit);
    CHECK(t, !hit && strcmp(out, "an ENd") == 0, "held-back prefix released: '%s'", out);
    const char *first[] = {"a\n", "\nb END"};
    run_filter(stop, 2, first, 2, out, &hit);
    CHECK(t, hit && strcmp(out, "a") == 0, "the earliest stop string wins: '%s'", out);
    run_filter(NULL, 0, split, 3, out, &hit);
    CHECK(t, !hit && strcmp(out, "Hello END more") == 0, "no stop strings: '%s'", out);

    /* Nothing after a held-back prefix leaks before the stop string is known. */
    stop_filter f;
    stop_filter_init(&f, stop, 1);
    const char *s;
    stop_filter_push(&f, "xxEN", 4);
    size_t n = stop_filter_take(&f, false, &s);
    CHECK(t, n == 2 && memcmp(s, "xx", 2) == 0, "'EN' is held back (%zu bytes out)", n);
    stop_filter_free(&f);
}
