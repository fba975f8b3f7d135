/* One operation at a time on host arrays, for tests/test_cuda.c. Device
 * memory is tracked in a small list and freed on every path. */
#include <math.h>
#include <stdlib.h>

#include "backend/cuda/cuda_ops.cuh"
#include "backend/cuda/cuda_step.cuh"
extern "C" {
#include "backend/cuda/cuda_test.h"
}

typedef struct scratch {
    void *p[32];
    int n;
} scratch;

static void scratch_free(scratch *s) {
    for (int i = 0; i < s->n; i++) cudaFree(s->p[i]);
    cudaGetLastError();
}

/* Device copy of n floats converted to t (src NULL: uninitialised). */
static lc_status put(scratch *s, const float *src, size_t n, lc_dtype t, void **out,
                     lc_error *err) {
    const size_t sz = t == LC_DTYPE_F32 ? 4 : 2;
    float *tmp = NULL;
    CU_TRY(cudaMalloc(out, n * sz));
    s->p[s->n++] = *out;
    if (!src) return LC_OK;
    CU_TRY(cudaMalloc((void **)&tmp, n * 4));
    s->p[s->n++] = tmp;
    CU_TRY(cudaMemcpy(tmp, src, n * 4, cudaMemcpyHostToDevice));
    return launch_convert(LC_DTYPE_F32, tmp, (int64_t)n, 1, (int64_t)n, t, *out, (int64_t)n, 0,
                          err);
}

static lc_status get(float *dst, const void *src, size_t n, lc_error *err) {
    CU_TRY(cudaDeviceSynchronize());
    CU_TRY(cudaMemcpy(dst, src, n * 4, cudaMemcpyDeviceToHost));
    return LC_OK;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((st = (call))) goto done;                                                              \
    } while (0)

extern "C" lc_status cuda_test_matvec(lc_dtype wt, int rows, int cols, int n, const float *w,
                                      const float *x, const float *norm, float eps, bool swiglu,
                                      float *y, lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    void *dw, *dx, *dn = NULL, *dy;
    int64_t max_in;
    const int out_cols = swiglu ? rows / 2 : rows;
    TRY(matvec_setup(0, &max_in, err));
    { /* stored as the backend stores it: rows mv_ld(cols) apart, zero-padded */
        void *dense;
        TRY(put(&s, w, (size_t)rows * cols, LC_DTYPE_F32, &dense, err));
        const size_t bytes = cuda_matrix_bytes(wt, rows, mv_ld(cols));
        if (cudaMalloc(&dw, bytes) || (s.p[s.n++] = dw, cudaMemset(dw, 0, bytes))) {
            st = lc_fail(err, LC_ERR_DEVICE, "allocating a test matrix");
            goto done;
        }
        if (cuda_quantized(wt))
            TRY(launch_quantize(LC_DTYPE_F32, dense, cols, rows, cols, wt, dw, rows, mv_ld(cols), 0,
                                1, 0, err));
        else
            TRY(launch_convert(LC_DTYPE_F32, dense, cols, rows, cols, wt, dw, mv_ld(cols), 0, err));
    }
    TRY(put(&s, x, (size_t)n * cols, LC_DTYPE_F32, &dx, err));
    if (norm) TRY(put(&s, norm, (size_t)cols, LC_DTYPE_F32, &dn, err));
    TRY(put(&s, NULL, (size_t)n * out_cols, LC_DTYPE_F32, &dy, err));
    {
        int n_sm = 0;
        cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, 0);
        mv_input in = {
            (const float *)dx, cols, NULL, (const float *)dn, eps, n, n_sm, 0, max_in, true};
        mv_epilogue e = {swiglu ? MV_SWIGLU : MV_STORE, (float *)dy, out_cols};
        TRY(launch_matvec(wt, dw, rows, cols, mv_ld(cols), &in, &e, 0, err));
    }
    TRY(get(y, dy, (size_t)n * out_cols, err));
done:
    scratch_free(&s);
    return st;
}

/* Uniform floats in [-1, 1) from a 64-bit LCG (the test's own data). */
static void fill_random(float *x, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(*state >> 11) / 4503599627370496.0 - 1.0);
    }
}

/* A random (rows, cols) matrix stored as the backend stores wt. */
static lc_status put_matrix(scratch *s, lc_dtype wt, int rows, int cols, uint64_t *rng, void **out,
                            lc_error *err) {
    float *w = (float *)malloc((size_t)rows * cols * sizeof *w);
    if (!w) return lc_fail(err, LC_ERR_NOMEM, "test matrix");
    fill_random(w, (size_t)rows * cols, rng);
    void *dense;
    lc_status st = put(s, w, (size_t)rows * cols, LC_DTYPE_F32, &dense, err);
    free(w);
    if (st) return st;
    CU_TRY(cudaMalloc(out, cuda_matrix_bytes(wt, rows, cols)));
    s->p[s->n++] = *out;
    return launch_quantize(LC_DTYPE_F32, dense, cols, rows, cols, wt, *out, rows, cols, 0, 1, 0,
                           err);
}

extern "C" lc_status cuda_test_handoff(lc_dtype wt, bool swiglu, int n, int blocks, int *q_bad,
                                       double *ss_err, double *out_diff, double *consumer_nmse,
                                       lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    uint64_t rng = 42 + (uint64_t)n;
    const int cols = 512, rows = swiglu ? 768 : 256, out_len = swiglu ? rows / 2 : rows;
    const int rows2 = 128, ng = out_len / MV_QGROUP;
    const size_t n_out = (size_t)n * out_len;
    float *host = (float *)malloc((n_out + cols + (size_t)n * cols) * sizeof(float));
    float *h_out = host, *h_g = host + n_out, *h_x = h_g + cols;
    float *h_q = (float *)malloc((n_out + 3 * (size_t)n * ng) * sizeof(float));
    float *y_pre = (float *)malloc(2 * (size_t)n * rows2 * sizeof(float)), *y_f32;
    void *w1, *w2, *dx, *dg, *dres, *dout0, *dout1, *dq, *dy0, *dy1;
    int64_t max_in;
    int n_sm = 0;
    if (!host || !h_q || !y_pre) {
        st = lc_fail(err, LC_ERR_NOMEM, "hand-off test");
        goto done;
    }
    y_f32 = y_pre + (size_t)n * rows2;
    TRY(matvec_setup(0, &max_in, err));
    cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, 0);
    TRY(put_matrix(&s, wt, rows, cols, &rng, &w1, err));
    TRY(put_matrix(&s, wt, rows2, out_len, &rng, &w2, err));
    fill_random(h_x, (size_t)n * cols, &rng);
    fill_random(h_g, (size_t)out_len, &rng); /* the consumer's norm weights (MV_ADD) */
    fill_random(h_out, n_out, &rng);         /* the residual (MV_ADD) */
    TRY(put(&s, h_x, (size_t)n * cols, LC_DTYPE_F32, &dx, err));
    TRY(put(&s, h_g, (size_t)out_len, LC_DTYPE_F32, &dg, err));
    TRY(put(&s, h_out, n_out, LC_DTYPE_F32, &dres, err));
    TRY(put(&s, NULL, n_out, LC_DTYPE_F32, &dout0, err));
    TRY(put(&s, NULL, n_out, LC_DTYPE_F32, &dout1, err));
    TRY(put(&s, NULL, (size_t)n * rows2, LC_DTYPE_F32, &dy0, err));
    TRY(put(&s, NULL, (size_t)n * rows2, LC_DTYPE_F32, &dy1, err));
    CU_TRY_GOTO(cudaMalloc(&dq, mv_qact_bytes(n, out_len)), done);
    s.p[s.n++] = dq;
    {
        const mv_qact qa = mv_qact_at(dq, n, out_len);
        /* the producer without and with the hand-off, from the same residual */
        mv_input in = {(const float *)dx, cols, NULL, NULL, 1e-5f, n, n_sm, 0, max_in, true};
        if (blocks) in.n_sm = blocks, in.blocks_per_sm = 1; /* a grid of `blocks` */
        for (int k = 0; k < 2; k++) {
            float *out = (float *)(k ? dout1 : dout0);
            CU_TRY_GOTO(cudaMemcpy(out, dres, n_out * 4, cudaMemcpyDeviceToDevice), done);
            mv_epilogue e = {swiglu ? MV_SWIGLU : MV_ADD, out, out_len};
            if (k) {
                e.qout = qa;
                e.qnorm = swiglu ? NULL : (const float *)dg;
            }
            TRY(launch_matvec(wt, w1, rows, cols, cols, &in, &e, 0, err));
        }
        /* the consumer from the hand-off and from the floats */
        for (int k = 0; k < 2; k++) {
            mv_input c = {(const float *)dout1,
                          out_len,
                          NULL,
                          swiglu ? NULL : (const float *)dg,
                          1e-5f,
                          n,
                          n_sm,
                          0,
                          max_in,
                          true};
            if (k == 0) c.pre = qa;
            mv_epilogue e = {MV_STORE, (float *)(k ? dy1 : dy0), rows2};
            TRY(launch_matvec(wt, w2, rows2, out_len, out_len, &c, &e, 0, err));
        }
        float *h_out1 = h_q; /* reused below for the hand-off's arrays */
        TRY(get(h_out, dout0, n_out, err));
        TRY(get(h_out1, dout1, n_out, err));
        *out_diff = 0;
        for (size_t i = 0; i < n_out; i++)
            *out_diff = fmax(*out_diff, fabs((double)h_out[i] - h_out1[i]));
        /* the hand-off against the floats quantized here */
        int8_t *q8 = (int8_t *)malloc(n_out);
        float *d = (float *)malloc((size_t)n * ng * 3 * sizeof(float));
        if (!q8 || !d) {
            free(q8), free(d);
            st = lc_fail(err, LC_ERR_NOMEM, "hand-off test");
            goto done;
        }
        int *sum = (int *)(d + (size_t)n * ng);
        float *ss = d + 2 * (size_t)n * ng;
        cudaMemcpy(q8, qa.q, n_out, cudaMemcpyDeviceToHost);
        cudaMemcpy(d, qa.d, (size_t)n * ng * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(sum, qa.sum, (size_t)n * ng * 4, cudaMemcpyDeviceToHost);
        cudaMemcpy(ss, qa.ss, (size_t)n * ng * 4, cudaMemcpyDeviceToHost);
        *q_bad = 0;
        *ss_err = 0;
        for (int t = 0; t < n; t++)
            for (int g = 0; g < ng; g++) {
                const float *x = h_out1 + (size_t)t * out_len + g * MV_QGROUP;
                float v[MV_QGROUP], amax = 0.0f;
                double sq = 0;
                for (int i = 0; i < MV_QGROUP; i++) {
                    v[i] = swiglu ? x[i] : x[i] * h_g[g * MV_QGROUP + i];
                    amax = fmaxf(amax, fabsf(v[i]));
                    sq += (double)x[i] * x[i];
                }
                const float dd = amax / 127.0f, inv = dd != 0.0f ? 1.0f / dd : 0.0f;
                int qs = 0;
                for (int i = 0; i < MV_QGROUP; i++) {
                    const int q = (int)roundf(v[i] * inv);
                    qs += q;
                    *q_bad += q != q8[(size_t)t * out_len + g * MV_QGROUP + i];
                }
                const size_t gi = (size_t)t * ng + g;
                *q_bad += (d[gi] != dd) + (sum[gi] != qs);
                *ss_err = fmax(*ss_err, fabs(ss[gi] - sq) / sq);
            }
        free(q8), free(d);
        TRY(get(y_pre, dy0, (size_t)n * rows2, err));
        TRY(get(y_f32, dy1, (size_t)n * rows2, err));
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)n * rows2; i++) {
            num += ((double)y_pre[i] - y_f32[i]) * ((double)y_pre[i] - y_f32[i]);
            den += (double)y_f32[i] * y_f32[i];
        }
        *consumer_nmse = den > 0 ? num / den : num;
    }
done:
    free(host), free(h_q), free(y_pre);
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_rmsnorm(int n, int dim, const float *x, const float *norm, float eps,
                                       float *out, lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    void *dx, *dn, *dy;
    TRY(put(&s, x, (size_t)n * dim, LC_DTYPE_F32, &dx, err));
    TRY(put(&s, norm, (size_t)dim, LC_DTYPE_F32, &dn, err));
    TRY(put(&s, NULL, (size_t)n * dim, LC_DTYPE_F32, &dy, err));
    TRY(launch_rmsnorm((const float *)dx, dim, NULL, n, dim, (const float *)dn, eps, LC_DTYPE_F32,
                       dy, dim, 0, err));
    TRY(get(out, dy, (size_t)n * dim, err));
done:
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_rope(int n_heads, int n_kv, int hd, int pos, float theta,
                                    const float *q, const float *k, float *q_out, float *k_out,
                                    lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    const int q_rows = n_heads * hd, kv_rows = n_kv * hd, n_ctx = pos + 1;
    float *qkv = (float *)calloc((size_t)q_rows + 2 * kv_rows, 4);
    float2 *rope = (float2 *)malloc((size_t)n_ctx * hd / 2 * sizeof(float2));
    void *dqkv, *drope, *dq, *dk, *dv, *dpos;
    const int32_t zero_pos[2] = {pos, 0}; /* pos, then seq 0 */
    if (!qkv || !rope) {
        st = lc_fail(err, LC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < q_rows; i++) qkv[i] = q[i];
    for (int i = 0; i < kv_rows; i++) qkv[q_rows + i] = k[i];
    for (int i = 0; i < hd / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int p = 0; p < n_ctx; p++)
            rope[(int64_t)p * hd / 2 + i] = make_float2(cosf(p * freq), sinf(p * freq));
    }
    TRY(put(&s, qkv, (size_t)q_rows + 2 * kv_rows, LC_DTYPE_F32, &dqkv, err));
    TRY(put(&s, (const float *)rope, (size_t)n_ctx * hd, LC_DTYPE_F32, &drope, err));
    TRY(put(&s, NULL, (size_t)q_rows, LC_DTYPE_F32, &dq, err));
    TRY(put(&s, NULL, (size_t)n_kv * n_ctx * hd, LC_DTYPE_F32, &dk, err));
    TRY(put(&s, NULL, (size_t)n_kv * n_ctx * hd, LC_DTYPE_F32, &dv, err));
    TRY(put(&s, (const float *)zero_pos, 2, LC_DTYPE_F32, &dpos, err)); /* bits copied as is */
    {
        kv_target kv = {q_rows,
                        kv_rows,
                        hd,
                        (const float2 *)drope,
                        (const int32_t *)dpos,
                        (const int32_t *)dpos + 1,
                        dk,
                        dv,
                        LC_DTYPE_F32,
                        (int64_t)n_kv * n_ctx * hd,
                        (int64_t)n_ctx * hd};
        TRY(launch_rope_store((const float *)dqkv, q_rows + 2 * kv_rows, 1, &kv, LC_DTYPE_F32, dq,
                              q_rows, 0, err));
    }
    TRY(get(q_out, dq, (size_t)q_rows, err));
    for (int h = 0; h < n_kv; h++) /* each head's row at `pos` */
        TRY(get(k_out + h * hd, (const float *)dk + ((int64_t)h * n_ctx + pos) * hd, (size_t)hd,
                err));
done:
    free(qkv);
    free(rope);
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_attention(lc_dtype kv_t, int n_heads, int n_kv, int hd, int len,
                                         int n_ctx, const float *q, const float *k, const float *v,
                                         float *out, lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    void *dq, *dk, *dv, *dout, *dpos, *dop, *dml, *ddone;
    const int32_t pos_seq[2] = {len - 1, 0};
    int chunk, max_splits;
    attention_split(n_ctx, &chunk, &max_splits); /* blocks sized for n_ctx, keys up to len */
    TRY(attention_setup(0, err));
    TRY(put(&s, q, (size_t)n_heads * hd, LC_DTYPE_F32, &dq, err));
    TRY(put(&s, k, (size_t)n_kv * len * hd, kv_t, &dk, err));
    TRY(put(&s, v, (size_t)n_kv * len * hd, kv_t, &dv, err));
    TRY(put(&s, NULL, (size_t)n_heads * hd, LC_DTYPE_F32, &dout, err));
    TRY(put(&s, (const float *)pos_seq, 2, LC_DTYPE_F32, &dpos, err));
    TRY(put(&s, NULL, (size_t)n_heads * max_splits * hd, LC_DTYPE_F32, &dop, err));
    TRY(put(&s, NULL, (size_t)n_heads * max_splits * 2, LC_DTYPE_F32, &dml, err));
    TRY(put(&s, NULL, (size_t)n_kv, LC_DTYPE_F32, &ddone, err));
    if (cudaMemset(ddone, 0, (size_t)n_kv * 4) != cudaSuccess) {
        st = lc_fail(err, LC_ERR_DEVICE, "cudaMemset");
        goto done;
    }
    {
        attn_args a = {(const float *)dq,
                       (float *)dout,
                       dk,
                       dv,
                       kv_t,
                       (const int32_t *)dpos,
                       (const int32_t *)dpos + 1,
                       1,
                       n_heads,
                       n_kv,
                       hd,
                       (int64_t)n_kv * len * hd,
                       (int64_t)len * hd,
                       chunk,
                       max_splits,
                       (float *)dop,
                       (float *)dml,
                       (unsigned *)ddone,
                       true};
        TRY(launch_attention(&a, 0, err));
    }
    TRY(get(out, dout, (size_t)n_heads * hd, err));
done:
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_sample(int vocab, int n, const float *logits,
                                      const float *temperature, const float *top_p,
                                      const int *top_k, const float *coin, bool shared_memory,
                                      int32_t *tokens, lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    void *dl, *de, *dr, *dt;
    sample_row *rows = (sample_row *)malloc((size_t)n * sizeof *rows);
    int64_t max_smem = 0;
    if (!rows) return lc_fail(err, LC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) rows[i] = (sample_row){temperature[i], top_p[i], coin[i], top_k[i]};
    TRY(sample_setup(0, &max_smem, err));
    TRY(put(&s, logits, (size_t)n * vocab, LC_DTYPE_F32, &dl, err));
    TRY(put(&s, NULL, (size_t)n * vocab, LC_DTYPE_F32, &de, err));
    TRY(put(&s, NULL, (size_t)n * sizeof *rows / 4, LC_DTYPE_F32, &dr, err));
    TRY(put(&s, NULL, (size_t)n, LC_DTYPE_F32, &dt, err));
    if (cudaMemcpy(dr, rows, (size_t)n * sizeof *rows, cudaMemcpyHostToDevice)) {
        st = lc_fail(err, LC_ERR_DEVICE, "copying the rules");
        goto done;
    }
    TRY(launch_sample((const float *)dl, vocab, (const sample_row *)dr, n, (float *)de,
                      shared_memory ? max_smem : 0, (int32_t *)dt, NULL, 0, err));
    if (cudaDeviceSynchronize() || cudaMemcpy(tokens, dt, (size_t)n * 4, cudaMemcpyDeviceToHost))
        st = lc_fail(err, LC_ERR_DEVICE, "sampling: %s", cudaGetErrorString(cudaGetLastError()));
done:
    free(rows);
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_argmax_spread(int vocab, const float *logits, int32_t tokens[2],
                                             lc_error *err) {
    scratch s = {{0}, 0};
    lc_status st = LC_OK;
    void *dl, *dp, *dd, *dt;
    TRY(put(&s, logits, (size_t)vocab, LC_DTYPE_F32, &dl, err));
    TRY(put(&s, NULL, 2 * ARGMAX_BLOCKS, LC_DTYPE_F32, &dp, err));
    TRY(put(&s, NULL, 1, LC_DTYPE_F32, &dd, err));
    TRY(put(&s, NULL, 2, LC_DTYPE_F32, &dt, err));
    /* tokens start as -1, so a second draw that wrote nothing shows */
    if (cudaMemset(dd, 0, sizeof(unsigned)) || cudaMemset(dt, 0xff, 2 * sizeof(int32_t))) {
        st = lc_fail(err, LC_ERR_DEVICE, "clearing the counter and the tokens");
        goto done;
    }
    for (int k = 0; k < 2; k++)
        TRY(launch_argmax_spread((const float *)dl, vocab, (int2 *)dp, (unsigned *)dd,
                                 (int32_t *)dt + k, NULL, 0, err));
    if (cudaDeviceSynchronize() ||
        cudaMemcpy(tokens, dt, 2 * sizeof(int32_t), cudaMemcpyDeviceToHost))
        st = lc_fail(err, LC_ERR_DEVICE, "argmax: %s", cudaGetErrorString(cudaGetLastError()));
done:
    scratch_free(&s);
    return st;
}

extern "C" lc_status cuda_test_step_supported(lc_error *err) { return step_supported(0, err); }
