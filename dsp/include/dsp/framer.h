/* SPDX-License-Identifier: MIT */
/* dsp/framer.h — chunks of any size in, hop-sized analysis frames out, and
 * the weighted overlap-add (WOLA) synthesis back to samples.
 *
 * Timeline (N = n_window, H = hop_samples, input samples x[0], x[1], ...):
 *   Analysis frame m (m = 0, 1, ...) holds x[(m+1)H − N .. (m+1)H − 1]; the
 *   samples before x[0] are zeros (initial history).  Frame m is ready as
 *   soon as x[(m+1)H − 1] has been pushed, so the framer is causal and adds
 *   no delay of its own.
 *   Synthesis: the caller hands back one processed frame (N samples, already
 *   multiplied by the normalised synthesis window, e.g. from
 *   dsp_stft_inverse) per analysis frame, in order.  Frame m is added at
 *   position (m+1)H − N; after it, H more output samples are final.  Under
 *   identity processing and a pair accepted by dsp_stft_create, output
 *   sample j of the stream equals x[j − (N − H)]: the algorithmic delay is
 *   latency = N − H samples (dsp_framer_latency_samples), plus the caller's
 *   processing delay D when it hands back frame m − D/H at the synthesis of
 *   frame m (dsp_framer_config.delay_samples).
 *
 * Two output modes (dsp_framer_config.align_output):
 *   live (false):   every synthesised sample is emitted, the first `latency`
 *                   of them being the start-up transient (zeros for identity
 *                   processing).  After dsp_framer_finish the stream ends
 *                   once x[L−1] has come out: L + latency samples in all.
 *   aligned (true): the first `latency` synthesised samples are dropped, so
 *                   output sample j lines up with x[j]; after finish the
 *                   output is exactly L samples (the input's length).  For
 *                   offline files.
 *   dsp_framer_finish zero-pads the tail: it makes the remaining frames
 *   ready (pushed zeros are not counted as input) until the synthesis has
 *   covered the last input sample.
 *
 * Streaming loop (daemon or offline tool):
 *     for each chunk (x, n):                       // any size, even 1
 *         while (n > 0) {
 *             size_t used = dsp_framer_push(f, x, n, &bad); // stops at a ready frame
 *             x += used; n -= used;
 *             while (dsp_framer_pop_frame(f, frame) == 1) {
 *                 dsp_stft_forward(st, spec, frame);  ... model ...
 *                 dsp_stft_inverse(st, frame, spec);
 *                 size_t got = dsp_framer_synthesize(f, out, frame); // ≤ hop
 *                 emit(out, got);
 *             }
 *         }
 *     at the end of the input: dsp_framer_finish(f), then the same inner
 *     while loop; an aligned framer's output then has the input's length.
 * Bit-exactness: frames and output depend only on the sample sequence, never
 * on how it was cut into chunks (data are only copied and added in a fixed
 * order).
 *
 * Non-finite input: dsp_framer_push replaces NaN and ±Inf samples by 0 in
 * its own copy and counts them, so nothing non-finite reaches a model state.
 *
 * Threads and real-time safety: create/destroy allocate (not real-time
 * safe).  Every other call neither allocates, locks, logs nor makes a
 * syscall (real-time safe).  One framer belongs to one stream and must not be
 * used by two threads at once; different framers are independent.
 */
#ifndef DSP_FRAMER_H
#define DSP_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsp/dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Replaces every non-finite value (NaN, +Inf, −Inf) of x[0..n) by 0.0f and
 *  returns how many were replaced.  Pure apart from x; real-time safe. */
size_t dsp_sanitize_f32(float *x, size_t n);

/** Input conditioning in one pass over x[0..n): every non-finite value (NaN,
 *  ±Inf) becomes 0.0f, then every finite value beyond ±limit becomes ±limit;
 *  adds how many of each to *n_nonfinite and *n_clipped.  Other values keep
 *  their bits (-0.0 and denormals included).  limit > 0.  Pure apart from x
 *  and the counters; real-time safe. */
void dsp_condition_f32(float *x, size_t n, float limit, uint64_t *n_nonfinite, uint64_t *n_clipped);

/** Framer configuration.  Sizes in samples. */
typedef struct dsp_framer_config {
    size_t n_window;       /**< frame length N ≥ 1 (n_fft for the STFT) */
    size_t hop_samples;    /**< frame advance H, 1 ≤ H ≤ N */
    bool   align_output;   /**< true: offline alignment (see file comment) */
    size_t delay_samples;  /**< processing delay D ≥ 0 added by the caller between
                                analysis and synthesis (a model that masks frame m
                                only after seeing frames m+1…m+d hands back frame
                                m's output at the synthesis of frame m+d: D = d·H).
                                The latency becomes N − H + D: live output ends D
                                samples later, aligned output drops D more at the
                                start, and finish pads D more samples of frames. */
} dsp_framer_config;

/** Opaque framer (analysis buffer + overlap-add accumulator, 2·N floats). */
typedef struct dsp_framer dsp_framer;

/** Creates a framer in its initial state (zero history).  On success stores
 *  the new object in *out (caller owns it; free with dsp_framer_destroy())
 *  and returns DSP_OK.  On failure *out is NULL (unless out itself is NULL)
 *  and the call returns DSP_ERR_INVALID (out or cfg NULL; N == 0, H == 0,
 *  H > N, N > 2^28 or delay_samples > 2^28, err->msg naming the field) or DSP_ERR_NOMEM, with err
 *  (may be NULL) filled.  Thread-safe; not real-time safe (allocates). */
int dsp_framer_create(dsp_framer **out, const dsp_framer_config *cfg, dsp_error *err);

/** Frees f.  NULL is a no-op. */
void dsp_framer_destroy(dsp_framer *f);

/** Back to the state right after create (zero history, counters zero). */
void dsp_framer_reset(dsp_framer *f);

/** Copies samples from in[0..n_in) into the analysis buffer until a frame
 *  is ready, sanitising them (NaN/±Inf → 0).  Returns the number consumed
 *  (0 when a frame is already waiting to be popped or after finish: pop
 *  first).  *n_nonfinite (may be NULL) receives how many of the consumed
 *  samples were replaced.  in may be NULL only when n_in is 0. */
size_t dsp_framer_push(dsp_framer *f, const float *in, size_t n_in, size_t *n_nonfinite);

/** If a frame is ready, copies it into frame_out {n_window} (oldest sample
 *  first, unwindowed), advances by one hop and returns 1; returns 0 when no
 *  frame is ready (push more input, or finish).  Negative dsp_status on
 *  NULL arguments. */
int dsp_framer_pop_frame(dsp_framer *f, float *frame_out);

/** Overlap-adds one processed frame {n_window} (synthesis window already
 *  applied) and writes the samples that became final to out (room for
 *  hop_samples floats).  Returns how many were written: hop_samples in
 *  steady state, fewer while an aligned framer drops its first `latency`
 *  samples or at the end of a finished stream, 0 once the stream is
 *  complete (further frames are ignored).  Call once per popped frame. */
size_t dsp_framer_synthesize(dsp_framer *f, float *out, const float *frame);

/** Declares the end of the input: the framer zero-pads the tail so that
 *  dsp_framer_pop_frame yields the frames still needed for the synthesis
 *  to cover every input sample.  Further pushes consume nothing.
 *  Idempotent. */
void dsp_framer_finish(dsp_framer *f);

/** True once finish was called and every frame it needs has been popped
 *  and synthesised (the output is complete). */
bool dsp_framer_done(const dsp_framer *f);

/** Algorithmic delay of the WOLA chain and the caller's processing delay,
 *  N − H + delay_samples samples.  In live mode output sample j corresponds
 *  to input sample j − latency; aligned output has it compensated.  Report it
 *  in the stream description. */
size_t dsp_framer_latency_samples(const dsp_framer *f);

/** Configured sizes. */
size_t dsp_framer_n_window(const dsp_framer *f);
size_t dsp_framer_hop_samples(const dsp_framer *f);

/** Counters since create/reset: real input samples consumed, of which
 *  non-finite (zeroed); frames popped; output samples emitted. */
uint64_t dsp_framer_samples_in(const dsp_framer *f);
uint64_t dsp_framer_nonfinite_count(const dsp_framer *f);
uint64_t dsp_framer_frames_out(const dsp_framer *f);
uint64_t dsp_framer_samples_out(const dsp_framer *f);

/** Bytes dsp_framer_state_save writes: a 112-byte header (magic "DSPFRAME",
 *  version, N, H, alignment, the counters and the pending fill) and the two
 *  buffers, 2·N floats, every value little-endian. */
size_t dsp_framer_state_bytes(const dsp_framer *f);

/** Writes the framer's whole state (history, overlap-add accumulator,
 *  counters) to buf (size >= dsp_framer_state_bytes).  A framer loaded from
 *  it continues exactly as f would: the same frames and output samples, bit
 *  for bit.  Returns the bytes written, or DSP_ERR_INVALID (buffer too
 *  small).  Real-time safe. */
long dsp_framer_state_save(const dsp_framer *f, void *buf, size_t size);

/** Replaces f's state by one dsp_framer_state_save wrote (size bytes
 *  exactly).  Refuses, leaving f untouched, with DSP_ERR_FORMAT (err->msg
 *  says why): a wrong length or magic, another version, N, H or alignment
 *  than f's, counters that contradict each other, a non-finite sample.
 *  Real-time safe. */
int dsp_framer_state_load(dsp_framer *f, const void *buf, size_t size, dsp_error *err);

#ifdef __cplusplus
}
#endif
#endif /* DSP_FRAMER_H */
