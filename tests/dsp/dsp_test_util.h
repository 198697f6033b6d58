/* SPDX-License-Identifier: MIT */
/* Test helpers for tests/dsp: deterministic signals and the full
 * framer → STFT → iSTFT → overlap-add chain, fed in chunks of a given size.
 * Header-only (static functions) so every test executable stays one file. */
#ifndef DSP_TEST_UTIL_H
#define DSP_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/framer.h"
#include "dsp/stft.h"

/* xorshift64*: reproducible across platforms (no rand()). */
static inline double tu_uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* White noise, uniform in [-0.5, 0.5). */
static inline void tu_white(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed ? seed : 1;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(tu_uniform(&s) - 0.5);
}

/* Speech-like: a harmonic series (10 partials, 1/k amplitudes) whose pitch
 * glides 110→220 Hz, a 4 Hz syllable envelope, and a pause (silence) every
 * 0.5 s, at sample rate sr. */
static inline void tu_speechlike(float *x, size_t n, double sr)
{
    const double two_pi = 6.283185307179586;
    double phase = 0.0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / sr;
        double f0 = 110.0 + 110.0 * (0.5 + 0.5 * sin(two_pi * 0.7 * t));
        phase += two_pi * f0 / sr;
        double v = 0.0;
        for (int k = 1; k <= 10; k++)
            if (k * f0 < sr / 2)
                v += sin(k * phase) / k;
        double env = 0.5 - 0.5 * cos(two_pi * 4.0 * t);
        if (fmod(t, 0.5) > 0.4)
            env = 0.0;
        x[i] = (float)(0.25 * env * v);
    }
}

/* Result of running the chain. */
typedef struct tu_run {
    float *out;        /* output samples */
    size_t n_out;
    float *frames;     /* every analysis frame popped, {n_frames, n_window} */
    size_t n_frames;
} tu_run;

static inline void tu_run_free(tu_run *r)
{
    free(r->out);
    free(r->frames);
    memset(r, 0, sizeof *r);
}

/* Pops every ready frame of f, records it, runs STFT → iSTFT on it when st
 * is not NULL, and overlap-adds it into r->out.  Returns -1 on overflow of
 * the recording buffers. */
static inline int tu_drain(tu_run *r, size_t max_frames, dsp_framer *f, dsp_stft *st,
                           float *frame, float *spec)
{
    const size_t nw = dsp_framer_n_window(f);
    while (dsp_framer_pop_frame(f, frame) == 1) {
        if (r->n_frames >= max_frames)
            return -1;
        memcpy(r->frames + r->n_frames * nw, frame, nw * sizeof *frame);
        r->n_frames++;
        if (st) {
            dsp_stft_forward(st, spec, frame);
            dsp_stft_inverse(st, frame, spec);
        }
        r->n_out += dsp_framer_synthesize(f, r->out + r->n_out, frame);
    }
    return 0;
}

/* Runs x[0..n) through framer f and (if st is not NULL) STFT → iSTFT per
 * frame, pushing chunks of `chunk` samples (0 = whole signal), then
 * finish.  Returns 0, or -1 on an internal inconsistency. */
static inline int tu_run_chain(tu_run *r, dsp_framer *f, dsp_stft *st, const float *x, size_t n,
                               size_t chunk)
{
    const size_t nw = dsp_framer_n_window(f), hop = dsp_framer_hop_samples(f);
    const size_t lat = dsp_framer_latency_samples(f);
    const size_t max_frames = (n + lat) / hop + 3;
    int rc = -1;
    memset(r, 0, sizeof *r);
    r->out = calloc(n + lat + hop + 1, sizeof *r->out);
    r->frames = calloc(max_frames * nw + 1, sizeof *r->frames);
    float *frame = calloc(nw, sizeof *frame);
    float *spec = calloc(2 * (nw / 2 + 1), sizeof *spec);
    if (!r->out || !r->frames || !frame || !spec)
        goto done;
    if (chunk == 0)
        chunk = n ? n : 1;
    for (size_t pos = 0; pos < n; pos += chunk) {
        const size_t len = n - pos < chunk ? n - pos : chunk;
        size_t used = 0;
        while (used < len) {
            used += dsp_framer_push(f, x + pos + used, len - used, NULL);
            if (tu_drain(r, max_frames, f, st, frame, spec))
                goto done;
        }
    }
    dsp_framer_finish(f);
    if (tu_drain(r, max_frames, f, st, frame, spec))
        goto done;
    rc = 0;
done:
    free(frame);
    free(spec);
    if (rc)
        tu_run_free(r);
    return rc;
}

/* RMS(a − b) / RMS(b) over n samples (0 when both are silent). */
static inline double tu_rel_rms_err(const float *a, const float *b, size_t n)
{
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        e += d * d;
        s += (double)b[i] * b[i];
    }
    return s > 0.0 ? sqrt(e / s) : sqrt(e);
}

#endif /* DSP_TEST_UTIL_H */
