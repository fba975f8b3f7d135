/* The CUDA backend of a build without CUDA (no nvcc found, or CUDA=0): it
 * says so when asked for, and reports no devices so "auto" picks the CPU. */
#include "backend/backend.h"
#include "core/error.h"

lc_status cuda_backend_create(const lc_model *model, const lc_engine_options *opts, backend **out,
                              lc_error *err) {
    (void)model;
    (void)opts;
    *out = NULL;
    return lc_fail(err, LC_ERR_UNSUPPORTED,
                   "--device cuda: this build has no CUDA backend (build with nvcc on the PATH, "
                   "and without CUDA=0)");
}

int cuda_device_count(void) { return 0; }

#include "backend/cuda/cuda_test.h"

static lc_status no_cuda(lc_error *err) {
    return lc_fail(err, LC_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
lc_status cuda_test_matvec(lc_dtype wt, int rows, int cols, int n, const float *w, const float *x,
                           const float *norm, float eps, bool swiglu, float *y, lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_handoff(lc_dtype wt, bool swiglu, int n, int blocks, int *q_bad, double *ss_err,
                            double *out_diff, double *consumer_nmse, lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_rmsnorm(int n, int dim, const float *x, const float *norm, float eps,
                            float *out, lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_rope(int n_heads, int n_kv, int hd, int pos, float theta, const float *q,
                         const float *k, float *q_out, float *k_out, lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_attention(lc_dtype kv_t, int n_heads, int n_kv, int hd, int len, int n_ctx,
                              const float *q, const float *k, const float *v, float *out,
                              lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_sample(int vocab, int n, const float *logits, const float *temperature,
                           const float *top_p, const int *top_k, const float *coin,
                           bool shared_memory, int32_t *tokens, lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_argmax_spread(int vocab, const float *logits, int32_t tokens[2],
                                  lc_error *err) {
    return no_cuda(err);
}
lc_status cuda_test_step_supported(lc_error *err) { return no_cuda(err); }
