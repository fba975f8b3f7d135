/* What every CUDA file of the backend shares: error returns, the weight
 * dtypes as template parameters (one kernel per operation, the dtype a
 * parameter), 16-byte vector loads, and warp/block reductions. */
#ifndef LLAMAC_BACKEND_CUDA_COMMON_CUH
#define LLAMAC_BACKEND_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "core/error.h"
#include "llamac.h"
}

/* Every CUDA call is checked; a failure becomes an lc_status with the call,
 * the place and CUDA's own words, and the caller unwinds. */
static inline lc_status cuda_fail(lc_error *err, cudaError_t e, const char *what, const char *file,
                                  int line) {
    return lc_fail(err, LC_ERR_DEVICE, "CUDA: %s: %s (%s:%d)", what, cudaGetErrorString(e), file,
                   line);
}
#define CU_TRY(call)                                                                               \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return cuda_fail(err, e_, #call, __FILE__, __LINE__);               \
    } while (0)
/* The same in a function that frees what it made before returning: sets its
 * lc_status st and jumps to `label`. */
#define CU_TRY_GOTO(call, label)                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            st = cuda_fail(err, e_, #call, __FILE__, __LINE__);                                    \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)
/* After a kernel launch: a bad configuration shows up here. */
#define CU_LAUNCHED() CU_TRY(cudaGetLastError())

/* ---- dtypes ------------------------------------------------------------- */

/* Storage type <-> float; arithmetic is always float. */
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/* Elements of T in one 16-byte load. */
template <typename T> struct vec16 { static constexpr int N = 16 / sizeof(T); };

/* Unpacks a 16-byte load of T into floats. */
template <typename T>
__device__ __forceinline__ void unpack16(uint4 raw, float (&out)[vec16<T>::N]) {
    const T *v = reinterpret_cast<const T *>(&raw);
#pragma unroll
    for (int i = 0; i < vec16<T>::N; i++) out[i] = to_f32(v[i]);
}

/* Weights are read once per step: skip L1, keep them out of the way. */
__device__ __forceinline__ uint4 load_stream16(const void *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* Global -> shared memory without a trip through registers (sm_80 and up):
 * many copies in flight per thread, one wait for all of them. */
__device__ __forceinline__ void copy16_async(float *smem, const float *gmem) {
    const unsigned dst = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem) : "memory");
}
__device__ __forceinline__ void copy_async_wait_all() {
    asm volatile("cp.async.wait_all;" ::: "memory");
}

/* Programmatic dependent launch (Hopper): a kernel lets the next one in the
 * stream be scheduled at once, and waits for the previous one only where it
 * first reads what that one wrote; launch, ramp-up and the weights' first
 * loads then overlap the previous kernel's tail. Launch with pdl_config. */
__device__ __forceinline__ void pdl_let_next_start() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}
__device__ __forceinline__ void pdl_wait_for_previous() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* A launch's configuration with its attributes: programmatic dependent
 * launch when asked (pdl_config_init), a thread-block cluster
 * (pdl_config_cluster). Used in place: config.attrs points into it. */
typedef struct pdl_config {
    cudaLaunchConfig_t config;
    cudaLaunchAttribute attrs[2];
} pdl_config;

static inline void pdl_config_init(pdl_config *p, dim3 grid, dim3 block, size_t smem,
                                   cudaStream_t s, bool pdl) {
    p->config = cudaLaunchConfig_t{};
    p->config.gridDim = grid;
    p->config.blockDim = block;
    p->config.dynamicSmemBytes = smem;
    p->config.stream = s;
    p->config.attrs = p->attrs;
    p->config.numAttrs = 0;
    if (!pdl) return;
    cudaLaunchAttribute *a = &p->attrs[p->config.numAttrs++];
    a->id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a->val.programmaticStreamSerializationAllowed = 1;
}

/* Clusters of `blocks` consecutive blocks along x (sm_90). */
static inline void pdl_config_cluster(pdl_config *p, int blocks) {
    cudaLaunchAttribute *a = &p->attrs[p->config.numAttrs++];
    a->id = cudaLaunchAttributeClusterDimension;
    a->val.clusterDim.x = blocks;
    a->val.clusterDim.y = 1;
    a->val.clusterDim.z = 1;
}

/* ---- reductions ------------------------------------------------------------ */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Who takes part in a block-wide reduction and how they meet: the whole
 * block (__syncthreads), or the first THREADS threads at named barrier ID
 * (a warp-specialized kernel whose other warps do something else). */
struct sync_block {
    __device__ static void sync() { __syncthreads(); }
    __device__ static int warps() { return blockDim.x >> 5; }
};
template <int ID, int THREADS> struct sync_named {
    __device__ static void sync() {
        asm volatile("bar.sync %0, %1;" ::"n"(ID), "n"(THREADS) : "memory");
    }
    __device__ static int warps() { return THREADS / 32; }
};

/* Sum over the threads of S (a multiple of 32, at most 1024); every one of
 * them gets the result. `scratch` holds 32 floats. Fixed order, so the
 * result is the same on every run. */
template <typename S = sync_block>
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = S::warps();
    v = warp_sum(v);
    S::sync(); /* scratch may still be read by a previous call */
    if (lane == 0) scratch[warp] = v;
    S::sync();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

template <typename S = sync_block>
__device__ __forceinline__ float block_max(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = S::warps();
    v = warp_max(v);
    S::sync();
    if (lane == 0) scratch[warp] = v;
    S::sync();
    v = lane < n_warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

static inline unsigned ceil_div(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

#endif
