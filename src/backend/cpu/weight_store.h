/* Where the CPU backend reads weights from: the model's file mapping as it
 * is, or a private copy with every tensor 64-byte aligned on transparent huge
 * pages. llama2.c's legacy header is 28 bytes, so in the mapping every row is
 * misaligned and AVX-512 loads straddle cache lines; the copy measured 11-22%
 * faster decoding (docs/performance.md). */
#ifndef LLAMAC_BACKEND_CPU_WEIGHT_STORE_H
#define LLAMAC_BACKEND_CPU_WEIGHT_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/huge_pages.h"
#include "model/model.h"

typedef struct weight_store {
    model_weights view;    /* what the forward reads */
    layer_weights *layers; /* (n_layers) the view's layers */
    huge_buffer buffer;    /* the aligned copy; buffer.data is NULL when reading the mapping */
} weight_store;

/* mode: "auto" (copy when the weights take at most half the available memory),
 * "mmap" (read the file mapping in place) or "copy". dtype: "auto" (NULL) keeps
 * the file's dtypes; a dtype name ("f16", "q8_0", ...) converts every matrix
 * into it while copying (norms stay f32), which needs a copy. */
lc_status weight_store_init(weight_store *ws, const lc_model *model, const char *mode,
                            const char *dtype, lc_error *err);
void weight_store_free(weight_store *ws);

#endif
