/* SPDX-License-Identifier: MIT */
/* STFT of one frame with FFTW (single precision).
 *
 * Why scratch buffers: FFTW's new-array execute requires arrays with the
 * alignment the plan was made for, and c2r destroys its input, so the hot
 * path windows the caller's frame into an fftwf_malloc'ed buffer (the plan's
 * own arrays) and copies results out.  The copies are O(n) next to the
 * O(n log n) transform.
 */
#include "dsp/stft.h"

#include "clones.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Relative tolerance of the constant-overlap-add check (stft.h). */
#define COLA_RTOL 1e-4

static pthread_mutex_t planner_mutex = PTHREAD_MUTEX_INITIALIZER;

void dsp_fftw_planner_lock(void) { pthread_mutex_lock(&planner_mutex); }
void dsp_fftw_planner_unlock(void) { pthread_mutex_unlock(&planner_mutex); }

struct dsp_stft {
    size_t n_fft, hop, n_bins;
    dsp_window ana_kind, syn_kind;
    float *ana;          /* {n_fft} analysis window */
    float *syn;          /* {n_fft} g = s / mean(D); NULL if analysis only */
    float *syn_scaled;   /* {n_fft} g / n_fft (folds irfft's 1/n) */
    float *rbuf;         /* fftwf_malloc {n_fft} */
    fftwf_complex *cbuf; /* fftwf_malloc {n_bins} */
    fftwf_plan fwd, inv;
};

const char *dsp_window_name(dsp_window kind)
{
    switch (kind) {
    case DSP_WINDOW_NONE:      return "none";
    case DSP_WINDOW_RECT:      return "rect";
    case DSP_WINDOW_HANN:      return "hann";
    case DSP_WINDOW_SQRT_HANN: return "sqrt-hann";
    default:                   return "unknown";
    }
}

/* Window value at n of length len, in double (periodic definitions). */
static double window_at(dsp_window kind, size_t n, size_t len)
{
    const double two_pi = 6.283185307179586476925286766559;
    switch (kind) {
    case DSP_WINDOW_RECT:
        return 1.0;
    case DSP_WINDOW_HANN:
        return 0.5 - 0.5 * cos(two_pi * (double)n / (double)len);
    case DSP_WINDOW_SQRT_HANN: {
        double w = 0.5 - 0.5 * cos(two_pi * (double)n / (double)len);
        return sqrt(w > 0.0 ? w : 0.0);
    }
    default:
        return 0.0;
    }
}

static bool window_valid(dsp_window kind, bool allow_none)
{
    return kind == DSP_WINDOW_RECT || kind == DSP_WINDOW_HANN || kind == DSP_WINDOW_SQRT_HANN ||
           (allow_none && kind == DSP_WINDOW_NONE);
}

int dsp_window_fill(float *out, size_t n, dsp_window kind)
{
    if (!out || n == 0 || !window_valid(kind, false))
        return DSP_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)window_at(kind, i, n);
    return DSP_OK;
}

void dsp_stft_destroy(dsp_stft *st)
{
    if (!st)
        return;
    dsp_fftw_planner_lock();
    if (st->fwd)
        fftwf_destroy_plan(st->fwd);
    if (st->inv)
        fftwf_destroy_plan(st->inv);
    fftwf_free(st->rbuf);
    fftwf_free(st->cbuf);
    dsp_fftw_planner_unlock();
    free(st->ana);
    free(st->syn);
    free(st->syn_scaled);
    free(st);
}

/* Builds g = s / mean(D) after checking that the WOLA envelope D is constant
 * (stft.h).  Returns DSP_OK or a filled error. */
static int build_synthesis(dsp_stft *st, dsp_error *err)
{
    const size_t n = st->n_fft, h = st->hop;
    double dmin = HUGE_VAL, dmax = -HUGE_VAL, dsum = 0.0;
    for (size_t r = 0; r < h; r++) {
        double d = 0.0;
        for (size_t i = r; i < n; i += h)
            d += window_at(st->ana_kind, i, n) * window_at(st->syn_kind, i, n);
        dmin = d < dmin ? d : dmin;
        dmax = d > dmax ? d : dmax;
        dsum += d;
    }
    if (!(dmax > 0.0) || dmax - dmin > COLA_RTOL * dmax) {
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "stft: %s analysis / %s synthesis windows with n_fft %zu and hop %zu "
                             "do not overlap-add to a constant (envelope %.6g..%.6g); supported: "
            "sqrt-hann/sqrt-hann or hann/rect with n_fft/hop an integer >= 2, "
            "hann/hann with n_fft/hop an integer >= 3, rect/rect with hop = n_fft",
            dsp_window_name(st->ana_kind), dsp_window_name(st->syn_kind),
            n, h, dmin, dmax);
    }
    const double dmean = dsum / (double)h;
    for (size_t i = 0; i < n; i++) {
        double g = window_at(st->syn_kind, i, n) / dmean;
        st->syn[i] = (float)g;
        st->syn_scaled[i] = (float)(g / (double)n);
    }
    return DSP_OK;
}

int dsp_stft_create(dsp_stft **out, const dsp_stft_config *cfg, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "stft: out pointer is NULL");
    *out = NULL;
    if (!cfg)
        return dsp_error_set(err, DSP_ERR_INVALID, "stft: no configuration given");
    if (cfg->n_fft < 2 || cfg->n_fft > ((size_t)1 << 24))
        return dsp_error_set(err, DSP_ERR_INVALID, "stft: n_fft must be in [2, 2^24] (got %zu)",
                             cfg->n_fft);
    if (cfg->hop_samples == 0 || cfg->hop_samples > cfg->n_fft)
        return dsp_error_set(err, DSP_ERR_INVALID, "stft: hop_samples must be in [1, n_fft=%zu] (got %zu)",
                             cfg->n_fft, cfg->hop_samples);
    if (!window_valid(cfg->analysis_window, false))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "stft: analysis window must be rect, hann or sqrt-hann (got %d)",
                             (int)cfg->analysis_window);
    if (!window_valid(cfg->synthesis_window, true))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "stft: synthesis window must be none, rect, hann or sqrt-hann (got %d)",
                             (int)cfg->synthesis_window);

    dsp_stft *st = calloc(1, sizeof *st);
    if (!st)
        goto nomem;
    st->n_fft = cfg->n_fft;
    st->hop = cfg->hop_samples;
    st->n_bins = cfg->n_fft / 2 + 1;
    st->ana_kind = cfg->analysis_window;
    st->syn_kind = cfg->synthesis_window;
    st->ana = malloc(st->n_fft * sizeof *st->ana);
    if (!st->ana)
        goto nomem;
    dsp_window_fill(st->ana, st->n_fft, st->ana_kind);
    if (st->syn_kind != DSP_WINDOW_NONE) {
        st->syn = malloc(st->n_fft * sizeof *st->syn);
        st->syn_scaled = malloc(st->n_fft * sizeof *st->syn_scaled);
        if (!st->syn || !st->syn_scaled)
            goto nomem;
        int rc = build_synthesis(st, err);
        if (rc != DSP_OK) {
            dsp_stft_destroy(st);
            return rc;
        }
    }

    dsp_fftw_planner_lock();
    st->rbuf = fftwf_malloc(st->n_fft * sizeof *st->rbuf);
    st->cbuf = fftwf_malloc(st->n_bins * sizeof *st->cbuf);
    if (st->rbuf && st->cbuf) {
        /* FFTW_ESTIMATE: deterministic plans, see stft.h. */
        st->fwd = fftwf_plan_dft_r2c_1d((int)st->n_fft, st->rbuf, st->cbuf, FFTW_ESTIMATE);
        if (st->syn_kind != DSP_WINDOW_NONE)
            st->inv = fftwf_plan_dft_c2r_1d((int)st->n_fft, st->cbuf, st->rbuf, FFTW_ESTIMATE);
    }
    dsp_fftw_planner_unlock();
    if (!st->rbuf || !st->cbuf)
        goto nomem;
    if (!st->fwd || (st->syn_kind != DSP_WINDOW_NONE && !st->inv)) {
        dsp_stft_destroy(st);
        return dsp_error_set(err, DSP_ERR_LIBRARY,
                             "stft: FFTW could not plan a transform of size %zu", cfg->n_fft);
    }
    *out = st;
    return DSP_OK;

nomem:
    dsp_stft_destroy(st);
    return dsp_error_set(err, DSP_ERR_NOMEM, "stft: out of memory for n_fft %zu", cfg->n_fft);
}

size_t dsp_stft_n_bins(const dsp_stft *st) { return st->n_bins; }
size_t dsp_stft_n_fft(const dsp_stft *st) { return st->n_fft; }
size_t dsp_stft_hop_samples(const dsp_stft *st) { return st->hop; }
const float *dsp_stft_analysis_window(const dsp_stft *st) { return st->ana; }
const float *dsp_stft_synthesis_window(const dsp_stft *st) { return st->syn; }

/* out[i] = w[i]·x[i], i < n (out overlaps neither input).  In blocks of a fixed
 * 16, for each ISA (clones.h): it runs three times on every frame. */
DSP_CLONES
static void window_mul(float *restrict out, const float *restrict w, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) out[i + (size_t)j] = w[i + (size_t)j] * x[i + (size_t)j];
    for (; i < n; i++) out[i] = w[i] * x[i];
}

int dsp_stft_forward(dsp_stft *st, float *spec_out, const float *frame)
{
    if (!st || !spec_out || !frame)
        return DSP_ERR_INVALID;
    const size_t n = st->n_fft;
    window_mul(st->rbuf, st->ana, frame, n);
    fftwf_execute_dft_r2c(st->fwd, st->rbuf, st->cbuf);
    memcpy(spec_out, st->cbuf, st->n_bins * 2 * sizeof *spec_out);
    return DSP_OK;
}

int dsp_stft_inverse(dsp_stft *st, float *frame_out, const float *spec)
{
    if (!st || !frame_out || !spec || !st->inv)
        return DSP_ERR_INVALID;
    const size_t n = st->n_fft;
    memcpy(st->cbuf, spec, st->n_bins * 2 * sizeof *spec);
    fftwf_execute_dft_c2r(st->inv, st->cbuf, st->rbuf);
    window_mul(frame_out, st->syn_scaled, st->rbuf, n);
    return DSP_OK;
}
