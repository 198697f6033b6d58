/* SPDX-License-Identifier: MIT */
/* The per-stream pipeline (daemon/src/stream.c) end to end with a real model:
 * exact output length, alignment and reconstruction through an all-pass
 * model, chunk-size invariance (bit-identical), resampled streams, non-finite
 * input, and front-end metadata errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend.h"
#include "stream.h"

static const char *model_dir;
static ssmd_stream_stats last_stats; /* of the last run() */

typedef struct fixture {
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *mb;
    ssm_runner *runner;
} fixture;

static void fixture_open(fixture *f, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", model_dir, name);
    ssm_error me = { 0 };
    if (ssm_model_load(path, NULL, &f->model, &me) != SSM_OK) fail_msg("%s", me.msg);
    char err[512];
    if (ssmd_frontend_from_model(&f->fe, f->model, err, sizeof err) != 0) fail_msg("%s", err);
    f->mb = NULL;
    if (f->fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = f->fe.sample_rate_hz, .n_fft = (size_t)f->fe.n_fft,
                              .n_mels = (size_t)f->fe.n_mels, .scale = DSP_MEL_SLANEY,
                              .norm = DSP_MEL_NORM_SLANEY };
        dsp_error de = { 0 };
        dsp_melbank_create(&f->mb, &mc, &de);
        assert_non_null(f->mb);
    }
    assert_int_equal(ssm_runner_create(f->model, 1, 1, 0, &f->runner, &me), SSM_OK);
}

static void fixture_close(fixture *f)
{
    ssm_runner_destroy(f->runner);
    dsp_melbank_destroy(f->mb);
    ssm_model_free(f->model);
}

/* Runs x[0..n) through a fresh aligned stream in chunks of `chunk` samples
 * (0 = whole) and returns the output (caller frees); *n_out gets its length. */
static float *run(fixture *f, int rate_hz, const float *x, size_t n, size_t chunk, size_t *n_out,
                  uint64_t *nonfinite)
{
    ssmd_stream_config sc = { .in_rate_hz = rate_hz, .align_output = true,
                              .quality = DSP_RESAMPLE_BEST };
    char err[512];
    ssmd_stream *s = ssmd_stream_create(f->model, &f->fe, f->mb, &sc, err, sizeof err);
    if (!s) fail_msg("%s", err);
    size_t cap = n + 4096, len = 0;
    float *y = malloc(cap * sizeof(float));
    float *row = malloc((size_t)f->fe.n_features * sizeof(float));
    float *mask = malloc((size_t)f->fe.n_bins * sizeof(float));
    ssm_state *st = ssmd_stream_state(s);
    ssm_outputs out = { .mask = mask };
    if (chunk == 0) chunk = n ? n : 1;
    size_t pos = 0;
    bool finished = false;
    for (;;) {
        if (pos < n) {
            size_t c = n - pos < chunk ? n - pos : chunk;
            pos += ssmd_stream_push(s, x + pos, c);
        } else if (!finished) {
            ssmd_stream_finish(s);
            finished = true;
        }
        while (ssmd_stream_prepare(s, row)) {
            int rc = ssm_step(f->runner, &st, 1, row, NULL, &out, NULL);
            assert_int_equal(rc, SSM_OK);
            ssmd_stream_complete(s, mask);
        }
        size_t got;
        while ((got = ssmd_stream_pop(s, y + len, cap - len)) > 0) len += got;
        assert_true(len < cap);
        if (finished && ssmd_stream_done(s)) break;
    }
    ssmd_stream_stats stats;
    ssmd_stream_stats_get(s, &stats);
    if (nonfinite) *nonfinite = stats.nonfinite_in;
    last_stats = stats;
    assert_int_equal(stats.samples_in, n);
    assert_int_equal(stats.samples_out, len);
    ssmd_stream_destroy(s);
    free(row);
    free(mask);
    *n_out = len;
    return y;
}

/* speech-like test signal: harmonics of a gliding pitch with an envelope,
 * band-limited well below 8 kHz so a 16 kHz model rate keeps all of it */
static float *signal(size_t n, int rate_hz, unsigned seed)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    double ph = 0;
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate_hz;
        double f0 = 120 + 60 * sin(2 * M_PI * 0.7 * t);
        ph += 2 * M_PI * f0 / rate_hz;
        double v = 0;
        for (int k = 1; k <= 12; k++) v += sin(k * ph) / k;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 2.3 * t);
        x[i] = (float)(0.2 * env * v + 1e-3 * ((double)rand() / RAND_MAX - 0.5));
    }
    return x;
}

/* Largest |out − in| / peak of an all-pass model's stream at 16 kHz over the
 * lengths lens[0..n_lens), each output checked to have the input's length. */
static double allpass_worst_16k(fixture *f, const size_t *lens, size_t n_lens, unsigned seed)
{
    double worst = 0;
    for (size_t li = 0; li < n_lens; li++) {
        size_t n = lens[li], n_out;
        float *x = signal(n, 16000, seed);
        float *y = run(f, 16000, x, n, 333, &n_out, NULL);
        assert_int_equal(n_out, n);
        double peak = 0, err = 0;
        for (size_t i = 0; i < n; i++) {
            peak = fmax(peak, fabs(x[i]));
            err = fmax(err, fabs((double)x[i] - y[i]));
        }
        if (peak > 0) worst = fmax(worst, err / peak);
        free(x);
        free(y);
    }
    return worst;
}

/* An all-pass model's stream at rate_hz (resampled to the model's 16 kHz and
 * back): the output has the input's length, and its SNR against the input over
 * the middle (filter edges excluded) is ≥ 50 dB at lag 0 and lower at ±1. */
static void allpass_resampled_check(fixture *f, int rate_hz, unsigned seed, const char *what)
{
    size_t n = (size_t)rate_hz * 2 + 17, n_out;
    float *x = signal(n, rate_hz, seed);
    float *y = run(f, rate_hz, x, n, 4096, &n_out, NULL);
    assert_int_equal(n_out, n);
    double snr[3];
    for (int lag = -1; lag <= 1; lag++) {
        double se = 0, sx = 0;
        for (size_t i = n / 10; i < n - n / 10; i++) {
            double e = (double)x[i] - y[(size_t)((long)i + lag)];
            se += e * e;
            sx += (double)x[i] * x[i];
        }
        snr[lag + 1] = 10 * log10(sx / se);
    }
    printf("%s %5d Hz -> 16 kHz -> back: SNR %.1f dB at lag 0 (lag -1: %.1f, +1: %.1f)\n", what, rate_hz,
           snr[1], snr[0], snr[2]);
    assert_true(snr[1] >= 50.0);
    assert_true(snr[1] > snr[0] && snr[1] > snr[2]);
    free(x);
    free(y);
}

static void test_allpass_reconstructs_16k(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "allpass.safetensors");
    const size_t lens[] = { 0, 1, 100, 255, 256, 257, 16000, 40123 };
    double worst = allpass_worst_16k(&f, lens, sizeof lens / sizeof lens[0], 1);
    printf("all-pass 16 kHz: worst |out - in| / peak = %.2e over 8 lengths (tolerance 1e-5)\n", worst);
    assert_true(worst <= 1e-5);
    fixture_close(&f);
}

static void test_allpass_resampled(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "allpass.safetensors");
    const int rates[] = { 8000, 22050, 44100, 48000 };
    for (size_t r = 0; r < 4; r++) allpass_resampled_check(&f, rates[r], 2, "all-pass");
    fixture_close(&f);
}

static void test_chunk_invariance(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "random.safetensors");
    const int rates[] = { 16000, 44100 };
    const size_t chunks[] = { 1, 7, 160, 4096, 0 };
    for (size_t r = 0; r < 2; r++) {
        size_t n = (size_t)rates[r] / 2 + 333, n_ref;
        float *x = signal(n, rates[r], 3);
        float *ref = run(&f, rates[r], x, n, chunks[0], &n_ref, NULL);
        assert_int_equal(n_ref, n);
        for (size_t c = 1; c < 5; c++) {
            size_t n_out;
            float *y = run(&f, rates[r], x, n, chunks[c], &n_out, NULL);
            assert_int_equal(n_out, n_ref);
            if (memcmp(y, ref, n * sizeof(float)) != 0)
                fail_msg("%d Hz: chunk %zu differs from chunk 1", rates[r], chunks[c]);
            free(y);
        }
        printf("chunk invariance at %d Hz: chunks 1, 7, 160, 4096, whole bit-identical (%zu samples)\n",
               rates[r], n);
        free(x);
        free(ref);
    }
    fixture_close(&f);
}

static void test_nonfinite_input(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "random.safetensors");
    const int rates[] = { 16000, 48000 };
    for (size_t r = 0; r < 2; r++) {
        size_t n = 20000, n_out;
        float *x = signal(n, rates[r], 4);
        x[10] = NAN;
        x[5000] = INFINITY;
        x[5001] = -INFINITY;
        x[7000] = 1e38f; /* finite, but would overflow the STFT's power */
        x[7001] = -3e38f;
        uint64_t nonfinite = 0;
        float *y = run(&f, rates[r], x, n, 512, &n_out, &nonfinite);
        assert_int_equal(nonfinite, 3);
        assert_int_equal(last_stats.clipped_in, 2);
        for (size_t i = 0; i < n_out; i++)
            if (!isfinite(y[i])) fail_msg("output %zu is not finite", i);
        free(x);
        free(y);
    }
    fixture_close(&f);
}

/* A model with lookahead 2 reconstructs through an all-pass mask like one
 * without: the same length, aligned, at every length (the delay, the
 * finish's padding and the alignment all agree). */
static void test_allpass_lookahead(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "allpass_la2.safetensors");
    assert_int_equal(f.fe.lookahead_frames, 2);
    assert_int_equal(f.fe.latency_samples, f.fe.n_fft - f.fe.hop_samples + 2 * f.fe.hop_samples);
    const size_t lens[] = { 0, 1, 100, 256, 257, 16000, 40123 };
    double worst = allpass_worst_16k(&f, lens, sizeof lens / sizeof lens[0], 11);
    printf("all-pass, lookahead 2: worst |out - in| / peak = %.2e over 7 lengths (tolerance 1e-5)\n", worst);
    assert_true(worst <= 1e-5);
    /* resampled (44.1 kHz in and out): aligned at lag 0 as without lookahead */
    allpass_resampled_check(&f, 44100, 13, "all-pass, lookahead 2,");
    fixture_close(&f);
}

/* Lookahead d masks frame m with the row of step m + d.  Reference: the
 * same weights without lookahead, the input extended by d hops of zeros (the
 * frames the finish pads), d + 1 frames prepared at a time, and the oldest
 * completed with the newest's row; the first n samples must agree bit for
 * bit. */
static void test_lookahead_masks_the_earlier_frame(void **state)
{
    (void)state;
    fixture la, ref;
    fixture_open(&la, "random_la2.safetensors");
    fixture_open(&ref, "random.safetensors");
    const int d = 2, rate = 16000;
    const size_t n = 12345, hop = (size_t)ref.fe.hop_samples, nb = (size_t)ref.fe.n_bins;
    float *x = signal(n, rate, 12);
    size_t n_la;
    float *y = run(&la, rate, x, n, 160, &n_la, NULL);
    assert_int_equal(n_la, n);

    size_t ne = n + (size_t)d * hop, len = 0, pos = 0;
    float *xe = calloc(ne, sizeof(float)), *yr = calloc(ne + 4096, sizeof(float));
    memcpy(xe, x, n * sizeof(float));
    ssmd_stream_config sc = { .in_rate_hz = rate, .align_output = true, .quality = DSP_RESAMPLE_BEST,
                              .max_prepared = d + 1 };
    char err[512];
    ssmd_stream *s = ssmd_stream_create(ref.model, &ref.fe, ref.mb, &sc, err, sizeof err);
    if (!s) fail_msg("%s", err);
    float row[512], masks[3][512];
    ssm_state *st = ssmd_stream_state(s);
    int pending = 0;
    unsigned long stepped = 0;
    bool finished = false;
    for (;;) {
        if (pos < ne) pos += ssmd_stream_push(s, xe + pos, ne - pos < 97 ? ne - pos : 97);
        else if (!finished) ssmd_stream_finish(s), finished = true;
        bool any = false;
        while (ssmd_stream_prepare(s, row)) {
            any = true;
            ssm_outputs out = { .mask = masks[stepped % 3] };
            assert_int_equal(ssm_step(ref.runner, &st, 1, row, NULL, &out, NULL), SSM_OK);
            stepped++;
            if (++pending == d + 1) {
                ssmd_stream_complete(s, masks[(stepped - 1) % 3]);
                pending--;
                size_t got;
                while ((got = ssmd_stream_pop(s, yr + len, ne + 4096 - len)) > 0) len += got;
            }
        }
        if (finished && !any) { /* the last d frames lie in the padding: any row will do */
            while (pending-- > 0) {
                ssmd_stream_complete(s, NULL);
                size_t got;
                while ((got = ssmd_stream_pop(s, yr + len, ne + 4096 - len)) > 0) len += got;
            }
            pending = 0;
            size_t got;
            while ((got = ssmd_stream_pop(s, yr + len, ne + 4096 - len)) > 0) len += got;
            if (ssmd_stream_done(s)) break;
        }
    }
    assert_int_equal(len, ne);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&y[i], &yr[i], sizeof(float)) != 0;
    (void)nb;
    /* and the rows matter: without the lookahead the output is another one */
    size_t n0;
    float *y0 = run(&ref, rate, x, n, 160, &n0, NULL);
    size_t differ0 = 0;
    for (size_t i = 0; i < n; i++) differ0 += memcmp(&y0[i], &yr[i], sizeof(float)) != 0;
    printf("lookahead 2: %zu of %zu samples differ from the reference (row m + 2 on frame m); "
           "the same model without lookahead: %zu differ\n", differ, n, differ0);
    assert_int_equal(differ, 0);
    assert_true(differ0 > n / 2);
    ssmd_stream_destroy(s);
    free(x); free(xe); free(y); free(yr); free(y0);
    fixture_close(&la);
    fixture_close(&ref);
}

static void expect_frontend_error(const char *name, const char *fragment)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", model_dir, name);
    ssm_model *m = NULL;
    ssm_error me = { 0 };
    if (ssm_model_load(path, NULL, &m, &me) != SSM_OK) fail_msg("%s", me.msg);
    ssmd_frontend fe;
    assert_int_equal(ssmd_frontend_from_model(&fe, m, err, sizeof err), -1);
    if (!strstr(err, fragment)) fail_msg("%s: error '%s' lacks '%s'", name, err, fragment);
    printf("%s: %s\n", name, err);
    ssm_model_free(m);
}

static void test_frontend_errors(void **state)
{
    (void)state;
    expect_frontend_error("no_nfft.safetensors", "frontend.n_fft: missing");
    expect_frontend_error("bad_window.safetensors", "frontend.window: expected sqrt_hann or hann, got 'kaiser'");
    expect_frontend_error("mels_mismatch.safetensors", "n_features: the model takes 64");
    expect_frontend_error("hop_gt_nfft.safetensors", "frontend.hop: 1024 is larger");
    expect_frontend_error("bad_features.safetensors",
                          "frontend.features: expected log_power, log_power_pitch or log_mel, got 'mfcc'");
    expect_frontend_error("pitch_no_edges.safetensors", "frontend.pitch_band_edges: missing");
    expect_frontend_error("pitch_bad_edges.safetensors",
                          "frontend.pitch_band_edges: expected up to 65 comma-separated bin indices in [0, 257], "
                          "got '1,3,x'");
    expect_frontend_error("pitch_spaced_edges.safetensors", /* strict integers, as the other keys */
                          "frontend.pitch_band_edges: expected up to 65 comma-separated bin indices in [0, 257], "
                          "got '1, 3,+6'");
    expect_frontend_error("pitch_bad_lags.safetensors",
                          "frontend.features log_power_pitch: pitch: lags 33..320 must be multiples of 4");
    expect_frontend_error("pitch_mismatch.safetensors",
                          "n_features: the model takes 264 features per frame but frontend.n_fft and "
                          "pitch_band_edges gives 260");
    expect_frontend_error("bad_lookahead.safetensors",
                          "frontend.lookahead_frames: expected an integer in [0, 8], got '9'");
    /* refused at load: a serving daemon used to start and fail every stream, and a window
     * length other than n_fft used to be ignored (another function than the model's) */
    expect_frontend_error("hop_no_ola.safetensors", "frontend.n_fft 512, hop 300, window sqrt_hann: stft: ");
    expect_frontend_error("short_window.safetensors", "frontend.win_length: 400, but the daemon's analysis and "
                          "synthesis windows span the whole frame (frontend.n_fft 512)");
}

/* Steps every frame ready and pops every output sample into y (at *len). */
static void step_all(fixture *f, ssmd_stream *s, float *y, size_t *len, size_t cap)
{
    float row[512], mask[512];
    assert_true((size_t)f->fe.n_features <= 512 && (size_t)f->fe.n_bins <= 512);
    ssm_state *st = ssmd_stream_state(s);
    ssm_outputs out = { .mask = mask };
    while (ssmd_stream_prepare(s, row)) {
        assert_int_equal(ssm_step(f->runner, &st, 1, row, NULL, &out, NULL), SSM_OK);
        ssmd_stream_complete(s, mask);
        size_t got;
        while ((got = ssmd_stream_pop(s, y + *len, cap - *len)) > 0) *len += got;
    }
}

/* Pushes x[pos … n) into s, finishes it and collects everything it outputs
 * after y[0 … *len) (cap samples in all). */
static void push_rest_finish(fixture *f, ssmd_stream *s, const float *x, size_t pos, size_t n, float *y, size_t *len,
                             size_t cap)
{
    while (pos < n) {
        pos += ssmd_stream_push(s, x + pos, n - pos);
        step_all(f, s, y, len, cap);
    }
    ssmd_stream_finish(s);
    while (!ssmd_stream_done(s)) {
        step_all(f, s, y, len, cap);
        size_t got;
        while ((got = ssmd_stream_pop(s, y + *len, cap - *len)) > 0) *len += got;
    }
}

/* Two streams sharing one ssmd_stream_shared (the daemon's layout), their
 * frames interleaved (both prepared, then both stepped and completed), give
 * each the output it has alone with its own: nothing of one stream's frame
 * stays in the shared STFT and scratch for the other. */
static void shared_case(const char *model_name)
{
    fixture f;
    fixture_open(&f, model_name);
    const int rate = 16000;
    const size_t n = 2 * (size_t)rate + 555;
    float *x[2] = { signal(n, rate, 5), signal(n, rate, 9) };
    size_t n_ref[2];
    float *ref[2] = { run(&f, rate, x[0], n, 0, &n_ref[0], NULL), run(&f, rate, x[1], n, 0, &n_ref[1], NULL) };
    char err[512];
    ssmd_stream_shared *sh = ssmd_stream_shared_create(&f.fe, err, sizeof err);
    if (!sh) fail_msg("%s", err);
    ssmd_stream_config sc = { .in_rate_hz = rate, .align_output = true, .quality = DSP_RESAMPLE_BEST, .shared = sh };
    ssmd_stream *s[2];
    float *y[2], row[2][512], mask[2][512];
    size_t len[2] = { 0, 0 }, pos[2] = { 0, 0 }, cap = n + 4096;
    assert_true((size_t)f.fe.n_features <= 512 && (size_t)f.fe.n_bins <= 512);
    for (int k = 0; k < 2; k++) {
        s[k] = ssmd_stream_create(f.model, &f.fe, f.mb, &sc, err, sizeof err);
        if (!s[k]) fail_msg("%s", err);
        y[k] = calloc(cap, sizeof(float));
    }
    bool finished = false;
    while (!(finished && ssmd_stream_done(s[0]) && ssmd_stream_done(s[1]))) {
        for (int k = 0; k < 2; k++) {
            const size_t chunk = k ? 131 : 97;
            if (pos[k] < n) pos[k] += ssmd_stream_push(s[k], x[k] + pos[k], n - pos[k] < chunk ? n - pos[k] : chunk);
        }
        if (!finished && pos[0] == n && pos[1] == n) {
            ssmd_stream_finish(s[0]);
            ssmd_stream_finish(s[1]);
            finished = true;
        }
        for (;;) {
            int ready[2];
            for (int k = 0; k < 2; k++) ready[k] = ssmd_stream_prepare(s[k], row[k]);
            if (!ready[0] && !ready[1]) break;
            for (int k = 0; k < 2; k++) {
                if (!ready[k]) continue;
                ssm_state *st = ssmd_stream_state(s[k]);
                ssm_outputs out = { .mask = mask[k] };
                assert_int_equal(ssm_step(f.runner, &st, 1, row[k], NULL, &out, NULL), SSM_OK);
            }
            for (int k = 0; k < 2; k++)
                if (ready[k]) ssmd_stream_complete(s[k], mask[k]);
            for (int k = 0; k < 2; k++) {
                size_t got;
                while ((got = ssmd_stream_pop(s[k], y[k] + len[k], cap - len[k])) > 0) len[k] += got;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(len[k], n_ref[k]);
        if (memcmp(y[k], ref[k], n * sizeof(float)) != 0)
            fail_msg("%s: stream %d's output with a shared STFT differs from its own", model_name, k);
        printf("%s: stream %d, %zu samples through a shared STFT, frames interleaved: bit-identical\n", model_name, k,
               len[k]);
        ssmd_stream_destroy(s[k]);
        free(y[k]); free(ref[k]); free(x[k]);
    }
    ssmd_stream_shared_destroy(sh);
    fixture_close(&f);
}

static void test_shared_interleaved(void **state)
{
    (void)state;
    shared_case("random.safetensors");
    shared_case("pitch.safetensors");
}

/* A stream saved between two frames and loaded into a fresh stream, which is
 * pushed the input from the save's samples_in on, continues bit for bit:
 * its output from the save's samples_out on equals the uninterrupted run's
 * (the checkpoints of docs/cluster.md rest on this).  A save is refused by a
 * stream of another model or rate, truncated or with its counters damaged,
 * and a running stream that refuses one goes on as if it had not been tried;
 * a resampling stream has no save. */
static void save_load_case(const char *model_name)
{
    fixture f;
    fixture_open(&f, model_name);
    const int rate = 16000;
    size_t n = 3 * (size_t)rate + 777, n_ref;
    float *x = signal(n, rate, 5);
    float *ref = run(&f, rate, x, n, 160, &n_ref, NULL);
    ssmd_stream_config sc = { .in_rate_hz = rate, .align_output = true, .quality = DSP_RESAMPLE_BEST };
    char err[512];
    const size_t cuts[] = { 0, 100, 256, 10000, 16000 + 333 };
    size_t save_bytes = 0;
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        ssmd_stream *a = ssmd_stream_create(f.model, &f.fe, f.mb, &sc, err, sizeof err);
        assert_non_null(a);
        float *y = calloc(n + 4096, sizeof(float));
        size_t len = 0, pos = 0;
        while (pos < cuts[c]) { /* chunks of 97: the save falls wherever the frames do */
            size_t k = cuts[c] - pos < 97 ? cuts[c] - pos : 97;
            pos += ssmd_stream_push(a, x + pos, k);
            step_all(&f, a, y, &len, n + 4096);
        }
        assert_true(ssmd_stream_savable(a));
        save_bytes = ssmd_stream_save_bytes(a);
        void *buf = malloc(save_bytes);
        assert_int_equal(ssmd_stream_save(a, buf, save_bytes), (long)save_bytes);
        ssmd_stream_stats sa;
        ssmd_stream_stats_get(a, &sa);
        assert_int_equal(sa.samples_in, pos);
        assert_int_equal(sa.samples_out, len);
        ssmd_stream_destroy(a);

        ssmd_stream *b = ssmd_stream_create(f.model, &f.fe, f.mb, &sc, err, sizeof err);
        if (ssmd_stream_load(b, buf, save_bytes, err, sizeof err) != 0) fail_msg("%s", err);
        size_t len_b = len;
        push_rest_finish(&f, b, x, sa.samples_in, n, y, &len_b, n + 4096);
        assert_int_equal(len_b, n_ref);
        if (memcmp(y, ref, n * sizeof(float)) != 0) fail_msg("cut at %zu: the loaded stream's output differs", cuts[c]);
        printf("%s: saved after %zu input samples (output %zu), loaded, continued: %zu samples bit-identical\n",
               model_name, (size_t)sa.samples_in, (size_t)sa.samples_out, n);
        ssmd_stream_destroy(b);

        if (c == sizeof cuts / sizeof cuts[0] - 1) {
            /* refusals: truncated, another rate, another model, damaged counters; the
             * truncated and damaged saves go to a stream halfway through the input,
             * which must go on exactly as if they had not been tried */
            ssmd_stream *d = ssmd_stream_create(f.model, &f.fe, f.mb, &sc, err, sizeof err);
            float *yd = calloc(n + 4096, sizeof(float));
            size_t len_d = 0;
            for (pos = 0; pos < n / 2;) {
                pos += ssmd_stream_push(d, x + pos, n / 2 - pos < 97 ? n / 2 - pos : 97);
                step_all(&f, d, yd, &len_d, n + 4096);
            }
            assert_int_equal(ssmd_stream_load(d, buf, save_bytes - 1, err, sizeof err), -1);
            printf("truncated: %s\n", err);
            uint8_t *bad = malloc(save_bytes);
            memcpy(bad, buf, save_bytes);
            bad[32] ^= 1; /* samples_in */
            assert_int_equal(ssmd_stream_load(d, bad, save_bytes, err, sizeof err), -1);
            printf("damaged counter: %s\n", err);
            free(bad);
            push_rest_finish(&f, d, x, pos, n, yd, &len_d, n + 4096);
            assert_int_equal(len_d, n_ref);
            if (memcmp(yd, ref, n * sizeof(float)) != 0) fail_msg("a refused save changed the running stream's output");
            free(yd);
            ssmd_stream_destroy(d);
            ssmd_stream_config s48 = sc;
            s48.in_rate_hz = 48000;
            d = ssmd_stream_create(f.model, &f.fe, f.mb, &s48, err, sizeof err);
            assert_int_equal(ssmd_stream_save_bytes(d), 0);
            assert_false(ssmd_stream_savable(d));
            assert_int_equal(ssmd_stream_load(d, buf, save_bytes, err, sizeof err), -1);
            printf("48 kHz stream: %s\n", err);
            ssmd_stream_destroy(d);
            fixture g;
            fixture_open(&g, "allpass.safetensors");
            d = ssmd_stream_create(g.model, &g.fe, g.mb, &sc, err, sizeof err);
            assert_int_equal(ssmd_stream_load(d, buf, save_bytes, err, sizeof err), -1);
            printf("another model: %s\n", err);
            ssmd_stream_destroy(d);
            fixture_close(&g);
        }
        free(buf);
        free(y);
    }
    printf("%s: stream save %zu bytes (model state %zu)\n", model_name, save_bytes, ssm_state_bytes(f.model));
    free(x);
    free(ref);
    fixture_close(&f);
}

static void test_save_load_continues(void **state)
{
    (void)state;
    save_load_case("random.safetensors");
}

/* A log_power_pitch model: the pitch history is part of the save. */
static void test_save_load_continues_pitch(void **state)
{
    (void)state;
    save_load_case("pitch.safetensors");
}

/* A model with lookahead: the delayed spectra are part of the save. */
static void test_save_load_continues_lookahead(void **state)
{
    (void)state;
    save_load_case("random_la2.safetensors");
    save_load_case("pitch_la1.safetensors");
    /* a save of the lookahead model does not load into the same weights without lookahead */
    fixture la, ref;
    fixture_open(&la, "random_la2.safetensors");
    fixture_open(&ref, "random.safetensors");
    ssmd_stream_config sc = { .in_rate_hz = 16000, .align_output = true, .quality = DSP_RESAMPLE_BEST };
    char err[512];
    ssmd_stream *a = ssmd_stream_create(la.model, &la.fe, la.mb, &sc, err, sizeof err);
    ssmd_stream *b = ssmd_stream_create(ref.model, &ref.fe, ref.mb, &sc, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    size_t bytes = ssmd_stream_save_bytes(a);
    void *buf = malloc(bytes);
    assert_int_equal(ssmd_stream_save(a, buf, bytes), (long)bytes);
    assert_int_equal(ssmd_stream_load(b, buf, bytes, err, sizeof err), -1);
    printf("lookahead 2 into 0: %s\n", err);
    assert_non_null(strstr(err, "lookahead 2 frames; this one has 0"));
    free(buf);
    ssmd_stream_destroy(a);
    ssmd_stream_destroy(b);
    fixture_close(&la);
    fixture_close(&ref);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    model_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allpass_reconstructs_16k),
        cmocka_unit_test(test_allpass_resampled),
        cmocka_unit_test(test_chunk_invariance),
        cmocka_unit_test(test_nonfinite_input),
        cmocka_unit_test(test_frontend_errors),
        cmocka_unit_test(test_save_load_continues),
        cmocka_unit_test(test_save_load_continues_pitch),
        cmocka_unit_test(test_allpass_lookahead),
        cmocka_unit_test(test_lookahead_masks_the_earlier_frame),
        cmocka_unit_test(test_save_load_continues_lookahead),
        cmocka_unit_test(test_shared_interleaved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
