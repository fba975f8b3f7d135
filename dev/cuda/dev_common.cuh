/* What the dev/cuda experiments share: fail-fast checks, reproducible
 * device-side fills, and the median of timings. */
#ifndef LLAMAC_DEV_CUDA_DEV_COMMON_CUH
#define LLAMAC_DEV_CUDA_DEV_COMMON_CUH

#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_common.cuh"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CHECK_LC(call)                                                                             \
    do {                                                                                           \
        lc_error err_;                                                                             \
        if ((call) != LC_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err_.msg);                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Weights in [-1, 1) from a hash of the index: reproducible, no host copy. */
template <typename W> __global__ void fill_kernel(W *w, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        w[i] = from_f32<W>((h & 0xffff) / 32768.0f - 1.0f);
    }
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

#endif
