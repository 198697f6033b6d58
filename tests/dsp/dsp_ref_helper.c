/* SPDX-License-Identifier: MIT */
/* Writes what dsp/ computes, as raw little-endian float32 (or uint8) files,
 * plus manifest.txt describing each, into the directory given as argv[1].
 * tests/ref/dsp_ref.py recomputes everything with numpy from the equations
 * and compares.  Inputs are written too, so python sees the exact floats.
 *
 * Manifest lines (whitespace-separated):
 *   window KIND N FILE
 *   stft N_FFT N_FRAMES FRAMES_FILE SPEC_FILE                (Hann analysis)
 *   istft N_FFT HOP ANA SYN N_FRAMES SPEC_FILE FRAMES_FILE
 *   mel SCALE NORM SR N_FFT N_MELS FMIN FMAX FILE
 *   logmel SR N_FFT HOP N_MELS FMIN FMAX FLOOR N_SAMPLES SIGNAL_FILE N_FRAMES FILE
 *   pitch SR N_FFT HOP LAG_MIN LAG_MAX EDGES(comma-separated) N_SAMPLES SIGNAL_FILE N_FRAMES FEAT_FILE LAG_FILE
 *   mulaw_enc N X_FILE CODES_FILE
 *   mulaw_dec CODES_FILE X_FILE                              (codes 0..255)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/features.h"
#include "dsp/framer.h"
#include "dsp/mulaw.h"
#include "dsp/pitch.h"
#include "dsp/stft.h"
#include "dsp_test_util.h"

static const char *outdir;
static FILE *manifest;

static void die(const char *what)
{
    fprintf(stderr, "dsp_ref_helper: %s\n", what);
    exit(1);
}

static void write_raw(const char *name, const void *data, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (bytes && fwrite(data, 1, bytes, fp) != bytes) || fclose(fp) != 0)
        die(path);
}

static void do_windows(void)
{
    static const size_t ns[] = { 512, 400, 15 };
    static const dsp_window kinds[] = { DSP_WINDOW_HANN, DSP_WINDOW_SQRT_HANN };
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 2; k++) {
            float *w = malloc(ns[i] * sizeof *w);
            char name[64];
            if (!w || dsp_window_fill(w, ns[i], kinds[k]) != DSP_OK)
                die("window");
            snprintf(name, sizeof name, "win_%s_%zu.f32", dsp_window_name(kinds[k]), ns[i]);
            write_raw(name, w, ns[i] * sizeof *w);
            fprintf(manifest, "window %s %zu %s\n", dsp_window_name(kinds[k]), ns[i], name);
            free(w);
        }
}

static void do_stft(void)
{
    static const size_t ns[] = { 512, 400, 960, 320, 257, 15 };
    const size_t n_frames = 8;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        const size_t n = ns[i], nb = n / 2 + 1;
        dsp_error err = {0};
        dsp_stft_config c = { n, n, DSP_WINDOW_HANN, DSP_WINDOW_NONE };
        dsp_stft *st = NULL;
        dsp_stft_create(&st, &c, &err);
        if (!st)
            die(err.msg);
        float *x = malloc(n_frames * n * sizeof *x), *s = malloc(n_frames * 2 * nb * sizeof *s);
        if (!x || !s)
            die("oom");
        tu_white(x, n_frames * n, 100 + n);
        for (size_t m = 0; m < n_frames; m++)
            dsp_stft_forward(st, s + m * 2 * nb, x + m * n);
        char fin[64], fout[64];
        snprintf(fin, sizeof fin, "stft_%zu_in.f32", n);
        snprintf(fout, sizeof fout, "stft_%zu_out.f32", n);
        write_raw(fin, x, n_frames * n * sizeof *x);
        write_raw(fout, s, n_frames * 2 * nb * sizeof *s);
        fprintf(manifest, "stft %zu %zu %s %s\n", n, n_frames, fin, fout);
        free(x);
        free(s);
        dsp_stft_destroy(st);
    }
}

static void do_istft(void)
{
    static const struct { size_t n, hop; dsp_window a, s; } cs[] = {
        { 512, 256, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN },
        { 512, 128, DSP_WINDOW_HANN, DSP_WINDOW_HANN },
        { 405, 135, DSP_WINDOW_HANN, DSP_WINDOW_RECT },
    };
    const size_t n_frames = 4;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const size_t n = cs[i].n, nb = n / 2 + 1;
        dsp_error err = {0};
        dsp_stft_config c = { n, cs[i].hop, cs[i].a, cs[i].s };
        dsp_stft *st = NULL;
        dsp_stft_create(&st, &c, &err);
        if (!st)
            die(err.msg);
        float *s = malloc(n_frames * 2 * nb * sizeof *s), *y = malloc(n_frames * n * sizeof *y);
        if (!s || !y)
            die("oom");
        tu_white(s, n_frames * 2 * nb, 7 + n);
        for (size_t m = 0; m < n_frames; m++)
            dsp_stft_inverse(st, y + m * n, s + m * 2 * nb);
        char fin[64], fout[64];
        snprintf(fin, sizeof fin, "istft_%zu_%zu_in.f32", n, cs[i].hop);
        snprintf(fout, sizeof fout, "istft_%zu_%zu_out.f32", n, cs[i].hop);
        write_raw(fin, s, n_frames * 2 * nb * sizeof *s);
        write_raw(fout, y, n_frames * n * sizeof *y);
        fprintf(manifest, "istft %zu %zu %s %s %zu %s %s\n", n, cs[i].hop, dsp_window_name(cs[i].a),
                dsp_window_name(cs[i].s), n_frames, fin, fout);
        free(s);
        free(y);
        dsp_stft_destroy(st);
    }
}

static void do_mel(void)
{
    static const struct { dsp_mel_scale scale; dsp_mel_norm norm; double sr; size_t n_fft, n_mels;
                          double fmin, fmax; } cs[] = {
        { DSP_MEL_SLANEY, DSP_MEL_NORM_SLANEY, 16000, 512, 80, 0, 8000 },
        { DSP_MEL_SLANEY, DSP_MEL_NORM_SLANEY, 16000, 400, 80, 0, 8000 },
        { DSP_MEL_SLANEY, DSP_MEL_NORM_SLANEY, 22050, 1024, 128, 30, 11025 },
        { DSP_MEL_SLANEY, DSP_MEL_NORM_NONE, 48000, 960, 40, 50, 20000 },
        { DSP_MEL_HTK, DSP_MEL_NORM_SLANEY, 16000, 512, 64, 20, 7600 },
        { DSP_MEL_HTK, DSP_MEL_NORM_NONE, 8000, 256, 23, 0, 4000 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        dsp_error err = {0};
        dsp_mel_config c = { cs[i].sr, cs[i].n_fft, cs[i].n_mels, cs[i].fmin, cs[i].fmax,
                             cs[i].scale, cs[i].norm };
        dsp_melbank *mb = NULL;
        dsp_melbank_create(&mb, &c, &err);
        if (!mb)
            die(err.msg);
        char name[64];
        snprintf(name, sizeof name, "mel_%zu.f32", i);
        write_raw(name, dsp_melbank_weights(mb),
                  cs[i].n_mels * (cs[i].n_fft / 2 + 1) * sizeof(float));
        fprintf(manifest, "mel %s %s %.17g %zu %zu %.17g %.17g %s\n",
                cs[i].scale == DSP_MEL_HTK ? "htk" : "slaney",
                cs[i].norm == DSP_MEL_NORM_SLANEY ? "slaney" : "none", cs[i].sr, cs[i].n_fft,
                cs[i].n_mels, cs[i].fmin, cs[i].fmax, name);
        dsp_melbank_destroy(mb);
    }
}

/* Log-mel of a linear chirp 50 Hz → 7 kHz over 1 s at 16 kHz (plus noise at
 * −36 dB), framed by
 * the framer (Hann 400/160, analysis only), 80 Slaney mels, floor 1e-10. */
static void do_logmel(void)
{
    const double sr = 16000.0;
    const size_t len = 16000 + 77, n = 400, hop = 160, n_mels = 80;
    const float floor_power = 1e-10f;
    float *x = malloc(len * sizeof *x);
    uint64_t seed = 2024;
    for (size_t i = 0; i < len; i++) {
        double t = (double)i / sr;
        /* plus a faint noise floor so that every mel band carries energy */
        x[i] = (float)(0.5 * sin(6.283185307179586 * (50.0 * t + 0.5 * (7000.0 - 50.0) * t * t)) +
                       0.02 * (tu_uniform(&seed) - 0.5));
    }
    dsp_error err = {0};
    dsp_stft_config sc = { n, hop, DSP_WINDOW_HANN, DSP_WINDOW_NONE };
    dsp_framer_config fc = { n, hop, false, 0 };
    dsp_mel_config mc = { sr, n, n_mels, 0.0, 8000.0, DSP_MEL_SLANEY, DSP_MEL_NORM_SLANEY };
    dsp_stft *st = NULL;
    dsp_stft_create(&st, &sc, &err);
    dsp_framer *f = NULL;
    dsp_framer_create(&f, &fc, &err);
    dsp_melbank *mb = NULL;
    dsp_melbank_create(&mb, &mc, &err);
    float *out = malloc((len / hop + 1) * n_mels * sizeof *out);
    float frame[400], spec[2 * 201], power[201];
    if (!x || !st || !f || !mb || !out)
        die("logmel setup");
    size_t used = 0, n_frames = 0;
    while (used < len) {
        used += dsp_framer_push(f, x + used, len - used, NULL);
        while (dsp_framer_pop_frame(f, frame) == 1) {
            dsp_stft_forward(st, spec, frame);
            dsp_spec_power(power, spec, 201);
            if (dsp_melbank_apply_log(mb, out + n_frames * n_mels, power, floor_power) != DSP_OK)
                die("log-mel");
            n_frames++;
        }
    }
    write_raw("chirp.f32", x, len * sizeof *x);
    write_raw("logmel.f32", out, n_frames * n_mels * sizeof *out);
    fprintf(manifest, "logmel %.17g %zu %zu %zu 0 8000 %.9g %zu chirp.f32 %zu logmel.f32\n", sr, n,
            hop, n_mels, (double)floor_power, len, n_frames);
    free(x);
    free(out);
    dsp_stft_destroy(st);
    dsp_framer_destroy(f);
    dsp_melbank_destroy(mb);
}

/* Pitch features (pitch.h) of 1.5 s at 48 kHz: a voice-like harmonic tone
 * gliding 100 → 260 Hz in noise, then white noise, then digital silence,
 * framed by the framer (sqrt-Hann 960/480), lags 96..768, the bundled
 * model's pitch bands. */
static void do_pitch(void)
{
    const double sr = 48000.0;
    enum { LEN = 72000, N = 960, HOP = 480, NB = N / 2 + 1 };
    static const int edges[] = { 1, 3, 5, 7, 9, 11, 14, 17, 21, 26, 32, 40, 50, 62, 78, 98, 124, 160 };
    const size_t n_edges = sizeof edges / sizeof edges[0];
    float *x = malloc(LEN * sizeof *x);
    uint64_t seed = 77;
    double phase = 0;
    for (size_t i = 0; i < LEN; i++) {
        double t = (double)i / sr, f0 = 100.0 + 160.0 * t / 0.6, v = 0;
        phase += 6.283185307179586 * f0 / sr;
        for (int h = 1; h <= 30; h++) v += sin(h * phase) / h;
        double noise = tu_uniform(&seed) - 0.5;
        x[i] = (float)(i < 28800 ? 0.1 * v + 0.01 * noise : i < 57600 ? 0.2 * noise : 0.0);
    }
    dsp_error err = { 0 };
    dsp_stft_config sc = { N, HOP, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN };
    dsp_framer_config fc = { N, HOP, false, 0 };
    dsp_pitch_config pc = { N, HOP, 96, 768, edges, n_edges, 0, NULL };
    dsp_stft *st = NULL;
    dsp_framer *f = NULL;
    dsp_pitch *p = NULL;
    if (dsp_stft_create(&st, &sc, &err) || dsp_framer_create(&f, &fc, &err) || dsp_pitch_create(&p, &pc, &err))
        die(err.msg);
    size_t cap = LEN / HOP + 1;
    float *feat = malloc(cap * n_edges * sizeof *feat), *lags = malloc(cap * sizeof *lags);
    static float frame[N], spec[2 * NB];
    if (!x || !feat || !lags) die("pitch setup");
    size_t used = 0, n_frames = 0;
    while (used < LEN) {
        used += dsp_framer_push(f, x + used, LEN - used, NULL);
        while (dsp_framer_pop_frame(f, frame) == 1 && n_frames < cap) {
            dsp_stft_forward(st, spec, frame);
            lags[n_frames] = (float)dsp_pitch_frame(p, st, frame, spec, feat + n_frames * n_edges);
            n_frames++;
        }
    }
    write_raw("pitch_signal.f32", x, LEN * sizeof *x);
    write_raw("pitch_feat.f32", feat, n_frames * n_edges * sizeof *feat);
    write_raw("pitch_lag.f32", lags, n_frames * sizeof *lags);
    fprintf(manifest, "pitch %.17g %d %d 96 768 ", sr, N, HOP);
    for (size_t i = 0; i < n_edges; i++) fprintf(manifest, "%s%d", i ? "," : "", edges[i]);
    fprintf(manifest, " %d pitch_signal.f32 %zu pitch_feat.f32 pitch_lag.f32\n", LEN, n_frames);
    free(x);
    free(feat);
    free(lags);
    dsp_pitch_destroy(p);
    dsp_stft_destroy(st);
    dsp_framer_destroy(f);
}

static void do_mulaw(void)
{
    enum { N = 40000 };
    static float x[N], dec[256];
    static uint8_t c[N], all[256];
    uint64_t s = 99;
    for (size_t i = 0; i < N; i++)
        x[i] = i < N / 2 ? (float)(-1.2 + 2.4 * (double)i / (N / 2 - 1))
                         : (float)(2.0 * tu_uniform(&s) - 1.0) * (i % 3 ? 1.0f : 0.01f);
    dsp_mulaw_encode(c, x, N);
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    dsp_mulaw_decode(dec, all, 256);
    write_raw("mulaw_x.f32", x, sizeof x);
    write_raw("mulaw_codes.u8", c, sizeof c);
    write_raw("mulaw_all.u8", all, sizeof all);
    write_raw("mulaw_dec.f32", dec, sizeof dec);
    fprintf(manifest, "mulaw_enc %d mulaw_x.f32 mulaw_codes.u8\n", N);
    fprintf(manifest, "mulaw_dec mulaw_all.u8 mulaw_dec.f32\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dsp_ref_helper OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.txt", outdir);
    manifest = fopen(path, "w");
    if (!manifest)
        die(path);
    do_windows();
    do_stft();
    do_istft();
    do_mel();
    do_logmel();
    do_pitch();
    do_mulaw();
    if (fclose(manifest) != 0)
        die("manifest");
    return 0;
}
