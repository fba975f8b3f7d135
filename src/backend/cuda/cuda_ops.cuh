/* The CUDA backend's operations, as host-side launchers. Each runs one
 * kernel on a stream, templated on the storage dtype inside; they are what
 * the backend's forward strings together and what the backend test runs one
 * by one against the CPU reference. Shapes are in comments: (rows, cols). */
#ifndef LLAMAC_BACKEND_CUDA_OPS_CUH
#define LLAMAC_BACKEND_CUDA_OPS_CUH

#include "backend/cuda/cuda_common.cuh"
extern "C" {
#include "formats/tensor.h"
}

/* Where rotated keys and values go: one layer's slice of the KV cache,
 * laid out (n_seq, n_kv_heads, n_ctx, head_dim) so each head's keys are
 * contiguous for attention. */
typedef struct kv_target {
    int q_rows, kv_rows, head_dim;
    const float2 *rope;              /* (n_ctx, head_dim / 2) cos, sin per position and pair */
    const int32_t *pos, *seq;        /* (n) per batch entry, on the device */
    void *k_cache, *v_cache;         /* this layer's slice */
    lc_dtype kv_dtype;               /* F16 or F32 */
    int64_t seq_stride, head_stride; /* elements */
} kv_target;

/* Activations as the quantized products read them: int8 in groups of
 * MV_QGROUP, each group's scale d = max|v| / 127 and the sum of its int8
 * values (Q4_0's offset of 8 needs it), and for a residual stream the
 * group's sum of squares of x before the norm weights (the next product's
 * RMS norm). Row r of q at q + r * ld, its groups at d / sum / ss + r * ld / MV_QGROUP. */
#define MV_QGROUP 16
typedef struct mv_qact {
    int8_t *q;
    float *d;
    int *sum;
    float *ss;
    int ld;
} mv_qact;

/* What a matrix-vector product does with each pair of output rows (2i, 2i+1). */
typedef enum mv_epilogue_kind {
    MV_STORE,  /* out[t, r] = y */
    MV_ADD,    /* out[t, r] += y: the residual connection */
    MV_QKV,    /* rows of [Wq; Wk; Wv]: RoPE on q and k, q to out, k and v into the cache */
    MV_SWIGLU, /* rows interleave W1 and W3: out[t, i] = silu(y[2i]) * y[2i+1] */
} mv_epilogue_kind;

typedef struct mv_epilogue {
    mv_epilogue_kind kind;
    float *out;
    int64_t out_ld;
    kv_target kv; /* MV_QKV only */
    /* MV_ADD and MV_SWIGLU of Q8_0 / Q4_0 weights: when qout.q is set, the
     * output rows also leave as the next product's int8 input, x * qnorm
     * (qnorm NULL: x), so that product stages no floats (docs/cuda-notes.md,
     * run 44). Needs out_ld a multiple of MV_QGROUP. */
    mv_qact qout;
    const float *qnorm;
} mv_epilogue;

/* The input vectors: n (1 to MV_MAX_TOKENS) rows of x, row i being
 * x[rows[i] * x_ld] (rows NULL: row i), RMS-normalised with `norm` first
 * when norm is not NULL. */
typedef struct mv_input {
    const float *x;
    int64_t x_ld;
    const int32_t *rows;
    const float *norm;
    float eps;
    int n;
    int n_sm;          /* multiprocessors, to size the grid to one wave; 0: a block per 16 rows */
    int blocks_per_sm; /* at most this many blocks per multiprocessor; 0: as many as fit */
    int64_t max_stage_bytes; /* from matvec_setup */
    bool pdl;                /* launch with programmatic dependent launch (see cuda_common.cuh) */
    mv_qact pre; /* Q8_0 / Q4_0 weights: x already quantized (x * norm) when pre.q is set */
} mv_input;

#define MV_MAX_TOKENS 4

/* The quantized weight types as the kernels store them (converted at upload,
 * not GGUF's 34- and 18-byte blocks, which would break 16-byte loads): each
 * row's int8 (Q8_0) or nibbles (Q4_0, GGUF's order within a block of 32)
 * contiguous, then after all rows one f16 scale per 32 elements, (rows, ld / 32). */
struct q8_gpu {};
struct q4_gpu {};

static inline bool cuda_quantized(lc_dtype t) { return t == LC_DTYPE_Q8_0 || t == LC_DTYPE_Q4_0; }
/* Bytes of one stored row of ld elements. */
static inline size_t cuda_row_bytes(lc_dtype t, int64_t ld) {
    return t == LC_DTYPE_Q8_0   ? (size_t)ld
           : t == LC_DTYPE_Q4_0 ? (size_t)ld / 2
                                : (size_t)ld * dtype_info(t)->block_bytes;
}
static inline size_t cuda_align256(size_t n) { return (n + 255) & ~(size_t)255; }
/* Bytes of a stored matrix: the rows, then the scales of quantized types. */
static inline size_t cuda_matrix_bytes(lc_dtype t, int64_t rows, int64_t ld) {
    const size_t body = cuda_align256((size_t)rows * cuda_row_bytes(t, ld));
    return body + (cuda_quantized(t) ? (size_t)rows * (ld / 32) * sizeof(__half) : 0);
}
static inline const __half *cuda_matrix_scales(lc_dtype t, const void *w, int64_t rows,
                                               int64_t ld) {
    return (const __half *)((const char *)w + cuda_align256((size_t)rows * cuda_row_bytes(t, ld)));
}

/* Row stride of a stored matrix of `cols` columns: rounded up to 8
 * elements so every row starts 16-byte aligned for vector loads. */
static inline int mv_ld(int cols) { return (cols + 7) & ~7; }

/* Floats of shared memory a launch stages: the n inputs and the norm weights. */
__host__ __device__ static inline int64_t mv_stage_floats(int n, int ld, bool norm) {
    return (int64_t)(n + norm) * ld;
}

/* Shared memory a launch stages: the n inputs and the norm weights as
 * floats, then for quantized weights the int8 inputs, their scales and sums. */
__host__ __device__ static inline size_t mv_stage_bytes(int n, int ld, bool norm, bool quant) {
    size_t bytes = (size_t)mv_stage_floats(n, ld, norm) * sizeof(float);
    if (quant)
        bytes += (size_t)n * ld + (size_t)n * (ld / MV_QGROUP) * (sizeof(float) + sizeof(int));
    return bytes;
}

/* A block's slot for one group of a quantized output (mv_epilogue.qout):
 * the group's values as its pairs finish, quantized at the kernel's end. */
typedef struct mv_qslot {
    float v[MV_MAX_TOKENS][MV_QGROUP];
    float g[MV_QGROUP]; /* the next norm's weights for the group (1 without) */
} mv_qslot;
/* Pairs of output rows per group of a quantized output: MV_ADD's pair gives
 * two values, MV_SWIGLU's one. */
__host__ __device__ static inline int mv_qout_pairs(mv_epilogue_kind k) {
    return k == MV_SWIGLU ? MV_QGROUP : MV_QGROUP / 2;
}
/* Slots a block of a grid of `blocks` needs for a product of `rows` rows:
 * group i goes to block i % blocks. */
__host__ __device__ static inline int mv_qslots_of(int groups, int blocks) {
    return (groups + blocks - 1) / blocks;
}
__host__ __device__ static inline int mv_qslots(int rows, mv_epilogue_kind k, int blocks) {
    return mv_qslots_of(rows / 2 / mv_qout_pairs(k), blocks);
}
/* Shared memory a quantized launch stages from a hand-off (mv_input.pre):
 * the int8 inputs, their groups' scales and sums, with the norm the groups'
 * sums of squares; no floats. */
__host__ __device__ static inline size_t mv_pre_stage_bytes(int n, int ld, bool norm) {
    return (size_t)n * ld + (size_t)n * (ld / MV_QGROUP) * (norm ? 12 : 8);
}
/* Where the slots start in a quantized launch's shared memory: after the staging. */
__host__ __device__ static inline size_t mv_qslot_offset(int n, int ld, bool norm, bool pre) {
    return ((pre ? mv_pre_stage_bytes(n, ld, norm) : mv_stage_bytes(n, ld, norm, true)) + 15) &
           ~(size_t)15;
}

/* Bytes of an mv_qact of `rows` rows of ld inputs (q, d, sum, ss, each 256-byte aligned). */
static inline size_t mv_qact_bytes(int64_t rows, int ld) {
    const size_t groups = (size_t)rows * (ld / MV_QGROUP);
    return cuda_align256((size_t)rows * ld) + 3 * cuda_align256(groups * 4);
}
/* The mv_qact laid out in `bytes` of device memory from mv_qact_bytes. */
static inline mv_qact mv_qact_at(void *base, int64_t rows, int ld) {
    const size_t groups = (size_t)rows * (ld / MV_QGROUP);
    char *p = (char *)base;
    mv_qact a;
    a.q = (int8_t *)p;
    a.d = (float *)(p += cuda_align256((size_t)rows * ld));
    a.sum = (int *)(p += cuda_align256(groups * 4));
    a.ss = (float *)(p + cuda_align256(groups * 4));
    a.ld = ld;
    return a;
}

/* Raises the shared-memory limit of every matvec instantiation to what the
 * device allows; returns the most bytes one launch may stage (mv_stage_bytes). */
lc_status matvec_setup(int device, int64_t *max_stage_bytes, lc_error *err);
/* y = W x for W (rows, cols) of dtype wt, rows `ld` elements apart and
 * zero beyond cols; rows even, ld a multiple of 8 (16-byte aligned rows). */
lc_status launch_matvec(lc_dtype wt, const void *w, int rows, int cols, int ld, const mv_input *in,
                        const mv_epilogue *epi, cudaStream_t s, lc_error *err);

/* The same from a stored Q8_0 / Q4_0 table of vocab rows. */
lc_status launch_embed_quant(lc_dtype wt, const void *table, int64_t vocab, int dim, int ld,
                             const int32_t *tokens, int n, float *x, cudaStream_t s, lc_error *err);
/* x(n, dim) f32 = table(vocab, dim)[tokens], the table's rows ld apart. */
lc_status launch_embed(lc_dtype wt, const void *table, int dim, int ld, const int32_t *tokens,
                       int n, float *x, cudaStream_t s, lc_error *err);
/* out(n, dim) of out_t = rmsnorm(x[rows[i]]) * norm. */
lc_status launch_rmsnorm(const float *x, int64_t x_ld, const int32_t *rows, int n, int dim,
                         const float *norm, float eps, lc_dtype out_t, void *out, int64_t out_ld,
                         cudaStream_t s, lc_error *err);
/* From qkv(n, q_rows + 2 kv_rows) f32: RoPE on q and k; q to q_out (q_t), k
 * and v into the cache. */
lc_status launch_rope_store(const float *qkv, int64_t qkv_ld, int n, const kv_target *kv,
                            lc_dtype q_t, void *q_out, int64_t q_ld, cudaStream_t s, lc_error *err);
/* out(n, hidden) of out_t = silu(g13[:, 2i]) * g13[:, 2i+1]. */
lc_status launch_swiglu(const float *g13, int64_t g13_ld, int n, int hidden, lc_dtype out_t,
                        void *out, int64_t out_ld, cudaStream_t s, lc_error *err);
/* Rows of src (src_t, src_ld apart) quantized into the stored matrix `dst`
 * (Q8_0 or Q4_0, total_rows rows of ld) at rows row0, row0 + step, ...:
 * scale max|x| / 127 (Q8_0) or m / -8 for the element m of largest
 * magnitude (Q4_0), as src/formats/quant.c does on the CPU. */
lc_status launch_quantize(lc_dtype src_t, const void *src, int64_t src_ld, int64_t rows,
                          int64_t cols, lc_dtype to, void *dst, int64_t total_rows, int64_t ld,
                          int64_t row0, int64_t step, cudaStream_t s, lc_error *err);
/* n elements of a file's block type (Q8_0, Q4_0, Q8_RUNQ: src/formats/quant.h) as f32. */
lc_status launch_dequantize_blocks(lc_dtype t, const void *blocks, int64_t n, float *out,
                                   cudaStream_t s, lc_error *err);
/* The stored quantized matrix w (rows, ld) as f16 rows ld apart, for cuBLAS. */
lc_status launch_dequantize(lc_dtype t, const void *w, int64_t rows, int64_t ld, __half *out,
                            cudaStream_t s, lc_error *err);
/* dst(rows, cols) of dst_t = src(rows, cols) of src_t, each with its row stride. */
lc_status launch_convert(lc_dtype src_t, const void *src, int64_t src_ld, int64_t rows,
                         int64_t cols, lc_dtype dst_t, void *dst, int64_t dst_ld, cudaStream_t s,
                         lc_error *err);

/* ---- attention ------------------------------------------------------------ */

/* Attention of n queries, each over positions 0..pos of its own sequence,
 * the keys split into chunks across blocks (flash-decoding) and merged by
 * the last block of each head. Works for any batch. */
typedef struct attn_args {
    const float *q;                /* (n, n_heads * head_dim) */
    float *out;                    /* (n, n_heads * head_dim) */
    const void *k_cache, *v_cache; /* this layer's slice, as kv_target */
    lc_dtype kv_dtype;
    const int32_t *pos, *seq; /* (n) */
    int n, n_heads, n_kv_heads, head_dim;
    int64_t seq_stride, head_stride;
    int chunk, max_splits; /* most keys per block; chunks per head at the full context */
    float *o_part;         /* (n, n_heads, max_splits, head_dim) */
    float *ml_part;        /* (n, n_heads, max_splits, 2) running max and sum */
    unsigned *done;        /* (n, n_kv_heads) zero between launches */
    bool pdl;              /* as mv_input.pdl */
    /* when qout.q is set, the output also leaves as wo's int8 input
     * (mv_input.pre); needs head_dim a multiple of MV_QGROUP */
    mv_qact qout;
    /* chunks launched per head (0: max_splits); 1 when the caller knows every
     * entry has fewer than ATTN_SPLIT_FROM keys: blocks for chunks no entry
     * reaches only delay the next kernel's start (docs/cuda-notes.md, run 64).
     * An entry's keys per block follow from its length and this count
     * (attention_chunk_for). */
    int splits;
} attn_args;

/* Below this many keys an entry's keys stay in one block: a merge (partial
 * sums, fence, counter, second pass) costs more than sharing the loads
 * saves. From here on they spread over at most ATTN_MAX_SPREAD blocks of at
 * least ATTN_MIN_CHUNK keys, since one block's loads arrive at one SM's share
 * of the bandwidth: 7B Q8_0 +3.6% at 128 keys, +6.5% at 512; more blocks than
 * that lost 5% at 2048 keys (docs/cuda-notes.md, runs 68 and 75-76). */
#define ATTN_SPLIT_FROM 128
#define ATTN_MIN_CHUNK  64
#define ATTN_MAX_SPREAD 8

/* Keys per block for an entry of len keys with `splits` blocks launched per
 * head, at most max_chunk (a's chunk, which sizes shared memory; the host
 * launches enough splits that ceil(len / max_chunk) <= splits, so
 * ceil(len / result) <= splits too). */
__host__ __device__ static inline int attention_chunk_for(int len, int max_chunk, int splits) {
    if (len < ATTN_SPLIT_FROM) return max_chunk;
    int c = (len + splits - 1) / splits, spread = (len + ATTN_MAX_SPREAD - 1) / ATTN_MAX_SPREAD;
    c = c > spread ? c : spread;
    c = c < ATTN_MIN_CHUNK ? ATTN_MIN_CHUNK : (c + 15) & ~15;
    return c < max_chunk ? c : max_chunk;
}

/* Raises the attention kernels' shared-memory limit (once, before any capture). */
lc_status attention_setup(int device, lc_error *err);
lc_status launch_attention(const attn_args *a, cudaStream_t s, lc_error *err);
/* Most keys per block and chunks per head for a context of n_ctx positions. */
void attention_split(int n_ctx, int *chunk, int *max_splits);

/* ---- attention inside the qkv product (cuda_qkv_attention.cu) ------------------ */

/* Whether this device and build run a decoding step's qkv product and its
 * attention as one kernel for this model: Q8_0 / Q4_0 weights, an f16 cache,
 * head_dim a multiple of 16 up to 128 (one thread-block cluster per kv
 * head), compute capability 9.0; err says why not. *clusters: how many of
 * its clusters (one per kv head) the GPU holds at once. */
lc_status qkv_attention_supported(int device, lc_dtype wt, lc_dtype kv_t, int head_dim, int rep,
                                  int cols, int *clusters, lc_error *err);
/* The product W x (epi: MV_QKV, in: normed, one entry, cols inputs) and the
 * attention a of that entry (a->n == 1, fewer than ATTN_SPLIT_FROM keys),
 * in one kernel. */
lc_status launch_qkv_attention(lc_dtype wt, const void *w, int cols, const mv_input *in,
                               const mv_epilogue *epi, const attn_args *a, cudaStream_t s,
                               lc_error *err);

/* P(rows, L) of p_t = softmax(S(rows, L) f32) per row, where row r of each
 * of n_mats matrices is query position p0 + r % n and may see keys 0..p0 + r % n. */
lc_status launch_causal_softmax(const float *S, int n_mats, int n, int L, int p0, lc_dtype p_t,
                                void *P, cudaStream_t s, lc_error *err);

/* ---- sampling --------------------------------------------------------------- */

/* One row's rule and draw (lc_sampler_params plus the coin). */
typedef struct sample_row {
    float temperature, top_p, coin;
    int top_k;
} sample_row;

/* A one-row draw that feeds the next one-entry decoding step itself
 * (sample_and_feed): its rule comes by value instead of by a copy to the
 * device, and the kernel writes that step's inputs (the drawn token, pos,
 * seq, and 0 as the one row that wants logits), so nothing but kernels
 * stands between two steps on the stream. */
typedef struct sample_feed {
    int32_t *token, *pos, *seq, *row; /* the backend's input slots of entry 0 */
    int32_t next_pos, next_seq;
    sample_row rule;
} sample_feed;

/* Raises the sampler's shared-memory limit to what the device allows;
 * returns the most bytes a launch may use (a row of probabilities that fits
 * stays in shared memory). */
lc_status sample_setup(int device, int64_t *max_smem_bytes, lc_error *err);
/* Picks a token from each of n logits rows (vocab apart) as lc_sampler_sample
 * does, row i by rows[i]: argmax at temperature 0, else softmax(logits / T)
 * cut to the top-k, then to the top-p nucleus, drawn with the coin in [0, 1).
 * One block per row; `scratch` holds n * vocab floats, for rows that do not
 * fit in max_smem_bytes (from sample_setup). With `feed` (n must be 1) the
 * rule is feed->rule, rows is unused, and the draw also writes feed's slots. */
lc_status launch_sample(const float *logits, int vocab, const sample_row *rows, int n,
                        float *scratch, int64_t max_smem_bytes, int32_t *tokens,
                        const sample_feed *feed, cudaStream_t s, lc_error *err);
/* The greedy draw of one row (the lowest index of its largest logit) by
 * ARGMAX_BLOCKS blocks: `partial` holds ARGMAX_BLOCKS int2 (a slice's
 * largest value as bits, its index), `done` one counter at 0 (left at 0).
 * With `feed`, also writes its slots. */
#define ARGMAX_BLOCKS  32
#define ARGMAX_THREADS 256
lc_status launch_argmax_spread(const float *logits, int vocab, int2 *partial, unsigned *done,
                               int32_t *tokens, const sample_feed *feed, cudaStream_t s,
                               lc_error *err);

#endif
