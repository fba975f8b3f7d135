/* Weight encodings against hand-computed values and the formats' error
 * bounds: half precision bit patterns, the block layouts of Q8_0, Q4_0 and
 * runq's int8, and row sizes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/quant.h"
#include "formats/tensor.h"
#include "tests.h"

static float uniform(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

void test_quant_half_precision(test_ctx *t) {
    const struct {
        float x;
        uint16_t f16, bf16;
    } cases[] = {
        {1.0f, 0x3c00, 0x3f80},
        {-2.0f, 0xc000, 0xc000},
        {65504.0f, 0x7bff, 0x4780},                /* 0x477fe000: bf16 rounds up */
        {65520.0f, 0x7c00, 0x4780},                /* rounds past the largest half: infinity */
        {1.0f / 3.0f, 0x3555, 0x3eab},             /* 0.333251953125 is nearest */
        {5.9604644775390625e-8f, 0x0001, 0x3380},  /* 2^-24: the smallest subnormal half */
        {2.98023223876953125e-8f, 0x0000, 0x3300}, /* 2^-25: a tie, to even (zero) */
        {8.940696716308594e-8f, 0x0002, 0x33c0},   /* 3 * 2^-25: a tie, to even (2) */
        {1.00390625f, 0x3c04, 0x3f80},             /* 1 + 2^-8: bf16 tie, to even */
        {1.01171875f, 0x3c0c, 0x3f82},             /* 1 + 3 * 2^-8: bf16 tie, up */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(t, f32_to_f16(cases[i].x) == cases[i].f16, "f16(%g) = %04x, want %04x", cases[i].x,
              f32_to_f16(cases[i].x), cases[i].f16);
        CHECK(t, f32_to_bf16(cases[i].x) == cases[i].bf16, "bf16(%g) = %04x, want %04x", cases[i].x,
              f32_to_bf16(cases[i].x), cases[i].bf16);
    }
    CHECK(t, isnan(f16_to_f32(f32_to_f16(NAN))) && isnan(bf16_to_f32(f32_to_bf16(NAN))),
          "NaN must stay NaN");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) { /* every half survives the round trip */
        const float x = f16_to_f32((uint16_t)h);
        if (!isnan(x) && f32_to_f16(x) != h) bad++;
    }
    CHECK(t, bad == 0, "%d halves do not round-trip", bad);
    CHECK(t, f16_to_f32(0x7bff) == 65504.0f && f16_to_f32(0x0400) == 6.103515625e-5f,
          "f16 decoding of the largest and smallest normal");
}

void test_quant_block_layouts(test_ctx *t) {
    float x[QK];
    for (int i = 0; i < QK; i++) x[i] = (i - 16) * 0.5f; /* -8 .. 7.5 */
    block_q8_0 q8;
    quantize_row(LC_DTYPE_Q8_0, x, &q8, QK);
    CHECK(t, q8.d == f32_to_f16(8.0f / 127.0f), "Q8_0 scale %04x", q8.d);
    for (int i = 0; i < QK; i++) {
        const int want = (int)lround((i - 16) * 0.5 * 127.0 / 8.0);
        CHECK(t, q8.qs[i] == want, "Q8_0 q[%d] = %d, want %d", i, q8.qs[i], want);
    }
    block_q8_runq qr;
    quantize_row(LC_DTYPE_Q8_RUNQ, x, &qr, QK);
    CHECK(t, qr.d == 8.0f / 127.0f && qr.qs[0] == -127 && qr.qs[31] == 119,
          "runq block: d %g q0 %d q31 %d", qr.d, qr.qs[0], qr.qs[31]);

    /* Q4_0: the largest magnitude is -8 at index 0, so d = -8 / -8 = 1 and
     * x = q - 8 exactly; element j sits in byte j's low nibble, j + 16 in its high. */
    block_q4_0 q4;
    quantize_row(LC_DTYPE_Q4_0, x, &q4, QK);
    CHECK(t, q4.d == 0x3c00, "Q4_0 scale %04x, want 1.0", q4.d);
    for (int j = 0; j < QK / 2; j++) {
        const int lo = (int)floor(x[j] + 8.5), hi = (int)floor(x[j + 16] + 8.5);
        CHECK(t, q4.qs[j] == (lo | (hi > 15 ? 15 : hi) << 4), "Q4_0 byte %d = %02x", j, q4.qs[j]);
    }
    float back[QK];
    dequantize_row(LC_DTYPE_Q4_0, &q4, back, QK);
    CHECK(t, back[0] == -8.0f && back[16] == 0.0f && back[31] == 7.0f, "Q4_0 dequantized %g %g %g",
          back[0], back[16], back[31]);

    memset(x, 0, sizeof x); /* an all-zero block stays zero, no division by zero */
    quantize_row(LC_DTYPE_Q8_0, x, &q8, QK);
    quantize_row(LC_DTYPE_Q4_0, x, &q4, QK);
    dequantize_row(LC_DTYPE_Q8_0, &q8, back, QK);
    CHECK(t, back[5] == 0.0f && q8.d == 0, "zero block");
}

/* Every element within the format's bound of the original, on random rows. */
void test_quant_error_bounds(test_ctx *t) {
    enum { N = 4096 };
    uint64_t rng = 7;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    void *buf = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = uniform(&rng) * (1.0f + (i % 97)); /* uneven blocks */
    for (int dt = 0; dt < LC_DTYPE_COUNT; dt++) {
        quantize_row((lc_dtype)dt, x, buf, N);
        dequantize_row((lc_dtype)dt, buf, y, N);
        int bad = 0;
        for (int b = 0; b < N / QK; b++) {
            float amax = 0;
            for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[b * QK + i]));
            for (int i = 0; i < QK; i++) {
                const float v = x[b * QK + i], e = fabsf(v - y[b * QK + i]);
                float bound = 0;
                switch ((lc_dtype)dt) {
                case LC_DTYPE_F16: bound = fabsf(v) * 0x1p-11f; break;
                case LC_DTYPE_BF16: bound = fabsf(v) * 0x1p-8f; break;
                case LC_DTYPE_Q8_0: bound = amax / 254.0f * 1.001f + amax * 0x1p-11f; break;
                case LC_DTYPE_Q8_RUNQ: bound = amax / 254.0f * 1.001f; break;
                /* half a step, or a whole one for the clamped end (+8 d does not fit) */
                case LC_DTYPE_Q4_0: bound = amax / 8.0f * 1.002f; break;
                default: break;
                }
                bad += e > bound;
            }
        }
        CHECK(t, bad == 0, "%s: %d elements outside the bound", lc_dtype_name((lc_dtype)dt), bad);
    }
    free(x);
    free(y);
    free(buf);
}

void test_quant_row_bytes(test_ctx *t) {
    CHECK(t, dtype_row_bytes(LC_DTYPE_F32, 10) == 40 && dtype_row_bytes(LC_DTYPE_BF16, 3) == 6,
          "plain rows");
    CHECK(t,
          dtype_row_bytes(LC_DTYPE_Q8_0, 64) == 68 && dtype_row_bytes(LC_DTYPE_Q4_0, 64) == 36 &&
              dtype_row_bytes(LC_DTYPE_Q8_RUNQ, 4096) == 4608,
          "block rows");
    CHECK(t, dtype_row_bytes(LC_DTYPE_Q4_0, 33) == -1 && dtype_row_bytes(LC_DTYPE_COUNT, 32) == -1,
          "a partial block or an unknown dtype has no size");
    CHECK(t, dtype_by_name("q4_0") == LC_DTYPE_Q4_0 && dtype_by_name("q5") == LC_DTYPE_COUNT,
          "names");
}
