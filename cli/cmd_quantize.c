/* llamac quantize: write a model as a GGUF file in another weight type. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"

typedef struct progress_state {
    bool tty;
    int n_notes;
} progress_state;

/* A bar that rewrites itself on a terminal; notes on lines of their own. */
static void show_progress(void *user, const lc_quantize_progress *p) {
    progress_state *s = user;
    if (p->note) {
        fprintf(stderr, "%sllamac quantize: note: %s\n", s->tty ? "\r\033[K" : "", p->note);
        s->n_notes++;
    }
    if (!s->tty) return;
    const int width = 30;
    int filled = p->mb_total > 0 ? (int)(width * p->mb_done / p->mb_total) : width;
    fprintf(stderr, "\r[%.*s%*s] tensor %d/%d, %.1f/%.1f MB  %-28.28s", filled,
            "##############################", width - filled, "", p->tensor, p->n_tensors,
            p->mb_done, p->mb_total, p->name);
    if (p->tensor == p->n_tensors) fputc('\n', stderr);
}

int cmd_quantize(int argc, char **argv) {
    static const command_info info = {
        "quantize",
        "Write a model (llama2.c checkpoint + tokenizer, GGUF, or Hugging Face folder) as a GGUF v3 "
        "file that carries its tokenizer and loads in llama.cpp.",
        "-m IN [-z tokenizer.bin] -o OUT.gguf --type f32|f16|bf16|q8_0|q4_0 [--name NAME]",
        "Norms stay f32. With q8_0/q4_0 a matrix whose column count is not a multiple of 32 stays\n"
        "f16 (noted); with q4_0 the embedding and classifier are q8_0."};
    lc_quantize_params qp = {0};
    arg_spec specs[] = {
        {"model", 'm', ARG_STRING, &qp.input, "FILE",
         "model to convert (llama2.c .bin, GGUF or a Hugging Face folder)", NULL},
        {"tokenizer", 'z', ARG_STRING, &qp.tokenizer, "FILE",
         "tokenizer.bin (needed for llama2.c checkpoints); default: the model's own", NULL},
        {"out", 'o', ARG_STRING, &qp.output, "FILE", "GGUF file to write", NULL},
        {"type", 0, ARG_STRING, &qp.type, "T", "weight type: f32, f16, bf16, q8_0 or q4_0", NULL},
        {"name", 0, ARG_STRING, &qp.name, "NAME", "general.name (default: the input's file name)",
         NULL},
        {0},
    };
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (!qp.input || !qp.output || !qp.type) {
        fprintf(stderr, "llamac quantize: need -m, -o and --type (see llamac quantize --help)\n");
        return 2;
    }
    progress_state state = {isatty(STDERR_FILENO), 0};
    lc_error err;
    double t0 = lc_time_seconds();
    if (lc_quantize(&qp, show_progress, &state, &err)) {
        if (state.tty) fputc('\n', stderr);
        return report(NULL, &err);
    }
    fprintf(stderr, "llamac quantize: wrote %s (%s) in %.1f s\n", qp.output, qp.type,
            lc_time_seconds() - t0);
    return 0;
}
