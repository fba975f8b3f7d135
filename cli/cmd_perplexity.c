/* llamac perplexity: how well a model predicts a text, as exp(mean negative
 * log-likelihood) over scored tokens; with --kl-base, how far its next-token
 * distributions are from a base model's on the same tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"

/* KV-cache memory the slots that score documents side by side may take. */
#define SLOT_BUDGET_BYTES (256.0 * 1024 * 1024)
#define MAX_SLOTS         32
#define DEFAULT_BATCH     512

typedef struct progress {
    double t0, last;
    bool tty;
    const char *unit; /* "windows" or "lines" */
} progress;

/* Chunks done / total and the ETA on stderr: redrawn in place on a
 * terminal, a line every few seconds otherwise. */
static void show_progress(void *user, int done, int total) {
    progress *p = user;
    double now = lc_time_seconds(), elapsed = now - p->t0;
    if (done < total && now - p->last < (p->tty ? 0.2 : 5.0)) return;
    p->last = now;
    double eta = done > 0 ? elapsed * (total - done) / done : 0;
    fprintf(stderr, "%sperplexity: %d/%d %s, %.1f s, ETA %.0f s%s", p->tty ? "\r" : "", done, total,
            p->unit, elapsed, eta, p->tty ? "   " : "\n");
    if (p->tty && done == total) fputc('\n', stderr);
}

/* Slots scored side by side: as many documents as fill a batch, within the
 * KV-cache budget (f32 keys and values of every layer for ctx positions). */
static int choose_slots(const lc_config *c, int ctx, int batch, int doc_len) {
    double per_slot = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * (double)ctx * 4.0;
    int slots = batch / (doc_len > 0 ? doc_len : 1) + 1;
    int budget = (int)(SLOT_BUDGET_BYTES / per_slot);
    if (slots > budget) slots = budget;
    if (slots > MAX_SLOTS) slots = MAX_SLOTS;
    return slots < 1 ? 1 : slots;
}

typedef struct run_info {
    const char *model, *base, *backend, *file;
    bool per_line;
    int ctx, n_docs;
    size_t n_tokens;
} run_info;

static void print_results(const run_info *ri, const lc_eval_result *r, bool json) {
    double se, ppl = lc_eval_perplexity(&r->nll, &se);
    double tok_s = r->seconds > 0 ? (double)r->n_evaluated / r->seconds : 0;
    double base_se = 0, base_ppl = ri->base ? lc_eval_perplexity(&r->base_nll, &base_se) : 0;
    double top1 = r->nll.n ? 100.0 * (double)r->n_top1_same / (double)r->nll.n : 0;
    if (json) {
        printf("{\n  \"model\": ");
        print_json_string(ri->model);
        printf(",\n  \"backend\": ");
        print_json_string(ri->backend);
        printf(",\n  \"file\": ");
        print_json_string(ri->file);
        printf(",\n  \"mode\": \"%s\",\n  \"ctx\": %d,\n  \"tokens\": %zu,\n  \"documents\": %d,\n",
               ri->per_line ? "per-line" : "windows", ri->ctx, ri->n_tokens, ri->n_docs);
        printf("  \"scored_tokens\": %lld,\n  \"mean_nll\": %.9f,\n  \"mean_nll_se\": %.9f,\n"
               "  \"ppl\": %.6f,\n  \"ppl_se\": %.6f,\n  \"evaluated_tokens\": %lld,\n"
               "  \"seconds\": %.3f,\n  \"tok_s\": %.1f",
               (long long)r->nll.n, r->nll.mean, lc_eval_stat_se(&r->nll), ppl, se,
               (long long)r->n_evaluated, r->seconds, tok_s);
        if (ri->base) {
            printf(",\n  \"base\": {\n    \"model\": ");
            print_json_string(ri->base);
            printf(",\n    \"ppl\": %.6f,\n    \"ppl_se\": %.6f,\n    \"kl_mean\": %.9f,\n"
                   "    \"kl_se\": %.9f,\n    \"top1_agreement\": %.6f\n  }",
                   base_ppl, base_se, r->kl.mean, lc_eval_stat_se(&r->kl), top1 / 100.0);
        }
        printf("\n}\n");
        return;
    }
    printf("model: %s (%s)\n", ri->model, ri->backend);
    if (ri->per_line)
        printf("text: %s, %d non-empty lines, each BOS + up to %d tokens, every token after BOS "
               "scored\n",
               ri->file, ri->n_docs, ri->ctx - 1);
    else
        printf("text: %s, %zu tokens: %d windows of %d, tokens %d..%d of each scored\n", ri->file,
               ri->n_tokens, ri->n_docs, ri->ctx, ri->ctx / 2 + 1, ri->ctx - 1);
    printf("PPL = %.4f +/- %.4f\n", ppl, se);
    printf("scored tokens: %lld\n", (long long)r->nll.n);
    printf("evaluated: %lld tokens in %.2f s, %.1f tok/s\n", (long long)r->n_evaluated, r->seconds,
           tok_s);
    if (ri->base) {
        printf("base model: %s\n", ri->base);
        printf("base PPL = %.4f +/- %.4f\n", base_ppl, base_se);
        printf("KL(base || model) = %.6f +/- %.6f nats (mean over scored tokens)\n", r->kl.mean,
               lc_eval_stat_se(&r->kl));
        printf("top-1 agreement = %.2f%% (%lld of %lld)\n", top1, (long long)r->n_top1_same,
               (long long)r->nll.n);
    }
}

int cmd_perplexity(int argc, char **argv) {
    static const command_info info = {
        "perplexity",
        "Measure how well a model predicts a text: perplexity = exp(mean negative "
        "log-likelihood of the scored tokens), with its standard error.",
        "-m model.bin [-z tokenizer.bin] -f text.txt [--ctx N] [--per-line] [--kl-base "
        "base.bin] [--json] [options]",
        "Standard mode (as llama.cpp's perplexity): the whole file is tokenized once, BOS\n"
        "first, and cut into non-overlapping windows of --ctx tokens (default: the\n"
        "model's context); a leftover shorter than a window is dropped. Each window runs\n"
        "from a fresh KV cache with its first token replaced by BOS; its tokens 0..ctx/2\n"
        "are context only and tokens ctx/2+1..ctx-1 are scored (ctx-1-ctx/2 per window).\n"
        "--per-line: each non-empty line (CR/LF stripped) is its own document, BOS + its\n"
        "tokens truncated to --ctx, every token after BOS scored.\n"
        "PPL's +/- is the standard error of the mean NLL times PPL. --kl-base runs a\n"
        "second model with the same vocabulary on the same tokens and reports its PPL,\n"
        "the mean KL(base || model) and how often both models' top tokens agree.\n"
        "Progress (documents done / total, ETA) goes to stderr, results to stdout."};
    common_opts co;
    common_defaults(&co);
    const char *file = NULL, *kl_base = NULL;
    bool per_line = false, json = false, ctx_seen = false, batch_seen = false;
    arg_spec specs[MAX_SPECS];
    int n = common_model_specs(&co, specs, 0, true);
    specs[n++] =
        (arg_spec){"file", 'f', ARG_STRING, &file, "FILE", "the text to score ('-': stdin)"};
    specs[n++] = (arg_spec){"per-line", 0,    ARG_FLAG,
                            &per_line,  NULL, "score each non-empty line as its own document"};
    specs[n++] = (arg_spec){"kl-base", 0,       ARG_STRING,
                            &kl_base,  "MODEL", "also compare with this base model (KL, top-1)"};
    specs[n++] = (arg_spec){"json", 0, ARG_FLAG, &json, NULL, "print JSON instead of text"};
    n = common_engine_specs(&co, specs, n);
    for (int i = 0; i < n; i++) {
        if (strcmp(specs[i].name, "ctx") == 0) {
            specs[i].seen = &ctx_seen;
            specs[i].help = "window length in tokens; --per-line: the most tokens of a line\n"
                            "                               (default: the model's context)";
        }
        if (strcmp(specs[i].name, "batch") == 0) specs[i].seen = &batch_seen;
    }
    specs_end(specs, n);
    char *pos[1];
    int n_pos;
    parse_result pr = args_parse(&info, specs, argc, argv, pos, &n_pos, 0);
    if (pr != PARSE_OK) return pr == PARSE_HELP ? 0 : 2;
    if (!file) {
        fprintf(stderr, "llamac perplexity: need -f FILE, the text to score\n");
        return 2;
    }
    if (ctx_seen && co.ctx < 2) {
        fprintf(stderr, "llamac perplexity: --ctx %d: must be at least 2\n", co.ctx);
        return 2;
    }
    int rc = 1;
    lc_model *model = NULL, *base_model = NULL;
    lc_tokenizer *tok = NULL;
    lc_engine *engine = NULL, *base = NULL;
    lc_token *tokens = NULL;
    lc_eval_doc *docs = NULL;
    char *text = NULL;
    lc_error err;
    size_t len = 0, n_tokens = 0;
    int n_docs = 0;
    common_opts bo = co; /* the base model shares every engine flag but --dtype: */
    bo.model = kl_base;  /* it is the reference, so it runs its weights as stored */
    bo.dtype = "auto";
    if (open_model(&co, &model) || open_tokenizer(&co, model, &tok)) goto done;
    const lc_config *c = lc_model_config(model);
    const int ctx = ctx_seen ? co.ctx : c->seq_len;
    if (!per_line && ctx < 3) { /* a window of 2 scores nothing: its prediction is context */
        fprintf(stderr,
                "llamac perplexity: --ctx %d: standard mode needs at least 3 (each window "
                "scores its tokens ctx/2+1 .. ctx-1)\n",
                ctx);
        goto done;
    }
    if (ctx > c->seq_len) {
        fprintf(stderr, "llamac perplexity: --ctx %d: must be 2 to the model's context length %d\n",
                ctx, c->seq_len);
        goto done;
    }
    if (kl_base) {
        if (open_model(&bo, &base_model)) goto done;
        const lc_config *bc = lc_model_config(base_model);
        if (bc->vocab_size != c->vocab_size) {
            fprintf(stderr,
                    "llamac perplexity: --kl-base %s has a vocabulary of %d tokens but %s has "
                    "%d; KL divergence needs the same vocabulary\n",
                    bo.model_path, bc->vocab_size, co.model_path, c->vocab_size);
            goto done;
        }
        if (bc->seq_len < ctx) {
            fprintf(stderr,
                    "llamac perplexity: --kl-base %s: its context of %d is shorter than "
                    "--ctx %d\n",
                    bo.model_path, bc->seq_len, ctx);
            goto done;
        }
    }
    if (!(text = read_text_file(file, &len))) {
        fprintf(stderr, "llamac perplexity: -f %s: cannot read the file\n", file);
        goto done;
    }
    if (len == 0) {
        fprintf(stderr, "llamac perplexity: -f %s: the file is empty\n", file);
        goto done;
    }
    lc_status st;
    if (per_line) {
        st = lc_eval_lines(tok, text, len, ctx, &tokens, &docs, &n_docs, &err);
        if (st == LC_OK && n_docs == 0) {
            fprintf(stderr, "llamac perplexity: -f %s: no line has a token to score\n", file);
            goto done;
        }
        for (int i = 0; i < n_docs; i++) n_tokens += (size_t)docs[i].n;
    } else {
        st = lc_tokenizer_encode(tok, text, len, true, false, &tokens, &n_tokens, &err);
        if (st == LC_OK)
            st =
                lc_eval_windows(tokens, n_tokens, ctx, lc_tokenizer_bos(tok), &docs, &n_docs, &err);
    }
    if (st) {
        fprintf(stderr, "llamac perplexity: -f %s: %s\n", file, err.msg);
        goto done;
    }
    /* Documents of a batch share the forward; each takes its own KV-cache slot. */
    co.ctx = bo.ctx = ctx;
    if (!batch_seen) co.batch = bo.batch = DEFAULT_BATCH;
    int slots = choose_slots(c, ctx, co.batch, (int)(n_tokens / (size_t)n_docs));
    if (base_model) {
        int base_slots = choose_slots(lc_model_config(base_model), ctx, co.batch,
                                      (int)(n_tokens / (size_t)n_docs));
        slots = base_slots < slots ? base_slots : slots;
    }
    if (open_engine(&co, model, slots, &engine)) goto done;
    if (base_model && open_engine(&bo, base_model, slots, &base)) goto done;
    progress p = {lc_time_seconds(), 0, isatty(2), per_line ? "lines" : "windows"};
    lc_eval_result r;
    if (lc_eval_score(engine, base, docs, n_docs, show_progress, &p, &r, &err)) {
        report(NULL, &err);
        goto done;
    }
    run_info ri = {co.model_path,
                   base_model ? bo.model_path : NULL,
                   lc_engine_describe(engine),
                   file,
                   per_line,
                   ctx,
                   n_docs,
                   n_tokens};
    print_results(&ri, &r, json);
    rc = 0;
done:
    free(text);
    free(tokens);
    free(docs);
    lc_engine_free(base);
    lc_engine_free(engine);
    lc_model_free(base_model);
    lc_tokenizer_free(tok);
    lc_model_free(model);
    return rc;
}
