/* SPDX-License-Identifier: MIT */
/* Features: finiteness of log features on silence and extreme values, RMS
 * and dBFS levels, mel filterbank structure and refused configurations.
 * The filterbank values are compared with numpy in tests/ref/dsp_ref.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "dsp/features.h"
#include "dsp/stft.h"

static dsp_mel_config mel_default(void)
{
    dsp_mel_config c = { .sample_rate_hz = 16000.0, .n_fft = 512, .n_mels = 80, .fmin_hz = 0.0,
                         .fmax_hz = 8000.0, .scale = DSP_MEL_SLANEY, .norm = DSP_MEL_NORM_SLANEY };
    return c;
}

static void test_silence_is_finite(void **state)
{
    (void)state;
    dsp_stft_config sc = { 512, 128, DSP_WINDOW_HANN, DSP_WINDOW_NONE };
    dsp_stft *st = NULL;
    dsp_stft_create(&st, &sc, NULL);
    dsp_mel_config mc = mel_default();
    dsp_melbank *mb = NULL;
    dsp_melbank_create(&mb, &mc, NULL);
    assert_non_null(st);
    assert_non_null(mb);
    float frame[512] = {0}, spec[2 * 257], power[257], logp[257], mel[80];
    dsp_stft_forward(st, spec, frame);
    dsp_spec_power(power, spec, 257);
    assert_int_equal(dsp_log_floor(logp, power, 257, 1e-10f), DSP_OK);
    assert_int_equal(dsp_melbank_apply_log(mb, mel, power, 1e-10f), DSP_OK);
    size_t nonfinite = 0;
    for (int k = 0; k < 257; k++)
        nonfinite += !isfinite(logp[k]) + (logp[k] != logf(1e-10f));
    for (int i = 0; i < 80; i++)
        nonfinite += !isfinite(mel[i]) + (mel[i] != logf(1e-10f));
    printf("silence: log-power[0] %g, log-mel[0] %g, entries not at ln(floor): %zu\n", logp[0],
           mel[0], nonfinite);
    assert_int_equal(nonfinite, 0);

    /* zero, negative, NaN, Inf powers */
    const float odd[5] = { 0.0f, -1.0f, NAN, INFINITY, FLT_MAX };
    float out[5];
    assert_int_equal(dsp_log_floor(out, odd, 5, 1e-6f), DSP_OK);
    for (int i = 0; i < 3; i++)
        assert_float_equal(out[i], logf(1e-6f), 0.0);
    assert_true(isinf(out[3])); /* Inf in, Inf out: only finite input is promised finite */
    assert_true(isfinite(out[4]));
    /* bad floors */
    assert_int_equal(dsp_log_floor(out, odd, 5, 0.0f), DSP_ERR_INVALID);
    assert_int_equal(dsp_log_floor(out, odd, 5, -1.0f), DSP_ERR_INVALID);
    assert_int_equal(dsp_log_floor(out, odd, 5, NAN), DSP_ERR_INVALID);
    assert_int_equal(dsp_melbank_apply_log(mb, mel, power, 0.0f), DSP_ERR_INVALID);
    dsp_stft_destroy(st);
    dsp_melbank_destroy(mb);
}

/* dsp_log_floor over whole blocks of 8 (the vector path where the CPU has
 * AVX2 and glibc's libmvec) and a tail: within 4 ulp of the correctly rounded
 * ln (computed in double), NaN, 0 and negatives anywhere in a block take the
 * floor, Inf stays Inf, and in place gives the same. */
static void test_log_floor_blocks(void **state)
{
    (void)state;
    enum { N = 1003 };
    static float in[N], out[N], inplace[N];
    uint32_t u = 12345;
    for (int i = 0; i < N; i++) { /* powers spread over 1e-12 … 1e6 */
        u = u * 1664525u + 1013904223u;
        in[i] = (float)pow(10.0, -12.0 + 18.0 * (double)(u >> 8) / 16777216.0);
    }
    in[3] = NAN;
    in[8] = 0.0f;
    in[13] = -2.0f;
    in[17] = INFINITY;
    in[1001] = NAN;
    const float fl = 1e-10f;
    assert_int_equal(dsp_log_floor(out, in, N, fl), DSP_OK);
    memcpy(inplace, in, sizeof in);
    assert_int_equal(dsp_log_floor(inplace, inplace, N, fl), DSP_OK);
    int max_ulp = 0;
    for (int i = 0; i < N; i++) {
        if (i == 17) {
            assert_true(isinf(out[i]) && out[i] > 0);
            continue;
        }
        float p = in[i] > fl ? in[i] : fl;
        if (isnan(in[i])) p = fl;
        float ref = (float)log((double)p);
        int32_t a, b;
        memcpy(&a, &out[i], 4);
        memcpy(&b, &ref, 4);
        int d = abs(a - b);
        if (d > max_ulp) max_ulp = d;
    }
    printf("log floor: max %d ulp from the correctly rounded ln over %d values\n", max_ulp, N);
    assert_true(max_ulp <= 4);
    assert_float_equal(out[3], logf(fl), 1e-6);
    assert_float_equal(out[8], logf(fl), 1e-6);
    assert_float_equal(out[13], logf(fl), 1e-6);
    assert_float_equal(out[1001], logf(fl), 1e-6);
    assert_memory_equal(out, inplace, sizeof out);
}

/* The attenuation limit: gains below 10^(-lim/20) are raised to it (values
 * computed by hand: 10^(-20/20) = 0.1), others kept; NaN takes the floor. */
static void test_gain_floor(void **state)
{
    (void)state;
    float g[5] = { 0.0f, 0.05f, 0.1f, 0.5f, NAN };
    dsp_gain_floor(g, 5, 20.0);
    assert_float_equal(g[0], 0.1f, 1e-7);
    assert_float_equal(g[1], 0.1f, 1e-7);
    assert_float_equal(g[2], 0.1f, 1e-7);
    assert_float_equal(g[3], 0.5f, 0.0);
    assert_float_equal(g[4], 0.1f, 1e-7);
    float h[3] = { 1e-7f, 0.3f, 1.0f };
    dsp_gain_floor(h, 3, 0.0); /* 0 dB: pass-through */
    for (int i = 0; i < 3; i++) assert_float_equal(h[i], 1.0f, 0.0);
    float u[2] = { 1e-30f, 0.25f };
    dsp_gain_floor(u, 2, INFINITY); /* no limit */
    assert_float_equal(u[0], 1e-30f, 0.0);
    assert_float_equal(u[1], 0.25f, 0.0);
    printf("gain floor at 20 dB: %g %g %g %g %g\n", g[0], g[1], g[2], g[3], g[4]);
}

/* The VAD gate (dsp_mask_limit): hop 480 at 48 kHz is 10 ms a frame, so a
 * 25 ms grace closes the gate at the third quiet frame (30 > 25); a voiced
 * frame reopens it and restarts the count; gate off keeps the count at 0. */
static void test_mask_limit_gate(void **state)
{
    (void)state;
    dsp_mask_limit_config c = { .atten_lim_db = 20.0, .vad_gate_percent = 50.0f, .vad_grace_ms = 25,
                                .hop_samples = 480, .sample_rate_hz = 48000 };
    uint64_t quiet = 0;
    float quiet_vad = 0.2f, voiced = 0.9f;
    for (int f = 1; f <= 3; f++) {
        float g[2] = { 0.5f, 0.01f };
        dsp_mask_limit(g, 2, &quiet_vad, &c, &quiet);
        assert_int_equal(quiet, (uint64_t)f);
        assert_float_equal(g[0], f < 3 ? 0.5f : 0.1f, 1e-7); /* closed: every gain at the floor */
        assert_float_equal(g[1], 0.1f, 1e-7);
    }
    float g[2] = { 0.5f, 0.01f };
    dsp_mask_limit(g, 2, &voiced, &c, &quiet);
    assert_int_equal(quiet, 0);
    assert_float_equal(g[0], 0.5f, 0.0);
    dsp_mask_limit(NULL, 0, &quiet_vad, &c, &quiet); /* no mask head: count only */
    assert_int_equal(quiet, 1);
    c.vad_gate_percent = 0.0f;
    dsp_mask_limit(g, 2, &quiet_vad, &c, &quiet);
    assert_int_equal(quiet, 0);
    dsp_mask_limit(g, 2, NULL, &c, &quiet); /* no VAD head: the limit alone */
    assert_float_equal(g[1], 0.1f, 1e-7);
}

/* The vectorised per-bin loops (dsp_spec_power, dsp_spec_apply_gain,
 * dsp_gain_floor: blocks of 16, one clone per ISA) against plain loops written
 * here, bit for bit, at lengths around the block size and with values that
 * reach the clamps (FLT_MAX, NaN, ±Inf, −0, denormals). */
static float test_value(size_t i)
{
    static const float special[] = { 0.0f, -0.0f, 1e-40f, -3e-39f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN,
                                      1e30f, 0.5f, -2.0f };
    if (i % 5 == 3)
        return special[(i / 5) % (sizeof special / sizeof special[0])];
    return (float)((double)((i * 2654435761u) % 2001) / 1000.0 - 1.0);
}

static void test_per_bin_blocks(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 33, 481, 1000 };
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        const size_t n = lens[t];
        float *spec = malloc((2 * n + 1) * sizeof *spec), *got = malloc((2 * n + 1) * sizeof *got);
        float *want = malloc((2 * n + 1) * sizeof *want), *g = malloc((n + 1) * sizeof *g);
        float *g2 = malloc((n + 1) * sizeof *g2);
        assert_non_null(spec); assert_non_null(got); assert_non_null(want); assert_non_null(g); assert_non_null(g2);
        for (size_t i = 0; i < 2 * n; i++)
            spec[i] = test_value(i);
        for (size_t k = 0; k < n; k++)
            g[k] = test_value(7 * k + 1);
        /* power: in double, clamped to FLT_MAX */
        dsp_spec_power(got, spec, n);
        for (size_t k = 0; k < n; k++) {
            double re = spec[2 * k], im = spec[2 * k + 1], p = re * re + im * im;
            want[k] = p > FLT_MAX ? FLT_MAX : (float)p;
        }
        assert_memory_equal(got, want, n * sizeof *got);
        /* gain: one float multiply per part */
        memcpy(got, spec, 2 * n * sizeof *got);
        dsp_spec_apply_gain(got, g, n);
        for (size_t k = 0; k < n; k++) {
            want[2 * k] = spec[2 * k] * g[k];
            want[2 * k + 1] = spec[2 * k + 1] * g[k];
        }
        assert_memory_equal(got, want, 2 * n * sizeof *got);
        /* attenuation floor at 12 dB: NaN takes the floor */
        memcpy(g2, g, n * sizeof *g2);
        dsp_gain_floor(g2, n, 12.0);
        const float fl = (float)pow(10.0, -12.0 / 20.0);
        for (size_t k = 0; k < n; k++)
            want[k] = g[k] > fl ? g[k] : fl;
        assert_memory_equal(g2, want, n * sizeof *g2);
        free(spec); free(got); free(want); free(g); free(g2);
    }
}

static void test_power_magnitude(void **state)
{
    (void)state;
    const float spec[6] = { 3.0f, 4.0f, -1e30f, 1e30f, 0.0f, -2.0f };
    float p[3], m[3];
    dsp_spec_power(p, spec, 3);
    dsp_spec_magnitude(m, spec, 3);
    assert_float_equal(p[0], 25.0f, 0.0);
    assert_float_equal(m[0], 5.0f, 0.0);
    assert_true(isfinite(p[1]) && p[1] == FLT_MAX); /* 2e60 clamps, never Inf */
    assert_float_equal(m[1], 1e30f * sqrtf(2.0f), 1e24);
    assert_float_equal(p[2], 4.0f, 0.0);
    assert_float_equal(m[2], 2.0f, 0.0);
}

static void test_levels(void **state)
{
    (void)state;
    float z[1000] = {0}, one[100], sine[1600];
    for (int i = 0; i < 100; i++)
        one[i] = i % 2 ? 1.0f : -1.0f;
    for (int i = 0; i < 1600; i++)
        sine[i] = (float)sin(6.283185307179586 * 100.0 * i / 16000.0);
    const float dz = dsp_dbfs_f32(z, 1000), d0 = dsp_dbfs_f32(z, 0);
    const float done = dsp_dbfs_f32(one, 100), dsine = dsp_dbfs_f32(sine, 1600);
    printf("dBFS: zeros %g, empty %g, full-scale square %g, full-scale sine %g (expect %g)\n",
           dz, d0, done, dsine, 20.0 * log10(sqrt(0.5)));
    assert_true(isfinite(dz));
    assert_float_equal(dz, DSP_DBFS_FLOOR, 0.0);
    assert_float_equal(d0, DSP_DBFS_FLOOR, 0.0);
    assert_float_equal(done, 0.0f, 1e-6);
    assert_float_equal(dsine, 20.0 * log10(sqrt(0.5)), 1e-4);
    assert_float_equal(dsp_rms_f32(one, 100), 1.0f, 1e-7);
    assert_float_equal(dsp_rms_f32(z, 0), 0.0f, 0.0);
    /* a tiny level stays at or above the floor */
    float tiny[4] = { 1e-30f, 0, 0, 0 };
    assert_float_equal(dsp_dbfs_f32(tiny, 4), DSP_DBFS_FLOOR, 0.0);
    /* non-finite samples do not poison the level */
    float withnan[4] = { NAN, 1.0f, INFINITY, -1.0f };
    assert_true(isfinite(dsp_dbfs_f32(withnan, 4)));
}

static void test_mel_structure(void **state)
{
    (void)state;
    dsp_mel_config c = mel_default();
    dsp_melbank *mb = NULL;
    dsp_melbank_create(&mb, &c, NULL);
    assert_non_null(mb);
    assert_int_equal(dsp_melbank_n_mels(mb), 80);
    assert_int_equal(dsp_melbank_n_bins(mb), 257);
    const float *w = dsp_melbank_weights(mb);
    /* every weight ≥ 0; every row non-empty; apply == dense product */
    float power[257], mel[80];
    for (int k = 0; k < 257; k++)
        power[k] = (float)(1.0 + k % 13);
    dsp_melbank_apply(mb, mel, power);
    double worst = 0.0;
    for (int i = 0; i < 80; i++) {
        double s = 0.0, rowsum = 0.0;
        for (int k = 0; k < 257; k++) {
            assert_true(w[i * 257 + k] >= 0.0f);
            s += (double)w[i * 257 + k] * power[k];
            rowsum += w[i * 257 + k];
        }
        assert_true(rowsum > 0.0);
        double e = fabs(s - mel[i]) / s;
        worst = e > worst ? e : worst;
    }
    printf("sparse apply vs dense double product: worst rel. error %.3g\n", worst);
    assert_true(worst < 1e-5);
    dsp_melbank_destroy(mb);
    dsp_melbank_destroy(NULL);
}

static void test_mel_invalid(void **state)
{
    (void)state;
    dsp_mel_config bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = mel_default();
    bad[0].fmax_hz = 8001.0;      /* above Nyquist */
    bad[1].n_mels = 0;
    bad[2].fmin_hz = 8000.0;      /* fmin ≥ fmax */
    bad[3].sample_rate_hz = 0.0;
    bad[4].n_fft = 1;
    bad[5].fmin_hz = -5.0;
    bad[6].scale = (dsp_mel_scale)7;
    bad[7].sample_rate_hz = NAN;
    for (int i = 0; i < 8; i++) {
        dsp_error err = {0};
        dsp_melbank *mb = (dsp_melbank *)&bad[i]; /* not NULL: a failed create clears it */
        dsp_melbank_create(&mb, &bad[i], &err);
        assert_null(mb);
        printf("refused: %s\n", err.msg);
        assert_int_equal(err.status, DSP_ERR_INVALID);
        assert_true(strlen(err.msg) > 10);
    }
    dsp_melbank *none = (dsp_melbank *)bad; /* not NULL: a failed create clears it */
    dsp_melbank_create(&none, NULL, NULL);
    assert_null(none);
    /* fmax 0 means Nyquist */
    dsp_mel_config c = mel_default();
    c.fmax_hz = 0.0;
    dsp_melbank *mb = NULL;
    dsp_melbank_create(&mb, &c, NULL);
    assert_non_null(mb);
    dsp_melbank_destroy(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silence_is_finite),
        cmocka_unit_test(test_power_magnitude),
        cmocka_unit_test(test_per_bin_blocks),
        cmocka_unit_test(test_log_floor_blocks),
        cmocka_unit_test(test_gain_floor),
        cmocka_unit_test(test_mask_limit_gate),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_mel_structure),
        cmocka_unit_test(test_mel_invalid),
    };
    return cmocka_run_group_tests_name("dsp_features", tests, NULL, NULL);
}
