#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "model/llama_gguf.h"
#include "model/llama_hf.h"
#include "tokenizer/tokenizer.h"

typedef struct binder {
    const tensor_table *tensors;
    lc_error *err;
} binder;

/* Looks up `name` with the expected {rows, cols} (cols 0 for a vector).
 * Norms are f32, which every backend reads directly; a matrix may be of any
 * dtype whose blocks tile its rows (the weight carries it; backends say
 * which they compute). */
static lc_status bind(const binder *b, weight *w, const char *name, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    lc_dtype dtype = LC_DTYPE_F32;
    for (int i = 0; cols && i < b->tensors->count; i++)
        if (strcmp(b->tensors->items[i].name, name) == 0) dtype = b->tensors->items[i].dtype;
    if (cols && dtype_row_bytes(dtype, cols) < 0)
        return lc_fail(b->err, LC_ERR_FORMAT, "tensor %s: rows of %lld are not whole %s blocks",
                       name, (long long)cols, lc_dtype_name(dtype));
    const tensor *t = tensor_table_get(b->tensors, name, dtype, cols ? 2 : 1, shape, b->err);
    if (!t) return b->err ? b->err->status : LC_ERR_FORMAT;
    w->data = t->data;
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols ? cols : 1;
    return LC_OK;
}

static lc_status bind_layer(const binder *b, weight *w, int layer, const char *suffix, int64_t rows,
                            int64_t cols) {
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "blk.%d.%s", layer, suffix);
    return bind(b, w, name, rows, cols);
}

static lc_status bind_weights(lc_model *m, lc_error *err) {
    const lc_config *c = &m->config;
    const int64_t dim = c->dim, hidden = c->hidden_dim, vocab = c->vocab_size;
    const int64_t q_dim = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    binder b = {&m->tensors, err};
    model_weights *w = &m->weights;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) return lc_fail(err, LC_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
    lc_status st;
#define B(call)                                                                                    \
    if ((st = (call)) != LC_OK) return st
    B(bind(&b, &w->token_embd, "token_embd.weight", vocab, dim));
    B(bind(&b, &w->output_norm, "output_norm.weight", dim, 0));
    if (c->shared_classifier)
        w->output = w->token_embd;
    else
        B(bind(&b, &w->output, "output.weight", vocab, dim));
    for (int l = 0; l < c->n_layers; l++) {
        layer_weights *L = &w->layers[l];
        B(bind_layer(&b, &L->attn_norm, l, "attn_norm.weight", dim, 0));
        B(bind_layer(&b, &L->wq, l, "attn_q.weight", q_dim, dim));
        B(bind_layer(&b, &L->wk, l, "attn_k.weight", kv_dim, dim));
        B(bind_layer(&b, &L->wv, l, "attn_v.weight", kv_dim, dim));
        B(bind_layer(&b, &L->wo, l, "attn_output.weight", dim, q_dim));
        B(bind_layer(&b, &L->ffn_norm, l, "ffn_norm.weight", dim, 0));
        B(bind_layer(&b, &L->w_gate, l, "ffn_gate.weight", hidden, dim));
        B(bind_layer(&b, &L->w_up, l, "ffn_up.weight", hidden, dim));
        B(bind_layer(&b, &L->w_down, l, "ffn_down.weight", dim, hidden));
    }
#undef B
    return LC_OK;
}

/* The header, metadata and tensor table of a GGUF file; the parse is kept for
 * the tokenizer, which lives in the same metadata. */
static lc_status read_gguf(lc_model *m, const char *path, lc_error *err) {
    if (!(m->gguf = calloc(1, sizeof *m->gguf))) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    lc_status st = gguf_parse(m->gguf, m->file.data, m->file.size, path, err);
    if (st) return st;
    if ((st = llama_gguf_config(m->gguf, &m->config, err)) ||
        (st = llama_gguf_special(m->gguf, m->config.vocab_size, &m->special, err)) ||
        (st = gguf_tensor_table(m->gguf, &m->tensors, err)) ||
        (st = llama_gguf_rope_freqs(&m->tensors, &m->config, err)))
        lc_fail_prefix(err, path);
    gguf_str tpl = {NULL, 0}; /* stays empty when the key is absent */
    if (!st && gguf_get_string(m->gguf, "tokenizer.chat_template", true, &tpl, NULL) == LC_OK &&
        tpl.ptr && !(m->chat_template = strndup(tpl.ptr, (size_t)tpl.len)))
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
    return st;
}

/* "GGUF v3 (f16)"; a classifier or embedding stored differently is named. */
static void describe_gguf(lc_model *m) {
    const model_weights *w = &m->weights;
    lc_dtype main = w->layers[0].wq.dtype;
    int n = snprintf(m->format, sizeof m->format, "GGUF v%u (%s", m->gguf->version,
                     lc_dtype_name(main));
    if (w->token_embd.dtype != main)
        n += snprintf(m->format + n, sizeof m->format - (size_t)n, ", %s embedding",
                      lc_dtype_name(w->token_embd.dtype));
    if (w->output.dtype != main && w->output.data != w->token_embd.data)
        n += snprintf(m->format + n, sizeof m->format - (size_t)n, ", %s classifier",
                      lc_dtype_name(w->output.dtype));
    snprintf(m->format + n, sizeof m->format - (size_t)n, ")");
}

lc_status lc_model_load(const char *path, lc_model **out, lc_error *err) {
    *out = NULL;
    lc_model *m = calloc(1, sizeof *m);
    if (!m) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    m->special.bos = -1;
    lc_status st = LC_OK;
    if (!(m->path = strdup(path))) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = llama_hf_load(m, path, err); /* a Hugging Face folder */
    } else if ((st = mapped_file_open(&m->file, path, err))) {
        goto fail;
    } else if (gguf_is_gguf(m->file.data, m->file.size)) {
        st = read_gguf(m, path, err);
    } else {
        llama2c_version version;
        int32_t ffn_from;
        st = llama2c_read(&m->file, path, &m->config, &m->tensors, &version, &ffn_from, &m->owned,
                          err);
        snprintf(m->format, sizeof m->format, "llama2.c %s",
                 version == LLAMA2C_V2   ? "version 2 (int8, runq.c)"
                 : version == LLAMA2C_V1 ? "version 1 (fp32)"
                                         : "legacy (fp32)");
        if (!st && ffn_from) { /* say why hidden differs from the header */
            const size_t len = strlen(m->format);
            snprintf(m->format + len, sizeof m->format - len,
                     "; FFN %d padded to %d to compute as runq.c does", ffn_from,
                     m->config.hidden_dim);
        }
    }
    if (st) goto fail;
    st = bind_weights(m, err);
    if (st) {
        lc_fail_prefix(err, path);
        goto fail;
    }
    if (m->gguf) describe_gguf(m);
    *out = m;
    return LC_OK;
fail:
    lc_model_free(m);
    return st;
}

void lc_model_free(lc_model *m) {
    if (!m) return;
    free(m->weights.layers);
    tensor_table_free(&m->tensors);
    if (m->gguf) gguf_free(m->gguf);
    free(m->gguf);
    free(m->path);
    free(m->chat_template);
    free(m->owned);
    if (m->safetensors) safetensors_close(m->safetensors);
    free(m->safetensors);
    mapped_file_close(&m->file); /* last: the weights pointed into it */
    free(m);
}

const char *lc_model_chat_template(const lc_model *m) { return m->chat_template; }

void model_drop_file_pages(const lc_model *m) {
    if (m->file.data) madvise((void *)m->file.data, (size_t)m->file.size, MADV_DONTNEED);
    for (int i = 0; m->safetensors && i < m->safetensors->n_files; i++)
        madvise((void *)m->safetensors->files[i].data, (size_t)m->safetensors->files[i].size,
                MADV_DONTNEED);
}

int lc_model_eos_ids(const lc_model *m, const lc_token **ids) {
    *ids = m->special.eos;
    return m->special.n_eos;
}

lc_token lc_model_bos_id(const lc_model *m) { return m->special.bos; }

bool lc_model_has_tokenizer(const lc_model *m) {
    return (m->gguf && gguf_find(m->gguf, "tokenizer.ggml.model")) ||
           (m->safetensors && lc_tokenizer_in_path(m->path));
}

lc_status lc_tokenizer_from_model(const lc_model *m, lc_tokenizer **out, lc_error *err) {
    *out = NULL;
    if (!lc_model_has_tokenizer(m))
        return lc_fail(err, LC_ERR_ARG, "%s: the model file holds no tokenizer", m->path);
    if (!m->gguf) return lc_tokenizer_load(m->path, out, err); /* a model folder */
    lc_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    lc_status st = tokenizer_from_gguf(t, m->gguf, m->path, err);
    if (st) {
        lc_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LC_OK;
}

const lc_config *lc_model_config(const lc_model *m) { return &m->config; }

const char *lc_model_format(const lc_model *m) { return m->format; }

int model_weight_list(const model_weights *w, int n_layers, weight **out, int cap) {
    int n = 0;
#define ADD(x)                                                                                     \
    do {                                                                                           \
        if (n < cap) out[n] = (weight *)(x);                                                       \
        n++;                                                                                       \
    } while (0)
    ADD(&w->token_embd);
    ADD(&w->output_norm);
    if (w->output.data != w->token_embd.data) ADD(&w->output);
    for (int l = 0; l < n_layers; l++) {
        const layer_weights *L = &w->layers[l];
        ADD(&L->attn_norm);
        ADD(&L->wq);
        ADD(&L->wk);
        ADD(&L->wv);
        ADD(&L->wo);
        ADD(&L->ffn_norm);
        ADD(&L->w_gate);
        ADD(&L->w_up);
        ADD(&L->w_down);
    }
#undef ADD
    return n;
}

uint64_t weight_bytes(const weight *w) {
    return (uint64_t)w->rows * (uint64_t)dtype_row_bytes(w->dtype, w->cols);
}

uint64_t model_weights_bytes_per_token(const model_weights *w, int n_layers) {
    /* Every weight once; the embedding table only as the classifier (a
     * decoding step reads one row of it for the lookup, which we ignore). */
    int n = model_weight_list(w, n_layers, NULL, 0);
    weight **list = malloc((size_t)n * sizeof *list);
    if (!list) return 0;
    model_weight_list(w, n_layers, list, n);
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        if (list[i] != &w->token_embd || w->output.data == w->token_embd.data)
            total += weight_bytes(list[i]);
    free(list);
    return total;
}

uint64_t lc_model_bytes_per_token(const lc_model *m) {
    return model_weights_bytes_per_token(&m->weights, m->config.n_layers);
}

uint64_t lc_model_n_params(const lc_model *m) {
    uint64_t n = 0;
    for (int i = 0; i < m->tensors.count; i++)
        n += (uint64_t)tensor_n_elements(&m->tensors.items[i]);
    return n;
}

/* Llama 3.1's scaling of one frequency f (Meta's reference, as transformers
 * computes it in float32): short wavelengths are kept, long ones divided by
 * the factor, those between interpolated. x / y is written (1 / y) * x where
 * transformers' tensor-from-scalar division computes it that way. */
static float llama3_freq(const lc_config *c, float f) {
    const float ctx = (float)c->rope_original_ctx, low = c->rope_low_freq_factor,
                high = c->rope_high_freq_factor, factor = c->rope_factor;
    const float wavelen = (1.0f / f) * (float)(2.0 * M_PI);
    if (wavelen < ctx / high) return f;
    if (wavelen > ctx / low) return f / factor;
    const float smooth = ((1.0f / wavelen) * ctx - low) / (high - low);
    return (1.0f - smooth) * f / factor + smooth * f;
}

static float rope_base_freq(const lc_config *c, int i) {
    return 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
}

static float rope_freq(const lc_config *c, int i) {
    float f = rope_base_freq(c, i);
    if (c->rope_scaling == LC_ROPE_SCALING_LINEAR) f = f / c->rope_factor;
    if (c->rope_scaling == LC_ROPE_SCALING_LLAMA3) f = llama3_freq(c, f);
    if (c->rope_freq_factors) f = f / c->rope_freq_factors[i];
    return f;
}

/* The divisor d nearest base / scaled for which base / d == scaled in float,
 * so a file storing d reproduces the scaled frequency bit for bit. Stepping d
 * by one ulp moves the quotient by about one ulp, so a few steps suffice. */
static float exact_divisor(float base, float scaled) {
    float d = base / scaled;
    for (int k = 0; k < 16 && base / d != scaled; k++)
        d = nextafterf(d, base / d > scaled ? INFINITY : 0.0f);
    return d;
}

void model_rope_freq_factors(const lc_config *c, float *factors) {
    for (int i = 0; i < c->head_dim / 2; i++) {
        if (c->rope_freq_factors)
            factors[i] = c->rope_freq_factors[i];
        else if (c->rope_scaling == LC_ROPE_SCALING_LLAMA3)
            factors[i] = exact_divisor(rope_base_freq(c, i), llama3_freq(c, rope_base_freq(c, i)));
        else
            factors[i] = 1.0f;
    }
}

void model_rope_freqs(const lc_config *c, float *freq) {
    for (int i = 0; i < c->head_dim / 2; i++) freq[i] = rope_freq(c, i);
}

void model_rope_table(const lc_config *c, int n_ctx, float *cos_sin) {
    const int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float freq = rope_freq(c, i);
        for (int p = 0; p < n_ctx; p++) {
            float angle = (float)p * freq;
            cos_sin[((int64_t)p * half + i) * 2] = cosf(angle);
            cos_sin[((int64_t)p * half + i) * 2 + 1] = sinf(angle);
        }
    }
}
