#include "model/llama_hf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/json_file.h"
#include "formats/llama2c.h"
#include "formats/quant.h"
#include "formats/safetensors.h"

#define TOKENIZER_CONFIG_MAX_BYTES ((size_t)64 << 20) /* holds every added token's entry */
#define CONFIG_MAX_BYTES (16u << 20)
#define OWNED_ALIGN      64

/* ---- config.json ------------------------------------------------------- */

static const cJSON *item(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v; /* null means "not set", as transformers reads it */
}

/* An integer key in [lo, hi]; absent leaves *out alone unless required. */
static lc_status get_int(const cJSON *obj, const char *file, const char *key, bool required,
                         int64_t lo, int64_t hi, int64_t *out, lc_error *err) {
    const cJSON *v = item(obj, key);
    if (!v) return required ? lc_fail(err, LC_ERR_FORMAT, "%s: missing %s", file, key) : LC_OK;
    if (!json_int(v, lo, hi, out))
        return lc_fail(err, LC_ERR_FORMAT, "%s: %s is not an integer in [%lld, %lld]", file, key,
                       (long long)lo, (long long)hi);
    return LC_OK;
}

/* A number key in the open range (lo, hi); absent leaves *out alone. */
static lc_status get_num(const cJSON *obj, const char *file, const char *key, double lo, double hi,
                         double *out, lc_error *err) {
    const cJSON *v = item(obj, key);
    if (!v) return LC_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > lo && v->valuedouble < hi))
        return lc_fail(err, LC_ERR_FORMAT, "%s: %s is not a number in (%g, %g)", file, key, lo, hi);
    *out = v->valuedouble;
    return LC_OK;
}

static bool has_string(const cJSON *v, const char *s) {
    if (cJSON_IsString(v)) return !strcmp(v->valuestring, s);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return true;
    return false;
}

/* LlamaForCausalLM only: other architectures would load and then run wrong. */
static lc_status check_architecture(const cJSON *root, const char *file, lc_error *err) {
    const cJSON *arch = item(root, "architectures"), *type = item(root, "model_type");
    if (!arch && !type)
        return lc_fail(err, LC_ERR_FORMAT, "%s: neither architectures nor model_type is set", file);
    if (type && !has_string(type, "llama"))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "%s: model_type %.64s is not supported (llama is)",
                       file, cJSON_IsString(type) ? type->valuestring : "(not a string)");
    if (arch && !has_string(arch, "LlamaForCausalLM")) {
        const cJSON *first = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : arch;
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "%s: architecture %.64s is not supported (LlamaForCausalLM is)", file,
                       cJSON_IsString(first) ? first->valuestring : "(not a string)");
    }
    /* Variants of the architecture whose extra weights or activation we do not run. */
    const char *no_bias[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (cJSON_IsTrue(item(root, no_bias[i])))
            return lc_fail(err, LC_ERR_UNSUPPORTED, "%s: %s true is not supported", file,
                           no_bias[i]);
    const cJSON *act = item(root, "hidden_act");
    if (act && !has_string(act, "silu"))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "%s: hidden_act %.32s is not supported (silu is)",
                       file, cJSON_IsString(act) ? act->valuestring : "(not a string)");
    return LC_OK;
}

/* rope_theta and rope_scaling; transformers 5 may keep both in rope_parameters. */
static lc_status read_rope(const cJSON *root, const char *file, lc_config *c, lc_error *err) {
    const cJSON *params = item(root, "rope_parameters");
    double theta = 10000.0;
    lc_status st = get_num(params, file, "rope_theta", 1, 1e12, &theta, err);
    if (st || (st = get_num(root, file, "rope_theta", 1, 1e12, &theta, err))) return st;
    c->rope_theta = (float)theta;
    const cJSON *s = item(root, "rope_scaling");
    if (!s) s = params;
    if (!s) return LC_OK;
    if (!cJSON_IsObject(s))
        return lc_fail(err, LC_ERR_FORMAT, "%s: rope_scaling is not an object", file);
    const cJSON *type = item(s, "rope_type");
    if (!type) type = item(s, "type");
    if (!cJSON_IsString(type))
        return lc_fail(err, LC_ERR_FORMAT, "%s: rope_scaling has no rope_type string", file);
    const char *t = type->valuestring;
    if (!strcmp(t, "default")) return LC_OK;
    double factor = 0, low = 0, high = 0;
    int64_t orig = 0;
    if ((st = get_num(s, file, "factor", 0, 1e6, &factor, err))) return st;
    if (!strcmp(t, "linear")) {
        if (!factor)
            return lc_fail(err, LC_ERR_FORMAT, "%s: rope_scaling linear has no factor", file);
        c->rope_scaling = LC_ROPE_SCALING_LINEAR;
        c->rope_factor = (float)factor;
        return LC_OK;
    }
    if (strcmp(t, "llama3") != 0)
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "%s: rope_scaling type %.32s is not supported (llama3 and linear are)", file,
                       t);
    if ((st = get_num(s, file, "low_freq_factor", 0, 1e6, &low, err)) ||
        (st = get_num(s, file, "high_freq_factor", 0, 1e6, &high, err)) ||
        (st = get_int(s, file, "original_max_position_embeddings", true, 1, 1 << 24, &orig, err)))
        return st;
    if (!factor || !low || !high)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: rope_scaling llama3 needs factor, low_freq_factor and high_freq_factor",
                       file);
    if (!(high > low))
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: rope_scaling high_freq_factor %g is not above low_freq_factor %g", file,
                       high, low);
    c->rope_scaling = LC_ROPE_SCALING_LLAMA3;
    c->rope_factor = (float)factor;
    c->rope_low_freq_factor = (float)low;
    c->rope_high_freq_factor = (float)high;
    c->rope_original_ctx = (int32_t)orig;
    return LC_OK;
}

/* One id or a list of ids, each in the vocabulary, added to ids[] once each. */
static lc_status add_ids(const cJSON *v, const char *file, const char *key, int32_t vocab,
                         lc_token *ids, int *n, lc_error *err) {
    if (!v) return LC_OK;
    const cJSON *one = v, *next = NULL;
    if (cJSON_IsArray(v)) one = v->child;
    for (; one; one = next) {
        next = cJSON_IsArray(v) ? one->next : NULL;
        int64_t id;
        if (!json_int(one, 0, vocab - 1, &id))
            return lc_fail(err, LC_ERR_FORMAT, "%s: %s holds something other than ids in [0, %d)",
                           file, key, vocab);
        bool seen = false;
        for (int i = 0; i < *n; i++) seen |= ids[i] == id;
        if (seen) continue;
        if (*n == MODEL_MAX_EOS)
            return lc_fail(err, LC_ERR_FORMAT, "%s: %s: more than %d ids", file, key,
                           MODEL_MAX_EOS);
        ids[(*n)++] = (lc_token)id;
    }
    return LC_OK;
}

lc_status llama_hf_config(const cJSON *root, const char *file, lc_config *c, model_tokens *special,
                          lc_error *err) {
    memset(c, 0, sizeof *c);
    special->bos = -1;
    special->n_eos = 0;
    if (!cJSON_IsObject(root)) return lc_fail(err, LC_ERR_FORMAT, "%s: not a JSON object", file);
    lc_status st = check_architecture(root, file, err);
    if (st) return st;
    /* The same bounds llama2c_check_config applies, under config.json's names. */
    const struct {
        const char *key;
        bool required;
        int32_t *field, max;
    } ints[] = {
        {"hidden_size", true, &c->dim, 1 << 16},
        {"intermediate_size", true, &c->hidden_dim, 1 << 20},
        {"num_hidden_layers", true, &c->n_layers, 1024},
        {"num_attention_heads", true, &c->n_heads, 1024},
        {"num_key_value_heads", false, &c->n_kv_heads, 1024},
        {"head_dim", false, &c->head_dim, 1 << 12},
        {"vocab_size", true, &c->vocab_size, 1 << 22},
        {"max_position_embeddings", true, &c->seq_len, 1 << 20},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        if ((st = get_int(root, file, ints[i].key, ints[i].required, 1, ints[i].max, &v, err)))
            return st;
        *ints[i].field = (int32_t)v;
    }
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       file, c->n_heads, c->n_kv_heads);
    if (!c->head_dim && c->dim % c->n_heads)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: hidden_size %d is not a multiple of num_attention_heads %d (and no "
                       "head_dim is given)",
                       file, c->dim, c->n_heads);
    double eps = 1e-6; /* LlamaConfig's default */
    if ((st = get_num(root, file, "rms_norm_eps", 0, 1, &eps, err))) return st;
    c->norm_eps = (float)eps;
    if ((st = read_rope(root, file, c, err))) return st;
    const cJSON *tie = item(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie))
        return lc_fail(err, LC_ERR_FORMAT, "%s: tie_word_embeddings is not true or false", file);
    c->shared_classifier = cJSON_IsTrue(tie); /* LlamaConfig's default is false */
    if ((st = llama2c_check_config(c, err))) {
        lc_fail_prefix(err, file);
        return st;
    }
    if (!c->head_dim) c->head_dim = c->dim / c->n_heads;
    int64_t bos = -1;
    if ((st = get_int(root, file, "bos_token_id", false, 0, c->vocab_size - 1, &bos, err)))
        return st;
    special->bos = (lc_token)bos;
    return add_ids(item(root, "eos_token_id"), file, "eos_token_id", c->vocab_size, special->eos,
                   &special->n_eos, err);
}

/* dir/name (written to path) parsed into *root, or *root NULL when the file
 * is not there. */
static lc_status read_optional_json(const char *dir, const char *name, size_t max_bytes,
                                    char (*path)[4096], cJSON **root, lc_error *err) {
    *root = NULL;
    if ((size_t)snprintf(*path, sizeof *path, "%s/%s", dir, name) >= sizeof *path)
        return lc_fail(err, LC_ERR_ARG, "%s: path too long", dir);
    FILE *f = fopen(*path, "rb");
    if (!f) return LC_OK;
    fclose(f);
    lc_status st = json_read_file(*path, max_bytes, root, err);
    if (!st && !cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        st = lc_fail(err, LC_ERR_FORMAT, "%s: not a JSON object", *path);
    }
    return st;
}

/* generation_config.json, when present, may list more end-of-sequence ids
 * (Llama 3 Instruct's <|eot_id|> is often only there). */
static lc_status read_generation_config(const char *dir, lc_config *c, model_tokens *special,
                                        lc_error *err) {
    char path[4096];
    cJSON *root;
    lc_status st =
        read_optional_json(dir, "generation_config.json", CONFIG_MAX_BYTES, &path, &root, err);
    if (!st && root)
        st = add_ids(item(root, "eos_token_id"), path, "eos_token_id", c->vocab_size, special->eos,
                     &special->n_eos, err);
    cJSON_Delete(root);
    return st;
}

/* tokenizer_config.json's chat_template, when present: a string, or a list
 * of {name, template} of which "default" is the chat one. A file that is
 * there but broken is an error (the chat would silently use another format). */
static lc_status read_chat_template(const char *dir, char **out, lc_error *err) {
    char path[4096];
    cJSON *root;
    lc_status st = read_optional_json(dir, "tokenizer_config.json", TOKENIZER_CONFIG_MAX_BYTES,
                                      &path, &root, err);
    if (st || !root) return st;
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsArray(tpl)) {
        const cJSON *entry, *chosen = NULL;
        cJSON_ArrayForEach(entry, tpl) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "name");
            if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0)
                chosen = cJSON_GetObjectItemCaseSensitive(entry, "template");
        }
        tpl = chosen;
    }
    if (cJSON_IsString(tpl) && !(*out = strdup(tpl->valuestring)))
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
    cJSON_Delete(root);
    return st;
}

/* ---- tensor names ------------------------------------------------------- */

typedef enum role { PLAIN, NORM, ROPE_Q, ROPE_K } role;
typedef enum size_of { NONE, DIM, HIDDEN, VOCAB, Q_DIM, KV_DIM } size_of;

/* Hugging Face's names onto the model's, with each tensor's {rows, cols}. */
static const struct hf_name {
    const char *hf, *ours; /* per layer: after "model.layers.N." and "blk.N." */
    bool per_layer;
    role role;
    size_of rows, cols;
} HF_NAMES[] = {
    {"model.embed_tokens.weight", "token_embd.weight", false, PLAIN, VOCAB, DIM},
    {"model.norm.weight", "output_norm.weight", false, NORM, DIM, NONE},
    {"lm_head.weight", "output.weight", false, PLAIN, VOCAB, DIM},
    {"input_layernorm.weight", "attn_norm.weight", true, NORM, DIM, NONE},
    {"self_attn.q_proj.weight", "attn_q.weight", true, ROPE_Q, Q_DIM, DIM},
    {"self_attn.k_proj.weight", "attn_k.weight", true, ROPE_K, KV_DIM, DIM},
    {"self_attn.v_proj.weight", "attn_v.weight", true, PLAIN, KV_DIM, DIM},
    {"self_attn.o_proj.weight", "attn_output.weight", true, PLAIN, DIM, Q_DIM},
    {"post_attention_layernorm.weight", "ffn_norm.weight", true, NORM, DIM, NONE},
    {"mlp.gate_proj.weight", "ffn_gate.weight", true, PLAIN, HIDDEN, DIM},
    {"mlp.up_proj.weight", "ffn_up.weight", true, PLAIN, HIDDEN, DIM},
    {"mlp.down_proj.weight", "ffn_down.weight", true, PLAIN, DIM, HIDDEN},
};
#define N_HF_NAMES (sizeof HF_NAMES / sizeof HF_NAMES[0])

static int64_t size_value(const lc_config *c, size_of s) {
    switch (s) {
    case DIM: return c->dim;
    case HIDDEN: return c->hidden_dim;
    case VOCAB: return c->vocab_size;
    case Q_DIM: return (int64_t)c->n_heads * c->head_dim;
    case KV_DIM: return (int64_t)c->n_kv_heads * c->head_dim;
    case NONE: break;
    }
    return 0;
}

/* A tensor the model uses, found under its Hugging Face name. */
typedef struct found {
    tensor *t;
    role role;
    char ours[TENSOR_NAME_MAX];
    uint64_t bytes;
    bool copy; /* goes into owned memory */
} found;

static tensor *find(tensor_table *tt, const char *name) {
    for (int i = 0; i < tt->count; i++)
        if (!strcmp(tt->items[i].name, name)) return &tt->items[i];
    return NULL;
}

/* Every tensor the config calls for, checked for shape under its file name.
 * Returns how many were found into out[] (at most N_HF_NAMES * layers). */
static lc_status find_all(const lc_config *c, tensor_table *tt, const char *dir, found *out, int *n,
                          lc_error *err) {
    *n = 0;
    char hf[TENSOR_NAME_MAX];
    for (int l = 0; l < c->n_layers; l++)
        for (size_t k = 0; k < N_HF_NAMES; k++) {
            const struct hf_name *e = &HF_NAMES[k];
            if (!e->per_layer && l > 0) continue;
            if (!strcmp(e->ours, "output.weight") && c->shared_classifier) continue;
            found *f = &out[*n];
            if (e->per_layer) {
                snprintf(hf, sizeof hf, "model.layers.%d.%s", l, e->hf);
                snprintf(f->ours, sizeof f->ours, "blk.%d.%s", l, e->ours);
            } else {
                snprintf(hf, sizeof hf, "%s", e->hf);
                snprintf(f->ours, sizeof f->ours, "%s", e->ours);
            }
            const int64_t shape[2] = {size_value(c, e->rows), size_value(c, e->cols)};
            const int n_dims = e->cols == NONE ? 1 : 2;
            if (!tensor_table_get(tt, hf, LC_DTYPE_COUNT, n_dims, shape, err)) {
                if (!find(tt, hf) && !strcmp(e->ours, "output.weight"))
                    lc_fail(err, LC_ERR_FORMAT,
                            "tensor lm_head.weight: missing (and tie_word_embeddings is false)");
                lc_fail_prefix(err, dir);
                return err ? err->status : LC_ERR_FORMAT;
            }
            f->t = find(tt, hf);
            f->role = e->role;
            (*n)++;
        }
    return LC_OK;
}

static uint64_t round_up(uint64_t x) { return (x + OWNED_ALIGN - 1) / OWNED_ALIGN * OWNED_ALIGN; }

/* Rows of one head in llamac's order: row i of the first half and row i of
 * the second half (transformers' rotate-half partners) become rows 2i and
 * 2i + 1, the adjacent pair llamac rotates. Byte-wise, so any dtype. */
static void permute_rope_rows(const uint8_t *src, uint8_t *dst, int64_t n_heads, int64_t head_dim,
                              size_t row_bytes) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        const uint8_t *s = src + (size_t)(h * head_dim) * row_bytes;
        uint8_t *d = dst + (size_t)(h * head_dim) * row_bytes;
        for (int64_t i = 0; i < half; i++) {
            memcpy(d + (size_t)(2 * i) * row_bytes, s + (size_t)i * row_bytes, row_bytes);
            memcpy(d + (size_t)(2 * i + 1) * row_bytes, s + (size_t)(half + i) * row_bytes,
                   row_bytes);
        }
    }
}

/* A norm as f32, read with memcpy: its offset in the file may be odd. */
static void norm_to_f32(const tensor *t, float *out) {
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < t->shape[0]; i++) {
        uint16_t h;
        if (t->dtype == LC_DTYPE_F32) {
            memcpy(&out[i], p + 4 * i, sizeof(float));
            continue;
        }
        memcpy(&h, p + 2 * i, sizeof h);
        out[i] = t->dtype == LC_DTYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
}

/* Converts what the model cannot bind as stored into one owned buffer: q and
 * k permuted, norms as f32, and any tensor not aligned to its element size
 * (the mapping is page-aligned, offsets need not be). Then renames. */
static lc_status convert(const lc_config *c, found *fs, int n, void **owned, lc_error *err) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        found *f = &fs[i];
        const uint64_t elems = (uint64_t)tensor_n_elements(f->t);
        const size_t esize = dtype_info(f->t->dtype)->block_bytes;
        const bool misaligned = (uintptr_t)f->t->data % esize != 0;
        f->copy = f->role != PLAIN || misaligned;
        if (f->role == NORM && f->t->dtype == LC_DTYPE_F32 && !misaligned) f->copy = false;
        f->bytes = elems * (f->role == NORM ? sizeof(float) : esize);
        if (f->copy) total += round_up(f->bytes);
    }
    uint8_t *buf = total ? aligned_alloc(OWNED_ALIGN, (size_t)total) : NULL;
    if (total && !buf)
        return lc_fail(err, LC_ERR_NOMEM, "out of memory for %llu bytes of converted weights",
                       (unsigned long long)total);
    uint8_t *at = buf;
    for (int i = 0; i < n; i++) {
        found *f = &fs[i];
        tensor *t = f->t;
        if (f->copy) {
            const size_t row_bytes = (size_t)dtype_row_bytes(t->dtype, t->shape[t->n_dims - 1]);
            if (f->role == ROPE_Q || f->role == ROPE_K)
                permute_rope_rows(t->data, at, f->role == ROPE_Q ? c->n_heads : c->n_kv_heads,
                                  c->head_dim, row_bytes);
            else if (f->role == NORM)
                norm_to_f32(t, (float *)(void *)at);
            else
                memcpy(at, t->data, (size_t)f->bytes);
            if (f->role == NORM) t->dtype = LC_DTYPE_F32;
            t->data = at;
            at += round_up(f->bytes);
        }
        strcpy(t->name, f->ours);
    }
    *owned = buf;
    return LC_OK;
}

/* "safetensors (bf16), 1 shard": the dtype of most matrix bytes. */
static void describe(lc_model *m, const found *fs, int n) {
    uint64_t bytes[LC_DTYPE_COUNT] = {0};
    for (int i = 0; i < n; i++)
        if (fs[i].role != NORM) bytes[fs[i].t->dtype] += fs[i].bytes;
    int main = 0;
    for (int d = 1; d < LC_DTYPE_COUNT; d++) main = bytes[d] > bytes[main] ? d : main;
    const int shards = m->safetensors->n_files;
    snprintf(m->format, sizeof m->format, "safetensors (%s), %d shard%s",
             lc_dtype_name((lc_dtype)main), shards, shards == 1 ? "" : "s");
}

lc_status llama_hf_load(lc_model *m, const char *dir, lc_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return lc_fail(err, LC_ERR_ARG, "%s: path too long", dir);
    cJSON *root;
    lc_status st = json_read_file(path, CONFIG_MAX_BYTES, &root, err);
    if (st == LC_ERR_IO)
        return lc_fail(err, LC_ERR_IO,
                       "%s: a directory without a readable config.json (a Hugging Face model "
                       "folder holds config.json and model.safetensors)",
                       dir);
    if (st) return st;
    st = llama_hf_config(root, path, &m->config, &m->special, err);
    cJSON_Delete(root);
    if (st || (st = read_generation_config(dir, &m->config, &m->special, err)) ||
        (st = read_chat_template(dir, &m->chat_template, err)))
        return st;

    if (!(m->safetensors = calloc(1, sizeof *m->safetensors)))
        return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    if ((st = safetensors_open(m->safetensors, dir, &m->tensors, err))) return st;
    found *fs = malloc(((size_t)m->config.n_layers * N_HF_NAMES + 3) * sizeof *fs);
    if (!fs) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    int n;
    if (!(st = find_all(&m->config, &m->tensors, dir, fs, &n, err)) &&
        !(st = convert(&m->config, fs, n, &m->owned, err)))
        describe(m, fs, n);
    free(fs);
    return st;
}
