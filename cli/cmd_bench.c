/* llamac bench: prompt processing (pp) and generation (tg) speed, like
 * llama-bench's pp512/tg128: pp prefills P tokens in batches, tg decodes N
 * tokens one at a time from an empty context. Medians over -r runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

typedef struct series {
    const char *name;
    int tokens;
    double *tok_s; /* (runs) */
    int runs;
} series;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Prints s as a JSON string literal. */
static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* One timed run: pp prefills all tokens at once, tg one token per step. */
static int run_once(lc_engine *e, const lc_token *tokens, int n, bool one_by_one, double *tok_s) {
    lc_error err;
    const float *logits;
    lc_engine_seq_reset(e, 0);
    double t0 = lc_time_seconds();
    for (int done = 0; done < n;) {
        int step = one_by_one ? 1 : n - done;
        if (lc_engine_prefill(e, 0, tokens + done, (size_t)step, &logits, &err))
            return report("bench", &err);
        done += step;
    }
    *tok_s = n / (lc_time_seconds() - t0);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const command_info info = {
        "bench",
        "Measure prompt processing (pp: P tokens in batches) and generation (tg: N "
        "tokens one at a time) speed; prints medians and the spread over -r runs.",
        "-m model.bin [-p 256] [-n 128] [-r 5] [--json] [options]",
        "GB/s is the weight bytes a decoding step reads times tg tok/s; --membw also\n"
        "measures the memory bandwidth and prints the fraction of it tg reaches."};
    common_opts co;
    common_defaults(&co);
    int n_prompt = 256, n_gen = 128, runs = 5;
    bool json = false, with_membw = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, false);
    specs[n++] = (arg_spec){"n-prompt", 'p', ARG_INT,
                            &n_prompt,  "P", "prompt tokens for pp; 0 skips (default: 256)"};
    specs[n++] =
        (arg_spec){"n-gen", 'n', ARG_INT, &n_gen, "N", "tokens for tg; 0 skips (default: 128)"};
    specs[n++] =
        (arg_spec){"repetitions", 'r', ARG_INT, &runs, "R", "timed runs of each (default: 5)"};
    specs[n++] = (arg_spec){"json", 0, ARG_FLAG, &json, NULL, "print JSON instead of a table"};
    specs[n++] =
        (arg_spec){"membw", 0, ARG_FLAG, &with_membw, NULL, "also measure memory bandwidth"};
    n = common_engine_specs(&co, specs, n);
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (n_prompt < 0 || n_gen < 0 || runs < 1 || runs > 1000) {
        fprintf(stderr, "llamac bench: -p and -n must be 0 or more, -r 1 to 1000\n");
        return 2;
    }
    int rc = 1;
    lc_model *model = NULL;
    lc_engine *engine = NULL;
    lc_token *tokens = NULL;
    series s[2] = {{"pp", n_prompt, NULL, 0}, {"tg", n_gen, NULL, 0}};
    if (open_model(&co, &model) || open_engine(&co, model, 1, &engine)) goto done;
    const lc_config *c = lc_model_config(model);
    int longest = n_prompt > n_gen ? n_prompt : n_gen;
    if (longest > lc_engine_n_ctx(engine)) {
        fprintf(stderr,
                "llamac bench: %d tokens do not fit the context of %d (lower -p/-n or "
                "raise --ctx)\n",
                longest, lc_engine_n_ctx(engine));
        goto done;
    }
    tokens = malloc((size_t)(longest + 1) * sizeof *tokens);
    s[0].tok_s = calloc((size_t)runs, sizeof(double));
    s[1].tok_s = calloc((size_t)runs, sizeof(double));
    if (!tokens || !s[0].tok_s || !s[1].tok_s) {
        fprintf(stderr, "llamac: out of memory\n");
        goto done;
    }
    uint64_t x = 12345; /* fixed pseudo-random ids, the same every run */
    for (int i = 0; i < longest; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (lc_token)((x >> 33) % (uint64_t)c->vocab_size);
    }
    for (int k = 0; k < 2; k++) {
        if (s[k].tokens == 0) continue;
        double warm;
        if (run_once(engine, tokens, s[k].tokens < 16 ? s[k].tokens : 16, k == 1, &warm)) goto done;
        for (int r = 0; r < runs; r++)
            if (run_once(engine, tokens, s[k].tokens, k == 1, &s[k].tok_s[s[k].runs++])) goto done;
    }
    double membw = 0, membw_best = 0;
    lc_error err;
    if (with_membw && lc_membw((size_t)1 << 30, co.threads, 10, &membw, &membw_best, &err)) {
        report("membw", &err);
        goto done;
    }
    const double bytes = (double)lc_model_bytes_per_token(model);
    if (json) {
        printf("{\n  \"model\": ");
        print_json_string(co.model_path);
        printf(",\n  \"backend\": ");
        print_json_string(lc_engine_describe(engine));
        printf(",\n  \"weight_bytes_per_token\": %.0f,\n", bytes);
        if (with_membw) printf("  \"membw_gb_s\": %.2f,\n", membw);
        printf("  \"results\": [");
    } else {
        printf("model: %s (%s, %.1f MB of weights per token)\nbackend: %s\n", co.model_path,
               lc_model_format(model), bytes / 1e6, lc_engine_describe(engine));
        if (with_membw)
            printf("memory bandwidth: %.1f GB/s (median of 10 passes over 1 GiB)\n", membw);
        printf("%-8s %8s %14s %12s %12s %10s\n", "test", "tokens", "median tok/s", "min", "max",
               "GB/s");
    }
    bool first = true;
    for (int k = 0; k < 2; k++) {
        if (s[k].runs == 0) continue;
        double lo = 1e300, hi = 0;
        for (int r = 0; r < s[k].runs; r++) {
            lo = s[k].tok_s[r] < lo ? s[k].tok_s[r] : lo;
            hi = s[k].tok_s[r] > hi ? s[k].tok_s[r] : hi;
        }
        double med = median(s[k].tok_s, s[k].runs), gbs = k == 1 ? med * bytes / 1e9 : 0;
        if (json) {
            printf("%s\n    {\"test\": \"%s%d\", \"tokens\": %d, \"runs\": %d, \"tok_s_median\": "
                   "%.2f, "
                   "\"tok_s_min\": %.2f, \"tok_s_max\": %.2f",
                   first ? "" : ",", s[k].name, s[k].tokens, s[k].tokens, s[k].runs, med, lo, hi);
            if (k == 1) printf(", \"gb_s\": %.2f", gbs);
            if (k == 1 && with_membw) printf(", \"fraction_of_membw\": %.3f", gbs / membw);
            printf("}");
        } else {
            char gb[32] = "";
            if (k == 1) snprintf(gb, sizeof gb, "%.1f", gbs);
            printf("%s%-6d %8d %14.1f %12.1f %12.1f %10s", s[k].name, s[k].tokens, s[k].tokens, med,
                   lo, hi, gb);
            if (k == 1 && with_membw) printf("  (%.0f%% of memory bandwidth)", 100 * gbs / membw);
            printf("\n");
        }
        first = false;
    }
    if (json) printf("\n  ]\n}\n");
    rc = 0;
done:
    free(tokens);
    free(s[0].tok_s);
    free(s[1].tok_s);
    lc_engine_free(engine);
    lc_model_free(model);
    return rc;
}
