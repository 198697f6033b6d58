/* SPDX-License-Identifier: MIT */
/* dsp/pitch.h — pitch-correlation features of one frame, for spectral models
 * that take them after the log powers (frontend.features = log_power_pitch,
 * docs/model-format.md).
 *
 * The math (as RNNoise, J.-M. Valin, "A Hybrid DSP/Deep Learning Approach to
 * Real-Time Full-Band Speech Enhancement", 2018, §3.1, with its own search):
 *   1. Pitch lag.  For the frame x (n_fft samples) and the samples before it,
 *      r(T) = Σ_n x_n·x_{n−T} / √(Σ x_n² · Σ x_{n−T}² + 1e-20), sums over the
 *      frame.  A coarse search runs on the signal decimated by 4 (means of 4
 *      samples, blocks aligned with the frame start) over the lags
 *      lag_min/4 … lag_max/4; the full-rate search then tries T = 4τ + δ,
 *      δ = −3 … 3, around the best coarse τ.  Each search keeps the FIRST lag
 *      whose r, rounded to a multiple of 2^-20, is largest; r is 0 where an
 *      energy is below 1e-12 of the whole history's and is clamped to
 *      [−1, 1] (so the choice does not hang on rounding noise: train/model.py
 *      computes the sums through an FFT and running sums, and gets the same
 *      lags except at the rare r within rounding of a 2^-20 boundary).
 *   2. Band correlations.  P = STFT of the frame delayed by T (the samples
 *      x_{n−T}, the same analysis window); for each pitch band [e_b, e_{b+1})
 *      of bins, c_b = Σ Re(X_k·conj(P_k)) / √(Σ|X_k|² · Σ|P_k|² + 1e-20).
 *   Features: c_0 … c_{n_bands−1}, then r(T) (the voicing): n_edges values,
 *   each in [−1, 1]; digital silence gives 0.  train/model.py
 *   (pitch_features) is the reference; tests/dsp compares against it.
 *
 * State: a dsp_pitch object keeps the last lag_max + 4 samples before the
 * frame (one per stream; zeros at the start, as the framer's history), so
 * frames must be given in order, each the previous one advanced by
 * hop_samples (dsp_framer's frames).  Sums run in double.
 *
 * Threads: an object belongs to one stream; dsp_pitch_frame on different
 * objects may run concurrently.  create/destroy allocate; dsp_pitch_frame
 * does not allocate, lock or log (real-time safe), and its dsp_stft argument
 * is used as scratch (stft.h: an object keeps no state between calls).
 */
#ifndef DSP_PITCH_H
#define DSP_PITCH_H

#include <stddef.h>

#include "dsp/dsp.h"
#include "dsp/stft.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DSP_PITCH_DECIMATION = 4, DSP_PITCH_MAX_EDGES = 65 };

typedef struct dsp_pitch_config {
    size_t n_fft;        /**< frame length, samples: a multiple of 4 */
    size_t hop_samples;  /**< frame advance, samples: 1 … n_fft (the decimation's blocks of 4
                              are aligned with each frame's start, whatever the hop) */
    int lag_min;         /**< shortest coarse lag, samples: a multiple of 4, ≥ 8 (the full-rate
                              search tries down to lag_min − 3) */
    int lag_max;         /**< longest coarse lag, samples: a multiple of 4, > lag_min, ≤ 65536
                              (the full-rate search tries up to lag_max + 3) */
    const int *band_edges; /**< n_edges strictly increasing bin indices in [0, n_fft/2 + 1] */
    size_t n_edges;      /**< 2 … DSP_PITCH_MAX_EDGES: n_edges − 1 bands */
    int portable;        /**< 0: the fastest code the CPU runs (AVX-512, AVX2 or portable);
                              1: the portable code; 2: at most AVX2.  All give the same bits
                              (tests compare them) */
    const struct dsp_pitch *scratch_from; /**< NULL, or a pitch object of the same n_fft, hop and
                              lags whose per-frame scratch (the coarse sums, energies and scores,
                              the delayed frame in double and its spectrum: 18 KB at n_fft 960,
                              hop 480, lags 96-768) this one uses instead of its own: nothing in
                              it is carried from one frame to the next, so the features are the
                              same.  It must outlive this one, and no two objects sharing it may
                              run dsp_pitch_frame at the same time */
} dsp_pitch_config;

typedef struct dsp_pitch dsp_pitch;

/** Checks cfg and allocates the history (zeros).  Returns DSP_OK, or
 *  DSP_ERR_INVALID with a message naming the field, or DSP_ERR_NOMEM.
 *  Not real-time safe (allocates). */
int dsp_pitch_create(dsp_pitch **out, const dsp_pitch_config *cfg, dsp_error *err);

/** Frees the object (NULL is fine). */
void dsp_pitch_destroy(dsp_pitch *p);

/** Number of features per frame: n_edges (n_edges − 1 bands + the voicing). */
size_t dsp_pitch_n_features(const dsp_pitch *p);

/** Zeros the history (a new stream). */
void dsp_pitch_reset(dsp_pitch *p);

/** Size of the history in bytes (what dsp_pitch_state_save writes): (lag_max
 *  + 4 + n_fft) floats, little-endian IEEE 754. */
size_t dsp_pitch_state_bytes(const dsp_pitch *p);

/** Writes the history to buf {dsp_pitch_state_bytes}.  Thread-safe with
 *  respect to other objects; no allocation. */
void dsp_pitch_state_save(const dsp_pitch *p, void *buf);

/** Checks a saved history without loading it: DSP_OK, or what
 *  dsp_pitch_state_load would refuse it for.  No allocation. */
int dsp_pitch_state_check(const dsp_pitch *p, const void *buf, size_t n, dsp_error *err);

/** Replaces the history with a saved one of the same configuration.  Returns
 *  DSP_OK, or DSP_ERR_FORMAT ("pitch history: …", the object unchanged) when n
 *  is not dsp_pitch_state_bytes or a sample is not finite. */
int dsp_pitch_state_load(dsp_pitch *p, const void *buf, size_t n, dsp_error *err);

/** Features of the next frame.  frame {n_fft} samples; spec {n_fft/2 + 1, 2}
 *  its spectrum from stft (stft.h); stft an analysis object of the same n_fft
 *  and window (scratch, used to transform the delayed frame); out
 *  {dsp_pitch_n_features} floats.  Appends the frame to the history.
 *  Returns the chosen lag T in samples. */
int dsp_pitch_frame(dsp_pitch *p, dsp_stft *stft, const float *frame, const float *spec, float *out);

#ifdef __cplusplus
}
#endif

#endif /* DSP_PITCH_H */
