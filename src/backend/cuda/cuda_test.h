/* Entry points that run one CUDA operation on host arrays, for the backend
 * test (tests/test_cuda.c) to check against its CPU reference. Each uploads
 * its inputs, runs the launcher the forward pass uses, and copies back. */
#ifndef LLAMAC_BACKEND_CUDA_TEST_H
#define LLAMAC_BACKEND_CUDA_TEST_H

#include "llamac.h"

/* y(n, rows) = W(rows, cols) x(n, cols), W stored as wt; with norm, x is
 * RMS-normalised first; swiglu: y(n, rows / 2) = silu(y[2i]) * y[2i + 1]. */
lc_status cuda_test_matvec(lc_dtype wt, int rows, int cols, int n, const float *w, const float *x,
                           const float *norm, float eps, bool swiglu, float *y, lc_error *err);
/* The products' quantized hand-off (mv_epilogue.qout, mv_input.pre) for wt
 * weights and n entries: a producer of random weights and inputs, MV_ADD
 * onto a random residual quantized with random norm weights, or MV_SWIGLU,
 * on a grid of `blocks` blocks (0: one wave), then a consumer (normed after
 * MV_ADD) reading the hand-off and, again, the floats. q_bad counts int8
 * values, scales and sums that differ from the producer's floats quantized
 * on the host; ss_err is the largest relative error of a group's sum of
 * squares; out_diff the largest difference between the producer's floats
 * with and without the hand-off; consumer_nmse the consumer's NMSE between
 * its two inputs. */
lc_status cuda_test_handoff(lc_dtype wt, bool swiglu, int n, int blocks, int *q_bad, double *ss_err,
                            double *out_diff, double *consumer_nmse, lc_error *err);
/* out(n, dim) = rmsnorm(x(n, dim)) * norm. */
lc_status cuda_test_rmsnorm(int n, int dim, const float *x, const float *norm, float eps,
                            float *out, lc_error *err);
/* RoPE of q(n_heads * hd) and k(n_kv * hd) at position pos with base theta,
 * through the prefill kernel: q_out and k_out receive the rotated vectors. */
lc_status cuda_test_rope(int n_heads, int n_kv, int hd, int pos, float theta, const float *q,
                         const float *k, float *q_out, float *k_out, lc_error *err);
/* One query per head at position len - 1 over keys/values (n_kv, len, hd),
 * cached as kv_t, the launch sized for a context of n_ctx; out(n_heads * hd). */
lc_status cuda_test_attention(lc_dtype kv_t, int n_heads, int n_kv, int hd, int len, int n_ctx,
                              const float *q, const float *k, const float *v, float *out,
                              lc_error *err);

/* One token from each of n logits rows (vocab apart), row i drawn with
 * temperature[i], top_p[i], top_k[i] and coin[i] in [0, 1), as the decoding
 * step draws; shared_memory false keeps the probabilities in global memory
 * (the path of vocabularies too large for a block's shared memory). */
lc_status cuda_test_sample(int vocab, int n, const float *logits, const float *temperature,
                           const float *top_p, const int *top_k, const float *coin,
                           bool shared_memory, int32_t *tokens, lc_error *err);

/* The spread greedy draw of one row of vocab logits (sample_and_feed's), run
 * twice to check that its counter is left at 0. */
lc_status cuda_test_argmax_spread(int vocab, const float *logits, int32_t tokens[2], lc_error *err);

/* Whether device 0 runs the decoding step kernel (cuda_step.cuh); err says why not. */
lc_status cuda_test_step_supported(lc_error *err);

#endif
