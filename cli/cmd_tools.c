/* Small tool subcommands: mkmodel, membw and info. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"

static void show_progress(void *user, double done) {
    int *last = user, pct = (int)(done * 100);
    if (pct != *last) fprintf(stderr, "\rllamac mkmodel: %3d%%", pct);
    *last = pct;
}

int cmd_mkmodel(int argc, char **argv) {
    static const command_info info = {
        "mkmodel",
        "Write a llama2.c checkpoint with random weights (normal(0, 0.02) matrices, "
        "unit norms) of a standard shape, for speed tests.",
        "--shape NAME --out FILE [--seed N] [--layers N] [--threads N]", NULL};
    char notes[256] = "shapes:";
    for (int i = 0; lc_mkmodel_shape(i); i++)
        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), " %s", lc_mkmodel_shape(i));
    command_info info_with_shapes = info;
    info_with_shapes.notes = notes;
    const char *shape = NULL, *out = NULL;
    lc_mkmodel_options o = {.seed = 1};
    arg_spec specs[] = {
        {"shape", 0, ARG_STRING, &shape, "NAME", "model shape (see below)", NULL},
        {"out", 'o', ARG_STRING, &out, "FILE", "checkpoint to write", NULL},
        {"seed", 's', ARG_U64, &o.seed, "N", "random seed (default: 1)", NULL},
        {"layers", 0, ARG_INT, &o.n_layers, "N",
         "layers to write, each of the shape's size (default: the shape's),\n"
         "                               e.g. a quick 8-layer model of llama2-7b's layers",
         NULL},
        {"threads", 0, ARG_INT, &o.n_threads, "N",
         "threads drawing the weights (default: all cores; the weights\n"
         "                               depend on the seed only)",
         NULL},
        {0},
    };
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info_with_shapes, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (!shape || !out) {
        fprintf(stderr, "llamac mkmodel: need --shape and --out (see llamac mkmodel --help)\n");
        return 2;
    }
    int last = -1;
    lc_error err;
    /* A percentage that rewrites itself only makes sense on a terminal. */
    o.progress = isatty(STDERR_FILENO) ? show_progress : NULL;
    o.user = &last;
    if (lc_mkmodel(shape, out, &o, &err)) {
        if (last >= 0) fputc('\n', stderr);
        return report(NULL, &err);
    }
    fprintf(stderr, "%sllamac mkmodel: wrote %s (%s)\n", last >= 0 ? "\r" : "", out, shape);
    return 0;
}

int cmd_membw(int argc, char **argv) {
    static const command_info info = {
        "membw",
        "Measure memory read bandwidth: every thread streams its share of a buffer, "
        "with the SIMD kernel the matvec uses. Batch-1 decoding cannot beat this.",
        "[--size-mib N] [--threads N] [-r N]", NULL};
    int size_mib = 1024, threads = 0, repeats = 10;
    arg_spec specs[] = {
        {"size-mib", 0, ARG_INT, &size_mib, "N", "buffer size in MiB (default: 1024)", NULL},
        {"threads", 0, ARG_INT, &threads, "N", "threads (default: all cores)", NULL},
        {"repetitions", 'r', ARG_INT, &repeats, "N", "passes to time (default: 10)", NULL},
        {0},
    };
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (size_mib < 1 || size_mib > (1 << 20) || threads < 0) {
        fprintf(stderr, "llamac membw: --size-mib must be 1 to %d and --threads 0 or more\n",
                1 << 20);
        return 2;
    }
    double median, best;
    lc_error err;
    if (lc_membw((size_t)size_mib << 20, threads, repeats, &median, &best, &err))
        return report(NULL, &err);
    printf("memory read bandwidth: median %.1f GB/s, best %.1f GB/s (%d MiB, %d threads, %d "
           "passes)\n",
           median, best, size_mib, threads ? threads : lc_n_cores(), repeats);
    return 0;
}

int cmd_info(int argc, char **argv) {
    static const command_info info = {"info", "Describe a model file: format, shape, size.",
                                      "-m model.bin|model-folder/", NULL};
    common_opts co;
    common_defaults(&co);
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, false);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    lc_model *model;
    if (open_model(&co, &model)) return 1;
    const lc_config *c = lc_model_config(model);
    printf("file:        %s\nformat:      %s\nparameters:  %.2fM\n", co.model_path,
           lc_model_format(model), lc_model_n_params(model) / 1e6);
    printf("dim %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d, "
           "context %d, rope theta %g, %s classifier\n",
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->vocab_size, c->seq_len, c->rope_theta, c->shared_classifier ? "shared" : "separate");
    if (c->rope_scaling == LC_ROPE_SCALING_LINEAR)
        printf("rope scaling: linear, factor %g\n", c->rope_factor);
    if (c->rope_scaling == LC_ROPE_SCALING_LLAMA3)
        printf("rope scaling: llama3, factor %g, low/high frequency factor %g/%g, original "
               "context %d\n",
               c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
               c->rope_original_ctx);
    const lc_token *eos;
    const int n_eos = lc_model_eos_ids(model, &eos);
    if (lc_model_bos_id(model) >= 0 || n_eos) {
        printf("special ids: bos %d, eos", lc_model_bos_id(model));
        for (int i = 0; i < n_eos; i++) printf("%s%d", i ? ", " : " ", eos[i]);
        printf("%s\n", n_eos ? "" : " (none)");
    }
    printf("weights read per decoded token: %.1f MB\n", lc_model_bytes_per_token(model) / 1e6);
    lc_model_free(model);
    return 0;
}
