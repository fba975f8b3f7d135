/* Experiment for issue 4: a decoding step's chain of quantized products as
 * ONE persistent kernel with grid barriers, against the same chain as one
 * kernel per product with programmatic dependent launch (the backend's way).
 * Each kernel boundary costs ~1.75 us plus the inputs' staging (run 21 of
 * docs/cuda-notes.md); a persistent block loads its first weights of product
 * p + 1 before it waits at the barrier for product p, as a PDL kernel does
 * before griddepcontrol.wait, but without a launch or a grid's ramp-up.
 *
 *   make dev && build/dev/persistent_bench [q8_0|q4_0] [7b|110m]
 *
 * The products use the backend's device code (cuda_ops.cu is included, so
 * this program links none of the library's copy of it). Every product
 * stores its output (no residual adds, whose reads would need L1 bypassed
 * in a persistent kernel), so both versions compute the same numbers: the
 * program checks them against each other, then times both. */
#include "../../src/backend/cuda/cuda_ops.cu"
#include "dev_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

/* One product of the chain. */
struct pproduct {
    const void *w;
    const __half *scales;
    int rows, cols;
    const float *x, *norm;
    mv_epilogue epi;
};

__device__ __forceinline__ unsigned load_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* The chain in one launch: every block walks every product as the
 * quantized kernel does, and `arrive` counts the blocks done with each. */
template <typename Q>
__global__ void __launch_bounds__(MV_WARPS * 32, 2)
    persistent_kernel(const pproduct *prods, int n_prods, float eps, unsigned *arrive) {
    extern __shared__ float xs[];
    __shared__ float red[32];
    const int lane = threadIdx.x & 31;
    for (int p = 0; p < n_prods; p++) {
        const pproduct P = prods[p];
        const int ld = P.cols;
        mv_matrix m;
        m.w = static_cast<const uint4 *>(P.w);
        m.scales = P.scales;
        m.nb = ld / 32;
        m.n_vec = ld / mv_quant<Q>::V;
        m.n_batches = (m.n_vec + 32 * MV_UNROLL - 1) / (32 * MV_UNROLL);
        m.n_pairs = P.rows / 2;
        m.pair_stride = gridDim.x * MV_WARPS;
        m.paired_rounds = false;
        mv_walk at = {(int)blockIdx.x * MV_WARPS + (int)(threadIdx.x >> 5), 0};
        mv_qbatch a, b;
        mv_tokens<1> tok;
        tok.pos[0] = tok.seq[0] = 0;
        float scale[1] = {1.0f};
        const mv_input in = {P.x, ld, NULL, P.norm, eps, 1, 0, 0, 0, false};
        mv_qsmem sm;
        sm.xs = xs;
        sm.gs = xs + ld;
        sm.xq = reinterpret_cast<int8_t *>(xs + mv_stage_floats(1, ld, P.norm != NULL));
        sm.xd = reinterpret_cast<float *>(sm.xq + ld);
        sm.xsum = reinterpret_cast<int *>(sm.xd + ld / MV_QGROUP);
        stage_quant_before(in, P.cols, sm);
        if (at.pair < m.n_pairs) mv_qload<Q>(a, m.w, m.scales, m.nb, m.n_vec, at.pair, 0, lane);
        if (p > 0) { /* the grid barrier: product p - 1 done everywhere */
            if (threadIdx.x == 0)
                while (load_acquire(arrive) < (unsigned)p * gridDim.x) {
                }
            __syncthreads();
        }
        stage_quant_after<1>(in, P.cols, ld, sm);
        stage_quant_wait();
        if (P.norm)
            stage_int8<1, true>(sm, P.cols, ld, ld / MV_QGROUP, eps, red, scale);
        else
            stage_int8<1, false>(sm, P.cols, ld, ld / MV_QGROUP, eps, red, scale);
        const mv_walk at1 = mv_after(at, m);
        if (at1.pair < m.n_pairs)
            mv_qload<Q>(b, m.w, m.scales, m.nb, m.n_vec, at1.pair, at1.batch, lane);
        const mv_stage st = {sm.xq, sm.xd, sm.xsum, ld, ld / MV_QGROUP};
        if (at.pair < m.n_pairs) {
            float acc0[1] = {0.0f}, acc1[1] = {0.0f};
            while (mv_qstep<Q, 1>(a, at, m, st, lane, acc0, acc1, P.epi, tok, scale, NULL) &&
                   mv_qstep<Q, 1>(b, at, m, st, lane, acc0, acc1, P.epi, tok, scale, NULL)) {
            }
        }
        __syncthreads(); /* the block's outputs are written; shared memory is free again */
        if (threadIdx.x == 0) {
            __threadfence();
            atomicAdd(arrive, 1u);
        }
    }
}

struct shape {
    const char *name;
    int dim, hidden, layers, vocab;
};
static const shape SHAPES[] = {{"7b", 4096, 11008, 32, 32000}, {"110m", 768, 2048, 12, 32000}};

template <typename Q> static int run(lc_dtype t, const shape *sh) {
    int n_sm;
    CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, 0));
    int64_t max_stage;
    lc_error err;
    if (matvec_setup(0, &max_stage, &err)) return fprintf(stderr, "%s\n", err.msg), 1;

    /* Buffers: x0 (dim), qkv (3 dim), x1 (dim), h (hidden), x2 (dim), logits. */
    float *x0, *qkv, *x1, *h, *x2, *logits, *norm;
    CHECK(cudaMalloc(&x0, sh->dim * 4));
    CHECK(cudaMalloc(&qkv, 3 * sh->dim * 4));
    CHECK(cudaMalloc(&x1, sh->dim * 4));
    CHECK(cudaMalloc(&h, sh->hidden * 4));
    CHECK(cudaMalloc(&x2, sh->dim * 4));
    CHECK(cudaMalloc(&logits, sh->vocab * 4));
    CHECK(cudaMalloc(&norm, sh->hidden * 4));
    fill_kernel<<<64, 256>>>(x0, sh->dim, 7);
    fill_kernel<<<64, 256>>>(norm, sh->hidden, 8);

    std::vector<pproduct> prods;
    size_t bytes = 0;
    int64_t smem = 0;
    auto add = [&](int rows, int cols, const float *x, const float *nw, mv_epilogue_kind kind,
                   float *out, unsigned seed) {
        const size_t n = (size_t)rows * cols;
        void *w;
        __half *tmp;
        CHECK(cudaMalloc(&w, cuda_matrix_bytes(t, rows, cols)));
        CHECK(cudaMalloc(&tmp, n * sizeof(__half)));
        fill_kernel<<<1024, 256>>>(tmp, n, seed);
        lc_error e;
        if (launch_quantize(LC_DTYPE_F16, tmp, cols, rows, cols, t, w, rows, cols, 0, 1, 0, &e))
            fprintf(stderr, "quantize: %s\n", e.msg), exit(1);
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaFree(tmp));
        bytes += cuda_matrix_bytes(t, rows, cols);
        smem = std::max(smem, (int64_t)mv_stage_bytes(1, cols, nw != NULL, true));
        pproduct p = {w,
                      cuda_matrix_scales(t, w, rows, cols),
                      rows,
                      cols,
                      x,
                      nw,
                      {kind, out, kind == MV_SWIGLU ? rows / 2 : rows, {}}};
        prods.push_back(p);
    };
    for (int l = 0; l < sh->layers; l++) {
        const float *in = l == 0 ? x0 : x2;
        add(3 * sh->dim, sh->dim, in, norm, MV_STORE, qkv, 4 * l + 1);
        add(sh->dim, sh->dim, qkv, NULL, MV_STORE, x1, 4 * l + 2);
        add(2 * sh->hidden, sh->dim, x1, norm, MV_SWIGLU, h, 4 * l + 3);
        add(sh->dim, sh->hidden, h, NULL, MV_STORE, x2, 4 * l + 4);
    }
    add(sh->vocab, sh->dim, x2, norm, MV_STORE, logits, 999);
    const int n_prods = (int)prods.size();

    pproduct *d_prods;
    unsigned *arrive;
    CHECK(cudaMalloc(&d_prods, n_prods * sizeof(pproduct)));
    CHECK(cudaMemcpy(d_prods, prods.data(), n_prods * sizeof(pproduct), cudaMemcpyHostToDevice));
    CHECK(cudaMalloc(&arrive, 4));
    CHECK(cudaFuncSetAttribute(persistent_kernel<Q>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int)smem));
    int per_sm = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel<Q>,
                                                        MV_WARPS * 32, smem));
    const int grid = n_sm * std::min(per_sm, 2);
    printf("%s %s: %d products, %.3f GB; persistent grid %d blocks (%d per SM), %lld B shared\n",
           sh->name, lc_dtype_name(t), n_prods, bytes / 1e9, grid, per_sm, (long long)smem);

    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float eps = 1e-5f;
    auto persistent = [&]() {
        CHECK(cudaMemsetAsync(arrive, 0, 4, s));
        void *args[] = {(void *)&d_prods, (void *)&n_prods, (void *)&eps, (void *)&arrive};
        CHECK(cudaLaunchCooperativeKernel((const void *)persistent_kernel<Q>, dim3(grid),
                                          dim3(MV_WARPS * 32), args, smem, s));
    };
    auto kernels = [&]() {
        for (const pproduct &p : prods) {
            mv_input in = {p.x, p.cols, NULL, p.norm, eps, 1, n_sm, 0, max_stage, true};
            lc_error e;
            if (launch_matvec(t, p.w, p.rows, p.cols, p.cols, &in, &p.epi, s, &e))
                fprintf(stderr, "%s\n", e.msg), exit(1);
        }
    };

    /* Same numbers both ways (the logits, which depend on every product). */
    std::vector<float> a(sh->vocab), b(sh->vocab);
    kernels();
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaMemcpy(a.data(), logits, sh->vocab * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemset(logits, 0, sh->vocab * 4));
    persistent();
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaMemcpy(b.data(), logits, sh->vocab * 4, cudaMemcpyDeviceToHost));
    double num = 0, den = 1e-30;
    for (int i = 0; i < sh->vocab; i++)
        num += (double)(a[i] - b[i]) * (a[i] - b[i]), den += (double)a[i] * a[i];
    printf("logits, persistent vs kernels: NMSE %.2e%s\n", num / den,
           num / den < 1e-10 ? "" : "  WRONG");

    /* Copy bandwidth for the ratio. */
    const size_t copy_bytes = (size_t)2 << 30;
    void *src, *dst;
    CHECK(cudaMalloc(&src, copy_bytes));
    CHECK(cudaMalloc(&dst, copy_bytes));
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    auto time = [&](auto &&f, int reps) {
        std::vector<float> ms;
        for (int r = 0; r < reps + 3; r++) {
            CHECK(cudaEventRecord(e0, s));
            f();
            CHECK(cudaEventRecord(e1, s));
            CHECK(cudaEventSynchronize(e1));
            float t_ms;
            CHECK(cudaEventElapsedTime(&t_ms, e0, e1));
            if (r >= 3) ms.push_back(t_ms);
        }
        return median(ms);
    };
    const float copy_ms = time(
        [&]() { CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, s)); }, 10);
    const double copy_gbs = 2.0 * copy_bytes / (copy_ms * 1e6);
    /* The kernels' chain as the backend replays it: a graph. */
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    kernels();
    CHECK(cudaStreamEndCapture(s, &g));
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    const float k_ms = time([&]() { CHECK(cudaGraphLaunch(ge, s)); }, 20);
    const float p_ms = time(persistent, 20);
    printf("copy %.0f GB/s; floor %.1f us\n", copy_gbs, bytes / copy_gbs / 1e3);
    printf("kernels (graph, PDL): %8.1f us  %5.1f%% of copy\n", k_ms * 1e3,
           100 * bytes / (k_ms * 1e6) / copy_gbs);
    printf("persistent:           %8.1f us  %5.1f%% of copy\n", p_ms * 1e3,
           100 * bytes / (p_ms * 1e6) / copy_gbs);
    return 0;
}

int main(int argc, char **argv) {
    const char *type = argc > 1 ? argv[1] : "q8_0", *shape_name = argc > 2 ? argv[2] : "7b";
    const shape *sh = NULL;
    for (const shape &s : SHAPES)
        if (!strcmp(s.name, shape_name)) sh = &s;
    if (!sh) return fprintf(stderr, "usage: persistent_bench [q8_0|q4_0] [7b|110m]\n"), 2;
    if (!strcmp(type, "q8_0")) return run<q8_gpu>(LC_DTYPE_Q8_0, sh);
    if (!strcmp(type, "q4_0")) return run<q4_gpu>(LC_DTYPE_Q4_0, sh);
    return fprintf(stderr, "usage: persistent_bench [q8_0|q4_0] [7b|110m]\n"), 2;
}
