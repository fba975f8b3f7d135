#include "model/llama_gguf.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "formats/llama2c.h"

/* The vocabulary size: llama.vocab_size when present, else the rows of the
 * embedding table (GGUF's ne[1]). */
static lc_status vocab_size(const gguf_file *g, int64_t *n, lc_error *err) {
    *n = 0;
    lc_status st = gguf_get_int(g, "llama.vocab_size", true, 1, INT32_MAX, n, err);
    if (st || *n) return st;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        if (gguf_str_eq(t->name, "token_embd.weight") && t->n_dims == 2) {
            if (t->ne[1] > INT32_MAX) break;
            *n = (int64_t)t->ne[1];
            return LC_OK;
        }
    }
    return lc_fail(err, LC_ERR_FORMAT,
                   "no llama.vocab_size and no 2-D token_embd.weight to take it from");
}

/* llama.rope.scaling.type: "linear" with its factor, or none. Llama 3.1
 * scaling comes as the rope_freqs.weight tensor instead (llama_gguf_rope_freqs). */
static lc_status rope_scaling(const gguf_file *g, lc_config *cfg, lc_error *err) {
    gguf_str type = {0};
    lc_status st = gguf_get_string(g, "llama.rope.scaling.type", true, &type, err);
    if (st || !type.ptr || gguf_str_eq(type, "none")) return st;
    if (!gguf_str_eq(type, "linear"))
        return lc_fail(err, LC_ERR_UNSUPPORTED,
                       "llama.rope.scaling.type '%.*s' is not supported (linear is)",
                       (int)(type.len > 32 ? 32 : type.len), type.ptr);
    double factor = 0;
    if ((st = gguf_get_float(g, "llama.rope.scaling.factor", false, &factor, err))) return st;
    if (!(factor > 0 && factor < 1e6))
        return lc_fail(err, LC_ERR_FORMAT, "llama.rope.scaling.factor %g is out of range (0, 1e6)",
                       factor);
    cfg->rope_scaling = LC_ROPE_SCALING_LINEAR;
    cfg->rope_factor = (float)factor;
    return LC_OK;
}

lc_status llama_gguf_rope_freqs(const tensor_table *tensors, lc_config *cfg, lc_error *err) {
    const tensor *t = NULL;
    for (int i = 0; i < tensors->count && !t; i++)
        if (strcmp(tensors->items[i].name, "rope_freqs.weight") == 0) t = &tensors->items[i];
    if (!t) return LC_OK;
    const int64_t shape[1] = {cfg->head_dim / 2};
    if (!(t = tensor_table_get(tensors, "rope_freqs.weight", LC_DTYPE_F32, 1, shape, err)))
        return err ? err->status : LC_ERR_FORMAT;
    const float *f = t->data;
    if ((uintptr_t)f % _Alignof(float))
        return lc_fail(err, LC_ERR_FORMAT, "rope_freqs.weight is not aligned for float reads");
    for (int64_t i = 0; i < shape[0]; i++)
        if (!(isfinite(f[i]) && f[i] > 0))
            return lc_fail(err, LC_ERR_FORMAT,
                           "rope_freqs.weight[%lld] = %g: a frequency divisor must be finite and "
                           "positive",
                           (long long)i, (double)f[i]);
    cfg->rope_freq_factors = f;
    return LC_OK;
}

lc_status llama_gguf_config(const gguf_file *g, lc_config *cfg, lc_error *err) {
    memset(cfg, 0, sizeof *cfg);
    llama2c_default_hparams(cfg);
    gguf_str arch;
    lc_status st = gguf_get_string(g, "general.architecture", false, &arch, err);
    if (st) return st;
    if (!gguf_str_eq(arch, "llama"))
        return lc_fail(err, LC_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (llama is)",
                       (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    /* Each key is read into an int64 in [1, INT32_MAX]; llama2c_check_config
     * then applies the project's tighter bounds and consistency checks. */
    struct {
        const char *key;
        bool required;
        int32_t *field;
    } ints[] = {
        {"llama.context_length", true, &cfg->seq_len},
        {"llama.embedding_length", true, &cfg->dim},
        {"llama.block_count", true, &cfg->n_layers},
        {"llama.feed_forward_length", true, &cfg->hidden_dim},
        {"llama.attention.head_count", true, &cfg->n_heads},
        {"llama.attention.head_count_kv", false, &cfg->n_kv_heads},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        if ((st = gguf_get_int(g, ints[i].key, !ints[i].required, 1, INT32_MAX, &v, err)))
            return st;
        *ints[i].field = (int32_t)v;
    }
    if (!cfg->n_kv_heads) cfg->n_kv_heads = cfg->n_heads; /* absent: no grouped-query attention */
    int64_t vocab;
    if ((st = vocab_size(g, &vocab, err))) return st;
    cfg->vocab_size = (int32_t)vocab;
    double theta = cfg->rope_theta, eps = cfg->norm_eps;
    if ((st = gguf_get_float(g, "llama.rope.freq_base", true, &theta, err))) return st;
    if ((st = gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", false, &eps, err)))
        return st;
    if (!(theta > 1 && theta < 1e12))
        return lc_fail(err, LC_ERR_FORMAT, "llama.rope.freq_base %g is out of range", theta);
    if (!(eps > 0 && eps < 1))
        return lc_fail(err, LC_ERR_FORMAT,
                       "llama.attention.layer_norm_rms_epsilon %g is out of range (0, 1)", eps);
    cfg->rope_theta = (float)theta;
    cfg->norm_eps = (float)eps;
    /* attention.key_length: the head size when it is not dim / heads (the
     * Hugging Face head_dim); values and queries share it, and every head is
     * rotated in full: files that say otherwise describe a model we would
     * run wrong. */
    int64_t head = 0;
    if ((st = gguf_get_int(g, "llama.attention.key_length", true, 1, 1 << 12, &head, err)))
        return st;
    if (head && (cfg->dim % cfg->n_heads || head != cfg->dim / cfg->n_heads))
        cfg->head_dim = (int32_t)head;
    if ((st = llama2c_check_config(cfg, err))) return st;
    if (!cfg->head_dim) cfg->head_dim = cfg->dim / cfg->n_heads;
    const char *per_head[] = {"llama.rope.dimension_count", "llama.attention.key_length",
                              "llama.attention.value_length"};
    for (size_t i = 0; i < sizeof per_head / sizeof per_head[0]; i++) {
        int64_t v = cfg->head_dim;
        if ((st = gguf_get_int(g, per_head[i], true, 1, INT32_MAX, &v, err))) return st;
        if (v != cfg->head_dim)
            return lc_fail(err, LC_ERR_UNSUPPORTED, "%s is %lld but the head size is %d",
                           per_head[i], (long long)v, cfg->head_dim);
    }
    if ((st = rope_scaling(g, cfg, err))) return st;
    cfg->shared_classifier = true;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gguf_str_eq(g->tensors[i].name, "output.weight")) cfg->shared_classifier = false;
    return LC_OK;
}

lc_status llama_gguf_special(const gguf_file *g, int32_t vocab_size, model_tokens *special,
                             lc_error *err) {
    special->bos = -1;
    special->n_eos = 0;
    const char *keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.eot_token_id"};
    for (int i = 0; i < 3; i++) {
        int64_t id = -1;
        lc_status st = gguf_get_int(g, keys[i], true, 0, vocab_size - 1, &id, err);
        if (st) return st;
        if (id < 0) continue;
        if (i == 0)
            special->bos = (lc_token)id;
        else if (special->n_eos == 0 || special->eos[0] != id)
            special->eos[special->n_eos++] = (lc_token)id;
    }
    return LC_OK;
}
