/* SPDX-License-Identifier: MIT */
/* Mu-law: code round trip, clamping, NaN, monotonicity and quantisation
 * error bound.  The comparison with the torchaudio formula on many inputs
 * is in tests/ref/dsp_ref.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <math.h>

#include "dsp/mulaw.h"

static void test_code_round_trip(void **state)
{
    (void)state;
    uint8_t codes[256], back[256];
    float x[256];
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i;
    dsp_mulaw_decode(x, codes, 256);
    dsp_mulaw_encode(back, x, 256);
    int mismatches = 0;
    for (int i = 0; i < 256; i++)
        mismatches += back[i] != codes[i];
    printf("decode(0)=%g decode(128)=%g decode(255)=%g; encode(decode(c)) != c: %d\n", x[0], x[128],
           x[255], mismatches);
    assert_int_equal(mismatches, 0);
    assert_float_equal(x[0], -1.0f, 1e-6);
    assert_float_equal(x[255], 1.0f, 1e-6);
    for (int i = 1; i < 256; i++)
        assert_true(x[i] > x[i - 1]);
}

static void test_clamp_and_nan(void **state)
{
    (void)state;
    const float x[7] = { 2.0f, -3.0f, INFINITY, -INFINITY, NAN, 0.0f, 1.0f };
    uint8_t c[7];
    dsp_mulaw_encode(c, x, 7);
    assert_int_equal(c[0], 255);
    assert_int_equal(c[1], 0);
    assert_int_equal(c[2], 255);
    assert_int_equal(c[3], 0);
    assert_int_equal(c[4], 128); /* as 0.0 */
    assert_int_equal(c[5], 128);
    assert_int_equal(c[6], 255);
}

/* encode is monotone and decode(encode(x)) is close to x: the error is at
 * most half the width of the code's interval, which for mu-law is at most
 * (exp(ln256/127.5) − 1)·|x| + ... : bound it by the largest code gap. */
static void test_quantisation_error(void **state)
{
    (void)state;
    enum { N = 20001 };
    static float x[N], y[N];
    static uint8_t c[N];
    for (int i = 0; i < N; i++)
        x[i] = -1.0f + 2.0f * (float)i / (N - 1);
    dsp_mulaw_encode(c, x, N);
    dsp_mulaw_decode(y, c, N);
    float gap = 0.0f, dec[256];
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    dsp_mulaw_decode(dec, all, 256);
    for (int i = 1; i < 256; i++)
        gap = fmaxf(gap, dec[i] - dec[i - 1]);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        if (i)
            assert_true(c[i] >= c[i - 1]);
        worst = fmax(worst, fabs((double)y[i] - x[i]));
    }
    printf("worst |decode(encode(x)) - x| %.4g, largest code gap %.4g\n", worst, gap);
    assert_true(worst <= gap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_round_trip),
        cmocka_unit_test(test_clamp_and_nan),
        cmocka_unit_test(test_quantisation_error),
    };
    return cmocka_run_group_tests_name("dsp_mulaw", tests, NULL, NULL);
}
