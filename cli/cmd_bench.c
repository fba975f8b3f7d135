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

/* pp: prefills n tokens in batches, timed to the logits being ready. */
static int run_prompt(lc_engine *e, const lc_token *tokens, int n, double *tok_s) {
    lc_error err;
    const float *logits;
    lc_engine_seq_reset(e, 0);
    double t0 = lc_time_seconds();
    if (lc_engine_prefill(e, 0, tokens, (size_t)n, &logits, &err)) return report("bench", &err);
    *tok_s = n / (lc_time_seconds() - t0);
    return 0;
}

/* tg: after `depth` tokens of context (at least one), n greedy decoding
 * steps as generation runs them (sampling included, on the device when the
 * backend samples there); only the steps are timed. */
static int run_generate(lc_engine *e, lc_sampler *greedy, const lc_token *tokens, int depth, int n,
                        double *tok_s) {
    lc_error err;
    lc_generate_stats st;
    lc_generate_params gp = {n, NULL, 0};
    lc_engine_seq_reset(e, 0);
    if (lc_generate(e, 0, tokens, (size_t)(depth > 0 ? depth : 1), &gp, greedy, NULL, NULL, &st,
                    &err))
        return report("bench", &err);
    *tok_s = st.n_decoded / st.decode_seconds;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const command_info info = {
        "bench",
        "Measure prompt processing (pp: P tokens in batches) and generation (tg: N "
        "tokens one at a time) speed; prints medians and the spread over -r runs.",
        "-m model.bin [-p 256] [-n 128] [-r 5] [--json] [options]",
        "GB/s is the bytes a decoding step reads (weights as stored, KV cache at the\n"
        "step's depth) times tg tok/s; --membw also measures the device's memory\n"
        "bandwidth and prints the fraction of it tg reaches."};
    common_opts co;
    common_defaults(&co);
    int n_prompt = 256, n_gen = 128, runs = 5, depth = 0;
    bool json = false, with_membw = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, false);
    specs[n++] = (arg_spec){"n-prompt", 'p', ARG_INT,
                            &n_prompt,  "P", "prompt tokens for pp; 0 skips (default: 256)"};
    specs[n++] =
        (arg_spec){"n-gen", 'n', ARG_INT, &n_gen, "N", "tokens for tg; 0 skips (default: 128)"};
    specs[n++] = (arg_spec){"depth", 'd', ARG_INT,
                            &depth,  "D", "tokens of context before tg's first step (default: 0)"};
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
    if (n_prompt < 0 || n_gen < 0 || depth < 0 || runs < 1 || runs > 1000) {
        fprintf(stderr, "llamac bench: -p, -n and -d must be 0 or more, -r 1 to 1000\n");
        return 2;
    }
    int rc = 1;
    lc_model *model = NULL;
    lc_engine *engine = NULL;
    lc_token *tokens = NULL;
    series s[2] = {{"pp", n_prompt, NULL, 0}, {"tg", n_gen, NULL, 0}};
    lc_sampler *greedy = NULL;
    lc_error err;
    if (open_model(&co, &model) || open_engine(&co, model, 1, &engine)) goto done;
    const lc_config *c = lc_model_config(model);
    int longest = n_prompt > depth + n_gen + 1 ? n_prompt : depth + n_gen + 1;
    if (longest > lc_engine_n_ctx(engine)) {
        fprintf(stderr,
                "llamac bench: %d tokens do not fit the context of %d (lower -p/-n/-d or "
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
    lc_sampler_params gp = {0.0f, 1.0f, 0, 0};
    if (lc_sampler_create(&gp, c->vocab_size, &greedy, &err)) {
        report("bench", &err);
        goto done;
    }
    /* One warm-up of each (graph capture, library start-up), then the timed runs. */
    double warm;
    if (n_prompt && run_prompt(engine, tokens, n_prompt, &warm)) goto done;
    for (int r = 0; n_prompt && r < runs; r++)
        if (run_prompt(engine, tokens, n_prompt, &s[0].tok_s[s[0].runs++])) goto done;
    if (n_gen && run_generate(engine, greedy, tokens, depth, n_gen < 16 ? n_gen : 16, &warm))
        goto done;
    for (int r = 0; n_gen && r < runs; r++)
        if (run_generate(engine, greedy, tokens, depth, n_gen, &s[1].tok_s[s[1].runs++])) goto done;
    double membw = 0;
    if (with_membw && lc_engine_membw(engine, co.threads, &membw, &err)) {
        report("membw", &err);
        goto done;
    }
    /* What a step reads on average: the weights as stored, and the KV cache
     * up to the middle of the timed steps. */
    const double bytes =
        (double)lc_engine_bytes_per_token(engine, (depth > 0 ? depth : 1) + n_gen / 2);
    if (json) {
        printf("{\n  \"model\": ");
        print_json_string(co.model_path);
        printf(",\n  \"backend\": ");
        print_json_string(lc_engine_describe(engine));
        printf(",\n  \"depth\": %d,\n  \"bytes_per_token\": %.0f,\n", depth, bytes);
        if (with_membw) printf("  \"membw_gb_s\": %.2f,\n", membw);
        printf("  \"results\": [");
    } else {
        printf("model: %s (%s)\nbackend: %s\ntg reads %.1f MB per token (weights as stored + KV "
               "cache at depth %d)\n",
               co.model_path, lc_model_format(model), lc_engine_describe(engine), bytes / 1e6,
               depth);
        if (with_membw)
            printf("memory bandwidth: %.1f GB/s (median of 10; a GPU's device copy counts bytes "
                   "read + written)\n",
                   membw);
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
    lc_sampler_free(greedy);
    free(tokens);
    free(s[0].tok_s);
    free(s[1].tok_s);
    lc_engine_free(engine);
    lc_model_free(model);
    return rc;
}
