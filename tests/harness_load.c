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
