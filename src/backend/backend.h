/* The seam between the engine and the hardware. A backend runs the forward
 * contract of lc_engine_forward over a model description it does not own;
 * the engine validates every batch before a backend sees it, so backends
 * may assume tokens, positions and sequences are in range. */
#ifndef LLAMAC_BACKEND_BACKEND_H
#define LLAMAC_BACKEND_BACKEND_H

#include "llamac.h"

typedef struct backend backend;

typedef struct backend_ops {
    /* Runs one batch; writes a logits row per requested entry, in order. */
    lc_status (*forward)(backend *b, const lc_batch *batch, float *logits, lc_error *err);
    void (*destroy)(backend *b);
} backend_ops;

struct backend {
    const backend_ops *ops;
    const lc_model *model;
    int n_ctx, n_seq, n_batch;
    char description[128];
};

/* Options after the engine filled in its defaults: every field is set. */
lc_status cpu_backend_create(const lc_model *model, const lc_engine_options *opts, backend **out,
                             lc_error *err);

#endif
