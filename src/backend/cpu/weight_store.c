#include "backend/cpu/weight_store.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/quant.h"

#define ALIGN 64

static uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

/* MemAvailable from /proc/meminfo, else free pages; 0 when unknown. */
static uint64_t available_memory(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb) return (uint64_t)kb * 1024;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* The dtype a weight is stored in: `target` for matrices when one was asked
 * for (LC_DTYPE_COUNT: as in the file); norms stay f32. */
static lc_dtype stored_dtype(const weight *w, lc_dtype target) {
    return target == LC_DTYPE_COUNT || w->cols == 1 ? w->dtype : target;
}

/* `w` converted row by row into `to` at `dst`. */
static void convert(const weight *w, lc_dtype to, void *dst, float *row) {
    const int64_t from_bytes = dtype_row_bytes(w->dtype, w->cols);
    const int64_t to_bytes = dtype_row_bytes(to, w->cols);
    for (int64_t r = 0; r < w->rows; r++) {
        dequantize_row(w->dtype, (const char *)w->data + r * from_bytes, row, w->cols);
        quantize_row(to, row, (char *)dst + r * to_bytes, w->cols);
    }
}

lc_status weight_store_init(weight_store *ws, const lc_model *model, const char *mode,
                            const char *dtype, lc_error *err) {
    memset(ws, 0, sizeof *ws);
    const int n_layers = model->config.n_layers;
    ws->view = model->weights;
    ws->layers = malloc((size_t)n_layers * sizeof *ws->layers);
    if (!ws->layers) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    memcpy(ws->layers, model->weights.layers, (size_t)n_layers * sizeof *ws->layers);
    ws->view.layers = ws->layers;
    if (!mode) mode = "auto";
    if (strcmp(mode, "auto") != 0 && strcmp(mode, "mmap") != 0 && strcmp(mode, "copy") != 0)
        return lc_fail(err, LC_ERR_ARG, "--weights %s: expected auto, mmap or copy", mode);
    lc_dtype target = LC_DTYPE_COUNT; /* as stored */
    if (dtype && strcmp(dtype, "auto") != 0) {
        target = dtype_by_name(dtype);
        if (target == LC_DTYPE_COUNT)
            return lc_fail(err, LC_ERR_ARG,
                           "--dtype %s: expected auto, f32, f16, bf16, q8_0, q4_0 or q8_runq",
                           dtype);
    }

    int n = model_weight_list(&ws->view, n_layers, NULL, 0);
    weight **list = malloc((size_t)n * sizeof *list);
    if (!list) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    model_weight_list(&ws->view, n_layers, list, n);
    uint64_t total = 0;
    bool converting = false;
    int64_t widest = 0;
    lc_status st = LC_OK;
    for (int i = 0; i < n && !st; i++) {
        const weight *w = list[i];
        const lc_dtype to = stored_dtype(w, target);
        const int64_t row_bytes = dtype_row_bytes(to, w->cols);
        if (row_bytes < 0)
            st = lc_fail(err, LC_ERR_UNSUPPORTED,
                         "--dtype %s: a %lld x %lld matrix has rows of %lld elements, not "
                         "whole blocks of %d",
                         dtype, (long long)w->rows, (long long)w->cols, (long long)w->cols,
                         dtype_info(to)->block);
        converting |= to != w->dtype;
        widest = w->cols > widest ? w->cols : widest;
        total += round_up((uint64_t)w->rows * (uint64_t)row_bytes, ALIGN);
    }
    if (!st && converting && strcmp(mode, "mmap") == 0)
        st = lc_fail(err, LC_ERR_ARG,
                     "--weights mmap reads the file's own dtype; --dtype %s needs a copy", dtype);
    bool copy = converting || strcmp(mode, "copy") == 0 ||
                (strcmp(mode, "auto") == 0 && total <= available_memory() / 2);
    float *row = st || !converting ? NULL : malloc((size_t)widest * sizeof *row);
    if (!st && converting && !row) st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
    if (!st && copy) {
        if (!huge_buffer_alloc(&ws->buffer, (size_t)total)) {
            st = lc_fail(err, LC_ERR_NOMEM,
                         "out of memory: copying the weights needs %.2f GiB "
                         "(--weights mmap reads them in place)",
                         (double)total / (1u << 30));
        } else {
            uint8_t *at = ws->buffer.data;
            for (int i = 0; i < n; i++) {
                const lc_dtype to = stored_dtype(list[i], target);
                const uint64_t size =
                    (uint64_t)list[i]->rows * (uint64_t)dtype_row_bytes(to, list[i]->cols);
                assert(at + size <= (uint8_t *)ws->buffer.data + total);
                if (to == list[i]->dtype)
                    memcpy(at, list[i]->data, (size_t)size);
                else
                    convert(list[i], to, at, row);
                list[i]->data = at;
                list[i]->dtype = to;
                at += round_up(size, ALIGN);
            }
            if (model->config.shared_classifier) ws->view.output = ws->view.token_embd;
            /* The copy is all this backend reads: let the file's pages go from our
             * mapping (they re-fault from the page cache if anything reads them). */
            model_drop_file_pages(model);
        }
    }
    free(row);
    free(list);
    return st;
}

void weight_store_free(weight_store *ws) {
    huge_buffer_free(&ws->buffer);
    free(ws->layers);
    memset(ws, 0, sizeof *ws);
}
