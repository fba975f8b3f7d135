/* llamac serve: an OpenAI-compatible HTTP server (src/server/). This file
 * loads the model, fills in the server's configuration, and waits for
 * SIGINT or SIGTERM to shut down cleanly. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "server/server.h"

/* The last path component of the model, as /v1/models names it. */
static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *end = path + n, *p = end;
    while (p > path && p[-1] != '/') p--;
    return p;
}

int cmd_serve(int argc, char **argv) {
    static const command_info info = {
        "serve",
        "Serve the model over HTTP with OpenAI's API: /v1/chat/completions, /v1/completions "
        "(streamed with \"stream\": true), /v1/models and /health, and a chat page at /.",
        "[-m MODEL] [-z TOKENIZER] [--host ADDR] [--port N] [--parallel N] [--api-key KEY] "
        "[options]",
        "Up to --parallel requests generate together, each in its own KV-cache slot, in one "
        "batched forward per step; more wait in a queue. SIGINT or SIGTERM end in-flight "
        "requests with an error and exit 0."};
    common_opts co;
    common_defaults(&co);
    const char *host = "127.0.0.1", *api_key = NULL, *template_name = NULL;
    int port = 8080, parallel = 4, max_body_kb = 1024;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] = (arg_spec){
        "host", 0,      ARG_STRING,
        &host,  "ADDR", "IPv4 or IPv6 address to listen on, e.g. ::1 (default: 127.0.0.1)"};
    specs[n++] =
        (arg_spec){"port", 0, ARG_INT, &port, "N", "TCP port; 0 picks a free one (default: 8080)"};
    specs[n++] = (arg_spec){
        "parallel", 0,   ARG_INT,
        &parallel,  "N", "sequences generated at once, one KV-cache slot each (default: 4)"};
    specs[n++] = (arg_spec){"api-key", 0,     ARG_STRING,
                            &api_key,  "KEY", "require Authorization: Bearer KEY (default: none)"};
    specs[n++] = (arg_spec){"chat-template", 0,      ARG_STRING,
                            &template_name,  "NAME", "llama2 or llama3 (default: the model's)"};
    specs[n++] = (arg_spec){
        "max-body",   0,    ARG_INT,
        &max_body_kb, "KB", "largest request body in KiB; larger get 413 (default: 1024)"};
    n = common_engine_specs(&co, specs, n);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (port < 0 || port > 65535 || parallel < 1 || parallel > 256 || max_body_kb < 1 ||
        max_body_kb > 1 << 20) {
        fprintf(stderr, "llamac serve: --port must be 0 to 65535, --parallel 1 to 256, "
                        "--max-body 1 to 1048576\n");
        return 2;
    }
    if (api_key && !*api_key) api_key = NULL;

    /* Signals go to sigwait below, never to a worker thread: block them
     * before any thread starts, so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a vanished client is an error return, not a death */

    int rc = 1;
    lc_model *model = NULL;
    lc_tokenizer *tok = NULL;
    lc_engine *engine = NULL;
    scheduler *sched = NULL;
    http_server *http = NULL;
    server_config cfg = {.host = host,
                         .port = port,
                         .api_key = api_key,
                         .max_body = (size_t)max_body_kb * 1024,
                         .max_connections = 4 * parallel + 64};
    if (open_model(&co, &model) || open_tokenizer(&co, model, &tok) ||
        open_engine(&co, model, parallel, &engine))
        goto done;
    lc_error err;
    cfg.model_name = base_name(co.model_path);
    cfg.tok = tok;
    cfg.n_ctx = lc_engine_n_ctx(engine);
    if (template_name) {
        if (lc_chat_template_by_name(template_name, &cfg.tpl, &err)) {
            report("--chat-template", &err);
            goto done;
        }
    } else {
        cfg.tpl = lc_chat_template_detect(lc_model_chat_template(model), tok);
    }
    if (cfg.tpl != LC_CHAT_NONE) {
        if (lc_chat_markers(tok, cfg.tpl, &cfg.marks, &err)) {
            report("chat template", &err);
            goto done;
        }
        cfg.n_chat_stop = chat_stop_tokens(model, &cfg.marks, cfg.chat_stop);
    } else {
        fprintf(stderr, "llamac: the model's chat template is unknown: /v1/chat/completions "
                        "answers 400 (pass --chat-template)\n");
    }
    cfg.n_text_stop = generate_stop_tokens(model, tok, cfg.text_stop);
    if (sched_create(engine, &sched, &err)) {
        report(NULL, &err);
        goto done;
    }
    cfg.sched = sched;
    if (http_start(&cfg, &http, &err)) {
        report(NULL, &err);
        goto done;
    }
    /* An IPv6 address goes in brackets in a URL (RFC 3986), so the line can be pasted. */
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "llamac: %s on %s, %d slots of %d positions; listening on http://%s%s%s:%d\n",
            cfg.model_name, lc_engine_describe(engine), parallel, cfg.n_ctx, v6 ? "[" : "", host,
            v6 ? "]" : "", http_port(http));
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "llamac: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* In-flight requests end first (with an error), so no connection thread
     * is left waiting on the scheduler when the daemon joins them; their
     * streams get up to 2 s to send that error and [DONE] (an idle keep-alive
     * connection only makes the wait run out). */
    sched_stop(sched);
    http_drain(http, 2000);
    http_stop(http);
    rc = 0;
done:
    sched_free(sched);
    lc_engine_free(engine);
    lc_tokenizer_free(tok);
    lc_model_free(model);
    return rc;
}
