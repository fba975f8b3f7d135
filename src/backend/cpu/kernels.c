#include "backend/cpu/kernels.h"

#include <string.h>

const cpu_kernels *cpu_kernels_select(const char *simd) {
    if (!simd || !*simd) simd = "auto";
    if (strcmp(simd, "scalar") == 0) return &cpu_kernels_scalar;
#if defined(__x86_64__)
    __builtin_cpu_init();
    bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    bool has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq");
    bool has_vnni = has_avx512 && __builtin_cpu_supports("avx512vnni");
    const cpu_kernels *best512 = has_vnni ? &cpu_kernels_avx512vnni : &cpu_kernels_avx512;
    if (strcmp(simd, "avx512vnni") == 0) return has_vnni ? &cpu_kernels_avx512vnni : NULL;
    if (strcmp(simd, "avx512") == 0) return has_avx512 ? best512 : NULL;
    if (strcmp(simd, "avx2") == 0) return has_avx2 ? &cpu_kernels_avx2 : NULL;
    if (strcmp(simd, "auto") == 0)
        return has_avx512 ? best512 : has_avx2 ? &cpu_kernels_avx2 : &cpu_kernels_scalar;
#elif defined(__aarch64__)
    if (strcmp(simd, "auto") == 0 || strcmp(simd, "neon") == 0) return &cpu_kernels_neon;
#else
    if (strcmp(simd, "auto") == 0) return &cpu_kernels_scalar;
#endif
    return NULL;
}

void cpu_pack_block(const cpu_kernels *kern, const float *x, int64_t x_stride, int64_t n_tok,
                    int64_t k, int64_t t0, float *block) {
    const int nt = kern->gemm_tokens;
    int64_t have = n_tok - t0 < nt ? n_tok - t0 : nt;
    if (have < nt) memset(block, 0, (size_t)(k * nt) * sizeof *block);
    for (int64_t t = 0; t < have; t++) {
        const float *row = x + (t0 + t) * x_stride;
        for (int64_t i = 0; i < k; i++) block[i * nt + t] = row[i];
    }
}

void cpu_quantize_activations(const float *x, block_q8_act *out, int64_t k) {
    assert(k % QK == 0);
    for (int64_t b = 0; b < k / QK; b++) {
        block_q8_runq q;
        quantize_row(LC_DTYPE_Q8_RUNQ, x + b * QK, &q, QK);
        int32_t sum = 0;
        for (int i = 0; i < QK; i++) sum += q.qs[i];
        out[b].d = q.d;
        out[b].neg_sum = -sum;
        memcpy(out[b].qs, q.qs, sizeof q.qs);
    }
}
