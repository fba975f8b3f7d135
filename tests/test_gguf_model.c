/* GGUF models end to end: llama2.c checkpoints converted to GGUF f32 give the
 * same logits bit for bit; a converted file converted again is the same file
 * byte for byte; the GGUF written by another tool (ollama's tiny random
 * llama) loads with its known config; q8_0/q4_0 files hold the original
 * weights within each format's error bound. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/quant.h"
#include "harness.h"
#include "llamac.h"
#include "model/model.h"

/* Logits of every position of `ids` (one prefill), or NULL. */
static float *all_logits(test_ctx *t, const lc_model *m, const lc_token *ids, int n) {
    lc_engine_options o = {.device = "cpu", .weights = "copy", .n_threads = 2};
    lc_engine *e;
    lc_error err;
    if (lc_engine_create(m, &o, &e, &err)) {
        CHECK(t, false, "engine: %s", err.msg);
        return NULL;
    }
    int32_t pos[16], seq[16] = {0};
    uint8_t want[16];
    for (int i = 0; i < n; i++) pos[i] = i, want[i] = 1;
    lc_batch b = {n, ids, pos, seq, want};
    float *logits = malloc((size_t)n * (size_t)lc_model_config(m)->vocab_size * sizeof *logits);
    if (lc_engine_forward(e, &b, logits, &err)) {
        CHECK(t, false, "forward: %s", err.msg);
        free(logits);
        logits = NULL;
    }
    lc_engine_free(e);
    return logits;
}

static void same_logits(test_ctx *t, const char *model_rel, const char *tok_rel) {
    char path[1024];
    temp_path(path, sizeof path, "f32.gguf");
    if (!quantize_shared(t, model_rel, tok_rel, path, "f32")) return;
    lc_model *a = load_shared_model(t, model_rel), *b = NULL;
    lc_error err;
    CHECK(t, lc_model_load(path, &b, &err) == LC_OK, "%s", err.msg);
    if (a && b) {
        const lc_config *ca = lc_model_config(a), *cb = lc_model_config(b);
        CHECK(t, memcmp(ca, cb, sizeof *ca) == 0, "%s: configs differ", model_rel);
        CHECK(t, lc_model_n_params(a) == lc_model_n_params(b), "parameter counts");
        const lc_token ids[] = {1, 403, 407, 261, 378, 9, 300, 42, 7, 2, 100, 5};
        const int n = sizeof ids / sizeof ids[0];
        float *la = all_logits(t, a, ids, n), *lb = all_logits(t, b, ids, n);
        if (la && lb)
            CHECK(t, memcmp(la, lb, (size_t)n * (size_t)ca->vocab_size * sizeof *la) == 0,
                  "%s: GGUF f32 logits are not bit-identical to the llama2.c file's", model_rel);
        free(la);
        free(lb);
    }
    lc_model_free(a);
    lc_model_free(b);
    remove(path);
}

void test_gguf_f32_logits_bit_identical(test_ctx *t) {
    same_logits(t, "models/stories260K.bin", "models/tok512.bin");
    same_logits(t, "models/tiny-gutenberg-15M.bin", "models/tokenizer.bin");
}

void test_gguf_write_read_round_trip(test_ctx *t) {
    char a[1024], b[1024];
    temp_path(a, sizeof a, "rt1.gguf");
    temp_path(b, sizeof b, "rt2.gguf");
    /* llama2.c -> GGUF -> GGUF: the second conversion reads everything the
     * first wrote (metadata, tokenizer, tensors) and must write it back unchanged. */
    if (quantize_shared(t, "models/stories260K.bin", "models/tok512.bin", a, "f32") &&
        quantize_shared(t, a, NULL, b, "f32")) {
        size_t na, nb;
        char *da = read_file(a, &na), *db = read_file(b, &nb);
        CHECK(t, da && db && na == nb && memcmp(da, db, na) == 0,
              "GGUF -> GGUF changed the file (%zu vs %zu bytes)", na, nb);
        /* And what was written is what was meant. */
        gguf_file g;
        lc_error err;
        if (da && gguf_parse(&g, (const uint8_t *)da, na, a, &err) == LC_OK) {
            int64_t v = 0;
            gguf_str s = {0};
            gguf_array tokens = {0};
            CHECK(t,
                  gguf_get_string(&g, "general.architecture", false, &s, &err) == LC_OK &&
                      gguf_str_eq(s, "llama"),
                  "architecture");
            CHECK(t,
                  gguf_get_int(&g, "llama.attention.head_count_kv", false, 0, 99, &v, &err) ==
                          LC_OK &&
                      v == 4,
                  "head_count_kv");
            CHECK(t,
                  gguf_get_int(&g, "general.file_type", false, 0, 99, &v, &err) == LC_OK && v == 0,
                  "file_type");
            CHECK(t,
                  gguf_get_array(&g, "tokenizer.ggml.tokens", GGUF_STRING, false, &tokens, &err) ==
                          LC_OK &&
                      tokens.count == 512,
                  "512 tokens");
            const uint8_t *at = tokens.data;
            CHECK(t, tokens.count && gguf_str_eq(gguf_array_next_string(&at), "<unk>"), "token 0");
            CHECK(t, g.n_tensors == 2 + 9 * 5, "%llu tensors", (unsigned long long)g.n_tensors);
            gguf_free(&g);
        } else {
            CHECK(t, false, "cannot parse the written file: %s", err.msg);
        }
        free(da);
        free(db);
    }
    remove(a);
    remove(b);
}

void test_gguf_foreign_file(test_ctx *t) {
    lc_model *m = load_shared_model(t, "models/llama-2-tiny-random.gguf");
    if (!m) return;
    const lc_config *c = lc_model_config(m);
    CHECK(t,
          c->dim == 8 && c->hidden_dim == 32 && c->n_layers == 1 && c->n_heads == 2 &&
              c->n_kv_heads == 2 && c->head_dim == 4 && c->vocab_size == 32000 &&
              c->seq_len == 4096 && !c->shared_classifier && c->rope_theta == 10000.0f &&
              c->norm_eps == 1e-5f,
          "config differs from the file's metadata");
    CHECK(t,
          m->weights.layers[0].wq.dtype == LC_DTYPE_F16 &&
              m->weights.output_norm.dtype == LC_DTYPE_F32,
          "dtypes");
    CHECK(t, strcmp(lc_model_format(m), "GGUF v3 (f16)") == 0, "format %s", lc_model_format(m));
    CHECK(t, lc_model_n_params(m) == 2 * 8 * 32000 + 4 * 64 + 3 * 256 + 3 * 8, "%llu params",
          (unsigned long long)lc_model_n_params(m));
    /* The embedded vocabulary is the Llama 2 one. */
    lc_tokenizer *tok = NULL;
    lc_error err;
    CHECK(t, lc_model_has_tokenizer(m), "no tokenizer found");
    CHECK(t, lc_tokenizer_from_model(m, &tok, &err) == LC_OK, "%s", err.msg);
    if (tok) {
        lc_token *ids;
        size_t n;
        const char *text = "I believe the meaning of life is";
        const lc_token want[] = {1, 306, 4658, 278, 6593, 310, 2834, 338};
        CHECK(t,
              lc_tokenizer_encode(tok, text, strlen(text), true, false, &ids, &n, &err) == LC_OK &&
                  n == 8 && memcmp(ids, want, sizeof want) == 0,
              "ids differ");
        free(ids);
    }
    lc_tokenizer_free(tok);
    /* f16 weights convert to f32 exactly and then run on the CPU. */
    char path[1024];
    temp_path(path, sizeof path, "tiny32.gguf");
    lc_model *m32 = NULL;
    if (quantize_shared(t, "models/llama-2-tiny-random.gguf", NULL, path, "f32") &&
        lc_model_load(path, &m32, &err) == LC_OK) {
        const weight *a = &m->weights.layers[0].w_down, *b = &m32->weights.layers[0].w_down;
        float x[32];
        dequantize_row(LC_DTYPE_F16, a->data, x, 32);
        CHECK(t, b->dtype == LC_DTYPE_F32 && memcmp(x, b->data, sizeof x) == 0, "f16 -> f32 row");
        const lc_token ids[] = {1, 15043};
        float *logits = all_logits(t, m32, ids, 2);
        CHECK(t, logits && isfinite(logits[0]), "forward on the converted file");
        free(logits);
    }
    lc_model_free(m32);
    remove(path);
    lc_model_free(m);
}

/* Largest |x - stored| allowed for one 32-element block whose largest
 * magnitude is amax, stored as `dt` (scales are f16: relative error 2^-11). */
static float block_bound(lc_dtype dt, float amax) {
    switch (dt) {
    case LC_DTYPE_F32: return 0;
    case LC_DTYPE_F16: return amax * 0x1p-11f + 6e-8f;
    case LC_DTYPE_Q8_0: return amax / 254 + amax * 0x1p-10f;
    case LC_DTYPE_Q4_0:
        return amax / 8 + amax * 0x1p-9f; /* +amax opposite the scale clamps at 15 */
    default: return INFINITY;
    }
}

static void check_weight(test_ctx *t, const char *what, const weight *orig, const weight *q,
                         double *max_rel) {
    CHECK(t, orig->rows == q->rows && orig->cols == q->cols, "%s: shape", what);
    if (orig->rows != q->rows || orig->cols != q->cols) return;
    float *x = malloc((size_t)q->cols * sizeof *x), *y = malloc((size_t)q->cols * sizeof *y);
    const size_t row_bytes = (size_t)dtype_row_bytes(q->dtype, q->cols);
    int bad = 0;
    for (int64_t r = 0; r < q->rows; r++) {
        memcpy(x, (const float *)orig->data + r * orig->cols, (size_t)q->cols * sizeof *x);
        dequantize_row(q->dtype, (const uint8_t *)q->data + (size_t)r * row_bytes, y, q->cols);
        for (int64_t b = 0; b < q->cols; b += QK) {
            int64_t end = b + QK < q->cols ? b + QK : q->cols;
            float amax = 0, worst = 0;
            for (int64_t i = b; i < end; i++) amax = fmaxf(amax, fabsf(x[i]));
            for (int64_t i = b; i < end; i++) worst = fmaxf(worst, fabsf(x[i] - y[i]));
            if (worst > block_bound(q->dtype, amax)) bad++;
            if (amax > 0 && worst / amax > *max_rel) *max_rel = worst / amax;
        }
    }
    CHECK(t, bad == 0, "%s (%s): %d blocks outside the error bound", what, lc_dtype_name(q->dtype),
          bad);
    free(x);
    free(y);
}

static void check_quantized(test_ctx *t, const char *type, lc_dtype matrices, lc_dtype embedding) {
    char path[1024];
    temp_path(path, sizeof path, "q.gguf");
    lc_model *orig = load_shared_model(t, "models/stories260K.bin"), *q = NULL;
    lc_error err;
    if (orig && quantize_shared(t, "models/stories260K.bin", "models/tok512.bin", path, type) &&
        lc_model_load(path, &q, &err) == LC_OK) {
        const model_weights *a = &orig->weights, *b = &q->weights;
        CHECK(t, b->token_embd.dtype == embedding, "%s: embedding is %s", type,
              lc_dtype_name(b->token_embd.dtype));
        CHECK(t, b->layers[0].wq.dtype == matrices && b->layers[0].w_gate.dtype == matrices,
              "%s: matrices are %s", type, lc_dtype_name(b->layers[0].wq.dtype));
        /* 172 columns are not whole blocks: kept f16. */
        CHECK(t, b->layers[0].w_down.dtype == LC_DTYPE_F16, "%s: ffn_down is %s", type,
              lc_dtype_name(b->layers[0].w_down.dtype));
        CHECK(t, b->output_norm.dtype == LC_DTYPE_F32, "%s: norms are not f32", type);
        double max_rel = 0;
        check_weight(t, "token_embd", &a->token_embd, &b->token_embd, &max_rel);
        check_weight(t, "output_norm", &a->output_norm, &b->output_norm, &max_rel);
        for (int l = 0; l < orig->config.n_layers; l++) {
            const layer_weights *x = &a->layers[l], *y = &b->layers[l];
            check_weight(t, "attn_norm", &x->attn_norm, &y->attn_norm, &max_rel);
            check_weight(t, "wq", &x->wq, &y->wq, &max_rel);
            check_weight(t, "wk", &x->wk, &y->wk, &max_rel);
            check_weight(t, "wv", &x->wv, &y->wv, &max_rel);
            check_weight(t, "wo", &x->wo, &y->wo, &max_rel);
            check_weight(t, "w_gate", &x->w_gate, &y->w_gate, &max_rel);
            check_weight(t, "w_up", &x->w_up, &y->w_up, &max_rel);
            check_weight(t, "w_down", &x->w_down, &y->w_down, &max_rel);
        }
        CHECK(t, max_rel > 0, "%s: nothing was quantized", type);
    }
    lc_model_free(q);
    lc_model_free(orig);
    remove(path);
}

void test_gguf_quantized_within_bounds(test_ctx *t) {
    check_quantized(t, "q8_0", LC_DTYPE_Q8_0, LC_DTYPE_Q8_0);
    check_quantized(t, "q4_0", LC_DTYPE_Q4_0, LC_DTYPE_Q8_0);
    check_quantized(t, "f16", LC_DTYPE_F16, LC_DTYPE_F16);
}

/* A parsed GGUF from a whole file, or false. *buf is to be freed. */
static bool parse_file(test_ctx *t, const char *path, char **buf, gguf_file *g) {
    size_t n;
    lc_error err;
    *buf = read_file(path, &n);
    CHECK(t, *buf != NULL, "cannot read %s", path);
    if (!*buf) return false;
    if (gguf_parse(g, (const uint8_t *)*buf, n, path, &err) != LC_OK) {
        CHECK(t, false, "%s", err.msg);
        return false;
    }
    return true;
}

typedef struct vocab_arrays {
    gguf_array tokens, scores, types;
} vocab_arrays;

static bool get_vocab_arrays(test_ctx *t, const gguf_file *g, vocab_arrays *v) {
    lc_error err;
    bool ok =
        gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, false, &v->tokens, &err) == LC_OK &&
        gguf_get_array(g, "tokenizer.ggml.scores", GGUF_FLOAT32, false, &v->scores, &err) ==
            LC_OK &&
        gguf_get_array(g, "tokenizer.ggml.token_type", GGUF_INT32, false, &v->types, &err) == LC_OK;
    CHECK(t, ok, "%s", err.msg);
    return ok;
}

/* tokenizer.bin (llama2.c) -> GGUF gives llama.cpp's own Llama 2 vocabulary
 * (the tokenizer test file llama.cpp ships) token for token: the same pieces,
 * scores, types and special ids. llama2.c stores BOS/EOS as "\n<s>\n" and
 * "\n</s>\n"; the GGUF must say "<s>" and "</s>" as SentencePiece does. */
void test_gguf_vocab_is_llama_cpp_llama2(test_ctx *t) {
    char path[1024], ref_path[1024];
    temp_path(path, sizeof path, "vocab.gguf");
    shared_path(ref_path, sizeof ref_path, "tokenizer_tests/ggml-vocab-llama-spm.gguf");
    if (!quantize_shared(t, "models/tiny-gutenberg-15M.bin", "models/tokenizer.bin", path, "q4_0"))
        return;
    char *da = NULL, *db = NULL;
    gguf_file a = {0}, b = {0};
    lc_error err;
    if (parse_file(t, path, &da, &a) && parse_file(t, ref_path, &db, &b)) {
        vocab_arrays va, vb;
        bool ok = get_vocab_arrays(t, &a, &va) && get_vocab_arrays(t, &b, &vb);
        if (ok) {
            CHECK(t, va.tokens.count == 32000 && vb.tokens.count == 32000, "%llu and %llu tokens",
                  (unsigned long long)va.tokens.count, (unsigned long long)vb.tokens.count);
            const uint8_t *pa = va.tokens.data, *pb = vb.tokens.data;
            int bad = 0, first = -1;
            for (uint64_t i = 0; i < va.tokens.count && i < vb.tokens.count; i++) {
                gguf_str x = gguf_array_next_string(&pa), y = gguf_array_next_string(&pb);
                bool same = x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0 &&
                            gguf_array_float(&va.scores, i) == gguf_array_float(&vb.scores, i) &&
                            gguf_array_int(&va.types, i) == gguf_array_int(&vb.types, i);
                if (!same && first < 0) first = (int)i;
                bad += !same;
            }
            CHECK(t, bad == 0, "%d tokens differ from llama.cpp's vocabulary, the first %d", bad,
                  first);
        }
        const char *ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                             "tokenizer.ggml.unknown_token_id"};
        for (int i = 0; i < 3; i++) {
            int64_t x = -1, y = -2;
            CHECK(t,
                  gguf_get_int(&a, ids[i], false, 0, 1 << 20, &x, &err) == LC_OK &&
                      gguf_get_int(&b, ids[i], false, 0, 1 << 20, &y, &err) == LC_OK && x == y,
                  "%s: %lld vs %lld", ids[i], (long long)x, (long long)y);
        }
    }
    gguf_free(&a);
    gguf_free(&b);
    free(da);
    free(db);
    remove(path);
}
