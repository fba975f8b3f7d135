/* Logits against Hugging Face transformers (float32) for the golden sequences:
 * every row within 1e-3 absolute, argmax equal at every position. Each run
 * goes through the batched prefill and through one-token batches, on every
 * kernel set this machine has, so the batch contract is checked too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "harness.h"
#include "json.h"
#include "llamac.h"

typedef golden_bound bound;

typedef struct golden_seq {
    lc_token *ids;
    int n_ids;
    int first_position, rows;
    int *argmax; /* (n_ids) */
    float *ref;  /* (rows, vocab) */
} golden_seq;

static int read_ints(const json *arr, int **out) {
    if (!arr || arr->type != JSON_ARRAY) return -1;
    *out = malloc((arr->count + 1) * sizeof **out);
    for (size_t i = 0; i < arr->count; i++) (*out)[i] = (int)arr->items[i]->number;
    return (int)arr->count;
}

static bool load_seq(test_ctx *t, const json *seq, int32_t vocab, golden_seq *g) {
    char rel[512], path[1024];
    memset(g, 0, sizeof *g);
    const json *shape = json_get(seq, "shape"), *file = json_get(seq, "file"),
               *first = json_get(seq, "first_position");
    g->n_ids = read_ints(json_get(seq, "ids"), &g->ids);
    int n_argmax = read_ints(json_get(seq, "argmax"), &g->argmax);
    if (g->n_ids < 1 || n_argmax != g->n_ids || !shape || shape->count != 2 || !file || !first) {
        CHECK(t, false, "malformed golden JSON");
        return false;
    }
    g->rows = (int)shape->items[0]->number;
    g->first_position = (int)first->number;
    CHECK(t, (int)shape->items[1]->number == vocab, "golden vocab %d vs model %d",
          (int)shape->items[1]->number, vocab);
    size_t len;
    snprintf(rel, sizeof rel, "golden/logits/%s", file->string);
    g->ref = (float *)read_file(shared_path(path, sizeof path, rel), &len);
    CHECK(t, g->ref && len == (size_t)g->rows * (size_t)vocab * sizeof(float),
          "%s: missing or wrong size", path);
    CHECK(t, g->first_position >= 0 && g->first_position + g->rows <= g->n_ids,
          "%s: rows %d from position %d exceed the %d ids", rel, g->rows, g->first_position,
          g->n_ids);
    return g->ref && len == (size_t)g->rows * (size_t)vocab * sizeof(float) &&
           g->first_position >= 0 && g->first_position + g->rows <= g->n_ids;
}

static void free_seq(golden_seq *g) {
    free(g->ids);
    free(g->argmax);
    free(g->ref);
}

/* Batches of n_batch entries, every row requested (golden.h). */
float *golden_run(test_ctx *t, const lc_model *m, const lc_token *ids, int n_ids,
                  const lc_engine_options *config, int n_batch) {
    const int32_t vocab = lc_model_config(m)->vocab_size;
    /* Batch 1 also reads the weights in place from the file mapping. */
    lc_engine_options o = *config;
    o.n_batch = n_batch;
    o.n_threads = 2;
    const bool converts = o.dtype && strcmp(o.dtype, "auto") != 0;
    o.weights = n_batch == 1 && !converts ? "mmap" : "copy";
    lc_engine *e;
    lc_error err;
    if (lc_engine_create(m, &o, &e, &err)) {
        CHECK(t, false, "engine (%s): %s", o.device, err.msg);
        return NULL;
    }
    float *logits = malloc((size_t)n_ids * (size_t)vocab * sizeof *logits);
    int32_t *pos = malloc((size_t)n_ids * sizeof *pos), *seq = calloc((size_t)n_ids, sizeof *seq);
    uint8_t *want = malloc((size_t)n_ids);
    memset(want, 1, (size_t)n_ids);
    for (int i = 0; i < n_ids; i++) pos[i] = i;
    for (int done = 0; done < n_ids;) {
        int n = n_ids - done < n_batch ? n_ids - done : n_batch;
        lc_batch b = {n, ids + done, pos + done, seq + done, want + done};
        if (lc_engine_forward(e, &b, logits + (size_t)done * (size_t)vocab, &err)) {
            CHECK(t, false, "forward: %s", err.msg);
            free(logits);
            logits = NULL;
            break;
        }
        done += n;
    }
    free(pos);
    free(seq);
    free(want);
    lc_engine_free(e);
    return logits;
}

/* Checks every configuration that this machine can create (one that is
 * LC_ERR_UNSUPPORTED here is passed over; at least one must run). */
void golden_check_within(test_ctx *t, const char *model_file, const char *golden_name,
                         const lc_engine_options *configs, const char *const *names,
                         size_t n_configs, golden_bound want) {
    char path[1024];
    lc_model *m;
    lc_error err;
    if (!(m = load_shared_model(t, model_file))) return;
    const int32_t vocab = lc_model_config(m)->vocab_size;
    char rel[256];
    snprintf(rel, sizeof rel, "golden/logits/%s.json", golden_name);
    char *text = read_file(shared_path(path, sizeof path, rel), NULL);
    json *root = text ? json_parse(text) : NULL;
    const json *seqs = json_get(root, "seqs");
    CHECK(t, seqs && seqs->count > 0, "%s: unreadable", path);
    for (size_t s = 0; seqs && s < seqs->count; s++) {
        golden_seq g;
        if (!load_seq(t, seqs->items[s], vocab, &g)) {
            free_seq(&g);
            continue;
        }
        int ran = 0;
        for (size_t k = 0; k < n_configs; k++) {
            lc_engine *e;
            lc_status st = lc_engine_create(m, &configs[k], &e, &err);
            if (st != LC_OK) {
                CHECK(t, st == LC_ERR_UNSUPPORTED, "%s: %s", names[k], err.msg);
                continue; /* not on this machine */
            }
            lc_engine_free(e);
            ran++;
            for (int n_batch = 1; n_batch <= 512; n_batch += 511) {
                float *ours = golden_run(t, m, g.ids, g.n_ids, &configs[k], n_batch);
                if (!ours) continue;
                float worst = 0.0f;
                for (int r = 0; r < g.rows; r++)
                    for (int32_t v = 0; v < vocab; v++) {
                        float d = fabsf(
                            ours[((size_t)(g.first_position + r)) * (size_t)vocab + (size_t)v] -
                            g.ref[(size_t)r * (size_t)vocab + (size_t)v]);
                        if (!(d <= worst)) worst = d; /* NaN counts as worst */
                    }
                CHECK(t, worst <= want.max_abs, "%s %s %s batch %d: max |diff| %g > %g", model_file,
                      seqs->keys[s], names[k], n_batch, worst, want.max_abs);
                int agree = 0, first_bad = -1;
                for (int p = 0; p < g.n_ids; p++) {
                    const float *row = ours + (size_t)p * (size_t)vocab;
                    int best = 0;
                    for (int32_t v = 1; v < vocab; v++) best = row[v] > row[best] ? v : best;
                    agree += best == g.argmax[p];
                    if (best != g.argmax[p] && first_bad < 0) first_bad = p;
                }
                CHECK(t, agree >= want.min_argmax * g.n_ids,
                      "%s %s %s batch %d: argmax agrees at %d of %d positions (first miss at %d)",
                      model_file, seqs->keys[s], names[k], n_batch, agree, g.n_ids, first_bad);
                if (getenv("LLAMAC_TEST_VERBOSE"))
                    printf("     %s %s %s batch %d: max |diff| %.4g, argmax %d/%d\n", model_file,
                           seqs->keys[s], names[k], n_batch, worst, agree, g.n_ids);
                free(ours);
            }
        }
        CHECK(t, ran >= 1, "no configuration ran");
        free_seq(&g);
    }
    json_free(root);
    free(text);
    lc_model_free(m);
}

static void check_model_on(test_ctx *t, const char *model_file, const char *golden_name,
                           const lc_engine_options *configs, const char *const *names,
                           size_t n_configs) {
    golden_check_within(t, model_file, golden_name, configs, names, n_configs, GOLDEN_EXACT);
}

void golden_check(test_ctx *t, const char *model_file, const char *golden_name) {
    static const char *const kernels[] = {"scalar", "avx2", "avx512", "neon"};
    const lc_engine_options configs[] = {{.device = "cpu", .simd = kernels[0]},
                                         {.device = "cpu", .simd = kernels[1]},
                                         {.device = "cpu", .simd = kernels[2]},
                                         {.device = "cpu", .simd = kernels[3]}};
    check_model_on(t, model_file, golden_name, configs, kernels, 4);
}

/* Weights stored in another dtype on the CPU (converted at load), on the
 * fastest kernels and on the scalar reference. */
static void check_dtype(test_ctx *t, const char *dtype, bound want) {
    const char *names[] = {dtype, dtype};
    const lc_engine_options configs[] = {{.device = "cpu", .simd = "auto", .dtype = dtype},
                                         {.device = "cpu", .simd = "scalar", .dtype = dtype}};
    golden_check_within(t, "models/tiny-gutenberg-15M.bin", "tiny-gutenberg-15M", configs, names,
                        getenv("LLAMAC_TEST_SCALAR_DTYPES") ? 2 : 1, want);
}

/* Bounds from measurement (2026-11, both sequences, batch 1 and 512, auto and
 * scalar kernels), with headroom: f16 rounds weights by at most 2^-11
 * relative and moved logits by <= 0.0053; bf16 (2^-8) by <= 0.038; q8_0
 * (weights and activations int8) by <= 0.14 with 31 of 32 argmaxes kept;
 * q4_0 by <= 1.95 with 28 of 32. */
void test_logits_gutenberg15m_f16(test_ctx *t) { check_dtype(t, "f16", (bound){0.02f, 1.0}); }
void test_logits_gutenberg15m_bf16(test_ctx *t) { check_dtype(t, "bf16", (bound){0.12f, 1.0}); }
void test_logits_gutenberg15m_q8_0(test_ctx *t) { check_dtype(t, "q8_0", (bound){0.4f, 0.9}); }
void test_logits_gutenberg15m_q4_0(test_ctx *t) { check_dtype(t, "q4_0", (bound){4.0f, 0.75}); }
/* The same goldens on the GPU with f32 weights (the KV cache is then f32 too). */
void test_cuda_logits_golden(test_ctx *t) {
    if (skip_without_gpu(t)) return;
    static const char *const name[] = {"cuda f32"};
    const lc_engine_options cuda = {.device = "cuda", .dtype = "f32"};
    check_model_on(t, "models/stories260K.bin", "stories260K", &cuda, name, 1);
    check_model_on(t, "models/llama2xs-tinystories.bin", "llama2xs-tinystories", &cuda, name, 1);
    /* The 61 MB 15M model does not travel to the GPU machine (its 64 MiB
     * carry limit); where it is present, it is checked too. */
    char path[1024];
    FILE *f = fopen(shared_path(path, sizeof path, "models/tiny-gutenberg-15M.bin"), "rb");
    if (f) {
        fclose(f);
        check_model_on(t, "models/tiny-gutenberg-15M.bin", "tiny-gutenberg-15M", &cuda, name, 1);
    } else {
        printf("     (test_cuda_logits_golden: %s absent, checked stories260K and llama2xs)\n",
               path);
    }
    /* Llama 3 on the GPU: GQA 6/2, head_dim 32, rope_theta 500000 with Llama
     * 3.1 scaling, tied embeddings. With f32 weights (the bf16 ones widened)
     * within 1e-3. With the bf16 weights as stored the KV cache is f16 (the
     * GPU's default), 1.6e-3 at batch 1, and prefill multiplies bf16
     * activations in cuBLAS, 3.2e-2 at batch 512 (runs 17-18); argmax kept. */
    static const char *const l3_name[] = {"cuda f32"}, *const l3_stored_name[] = {"cuda bf16"};
    const lc_engine_options l3 = {.device = "cuda", .dtype = "f32"},
                            l3_stored = {.device = "cuda", .dtype = "auto"};
    check_model_on(t, "models/tiny-gutenberg-llama3.hf", "tiny-gutenberg-llama3", &l3, l3_name, 1);
    golden_check_within(t, "models/tiny-gutenberg-llama3.hf", "tiny-gutenberg-llama3", &l3_stored,
                        l3_stored_name, 1, (golden_bound){0.05f, 1.0});
}

void test_logits_stories260k(test_ctx *t) {
    golden_check(t, "models/stories260K.bin", "stories260K");
}
void test_logits_stories260k_v1(test_ctx *t) {
    golden_check(t, "models/stories260K_v1.bin", "stories260K");
}
void test_logits_llama2xs(test_ctx *t) {
    golden_check(t, "models/llama2xs-tinystories.bin", "llama2xs-tinystories");
}
void test_logits_gutenberg15m(test_ctx *t) {
    golden_check(t, "models/tiny-gutenberg-15M.bin", "tiny-gutenberg-15M");
}
