#include "formats/llama2c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

void llama2c_default_hparams(lc_config *cfg) {
    cfg->rope_theta = 10000.0f;
    cfg->norm_eps = 1e-5f;
}

lc_status llama2c_check_config(const lc_config *c, lc_error *err) {
    /* Bounds keep every size product far below 2^63 and reject garbage headers. */
    struct {
        const char *name;
        int32_t value, max;
    } fields[] = {
        {"dim", c->dim, 1 << 16},
        {"hidden_dim", c->hidden_dim, 1 << 20},
        {"n_layers", c->n_layers, 1024},
        {"n_heads", c->n_heads, 1024},
        {"n_kv_heads", c->n_kv_heads, 1024},
        {"vocab_size", c->vocab_size, 1 << 22},
        {"seq_len", c->seq_len, 1 << 20},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].value < 1 || fields[i].value > fields[i].max)
            return lc_fail(err, LC_ERR_FORMAT, "%s = %d is out of range [1, %d]", fields[i].name,
                           fields[i].value, fields[i].max);
    if (c->head_dim) { /* given by the file (Hugging Face head_dim): any even size */
        if (c->head_dim < 2 || c->head_dim > 1 << 12 || c->head_dim % 2 != 0)
            return lc_fail(err, LC_ERR_FORMAT, "head_dim = %d is not an even size in [2, %d]",
                           c->head_dim, 1 << 12);
        if ((int64_t)c->n_heads * c->head_dim > 1 << 16)
            return lc_fail(err, LC_ERR_FORMAT, "n_heads %d x head_dim %d is over %d", c->n_heads,
                           c->head_dim, 1 << 16);
    } else {
        if (c->dim % c->n_heads != 0)
            return lc_fail(err, LC_ERR_FORMAT, "dim %d is not a multiple of n_heads %d", c->dim,
                           c->n_heads);
        if ((c->dim / c->n_heads) % 2 != 0)
            return lc_fail(err, LC_ERR_FORMAT, "head size %d is odd; RoPE rotates pairs",
                           c->dim / c->n_heads);
    }
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return lc_fail(err, LC_ERR_FORMAT, "n_heads %d is not a multiple of n_kv_heads %d",
                       c->n_heads, c->n_kv_heads);
    return LC_OK;
}

typedef struct layout_ctx {
    llama2c_visit_fn fn;
    void *user;
    lc_error *err;
} layout_ctx;

static lc_status visit(layout_ctx *lc, const char *name, int n_dims, int64_t d0, int64_t d1,
                       bool skip) {
    int64_t shape[2] = {d0, d1};
    return lc->fn(lc->user, name, n_dims, shape, skip, lc->err);
}

/* One tensor per layer, named blk.<layer>.<suffix>, all layers in a row. */
static lc_status visit_layers(layout_ctx *lc, const lc_config *c, const char *suffix, int n_dims,
                              int64_t d0, int64_t d1) {
    char name[TENSOR_NAME_MAX];
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);
        lc_status st = visit(lc, name, n_dims, d0, d1, false);
        if (st) return st;
    }
    return LC_OK;
}

lc_status llama2c_layout(const lc_config *c, llama2c_version version, llama2c_visit_fn fn,
                         void *user, lc_error *err) {
    layout_ctx lc = {fn, user, err};
    const int64_t dim = c->dim, hidden = c->hidden_dim, vocab = c->vocab_size;
    const int64_t q_dim = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    lc_status st = LC_OK;
#define V(call)                                                                                    \
    if ((st = (call)) != LC_OK) return st
    if (version == LLAMA2C_V1) {
        V(visit_layers(&lc, c, "attn_norm.weight", 1, dim, 0));
        V(visit_layers(&lc, c, "ffn_norm.weight", 1, dim, 0));
        V(visit(&lc, "output_norm.weight", 1, dim, 0, false));
        V(visit(&lc, "token_embd.weight", 2, vocab, dim, false));
    } else {
        V(visit(&lc, "token_embd.weight", 2, vocab, dim, false));
        V(visit_layers(&lc, c, "attn_norm.weight", 1, dim, 0));
    }
    V(visit_layers(&lc, c, "attn_q.weight", 2, q_dim, dim));
    V(visit_layers(&lc, c, "attn_k.weight", 2, kv_dim, dim));
    V(visit_layers(&lc, c, "attn_v.weight", 2, kv_dim, dim));
    V(visit_layers(&lc, c, "attn_output.weight", 2, dim, q_dim));
    if (version == LLAMA2C_LEGACY) V(visit_layers(&lc, c, "ffn_norm.weight", 1, dim, 0));
    V(visit_layers(&lc, c, "ffn_gate.weight", 2, hidden, dim)); /* w1 */
    V(visit_layers(&lc, c, "ffn_down.weight", 2, dim, hidden)); /* w2 */
    V(visit_layers(&lc, c, "ffn_up.weight", 2, hidden, dim));   /* w3 */
    if (version == LLAMA2C_LEGACY) {
        V(visit(&lc, "output_norm.weight", 1, dim, 0, false));
        /* Precomputed RoPE tables that llama2.c's legacy export still writes. */
        V(visit(&lc, "rope.freq_cos", 2, c->seq_len, c->head_dim / 2, true));
        V(visit(&lc, "rope.freq_sin", 2, c->seq_len, c->head_dim / 2, true));
    }
    if (!c->shared_classifier) V(visit(&lc, "output.weight", 2, vocab, dim, false));
#undef V
    return LC_OK;
}

static int32_t read_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

typedef struct reader {
    const mapped_file *file;
    uint64_t offset; /* where the next tensor starts */
    tensor_table *tensors;
} reader;

static lc_status add_tensor(void *user, const char *name, int n_dims, const int64_t *shape,
                            bool skip, lc_error *err) {
    reader *r = user;
    uint64_t bytes = 4;
    for (int i = 0; i < n_dims; i++) bytes *= (uint64_t)shape[i];
    /* Offsets are checked against the real size before any pointer is formed. */
    if (r->offset > r->file->size || bytes > r->file->size - r->offset) {
        r->offset += bytes; /* keep counting so the error can give the full size */
        return LC_OK;
    }
    const void *data = r->file->data + r->offset;
    r->offset += bytes;
    return skip ? LC_OK
                : tensor_table_add(r->tensors, name, LC_DTYPE_F32, n_dims, shape, data, err);
}

lc_status llama2c_read(const mapped_file *file, const char *path, lc_config *cfg,
                       tensor_table *tensors, llama2c_version *version, int32_t *ffn_from,
                       void **owned, lc_error *err) {
    *owned = NULL;
    *ffn_from = 0;
    memset(cfg, 0, sizeof *cfg);
    llama2c_default_hparams(cfg);
    const uint8_t *p = file->data;
    uint64_t header_bytes;
    uint32_t magic = 0;
    if (file->size >= 4) memcpy(&magic, p, 4);
    if (magic == LLAMA2C_MAGIC) {
        if (file->size < LLAMA2C_V1_HEADER_BYTES)
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: truncated: %" PRIu64 " bytes is less than the "
                           "256-byte version-1 header",
                           path, file->size);
        int32_t v = read_i32(p + 4);
        if (v == 2) {
            *version = LLAMA2C_V2;
            return llama2c_read_v2(file, path, cfg, tensors, ffn_from, owned, err);
        }
        if (v != 1)
            return lc_fail(err, LC_ERR_UNSUPPORTED,
                           "%s: llama2.c export version %d is not "
                           "supported (legacy, version 1 and version 2 are)",
                           path, v);
        p += 8;
        header_bytes = LLAMA2C_V1_HEADER_BYTES;
        *version = LLAMA2C_V1;
    } else {
        if (file->size < LLAMA2C_LEGACY_HEADER_BYTES)
            return lc_fail(err, LC_ERR_FORMAT,
                           "%s: truncated: %" PRIu64 " bytes is less than the "
                           "28-byte llama2.c header",
                           path, file->size);
        header_bytes = LLAMA2C_LEGACY_HEADER_BYTES;
        *version = LLAMA2C_LEGACY;
    }
    cfg->dim = read_i32(p);
    cfg->hidden_dim = read_i32(p + 4);
    cfg->n_layers = read_i32(p + 8);
    cfg->n_heads = read_i32(p + 12);
    cfg->n_kv_heads = read_i32(p + 16);
    int32_t vocab = read_i32(p + 20);
    cfg->seq_len = read_i32(p + 24);
    if (*version == LLAMA2C_V1) {
        uint8_t shared = p[28];
        if (shared > 1)
            return lc_fail(err, LC_ERR_FORMAT, "%s: shared_classifier flag is %u, not 0 or 1", path,
                           shared);
        cfg->shared_classifier = shared == 1;
        cfg->vocab_size = vocab;
    } else {
        /* Legacy files signal a separate classifier with a negative vocab size. */
        cfg->shared_classifier = vocab > 0;
        cfg->vocab_size = vocab == INT32_MIN ? 0 : (vocab < 0 ? -vocab : vocab);
    }
    lc_status st = llama2c_check_config(cfg, err);
    if (st) {
        lc_fail_prefix(err, path);
        return st;
    }
    cfg->head_dim = cfg->dim / cfg->n_heads;

    reader r = {file, header_bytes, tensors};
    st = llama2c_layout(cfg, *version, add_tensor, &r, err);
    if (st) return st;
    if (r.offset != file->size)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: %s: the header implies %" PRIu64 " bytes, the file "
                       "has %" PRIu64,
                       path, r.offset > file->size ? "truncated" : "size mismatch", r.offset,
                       file->size);
    return LC_OK;
}
