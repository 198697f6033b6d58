/* SPDX-License-Identifier: MIT */
/* The audio front-end of a spectral model, read from the model file's
 * __metadata__ (docs/model-format.md, keys frontend.*): sample rate, STFT
 * size, hop, window and the features the model was trained on.
 * Threads: plain data, filled once at start-up. */
#ifndef SSMD_FRONTEND_H
#define SSMD_FRONTEND_H

#include <stddef.h>

#include "dsp/pitch.h"
#include "dsp/stft.h"
#include "ssm/model.h"

/** Largest frontend.lookahead_frames a model may ask for. */
#define SSMD_MAX_LOOKAHEAD_FRAMES 8

typedef enum ssmd_feature_kind {
    SSMD_FEATURES_LOG_POWER = 0, /**< ln(max(|X_k|², floor)) for every bin: n_fft/2+1 values */
    SSMD_FEATURES_LOG_MEL   = 1, /**< ln(max(mel·|X|², floor)), Slaney mel (librosa default) */
    SSMD_FEATURES_LOG_POWER_PITCH = 2, /**< the log powers, then the pitch features of dsp/pitch.h:
                                            n_bins + n_pitch_edges values */
} ssmd_feature_kind;

typedef struct ssmd_frontend {
    int sample_rate_hz;       /**< the model's rate; inputs are resampled to it */
    int n_fft;                /**< STFT size = frame length, samples */
    int hop_samples;          /**< frame advance, samples (one model step per hop) */
    int n_bins;               /**< n_fft/2 + 1 */
    dsp_window analysis;      /**< from frontend.window: sqrt_hann → sqrt_hann/sqrt_hann, */
    dsp_window synthesis;     /**<   hann → hann analysis, rect synthesis */
    ssmd_feature_kind features;
    int n_features;           /**< the model's input width: n_bins, n_mels or n_bins + n_pitch_edges */
    int n_mels;
    double fmin_hz, fmax_hz;  /**< mel range (fmax 0 = Nyquist) */
    float log_floor;          /**< power floor before the log (absolute, full scale = 1.0) */
    int pitch_lag_min, pitch_lag_max;      /**< log_power_pitch: lag range, samples (dsp/pitch.h) */
    int n_pitch_edges;                     /**< log_power_pitch: pitch band edges (bands + 1) */
    int pitch_edges[DSP_PITCH_MAX_EDGES];  /**< their bin indices, increasing */
    int lookahead_frames;     /**< frontend.lookahead_frames d (0 if absent): the heads' row of
                                   step t belongs to frame t − d, so the stream masks and
                                   reports each frame d hops after it was captured */
    int latency_samples;      /**< algorithmic delay n_fft − hop + d·hop, at sample_rate_hz */
} ssmd_frontend;

/** Reads and checks the front-end of model: metadata keys present and in
 *  range, model input kind "features" with n_features matching, mask head
 *  (if any) of n_bins gains.  Returns 0, or -1 with one line in err naming the
 *  key and what is wrong (e.g. "frontend.n_fft: missing"). */
int ssmd_frontend_from_model(ssmd_frontend *fe, const ssm_model *model, char *err, size_t cap);

/** Bytes of input history a stream keeps for the features beyond the model's
 *  state: the pitch history of a log_power_pitch front end ((pitch_lag_max + 4
 *  + n_fft) floats, dsp/pitch.h; saved with the stream), 0 otherwise.  Pure. */
size_t ssmd_frontend_history_bytes(const ssmd_frontend *fe);

#endif /* SSMD_FRONTEND_H */
