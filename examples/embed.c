/* SPDX-License-Identifier: MIT */
/* Embedding libssmd: denoise a buffer in your own C program.
 *
 * Build against an installed ssmd (docs/deploying.md):
 *     cc embed.c $(pkg-config --cflags --libs ssmd) -o embed
 *     ./embed                 # the bundled default model, found like ssmd does
 *     ./embed MODEL.safetensors
 *
 * It makes one second of a 440 Hz tone in white noise at 48 kHz, runs it
 * through the same per-stream pipeline as ssmd's file job (resample → STFT →
 * features → one model step per hop → mask → iSTFT → overlap-add) in blocks
 * of 480 samples, and prints the input and output levels.  The output has the
 * input's length and lines up with it (align_output).  Exit status 0 on
 * success, 1 with one line on stderr otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ssmd/model_find.h>
#include <ssmd/stream.h>

enum { RATE_HZ = 48000, N_SAMPLES = RATE_HZ, BLOCK = 480, OUT_CAP = 2 * N_SAMPLES };
static const double PI = 3.14159265358979323846;

static double rms(const float *x, size_t n)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    return n ? sqrt(acc / (double)n) : 0.0;
}

int main(int argc, char **argv)
{
    /* 1. the model file: argv[1], else $SSMD_MODEL, else the search path */
    char path[4096], err[1024];
    if (ssmd_model_find(SSMD_MODEL_DEFAULT, argc > 1 ? argv[1] : NULL, path, sizeof path, err, sizeof err)) {
        fprintf(stderr, "embed: %s\n", err);
        return 1;
    }
    /* 2. the model (read-only, shared by every stream) and its front-end */
    ssm_model *model = NULL;
    ssm_error me = { 0 };
    if (ssm_model_load(path, NULL, &model, &me) != SSM_OK) {
        fprintf(stderr, "embed: %s\n", me.msg);
        return 1;
    }
    ssmd_frontend fe;
    if (ssmd_frontend_from_model(&fe, model, err, sizeof err) != 0) {
        fprintf(stderr, "embed: %s: %s\n", path, err);
        ssm_model_free(model);
        return 1;
    }
    dsp_melbank *mel = NULL;
    dsp_error de = { 0 };
    if (fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = fe.sample_rate_hz, .n_fft = (size_t)fe.n_fft,
                              .n_mels = (size_t)fe.n_mels, .fmin_hz = fe.fmin_hz, .fmax_hz = fe.fmax_hz };
        if (dsp_melbank_create(&mel, &mc, &de) != 0) {
            fprintf(stderr, "embed: %s\n", de.msg);
            ssm_model_free(model);
            return 1;
        }
    }
    /* 3. one stream (its own state, STFT, resamplers) and a runner for batches of 1 */
    ssmd_stream_config sc = { .in_rate_hz = RATE_HZ, .align_output = true, .quality = DSP_RESAMPLE_BEST };
    ssmd_stream *s = ssmd_stream_create(model, &fe, mel, &sc, err, sizeof err);
    ssm_runner *run = NULL;
    float *in = malloc(N_SAMPLES * sizeof *in), *out = malloc(OUT_CAP * sizeof *out);
    float *row = malloc((size_t)fe.n_features * sizeof *row), *mask = malloc((size_t)fe.n_bins * sizeof *mask);
    int rc = 1;
    if (!s) {
        fprintf(stderr, "embed: %s\n", err);
        goto done;
    }
    if (ssm_runner_create(model, 1, 1, 0, &run, &me) != SSM_OK) {
        fprintf(stderr, "embed: %s\n", me.msg);
        goto done;
    }
    if (!in || !out || !row || !mask) {
        fprintf(stderr, "embed: out of memory\n");
        goto done;
    }
    /* 4. the input: a tone in white noise (a fixed LCG, so runs repeat) */
    unsigned long long lcg = 1;
    for (size_t i = 0; i < N_SAMPLES; i++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        double noise = (double)(lcg >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        in[i] = (float)(0.3 * sin(2.0 * PI * 440.0 * (double)i / RATE_HZ) + 0.1 * noise);
    }
    /* 5. push blocks; step the model whenever a frame is ready; pop the output */
    ssm_state *st = ssmd_stream_state(s);
    ssm_outputs o = { .mask = (ssm_model_heads(model) & SSM_MODEL_HEAD_MASK) ? mask : NULL };
    size_t pos = 0, n_out = 0;
    for (;;) {
        size_t end = pos + BLOCK < N_SAMPLES ? pos + BLOCK : N_SAMPLES;
        if (pos == N_SAMPLES) ssmd_stream_finish(s);
        do {
            if (pos < end) pos += ssmd_stream_push(s, in + pos, end - pos);
            while (ssmd_stream_prepare(s, row)) {
                int st_rc = ssm_step(run, &st, 1, row, NULL, &o, NULL);
                if (st_rc != SSM_OK && st_rc != SSM_ERR_NONFINITE) {
                    fprintf(stderr, "embed: step failed (%d)\n", st_rc);
                    goto done;
                }
                ssmd_stream_complete(s, o.mask);
                n_out += ssmd_stream_pop(s, out + n_out, OUT_CAP - n_out);
            }
            n_out += ssmd_stream_pop(s, out + n_out, OUT_CAP - n_out);
        } while (pos < end);
        if (ssmd_stream_done(s)) break;
    }
    printf("embed: %s: %zu samples in, %zu out at %d Hz; rms in %.4f, out %.4f\n", path, (size_t)N_SAMPLES,
           n_out, RATE_HZ, rms(in, N_SAMPLES), rms(out, n_out));
    rc = n_out == N_SAMPLES ? 0 : 1;
    if (rc) fprintf(stderr, "embed: output has %zu samples, expected %d\n", n_out, N_SAMPLES);
done:
    free(in); free(out); free(row); free(mask);
    ssm_runner_destroy(run);
    ssmd_stream_destroy(s);
    dsp_melbank_destroy(mel);
    ssm_model_free(model);
    return rc;
}
