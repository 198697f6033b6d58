/* SPDX-License-Identifier: MIT */
/* STFT → iSTFT through the framer and WOLA: reconstruction error on white
 * noise and a speech-like signal for several n_fft/hop/window pairs; plan
 * determinism; window sanity; refused configurations.  The comparison of
 * the transform itself with numpy.fft.rfft is in tests/ref/dsp_ref.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#include <cmocka.h>

#include "dsp_test_util.h"

typedef struct pair {
    size_t n_fft, hop;
    dsp_window a, s;
} pair;

static void test_reconstruction(void **state)
{
    (void)state;
    static const pair pairs[] = {
        { 512, 256, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN },
        { 512, 128, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN },
        { 512, 256, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
        { 512, 128, DSP_WINDOW_HANN, DSP_WINDOW_HANN },
        { 960, 480, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN },
        { 320, 160, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN },
        { 400, 100, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
        { 405, 135, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN }, /* odd n_fft */
        { 256, 256, DSP_WINDOW_RECT, DSP_WINDOW_RECT },
    };
    const size_t len = 2 * 16000 + 123;
    float *noise = malloc(len * sizeof *noise), *speech = malloc(len * sizeof *speech);
    tu_white(noise, len, 42);
    tu_speechlike(speech, len, 16000.0);
    double worst = 0.0;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        for (int sig = 0; sig < 2; sig++) {
            const float *x = sig ? speech : noise;
            dsp_error err = {0};
            dsp_stft_config sc = { pairs[p].n_fft, pairs[p].hop, pairs[p].a, pairs[p].s };
            dsp_framer_config fc = { pairs[p].n_fft, pairs[p].hop, true, 0 };
            dsp_stft *st = NULL;
            dsp_stft_create(&st, &sc, &err);
            if (!st)
                fail_msg("%s", err.msg);
            dsp_framer *f = NULL;
            dsp_framer_create(&f, &fc, &err);
            assert_non_null(f);
            tu_run r;
            assert_int_equal(tu_run_chain(&r, f, st, x, len, 480), 0);
            assert_int_equal(r.n_out, len);
            double e = tu_rel_rms_err(r.out, x, len);
            printf("%4zu/%-4zu %-9s/%-9s %-6s rel. RMS error %.3g\n", pairs[p].n_fft, pairs[p].hop,
                   dsp_window_name(pairs[p].a), dsp_window_name(pairs[p].s),
                   sig ? "speech" : "noise", e);
            worst = e > worst ? e : worst;
            assert_true(e <= 1e-5);
            tu_run_free(&r);
            dsp_framer_destroy(f);
            dsp_stft_destroy(st);
        }
    }
    printf("worst reconstruction error %.3g (tolerance 1e-5)\n", worst);
    free(noise);
    free(speech);
}

/* Two objects, same size: bit-identical spectra (FFTW_ESTIMATE plans). */
static void test_deterministic(void **state)
{
    (void)state;
    dsp_stft_config c = { 960, 480, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN };
    dsp_stft *a = NULL, *b = NULL;
    dsp_stft_create(&a, &c, NULL);
    dsp_stft_create(&b, &c, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(dsp_stft_n_bins(a), 481);
    float x[960], sa[2 * 481], sb[2 * 481], ya[960], yb[960];
    tu_white(x, 960, 5);
    assert_int_equal(dsp_stft_forward(a, sa, x), DSP_OK);
    assert_int_equal(dsp_stft_forward(b, sb, x), DSP_OK);
    assert_memory_equal(sa, sb, sizeof sa);
    dsp_stft_inverse(a, ya, sa);
    dsp_stft_inverse(b, yb, sb);
    assert_memory_equal(ya, yb, sizeof ya);
    /* the caller's spectrum is not modified by the inverse */
    assert_memory_equal(sa, sb, sizeof sa);
    dsp_stft_destroy(a);
    dsp_stft_destroy(b);
    dsp_stft_destroy(NULL);
}

/* Many threads creating, using and destroying STFTs at once: the planner
 * mutex keeps FFTW consistent and every thread gets the bits the main
 * thread got (run under the sanitizer build too). */
#define N_THREADS 4
static const size_t thread_sizes[] = { 512, 400, 960, 320, 257 };
static float thread_ref[5][2 * 481];

static void *thread_main(void *arg)
{
    size_t *mismatches = arg;
    float x[960], spec[2 * 481];
    tu_white(x, 960, 11);
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < 5; i++) {
            const size_t n = thread_sizes[i];
            dsp_stft_config c = { n, n, DSP_WINDOW_HANN, DSP_WINDOW_NONE };
            dsp_stft *st = NULL;
            dsp_stft_create(&st, &c, NULL);
            if (!st) {
                (*mismatches)++;
                continue;
            }
            dsp_stft_forward(st, spec, x);
            if (memcmp(spec, thread_ref[i], 2 * (n / 2 + 1) * sizeof(float)) != 0)
                (*mismatches)++;
            dsp_stft_destroy(st);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    float x[960];
    tu_white(x, 960, 11);
    for (size_t i = 0; i < 5; i++) {
        dsp_stft_config c = { thread_sizes[i], thread_sizes[i], DSP_WINDOW_HANN, DSP_WINDOW_NONE };
        dsp_stft *st = NULL;
        dsp_stft_create(&st, &c, NULL);
        assert_non_null(st);
        dsp_stft_forward(st, thread_ref[i], x);
        dsp_stft_destroy(st);
    }
    pthread_t th[N_THREADS];
    size_t mism[N_THREADS] = {0}, total = 0;
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_main, &mism[t]), 0);
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        total += mism[t];
    }
    printf("%d threads x 100 create/forward/destroy: spectra differing from the main thread's: %zu\n",
           N_THREADS, total);
    assert_int_equal(total, 0);
}

static void test_windows(void **state)
{
    (void)state;
    float h[8], s[8], r[8];
    assert_int_equal(dsp_window_fill(h, 8, DSP_WINDOW_HANN), DSP_OK);
    assert_int_equal(dsp_window_fill(s, 8, DSP_WINDOW_SQRT_HANN), DSP_OK);
    assert_int_equal(dsp_window_fill(r, 8, DSP_WINDOW_RECT), DSP_OK);
    /* periodic: w[0] = 0, peak 1 at N/2, symmetric about N/2 */
    assert_true(h[0] == 0.0f);
    assert_float_equal(h[4], 1.0f, 1e-7);
    for (int i = 1; i < 4; i++)
        assert_float_equal(h[i], h[8 - i], 1e-7);
    for (int i = 0; i < 8; i++) {
        assert_float_equal(s[i] * s[i], h[i], 1e-6);
        assert_true(r[i] == 1.0f);
    }
    assert_int_equal(dsp_window_fill(h, 0, DSP_WINDOW_HANN), DSP_ERR_INVALID);
    assert_int_equal(dsp_window_fill(h, 8, DSP_WINDOW_NONE), DSP_ERR_INVALID);
}

static void test_analysis_only(void **state)
{
    (void)state;
    dsp_error err = {0};
    dsp_stft_config c = { 400, 160, DSP_WINDOW_HANN, DSP_WINDOW_NONE };
    dsp_stft *st = NULL;
    dsp_stft_create(&st, &c, &err);
    assert_non_null(st);
    assert_null(dsp_stft_synthesis_window(st));
    float x[400] = {0}, spec[2 * 201];
    assert_int_equal(dsp_stft_forward(st, spec, x), DSP_OK);
    assert_int_equal(dsp_stft_inverse(st, x, spec), DSP_ERR_INVALID);
    dsp_stft_destroy(st);
}

static void test_invalid(void **state)
{
    (void)state;
    static const dsp_stft_config bad[] = {
        { 0, 1, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
        { 1, 1, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
        { 512, 0, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
        { 512, 513, DSP_WINDOW_HANN, DSP_WINDOW_NONE },
        { 400, 160, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN }, /* not COLA */
        { 512, 256, DSP_WINDOW_HANN, DSP_WINDOW_HANN },           /* hann² needs hop ≤ N/3 */
        { 512, 512, DSP_WINDOW_HANN, DSP_WINDOW_RECT },           /* no overlap */
        { 512, 256, DSP_WINDOW_NONE, DSP_WINDOW_RECT },           /* analysis window required */
        { 512, 256, (dsp_window)42, DSP_WINDOW_RECT },
        { 512, 256, DSP_WINDOW_HANN, (dsp_window)-3 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsp_error err = {0};
        dsp_stft *st = (dsp_stft *)&bad[i]; /* not NULL: a failed create clears it */
        dsp_stft_create(&st, &bad[i], &err);
        assert_null(st);
        printf("refused: %s\n", err.msg);
        assert_int_equal(err.status, DSP_ERR_INVALID);
        assert_true(strlen(err.msg) > 10);
    }
    dsp_stft *st = (dsp_stft *)bad; /* not NULL: a failed create clears it */
    dsp_stft_create(&st, NULL, NULL);
    assert_null(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconstruction),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_analysis_only),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests_name("dsp_stft", tests, NULL, NULL);
}
