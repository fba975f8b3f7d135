/* The seam between the engine and the hardware. A backend runs the forward
 * contract of lc_engine_forward over a model description it does not own;
 * the engine validates every batch before a backend sees it, so backends
 * may assume tokens, positions and sequences are in range. */
#ifndef LLAMAC_BACKEND_BACKEND_H
#define LLAMAC_BACKEND_BACKEND_H

#include "llamac.h"

typedef struct backend backend;

typedef struct backend_ops {
    /* Runs one batch; writes a logits row per requested entry, in order.
     * logits NULL: the rows stay in the backend for `sample`, and the call
     * may return before the work is done. */
    lc_status (*forward)(backend *b, const lc_batch *batch, float *logits, lc_error *err);
    /* Draws one token from each of the n logits rows the previous forward
     * kept (n must be that count), row i by the rule of lc_sampler_sample
     * with params p[i] and coins[i] as its draw. A backend whose logits live
     * elsewhere (a GPU) saves copying them out, and the rows of a batch are
     * drawn at once (on a GPU in one launch, on the CPU over its threads). */
    lc_status (*sample)(backend *b, int n, const lc_sampler_params *p, const float *coins,
                        lc_token *out, lc_error *err);
    /* Optional, for one sequence's decoding: `sample` of the one row the
     * previous forward kept, then at once the one-entry step of sequence
     * seq at position pos fed the drawn token where it was drawn, its row
     * kept as forward(logits NULL) keeps it. Returns once the token is
     * known, so a GPU runs the step while the host reads the token instead
     * of waiting for the host. The engine has checked seq and pos. A step
     * the engine then drops has written the cache at pos, outside the
     * sequence until a later step overwrites it, and replaced the kept row,
     * which no caller samples after a stop. */
    lc_status (*sample_and_feed)(backend *b, const lc_sampler_params *p, float coin, int seq,
                                 int pos, lc_token *out, lc_error *err);
    /* Optional: the memory bandwidth this backend's device reaches (GB/s,
     * bytes read + written by a large device-to-device copy, median). */
    lc_status (*membw)(backend *b, double *gb_s, lc_error *err);
    void (*destroy)(backend *b);
} backend_ops;

struct backend {
    const backend_ops *ops;
    const lc_model *model;
    int n_ctx, n_seq, n_batch;
    uint64_t weight_bytes_per_token; /* weights one decoding step reads, as stored */
    uint64_t kv_bytes_per_position;  /* keys + values of one position, all layers */
    char description[128];
};

/* Options after the engine filled in its defaults: every field is set. */
lc_status cpu_backend_create(const lc_model *model, const lc_engine_options *opts, backend **out,
                             lc_error *err);
/* The CUDA backend (backend/cuda), or a stand-in that says the build has none. */
lc_status cuda_backend_create(const lc_model *model, const lc_engine_options *opts, backend **out,
                              lc_error *err);
/* Usable CUDA devices: 0 without a driver, a GPU or CUDA in the build. */
int cuda_device_count(void);

#endif
