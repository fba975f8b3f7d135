/* llama2.c export version 2 (runq.c's int8 format): the reader against the
 * fp32 checkpoint the file was exported from, and malformed files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quant.h"
#include "harness.h"
#include "model/model.h"

/* Every element of the int8 file dequantizes to within half a quantization
 * step of the fp32 weight it was exported from (export.py: scale = max|w| /
 * 127 over a group, q = round(w / scale)), and the norms are the fp32 ones
 * exactly. This checks the layout: order, value/scale placement and the
 * group-to-row mapping. The FFN (172 wide, not whole groups of 32) is padded
 * to 192 as runq.c computes it: ffn_gate/ffn_up rows beyond 172 are zero,
 * and ffn_down's blocks are checked against the file's own bytes instead. */
void test_v2_matches_fp32_checkpoint(test_ctx *t) {
    lc_model *q = load_shared_model(t, "models/stories260K_q80.bin");
    lc_model *f = load_shared_model(t, "models/stories260K.bin");
    if (!q || !f) goto done;
    CHECK(t, strstr(lc_model_format(q), "version 2") != NULL, "format: %s", lc_model_format(q));
    CHECK(t, strstr(lc_model_format(q), "FFN 172 padded to 192") != NULL, "format: %s",
          lc_model_format(q));
    const lc_config *c = lc_model_config(q);
    CHECK(t, c->dim == 64 && c->hidden_dim == 192 && c->n_layers == 5 && c->shared_classifier,
          "config");
    int n = model_weight_list(&q->weights, c->n_layers, NULL, 0);
    weight **wq = malloc((size_t)n * sizeof *wq), **wf = malloc((size_t)n * sizeof *wf);
    model_weight_list(&q->weights, c->n_layers, wq, n);
    model_weight_list(&f->weights, c->n_layers, wf, n);
    int n_blocks = 0;
    for (int i = 0; i < n; i++) {
        n_blocks += wq[i]->dtype == LC_DTYPE_Q8_RUNQ;
        bool down = false;
        for (int l = 0; l < c->n_layers; l++) down |= wq[i] == &q->weights.layers[l].w_down;
        if (down) continue; /* below */
        const int64_t rows = wf[i]->rows, cols = wf[i]->cols, len = rows * cols;
        CHECK(t,
              cols == wq[i]->cols && (rows == wq[i]->rows || (rows == 172 && wq[i]->rows == 192)),
              "weight %d shape", i);
        const int64_t qlen = wq[i]->rows * wq[i]->cols;
        float *a = malloc((size_t)qlen * sizeof *a);
        dequantize_row(wq[i]->dtype, wq[i]->data, a, qlen);
        const float *ref = wf[i]->data;
        int bad = 0;
        for (int64_t g = 0; g < len / QK; g++) { /* the file's groups of 32, flattened */
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(ref[g * QK + j]));
            const float step = amax / 127.0f;
            for (int j = 0; j < QK; j++) {
                const float d = fabsf(a[g * QK + j] - ref[g * QK + j]);
                if (cols == 1 ? d != 0 : d > step * 0.5f * 1.001f + 1e-7f) bad++;
            }
        }
        for (int64_t e = len; e < qlen; e++) bad += a[e] != 0.0f; /* padding rows */
        CHECK(t, bad == 0, "weight %d (%lld x %lld, %s): %d elements beyond half a step", i,
              (long long)rows, (long long)cols, lc_dtype_name(wq[i]->dtype), bad);
        free(a);
    }
    CHECK(t, n_blocks == 1 + 7 * c->n_layers, "%d tensors as Q8_RUNQ blocks", n_blocks);

    /* ffn_down, (64, 172) in the file: runq.c's row i, group j (j = 0, 32, ..
     * while j + 32 <= 172) is values[i * 172 + j ..] with the scale of the
     * group that flat index falls in; the model's row has those 5 blocks,
     * then one zero block. */
    size_t flen;
    char src[1024];
    uint8_t *file =
        (uint8_t *)read_file(shared_path(src, sizeof src, "models/stories260K_q80.bin"), &flen);
    CHECK(t, file != NULL, "cannot read the file");
    if (file) {
        /* Offsets as export.py writes them: header, 11 norms of 64 floats, then per tensor
         * its int8 values and f32 scales: embedding (512 x 64), wq wk wv wo w1 (5 layers
         * each) before w2. */
        const int64_t hidden = 172, dim = 64;
        int64_t off = 256 + 11 * 64 * 4;
        const int64_t sizes[] = {512 * 64, 64 * 64, 32 * 64, 32 * 64, 64 * 64, 172 * 64};
        for (int k = 0; k < 6; k++) off += (k == 0 ? 1 : 5) * (sizes[k] + sizes[k] / QK * 4);
        int bad = 0;
        for (int l = 0; l < c->n_layers; l++) {
            const int8_t *values = (const int8_t *)file + off;
            const uint8_t *scales = file + off + dim * hidden;
            const block_q8_runq *blk = q->weights.layers[l].w_down.data;
            CHECK(t,
                  q->weights.layers[l].w_down.rows == dim &&
                      q->weights.layers[l].w_down.cols == 192,
                  "layer %d ffn_down shape", l);
            for (int64_t r = 0; r < dim; r++)
                for (int64_t j = 0; j < 192; j += QK, blk++) {
                    float d = 0.0f;
                    const int8_t *v = NULL;
                    if (j + QK <= hidden) {
                        memcpy(&d, scales + (r * hidden + j) / QK * 4, 4);
                        v = values + r * hidden + j;
                    }
                    bad += blk->d != d;
                    for (int k = 0; k < QK; k++) bad += blk->qs[k] != (v ? v[k] : 0);
                }
            off += dim * hidden + dim * hidden / QK * 4;
        }
        CHECK(t, bad == 0, "ffn_down: %d values or scales differ from runq.c's reading", bad);
        free(file);
    }
    free(wq);
    free(wf);
done:
    lc_model_free(q);
    lc_model_free(f);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(data, 1, len, fp);
    fclose(fp);
}

static void expect_refused(test_ctx *t, const char *path, const char *what, const char *needle) {
    lc_model *m = NULL;
    lc_error err = {0};
    lc_status st = lc_model_load(path, &m, &err);
    CHECK(t, st != LC_OK, "%s: accepted", what);
    CHECK(t, st == LC_OK || (strstr(err.msg, path) && strstr(err.msg, needle)),
          "%s: message lacks the file or '%s': %s", what, needle, err.msg);
    lc_model_free(m);
}

void test_v2_bad_files(test_ctx *t) {
    char src[1024], path[1024];
    size_t len;
    char *good = read_file(shared_path(src, sizeof src, "models/stories260K_q80.bin"), &len);
    CHECK(t, good != NULL, "cannot read stories260K_q80.bin");
    if (!good) return;
    char *bad = malloc(len);
    temp_path(path, sizeof path, "v2.bin");
    const struct {
        const char *what, *needle;
        int offset;
        int32_t value;
    } fields[] = {
        {"group size 0", "group size 0", 37, 0},
        {"negative group size", "group size -32", 37, -32},
        {"huge group size", "out of range", 37, 1 << 30},
        {"group size not dividing a tensor", "not a multiple of the group size", 37, 7},
        {"group size 64 with the file's data", "implies", 37, 64},
        {"absurd dim", "dim", 8, 1 << 30},
        {"zero layers", "n_layers", 16, 0},
        {"huge vocabulary", "vocab_size", 28, 1 << 28},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(bad, good, len);
        memcpy(bad + fields[i].offset, &fields[i].value, 4);
        write_file(path, bad, len);
        expect_refused(t, path, fields[i].what, fields[i].needle);
    }
    memcpy(bad, good, len);
    bad[36] = 3;
    write_file(path, bad, len);
    expect_refused(t, path, "shared flag 3", "shared_classifier");
    static const size_t cuts[] = {0, 100, 255, 256, 1000, 40000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(path, good, len - 1 - cuts[i] * (len / 40001));
        expect_refused(t, path, "truncated", "truncated");
    }
    memcpy(bad, good, len);
    write_file(path, bad, len);
    FILE *fp = fopen(path, "ab");
    if (fp) {
        fputc(0, fp);
        fclose(fp);
    }
    expect_refused(t, path, "a byte too many", "size mismatch");
    remove(path);
    free(bad);
    free(good);
}
