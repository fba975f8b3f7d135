/* llamac chat: a conversation with a chat model. Each turn is rendered with
 * the model's chat template (src/engine/chat.c: Llama 2's [INST] or Llama 3's
 * headers) and appended to the same KV-cache sequence, so earlier turns are
 * never recomputed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "sampling.h"

/* Reads one line from stdin without its newline (or CRLF); NULL at end of
 * input, with *oom set when memory ran out instead. */
static char *read_line(bool *oom) {
    *oom = false;
    size_t cap = 256, n = 0;
    char *line = malloc(cap);
    int ch;
    while (line && (ch = getchar()) != EOF && ch != '\n') {
        if (n + 1 == cap) {
            char *bigger = realloc(line, cap *= 2);
            if (!bigger) {
                free(line);
                *oom = true;
                return NULL;
            }
            line = bigger;
        }
        line[n++] = (char)ch;
    }
    if (!line) {
        *oom = true;
        return NULL;
    }
    if (ch == EOF && n == 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\r') n--;
    line[n] = '\0';
    return line;
}

int cmd_chat(int argc, char **argv) {
    static const command_info info = {
        "chat",
        "Chat with a chat model: each line on stdin is a user turn; the reply streams to "
        "stdout. The conversation stays in the KV cache across turns.",
        "[-m MODEL] [-z TOKENIZER] [--system TEXT] [-p FIRST_MESSAGE] [--chat-template NAME] "
        "[options]",
        "The template is the model's own (its chat_template, else the markers its vocabulary "
        "has); --chat-template llama2|llama3 overrides it. A reply ends at the template's end "
        "of turn or at any end-of-sequence id of the model. The chat ends at the end of input, "
        "or when the next turn no longer fits the context."};
    common_opts co;
    sampling_opts so;
    common_defaults(&co);
    sampling_defaults(&so);
    const char *system = NULL, *first_message = NULL, *template_name = NULL;
    int max_reply = -1;
    bool verbose = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] = (arg_spec){"system", 0, ARG_STRING, &system, "TEXT", "system prompt"};
    specs[n++] = (arg_spec){"chat-template", 0, ARG_STRING, &template_name, "NAME",
                            "llama2 or llama3 (default: the model's)"};
    specs[n++] =
        (arg_spec){"prompt", 'p', ARG_STRING, &first_message, "TEXT", "first user message"};
    specs[n++] = (arg_spec){
        "n-predict", 'n', ARG_INT,
        &max_reply,  "N", "most tokens per reply; -1: until the end of the reply (default)"};
    specs[n++] = (arg_spec){
        "verbose", 'v',  ARG_FLAG,
        &verbose,  NULL, "after each reply, print its speed and the context used to stderr"};
    n = sampling_specs(&so, specs, n);
    n = common_engine_specs(&co, specs, n);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (max_reply < -1) {
        fprintf(stderr, "llamac chat: -n %d: must be -1 or more\n", max_reply);
        return 2;
    }
    int rc = 1;
    lc_model *model = NULL;
    lc_tokenizer *tok = NULL;
    lc_engine *engine = NULL;
    lc_sampler *sampler = NULL;
    if (open_model(&co, &model) || open_tokenizer(&co, model, &tok) ||
        open_engine(&co, model, 1, &engine) ||
        open_sampler(&so, lc_model_config(model)->vocab_size, &sampler))
        goto done;
    lc_error err;
    lc_chat_template tpl;
    if (template_name ? lc_chat_template_by_name(template_name, &tpl, &err) != LC_OK
                      : (tpl = lc_chat_template_detect(lc_model_chat_template(model), tok)) ==
                            LC_CHAT_NONE) {
        if (template_name) report("--chat-template", &err);
        else
            fprintf(stderr, "llamac: the model's chat template is not one llamac knows; pass "
                            "--chat-template llama2 or llama3\n");
        goto done;
    }
    lc_chat_marker_ids marks;
    if (lc_chat_markers(tok, tpl, &marks, &err)) {
        report("chat", &err);
        goto done;
    }
    lc_token stop[LC_MAX_STOP_TOKENS];
    const int n_stop = chat_stop_tokens(model, &marks, stop);
    const bool interactive = isatty(STDIN_FILENO);
    const int n_ctx = lc_engine_n_ctx(engine);
    /* Tokens that close the previous reply and are not in the cache yet: its
     * last sampled token when a -n limit cut it off, then the template's end
     * of reply (whatever stop token the model chose), so the template holds. */
    lc_token carry[2];
    int n_carry = 0;
    for (int turn = 0;; turn++) {
        if (interactive) fprintf(stderr, "> ");
        bool oom = false;
        char *line = turn == 0 && first_message ? strdup(first_message) : read_line(&oom);
        if (!line) {
            if (oom || (turn == 0 && first_message)) {
                fprintf(stderr, "llamac: out of memory reading the next message\n");
                goto done;
            }
            break;
        }
        if (turn == 0 && first_message && interactive) fprintf(stderr, "%s\n", first_message);
        const lc_chat_message msgs[2] = {{"system", system ? system : ""}, {"user", line}};
        const bool with_system = turn == 0 && system && *system;
        lc_token *ids = NULL;
        size_t n_ids = 0;
        lc_status st = lc_chat_render(tok, tpl, msgs + !with_system, 1 + with_system, turn == 0,
                                      true, &ids, &n_ids, &err);
        free(line);
        if (st == LC_ERR_NOMEM) {
            report("chat", &err);
            goto done;
        }
        if (st) { /* e.g. invalid UTF-8: this message is dropped, the chat goes on */
            report("message skipped", &err);
            continue;
        }
        size_t n_turn = (size_t)n_carry + n_ids;
        lc_token *turn_ids = malloc(n_turn * sizeof *turn_ids);
        if (!turn_ids) {
            free(ids);
            fprintf(stderr, "llamac: out of memory for the next message\n");
            goto done;
        }
        memcpy(turn_ids, carry, (size_t)n_carry * sizeof *carry);
        memcpy(turn_ids + n_carry, ids, n_ids * sizeof *ids);
        free(ids);
        int used = lc_engine_seq_pos(engine, 0);
        if (n_turn >= (size_t)(n_ctx - used)) {
            fprintf(stderr,
                    "llamac: context full: this message needs %zu positions and %d of %d "
                    "are left; the chat ends here\n",
                    n_turn, n_ctx - used, n_ctx);
            free(turn_ids);
            rc = 0;
            goto done;
        }
        text_printer p;
        text_printer_init(&p, tok);
        p.dt.prev = lc_tokenizer_bos(tok); /* a reply starts like a fresh text: no leading space */
        lc_generate_params gp = {max_reply, stop, n_stop};
        lc_generate_stats stats;
        st = lc_generate(engine, 0, turn_ids, n_turn, &gp, sampler, text_printer_on_token, &p,
                         &stats, &err);
        free(turn_ids);
        printf("\n");
        fflush(stdout);
        if (st) {
            report("chat", &err);
            goto done;
        }
        n_carry = 0;
        if (stats.stop == LC_STOP_LENGTH && stats.pending >= 0) carry[n_carry++] = stats.pending;
        carry[n_carry++] = marks.end_of_reply;
        if (verbose)
            fprintf(stderr,
                    "llamac: turn %d: %d prompt + %d reply tokens, %.1f tok/s; context %d/%d "
                    "used\n",
                    turn + 1, stats.n_prompt, stats.n_generated,
                    stats.decode_seconds > 0 ? stats.n_decoded / stats.decode_seconds : 0.0,
                    lc_engine_seq_pos(engine, 0), n_ctx);
        if (stats.stop == LC_STOP_CONTEXT) {
            fprintf(stderr,
                    "llamac: context full (%d positions) in the middle of a reply; the chat "
                    "ends here\n",
                    n_ctx);
            rc = 0;
            goto done;
        }
    }
    rc = 0;
done:
    lc_sampler_free(sampler);
    lc_engine_free(engine);
    lc_tokenizer_free(tok);
    lc_model_free(model);
    return rc;
}
