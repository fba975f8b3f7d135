/* llamac generate: print the prompt, then stream the continuation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "sampling.h"

int cmd_generate(int argc, char **argv) {
    static const command_info info = {
        "generate",
        "Continue a prompt: prints the prompt, then the generated text as it is "
        "produced; statistics go to stderr.",
        "[-m model.bin] [-z tokenizer.bin] [-p PROMPT | -f FILE] [-n N] [-t T] [options]",
        "Generation stops at the end-of-text token (and at BOS, which TinyStories models emit\n"
        "between stories), after -n new tokens, or when the context is full."};
    common_opts co;
    sampling_opts so;
    common_defaults(&co);
    sampling_defaults(&so);
    const char *prompt = NULL, *prompt_file = NULL;
    int max_new = 256;
    bool no_bos = false, quiet = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] =
        (arg_spec){"prompt", 'p', ARG_STRING, &prompt, "TEXT", "the prompt (default: empty)"};
    specs[n++] = (arg_spec){"file",       'f',    ARG_STRING,
                            &prompt_file, "FILE", "read the prompt from a file (- for stdin)"};
    specs[n++] = (arg_spec){"n-predict",
                            'n',
                            ARG_INT,
                            &max_new,
                            "N",
                            "new tokens to generate; -1: until the end or a full context "
                            "(default: 256)"};
    n = sampling_specs(&so, specs, n);
    specs[n++] =
        (arg_spec){"no-bos", 0, ARG_FLAG, &no_bos, NULL, "do not start with the BOS token"};
    specs[n++] = (arg_spec){"quiet", 'q', ARG_FLAG, &quiet, NULL, "no statistics on stderr"};
    n = common_engine_specs(&co, specs, n);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (prompt && prompt_file) {
        fprintf(stderr, "llamac generate: give -p or -f, not both\n");
        return 2;
    }
    if (max_new < -1) {
        fprintf(stderr, "llamac generate: -n %d: must be -1 or more\n", max_new);
        return 2;
    }

    int rc = 1;
    lc_model *model = NULL;
    lc_tokenizer *tok = NULL;
    lc_engine *engine = NULL;
    lc_sampler *sampler = NULL;
    lc_token *ids = NULL;
    char *file_text = NULL;
    size_t text_len = prompt ? strlen(prompt) : 0;
    if (prompt_file && !(file_text = read_text_file(prompt_file, &text_len))) {
        fprintf(stderr, "llamac: -f %s: cannot read the prompt file: %s\n", prompt_file,
                strerror(errno));
        goto done;
    }
    const char *text = file_text ? file_text : prompt ? prompt : "";
    if (open_model(&co, &model) || open_tokenizer(&co, model, &tok)) goto done;
    lc_error err;
    size_t n_ids;
    if (lc_tokenizer_encode(tok, text, text_len, !no_bos, false, &ids, &n_ids, &err)) {
        report(prompt_file ? "-f" : "-p", &err);
        goto done;
    }
    if (n_ids == 0) {
        fprintf(stderr, "llamac: the prompt is empty and --no-bos leaves nothing to start from\n");
        goto done;
    }
    if (open_engine(&co, model, 1, &engine)) goto done;
    if (n_ids > (size_t)lc_engine_n_ctx(engine)) {
        fprintf(stderr,
                "llamac: the prompt has %zu tokens but the context holds %d; shorten it "
                "or raise --ctx\n",
                n_ids, lc_engine_n_ctx(engine));
        goto done;
    }
    if (open_sampler(&so, lc_model_config(model)->vocab_size, &sampler)) goto done;
    if (!quiet)
        fprintf(stderr, "llamac: %s (%s), %s, seed %llu\n", co.model_path, lc_model_format(model),
                lc_engine_describe(engine), (unsigned long long)so.params.seed);

    text_printer p;
    text_printer_init(&p, tok);
    for (size_t i = 0; i < n_ids; i++) text_printer_put(&p, ids[i]); /* echo the prompt */
    lc_token stop[LC_MAX_STOP_TOKENS];
    lc_generate_params gp = {max_new, stop, generate_stop_tokens(model, tok, stop)};
    lc_generate_stats stats;
    if (lc_generate(engine, 0, ids, n_ids, &gp, sampler, text_printer_on_token, &p, &stats, &err)) {
        printf("\n");
        report(NULL, &err);
        goto done;
    }
    printf("\n");
    fflush(stdout);
    if (stats.stop == LC_STOP_CONTEXT)
        fprintf(stderr, "llamac: context full (%d positions); generation stopped\n",
                lc_engine_n_ctx(engine));
    if (!quiet) print_generation_stats(stderr, model, &stats);
    rc = 0;
done:
    free(ids);
    free(file_text);
    lc_sampler_free(sampler);
    lc_engine_free(engine);
    lc_tokenizer_free(tok);
    lc_model_free(model);
    return rc;
}
