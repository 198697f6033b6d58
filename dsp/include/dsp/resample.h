/* SPDX-License-Identifier: MIT */
/* dsp/resample.h — streaming sample-rate conversion (libsoxr).
 *
 * Converts interleaved float frames from one sample rate to another, for any
 * channel count, with the SoX resampler (libsoxr: linear-phase multi-stage
 * FIR/DFT filters, soxr_create() with SOXR_FLOAT32_I and one of its quality
 * recipes) driven through soxr_process() in fixed blocks, so a stream of any
 * length is converted in chunks of any size with constant memory.
 *
 * Alignment and length contract (what the daemon and offline files rely on):
 *   - Output frame k corresponds to the instant k / out_rate_hz seconds after
 *     input frame 0: the converter's group delay is removed.  soxr's
 *     linear-phase filters are centred on the output instant, so the residual
 *     delay is 0; the resampler nevertheless measures it at create with an
 *     impulse through a scratch converter and discards that many leading
 *     output frames, so the contract holds even if a soxr version behaves
 *     otherwise.
 *   - After dsp_resampler_flush() the total number of output frames is exactly
 *     dsp_resample_output_frames(n_in, in_rate_hz, out_rate_hz)
 *     = round(n_in * out_rate_hz / in_rate_hz), with halves rounded up
 *     (floor(x + 1/2)), computed in exact integer arithmetic.  The flush feeds
 *     zeros (the filter's look-ahead) until that count is reached.
 *   - Processing a signal in chunks of any size gives bit-identical output to
 *     processing it whole (tests/dsp/test_resample.c proves it): soxr only
 *     ever sees blocks of DSP_RESAMPLE_BLOCK_FRAMES input frames.
 *   - Latency: besides the filter's look-ahead, output waits for a whole
 *     block of input (DSP_RESAMPLE_BLOCK_FRAMES frames, 5.8 ms at 44.1 kHz);
 *     dsp_resampler_max_out_frames() bounds what is held back.
 *
 * Frames vs samples: a frame is one sample per channel; buffers are
 * interleaved, so a buffer of n frames holds n * channels floats.
 *
 * Thread safety: one dsp_resampler is used by one thread at a time; distinct
 * resamplers are independent.  dsp_resampler_create(), _reset() and
 * _destroy() allocate and free (not real-time safe).  _process() and
 * _flush() do not allocate, lock or log and are real-time safe (their cost is
 * bounded by the frames passed in and out): create runs a prefix of zeros
 * through soxr until its internal FIFOs have reached the size they keep (see
 * dsp/src/resample.c) and discards that output.
 */
#ifndef DSP_RESAMPLE_H
#define DSP_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "dsp/dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Highest sample rate accepted, in Hz (anything above is refused as absurd). */
#define DSP_RESAMPLE_MAX_RATE_HZ 1536000
/** Highest channel count accepted. */
#define DSP_RESAMPLE_MAX_CHANNELS 256
/** Largest in:out rate ratio either way (the limit libsamplerate had; kept
 *  so that every bound below stays small). */
#define DSP_RESAMPLE_MAX_RATIO 256
/** Input frames handed to soxr per soxr_process() call.  Callers may pass any
 *  in_frames/out_cap_frames; input is staged into blocks of this size inside
 *  the resampler (the result does not depend on how the caller chunks it). */
#define DSP_RESAMPLE_BLOCK_FRAMES 256

/** Converter quality, best first.  Each maps to a soxr quality recipe
 *  (soxr_quality_spec(recipe, 0): linear phase; stop-band rejection is the
 *  recipe's precision x 6.02 dB; the pass band ends at 1 - 0.01 / (the 3 dB
 *  point) of the lower Nyquist with SOXR_STEEP_FILTER, 1 - 0.05 / it without,
 *  as in soxr.c).  The enum names are those of the
 *  libsamplerate converters they replaced (--resample-quality best|medium|fast).
 *  tests/dsp/test_resample.c measures the round-trip SNR and aliasing of each. */
typedef enum dsp_resample_quality {
    DSP_RESAMPLE_BEST    = 0, /**< SOXR_VHQ | SOXR_STEEP_FILTER: 28-bit, ~169 dB rejection */
    DSP_RESAMPLE_MEDIUM  = 1, /**< SOXR_HQ | SOXR_STEEP_FILTER: 20-bit, ~120 dB rejection */
    DSP_RESAMPLE_FASTEST = 2, /**< SOXR_MQ: 16-bit, ~96 dB, medium roll-off (<= 0.35 dB) */
} dsp_resample_quality;

/** Opaque streaming resampler. */
typedef struct dsp_resampler dsp_resampler;

/** Creates a resampler from in_rate_hz to out_rate_hz for `channels`
 *  interleaved channels.
 *  Rates must be in 1..DSP_RESAMPLE_MAX_RATE_HZ with a ratio within
 *  1/DSP_RESAMPLE_MAX_RATIO..DSP_RESAMPLE_MAX_RATIO; channels in
 *  1..DSP_RESAMPLE_MAX_CHANNELS.  Equal rates are allowed (the filter then
 *  passes the signal through unchanged in length and timing).
 *  On success stores the new object in *out (caller owns it; free with
 *  dsp_resampler_destroy()) and returns DSP_OK.  On failure *out is NULL and
 *  the call returns DSP_ERR_INVALID (bad rate/channels/quality; err->msg names
 *  the value), DSP_ERR_NOMEM or DSP_ERR_LIBRARY (soxr's message).
 *  err may be NULL.  Allocates and primes the converter (a few ms; longer when
 *  in_rate_hz / gcd(in_rate_hz, out_rate_hz) exceeds 262144 frames, as the
 *  zero prefix is a whole number of those periods); not real-time safe. */
int dsp_resampler_create(dsp_resampler **out, int in_rate_hz, int out_rate_hz,
                         int channels, dsp_resample_quality quality,
                         dsp_error *err);

/** Frees the resampler.  NULL is a no-op. */
void dsp_resampler_destroy(dsp_resampler *r);

/** Converts input frames, PipeWire style.
 *  in: in_frames interleaved frames (in_frames * channels floats); may be
 *      NULL when in_frames is 0.
 *  *in_used: set to how many input frames were consumed (<= in_frames).  The
 *      caller passes the remaining frames again later.
 *  out: room for out_cap_frames interleaved frames; *out_frames is set to the
 *      number written.
 *  Input is consumed until it is used up or the output is full; because the
 *  filter needs look-ahead and soxr is fed whole blocks, the first call(s) may
 *  consume input and produce nothing.  To drain everything, call flush after the last input.
 *  Returns DSP_OK, DSP_ERR_INVALID (NULL pointers, or called after flush
 *  without reset) or DSP_ERR_LIBRARY (soxr failed, or a reset failed; the object must
 *  be reset or destroyed).  Does not allocate; real-time safe. */
int dsp_resampler_process(dsp_resampler *r, const float *in, size_t in_frames,
                          size_t *in_used, float *out, size_t out_cap_frames,
                          size_t *out_frames);

/** Ends the stream: feeds zeros through the filter and writes the remaining
 *  output frames so the stream total becomes exactly
 *  dsp_resample_output_frames(total input frames, in rate, out rate).
 *  Writes at most out_cap_frames; call again while it returns a full buffer
 *  (the flush is complete when *out_frames < out_cap_frames; later calls
 *  return 0 frames).  dsp_resampler_process() is refused after a flush until
 *  dsp_resampler_reset().  Returns DSP_OK, DSP_ERR_INVALID or DSP_ERR_LIBRARY.
 *  Does not allocate; real-time safe. */
int dsp_resampler_flush(dsp_resampler *r, float *out, size_t out_cap_frames,
                        size_t *out_frames);

/** Forgets all history and counters so a new, unrelated stream can start
 *  (equivalent to destroy + create with the same arguments: the output that
 *  follows is bit-identical to a fresh resampler's).  soxr cannot rewind a
 *  converter (soxr_clear() frees and rebuilds it), so this re-creates and
 *  re-primes the soxr converter: it allocates and is NOT real-time safe.
 *  Returns DSP_OK or DSP_ERR_LIBRARY (then process and flush return
 *  DSP_ERR_LIBRARY until a reset succeeds). */
int dsp_resampler_reset(dsp_resampler *r);

/** The number of leading output frames the resampler discards to cancel the
 *  converter's delay (measured at create; 0 for soxr's linear-phase recipes,
 *  whose filters are centred).  Thread-safe with respect to itself
 *  (constant after create). */
int dsp_resampler_delay_frames(const dsp_resampler *r);

/** Input frames consumed / output frames produced since create or reset. */
uint64_t dsp_resampler_frames_in(const dsp_resampler *r);
uint64_t dsp_resampler_frames_out(const dsp_resampler *r);

/** An upper bound on the output frames any single process or flush call can
 *  produce from in_frames input frames, for sizing buffers:
 *  ceil(in_frames * out_rate / in_rate) plus the most output the converter
 *  holds back (filter look-ahead, one staged block, soxr's DFT block;
 *  measured at create).
 *  Saturates at SIZE_MAX. */
size_t dsp_resampler_max_out_frames(const dsp_resampler *r, size_t in_frames);

/** round(n_in_frames * out_rate_hz / in_rate_hz), halves up, in exact integer
 *  arithmetic (no floating point, no overflow for any rate accepted above and
 *  n_in_frames < 2^63 / DSP_RESAMPLE_MAX_RATIO).  Returns 0 when a rate is not
 *  positive.  This is the exact length of a flushed stream.  Pure, thread-safe. */
uint64_t dsp_resample_output_frames(uint64_t n_in_frames, int in_rate_hz,
                                    int out_rate_hz);

#ifdef __cplusplus
}
#endif
#endif /* DSP_RESAMPLE_H */
