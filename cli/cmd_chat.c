/* llamac chat: a conversation with a Llama 2 chat model. Each turn is
 * rendered with the Llama 2 template and appended to the same KV-cache
 * sequence, so earlier turns are never recomputed:
 *   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {reply}</s><s>[INST] {user} [/INST] ...
 */
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

/* Renders one user turn; the first carries the system prompt. */
static char *render_turn(const char *system, const char *user, bool first) {
    size_t len = strlen(user) + (system ? strlen(system) : 0) + 64;
    char *s = malloc(len);
    if (!s) return NULL;
    if (first && system && *system)
        snprintf(s, len, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]", system, user);
    else
        snprintf(s, len, "[INST] %s [/INST]", user);
    return s;
}

int cmd_chat(int argc, char **argv) {
    static const command_info info = {
        "chat",
        "Chat with a Llama 2 chat model: each line on stdin is a user turn; the reply "
        "streams to stdout. The conversation stays in the KV cache across turns.",
        "[-m model.bin] [-z tokenizer.bin] [--system TEXT] [-p FIRST_MESSAGE] [options]",
        "The chat ends at the end of input, or when the next turn no longer fits the context."};
    common_opts co;
    sampling_opts so;
    common_defaults(&co);
    sampling_defaults(&so);
    const char *system = NULL, *first_message = NULL;
    int max_reply = -1;
    bool verbose = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] = (arg_spec){"system", 0, ARG_STRING, &system, "TEXT", "system prompt"};
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
    const bool interactive = isatty(STDIN_FILENO);
    const int n_ctx = lc_engine_n_ctx(engine);
    const lc_token eos = lc_tokenizer_eos(tok);
    /* Tokens that close the previous reply and are not in the cache yet: its
     * final token, and EOS when a -n limit cut it off, so the template holds. */
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
        char *text = render_turn(system, line, turn == 0);
        free(line);
        lc_token *ids = NULL;
        size_t n_ids = 0;
        lc_error err;
        if (!text) {
            fprintf(stderr, "llamac: out of memory for the next message\n");
            goto done;
        }
        lc_status st =
            lc_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n_ids, &err);
        free(text);
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
        lc_generate_params gp = {max_reply, &eos, 1};
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
        if (stats.pending >= 0) carry[n_carry++] = stats.pending;
        if (stats.stop == LC_STOP_LENGTH) carry[n_carry++] = eos;
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
