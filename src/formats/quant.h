/* Weight encodings: half-precision conversions and the 32-element block
 * formats, with the reference (scalar) quantizers and dequantizers every
 * writer, loader and kernel test agrees on. Layouts are the files' own:
 *   Q8_0    (GGUF / llama.cpp): f16 scale d, 32 int8;  x = d * q
 *   Q4_0    (GGUF / llama.cpp): f16 scale d, 16 bytes; element j < 16 in the
 *           low nibble of byte j, element j + 16 in its high nibble; x = d * (q - 8)
 *   Q8_RUNQ (llama2.c runq.c):  f32 scale d, 32 int8;  x = d * q
 *           (runq files keep all int8 of a tensor, then all scales: loaders
 *           interleave them into these blocks). */
#ifndef LLAMAC_FORMATS_QUANT_H
#define LLAMAC_FORMATS_QUANT_H

#include <assert.h>
#include <stdint.h>

#include "llamac.h"

#define QK 32 /* elements per block, for every block type */

typedef struct block_q8_0 {
    uint16_t d; /* f16 */
    int8_t qs[QK];
} block_q8_0;

typedef struct block_q4_0 {
    uint16_t d; /* f16 */
    uint8_t qs[QK / 2];
} block_q4_0;

typedef struct block_q8_runq {
    float d;
    int8_t qs[QK];
} block_q8_runq;

static_assert(sizeof(block_q8_0) == 34, "Q8_0 blocks are 34 bytes in GGUF");
static_assert(sizeof(block_q4_0) == 18, "Q4_0 blocks are 18 bytes in GGUF");
static_assert(sizeof(block_q8_runq) == 36, "runq blocks: a float and 32 int8");

/* IEEE binary16 and bfloat16, round to nearest even; NaN stays NaN. */
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

/* n elements of x into `dtype` (n a whole number of blocks). Q8_0 and
 * Q8_RUNQ: d = max|x| / 127, q = round(x * (1 / d)) (Q8_0, as llama.cpp) or
 * round(x / d) (Q8_RUNQ, as runq.c). Q4_0: d = m / -8 where m is
 * the element of largest magnitude (so it maps to q = 0 exactly), q = x / d + 8
 * rounded and clamped to 0..15. */
void quantize_row(lc_dtype dtype, const float *x, void *out, int64_t n);
/* n elements of `dtype` back to floats. */
void dequantize_row(lc_dtype dtype, const void *in, float *out, int64_t n);

#endif
