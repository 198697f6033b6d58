/* SPDX-License-Identifier: MIT */
/* dsp/features.h — per-frame features computed from an STFT spectrum
 * (stft.h): magnitude, power, log-power, mel filterbank, log-mel; and the
 * level of a block of samples (RMS, dBFS).
 *
 * Shapes: a spectrum is {n_bins, 2} interleaved re/im floats (stft.h);
 * magnitude/power/log-power are {n_bins}; mel energies are {n_mels}.
 * Units: frequencies in Hz, levels in dB relative to full scale.
 *
 * Log base: every log feature here is the NATURAL logarithm, ln(max(p,
 * floor)), with `floor` an absolute power (same unit as the input power;
 * 1e-10 is a common choice, ln(1e-10) ≈ −23.03).  To get dB multiply by
 * 10/ln(10) ≈ 4.3429.  A log feature is never −Inf or NaN: zero, negative
 * and NaN powers map to ln(floor).
 *
 * All functions are pure (caller-owned buffers, output first, explicit
 * sizes), never allocate, and are real-time safe and thread-safe, except
 * dsp_melbank_create/destroy (allocate; not real-time safe).
 */
#ifndef DSP_FEATURES_H
#define DSP_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "dsp/dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** power_out[k] = re_k² + im_k² for k < n_bins (computed in double, clamped
 *  to FLT_MAX so finite input never yields Inf).  spec {n_bins, 2}. */
void dsp_spec_power(float *power_out, const float *spec, size_t n_bins);

/** spec[k] ← gains[k]·spec[k] for k < n_bins (both the real and the imaginary
 *  part, each one float multiply), in place: a real gain mask on a spectrum.
 *  spec {n_bins, 2}, gains {n_bins}; they do not overlap.  Pure apart from
 *  spec; real-time safe. */
void dsp_spec_apply_gain(float *spec, const float *gains, size_t n_bins);

/** mag_out[k] = sqrt(re_k² + im_k²) (double inside, clamped to FLT_MAX). */
void dsp_spec_magnitude(float *mag_out, const float *spec, size_t n_bins);

/** out[i] = ln(max(in[i], floor_power)) for i < n; NaN inputs give
 *  ln(floor_power).  out may equal in (in place).  ln is C's logf, or on a CPU
 *  with AVX2 and glibc's libmvec its vector logf, eight at a time (within 4
 *  ulp of logf; measured over every 97th positive float: 4 % differ).  So, as
 *  with FFTW's plans (stft.h), the last bits depend on the CPU: the same
 *  build on the same CPU gives the same bits.  Returns DSP_OK, or
 *  DSP_ERR_INVALID (nothing written) unless floor_power is finite and > 0. */
int dsp_log_floor(float *out, const float *in, size_t n, float floor_power);

/** gains[i] = max(gains[i], 10^(−atten_lim_db / 20)) for i < n, in place: the
 *  attenuation limit of a gain mask (as DeepFilterNet's --atten-lim-db), so that
 *  no bin is attenuated by more than atten_lim_db decibels.  NaN gains take the
 *  floor.  atten_lim_db ≤ 0 makes every gain at least 1 (pass-through); +Inf
 *  leaves the gains unchanged.  Pure, RT safe. */
void dsp_gain_floor(float *gains, size_t n, double atten_lim_db);

/** The voice-activity gate and attenuation limit of a denoiser's gain mask,
 *  one frame at a time: the daemon's vad_gate / vad_grace_ms / atten_lim_db
 *  options and the LADSPA plugin's controls (one implementation for both). */
typedef struct dsp_mask_limit_config {
    double   atten_lim_db;     /**< dsp_gain_floor's limit, dB (<= 0: pass-through) */
    float    vad_gate_percent; /**< gate threshold on 100·vad, percent; <= 0: gate off */
    uint64_t vad_grace_ms;     /**< ms of voice activity below the gate before it closes */
    uint64_t hop_samples;      /**< frame advance at sample_rate_hz (> 0) */
    uint64_t sample_rate_hz;   /**< rate of the frames (the model's, > 0) */
} dsp_mask_limit_config;

/** Applies the gate and the limit to one frame's gains {n} in place.
 *  vad (may be NULL: no voice-activity output) is the frame's probability in
 *  [0, 1]; *quiet_frames (caller-owned, one per stream, start at 0) counts
 *  consecutive frames with 100·vad below vad_gate_percent and is updated
 *  whenever vad is given (it stays 0 while the gate is off, so turning the
 *  gate on starts the grace afresh).  When the gate is on and the count
 *  covers more than vad_grace_ms, every gain becomes 0 first, which the
 *  limit then raises to its floor 10^(−atten_lim_db/20).  gains may be NULL
 *  (no mask: only the count is updated).  Pure apart from *quiet_frames,
 *  RT safe. */
void dsp_mask_limit(float *gains, size_t n, const float *vad, const dsp_mask_limit_config *cfg,
                    uint64_t *quiet_frames);

/** Mel scale of the filterbank. */
typedef enum dsp_mel_scale {
    DSP_MEL_SLANEY = 0, /**< Slaney (Auditory Toolbox): linear 200/3 Hz per mel below
                             1000 Hz, logarithmic above with step ln(6.4)/27 per mel;
                             librosa.hz_to_mel(htk=False), the librosa default */
    DSP_MEL_HTK,        /**< HTK: mel = 2595·log10(1 + f/700); librosa htk=True */
} dsp_mel_scale;

/** Filter normalisation. */
typedef enum dsp_mel_norm {
    DSP_MEL_NORM_SLANEY = 0, /**< area normalisation: filter i scaled by
                                  2/(f_{i+2} − f_i) Hz; librosa norm='slaney' (default) */
    DSP_MEL_NORM_NONE,       /**< triangles of peak 1 (librosa norm=None) */
} dsp_mel_norm;

/** Mel filterbank configuration. */
typedef struct dsp_mel_config {
    double        sample_rate_hz; /**< > 0 */
    size_t        n_fft;          /**< ≥ 2; the filterbank has n_fft/2 + 1 columns */
    size_t        n_mels;         /**< ≥ 1 */
    double        fmin_hz;        /**< 0 ≤ fmin < fmax */
    double        fmax_hz;        /**< ≤ sample_rate_hz/2; 0 means sample_rate_hz/2 */
    dsp_mel_scale scale;
    dsp_mel_norm  norm;
} dsp_mel_config;

/** Opaque mel filterbank: the weight matrix {n_mels, n_bins} plus, per row,
 *  the range of non-zero columns used by dsp_melbank_apply. */
typedef struct dsp_melbank dsp_melbank;

/** Builds the filterbank exactly as librosa.filters.mel(sr, n_fft, n_mels,
 *  fmin, fmax, htk, norm) (version 0.10): n_mels + 2 edge frequencies
 *  equally spaced on the mel scale between mel(fmin) and mel(fmax), mapped
 *  back to Hz (f_0 .. f_{n_mels+1}); bin k at k·sr/n_fft Hz; row i is the
 *  triangle max(0, min((f − f_i)/(f_{i+1} − f_i), (f_{i+2} − f)/(f_{i+2} −
 *  f_{i+1}))), times 2/(f_{i+2} − f_i) with Slaney norm.  Computed in
 *  double, stored as float.  A row that is all zero (n_mels too large for
 *  n_fft) is allowed with a warning through dsp_log, as librosa warns.
 *  On success stores the new object in *out (caller owns it; free with
 *  dsp_melbank_destroy()) and returns DSP_OK.  On failure *out is NULL
 *  (unless out itself is NULL) and the call returns, with err (may be NULL)
 *  filled: DSP_ERR_INVALID (message names the field) for out or cfg NULL,
 *  sample rate ≤ 0 or non-finite, n_fft < 2 or > 2^24, n_mels 0 or > 4096,
 *  fmin < 0, fmax > sr/2, fmin ≥ fmax, unknown scale/norm; DSP_ERR_NOMEM.
 *  Thread-safe; not real-time safe (allocates). */
int dsp_melbank_create(dsp_melbank **out, const dsp_mel_config *cfg, dsp_error *err);

/** Frees mb.  NULL is a no-op. */
void dsp_melbank_destroy(dsp_melbank *mb);

size_t dsp_melbank_n_mels(const dsp_melbank *mb);
size_t dsp_melbank_n_bins(const dsp_melbank *mb);

/** The dense weight matrix {n_mels, n_bins}, row-major.  Owned by mb. */
const float *dsp_melbank_weights(const dsp_melbank *mb);

/** mel_out {n_mels} = W · power {n_bins} (accumulated in float, columns in
 *  increasing order, over each row's non-zero range).  Real-time safe;
 *  concurrent calls on one melbank are fine (it is read-only). */
void dsp_melbank_apply(const dsp_melbank *mb, float *mel_out, const float *power);

/** log-mel in one call: out {n_mels} = ln(max(W · power, floor_power)).
 *  Returns DSP_OK or DSP_ERR_INVALID for a floor that is not finite and > 0. */
int dsp_melbank_apply_log(const dsp_melbank *mb, float *out, const float *power,
                          float floor_power);

/** Level floor of dsp_dbfs_f32, in dB: the value returned for silence. */
#define DSP_DBFS_FLOOR (-160.0f)

/** Root mean square of x[0..n): sqrt(Σ x²/n), accumulated in double; 0 for
 *  n == 0.  Non-finite samples are skipped (counted as 0). */
float dsp_rms_f32(const float *x, size_t n);

/** Level of x[0..n) in dB relative to full scale: 20·log10(rms), where a
 *  constant ±1.0 signal is 0 dBFS (a full-scale sine reads −3.01 dBFS).
 *  Never below DSP_DBFS_FLOOR (silence, n == 0), never −Inf or NaN. */
float dsp_dbfs_f32(const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DSP_FEATURES_H */
