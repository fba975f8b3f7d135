/* lc_quantize: any model llamac loads (llama2.c checkpoint + tokenizer, or a
 * GGUF) to a GGUF v3 file llama.cpp can load: llama.* hyperparameters, the
 * full tokenizer, tensors under llama.cpp's names in the requested type.
 *
 * Type choices: norms stay f32 (tiny, and every runtime reads them as f32).
 * Block types need rows that are whole 32-element blocks; a matrix whose
 * column count is not (stories260K's ffn_down, 172 columns) is kept f16 with
 * a note. For q4_0 the embedding table and the classifier are q8_0: they
 * decide every logit, and llama.cpp's own Q4_0 keeps the classifier at a
 * higher precision too (Q6_K there, a type llamac does not have). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/gguf_write.h"
#include "formats/quant.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* llama.cpp's general.file_type numbers (its llama_ftype). */
static uint32_t file_type_of(lc_dtype t) {
    switch (t) {
    case LC_DTYPE_F16: return 1;
    case LC_DTYPE_Q4_0: return 2;
    case LC_DTYPE_Q8_0: return 7;
    case LC_DTYPE_BF16: return 32;
    default: return 0; /* all f32 */
    }
}

typedef struct planned {
    char name[TENSOR_NAME_MAX];
    const weight *w;
    lc_dtype dtype;
    char note[160];
} planned;

static void plan(planned *p, const char *name, const weight *w, lc_dtype target, bool embedding) {
    snprintf(p->name, sizeof p->name, "%s", name);
    p->w = w;
    p->note[0] = '\0';
    p->dtype = target;
    if (w->cols == 1) { /* a norm */
        p->dtype = LC_DTYPE_F32;
        return;
    }
    if (target == LC_DTYPE_Q4_0 && embedding) p->dtype = LC_DTYPE_Q8_0;
    if (dtype_info(p->dtype)->block > 1 && w->cols % dtype_info(p->dtype)->block) {
        snprintf(p->note, sizeof p->note, "%s kept f16: its %lld columns are not a multiple of %d",
                 name, (long long)w->cols, dtype_info(p->dtype)->block);
        p->dtype = LC_DTYPE_F16;
    }
}

/* Every tensor in llama.cpp's order: embedding, layers, final norm, classifier. */
static int plan_all(const lc_model *m, lc_dtype target, planned *out) {
    const model_weights *w = &m->weights;
    int n = 0;
    char name[TENSOR_NAME_MAX];
    plan(&out[n++], "token_embd.weight", &w->token_embd, target, true);
    for (int l = 0; l < m->config.n_layers; l++) {
        const layer_weights *L = &w->layers[l];
        const struct {
            const char *suffix;
            const weight *w;
        } items[] = {
            {"attn_norm.weight", &L->attn_norm}, {"attn_q.weight", &L->wq},
            {"attn_k.weight", &L->wk},           {"attn_v.weight", &L->wv},
            {"attn_output.weight", &L->wo},      {"ffn_norm.weight", &L->ffn_norm},
            {"ffn_gate.weight", &L->w_gate},     {"ffn_up.weight", &L->w_up},
            {"ffn_down.weight", &L->w_down},
        };
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, items[i].suffix);
            plan(&out[n++], name, items[i].w, target, false);
        }
    }
    plan(&out[n++], "output_norm.weight", &w->output_norm, target, false);
    if (!m->config.shared_classifier) plan(&out[n++], "output.weight", &w->output, target, true);
    return n;
}

static void put_hparams(gguf_writer *g, const lc_model *m, const char *name, lc_dtype target) {
    const lc_config *c = &m->config;
    gguf_put_string(g, "general.architecture", "llama", 5);
    gguf_put_string(g, "general.name", name, strlen(name));
    gguf_put_u32(g, "general.file_type", file_type_of(target));
    if (dtype_info(target)->block > 1) gguf_put_u32(g, "general.quantization_version", 2);
    gguf_put_u32(g, "llama.context_length", (uint32_t)c->seq_len);
    gguf_put_u32(g, "llama.embedding_length", (uint32_t)c->dim);
    gguf_put_u32(g, "llama.block_count", (uint32_t)c->n_layers);
    gguf_put_u32(g, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    gguf_put_u32(g, "llama.attention.head_count", (uint32_t)c->n_heads);
    gguf_put_u32(g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    gguf_put_f32(g, "llama.rope.freq_base", c->rope_theta);
    gguf_put_u32(g, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    gguf_put_f32(g, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    gguf_put_u32(g, "llama.vocab_size", (uint32_t)c->vocab_size);
}

/* llama2.c's tokenizer.bin stores BOS and EOS as "\n<s>\n" and "\n</s>\n", the
 * display form its export script gives them; SentencePiece, and llama.cpp's
 * Llama 2 vocabulary, name them "<s>" and "</s>". Returns the SentencePiece
 * name for those two, else the piece as stored. */
static const char *piece_text(const lc_tokenizer *t, lc_token id, uint32_t *len) {
    const char *s = t->arena + t->offset[id];
    *len = t->length[id];
    const char *display = id == t->bos ? "\n<s>\n" : id == t->eos ? "\n</s>\n" : NULL;
    if (display && *len == strlen(display) && memcmp(s, display, *len) == 0) {
        *len -= 2;
        return s + 1;
    }
    return s;
}

/* The vocabulary as GGUF's tokenizer.ggml.* keys: spaces back to U+2581. */
static lc_status put_tokenizer(gguf_writer *g, const lc_tokenizer *t, lc_error *err) {
    char *buf = malloc(3 * LC_MAX_PIECE_BYTES);
    if (!buf) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    gguf_put_string(g, "tokenizer.ggml.model", "llama", 5);
    gguf_put_array(g, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++) {
        uint32_t len;
        const char *s = piece_text(t, id, &len);
        size_t n = 0;
        for (uint32_t i = 0; i < len; i++) {
            if (s[i] == ' ') {
                memcpy(buf + n, "\xE2\x96\x81", 3);
                n += 3;
            } else {
                buf[n++] = s[i];
            }
        }
        gguf_put_elem_string(g, buf, n);
    }
    free(buf);
    gguf_put_array(g, "tokenizer.ggml.scores", GGUF_FLOAT32, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++) gguf_put_elem_f32(g, t->score[id]);
    /* GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte. */
    gguf_put_array(g, "tokenizer.ggml.token_type", GGUF_INT32, (uint64_t)t->n_vocab);
    for (lc_token id = 0; id < t->n_vocab; id++)
        gguf_put_elem_i32(g, id == t->unk                   ? 2
                             : t->kind[id] == TOKEN_CONTROL ? 3
                             : t->kind[id] == TOKEN_BYTE    ? 6
                                                            : 1);
    gguf_put_u32(g, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    gguf_put_u32(g, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    gguf_put_u32(g, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
    gguf_put_bool(g, "tokenizer.ggml.add_bos_token", t->add_bos);
    gguf_put_bool(g, "tokenizer.ggml.add_eos_token", false);
    return LC_OK;
}

/* Converts one tensor row by row: source dtype -> f32 -> target dtype. */
static lc_status write_tensor(gguf_writer *g, const planned *p, float *row, void *out,
                              lc_error *err) {
    const weight *w = p->w;
    const size_t src_row = (size_t)dtype_row_bytes(w->dtype, w->cols);
    const size_t dst_row = (size_t)dtype_row_bytes(p->dtype, w->cols);
    for (int64_t r = 0; r < w->rows; r++) {
        dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)r * src_row, row, w->cols);
        quantize_row(p->dtype, row, out, w->cols);
        lc_status st = gguf_writer_data(g, out, dst_row, err);
        if (st) return st;
    }
    return LC_OK;
}

static lc_status load_inputs(const lc_quantize_params *qp, lc_model **m, lc_tokenizer **tok,
                             lc_error *err) {
    lc_status st = lc_model_load(qp->input, m, err);
    if (st) return st;
    if (qp->tokenizer)
        st = lc_tokenizer_load(qp->tokenizer, tok, err);
    else if (lc_model_has_tokenizer(*m))
        st = lc_tokenizer_from_model(*m, tok, err);
    else
        return lc_fail(err, LC_ERR_ARG,
                       "%s holds no tokenizer: pass the one it was trained with (-z tokenizer.bin)",
                       qp->input);
    if (st) return st;
    if ((*tok)->n_vocab != (*m)->config.vocab_size)
        return lc_fail(err, LC_ERR_ARG, "the tokenizer has %d tokens but %s has %d",
                       (*tok)->n_vocab, qp->input, (*m)->config.vocab_size);
    return LC_OK;
}

/* general.name: the given one, else the input's file name without extension. */
static void model_name(const lc_quantize_params *qp, char *out, size_t cap) {
    if (qp->name) {
        snprintf(out, cap, "%s", qp->name);
        return;
    }
    const char *base = strrchr(qp->input, '/');
    base = base ? base + 1 : qp->input;
    const char *dot = strrchr(base, '.');
    snprintf(out, cap, "%.*s", (int)(dot && dot != base ? dot - base : (long)strlen(base)), base);
}

lc_status lc_quantize(const lc_quantize_params *qp, lc_quantize_fn progress, void *user,
                      lc_error *err) {
    lc_dtype target = qp->type ? dtype_by_name(qp->type) : LC_DTYPE_COUNT;
    if (target == LC_DTYPE_COUNT || gguf_type_of_dtype(target) < 0)
        return lc_fail(err, LC_ERR_ARG, "--type %s: expected f32, f16, bf16, q8_0 or q4_0",
                       qp->type ? qp->type : "(none)");
    lc_model *m = NULL;
    lc_tokenizer *tok = NULL;
    gguf_writer g;
    gguf_writer_init(&g);
    planned *plans = NULL;
    float *row = NULL;
    void *out = NULL;
    lc_status st = load_inputs(qp, &m, &tok, err);
    if (st) goto done;
    const int max_tensors = 3 + 9 * m->config.n_layers;
    plans = calloc((size_t)max_tensors, sizeof *plans);
    int64_t widest = m->config.dim > m->config.hidden_dim ? m->config.dim : m->config.hidden_dim;
    row = malloc((size_t)widest * sizeof *row);
    out = malloc((size_t)widest * sizeof(float));
    if (!plans || !row || !out) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    const int n = plan_all(m, target, plans);
    char name[256];
    model_name(qp, name, sizeof name);
    put_hparams(&g, m, name, target);
    if ((st = put_tokenizer(&g, tok, err))) goto done;
    double mb_total = 0;
    for (int i = 0; i < n && !st; i++) {
        const weight *w = plans[i].w;
        int64_t shape[2] = {w->rows, w->cols};
        st = gguf_add_tensor(&g, plans[i].name, plans[i].dtype, w->cols == 1 ? 1 : 2, shape, err);
        mb_total += (double)w->rows * (double)dtype_row_bytes(plans[i].dtype, w->cols) / 1e6;
    }
    if (st || (st = gguf_writer_open(&g, qp->output, err))) goto done;
    double mb_done = 0;
    for (int i = 0; i < n; i++) {
        if ((st = write_tensor(&g, &plans[i], row, out, err))) goto done;
        mb_done += (double)plans[i].w->rows *
                   (double)dtype_row_bytes(plans[i].dtype, plans[i].w->cols) / 1e6;
        if (progress) {
            lc_quantize_progress p = {i + 1,
                                      n,
                                      plans[i].name,
                                      plans[i].dtype,
                                      mb_done,
                                      mb_total,
                                      plans[i].note[0] ? plans[i].note : NULL};
            progress(user, &p);
        }
    }
    st = gguf_writer_finish(&g, err);
done:
    gguf_writer_free(&g);
    free(plans);
    free(row);
    free(out);
    lc_tokenizer_free(tok);
    lc_model_free(m);
    return st;
}
