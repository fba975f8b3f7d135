#include "formats/quant.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

uint16_t f32_to_f16(float x) {
    const uint32_t u = float_bits(x), sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or NaN: keep NaN quiet and non-zero */
        return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (abs < 0x38800000u) { /* below the smallest normal half: a subnormal or zero */
        /* Scaled so the half's subnormal unit (2^-24) is 1, then rounded to nearest even. */
        const float scaled = bits_float(abs) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)lrintf(scaled));
    }
    /* Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even. */
    uint32_t h = (abs - 0x38000000u) >> 13;
    const uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        const float v = (float)man * (1.0f / 16777216.0f);
        return bits_float(float_bits(v) | sign);
    }
    if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
    return bits_float(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_bf16(float x) {
    const uint32_t u = float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

float bf16_to_f32(uint16_t h) { return bits_float((uint32_t)h << 16); }

static float max_abs(const float *x, int n) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* v rounded half away from zero, kept in [-127, 127] (a scale rounded into
 * the denormals can put x / d past 127); NaN, from a NaN or an infinity in
 * the block, gives 0 rather than an undefined conversion. */
static int8_t round_int8(float v) {
    if (isnan(v)) return 0;
    const float r = roundf(v);
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
}

/* Symmetric int8 of one block: d = max|x| / 127 (zero block: d = 0, q = 0),
 * q rounded half away from zero. llama.cpp multiplies by 1 / d, runq.c
 * divides by d: the two differ in the last bit now and then, and runq's
 * golden text is reproduced only by dividing. */
static float quantize_int8(const float *x, int8_t *q, bool divide) {
    const float d = max_abs(x, QK) / 127.0f, inv = d ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++) q[i] = d == 0.0f ? 0 : round_int8(divide ? x[i] / d : x[i] * inv);
    return d;
}

static void quantize_q4_0(const float *x, block_q4_0 *b) {
    float m = 0.0f; /* the element of largest magnitude, with its sign */
    for (int i = 0; i < QK; i++)
        if (fabsf(x[i]) > fabsf(m)) m = x[i];
    const float d = m / -8.0f, inv = d ? 1.0f / d : 0.0f;
    b->d = f32_to_f16(d);
    for (int j = 0; j < QK / 2; j++) {
        int lo = (int)(x[j] * inv + 8.5f), hi = (int)(x[j + QK / 2] * inv + 8.5f);
        lo = lo > 15 ? 15 : lo;
        hi = hi > 15 ? 15 : hi;
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

void quantize_row(lc_dtype dtype, const float *x, void *out, int64_t n) {
    switch (dtype) {
    case LC_DTYPE_F32: memcpy(out, x, (size_t)n * sizeof(float)); break;
    case LC_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_f16(x[i]);
        break;
    case LC_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_bf16(x[i]);
        break;
    case LC_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / QK; b++) {
            block_q8_0 *blk = (block_q8_0 *)out + b;
            blk->d = f32_to_f16(quantize_int8(x + b * QK, blk->qs, false));
        }
        break;
    case LC_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / QK; b++) quantize_q4_0(x + b * QK, (block_q4_0 *)out + b);
        break;
    case LC_DTYPE_Q8_RUNQ:
        for (int64_t b = 0; b < n / QK; b++) {
            block_q8_runq *blk = (block_q8_runq *)out + b;
            blk->d = quantize_int8(x + b * QK, blk->qs, true);
        }
        break;
    default: break;
    }
}

void dequantize_row(lc_dtype dtype, const void *in, float *out, int64_t n) {
    switch (dtype) {
    case LC_DTYPE_F32: memcpy(out, in, (size_t)n * sizeof(float)); break;
    case LC_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32(((const uint16_t *)in)[i]);
        break;
    case LC_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32(((const uint16_t *)in)[i]);
        break;
    case LC_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q8_0 *blk = (const block_q8_0 *)in + b;
            const float d = f16_to_f32(blk->d);
            for (int i = 0; i < QK; i++) out[b * QK + i] = d * blk->qs[i];
        }
        break;
    case LC_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q4_0 *blk = (const block_q4_0 *)in + b;
            const float d = f16_to_f32(blk->d);
            for (int j = 0; j < QK / 2; j++) {
                out[b * QK + j] = d * ((blk->qs[j] & 0xf) - 8);
                out[b * QK + j + QK / 2] = d * ((blk->qs[j] >> 4) - 8);
            }
        }
        break;
    case LC_DTYPE_Q8_RUNQ:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q8_runq *blk = (const block_q8_runq *)in + b;
            for (int i = 0; i < QK; i++) out[b * QK + i] = blk->d * blk->qs[i];
        }
        break;
    default: break;
    }
}
