/* llamac logits: raw float32 logits of a token sequence, for checking against references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

/* Parses "1,450,6989" into ids; returns the count or -1 with a message. */
static long parse_ids(const char *s, lc_token **out) {
    long n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    lc_token *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return -1;
    const char *p = s;
    for (long i = 0; i < n; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end != ',' && *end != '\0') || v < 0 || v > 0x7fffffffL) {
            fprintf(stderr,
                    "llamac logits: --ids: '%s' is not a comma-separated list of token "
                    "ids\n",
                    s);
            free(ids);
            return -1;
        }
        ids[i] = (lc_token)v;
        p = end + 1;
    }
    *out = ids;
    return n;
}

int cmd_logits(int argc, char **argv) {
    static const command_info info = {
        "logits",
        "Run a token sequence and write the logits after every position as raw "
        "little-endian float32, rows x vocab.",
        "-m model.bin (--ids 1,450,6989 | -z tokenizer.bin -p TEXT) --out FILE", NULL};
    common_opts co;
    common_defaults(&co);
    const char *ids_arg = NULL, *text = NULL, *out_path = NULL;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] = (arg_spec){"ids", 0, ARG_STRING, &ids_arg, "LIST", "comma-separated token ids"};
    specs[n++] = (arg_spec){"prompt", 'p',    ARG_STRING,
                            &text,    "TEXT", "text to tokenize (with BOS) instead of --ids"};
    specs[n++] = (arg_spec){"out", 'o', ARG_STRING, &out_path, "FILE", "where to write the logits"};
    n = common_engine_specs(&co, specs, n);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (!out_path || (!ids_arg) == (!text)) {
        fprintf(stderr, "llamac logits: need --out and exactly one of --ids or -p\n");
        return 2;
    }
    int rc = 1;
    lc_model *model = NULL;
    lc_tokenizer *tok = NULL;
    lc_engine *engine = NULL;
    lc_token *ids = NULL;
    float *logits = NULL;
    uint8_t *want = NULL;
    int32_t *positions = NULL, *seqs = NULL;
    FILE *f = NULL;
    lc_error err;
    size_t n_ids = 0;
    if (open_model(&co, &model)) goto done;
    if (ids_arg) {
        long got = parse_ids(ids_arg, &ids);
        if (got < 0) goto done;
        n_ids = (size_t)got;
    } else {
        if (open_tokenizer(&co, model, &tok)) goto done;
        if (lc_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n_ids, &err)) {
            report("-p", &err);
            goto done;
        }
    }
    if (open_engine(&co, model, 1, &engine)) goto done;
    const int32_t vocab = lc_model_config(model)->vocab_size, n_batch = lc_engine_n_batch(engine);
    if (n_ids > (size_t)lc_engine_n_ctx(engine)) {
        fprintf(stderr, "llamac: %zu tokens but the context holds %d\n", n_ids,
                lc_engine_n_ctx(engine));
        goto done;
    }
    logits = malloc((size_t)n_batch * (size_t)vocab * sizeof *logits);
    want = malloc((size_t)n_batch);
    positions = malloc((size_t)n_batch * sizeof *positions);
    seqs = calloc((size_t)n_batch, sizeof *seqs);
    if (!logits || !want || !positions || !seqs) {
        fprintf(stderr, "llamac: out of memory for %d rows of logits\n", n_batch);
        goto done;
    }
    memset(want, 1, (size_t)n_batch);
    if (!(f = fopen(out_path, "wb"))) {
        fprintf(stderr, "llamac: --out %s: cannot create the file\n", out_path);
        goto done;
    }
    for (size_t done_n = 0; done_n < n_ids;) { /* every row, a batch at a time */
        int32_t count = n_ids - done_n < (size_t)n_batch ? (int32_t)(n_ids - done_n) : n_batch;
        for (int32_t i = 0; i < count; i++) positions[i] = (int32_t)done_n + i;
        lc_batch b = {count, ids + done_n, positions, seqs, want};
        if (lc_engine_forward(engine, &b, logits, &err)) {
            report(ids_arg ? "--ids" : "-p", &err);
            goto done;
        }
        if (fwrite(logits, sizeof(float) * (size_t)vocab, (size_t)count, f) != (size_t)count) {
            fprintf(stderr, "llamac: --out %s: write failed\n", out_path);
            goto done;
        }
        done_n += (size_t)count;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "llamac: --out %s: write failed\n", out_path);
        goto done;
    }
    f = NULL;
    fprintf(stderr, "llamac: wrote %zu rows x %d logits to %s\n", n_ids, vocab, out_path);
    rc = 0;
done:
    if (f) fclose(f);
    free(ids);
    free(logits);
    free(want);
    free(positions);
    free(seqs);
    lc_engine_free(engine);
    lc_tokenizer_free(tok);
    lc_model_free(model);
    return rc;
}
