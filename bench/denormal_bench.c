/* SPDX-License-Identifier: MIT */
/* Per-frame time of the daemon's stream pipeline (resample, STFT, features,
 * ssm_step, mask, iSTFT: ssmd_stream + ssm_step, as the file job runs it) on
 * digital silence versus silence with subnormal decaying tails, with the
 * flush-to-zero / denormals-are-zero mode the daemon sets
 * (ssm_fp_flush_denormals) and without it.  Target (issue 15): tails cost at
 * most 1.2x the zeros' time with the mode set.  One JSON line per case and a
 * summary line with the ratios.
 * Usage: denormal_bench MODEL [SECONDS_OF_AUDIO]   (pin it: taskset -c 0) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend.h"
#include "kernels/ssm_kernels.h"
#include "stream.h"
#include "bench_machine.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per frame for x (n samples at rate), best of 3 runs. */
static double per_frame_s(ssm_model *m, const ssmd_frontend *fe, dsp_melbank *mb, const float *x, size_t n,
                          int rate, unsigned long *frames_out)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        char err[256];
        ssm_error me = { 0 };
        ssmd_stream_config sc = { .in_rate_hz = rate, .align_output = true, .quality = DSP_RESAMPLE_BEST };
        ssmd_stream *s = ssmd_stream_create(m, fe, mb, &sc, err, sizeof err);
        ssm_runner *run = NULL;
        if (!s || ssm_runner_create(m, 1, 1, 0, &run, &me)) {
            fprintf(stderr, "denormal_bench: set-up failed: %s%s\n", s ? "" : err, me.msg);
            exit(1);
        }
        float *row = malloc((size_t)fe->n_features * sizeof(float)), *mask = malloc((size_t)fe->n_bins * sizeof(float));
        float y[4096];
        ssm_state *st = ssmd_stream_state(s);
        ssm_outputs o = { .mask = (ssm_model_heads(m) & SSM_MODEL_HEAD_MASK) ? mask : NULL };
        unsigned long frames = 0;
        size_t pos = 0;
        double t0 = now_s();
        while (pos < n) {
            pos += ssmd_stream_push(s, x + pos, n - pos);
            while (ssmd_stream_prepare(s, row)) {
                ssm_step(run, &st, 1, row, NULL, &o, NULL);
                ssmd_stream_complete(s, o.mask);
                frames++;
                while (ssmd_stream_pop(s, y, 4096) > 0) {}
            }
            while (ssmd_stream_pop(s, y, 4096) > 0) {}
        }
        double el = now_s() - t0;
        if (frames && el / (double)frames < best) best = el / (double)frames;
        *frames_out = frames;
        free(row);
        free(mask);
        ssm_runner_destroy(run);
        ssmd_stream_destroy(s);
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: denormal_bench MODEL [SECONDS_OF_AUDIO]\n");
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 20.0;
    ssm_model *m = NULL;
    ssm_error me = { 0 };
    if (ssm_model_load(argv[1], NULL, &m, &me)) { fprintf(stderr, "denormal_bench: %s\n", me.msg); return 1; }
    ssmd_frontend fe;
    char err[256];
    if (ssmd_frontend_from_model(&fe, m, err, sizeof err)) { fprintf(stderr, "denormal_bench: %s\n", err); return 1; }
    dsp_error de = { 0 };
    dsp_melbank *mb = NULL;
    if (fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = fe.sample_rate_hz, .n_fft = (size_t)fe.n_fft,
                              .n_mels = (size_t)fe.n_mels, .fmin_hz = fe.fmin_hz, .fmax_hz = fe.fmax_hz };
        dsp_melbank_create(&mb, &mc, &de);
    }
    int rate = fe.sample_rate_hz;
    size_t n = (size_t)(seconds * rate);
    float *zeros = calloc(n, sizeof(float)), *tails = malloc(n * sizeof(float));
    /* every second a click that decays exponentially from 1e-6 to 1e-45
     * (an alternating sign keeps it in the STFT's upper bins): its power,
     * the STFT's products and the filters' states pass through the subnormal
     * range for much of the second, as the tails of a fade-out or of a
     * reverberant room decaying into digital silence do */
    size_t period = (size_t)rate;
    for (size_t i = 0; i < n; i++) {
        size_t k = i % period;
        tails[i] = (float)pow(10.0, -6.0 - 39.0 * (double)k / (double)period) * ((k & 1) ? -1.0f : 1.0f);
    }
    size_t sub = 0;
    for (size_t i = 0; i < n; i++) sub += tails[i] != 0 && fabsf(tails[i]) < 1.17549435e-38f;
    double t[2][2];
    unsigned long frames = 0;
    for (int ftz = 0; ftz < 2; ftz++) {
        if (ftz) ssm_fp_flush_denormals();
        t[ftz][0] = per_frame_s(m, &fe, mb, zeros, n, rate, &frames);
        t[ftz][1] = per_frame_s(m, &fe, mb, tails, n, rate, &frames);
        for (int k = 0; k < 2; k++)
            ssm_bench_line("{\"bench\":\"denormal_frame\",\"input\":\"%s\",\"ftz_daz\":%s,\"frames\":%lu,"
                   "\"us_per_frame\":%.3f}\n", k ? "subnormal_tails" : "zeros", ftz ? "true" : "false",
                   frames, 1e6 * t[ftz][k]);
    }
    ssm_bench_line("{\"bench\":\"denormal_ratio\",\"subnormal_input_samples\":%zu,\"tails_over_zeros_ftz_off\":%.3f,"
           "\"tails_over_zeros_ftz_on\":%.3f,\"target\":1.2}\n", sub, t[0][1] / t[0][0], t[1][1] / t[1][0]);
    free(zeros);
    free(tails);
    dsp_melbank_destroy(mb);
    ssm_model_free(m);
    return 0;
}
