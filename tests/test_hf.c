/* Hugging Face folders: config.json read and checked, tensor names mapped, q/k
 * rows permuted out of transformers' rotate-half layout, norms made f32,
 * Llama 3.1 RoPE scaling. The .hf twins of the llama2.c test models load to
 * the .bin weights byte for byte, so their logits are bit-identical (same
 * weights, same kernels, same order of operations); tiny-gutenberg-llama3
 * (bf16, GQA, theta 500000, llama3 scaling, tied, head_dim 32) matches
 * transformers' float32 logits within 1e-3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quant.h"
#include "golden.h"
#include "harness.h"
#include "hf_folder.h"
#include "llamac.h"
#include "model/model.h"

/* ---- the .hf twins of the llama2.c models ------------------------------- */

static void check_twins(test_ctx *t, const char *hf, const char *bin) {
    lc_model *a = load_shared_model(t, hf), *b = load_shared_model(t, bin);
    if (!a || !b) goto done;
    hf_check_same_weights(t, a, b, hf);
    CHECK(t, !strcmp(lc_model_format(a), "safetensors (f32), 1 shard"), "%s: format '%s'", hf,
          lc_model_format(a));
    const lc_token *eos;
    CHECK(t, lc_model_eos_ids(a, &eos) == 1 && eos[0] == 2 && lc_model_bos_id(a) == 1,
          "%s: bos/eos ids", hf);
    CHECK(t, lc_model_eos_ids(b, &eos) == 0 && lc_model_bos_id(b) == -1,
          "%s: a llama2.c file names special ids", bin);
    /* Any ids will do: every position's logits are compared. */
    const lc_token ids[] = {1, 403, 407, 261, 378, 429, 266, 330, 317, 273, 434, 271, 260, 338};
    const int n = sizeof ids / sizeof ids[0], vocab = lc_model_config(a)->vocab_size;
    const lc_engine_options auto_cpu = {.device = "cpu"};
    for (int n_batch = 1; n_batch <= n; n_batch += n - 1) {
        float *x = golden_run(t, a, ids, n, &auto_cpu, n_batch);
        float *y = golden_run(t, b, ids, n, &auto_cpu, n_batch);
        if (x && y) {
            float worst = 0;
            for (size_t i = 0; i < (size_t)n * (size_t)vocab; i++)
                worst = fmaxf(worst, fabsf(x[i] - y[i]));
            CHECK(t, !memcmp(x, y, (size_t)n * (size_t)vocab * sizeof *x),
                  "%s batch %d: logits not bit-identical to %s (max |diff| %g)", hf, n_batch, bin,
                  worst);
        }
        free(x);
        free(y);
    }
done:
    lc_model_free(a);
    lc_model_free(b);
}

void test_hf_twins_match_llama2c(test_ctx *t) {
    check_twins(t, "models/stories260K.hf", "models/stories260K.bin");
    check_twins(t, "models/llama2xs-tinystories.hf", "models/llama2xs-tinystories.bin");
}

void test_logits_stories260k_hf(test_ctx *t) {
    golden_check(t, "models/stories260K.hf", "stories260K");
    golden_check(t, "models/llama2xs-tinystories.hf", "llama2xs-tinystories");
}

/* ---- tiny-gutenberg-llama3 ---------------------------------------------- */

void test_hf_llama3_config(test_ctx *t) {
    lc_model *m = load_shared_model(t, "models/tiny-gutenberg-llama3.hf");
    if (!m) return;
    const lc_config *c = lc_model_config(m);
    CHECK(t,
          c->dim == 192 && c->hidden_dim == 512 && c->n_layers == 6 && c->n_heads == 6 &&
              c->n_kv_heads == 2 && c->head_dim == 32 && c->vocab_size == 128256 &&
              c->seq_len == 256 && c->rope_theta == 500000.0f && c->norm_eps == 1e-5f &&
              c->shared_classifier,
          "config misread");
    CHECK(t,
          c->rope_scaling == LC_ROPE_SCALING_LLAMA3 && c->rope_factor == 8.0f &&
              c->rope_low_freq_factor == 1.0f && c->rope_high_freq_factor == 4.0f &&
              c->rope_original_ctx == 8192,
          "rope_scaling misread");
    CHECK(t, !strcmp(lc_model_format(m), "safetensors (bf16), 1 shard"), "format '%s'",
          lc_model_format(m));
    const lc_token *eos;
    int n = lc_model_eos_ids(m, &eos);
    CHECK(t, n == 2 && eos[0] == 128001 && eos[1] == 128009, "eos ids: %d of them", n);
    CHECK(t, lc_model_bos_id(m) == 128000, "bos %d", lc_model_bos_id(m));
    /* Matrices stay bf16 (in the mapping, or permuted for q and k); norms became f32. */
    const layer_weights *L = &m->weights.layers[3];
    CHECK(t,
          L->wq.dtype == LC_DTYPE_BF16 && L->w_down.dtype == LC_DTYPE_BF16 &&
              m->weights.token_embd.dtype == LC_DTYPE_BF16,
          "matrices are not bf16");
    CHECK(t,
          L->attn_norm.dtype == LC_DTYPE_F32 && L->ffn_norm.dtype == LC_DTYPE_F32 &&
              m->weights.output_norm.dtype == LC_DTYPE_F32,
          "norms are not f32");
    CHECK(t, m->weights.output.data == m->weights.token_embd.data, "classifier not tied");
    lc_model_free(m);
}

/* The bf16 weights computed in float32 against transformers on every CPU
 * kernel set, batches of 1 and 512: within 1e-3, argmax equal everywhere. */
void test_logits_llama3_hf(test_ctx *t) {
    golden_check(t, "models/tiny-gutenberg-llama3.hf", "tiny-gutenberg-llama3");
}

/* ---- RoPE frequencies --------------------------------------------------- */

/* Llama 3.1 scaling of one frequency, in double, from the formula. */
static double llama3_reference(double f, const lc_config *c) {
    const double wavelen = 2 * M_PI / f, ctx = c->rope_original_ctx;
    const double low = c->rope_low_freq_factor, high = c->rope_high_freq_factor;
    if (wavelen < ctx / high) return f;
    if (wavelen > ctx / low) return f / c->rope_factor;
    const double smooth = (ctx / wavelen - low) / (high - low);
    return (1 - smooth) * f / c->rope_factor + smooth * f;
}

static void check_freqs(test_ctx *t, const lc_config *c, const char *what, int *regimes) {
    float freq[2048], *table = malloc(64 * sizeof(float) * (size_t)c->head_dim);
    model_rope_freqs(c, freq);
    const int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        const double base = pow(c->rope_theta, -2.0 * i / c->head_dim);
        double want = base;
        if (c->rope_scaling == LC_ROPE_SCALING_LINEAR) want = base / c->rope_factor;
        if (c->rope_scaling == LC_ROPE_SCALING_LLAMA3) want = llama3_reference(base, c);
        CHECK(t, fabs(freq[i] - want) <= 4e-6 * want, "%s: freq %d is %.9g, want %.9g", what, i,
              freq[i], want);
        if (regimes)
            regimes[want == base                                         ? 0
                    : fabs(want * c->rope_factor - base) <= 1e-12 * base ? 2
                                                                         : 1]++;
    }
    /* The table every backend uses: cos and sin of pos * freq (float product). */
    model_rope_table(c, 64, table);
    for (int p = 0; p < 64; p++)
        for (int i = 0; i < half; i++) {
            const double angle = (double)p * freq[i];
            const float *cs = &table[((size_t)p * half + i) * 2];
            CHECK(t, fabs(cs[0] - cos(angle)) < 2e-5 && fabs(cs[1] - sin(angle)) < 2e-5,
                  "%s: table at position %d pair %d", what, p, i);
        }
    free(table);
}

void test_hf_rope_scaling(test_ctx *t) {
    lc_config c = {.head_dim = 32, .rope_theta = 500000.0f};
    check_freqs(t, &c, "theta 500000", NULL);
    c.rope_scaling = LC_ROPE_SCALING_LINEAR;
    c.rope_factor = 4.0f;
    check_freqs(t, &c, "linear 4", NULL);
    /* tiny-gutenberg-llama3's and Llama 3.1 8B's head sizes: each must meet
     * all three regimes (kept, interpolated, divided) for the test to mean much. */
    c.rope_scaling = LC_ROPE_SCALING_LLAMA3;
    c.rope_factor = 8.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_original_ctx = 8192;
    for (int hd = 32; hd <= 128; hd *= 4) {
        c.head_dim = hd;
        int regimes[3] = {0};
        char what[64];
        snprintf(what, sizeof what, "llama3, head_dim %d", hd);
        check_freqs(t, &c, what, regimes);
        CHECK(t, regimes[0] && regimes[1] && regimes[2], "%s: %d kept, %d interpolated, %d divided",
              what, regimes[0], regimes[1], regimes[2]);
    }
    /* Other factors, e.g. Llama 3.2's factor 32. */
    c.rope_factor = 32.0f;
    c.rope_high_freq_factor = 2.0f;
    check_freqs(t, &c, "llama3 factor 32, high 2", NULL);
}

/* ---- config.json -------------------------------------------------------- */

typedef struct edit {
    const char *key;
    const char *value; /* JSON text; NULL deletes the key */
    lc_status status;  /* LC_OK: loads */
    const char *needle;
} edit;

static lc_status load_edited(test_ctx *t, const char *dir, const cJSON *base, const edit *e,
                             lc_model **m, lc_error *err) {
    cJSON *config = cJSON_Duplicate(base, true);
    cJSON_DeleteItemFromObjectCaseSensitive(config, e->key);
    if (e->value) {
        cJSON *v = cJSON_Parse(e->value);
        CHECK(t, v != NULL, "bad test value %s", e->value);
        cJSON_AddItemToObject(config, e->key, v);
    }
    hf_write_json(dir, "config.json", config);
    cJSON_Delete(config);
    return lc_model_load(dir, m, err);
}

/* A scratch folder holding stories260K.hf's weights; returns its config.json
 * parsed, for the caller to edit and write (NULL after a recorded failure). */
static cJSON *stories_folder(test_ctx *t, char *dir, size_t cap, const char *name) {
    cJSON *base = hf_read_json_shared(t, "models/stories260K.hf/config.json");
    if (!base) return NULL;
    hf_mkdir(dir, cap, name);
    hf_link_shared(dir, "model.safetensors", "models/stories260K.hf/model.safetensors");
    return base;
}

void test_hf_config_errors(test_ctx *t) {
    char dir[1024];
    cJSON *base = stories_folder(t, dir, sizeof dir, "config");
    if (!base) return;
    const lc_status F = LC_ERR_FORMAT, U = LC_ERR_UNSUPPORTED;
    const edit cases[] = {
        {"hidden_size", NULL, F, "missing hidden_size"},
        {"intermediate_size", NULL, F, "missing intermediate_size"},
        {"num_hidden_layers", NULL, F, "missing num_hidden_layers"},
        {"num_attention_heads", NULL, F, "missing num_attention_heads"},
        {"vocab_size", NULL, F, "missing vocab_size"},
        {"max_position_embeddings", NULL, F, "missing max_position_embeddings"},
        {"hidden_size", "-64", F, "hidden_size"},
        {"hidden_size", "0", F, "hidden_size"},
        {"hidden_size", "1e9", F, "hidden_size"},
        {"hidden_size", "64.5", F, "hidden_size"},
        {"hidden_size", "\"64\"", F, "hidden_size"},
        {"num_hidden_layers", "100000", F, "num_hidden_layers"},
        {"num_attention_heads", "7", F, "num_attention_heads 7"},
        {"num_attention_heads", "12", F,
         "hidden_size 64 is not a multiple of num_attention_heads 12"},
        {"num_key_value_heads", "3", F, "num_key_value_heads 3"},
        {"num_key_value_heads", "16", F, "num_key_value_heads 16"},
        {"head_dim", "7", F, "head_dim"},
        {"head_dim", "0", F, "head_dim"},
        {"vocab_size", "0", F, "vocab_size"},
        {"vocab_size", "1000", F, "model.embed_tokens.weight: expected shape [1000, 64]"},
        {"intermediate_size", "100", F, "model.layers.0.mlp.gate_proj.weight"},
        {"max_position_embeddings", "4294967296", F, "max_position_embeddings"},
        {"rms_norm_eps", "-1", F, "rms_norm_eps"},
        {"rms_norm_eps", "\"small\"", F, "rms_norm_eps"},
        {"rope_theta", "0", F, "rope_theta"},
        {"rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", U, "yarn"},
        {"rope_scaling", "{\"factor\":2}", F, "rope_type"},
        {"rope_scaling", "[1]", F, "rope_scaling"},
        {"rope_scaling", "{\"type\":\"linear\"}", F, "factor"},
        {"rope_scaling",
         "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4}", F,
         "original_max_position_embeddings"},
        {"rope_scaling",
         "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,\"high_freq_factor\":1,"
         "\"original_max_position_embeddings\":8192}",
         F, "high_freq_factor"},
        {"rope_scaling",
         "{\"rope_type\":\"llama3\",\"factor\":-8,\"low_freq_factor\":1,\"high_freq_factor\":4,"
         "\"original_max_position_embeddings\":8192}",
         F, "factor"},
        {"architectures", "[\"MistralForCausalLM\"]", U, "MistralForCausalLM"},
        {"model_type", "\"gpt2\"", U, "gpt2"},
        {"attention_bias", "true", U, "attention_bias"},
        {"hidden_act", "\"gelu\"", U, "gelu"},
        {"tie_word_embeddings", "false", F, "lm_head.weight: missing"},
        {"tie_word_embeddings", "\"yes\"", F, "tie_word_embeddings"},
        {"eos_token_id", "\"</s>\"", F, "eos_token_id"},
        {"eos_token_id", "600", F, "eos_token_id"},
        {"eos_token_id", "[2, -1]", F, "eos_token_id"},
        {"eos_token_id", "[2,3,4,5,6,7,8,9,10]", F, "more than"},
        {"bos_token_id", "-1", F, "bos_token_id"},
        /* Accepted: explicit defaults and nulls as transformers reads them. */
        {"head_dim", "8", LC_OK, NULL},
        {"num_key_value_heads", "4", LC_OK, NULL},
        {"eos_token_id", "null", LC_OK, NULL},
        {"rope_scaling", "null", LC_OK, NULL},
        {"rope_scaling", "{\"rope_type\":\"default\"}", LC_OK, NULL},
        {"architectures", NULL, LC_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const edit *e = &cases[i];
        lc_model *m = NULL;
        lc_error err = {0};
        lc_status st = load_edited(t, dir, base, e, &m, &err);
        if (e->status == LC_OK) {
            CHECK(t, st == LC_OK, "%s = %s refused: %s", e->key, e->value, err.msg);
        } else {
            CHECK(t, st == e->status, "%s = %s: status %s, want %s (%s)", e->key,
                  e->value ? e->value : "(deleted)", lc_status_name(st), lc_status_name(e->status),
                  err.msg);
            CHECK(t, st == LC_OK || (strstr(err.msg, dir) && strstr(err.msg, e->needle)),
                  "%s = %s: message lacks the folder or '%s': %s", e->key, e->value, e->needle,
                  err.msg);
        }
        lc_model_free(m);
    }
    /* Files that are not a config at all, and folders that are not models. */
    const struct {
        const char *text, *needle;
    } files[] = {{"{\"hidden_size\": 64,", "malformed JSON"},
                 {"[]", "not a JSON object"},
                 {"{}", "neither architectures nor model_type"},
                 {"", "empty JSON"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        hf_write(dir, "config.json", files[i].text, strlen(files[i].text));
        lc_model *m = NULL;
        lc_error err = {0};
        CHECK(t, lc_model_load(dir, &m, &err) == LC_ERR_FORMAT && strstr(err.msg, files[i].needle),
              "config.json '%s': %s", files[i].text, err.msg);
        lc_model_free(m);
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    lc_model *m = NULL;
    lc_error err = {0};
    CHECK(t, lc_model_load(dir, &m, &err) == LC_ERR_IO && strstr(err.msg, "config.json"),
          "no config.json: %s", err.msg);
    hf_link_shared(dir, "config.json", "models/stories260K.hf/config.json");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    CHECK(t, lc_model_load(dir, &m, &err) == LC_ERR_IO && strstr(err.msg, "model.safetensors"),
          "no weights: %s", err.msg);
    lc_model_free(m);
    cJSON_Delete(base);
    hf_rmdir(dir);
}

/* End-of-sequence ids: config.json's one or list, united with
 * generation_config.json's; rope settings in transformers 5's rope_parameters. */
void test_hf_special_ids_and_rope_parameters(test_ctx *t) {
    char dir[1024];
    cJSON *base = stories_folder(t, dir, sizeof dir, "special");
    if (!base) return;
    cJSON *c = cJSON_Duplicate(base, true);
    cJSON_ReplaceItemInObject(c, "eos_token_id", cJSON_Parse("[2, 3]"));
    cJSON_DeleteItemFromObject(c, "rope_theta");
    cJSON_AddItemToObject(c, "rope_parameters",
                          cJSON_Parse("{\"rope_type\":\"llama3\",\"rope_theta\":500000,"
                                      "\"factor\":32,\"low_freq_factor\":1,"
                                      "\"high_freq_factor\":4,"
                                      "\"original_max_position_embeddings\":8192}"));
    hf_write_json(dir, "config.json", c);
    const char *gen = "{\"bos_token_id\": 1, \"eos_token_id\": [3, 5, 2]}";
    hf_write(dir, "generation_config.json", gen, strlen(gen));
    lc_model *m = NULL;
    lc_error err;
    CHECK(t, lc_model_load(dir, &m, &err) == LC_OK, "%s", err.msg);
    if (m) {
        const lc_token *eos;
        int n = lc_model_eos_ids(m, &eos);
        CHECK(t, n == 3 && eos[0] == 2 && eos[1] == 3 && eos[2] == 5, "eos ids (%d)", n);
        const lc_config *k = lc_model_config(m);
        CHECK(t,
              k->rope_theta == 500000.0f && k->rope_scaling == LC_ROPE_SCALING_LLAMA3 &&
                  k->rope_factor == 32.0f && k->rope_original_ctx == 8192,
              "rope_parameters misread");
    }
    lc_model_free(m);
    m = NULL;
    hf_write(dir, "generation_config.json", "{\"eos_token_id\": 9999}", 22);
    CHECK(t, lc_model_load(dir, &m, &err) == LC_ERR_FORMAT && strstr(err.msg, "generation_config"),
          "a generation_config eos outside the vocabulary: %s", err.msg);
    lc_model_free(m);
    /* A GGUF names its ids in the tokenizer metadata. */
    if ((m = load_shared_model(t, "models/llama-2-tiny-random.gguf"))) {
        const lc_token *eos;
        CHECK(t, lc_model_eos_ids(m, &eos) == 1 && eos[0] == 2 && lc_model_bos_id(m) == 1,
              "GGUF special ids");
        lc_model_free(m);
    }
    cJSON_Delete(c);
    cJSON_Delete(base);
    hf_rmdir(dir);
}

/* ---- f16 and bf16 weights ------------------------------------------------ */

/* stories260K.hf with every tensor stored as `dtype`, starting `skew` bytes
 * into the data area (1: every tensor misaligned, so copied at load). */
static void write_converted(const char *dir, const st_file *f, lc_dtype dtype, size_t skew) {
    cJSON *h = cJSON_CreateObject();
    uint8_t *data = calloc(1, skew + f->data_len);
    size_t at = skew;
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header) {
        if (!strcmp(e->string, "__metadata__")) continue;
        size_t bytes;
        const float *src = (const float *)(const void *)st_tensor(f, e->string, &bytes);
        const int64_t n = (int64_t)(bytes / 4);
        cJSON *copy = cJSON_Duplicate(e, true);
        cJSON_ReplaceItemInObject(copy, "dtype",
                                  cJSON_CreateString(dtype == LC_DTYPE_F16 ? "F16" : "BF16"));
        cJSON *off = cJSON_GetObjectItem(copy, "data_offsets");
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 0), (double)at);
        cJSON_SetNumberValue(cJSON_GetArrayItem(off, 1), (double)(at + (size_t)n * 2));
        uint16_t *tmp = malloc((size_t)n * 2);
        quantize_row(dtype, src, tmp, n);
        memcpy(data + at, tmp, (size_t)n * 2);
        free(tmp);
        at += (size_t)n * 2;
        cJSON_AddItemToObject(h, e->string, copy);
    }
    st_write(dir, "model.safetensors", h, data, at);
    cJSON_Delete(h);
    free(data);
}

/* Each weight of the f16/bf16 folder equals the .bin's converted to that
 * dtype, byte for byte: q and k rows were permuted, not just copied. */
static void check_converted(test_ctx *t, const lc_model *hf, const lc_model *bin, lc_dtype dtype) {
    weight *wa[64], *wb[64];
    const int n = model_weight_list(&hf->weights, hf->config.n_layers, wa, 64);
    model_weight_list(&bin->weights, bin->config.n_layers, wb, 64);
    for (int i = 0; i < n && i < 64; i++) {
        const weight *h = wa[i], *b = wb[i];
        const int64_t count = b->rows * b->cols;
        uint16_t *half = malloc((size_t)count * 2);
        float *back = malloc((size_t)count * 4);
        quantize_row(dtype, b->data, half, count);
        dequantize_row(dtype, half, back, count);
        if (b->cols == 1) /* a norm: f32 holding the rounded values */
            CHECK(t, h->dtype == LC_DTYPE_F32 && !memcmp(h->data, back, (size_t)count * 4),
                  "%s norm %d differs", lc_dtype_name(dtype), i);
        else
            CHECK(t, h->dtype == dtype && !memcmp(h->data, half, (size_t)count * 2),
                  "%s weight %d (%lld x %lld) differs", lc_dtype_name(dtype), i, (long long)b->rows,
                  (long long)b->cols);
        CHECK(t, (uintptr_t)h->data % 2 == 0, "weight %d is misaligned", i);
        free(half);
        free(back);
    }
}

void test_hf_half_precision_weights(test_ctx *t) {
    st_file f;
    if (!st_read_shared(t, "models/stories260K.hf/model.safetensors", &f)) return;
    lc_model *bin = load_shared_model(t, "models/stories260K.bin");
    char dir[1024];
    hf_mkdir(dir, sizeof dir, "half");
    hf_link_shared(dir, "config.json", "models/stories260K.hf/config.json");
    const lc_dtype dtypes[] = {LC_DTYPE_F16, LC_DTYPE_BF16};
    for (int k = 0; k < 2 && bin; k++) {
        write_converted(dir, &f, dtypes[k], (size_t)k); /* bf16 at odd offsets */
        lc_model *m = NULL;
        lc_error err;
        CHECK(t, lc_model_load(dir, &m, &err) == LC_OK, "%s", err.msg);
        if (m) {
            check_converted(t, m, bin, dtypes[k]);
            /* It runs, and predicts like the f32 model at the first position. */
            const lc_token ids[] = {1, 403};
            const lc_engine_options cpu = {.device = "cpu"};
            float *x = golden_run(t, m, ids, 2, &cpu, 2), *y = golden_run(t, bin, ids, 2, &cpu, 2);
            float worst = 0;
            for (int i = 0; x && y && i < 2 * 512; i++) worst = fmaxf(worst, fabsf(x[i] - y[i]));
            CHECK(t, x && y && worst < 0.2f, "%s logits differ from f32 by %g",
                  lc_dtype_name(dtypes[k]), worst);
            free(x);
            free(y);
        }
        lc_model_free(m);
    }
    lc_model_free(bin);
    st_free(&f);
    hf_rmdir(dir);
}
