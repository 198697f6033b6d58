/* SPDX-License-Identifier: MIT */
/* Spectral features, mel filterbank (librosa.filters.mel conventions) and
 * block levels.  See dsp/features.h for the formulas. */
#include "dsp/features.h"

#include "clones.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline float power_one(const float *bin)
{
    const double re = bin[0], im = bin[1];
    const double p = re * re + im * im;
    return (float)(p > FLT_MAX ? FLT_MAX : p);
}

/* In blocks of a fixed 16 so that gcc vectorises it at -O2, for each ISA
 * (clones.h; every lane computes the same double products and sum). */
DSP_CLONES
void dsp_spec_power(float *power_out, const float *spec, size_t n_bins)
{
    size_t k = 0;
    for (; k + 16 <= n_bins; k += 16)
        for (int j = 0; j < 16; j++)
            power_out[k + (size_t)j] = power_one(spec + 2 * (k + (size_t)j));
    for (; k < n_bins; k++)
        power_out[k] = power_one(spec + 2 * k);
}

DSP_CLONES
void dsp_spec_apply_gain(float *spec, const float *gains, size_t n_bins)
{
    size_t k = 0;
    for (; k + 16 <= n_bins; k += 16)
        for (int j = 0; j < 16; j++) {
            const float g = gains[k + (size_t)j];
            spec[2 * (k + (size_t)j)] *= g;
            spec[2 * (k + (size_t)j) + 1] *= g;
        }
    for (; k < n_bins; k++) {
        spec[2 * k] *= gains[k];
        spec[2 * k + 1] *= gains[k];
    }
}

void dsp_spec_magnitude(float *mag_out, const float *spec, size_t n_bins)
{
    for (size_t k = 0; k < n_bins; k++) {
        double re = spec[2 * k], im = spec[2 * k + 1];
        double m = sqrt(re * re + im * im);
        mag_out[k] = m > FLT_MAX ? FLT_MAX : (float)m;
    }
}

static bool floor_ok(float floor_power)
{
    return isfinite(floor_power) && floor_power > 0.0f;
}

#if DSP_HAVE_MVEC_LOGF
#include <immintrin.h>

/* glibc libmvec's logf on eight floats (AVX2 variant; within 4 ulp of logf). */
__m256 _ZGVdN8v_logf(__m256 x);

/* MAXPS returns its second operand when either is NaN: NaN takes the floor. */
__attribute__((target("avx2"))) static size_t log_floor_avx2(float *out, const float *in, size_t n, float floor_power)
{
    const __m256 fl = _mm256_set1_ps(floor_power);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _ZGVdN8v_logf(_mm256_max_ps(_mm256_loadu_ps(in + i), fl)));
    return i;
}
#endif

int dsp_log_floor(float *out, const float *in, size_t n, float floor_power)
{
    if (!floor_ok(floor_power))
        return DSP_ERR_INVALID;
    size_t i = 0;
#if DSP_HAVE_MVEC_LOGF
    if (__builtin_cpu_supports("avx2")) i = log_floor_avx2(out, in, n, floor_power);
#endif
    for (; i < n; i++) {
        float p = in[i];
        /* Written so that NaN takes the floor too. */
        out[i] = logf(p > floor_power ? p : floor_power);
    }
    return DSP_OK;
}

static inline float floor_one(float g, float floor_gain)
{
    return g > floor_gain ? g : floor_gain; /* NaN takes the floor */
}

DSP_CLONES
void dsp_gain_floor(float *gains, size_t n, double atten_lim_db)
{
    const float floor_gain = atten_lim_db > 0 ? (float)pow(10.0, -atten_lim_db / 20.0) : 1.0f;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            gains[i + (size_t)j] = floor_one(gains[i + (size_t)j], floor_gain);
    for (; i < n; i++)
        gains[i] = floor_one(gains[i], floor_gain);
}

void dsp_mask_limit(float *gains, size_t n, const float *vad, const dsp_mask_limit_config *cfg,
                    uint64_t *quiet_frames)
{
    if (vad) /* the comparison as the daemon always made it: 100·vad against the percent */
        *quiet_frames = *vad * 100.0f < cfg->vad_gate_percent ? *quiet_frames + 1 : 0;
    if (!gains) return;
    /* integer arithmetic: frames·hop·1000 > grace_ms·rate, no rounding of the hop's duration */
    if (vad && cfg->vad_gate_percent > 0 &&
        *quiet_frames * cfg->hop_samples * 1000u > cfg->vad_grace_ms * cfg->sample_rate_hz)
        memset(gains, 0, n * sizeof *gains);
    dsp_gain_floor(gains, n, cfg->atten_lim_db);
}

/* ---- mel filterbank ---------------------------------------------------- */

struct dsp_melbank {
    size_t n_mels, n_bins;
    float *w;        /* {n_mels, n_bins} */
    size_t *lo, *hi; /* per row: non-zero columns are [lo, hi) */
};

/* Slaney's Auditory Toolbox scale as librosa.hz_to_mel(htk=False). */
#define SLANEY_F_SP (200.0 / 3.0)
#define SLANEY_MIN_LOG_HZ 1000.0
#define SLANEY_MIN_LOG_MEL (SLANEY_MIN_LOG_HZ / SLANEY_F_SP) /* 15 */

static double slaney_logstep(void) { return log(6.4) / 27.0; }

static double hz_to_mel(double f, dsp_mel_scale scale)
{
    if (scale == DSP_MEL_HTK)
        return 2595.0 * log10(1.0 + f / 700.0);
    if (f >= SLANEY_MIN_LOG_HZ)
        return SLANEY_MIN_LOG_MEL + log(f / SLANEY_MIN_LOG_HZ) / slaney_logstep();
    return f / SLANEY_F_SP;
}

static double mel_to_hz(double m, dsp_mel_scale scale)
{
    if (scale == DSP_MEL_HTK)
        return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    if (m >= SLANEY_MIN_LOG_MEL)
        return SLANEY_MIN_LOG_HZ * exp(slaney_logstep() * (m - SLANEY_MIN_LOG_MEL));
    return SLANEY_F_SP * m;
}

int dsp_melbank_create(dsp_melbank **out, const dsp_mel_config *cfg, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: out pointer is NULL");
    *out = NULL;
    if (!cfg)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: no configuration given");
    const double sr = cfg->sample_rate_hz;
    if (!isfinite(sr) || !(sr > 0.0))
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: sample_rate_hz must be > 0 (got %g)", sr);
    if (cfg->n_fft < 2 || cfg->n_fft > ((size_t)1 << 24))
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: n_fft must be in [2, 2^24] (got %zu)", cfg->n_fft);
    if (cfg->n_mels == 0 || cfg->n_mels > 4096)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: n_mels must be in [1, 4096] (got %zu)",
                             cfg->n_mels);
    const double fmax = cfg->fmax_hz == 0.0 ? sr / 2.0 : cfg->fmax_hz;
    if (!isfinite(fmax) || fmax > sr / 2.0)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "mel: fmax_hz %g is above the Nyquist frequency %g Hz", fmax, sr / 2.0);
    if (!isfinite(cfg->fmin_hz) || cfg->fmin_hz < 0.0 || cfg->fmin_hz >= fmax)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: fmin_hz must be in [0, fmax=%g) (got %g)",
                             fmax, cfg->fmin_hz);
    if (cfg->scale != DSP_MEL_SLANEY && cfg->scale != DSP_MEL_HTK)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: unknown scale %d", (int)cfg->scale);
    if (cfg->norm != DSP_MEL_NORM_SLANEY && cfg->norm != DSP_MEL_NORM_NONE)
        return dsp_error_set(err, DSP_ERR_INVALID, "mel: unknown norm %d", (int)cfg->norm);

    const size_t n_mels = cfg->n_mels, n_bins = cfg->n_fft / 2 + 1;
    dsp_melbank *mb = calloc(1, sizeof *mb);
    double *edges = malloc((n_mels + 2) * sizeof *edges);
    if (mb) {
        mb->w = calloc(n_mels * n_bins, sizeof *mb->w);
        mb->lo = calloc(n_mels, sizeof *mb->lo);
        mb->hi = calloc(n_mels, sizeof *mb->hi);
    }
    if (!mb || !edges || !mb->w || !mb->lo || !mb->hi) {
        free(edges);
        dsp_melbank_destroy(mb);
        return dsp_error_set(err, DSP_ERR_NOMEM, "mel: out of memory for %zu x %zu weights", n_mels, n_bins);
    }
    mb->n_mels = n_mels;
    mb->n_bins = n_bins;

    /* Edge frequencies: numpy.linspace over the mel range, back to Hz. */
    const double mlo = hz_to_mel(cfg->fmin_hz, cfg->scale);
    const double mhi = hz_to_mel(fmax, cfg->scale);
    const double step = (mhi - mlo) / (double)(n_mels + 1);
    for (size_t i = 0; i < n_mels + 2; i++)
        edges[i] = mel_to_hz(i == n_mels + 1 ? mhi : mlo + (double)i * step, cfg->scale);

    size_t n_empty = 0;
    for (size_t i = 0; i < n_mels; i++) {
        const double f0 = edges[i], f1 = edges[i + 1], f2 = edges[i + 2];
        const double enorm = cfg->norm == DSP_MEL_NORM_SLANEY ? 2.0 / (f2 - f0) : 1.0;
        float *row = mb->w + i * n_bins;
        size_t lo = n_bins, hi = 0;
        for (size_t k = 0; k < n_bins; k++) {
            const double f = (double)k * sr / (double)cfg->n_fft;
            const double lower = (f - f0) / (f1 - f0);
            const double upper = (f2 - f) / (f2 - f1);
            double v = lower < upper ? lower : upper;
            v = v > 0.0 ? v * enorm : 0.0;
            row[k] = (float)v;
            if (row[k] != 0.0f) {
                lo = k < lo ? k : lo;
                hi = k + 1;
            }
        }
        if (hi == 0) {
            lo = 0;
            n_empty++;
        }
        mb->lo[i] = lo;
        mb->hi[i] = hi;
    }
    free(edges);
    if (n_empty)
        dsp_log(DSP_LOG_WARN, "mel: %zu of %zu filters are empty (n_mels %zu too high for n_fft %zu)",
                n_empty, n_mels, n_mels, cfg->n_fft);
    *out = mb;
    return DSP_OK;
}

void dsp_melbank_destroy(dsp_melbank *mb)
{
    if (!mb)
        return;
    free(mb->w);
    free(mb->lo);
    free(mb->hi);
    free(mb);
}

size_t dsp_melbank_n_mels(const dsp_melbank *mb) { return mb->n_mels; }
size_t dsp_melbank_n_bins(const dsp_melbank *mb) { return mb->n_bins; }
const float *dsp_melbank_weights(const dsp_melbank *mb) { return mb->w; }

void dsp_melbank_apply(const dsp_melbank *mb, float *mel_out, const float *power)
{
    for (size_t i = 0; i < mb->n_mels; i++) {
        const float *row = mb->w + i * mb->n_bins;
        float s = 0.0f;
        for (size_t k = mb->lo[i]; k < mb->hi[i]; k++)
            s += row[k] * power[k];
        mel_out[i] = s;
    }
}

int dsp_melbank_apply_log(const dsp_melbank *mb, float *out, const float *power,
                          float floor_power)
{
    if (!floor_ok(floor_power))
        return DSP_ERR_INVALID;
    dsp_melbank_apply(mb, out, power);
    return dsp_log_floor(out, out, mb->n_mels, floor_power);
}

/* ---- levels ------------------------------------------------------------ */

float dsp_rms_f32(const float *x, size_t n)
{
    if (n == 0)
        return 0.0f;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            s += (double)x[i] * (double)x[i];
    return (float)sqrt(s / (double)n);
}

float dsp_dbfs_f32(const float *x, size_t n)
{
    const double rms = dsp_rms_f32(x, n);
    if (!(rms > 0.0))
        return DSP_DBFS_FLOOR;
    const double db = 20.0 * log10(rms);
    return db < DSP_DBFS_FLOOR ? DSP_DBFS_FLOOR : (float)db;
}
