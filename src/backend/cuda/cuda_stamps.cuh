/* Per-block time stamps of the Q8_0 / Q4_0 matrix-vector kernels and the
 * decoding attention kernel, for a timeline of a step (docs/cuda-notes.md,
 * run 67): when each block started, when its wait for the previous kernel
 * returned, when it ended (%globaltimer, comparable across blocks and
 * kernels), and up to seven phase marks in clock cycles after the wait.
 * Built only by `make stamps` (-DLLAMAC_CUDA_STAMPS); in every other build
 * the STAMP_ macros are empty and the kernels unchanged. The binary writes
 * the newest STAMP_CAP records to $LLAMAC_CUDA_STAMPS.ops and .attn when the
 * backend closes; dev/cuda/stamps_timeline.py reads them.
 *
 * The ring is a device global, one per translation unit that includes this
 * (cuda_step.cu carries an unused one): a profiling build may keep one,
 * where threading a pointer through every kernel's arguments would change
 * the structs the normal build passes. */
#ifndef LLAMAC_BACKEND_CUDA_STAMPS_CUH
#define LLAMAC_BACKEND_CUDA_STAMPS_CUH

#ifdef LLAMAC_CUDA_STAMPS
#include <stdio.h>
#include <stdlib.h>

/* One block's record; stamps_timeline.py reads this layout ('<IIQQQ8I'). */
typedef struct stamp_rec {
    unsigned kind; /* a product's rows, or STAMP_ATTN_* */
    unsigned aux;  /* a product's cols */
    unsigned long long t_start, t_waited, t_end;
    unsigned marks[8]; /* cycles after the wait */
} stamp_rec;
static_assert(sizeof(stamp_rec) == 64, "dev/cuda/stamps_timeline.py reads 64-byte records");

enum { STAMP_ATTN_ONE = 1, STAMP_ATTN_PART = 2, STAMP_ATTN_MERGE = 3 };
#define STAMP_CAP (1u << 19)

static __device__ stamp_rec stamp_ring[STAMP_CAP];
static __device__ unsigned long long stamp_count;

__device__ __forceinline__ unsigned long long stamp_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ void stamp_write(unsigned kind, unsigned aux, unsigned long long t0,
                                            unsigned long long tw, const unsigned *marks) {
    const unsigned long long te = stamp_now(); /* before the contended counter */
    const unsigned long long i = atomicAdd(&stamp_count, 1ull);
    stamp_rec *r = &stamp_ring[i % STAMP_CAP];
    r->kind = kind;
    r->aux = aux;
    r->t_start = t0;
    r->t_waited = tw;
    r->t_end = te;
    for (int k = 0; k < 8; k++) r->marks[k] = marks[k];
}

/* Thread 0 of a block keeps the stamps; `on` false (a caller that is not a
 * kernel of its own) records nothing. */
#define STAMP_BEGIN(on)                                                                            \
    const bool stamp_on_ = (on) && threadIdx.x == 0;                                               \
    const unsigned long long stamp_t0_ = stamp_on_ ? stamp_now() : 0;                              \
    unsigned long long stamp_tw_ = 0;                                                              \
    long long stamp_w_ = 0;                                                                        \
    unsigned stamp_marks_[8] = {0, 0, 0, 0, 0, 0, 0, 0}
#define STAMP_WAITED()                                                                             \
    do {                                                                                           \
        if (stamp_on_) stamp_tw_ = stamp_now(), stamp_w_ = clock64();                              \
    } while (0)
#define STAMP_MARK(k)                                                                              \
    do {                                                                                           \
        if (stamp_on_) stamp_marks_[k] = (unsigned)(clock64() - stamp_w_);                         \
    } while (0)
#define STAMP_END(kind, aux)                                                                       \
    do {                                                                                           \
        if (stamp_on_) stamp_write((kind), (aux), stamp_t0_, stamp_tw_, stamp_marks_);             \
    } while (0)

/* Writes this translation unit's ring to $LLAMAC_CUDA_STAMPS.suffix, oldest
 * record first, and says so on stderr. */
static inline void stamps_dump(const char *suffix) {
    const char *base = getenv("LLAMAC_CUDA_STAMPS");
    if (!base) return;
    char path[1024];
    snprintf(path, sizeof path, "%s.%s", base, suffix);
    unsigned long long n = 0;
    stamp_rec *h = (stamp_rec *)malloc(sizeof(stamp_rec) * STAMP_CAP);
    if (!h || cudaMemcpyFromSymbol(&n, stamp_count, sizeof n) != cudaSuccess ||
        cudaMemcpyFromSymbol(h, stamp_ring, sizeof(stamp_rec) * STAMP_CAP) != cudaSuccess) {
        cudaGetLastError();
        fprintf(stderr, "llamac: stamps: cannot read the device's ring for %s\n", path);
        free(h);
        return;
    }
    const unsigned long long have = n < STAMP_CAP ? n : STAMP_CAP;
    FILE *f = fopen(path, "wb");
    unsigned long long wrote = 0;
    for (unsigned long long i = n - have; f && i < n; i++)
        wrote += fwrite(&h[i % STAMP_CAP], sizeof *h, 1, f);
    if (!f || fclose(f) != 0 || wrote != have)
        fprintf(stderr, "llamac: stamps: cannot write %s\n", path);
    else
        fprintf(stderr, "llamac: stamps: %llu records to %s%s\n", have, path,
                have ? "" : " (none: Q8_0 / Q4_0 products and attention only)");
    free(h);
}

#else
#define STAMP_BEGIN(on)                                                                            \
    do {                                                                                           \
    } while (0)
#define STAMP_WAITED()                                                                             \
    do {                                                                                           \
    } while (0)
#define STAMP_MARK(k)                                                                              \
    do {                                                                                           \
    } while (0)
#define STAMP_END(kind, aux)                                                                       \
    do {                                                                                           \
    } while (0)
#endif

#endif
