/* SPDX-License-Identifier: MIT */
/* dsp/stft.h — analysis/synthesis windows and the short-time Fourier
 * transform of one frame (FFTW, single precision).
 *
 * Conventions
 *   - Frames are n_fft samples (n_window == n_fft; no zero padding).  They
 *     come from dsp_framer (framer.h): frame m holds input samples
 *     [(m+1)·hop − n_fft, (m+1)·hop), the first ones being zero history.
 *   - A spectrum is n_bins = n_fft/2 + 1 complex values (integer division,
 *     so odd n_fft works too), stored as interleaved floats
 *     {re0, im0, re1, im1, ...}: 2·n_bins floats, the same layout as
 *     fftwf_complex and numpy.fft.rfft(window·frame).view(float32) for a
 *     float32 frame.  Bin k is at k·sample_rate_hz/n_fft Hz.
 *   - Forward:  X[k] = Σ_n a[n]·x[n]·e^{−2πi·kn/n_fft}  (no scaling; the same
 *     as numpy.fft.rfft and torch.stft(normalized=False, center=False)).
 *   - Inverse:  y[n] = g[n] · (1/n_fft)·Σ_k X[k]·e^{+2πi·kn/n_fft}, the
 *     Hermitian-symmetric real inverse (numpy.fft.irfft with n=n_fft); the
 *     imaginary parts of bin 0 and, for even n_fft, of the Nyquist bin are
 *     ignored.  g is the normalised synthesis window below.
 *
 * Windows (built once at create, in double precision, stored as float)
 *   DSP_WINDOW_HANN       periodic Hann, w[n] = 0.5 − 0.5·cos(2πn/N), n < N:
 *                         torch.hann_window(N, periodic=True) and
 *                         scipy.signal.get_window('hann', N).
 *   DSP_WINDOW_SQRT_HANN  sqrt of the periodic Hann above (analysis and
 *                         synthesis halves of a Hann WOLA pair).
 *   DSP_WINDOW_RECT       all ones.
 *
 * Weighted overlap-add normalisation (the synthesis side)
 *   With analysis window a, synthesis window s and hop H, overlap-adding the
 *   frames a·s·x gives x·D[n], where the envelope D[n] = Σ_k a[n+kH]·s[n+kH]
 *   (n in [0, H), k over all shifts inside the window).  dsp_stft_create
 *   computes D and accepts a pair only if D is constant within a relative
 *   1e-4 (the constant-overlap-add condition) and positive; the stored
 *   synthesis window is then g = s / mean(D), so that identity processing
 *   reconstructs the input exactly (up to float rounding) after the delay
 *   n_fft − hop.  Pairs that pass, among others:
 *     sqrt-Hann / sqrt-Hann, hop = n_fft/2, n_fft/3, n_fft/4, ... (n_fft/H
 *       an integer ≥ 2): D = (n_fft/H)/2;
 *     Hann / rect, the same hops: D = (n_fft/H)/2;
 *     Hann / Hann, hop = n_fft/3, n_fft/4, ... (integer ≥ 3): D = 3N/(8H);
 *     rect / rect, hop = n_fft: D = 1 (plain block transform).
 *   Refused with a message, for instance: hop not dividing n_fft for the
 *   Hann family (400/160), Hann/Hann at hop n_fft/2, Hann / rect at
 *   hop = n_fft.  Analysis-only objects (synthesis DSP_WINDOW_NONE) accept
 *   any 1 ≤ hop ≤ n_fft, e.g. Hann 400/160 for log-mel features.
 *
 * Determinism and threads
 *   Plans are made with FFTW_ESTIMATE, which picks plans without timing
 *   measurements, so the same n_fft gets the same plan — and bit-identical
 *   results — on every run and in every process on the same build and CPU.
 *   The daemon's bit-exact tests rely on this: nothing in the process may
 *   plan with FFTW_MEASURE/PATIENT or import wisdom, because ESTIMATE plans
 *   reuse wisdom gathered at higher planning levels.  FFTW's planner is not
 *   thread-safe:
 *   create/destroy take a process-wide mutex (dsp_fftw_planner_lock), which any
 *   other code in the process that plans or destroys FFTW plans must take too.
 *   forward/inverse use only fftwf_execute_dft_r2c/c2r (new-array execute)
 *   on buffers owned by the object: they are real-time safe (no allocation,
 *   lock, syscall or logging) and may run concurrently on *different*
 *   objects; one object must not be used by two threads at once.  An
 *   object keeps no state between calls (its buffers are scratch), so one
 *   per processing thread can serve every stream of the same n_fft/hop.
 */
#ifndef DSP_STFT_H
#define DSP_STFT_H

#include <stddef.h>

#include "dsp/dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Window shapes (see the file comment for formulas and conventions). */
typedef enum dsp_window {
    DSP_WINDOW_NONE = 0,      /**< synthesis only: analysis-only STFT (no inverse) */
    DSP_WINDOW_RECT,          /**< all ones */
    DSP_WINDOW_HANN,          /**< periodic Hann, as torch.hann_window(periodic=True) */
    DSP_WINDOW_SQRT_HANN,     /**< square root of the periodic Hann */
} dsp_window;

/** Static lower-case name of a window ("hann", "sqrt-hann", "rect", "none";
 *  "unknown" otherwise).  Thread-safe. */
const char *dsp_window_name(dsp_window kind);

/** Fills out[0..n) with the window `kind` of length n (periodic
 *  definition).  Computed in double, rounded to float.  Returns DSP_OK, or
 *  DSP_ERR_INVALID for n == 0, out NULL or kind NONE/unknown.  Pure,
 *  thread-safe, real-time safe. */
int dsp_window_fill(float *out, size_t n, dsp_window kind);

/** STFT configuration.  All sizes in samples. */
typedef struct dsp_stft_config {
    size_t     n_fft;             /**< frame length = FFT size, ≥ 2, any value (odd too) */
    size_t     hop_samples;       /**< frame advance, 1 ≤ hop ≤ n_fft */
    dsp_window analysis_window;   /**< RECT, HANN or SQRT_HANN */
    dsp_window synthesis_window;  /**< RECT, HANN, SQRT_HANN, or NONE for analysis only */
} dsp_stft_config;

/** Opaque STFT object: windows, FFTW plans and scratch buffers. */
typedef struct dsp_stft dsp_stft;

/** Validates cfg, builds the windows and the FFTW plans (FFTW_ESTIMATE, under
 *  the planner mutex).  On success stores the new object in *out (caller
 *  owns it; free with dsp_stft_destroy()) and returns DSP_OK.  On failure
 *  *out is NULL (unless out itself is NULL) and the call returns, with err
 *  (may be NULL) filled: DSP_ERR_INVALID for out or cfg NULL, n_fft < 2 or
 *  > 2^24, hop 0 or > n_fft, an unknown window, a window/hop pair that does
 *  not satisfy the constant-overlap-add condition (the message names the
 *  pair and the envelope's range); DSP_ERR_NOMEM; DSP_ERR_LIBRARY if FFTW
 *  cannot plan.  Not real-time safe (allocates, locks); thread-safe. */
int dsp_stft_create(dsp_stft **out, const dsp_stft_config *cfg, dsp_error *err);

/** Frees everything (takes the planner mutex).  NULL is a no-op. */
void dsp_stft_destroy(dsp_stft *st);

/** n_fft/2 + 1. */
size_t dsp_stft_n_bins(const dsp_stft *st);
/** The configured n_fft (samples). */
size_t dsp_stft_n_fft(const dsp_stft *st);
/** The configured hop (samples). */
size_t dsp_stft_hop_samples(const dsp_stft *st);

/** The analysis window (n_fft floats) and the normalised synthesis window g
 *  (n_fft floats; NULL for an analysis-only object).  Owned by st, valid
 *  until dsp_stft_destroy. */
const float *dsp_stft_analysis_window(const dsp_stft *st);
const float *dsp_stft_synthesis_window(const dsp_stft *st);

/** Forward transform of one frame: spec_out {n_bins, 2} (interleaved re/im)
 *  = rfft(analysis_window · frame {n_fft}).  Buffers are the caller's, any
 *  alignment, must not overlap.  Finite input below 1e30 in magnitude gives finite
 *  output.  Returns
 *  DSP_OK (or DSP_ERR_INVALID on NULL arguments).  Real-time safe. */
int dsp_stft_forward(dsp_stft *st, float *spec_out, const float *frame);

/** Inverse transform of one spectrum: frame_out {n_fft} =
 *  g · irfft(spec {n_bins, 2}), ready to be overlap-added by
 *  dsp_framer_synthesize.  spec is not modified.  Returns DSP_OK, or
 *  DSP_ERR_INVALID on NULL arguments or for an analysis-only object.
 *  Real-time safe. */
int dsp_stft_inverse(dsp_stft *st, float *frame_out, const float *spec);

/** The process-wide FFTW planner mutex taken by dsp_stft_create/destroy.
 *  Code outside dsp/ that creates or destroys FFTW plans in the same process
 *  must hold it around those calls.  Not real-time safe. */
void dsp_fftw_planner_lock(void);
void dsp_fftw_planner_unlock(void);

#ifdef __cplusplus
}
#endif
#endif /* DSP_STFT_H */
