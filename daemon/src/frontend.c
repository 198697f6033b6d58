/* SPDX-License-Identifier: MIT */
#include "frontend.h"

#include "errf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int meta_int(const ssm_model *m, const char *key, long lo, long hi, long def, int *out,
                    char *err, size_t cap)
{
    const char *v = ssm_model_meta(m, key);
    if (!v) {
        if (def < 0) return ssmd_errf(err, cap, "%s: missing from the model's metadata", key);
        *out = (int)def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return ssmd_errf(err, cap, "%s: expected an integer in [%ld, %ld], got '%s'", key, lo, hi, v);
    *out = (int)x;
    return 0;
}

static int meta_double(const ssm_model *m, const char *key, double lo, double hi, double def,
                       double *out, char *err, size_t cap)
{
    const char *v = ssm_model_meta(m, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
        return ssmd_errf(err, cap, "%s: expected a number in [%g, %g], got '%s'", key, lo, hi, v);
    *out = x;
    return 0;
}

/* frontend.pitch_band_edges: comma-separated bin indices ("1,3,5,…"). */
static int pitch_edges(const ssm_model *m, ssmd_frontend *fe, char *err, size_t cap)
{
    const char *v = ssm_model_meta(m, "frontend.pitch_band_edges");
    if (!v) return ssmd_errf(err, cap, "frontend.pitch_band_edges: missing from the model's metadata");
    const char *s = v;
    fe->n_pitch_edges = 0;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (!isdigit((unsigned char)*s) || errno || end == s || x < 0 || x > fe->n_bins || fe->n_pitch_edges == DSP_PITCH_MAX_EDGES ||
            (*end != ',' && *end != '\0'))
            return ssmd_errf(err, cap, "frontend.pitch_band_edges: expected up to %d comma-separated bin "
                             "indices in [0, %d], got '%s'", DSP_PITCH_MAX_EDGES, fe->n_bins, v);
        fe->pitch_edges[fe->n_pitch_edges++] = (int)x;
        if (*end == '\0') break;
        s = end + 1;
    }
    return 0;
}

int ssmd_frontend_from_model(ssmd_frontend *fe, const ssm_model *m, char *err, size_t cap)
{
    memset(fe, 0, sizeof *fe);
    if (ssm_model_input(m) != SSM_MODEL_INPUT_FEATURES)
        return ssmd_errf(err, cap, "input: this is a token model (generation); audio processing needs "
                              "a model with input = features");
    if (meta_int(m, "frontend.sample_rate_hz", 1000, 384000, -1, &fe->sample_rate_hz, err, cap) ||
        meta_int(m, "frontend.n_fft", 16, 65536, -1, &fe->n_fft, err, cap) ||
        meta_int(m, "frontend.hop", 1, 65536, -1, &fe->hop_samples, err, cap))
        return -1;
    if (fe->hop_samples > fe->n_fft)
        return ssmd_errf(err, cap, "frontend.hop: %d is larger than frontend.n_fft %d", fe->hop_samples, fe->n_fft);
    fe->n_bins = fe->n_fft / 2 + 1;
    if (meta_int(m, "frontend.lookahead_frames", 0, SSMD_MAX_LOOKAHEAD_FRAMES, 0, &fe->lookahead_frames, err, cap))
        return -1;
    fe->latency_samples = fe->n_fft - fe->hop_samples + fe->lookahead_frames * fe->hop_samples;

    const char *win = ssm_model_meta(m, "frontend.window");
    if (!win || strcmp(win, "sqrt_hann") == 0) {
        fe->analysis = fe->synthesis = DSP_WINDOW_SQRT_HANN;
    } else if (strcmp(win, "hann") == 0) {
        fe->analysis = DSP_WINDOW_HANN;
        fe->synthesis = DSP_WINDOW_RECT;
    } else {
        return ssmd_errf(err, cap, "frontend.window: expected sqrt_hann or hann, got '%s'", win);
    }
    int win_length = 0; /* the windows span the whole frame: a shorter one would be another function */
    if (meta_int(m, "frontend.win_length", 1, 65536, fe->n_fft, &win_length, err, cap)) return -1;
    if (win_length != fe->n_fft)
        return ssmd_errf(err, cap, "frontend.win_length: %d, but the daemon's analysis and synthesis windows span "
                         "the whole frame (frontend.n_fft %d): only win_length = n_fft is supported",
                         win_length, fe->n_fft);
    /* the STFT's own checks (overlap-add to a constant) at load, not at each stream's start */
    dsp_stft_config sc = { .n_fft = (size_t)fe->n_fft, .hop_samples = (size_t)fe->hop_samples,
                           .analysis_window = fe->analysis, .synthesis_window = fe->synthesis };
    dsp_stft *stft = NULL;
    dsp_error de = { 0 };
    if (dsp_stft_create(&stft, &sc, &de) != DSP_OK)
        return ssmd_errf(err, cap, "frontend.n_fft %d, hop %d, window %s: %s", fe->n_fft, fe->hop_samples,
                         win ? win : "sqrt_hann", de.msg);
    dsp_stft_destroy(stft);

    const char *feat = ssm_model_meta(m, "frontend.features");
    if (!feat) return ssmd_errf(err, cap, "frontend.features: missing from the model's metadata");
    double floor_power;
    if (meta_double(m, "frontend.log_floor", 1e-30, 1.0, 1e-10, &floor_power, err, cap)) return -1;
    fe->log_floor = (float)floor_power;
    if (strcmp(feat, "log_power") == 0) {
        fe->features = SSMD_FEATURES_LOG_POWER;
        fe->n_features = fe->n_bins;
    } else if (strcmp(feat, "log_mel") == 0) {
        fe->features = SSMD_FEATURES_LOG_MEL;
        if (meta_int(m, "frontend.n_mels", 1, 1024, -1, &fe->n_mels, err, cap) ||
            meta_double(m, "frontend.fmin_hz", 0, fe->sample_rate_hz / 2.0, 0, &fe->fmin_hz, err, cap) ||
            meta_double(m, "frontend.fmax_hz", 0, fe->sample_rate_hz / 2.0, 0, &fe->fmax_hz, err, cap))
            return -1;
        fe->n_features = fe->n_mels;
    } else if (strcmp(feat, "log_power_pitch") == 0) {
        fe->features = SSMD_FEATURES_LOG_POWER_PITCH;
        if (meta_int(m, "frontend.pitch_lag_min", 8, 65536, -1, &fe->pitch_lag_min, err, cap) ||
            meta_int(m, "frontend.pitch_lag_max", 8, 65536, -1, &fe->pitch_lag_max, err, cap) ||
            pitch_edges(m, fe, err, cap))
            return -1;
        dsp_pitch_config pc = { .n_fft = (size_t)fe->n_fft, .hop_samples = (size_t)fe->hop_samples,
                                .lag_min = fe->pitch_lag_min, .lag_max = fe->pitch_lag_max,
                                .band_edges = fe->pitch_edges, .n_edges = (size_t)fe->n_pitch_edges };
        dsp_pitch *probe = NULL;
        if (dsp_pitch_create(&probe, &pc, &de) != DSP_OK)
            return ssmd_errf(err, cap, "frontend.features log_power_pitch: %s", de.msg);
        dsp_pitch_destroy(probe);
        fe->n_features = fe->n_bins + fe->n_pitch_edges;
    } else {
        return ssmd_errf(err, cap, "frontend.features: expected log_power, log_power_pitch or log_mel, got '%s'",
                         feat);
    }
    if (ssm_model_n_features(m) != fe->n_features)
        return ssmd_errf(err, cap, "n_features: the model takes %d features per frame but frontend.%s gives %d",
                    ssm_model_n_features(m),
                    fe->features == SSMD_FEATURES_LOG_MEL ? "n_mels"
                    : fe->features == SSMD_FEATURES_LOG_POWER_PITCH ? "n_fft and pitch_band_edges" : "n_fft",
                    fe->n_features);
    if ((ssm_model_heads(m) & SSM_MODEL_HEAD_MASK) && ssm_model_n_mask(m) != fe->n_bins)
        return ssmd_errf(err, cap, "head.mask: %d gains per frame, but frontend.n_fft %d has %d bins",
                    ssm_model_n_mask(m), fe->n_fft, fe->n_bins);
    return 0;
}

size_t ssmd_frontend_history_bytes(const ssmd_frontend *fe)
{
    if (fe->features != SSMD_FEATURES_LOG_POWER_PITCH) return 0;
    return ((size_t)fe->pitch_lag_max + DSP_PITCH_DECIMATION + (size_t)fe->n_fft) * sizeof(float);
}
