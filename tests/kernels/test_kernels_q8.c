/* SPDX-License-Identifier: MIT */
/* int8 linear layers (ssm_kernels.h, cpu/ssm_kernels_q8.c):
 *  - every variant this CPU has (scalar, AVX2, AVX-512 VNNI) equal, bit for
 *    bit, to the header's formula computed here from the unpacked weights
 *    (quantize both operands, int64 dot product, the three float steps):
 *    an independent reading of the contract, not of the panel layout;
 *  - against the double-precision fp32 product within the stated bound
 *    (half a quantization step of each operand, plus float rounding);
 *  - a row alone bit-identical to the same row inside any batch;
 *  - a NaN/Inf row gives NaN in its row only, an all-zero row gives the bias,
 *    an all-zero weight column gives the bias; NaN weights are refused;
 *  - nothing written beyond d_out columns or n_rows rows.
 * Sizes are awkward on purpose (d_in not a multiple of 4, d_out not of 16)
 * and row counts cover every register-tile remainder (tiles of 6 and 4). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/ssm_kernels.h"

#define KT_SEED 0x13198A2E03707344ull
#include "kt_rand.h"
#include "kt_linear.h"

static const int k_din[] = {1, 3, 7, 64, 253, 1100};
static const int k_dout[] = {1, 7, 16, 17, 36, 253};
static const int k_rows[] = {1, 2, 3, 5, 6, 7, 13, 64};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static const ssm_isa k_isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};

static void *panel(const float *w, int d_in, int d_out)
{
    void *p = aligned_alloc(64, ssm_pack_q8_bytes(d_in, d_out));
    assert_non_null(p);
    assert_int_equal(ssm_pack_q8(p, w, d_in, d_out), 0);
    return p;
}

/* q = clamp(rint(v · 127 / amax), ±127): the header's rule */
static int quant(float v, float amax)
{
    if (amax < 0x1p-100f) /* the header: such a row or column counts as zero */
        return 0;
    float r = rintf(v * (127.0f / amax));
    return r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r;
}

/* The header's formula for row x {d_in} and column j of w {d_out, d_in}. */
static float expect(const float *x, const float *w, const float *bias, int d_in, int j)
{
    float ax = 0.0f, aw = 0.0f;
    int bad = 0;
    for (int k = 0; k < d_in; ++k) {
        if (!isfinite(x[k]))
            bad = 1;
        ax = fmaxf(ax, fabsf(x[k]));
        aw = fmaxf(aw, fabsf(w[(size_t)j * d_in + k]));
    }
    if (bad)
        return NAN;
    int64_t acc = 0;
    for (int k = 0; k < d_in; ++k)
        acc += (int64_t)quant(x[k], ax) * quant(w[(size_t)j * d_in + k], aw);
    float sx = ax / 127.0f, sw = aw / 127.0f;
    float f = (float)(int32_t)acc * sx;
    f = f * sw;
    return bias ? f + bias[j] : f;
}

static int same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

static void test_q8_linear(void **st)
{
    (void)st;
    double worst_ratio = 0;
    long n_checked = 0;
    int n_variants = 0;
    for (int a = 0; a < COUNT(k_din); ++a)
        for (int b = 0; b < COUNT(k_dout); ++b) {
            int d_in = k_din[a], d_out = k_dout[b], max_rows = 64;
            size_t ldx = (size_t)d_in + 3, ldo = (size_t)d_out + 5;
            float *x = rand_vec((size_t)max_rows * ldx, -2.0f, 2.0f);
            float *w = rand_vec((size_t)d_out * d_in, -1.0f, 1.0f);
            float *bias = rand_vec((size_t)d_out, -1.0f, 1.0f);
            /* rows of very different scales, as activations have */
            for (int i = 0; i < max_rows; ++i)
                for (int k = 0; k < d_in; ++k)
                    x[(size_t)i * ldx + k] *= (float)(1 << (i % 7)) / 8.0f;
            void *wp = panel(w, d_in, d_out);
            size_t osz = (size_t)(max_rows + 1) * ldo;
            float *got = malloc(osz * sizeof *got), *alone = malloc(2 * ldo * sizeof *alone);
            assert_true(got && alone);
            for (int v = 0; v < COUNT(k_isas); ++v) {
                ssm_linear_packed_fn fn = ssm_linear_q8_get(k_isas[v]);
                if (!fn)
                    continue;
                if (a == 0 && b == 0)
                    ++n_variants;
                for (int rr = 0; rr < COUNT(k_rows); ++rr) {
                    int n = k_rows[rr];
                    for (int wb = 0; wb < 2; ++wb) {
                        const float *bs = wb ? bias : NULL;
                        run(fn, got, x, wp, bs, n, d_in, d_out);
                        for (int i = 0; i < n; ++i)
                            for (int j = 0; j < d_out; ++j) {
                                const float *xi = x + (size_t)i * ldx;
                                float g = got[(size_t)i * ldo + j];
                                float e = expect(xi, w, bs, d_in, j);
                                if (!same_bits(g, e))
                                    fail_msg("%s d_in %d d_out %d rows %d: out[%d,%d] = %a, formula %a",
                                             ssm_isa_name(k_isas[v]), d_in, d_out, n, i, j, g, e);
                                /* against the fp32 product */
                                float ax = 0, aw = 0;
                                double s = 0, sw_abs = 0, sx_abs = 0, sa = 0;
                                for (int k = 0; k < d_in; ++k) {
                                    ax = fmaxf(ax, fabsf(xi[k]));
                                    aw = fmaxf(aw, fabsf(w[(size_t)j * d_in + k]));
                                }
                                for (int k = 0; k < d_in; ++k) {
                                    double wk = w[(size_t)j * d_in + k];
                                    s += xi[k] * wk;
                                    sa += fabs(xi[k] * wk);
                                    sw_abs += fabs(wk);
                                    sx_abs += fabs((double)quant(xi[k], ax) * ax / 127.0);
                                }
                                if (bs)
                                    s += bs[j];
                                double bound = 0.5 * ax / 127.0 * sw_abs + 0.5 * aw / 127.0 * sx_abs +
                                               1e-6 * sa + 4 * 0x1p-24 * fabs(s) + 1e-30;
                                double err = fabs((double)g - s);
                                if (err / bound > worst_ratio)
                                    worst_ratio = err / bound;
                                assert_true(err <= bound);
                                ++n_checked;
                            }
                        /* batch invariance: the last row alone */
                        fn(alone, ldo, x + (size_t)(n - 1) * ldx, ldx, wp, bs, 1, d_in, d_out);
                        assert_memory_equal(alone, got + (size_t)(n - 1) * ldo, (size_t)d_out * sizeof(float));
                    }
                }
            }
            free(x);
            free(w);
            free(bias);
            free(wp);
            free(got);
            free(alone);
        }
    printf("q8 linear: %d variants, %ld outputs equal to the formula bit for bit; "
           "worst error / bound vs fp32 %.3f (must be <= 1)\n", n_variants, n_checked, worst_ratio);
}

static void test_q8_special_rows(void **st)
{
    (void)st;
    const int d_in = 37, d_out = 21, n = 7;
    size_t ldx = (size_t)d_in + 3, ldo = (size_t)d_out + 5;
    float *x = rand_vec((size_t)n * ldx, -1.0f, 1.0f);
    float *w = rand_vec((size_t)d_out * d_in, -1.0f, 1.0f);
    float *bias = rand_vec((size_t)d_out, -1.0f, 1.0f);
    for (int k = 0; k < d_in; ++k) {
        w[(size_t)3 * d_in + k] = 0.0f; /* column 3: all zero */
        x[1 * ldx + (size_t)k] = 0.0f;  /* row 1: all zero */
    }
    for (int k = 0; k < d_in; ++k) /* row 6: max |x| 3e-37 (127/max would overflow) */
        x[6 * ldx + (size_t)k] = (k % 3 == 0) ? 0.0f : (k % 3 == 1 ? 3e-37f : -1e-37f);
    x[2 * ldx + 5] = NAN;      /* row 2: NaN */
    x[4 * ldx + 0] = INFINITY; /* row 4: +Inf */
    x[5 * ldx + 36] = -INFINITY;
    void *wp = panel(w, d_in, d_out);
    float *clean = malloc((size_t)(n + 1) * ldo * sizeof *clean);
    float *got = malloc((size_t)(n + 1) * ldo * sizeof *got);
    assert_true(clean && got);
    for (int v = 0; v < COUNT(k_isas); ++v) {
        ssm_linear_packed_fn fn = ssm_linear_q8_get(k_isas[v]);
        if (!fn)
            continue;
        run(fn, got, x, wp, bias, n, d_in, d_out);
        for (int j = 0; j < d_out; ++j) {
            assert_true(got[1 * ldo + (size_t)j] == bias[j]);
            assert_true(got[6 * ldo + (size_t)j] == bias[j]);
            assert_true(isnan(got[2 * ldo + (size_t)j]) && isnan(got[4 * ldo + (size_t)j]) &&
                        isnan(got[5 * ldo + (size_t)j]));
        }
        /* the tiny row without bias (a bias would absorb a wrong tiny result):
         * exactly zero on every ISA */
        fn(clean, ldo, x + 6 * ldx, ldx, wp, NULL, 1, d_in, d_out);
        for (int j = 0; j < d_out; ++j)
            if (!(clean[j] == 0.0f && !signbit(clean[j])))
                fail_msg("%s: tiny row, column %d: %a, expected +0", ssm_isa_name(k_isas[v]), j, clean[j]);
        for (int i = 0; i < n; ++i)
            if (i != 2 && i != 4 && i != 5 && i != 6) {
                assert_true(got[(size_t)i * ldo + 3] == bias[3]);
                /* a finite row is not touched by its neighbours' NaN */
                fn(clean, ldo, x + (size_t)i * ldx, ldx, wp, bias, 1, d_in, d_out);
                assert_memory_equal(clean, got + (size_t)i * ldo, (size_t)d_out * sizeof(float));
            }
    }
    /* too wide a layer is refused (the kernels keep a row on the stack) */
    {
        const int wide = SSM_Q8_MAX_D_IN + 1;
        float *ww = calloc((size_t)wide, sizeof *ww);
        void *pw = aligned_alloc(64, ssm_pack_q8_bytes(wide, 1));
        assert_true(ww && pw);
        assert_int_equal(ssm_pack_q8(pw, ww, wide, 1), -1);
        free(ww);
        free(pw);
    }
    /* NaN or Inf weights are refused */
    void *p = aligned_alloc(64, ssm_pack_q8_bytes(d_in, d_out));
    assert_non_null(p);
    w[10] = NAN;
    assert_int_equal(ssm_pack_q8(p, w, d_in, d_out), -1);
    w[10] = -INFINITY;
    assert_int_equal(ssm_pack_q8(p, w, d_in, d_out), -1);
    free(p);
    free(x);
    free(w);
    free(bias);
    free(wp);
    free(clean);
    free(got);
}

static void test_q8_dispatch(void **st)
{
    (void)st;
    assert_non_null(ssm_linear_q8_get(SSM_ISA_SCALAR));
    for (int v = 0; v < COUNT(k_isas); ++v) {
        int has = ssm_isa_supported(k_isas[v]);
        assert_true((ssm_linear_q8_get(k_isas[v]) != NULL) == has);
        printf("q8 %s: %s\n", ssm_isa_name(k_isas[v]),
               !has ? "not on this CPU" : ssm_q8_isa_supported(k_isas[v]) ? "native" : "avx2 variant");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_dispatch),
        cmocka_unit_test(test_q8_special_rows),
        cmocka_unit_test(test_q8_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
