/* llama2.c export version 2 (runq.c's int8 format), as export.py's
 * version2_export writes it:
 *   256-byte header: "ak42", int32 version 2, 7 x int32 params, uint8
 *     shared_classifier, int32 group_size, zero padding
 *   fp32 norms: every layer's attention norm, every layer's FFN norm, the final norm
 *   then each quantized tensor as all its int8 values followed by all its fp32
 *     scales (one per group_size values of the flattened tensor), in the order
 *     token embedding, wq, wk, wv, wo, w1, w2, w3 (all layers each), then the
 *     classifier when it is not shared.
 * Quantized tensors are copied into Q8_RUNQ blocks (value, scale interleaved)
 * when every 32-element block of a row lies inside one group (group_size and
 * the row length multiples of 32); any other tensor is dequantized to f32,
 * exactly (element e has scale e / group_size), so every file loads correctly.
 *
 * One exception, so that a file gives runq.c's own text: with groups of 32
 * and an FFN width that is not a multiple of 32 (stories260K: 172), runq.c
 * walks each ffn_down row in whole groups from the row's start, j = 0, 32, ..
 * while j + 32 <= hidden, scaling the 32 values at flat index i * hidden + j
 * by the scale of the group that index falls in, and never reads the last
 * hidden % 32 values of a row. The reader builds exactly that product from
 * standard blocks: the FFN is padded to the next multiple of 32 (ffn_gate and
 * ffn_up get zero rows, whose units are silu(0) * 0 = 0), and each ffn_down
 * row gets runq's blocks followed by zero blocks with scale 0. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/llama2c.h"
#include "formats/quant.h"

#define V2_GROUP_MAX (1 << 20)

/* How a tensor of the file becomes a tensor of the model. */
typedef enum v2_layout {
    V2_BLOCKS,    /* Q8_RUNQ blocks as stored, rows beyond the file's zero */
    V2_F32,       /* dequantized exactly */
    V2_RUNQ_ROWS, /* ffn_down of a padded FFN: runq.c's whole groups per row */
} v2_layout;

typedef struct qtensor {
    char name[TENSOR_NAME_MAX];
    int64_t rows, cols;         /* as the file stores it */
    int64_t out_rows, out_cols; /* as the model sees it */
    v2_layout layout;
} qtensor;

/* A tensor stored (rows, cols), seen by the model as (out_rows, out_cols). */
static qtensor describe(const char *name, int64_t rows, int64_t cols, int64_t out_rows,
                        int64_t out_cols, bool runq_rows, int32_t group) {
    qtensor q = {{0}, rows, cols, out_rows, out_cols, V2_F32};
    snprintf(q.name, sizeof q.name, "%s", name);
    q.layout = runq_rows ? V2_RUNQ_ROWS : group % QK == 0 && cols % QK == 0 ? V2_BLOCKS : V2_F32;
    return q;
}

/* The quantized tensors in file order, their layout for `group` and the FFN
 * width the model gets (`hidden_out`: padded, or the file's); returns how many
 * (at most cap). */
static int quantized_tensors(const lc_config *c, int32_t group, qtensor *out, int cap,
                             int64_t *hidden_out) {
    const int64_t dim = c->dim, hidden = c->hidden_dim, vocab = c->vocab_size;
    const int64_t q_dim = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    /* runq.c's FFN (see the top of the file): only with groups of 32 and
     * every other row length whole blocks. */
    const bool pad = group == QK && hidden % QK && dim % QK == 0 && q_dim % QK == 0;
    const int64_t h_out = pad ? (hidden + QK - 1) / QK * QK : hidden;
    *hidden_out = h_out;
    const struct {
        const char *suffix;
        int64_t rows, cols, out_rows, out_cols;
        bool runq_rows;
    } per_layer[] = {
        {"attn_q.weight", q_dim, dim, q_dim, dim, false},
        {"attn_k.weight", kv_dim, dim, kv_dim, dim, false},
        {"attn_v.weight", kv_dim, dim, kv_dim, dim, false},
        {"attn_output.weight", dim, q_dim, dim, q_dim, false},
        {"ffn_gate.weight", hidden, dim, h_out, dim, false}, /* w1 */
        {"ffn_down.weight", dim, hidden, dim, h_out, pad},   /* w2 */
        {"ffn_up.weight", hidden, dim, h_out, dim, false},   /* w3 */
    };
    int n = 0;
    if (n < cap) out[n] = describe("token_embd.weight", vocab, dim, vocab, dim, false, group);
    n++;
    char name[TENSOR_NAME_MAX];
    for (size_t k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++)
        for (int l = 0; l < c->n_layers; l++, n++)
            if (n < cap) {
                snprintf(name, sizeof name, "blk.%d.%s", l, per_layer[k].suffix);
                out[n] = describe(name, per_layer[k].rows, per_layer[k].cols, per_layer[k].out_rows,
                                  per_layer[k].out_cols, per_layer[k].runq_rows, group);
            }
    if (!c->shared_classifier) {
        if (n < cap) out[n] = describe("output.weight", vocab, dim, vocab, dim, false, group);
        n++;
    }
    return n;
}

/* Bytes the converted tensor takes. */
static uint64_t converted_bytes(const qtensor *q) {
    const uint64_t n = (uint64_t)q->out_rows * (uint64_t)q->out_cols;
    return q->layout == V2_F32 ? n * sizeof(float) : n / QK * sizeof(block_q8_runq);
}

static void convert(const qtensor *q, int32_t group, const int8_t *values, const float *scales,
                    void *out) {
    const int64_t n = q->rows * q->cols;
    block_q8_runq *b = out;
    switch (q->layout) {
    case V2_BLOCKS:
        for (int64_t i = 0; i < n / QK; i++) {
            memcpy(&b[i].d, scales + i * QK / group, sizeof(float));
            memcpy(b[i].qs, values + i * QK, QK);
        }
        memset(b + n / QK, 0, (size_t)((q->out_rows - q->rows) * q->cols / QK) * sizeof *b);
        break;
    case V2_RUNQ_ROWS: /* group == QK */
        for (int64_t r = 0; r < q->rows; r++)
            for (int64_t j = 0; j < q->out_cols; j += QK, b++) {
                const int64_t at = r * q->cols + j; /* flat index of the block's first value */
                if (j + QK <= q->cols) {
                    memcpy(&b->d, scales + at / QK, sizeof(float));
                    memcpy(b->qs, values + at, QK);
                } else {
                    memset(b, 0, sizeof *b);
                }
            }
        break;
    case V2_F32: {
        float *f = out;
        for (int64_t i = 0; i < n; i++) {
            float s;
            memcpy(&s, scales + i / group, sizeof s);
            f[i] = s * values[i];
        }
        break;
    }
    }
}

lc_status llama2c_read_v2(const mapped_file *file, const char *path, lc_config *cfg,
                          tensor_table *tensors, int32_t *ffn_from, void **owned, lc_error *err) {
    *owned = NULL;
    *ffn_from = 0;
    const uint8_t *p = file->data;
    if (file->size < LLAMA2C_V1_HEADER_BYTES)
        return lc_fail(err, LC_ERR_FORMAT,
                       "%s: truncated: %" PRIu64
                       " bytes is less than the 256-byte version-2 header",
                       path, file->size);
    int32_t h[7], group;
    memcpy(h, p + 8, sizeof h);
    memcpy(&group, p + 37, sizeof group);
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    cfg->vocab_size = h[5];
    cfg->seq_len = h[6];
    if (p[36] > 1)
        return lc_fail(err, LC_ERR_FORMAT, "%s: shared_classifier flag is %u, not 0 or 1", path,
                       p[36]);
    cfg->shared_classifier = p[36] == 1;
    lc_status st = llama2c_check_config(cfg, err);
    if (st) {
        lc_fail_prefix(err, path);
        return st;
    }
    cfg->head_dim = cfg->dim / cfg->n_heads;
    if (group < 1 || group > V2_GROUP_MAX)
        return lc_fail(err, LC_ERR_FORMAT, "%s: group size %d is out of range [1, %d]", path, group,
                       V2_GROUP_MAX);

    int64_t hidden_out;
    const int n_q = quantized_tensors(cfg, group, NULL, 0, &hidden_out);
    qtensor *q = malloc((size_t)n_q * sizeof *q);
    if (!q) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    quantized_tensors(cfg, group, q, n_q, &hidden_out);

    /* Sizes first, all in 64-bit and checked against the file before any pointer is formed. */
    const uint64_t dim = (uint64_t)cfg->dim, layers = (uint64_t)cfg->n_layers;
    uint64_t offset = LLAMA2C_V1_HEADER_BYTES + (2 * layers + 1) * dim * sizeof(float);
    uint64_t out_bytes = 0;
    for (int i = 0; i < n_q && !st; i++) {
        const uint64_t n = (uint64_t)q[i].rows * (uint64_t)q[i].cols;
        if (n % (uint64_t)group)
            st =
                lc_fail(err, LC_ERR_FORMAT,
                        "%s: tensor %s has %" PRIu64 " values, not a multiple of the group size %d",
                        path, q[i].name, n, group);
        offset += n + n / (uint64_t)group * sizeof(float);
        out_bytes += converted_bytes(&q[i]);
    }
    if (!st && offset != file->size)
        st =
            lc_fail(err, LC_ERR_FORMAT,
                    "%s: %s: the version-2 header implies %" PRIu64 " bytes, the file has %" PRIu64,
                    path, offset > file->size ? "truncated" : "size mismatch", offset, file->size);
    uint8_t *out = st ? NULL : malloc(out_bytes ? (size_t)out_bytes : 1);
    if (!st && !out) st = lc_fail(err, LC_ERR_NOMEM, "out of memory for the int8 weights");

    /* Norms stay in the mapping (4-byte aligned after the 256-byte header). */
    const uint8_t *at = p + LLAMA2C_V1_HEADER_BYTES;
    const int64_t vec[1] = {cfg->dim};
    char name[TENSOR_NAME_MAX];
    for (int kind = 0; kind < 2 && !st; kind++)
        for (int l = 0; l < cfg->n_layers && !st; l++, at += dim * sizeof(float)) {
            snprintf(name, sizeof name, "blk.%d.%s", l,
                     kind ? "ffn_norm.weight" : "attn_norm.weight");
            st = tensor_table_add(tensors, name, LC_DTYPE_F32, 1, vec, at, err);
        }
    if (!st) st = tensor_table_add(tensors, "output_norm.weight", LC_DTYPE_F32, 1, vec, at, err);
    at += dim * sizeof(float);

    uint8_t *dst = out;
    for (int i = 0; i < n_q && !st; i++) {
        const int64_t n = q[i].rows * q[i].cols;
        const int8_t *values = (const int8_t *)at;
        const float *scales = (const float *)(at + n); /* read with memcpy: unaligned */
        at += n + n / group * (int64_t)sizeof(float);
        convert(&q[i], group, values, scales, dst);
        const int64_t shape[2] = {q[i].out_rows, q[i].out_cols};
        st = tensor_table_add(tensors, q[i].name,
                              q[i].layout == V2_F32 ? LC_DTYPE_F32 : LC_DTYPE_Q8_RUNQ, 2, shape,
                              dst, err);
        dst += converted_bytes(&q[i]);
    }
    free(q);
    if (st) {
        free(out);
        return st;
    }
    if (hidden_out != cfg->hidden_dim) *ffn_from = cfg->hidden_dim;
    cfg->hidden_dim = (int32_t)hidden_out;
    *owned = out;
    return LC_OK;
}
