/* The harness helpers that reach into the library (shared models and
 * tokenizers, the GPU check): apart from harness.c so the kernel-only test
 * binary (make test-arm64) links without the model and tokenizer code and the
 * libraries those need. */
#include <stdio.h>

#include "harness.h"
#include "llamac.h"

bool skip_without_gpu(test_ctx *t) {
    if (lc_cuda_device_count() > 0) return false;
    snprintf(t->skipped, sizeof t->skipped,
             "no CUDA device here (the GPU tests run in scripts/gpu-check.sh)");
    return true;
}

lc_model *load_shared_model(test_ctx *t, const char *rel) {
    char path[1024];
    lc_model *m = NULL;
    lc_error err;
    if (lc_model_load(shared_path(path, sizeof path, rel), &m, &err))
        CHECK(t, false, "%s", err.msg);
    return m;
}

lc_tokenizer *load_shared_tokenizer(test_ctx *t, const char *rel) {
    char path[1024];
    lc_tokenizer *tok = NULL;
    lc_error err;
    if (lc_tokenizer_load(shared_path(path, sizeof path, rel), &tok, &err))
        CHECK(t, false, "%s", err.msg);
    return tok;
}

bool quantize_shared(test_ctx *t, const char *in_rel, const char *tok_rel, const char *out,
                     const char *type) {
    char in[1024], tok[1024];
    lc_quantize_params qp = {.input = shared_path(in, sizeof in, in_rel),
                             .tokenizer = tok_rel ? shared_path(tok, sizeof tok, tok_rel) : NULL,
                             .output = out,
                             .type = type,
                             .name = "test"};
    lc_error err;
    lc_status st = lc_quantize(&qp, NULL, NULL, &err);
    CHECK(t, st == LC_OK, "quantize %s to %s: %s", in_rel, type, err.msg);
    return st == LC_OK;
}
