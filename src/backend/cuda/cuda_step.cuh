/* A whole decoding step of one token as ONE persistent kernel (Hopper), for
 * Q8_0 / Q4_0 weights. The separate kernels of cuda_forward.cu pay ~2-4 us
 * at every boundary (launch, ramp-up, the inputs' staging, the tail), 161
 * times a 7B step, which at 4-bit weights is a third of the time the bytes
 * take (docs/cuda-notes.md, runs 21-31). Here one producer warp per block
 * streams the block's share of every weight matrix into a ring of shared
 * memory with bulk copies, running ahead across products, attention and grid
 * barriers, because the weights do not depend on the activations; the other
 * warps wait at a grid barrier for each product's input, quantize it, and
 * meet the buffered weights. The bytes never stop flowing. */
#ifndef LLAMAC_BACKEND_CUDA_STEP_CUH
#define LLAMAC_BACKEND_CUDA_STEP_CUH

#include "backend/cuda/cuda_ops.cuh"

typedef enum step_phase_kind { STEP_PRODUCT, STEP_ATTENTION } step_phase_kind;

/* One phase of the step; every phase reads what the one before wrote. */
typedef struct step_phase {
    step_phase_kind kind;
    /* STEP_PRODUCT: epi(W x), x RMS-normalised with `norm` first when set;
     * W (rows, cols) stored as cuda_matrix_bytes with ld == cols. */
    const void *w;
    const __half *scales;
    int rows, cols;
    const float *x, *norm;
    mv_qact pre; /* the separate kernels only: x as the previous product left it quantized */
    mv_epilogue epi;
    /* STEP_ATTENTION: one entry (attn.n == 1). */
    attn_args attn;
} step_phase;

typedef struct step_plan {
    step_phase *phases; /* (n_phases) on the device */
    int n_phases;
    lc_dtype wt; /* Q8_0 or Q4_0 */
    float eps;
    unsigned *barrier; /* one counter on the device, zero between launches */
    int grid;          /* one block per multiprocessor */
    int stage_bytes, n_stages;
    size_t smem;
} step_plan;

/* Whether this device and build run the step kernel (compute capability 9.0
 * and up); a one-line reason in err when not. */
lc_status step_supported(int device, lc_error *err);
/* Sizes the ring and the grid for `phases` (host copies) and checks every
 * shape; err says why when a phase cannot run here (the caller then keeps
 * the separate kernels). Fills everything but plan->phases and barrier. */
lc_status step_plan_init(step_plan *plan, const step_phase *phases, int n_phases, lc_dtype wt,
                         float eps, int n_sm, int device, lc_error *err);
lc_status launch_step(const step_plan *plan, cudaStream_t s, lc_error *err);

#endif
