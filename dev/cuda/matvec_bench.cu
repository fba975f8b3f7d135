/* The matrix-vector kernel's ladder, in the way of llm.c's dev/cuda: a
 * reference kernel, the backend's kernel under numbered launch variants, a
 * check of each against the reference, then a timing of each over a decoding
 * step's chain of products for a model shape (no attention), against the
 * device's copy and read bandwidth measured in the same run.
 *
 *   make dev && build/dev/matvec_bench [7b|110m|42m] [f16|bf16|f32|q8_0|q4_0]
 *
 * Chain per layer, as the backend runs it: qkv = Wqkv norm(x); x += Wo q;
 * h = swiglu(W13 norm(x)); x += W2 h; then logits = Wcls norm(x). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_ops.cuh"
#include "dev_common.cuh"

typedef struct shape {
    const char *name;
    int dim, hidden, layers, vocab;
} shape;

static const shape SHAPES[] = {
    {"7b", 4096, 11008, 32, 32000},
    {"110m", 768, 2048, 12, 32000},
    {"42m", 512, 1376, 8, 32000},
};

/* Reference: one warp per row, plain loads, the norm applied per element. */
template <typename W>
__global__ void matvec_reference(const W *w, int rows, int cols, int ld, const float *x,
                                 const float *norm, float eps, float *y) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= rows) return;
    float ss = 0.0f, dot = 0.0f;
    for (int i = lane; i < cols; i += 32) {
        ss += x[i] * x[i];
        dot += to_f32(w[(size_t)row * ld + i]) * x[i] * (norm ? norm[i] : 1.0f);
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    if (lane == 0) y[row] = norm ? dot * rsqrtf(ss / cols + eps) : dot;
}

/* Reads n 16-byte words and keeps a checksum so the loads are not dropped. */
__global__ void read_kernel(const uint4 *p, size_t n, unsigned *sink) {
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = load_stream16(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

typedef struct variant {
    const char *what;
    bool pdl;
    int blocks_per_sm;
} variant;

static const variant VARIANTS[] = {
    {"one wave, plain launches", false, 0}, {"one wave, programmatic dependent launch", true, 0},
    {"1 block/SM, plain", false, 1},        {"1 block/SM, PDL", true, 1},
    {"2 blocks/SM, plain", false, 2},       {"2 blocks/SM, PDL", true, 2},
};

typedef struct matrix {
    void *w;
    int rows, cols;
    __half *ref; /* quantized types: the stored weights as f16, for the reference */
} matrix;

/* Bytes of a stored matrix: the rows (and the scales of quantized types). */
static size_t matrix_bytes(lc_dtype t, int rows, int cols) {
    return cuda_matrix_bytes(t, rows, mv_ld(cols));
}

/* Quantized types are filled as f16, then quantized by the upload kernel. */
static matrix new_matrix(lc_dtype t, int rows, int cols, unsigned seed, size_t *bytes) {
    matrix m = {NULL, rows, cols, NULL};
    const size_t n = (size_t)rows * mv_ld(cols);
    CHECK(cudaMalloc(&m.w, matrix_bytes(t, rows, cols)));
    if (t == LC_DTYPE_F32) fill_kernel<<<1024, 256>>>((float *)m.w, n, seed);
    if (t == LC_DTYPE_F16) fill_kernel<<<1024, 256>>>((__half *)m.w, n, seed);
    if (t == LC_DTYPE_BF16) fill_kernel<<<1024, 256>>>((__nv_bfloat16 *)m.w, n, seed);
    if (cuda_quantized(t)) {
        __half *tmp;
        CHECK(cudaMalloc(&tmp, n * sizeof(__half)));
        fill_kernel<<<1024, 256>>>(tmp, n, seed);
        CHECK_LC(launch_quantize(LC_DTYPE_F16, tmp, mv_ld(cols), rows, cols, t, m.w, rows,
                                 mv_ld(cols), 0, 1, 0, &err_));
        CHECK_LC(launch_dequantize(t, m.w, rows, mv_ld(cols), tmp, 0, &err_));
        m.ref = tmp;
    }
    CHECK(cudaGetLastError());
    *bytes += matrix_bytes(t, rows, cols);
    return m;
}

typedef struct bench {
    lc_dtype t;
    int n_sm;
    int64_t max_stage; /* shared memory a launch may stage */
    float eps;
    std::vector<matrix> mats; /* 4 per layer, then the classifier */
    float *x, *qkv, *h, *logits, *norm;
    int dim, hidden;
} bench;

static void product(const bench *b, const variant *v, const matrix &m, const float *x,
                    const float *norm, mv_epilogue_kind kind, float *out, int64_t out_ld,
                    cudaStream_t s) {
    mv_input in = {x,       m.cols,           NULL,         norm,  b->eps, 1,
                   b->n_sm, v->blocks_per_sm, b->max_stage, v->pdl};
    mv_epilogue e = {kind, out, out_ld, {}};
    CHECK_LC(launch_matvec(b->t, m.w, m.rows, m.cols, mv_ld(m.cols), &in, &e, s, &err_));
}

/* The products of one kind in a step, or all of them (ALL_KINDS). */
enum { KIND_QKV, KIND_WO, KIND_W13, KIND_W2, KIND_CLS, ALL_KINDS };
static const char *const KIND_NAMES[] = {"wqkv", "wo", "w13", "w2", "classifier"};

static void chain(const bench *b, const variant *v, cudaStream_t s, int kind = ALL_KINDS) {
    const size_t n_layers = (b->mats.size() - 1) / 4;
    const bool all = kind == ALL_KINDS;
    for (size_t l = 0; l < n_layers; l++) {
        const matrix *m = &b->mats[4 * l];
        if (all || kind == KIND_QKV)
            product(b, v, m[0], b->x, b->norm, MV_STORE, b->qkv, m[0].rows, s);
        if (all || kind == KIND_WO) product(b, v, m[1], b->qkv, NULL, MV_ADD, b->x, b->dim, s);
        if (all || kind == KIND_W13)
            product(b, v, m[2], b->x, b->norm, MV_SWIGLU, b->h, b->hidden, s);
        if (all || kind == KIND_W2) product(b, v, m[3], b->h, NULL, MV_ADD, b->x, b->dim, s);
    }
    const matrix &cls = b->mats.back();
    if (all || kind == KIND_CLS)
        product(b, v, cls, b->x, b->norm, MV_STORE, b->logits, cls.rows, s);
}

/* Median time of a captured chain over 20 replays (after 3 warm-ups), in ms;
 * lo and hi get the extremes. */
static float time_chain(const bench *b, const variant *v, cudaStream_t s, cudaEvent_t e0,
                        cudaEvent_t e1, int kind, float *lo, float *hi) {
    cudaGraph_t g;
    cudaGraphExec_t ge;
    std::vector<float> ms;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    chain(b, v, s, kind);
    CHECK(cudaStreamEndCapture(s, &g));
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int r = 0; r < 23; r++) {
        CHECK(cudaEventRecord(e0, s));
        CHECK(cudaGraphLaunch(ge, s));
        CHECK(cudaEventRecord(e1, s));
        CHECK(cudaEventSynchronize(e1));
        float t_ms;
        CHECK(cudaEventElapsedTime(&t_ms, e0, e1));
        if (r >= 3) ms.push_back(t_ms);
    }
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(g));
    std::sort(ms.begin(), ms.end());
    if (lo) *lo = ms.front();
    if (hi) *hi = ms.back();
    return ms[ms.size() / 2];
}

/* Normalised mean squared error of each product of the first layer and the
 * classifier against the reference. */
static double check(const bench *b, const variant *v, float *y, float *y_ref, const float *x) {
    double worst = 0.0;
    const matrix *ms[] = {&b->mats[0], &b->mats[1], &b->mats[2], &b->mats[3], &b->mats.back()};
    for (const matrix *m : ms) {
        const bool normed = m->cols == b->dim && m != &b->mats[1];
        const float *norm = normed ? b->norm : NULL;
        if (b->t == LC_DTYPE_F32)
            matvec_reference<<<ceil_div(m->rows, 8), 256>>>((const float *)m->w, m->rows, m->cols,
                                                            mv_ld(m->cols), x, norm, b->eps, y_ref);
        if (b->t == LC_DTYPE_F16)
            matvec_reference<<<ceil_div(m->rows, 8), 256>>>((const __half *)m->w, m->rows, m->cols,
                                                            mv_ld(m->cols), x, norm, b->eps, y_ref);
        if (b->t == LC_DTYPE_BF16)
            matvec_reference<<<ceil_div(m->rows, 8), 256>>>((const __nv_bfloat16 *)m->w, m->rows,
                                                            m->cols, mv_ld(m->cols), x, norm,
                                                            b->eps, y_ref);
        if (m->ref)
            matvec_reference<<<ceil_div(m->rows, 8), 256>>>(m->ref, m->rows, m->cols,
                                                            mv_ld(m->cols), x, norm, b->eps, y_ref);
        CHECK(cudaGetLastError());
        product(b, v, *m, x, norm, MV_STORE, y, m->rows, 0);
        CHECK(cudaDeviceSynchronize());
        std::vector<float> a(m->rows), r(m->rows);
        CHECK(cudaMemcpy(a.data(), y, m->rows * 4, cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(r.data(), y_ref, m->rows * 4, cudaMemcpyDeviceToHost));
        double num = 0, den = 1e-30;
        for (int i = 0; i < m->rows; i++) {
            num += (double)(a[i] - r[i]) * (a[i] - r[i]);
            den += (double)r[i] * r[i];
        }
        worst = std::max(worst, num / den);
    }
    return worst;
}

int main(int argc, char **argv) {
    const char *shape_name = argc > 1 ? argv[1] : "7b", *type_name = argc > 2 ? argv[2] : "f16";
    const shape *sh = NULL;
    for (const shape &s : SHAPES)
        if (!strcmp(s.name, shape_name)) sh = &s;
    lc_dtype t = !strcmp(type_name, "f32")    ? LC_DTYPE_F32
                 : !strcmp(type_name, "bf16") ? LC_DTYPE_BF16
                 : !strcmp(type_name, "f16")  ? LC_DTYPE_F16
                 : !strcmp(type_name, "q8_0") ? LC_DTYPE_Q8_0
                 : !strcmp(type_name, "q4_0") ? LC_DTYPE_Q4_0
                                              : LC_DTYPE_COUNT;
    if (!sh || t == LC_DTYPE_COUNT) {
        fprintf(stderr, "usage: matvec_bench [7b|110m|42m] [f16|bf16|f32|q8_0|q4_0]\n");
        return 2;
    }
    bench b;
    b.t = t;
    b.eps = 1e-5f;
    b.dim = sh->dim;
    b.hidden = sh->hidden;
    CHECK(cudaDeviceGetAttribute(&b.n_sm, cudaDevAttrMultiProcessorCount, 0));
    CHECK_LC(matvec_setup(0, &b.max_stage, &err_));

    size_t bytes = 0;
    for (int l = 0; l < sh->layers; l++) {
        b.mats.push_back(new_matrix(t, 3 * sh->dim, sh->dim, 4 * l + 1, &bytes));
        b.mats.push_back(new_matrix(t, sh->dim, sh->dim, 4 * l + 2, &bytes));
        b.mats.push_back(new_matrix(t, 2 * sh->hidden, sh->dim, 4 * l + 3, &bytes));
        b.mats.push_back(new_matrix(t, sh->dim, sh->hidden, 4 * l + 4, &bytes));
    }
    b.mats.push_back(new_matrix(t, sh->vocab, sh->dim, 999, &bytes));
    const int widest = std::max({3 * sh->dim, 2 * sh->hidden, sh->vocab});
    float *x0, *y, *y_ref;
    CHECK(cudaMalloc(&b.x, widest * 4));
    CHECK(cudaMalloc(&x0, widest * 4));
    CHECK(cudaMalloc(&b.qkv, 3 * sh->dim * 4));
    CHECK(cudaMalloc(&b.h, sh->hidden * 4));
    CHECK(cudaMalloc(&b.logits, sh->vocab * 4));
    CHECK(cudaMalloc(&b.norm, sh->hidden * 4));
    CHECK(cudaMalloc(&y, widest * 4));
    CHECK(cudaMalloc(&y_ref, widest * 4));
    fill_kernel<<<64, 256>>>(x0, widest, 7);
    fill_kernel<<<64, 256>>>(b.norm, sh->hidden, 8);
    CHECK(cudaDeviceSynchronize());

    cudaStream_t s;
    cudaEvent_t e0, e1;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;

    /* Ceilings: a 2 GiB device copy (bytes read + written) and a read of all weights. */
    const size_t copy_bytes = (size_t)2 << 30;
    void *src, *dst;
    unsigned *sink;
    CHECK(cudaMalloc(&src, copy_bytes));
    CHECK(cudaMalloc(&dst, copy_bytes));
    CHECK(cudaMalloc(&sink, 4));
    for (int r = 0; r < 12; r++) {
        CHECK(cudaEventRecord(e0, s));
        CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, s));
        CHECK(cudaEventRecord(e1, s));
        CHECK(cudaEventSynchronize(e1));
        float t_ms;
        CHECK(cudaEventElapsedTime(&t_ms, e0, e1));
        if (r >= 2) ms.push_back(t_ms);
    }
    const double copy_gbs = 2.0 * copy_bytes / (median(ms) * 1e6);
    ms.clear();
    CHECK(cudaFree(src));
    CHECK(cudaFree(dst));
    const matrix &big = b.mats[2];
    for (int r = 0; r < 12; r++) { /* each matrix's bytes, as one stream per matrix */
        CHECK(cudaEventRecord(e0, s));
        for (const matrix &m : b.mats)
            read_kernel<<<b.n_sm * 8, 256, 0, s>>>((const uint4 *)m.w,
                                                   matrix_bytes(t, m.rows, m.cols) / 16, sink);
        CHECK(cudaEventRecord(e1, s));
        CHECK(cudaEventSynchronize(e1));
        float t_ms;
        CHECK(cudaEventElapsedTime(&t_ms, e0, e1));
        if (r >= 2) ms.push_back(t_ms);
    }
    const double read_gbs = bytes / (median(ms) * 1e6);
    ms.clear();
    (void)big;
    printf("%s %s: %d products, %.3f GB of weights; copy %.0f GB/s, read kernel %.0f GB/s (%.1f%% "
           "of copy)\n",
           sh->name, type_name, (int)b.mats.size(), bytes / 1e9, copy_gbs, read_gbs,
           100 * read_gbs / copy_gbs);
    printf("floor at copy bandwidth: %.1f us per chain\n\n", bytes / copy_gbs / 1e3);
    printf("%-3s %-42s %10s %12s %10s %8s %8s\n", "#", "variant", "NMSE", "us/chain", "[min..max]",
           "GB/s", "% copy");

    for (size_t vi = 0; vi < sizeof VARIANTS / sizeof VARIANTS[0]; vi++) {
        const variant *v = &VARIANTS[vi];
        const double err = check(&b, v, y, y_ref, x0);
        CHECK(cudaMemcpy(b.x, x0, sh->dim * 4, cudaMemcpyDeviceToDevice));
        float lo, hi;
        const float med = time_chain(&b, v, s, e0, e1, ALL_KINDS, &lo, &hi);
        printf("%-3zu %-42s %10.2e %12.1f %4.0f..%-5.0f %8.0f %7.1f%%%s\n", vi + 1, v->what, err,
               med * 1e3, lo * 1e3, hi * 1e3, bytes / (med * 1e6),
               100 * bytes / (med * 1e6) / copy_gbs,
               err < (cuda_quantized(t) ? 1e-3 : 1e-5) ? "" : "  WRONG");
    }

    /* Where the chain's time goes, per kind of product (PDL, as many blocks
     * as fit, and one block per SM so the next kernel's block fits beside):
     * time per product against its bytes at the copy bandwidth. */
    printf("\nper kind of product (time of a chain of only that kind / its products):\n");
    printf("%-12s %-10s %8s %10s %10s %10s %8s\n", "kind", "launch", "MB each", "us each",
           "floor us", "over us", "% copy");
    for (int vi : {1, 3}) {
        const variant *v = &VARIANTS[vi];
        for (int kind = KIND_QKV; kind < ALL_KINDS; kind++) {
            const size_t n_layers = (b.mats.size() - 1) / 4;
            const matrix &m = kind == KIND_CLS ? b.mats.back() : b.mats[kind];
            const int count = kind == KIND_CLS ? 1 : (int)n_layers;
            const double mb = matrix_bytes(t, m.rows, m.cols) / 1e6;
            const float us = time_chain(&b, v, s, e0, e1, kind, NULL, NULL) * 1e3f / count;
            const double floor_us = mb / copy_gbs * 1e3;
            printf("%-12s %-10s %8.2f %10.2f %10.2f %10.2f %7.1f%%\n", KIND_NAMES[kind],
                   vi == 1 ? "PDL" : "PDL 1/SM", mb, us, floor_us, us - floor_us,
                   100 * floor_us / us);
        }
    }
    /* The fixed cost of a product: the same launches and staging over
     * matrices of 64 rows (a few kB of weights each). */
    {
        bench tiny = b;
        size_t tiny_bytes = 0;
        tiny.mats.clear();
        for (size_t i = 0; i < b.mats.size(); i++)
            tiny.mats.push_back(new_matrix(t, 64, b.mats[i].cols, 1000 + (unsigned)i, &tiny_bytes));
        for (int vi : {0, 1, 3}) {
            const float ms_chain =
                time_chain(&tiny, &VARIANTS[vi], s, e0, e1, ALL_KINDS, NULL, NULL);
            printf("fixed cost (64-row matrices, %s): %.2f us per product\n", VARIANTS[vi].what,
                   ms_chain * 1e3 / tiny.mats.size());
        }
    }
    return 0;
}
