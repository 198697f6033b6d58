/* SPDX-License-Identifier: MIT */
/* Tests of dsp/resample.h: round-trip SNR and sample-accurate alignment,
 * chunk-size invariance, exact output length, argument validation, the
 * 44.1 <-> 48 kHz quality (SI-SDR of tones and a sweep, aliasing of tones
 * above the output Nyquist) and that process/flush never allocate.
 *
 * Test signals are band-limited white noise: Gaussian noise, forward FFT
 * (FFTW single precision, rounding ~-140 dB), every bin at or above the cutoff set to zero,
 * inverse FFT.  The cutoff is 0.3 x the lower rate (60 % of the lower
 * Nyquist), inside the pass band of every sinc quality (FASTEST keeps 80 %),
 * so the round trip should only add the converters' stop-band leakage and
 * pass-band ripple (soxr's recipes reject 96 to 169 dB).  The
 * brick-wall makes the signal periodic, but the resampler sees it start and
 * stop abruptly, so SNR is measured away from the edges (100 ms each side,
 * several times the longest filter: best quality at 16 kHz is ~143 taps
 * each side, 9 ms).
 *
 * Set RESAMPLE_LONG_SECONDS to shorten the one-hour length test when
 * experimenting (the registered test always runs the full hour).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/resample.h"

/* Allocation counter: the test binary interposes malloc/calloc/realloc
 * (glibc's __libc_* underneath) and counts calls while `alloc_armed` is set,
 * to prove that process and flush do not allocate.  Not under sanitizers,
 * which own malloc. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define NO_ALLOC_COUNT 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || !defined(__GLIBC__)
#define NO_ALLOC_COUNT 1
#endif
static int alloc_armed;
static long alloc_count;
#ifndef NO_ALLOC_COUNT
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void *malloc(size_t n) { alloc_count += alloc_armed; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { alloc_count += alloc_armed; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { alloc_count += alloc_armed; return __libc_realloc(p, n); }
#endif

static const int other_rates[] = { 8000, 22050, 44100, 48000, 96000 };
#define MODEL_RATE 16000

/* xorshift64* + Box-Muller: deterministic Gaussian noise. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rng_uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static double rng_gauss(void)
{
    double u = rng_uniform(), v = rng_uniform();
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* n samples of noise at rate_hz with nothing at or above cutoff_hz, RMS ~0.1. */
static float *bandlimited_noise(size_t n, double rate_hz, double cutoff_hz)
{
    float *x = fftwf_malloc(n * sizeof *x);
    fftwf_complex *X = fftwf_malloc((n / 2 + 1) * sizeof *X);
    assert_non_null(x);
    assert_non_null(X);
    fftwf_plan fwd = fftwf_plan_dft_r2c_1d((int)n, x, X, FFTW_ESTIMATE);
    fftwf_plan inv = fftwf_plan_dft_c2r_1d((int)n, X, x, FFTW_ESTIMATE);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_gauss();
    fftwf_execute(fwd);
    for (size_t k = 0; k <= n / 2; k++)
        if ((double)k * rate_hz / (double)n >= cutoff_hz)
            X[k][0] = X[k][1] = 0.0f;
    fftwf_execute(inv);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double g = 0.1 / sqrt(ss / (double)n);
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(x[i] * g);
    fftwf_destroy_plan(fwd);
    fftwf_destroy_plan(inv);
    fftwf_free(x);
    fftwf_free(X);
    return out;
}

/* Resamples n frames of `in` through r, in chunks whose sizes cycle through
 * `chunks` (0-terminated; NULL = whole signal in one call), flushes, and
 * returns the output (caller frees) and its frame count in *n_out.  The
 * output capacity offered per call is dsp_resampler_max_out_frames(). */
static float *run_resampler(dsp_resampler *r, int channels, const float *in, size_t n,
                            const size_t *chunks, size_t *n_out)
{
    size_t ch = (size_t)channels;
    size_t cap = dsp_resampler_max_out_frames(r, n) + 16;
    float *out = malloc(cap * ch * sizeof *out);
    assert_non_null(out);
    size_t pos = 0, made = 0, ci = 0;
    while (pos < n) {
        size_t want = chunks ? chunks[ci] : n - pos;
        if (chunks && chunks[++ci] == 0)
            ci = 0;
        if (want > n - pos)
            want = n - pos;
        size_t fed = 0;
        while (fed < want) {
            size_t used = 0, got = 0;
            size_t room = dsp_resampler_max_out_frames(r, want - fed);
            assert_true(made + room <= cap);
            assert_int_equal(dsp_resampler_process(r, in + (pos + fed) * ch, want - fed, &used,
                                                   out + made * ch, room, &got), DSP_OK);
            assert_true(used > 0 || got > 0);
            fed += used;
            made += got;
        }
        pos += want;
    }
    for (;;) {
        size_t got = 0, room = cap - made < 333 ? cap - made : 333; /* small on purpose */
        assert_int_equal(dsp_resampler_flush(r, out + made * ch, room, &got), DSP_OK);
        made += got;
        if (got < room)
            break;
    }
    *n_out = made;
    return out;
}

/* SNR in dB of y (shifted by lag) against x over [from, to). */
static double snr_db(const float *x, const float *y, size_t n_y, size_t from, size_t to, long lag)
{
    double s = 0, e = 0;
    for (size_t i = from; i < to; i++) {
        long j = (long)i + lag;
        double yv = (j >= 0 && (size_t)j < n_y) ? y[j] : 0.0;
        double d = yv - x[i];
        s += (double)x[i] * x[i];
        e += d * d;
    }
    return 10.0 * log10(s / (e > 0 ? e : 1e-300));
}

static void round_trip(dsp_resample_quality q, const char *qname)
{
    double worst = INFINITY;
    for (size_t ri = 0; ri < sizeof other_rates / sizeof other_rates[0]; ri++) {
        int hi = other_rates[ri] > MODEL_RATE ? other_rates[ri] : MODEL_RATE;
        int lo = other_rates[ri] > MODEL_RATE ? MODEL_RATE : other_rates[ri];
        size_t n = (size_t)hi * 3 / 2; /* 1.5 s */
        float *x = bandlimited_noise(n, hi, 0.3 * lo);
        dsp_resampler *down = NULL, *up = NULL;
        assert_int_equal(dsp_resampler_create(&down, hi, lo, 1, q, NULL), DSP_OK);
        assert_int_equal(dsp_resampler_create(&up, lo, hi, 1, q, NULL), DSP_OK);
        size_t n_mid = 0, n_back = 0;
        float *mid = run_resampler(down, 1, x, n, NULL, &n_mid);
        float *back = run_resampler(up, 1, mid, n_mid, NULL, &n_back);
        assert_int_equal(n_mid, dsp_resample_output_frames(n, hi, lo));
        assert_int_equal(n_back, dsp_resample_output_frames(n_mid, lo, hi));
        size_t edge = (size_t)hi / 10;
        size_t to = (n < n_back ? n : n_back) - edge;
        double s0 = snr_db(x, back, n_back, edge, to, 0);
        double sm = snr_db(x, back, n_back, edge, to, -1);
        double sp = snr_db(x, back, n_back, edge, to, +1);
        printf("%s %6d -> %5d -> %6d: %zu -> %zu -> %zu frames, delay %d/%d, "
               "SNR lag0 %.1f dB, lag-1 %.1f dB, lag+1 %.1f dB\n",
               qname, hi, lo, hi, n, n_mid, n_back, dsp_resampler_delay_frames(down),
               dsp_resampler_delay_frames(up), s0, sm, sp);
        assert_true(s0 >= 60.0);
        assert_true(s0 > sm && s0 > sp);
        if (s0 < worst)
            worst = s0;
        free(x);
        free(mid);
        free(back);
        dsp_resampler_destroy(down);
        dsp_resampler_destroy(up);
    }
    printf("%s: worst round-trip SNR %.1f dB (threshold 60 dB)\n", qname, worst);
}

static void test_round_trip_best(void **state) { (void)state; round_trip(DSP_RESAMPLE_BEST, "best"); }
static void test_round_trip_medium(void **state) { (void)state; round_trip(DSP_RESAMPLE_MEDIUM, "medium"); }
static void test_round_trip_fastest(void **state) { (void)state; round_trip(DSP_RESAMPLE_FASTEST, "fastest"); }

/* Up-sampling alone keeps timing: a 16 kHz tone resampled to each rate equals
 * the same tone sampled there (independent of any round trip cancelling). */
static void test_one_way_alignment(void **state)
{
    (void)state;
    for (size_t ri = 0; ri < sizeof other_rates / sizeof other_rates[0]; ri++) {
        int out_rate = other_rates[ri];
        size_t n = MODEL_RATE; /* 1 s */
        double f = 0.3 * (out_rate < MODEL_RATE ? out_rate : MODEL_RATE) * 0.77;
        float *x = malloc(n * sizeof *x);
        assert_non_null(x);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(0.5 * sin(2 * M_PI * f * (double)i / MODEL_RATE + 0.3));
        dsp_resampler *r = NULL;
        assert_int_equal(dsp_resampler_create(&r, MODEL_RATE, out_rate, 1, DSP_RESAMPLE_BEST, NULL), DSP_OK);
        size_t m = 0;
        float *y = run_resampler(r, 1, x, n, NULL, &m);
        size_t edge = (size_t)out_rate / 10;
        float *ref = malloc(m * sizeof *ref);
        assert_non_null(ref);
        for (size_t k = 0; k < m; k++)
            ref[k] = (float)(0.5 * sin(2 * M_PI * f * (double)k / out_rate + 0.3));
        double s0 = snr_db(ref, y, m, edge, m - edge, 0);
        printf("16000 -> %6d tone %.0f Hz vs analytic: SNR %.1f dB\n", out_rate, f, s0);
        assert_true(s0 >= 60.0);
        free(x); free(y); free(ref);
        dsp_resampler_destroy(r);
    }
}

static void check_chunk_invariance(int in_rate, int out_rate, int channels, dsp_resample_quality q)
{
    size_t n = (size_t)in_rate / 2 + 123; /* ~0.5 s, odd length */
    float *mono = bandlimited_noise(n * (size_t)channels, in_rate, 0.25 * in_rate);
    dsp_resampler *r = NULL;
    assert_int_equal(dsp_resampler_create(&r, in_rate, out_rate, channels, q, NULL), DSP_OK);
    size_t n_whole = 0;
    float *whole = run_resampler(r, channels, mono, n, NULL, &n_whole);
    assert_int_equal(n_whole, dsp_resample_output_frames(n, in_rate, out_rate));
    static const size_t c1[] = { 1, 0 }, c7[] = { 7, 0 }, c480[] = { 480, 0 },
                        c4096[] = { 4096, 0 }, cirr[] = { 3, 1000, 1, 17, 250, 2, 4999, 0 };
    const size_t *patterns[] = { c1, c7, c480, c4096, cirr };
    const char *names[] = { "1", "7", "480", "4096", "irregular" };
    for (size_t p = 0; p < 5; p++) {
        assert_int_equal(dsp_resampler_reset(r), DSP_OK);
        size_t n_chunked = 0;
        float *chunked = run_resampler(r, channels, mono, n, patterns[p], &n_chunked);
        size_t diff = 0;
        for (size_t i = 0; i < n_whole * (size_t)channels && n_chunked == n_whole; i++)
            diff += memcmp(&whole[i], &chunked[i], sizeof(float)) != 0;
        printf("%d -> %d Hz, %d ch, chunks %s: %zu frames (whole %zu), %zu samples differ\n",
               in_rate, out_rate, channels, names[p], n_chunked, n_whole, diff);
        assert_int_equal(n_chunked, n_whole);
        assert_int_equal(diff, 0);
        free(chunked);
    }
    free(whole);
    free(mono);
    dsp_resampler_destroy(r);
}

static void test_chunk_invariance(void **state)
{
    (void)state;
    check_chunk_invariance(44100, 16000, 2, DSP_RESAMPLE_BEST);
    check_chunk_invariance(16000, 48000, 1, DSP_RESAMPLE_MEDIUM);
    check_chunk_invariance(22050, 16000, 6, DSP_RESAMPLE_FASTEST);
}

/* Channels stay separate and in order: each channel carries its own tone and
 * must match the same tone resampled alone. */
static void test_channels_independent(void **state)
{
    (void)state;
    enum { CH = 5 };
    size_t n = 24000;
    float *inter = malloc(n * CH * sizeof *inter), *solo = malloc(n * sizeof *solo);
    assert_non_null(inter);
    assert_non_null(solo);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < CH; c++)
            inter[i * CH + c] = (float)(0.1 * (c + 1) * sin(0.01 * (c + 1) * (double)i));
    dsp_resampler *r = NULL, *r1 = NULL;
    assert_int_equal(dsp_resampler_create(&r, 48000, 16000, CH, DSP_RESAMPLE_FASTEST, NULL), DSP_OK);
    assert_int_equal(dsp_resampler_create(&r1, 48000, 16000, 1, DSP_RESAMPLE_FASTEST, NULL), DSP_OK);
    size_t m = 0;
    float *y = run_resampler(r, CH, inter, n, NULL, &m);
    double worst = 0;
    for (int c = 0; c < CH; c++) {
        for (size_t i = 0; i < n; i++)
            solo[i] = inter[i * CH + c];
        assert_int_equal(dsp_resampler_reset(r1), DSP_OK);
        size_t m1 = 0;
        float *y1 = run_resampler(r1, 1, solo, n, NULL, &m1);
        assert_int_equal(m1, m);
        for (size_t k = 0; k < m; k++) {
            double d = fabs((double)y[k * CH + c] - y1[k]);
            if (d > worst) worst = d;
        }
        free(y1);
    }
    printf("5-channel vs per-channel mono: max |diff| %.3g\n", worst);
    assert_true(worst <= 1e-6);
    free(y); free(inter); free(solo);
    dsp_resampler_destroy(r);
    dsp_resampler_destroy(r1);
}

static void test_lengths_small(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 2, 3, 100, 441, 1000 };
    float in[1000];
    for (size_t i = 0; i < 1000; i++)
        in[i] = (float)sin(0.05 * (double)i);
    for (size_t ri = 0; ri < sizeof other_rates / sizeof other_rates[0]; ri++) {
        for (int dir = 0; dir < 2; dir++) {
            int a = dir ? MODEL_RATE : other_rates[ri], b = dir ? other_rates[ri] : MODEL_RATE;
            dsp_resampler *r = NULL;
            assert_int_equal(dsp_resampler_create(&r, a, b, 1, DSP_RESAMPLE_MEDIUM, NULL), DSP_OK);
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                assert_int_equal(dsp_resampler_reset(r), DSP_OK);
                size_t m = 0;
                float *y = run_resampler(r, 1, in, lens[li], NULL, &m);
                assert_int_equal(m, dsp_resample_output_frames(lens[li], a, b));
                for (size_t k = 0; k < m; k++)
                    assert_true(isfinite(y[k]));
                free(y);
            }
            dsp_resampler_destroy(r);
        }
    }
    /* The rounding rule itself, checked against long double. */
    for (uint64_t n = 0; n < 5000; n += 7)
        for (size_t ri = 0; ri < 5; ri++) {
            long double e = floorl((long double)n * MODEL_RATE / other_rates[ri] + 0.5L);
            assert_int_equal(dsp_resample_output_frames(n, other_rates[ri], MODEL_RATE), (uint64_t)e);
        }
    assert_int_equal(dsp_resample_output_frames(1, 32000, 16000), 1); /* 0.5 rounds up */
    assert_int_equal(dsp_resample_output_frames((uint64_t)1 << 50, 48000, 16000),
                     (((uint64_t)1 << 50) + 1) / 3);
    /* Process after flush is refused until reset. */
    dsp_resampler *r = NULL;
    assert_int_equal(dsp_resampler_create(&r, 48000, 16000, 1, DSP_RESAMPLE_FASTEST, NULL), DSP_OK);
    float out[64];
    size_t used, got;
    assert_int_equal(dsp_resampler_flush(r, out, 64, &got), DSP_OK);
    assert_int_equal(got, 0);
    assert_int_equal(dsp_resampler_process(r, in, 10, &used, out, 64, &got), DSP_ERR_INVALID);
    assert_int_equal(dsp_resampler_reset(r), DSP_OK);
    assert_int_equal(dsp_resampler_process(r, in, 10, &used, out, 64, &got), DSP_OK);
    assert_int_equal(used, 10);
    dsp_resampler_destroy(r);
    dsp_resampler_destroy(NULL);
}

/* One hour at 44.1 kHz in irregular chunks: exactly round(N*16000/44100)
 * frames out, all finite.  Fastest quality keeps it to a few seconds. */
static void test_no_drift_one_hour(void **state)
{
    (void)state;
    double seconds = 3600;
    const char *env = getenv("RESAMPLE_LONG_SECONDS");
    if (env && atof(env) > 0)
        seconds = atof(env);
    size_t n = (size_t)(44100 * seconds) + 77; /* not a whole number of periods */
    enum { BLOCK = 10007 };
    float *src = bandlimited_noise(BLOCK, 44100, 7000);
    dsp_resampler *r = NULL;
    assert_int_equal(dsp_resampler_create(&r, 44100, 16000, 1, DSP_RESAMPLE_FASTEST, NULL), DSP_OK);
    size_t cap = dsp_resampler_max_out_frames(r, BLOCK);
    float *out = malloc(cap * sizeof *out);
    assert_non_null(out);
    static const size_t sizes[] = { 1, 4096, 333, 7, 9999, 160, 2, 5000 };
    size_t pos = 0, made = 0, calls = 0, nonfinite = 0;
    while (pos < n) {
        size_t want = sizes[calls++ % 8];
        if (want > n - pos) want = n - pos;
        size_t off = pos % BLOCK;
        if (want > BLOCK - off) want = BLOCK - off;
        size_t used = 0, got = 0;
        assert_int_equal(dsp_resampler_process(r, src + off, want, &used, out, cap, &got), DSP_OK);
        assert_int_equal(used, want);
        for (size_t k = 0; k < got; k++)
            nonfinite += !isfinite(out[k]);
        pos += used;
        made += got;
    }
    size_t got;
    do {
        assert_int_equal(dsp_resampler_flush(r, out, cap, &got), DSP_OK);
        made += got;
    } while (got == cap);
    uint64_t expect = dsp_resample_output_frames(n, 44100, 16000);
    printf("%.0f s at 44100 Hz (%zu frames, %zu calls) -> %zu frames at 16000 Hz, "
           "expected %llu, non-finite %zu\n",
           seconds, n, calls, made, (unsigned long long)expect, nonfinite);
    assert_int_equal(made, expect);
    assert_int_equal(dsp_resampler_frames_out(r), expect);
    assert_int_equal(dsp_resampler_frames_in(r), n);
    assert_int_equal(nonfinite, 0);
    free(out);
    free(src);
    dsp_resampler_destroy(r);
}

/* SI-SDR in dB of y against x over [from, to) (Le Roux et al. 2019:
 * project y on x, the rest is the error). */
static double si_sdr_db(const float *x, const float *y, size_t from, size_t to)
{
    double xy = 0, xx = 0;
    for (size_t i = from; i < to; i++) {
        xy += (double)x[i] * y[i];
        xx += (double)x[i] * x[i];
    }
    double a = xy / xx, s = 0, e = 0;
    for (size_t i = from; i < to; i++) {
        double t = a * x[i], d = (double)y[i] - t;
        s += t * t;
        e += d * d;
    }
    return 10.0 * log10(s / (e > 0 ? e : 1e-300));
}

/* 44.1 -> 48 -> 44.1 kHz, the daemon's path for the commonest file rate:
 * (a) five tones 100 Hz .. 18 kHz plus (b) a logarithmic sweep 50 Hz ..
 * 18 kHz (all inside every recipe's pass band, which ends at >= 0.91 of
 * 22.05 kHz), SI-SDR away from the edges; (c) 48 -> 44.1 kHz of a tone at
 * 23 kHz and one at 30 kHz (above the output Nyquist, 22.05 kHz): output
 * RMS relative to input RMS, i.e. how far the alias is attenuated.
 * Thresholds are the figures measured with libsoxr 0.1.3 less a margin
 * (SI-SDR tones/sweep: best 93.2/153.1 dB, medium 101.0/128.2, fast
 * 40.3/66.1 -- the tones are limited by the pass band's roll-off at 18 kHz;
 * alias 22.5/23.5 kHz: best 156.2/154.1 dB, medium 140.8/136.3, fast
 * 112.8/121.1).  libsamplerate, for comparison: tones 139.2/116.0/10.9 dB,
 * sweep 143.8/123.6/99.5 dB, alias 150.9/118.8/100.7 dB (worst of two). */
static void check_quality_44k(dsp_resample_quality q, const char *qname, double min_sdr_db,
                              double min_alias_db)
{
    const int a = 44100, b = 48000;
    size_t n = (size_t)a * 2, edge = (size_t)a / 10;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    double worst = INFINITY;
    for (int sig = 0; sig < 2; sig++) {
        static const double tones[] = { 100, 997, 5003, 12007, 18000 };
        for (size_t i = 0; i < n; i++) {
            double t = (double)i / a, v = 0;
            if (sig == 0)
                for (size_t k = 0; k < 5; k++)
                    v += 0.1 * sin(2 * M_PI * tones[k] * t + 0.7 * (double)k);
            else /* f(t) = 50 * 360^(t/T): 50 Hz .. 18 kHz over T = 2 s */
                v = 0.3 * sin(2 * M_PI * 50.0 * 2.0 / log(360.0) * (pow(360.0, t / 2.0) - 1.0));
            x[i] = (float)v;
        }
        dsp_resampler *up = NULL, *down = NULL;
        assert_int_equal(dsp_resampler_create(&up, a, b, 1, q, NULL), DSP_OK);
        assert_int_equal(dsp_resampler_create(&down, b, a, 1, q, NULL), DSP_OK);
        size_t n_mid = 0, n_back = 0;
        float *mid = run_resampler(up, 1, x, n, NULL, &n_mid);
        float *back = run_resampler(down, 1, mid, n_mid, NULL, &n_back);
        assert_int_equal(n_back, n);
        double d = si_sdr_db(x, back, edge, n - edge);
        printf("%s 44100 -> 48000 -> 44100, %s: SI-SDR %.1f dB (threshold %.0f dB)\n", qname,
               sig ? "sweep 50 Hz-18 kHz" : "tones 100 Hz-18 kHz", d, min_sdr_db);
        if (d < worst) worst = d;
        free(mid);
        free(back);
        dsp_resampler_destroy(up);
        dsp_resampler_destroy(down);
    }
    free(x);
    assert_true(worst >= min_sdr_db);

    static const double alias_hz[] = { 22500, 23500 };
    size_t m = (size_t)b;
    float *y = malloc(m * sizeof *y);
    assert_non_null(y);
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < m; i++)
            y[i] = (float)(0.5 * sin(2 * M_PI * alias_hz[k] * (double)i / b));
        dsp_resampler *down = NULL;
        assert_int_equal(dsp_resampler_create(&down, b, a, 1, q, NULL), DSP_OK);
        size_t n_out = 0;
        float *out = run_resampler(down, 1, y, m, NULL, &n_out);
        double ein = 0, eout = 0;
        size_t e_in = (size_t)b / 10, e_out = (size_t)a / 10;
        for (size_t i = e_in; i < m - e_in; i++) ein += (double)y[i] * y[i];
        for (size_t i = e_out; i < n_out - e_out; i++) eout += (double)out[i] * out[i];
        ein /= (double)(m - 2 * e_in);
        eout /= (double)(n_out - 2 * e_out);
        double att = 10.0 * log10(ein / (eout > 0 ? eout : 1e-300));
        printf("%s 48000 -> 44100, tone %.0f Hz (alias at %.0f Hz): attenuated %.1f dB "
               "(threshold %.0f dB)\n", qname, alias_hz[k], fabs(a - alias_hz[k]), att, min_alias_db);
        assert_true(att >= min_alias_db);
        free(out);
        dsp_resampler_destroy(down);
    }
    free(y);
}

static void test_quality_44k(void **state)
{
    (void)state;
    check_quality_44k(DSP_RESAMPLE_BEST, "best", 90.0, 145.0);
    check_quality_44k(DSP_RESAMPLE_MEDIUM, "medium", 95.0, 130.0);
    check_quality_44k(DSP_RESAMPLE_FASTEST, "fast", 38.0, 105.0);
}

/* Large ratios at every quality (16 -> 300 kHz best once failed at create:
 * its steep filter held more zero blocks back than the flush allowed): 1 s
 * through, flushed, exactly round(n * out / in) frames out. */
static void test_large_ratios(void **state)
{
    (void)state;
    static const int pairs[][2] = { { 16000, 300000 }, { 300000, 16000 }, { 8000, 192000 },
                                    { 192000, 8000 }, { 6000, 1536000 } };
    for (int q = DSP_RESAMPLE_BEST; q <= DSP_RESAMPLE_FASTEST; q++) {
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            dsp_resampler *r = NULL;
            dsp_error e = { 0 };
            int rc = dsp_resampler_create(&r, pairs[p][0], pairs[p][1], 1, (dsp_resample_quality)q, &e);
            if (rc != DSP_OK) printf("%d -> %d Hz, quality %d: %s\n", pairs[p][0], pairs[p][1], q, e.msg);
            assert_int_equal(rc, DSP_OK);
            size_t n = (size_t)pairs[p][0];
            float *x = bandlimited_noise(n, pairs[p][0], 0.4 * (pairs[p][0] < pairs[p][1] ? pairs[p][0] : pairs[p][1]));
            size_t cap = dsp_resampler_max_out_frames(r, n), used = 0, got = 0, total = 0;
            float *y = malloc(cap * sizeof *y);
            assert_non_null(y);
            assert_int_equal(dsp_resampler_process(r, x, n, &used, y, cap, &got), DSP_OK);
            assert_int_equal(used, n);
            total = got;
            do {
                assert_int_equal(dsp_resampler_flush(r, y, cap, &got), DSP_OK);
                total += got;
            } while (got == cap);
            assert_int_equal(total, dsp_resample_output_frames(n, pairs[p][0], pairs[p][1]));
            free(x);
            free(y);
            dsp_resampler_destroy(r);
        }
    }
}

/* process and flush allocate nothing: 60 s per rate pair and quality in
 * irregular chunks (1 .. 9999 frames), counted by the malloc interposer. */
static void test_no_allocation(void **state)
{
    (void)state;
#ifdef NO_ALLOC_COUNT
    printf("allocation count skipped (sanitizer build or not glibc)\n");
#else
    static const int pairs[][2] = { { 44100, 48000 }, { 48000, 44100 }, { 16000, 48000 },
                                    { 48000, 16000 }, { 8000, 48000 }, { 22050, 48000 },
                                    { 96000, 48000 } };
    static const size_t sizes[] = { 1, 4096, 333, 7, 9999, 160, 2, 5000, 480, 441 };
    enum { BLOCK = 10007 };
    float *src = bandlimited_noise(4 * BLOCK, 48000, 7000); /* room for 9999 stereo frames */
    for (int q = DSP_RESAMPLE_BEST; q <= DSP_RESAMPLE_FASTEST; q++) {
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            int ch = 1 + (int)(p % 2);
            dsp_resampler *r = NULL;
            assert_int_equal(dsp_resampler_create(&r, pairs[p][0], pairs[p][1], ch,
                                                  (dsp_resample_quality)q, NULL), DSP_OK);
            size_t cap = dsp_resampler_max_out_frames(r, BLOCK);
            float *out = malloc(cap * (size_t)ch * sizeof *out);
            assert_non_null(out);
            size_t n = (size_t)pairs[p][0] * 60, pos = 0, calls = 0;
            alloc_count = 0;
            alloc_armed = 1;
            while (pos < n) {
                size_t want = sizes[calls++ % 10], used = 0, got = 0;
                if (want > n - pos) want = n - pos;
                size_t off = (pos * (size_t)ch) % BLOCK;
                int st = dsp_resampler_process(r, src + off, want, &used, out, cap, &got);
                if (st != DSP_OK || used != want) break;
                pos += used;
            }
            size_t got;
            do {
                if (dsp_resampler_flush(r, out, cap, &got) != DSP_OK) break;
            } while (got == cap);
            alloc_armed = 0;
            printf("%s %6d -> %5d Hz, %d ch: 60 s in %zu calls, %ld allocations in process/flush\n",
                   q == 0 ? "best" : q == 1 ? "medium" : "fast", pairs[p][0], pairs[p][1], ch, calls,
                   alloc_count);
            assert_int_equal(pos, n);
            assert_int_equal(alloc_count, 0);
            free(out);
            dsp_resampler_destroy(r);
        }
    }
    free(src);
#endif
}

static void expect_refused(int in_rate, int out_rate, int channels, int quality, const char *needle)
{
    dsp_resampler *r = (dsp_resampler *)&r; /* must be overwritten with NULL */
    dsp_error err = { 0, "" };
    int st = dsp_resampler_create(&r, in_rate, out_rate, channels, (dsp_resample_quality)quality, &err);
    printf("create(%d, %d, %d ch, q%d): %d \"%s\"\n", in_rate, out_rate, channels, quality, st, err.msg);
    assert_int_equal(st, DSP_ERR_INVALID);
    assert_int_equal(err.status, DSP_ERR_INVALID);
    assert_null(r);
    assert_non_null(strstr(err.msg, needle));
}

static void test_invalid_args(void **state)
{
    (void)state;
    expect_refused(0, 16000, 1, 0, "input sample rate 0");
    expect_refused(-44100, 16000, 1, 0, "input sample rate -44100");
    expect_refused(44100, 0, 1, 0, "output sample rate 0");
    expect_refused(44100, -16000, 1, 0, "output sample rate -16000");
    expect_refused(1000000000, 16000, 1, 0, "input sample rate 1000000000");
    expect_refused(16000, 2000000000, 1, 0, "output sample rate 2000000000");
    expect_refused(1000, 1000000, 1, 0, "ratio");
    expect_refused(44100, 16000, 0, 0, "channel count 0");
    expect_refused(44100, 16000, -2, 0, "channel count -2");
    expect_refused(44100, 16000, 100000, 0, "channel count 100000");
    expect_refused(44100, 16000, 1, 9, "quality 9");
    assert_int_equal(dsp_resampler_create(NULL, 44100, 16000, 1, DSP_RESAMPLE_BEST, NULL), DSP_ERR_INVALID);
    dsp_resampler *r = NULL;
    assert_int_equal(dsp_resampler_create(&r, 44100, 16000, 1, DSP_RESAMPLE_BEST, NULL), DSP_OK);
    size_t used, got;
    float buf[8];
    assert_int_equal(dsp_resampler_process(r, NULL, 4, &used, buf, 8, &got), DSP_ERR_INVALID);
    assert_int_equal(dsp_resampler_process(r, buf, 4, NULL, buf + 4, 4, &got), DSP_ERR_INVALID);
    dsp_resampler_destroy(r);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        const struct CMUnitTest slow[] = { cmocka_unit_test(test_no_drift_one_hour) };
        return cmocka_run_group_tests_name("resample_long", slow, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_lengths_small),
        cmocka_unit_test(test_round_trip_best),
        cmocka_unit_test(test_round_trip_medium),
        cmocka_unit_test(test_round_trip_fastest),
        cmocka_unit_test(test_one_way_alignment),
        cmocka_unit_test(test_chunk_invariance),
        cmocka_unit_test(test_channels_independent),
        cmocka_unit_test(test_quality_44k),
        cmocka_unit_test(test_large_ratios),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests_name("resample", tests, NULL, NULL);
}
