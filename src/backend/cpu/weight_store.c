#include "backend/cpu/weight_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"

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

lc_status weight_store_init(weight_store *ws, const lc_model *model, const char *mode,
                            lc_error *err) {
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

    int n = model_weight_list(&ws->view, n_layers, NULL, 0);
    weight **list = malloc((size_t)n * sizeof *list);
    if (!list) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    model_weight_list(&ws->view, n_layers, list, n);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += round_up(weight_bytes(list[i]), ALIGN);

    bool copy =
        strcmp(mode, "copy") == 0 || (strcmp(mode, "auto") == 0 && total <= available_memory() / 2);
    lc_status st = LC_OK;
    if (copy) {
        if (!huge_buffer_alloc(&ws->buffer, (size_t)total)) {
            st = lc_fail(err, LC_ERR_NOMEM,
                         "out of memory: copying the weights needs %.2f GiB "
                         "(--weights mmap reads them in place)",
                         (double)total / (1u << 30));
        } else {
            uint8_t *at = ws->buffer.data;
            for (int i = 0; i < n; i++) {
                uint64_t size = weight_bytes(list[i]);
                memcpy(at, list[i]->data, (size_t)size);
                list[i]->data = at;
                at += round_up(size, ALIGN);
            }
            if (model->config.shared_classifier) ws->view.output = ws->view.token_embd;
            /* The copy is all this backend reads: let the file's pages go from our
             * mapping (they re-fault from the page cache if anything reads them). */
            madvise((void *)model->file.data, (size_t)model->file.size, MADV_DONTNEED);
        }
    }
    free(list);
    return st;
}

void weight_store_free(weight_store *ws) {
    huge_buffer_free(&ws->buffer);
    free(ws->layers);
    memset(ws, 0, sizeof *ws);
}
