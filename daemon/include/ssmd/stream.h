/* SPDX-License-Identifier: MIT */
/* One audio stream through the pipeline of docs/architecture.md ("One
 * stream"), without the model step itself, so that the engine can step every
 * stream that has a frame ready as one batch:
 *
 *   push(samples at the stream's rate) → resample to the model's rate →
 *   framer → [prepare: STFT → features row]  →  model step (caller, batched)
 *   → [complete: mask × STFT → iSTFT → overlap-add → resample back] → pop.
 *
 * Usage for one stream (the engine does the same for many):
 *     while (input) {
 *         used = ssmd_stream_push(s, x, n);  x += used; n -= used;
 *         while (ssmd_stream_prepare(s, features_row))    // a frame is ready
 *             { ssm_step(...); ssmd_stream_complete(s, mask_row);
 *               while ((got = ssmd_stream_pop(s, out, cap))) sink(out, got); }
 *     }
 *     ssmd_stream_finish(s); then the same prepare/complete/pop loop until
 *     ssmd_stream_done(s).
 * In aligned mode (offline files) output sample j lines up with input
 * sample j and the output has the input's length exactly; in live mode the
 * output lags by latency samples.  Chunk sizes never change the output.
 *
 * Threads: a stream belongs to one thread at a time; nothing here allocates
 * after create (buffers are sized at create for the worst case).
 */
#ifndef SSMD_STREAM_H
#define SSMD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsp/features.h"
#include "dsp/resample.h"
#include "frontend.h"
#include "ssm/model.h"

typedef struct ssmd_stream ssmd_stream;

/** What the streams of one thread share: the front-end's STFT (windows, FFTW
 *  plans, transform buffers), the per-frame scratch of prepare and complete
 *  (the popped frame, its power spectrum, the inverse transform) and the
 *  pitch search's (dsp_pitch_config.scratch_from).  None of it carries
 *  anything from one frame to the next, so a stream's output does not depend
 *  on whether it has its own; shared, it stays in cache when many streams
 *  are stepped (about 45 KB per stream at n_fft 960 with pitch features).
 *  Used by one thread at a time. */
typedef struct ssmd_stream_shared ssmd_stream_shared;

/** Creates the shared part for streams of front-end fe (which must outlive
 *  it).  Returns NULL with a line in err. */
ssmd_stream_shared *ssmd_stream_shared_create(const ssmd_frontend *fe, char *err, size_t cap);

/** Frees sh, after every stream that uses it; NULL is a no-op. */
void ssmd_stream_shared_destroy(ssmd_stream_shared *sh);

/** Largest input magnitude accepted (full scale is 1.0): 60 dB of headroom.
 *  Larger finite samples are clipped to it and counted, so no finite input
 *  can overflow the STFT, the features or the output. */
#define SSMD_SAMPLE_LIMIT 1000.0f

typedef struct ssmd_stream_config {
    int  in_rate_hz;                  /**< rate of the pushed samples (and of the output) */
    bool align_output;                /**< offline: compensate the delay, output length = input length */
    dsp_resample_quality quality;     /**< used when in_rate_hz differs from the model's rate */
    int  max_prepared;                /**< frames that may be prepared before the oldest is
                                           completed (0 or 1: one at a time); lets a caller run
                                           several frames of one stream through ssm_forward.
                                           (The model's own lookahead, frontend.lookahead_frames,
                                           is handled inside the stream: see complete.) */
    ssmd_stream_shared *shared;       /**< borrowed, for the same front-end, outliving the
                                           stream, used by the same thread; NULL: the stream
                                           has its own */
} ssmd_stream_config;

/** Creates a stream (its own ssm_state, framer, resamplers; the STFT and
 *  scratch of cfg->shared, or its own).  melbank
 *  is shared read-only between streams (NULL unless features are log-mel);
 *  model, fe and melbank must outlive the stream.  Returns NULL with a line
 *  in err. */
ssmd_stream *ssmd_stream_create(const ssm_model *model, const ssmd_frontend *fe,
                                const dsp_melbank *melbank, const ssmd_stream_config *cfg,
                                char *err, size_t cap);

/** Frees s; NULL is a no-op. */
void ssmd_stream_destroy(ssmd_stream *s);

/** Consumes mono samples from in[0..n) until a model frame is ready or the
 *  input is used up; returns how many were consumed (0 while a frame waits
 *  to be prepared, or after finish).  Non-finite samples become 0 and
 *  samples beyond ±SSMD_SAMPLE_LIMIT are clipped to it, both counted.
 *  RT safe. */
size_t ssmd_stream_push(ssmd_stream *s, const float *in, size_t n);

/** If a frame is ready: STFT and features into features_row {n_features};
 *  returns 1.  Returns 0 when no frame is ready, when `max_prepared` frames are
 *  prepared and not completed, or when none is prepared and output is still
 *  to be popped.  Frames are completed in the order they were prepared; with
 *  max_prepared > 1 the caller pushes input between prepares (push stops at
 *  each ready frame).  RT safe. */
int ssmd_stream_prepare(ssmd_stream *s, float *features_row);

/** Finishes the oldest prepared frame with the model's mask row {n_bins}
 *  (NULL = pass the spectrum through unchanged): masked spectrum → iSTFT →
 *  overlap-add → resample; the samples become available to ssmd_stream_pop,
 *  which must take them all before the next complete.  With a model
 *  lookahead d (fe->lookahead_frames > 0) the row is that of the frame
 *  prepared d frames earlier: that frame is masked and synthesised, and the
 *  oldest prepared frame waits in its place (for the first d completes, the
 *  zero frames before the input); the output is d hops later
 *  (fe->latency_samples), and finish pads d more frames.  No-op when no frame
 *  is prepared.  RT safe. */
void ssmd_stream_complete(ssmd_stream *s, const float *mask_row);

/** Moves up to cap output samples (at in_rate_hz) into out; returns the
 *  count, 0 when none are pending.  After finish, also drains the output
 *  resampler's tail.  RT safe. */
size_t ssmd_stream_pop(ssmd_stream *s, float *out, size_t cap);

/** Declares the end of the input (pads the tail); further pushes consume
 *  nothing.  RT safe. */
void ssmd_stream_finish(ssmd_stream *s);

/** True when finished and every output sample has been popped. */
bool ssmd_stream_done(const ssmd_stream *s);

/** The stream's model state (for ssm_step, reset, snapshots). */
ssm_state *ssmd_stream_state(ssmd_stream *s);

/** Bytes ssmd_stream_save writes: a 96-byte header (magic "SSMDSTRM",
 *  version, rates, n_fft, hop, alignment, the counters below, the model's
 *  lookahead), the framer's state (dsp_framer_state_bytes: 2·n_fft floats and
 *  a header), the model state's snapshot (ssm_state_bytes), then for a
 *  log_power_pitch front end the pitch history and for a model with
 *  lookahead d its d waiting spectra (8·d·n_bins bytes).  0 for a stream that resamples: the
 *  resamplers' state (libsoxr's) cannot be saved, so such a stream cannot
 *  be continued exactly elsewhere. */
size_t ssmd_stream_save_bytes(const ssmd_stream *s);

/** True when the stream is between frames with nothing in flight, where a
 *  save captures all of it: it does not resample, no frame is prepared and
 *  not completed, every output sample was popped, and it is not finishing.
 *  An engine that steps it frame by frame and pops after each frame is
 *  there after every complete + pop. */
bool ssmd_stream_savable(const ssmd_stream *s);

/** Saves the whole stream (the model state, the framer's history and
 *  overlap-add accumulator, the counters, for a log_power_pitch front end
 *  the pitch history, and the spectra waiting for a model's lookahead) to buf (cap >=
 *  ssmd_stream_save_bytes).  A stream of the same model and configuration
 *  loaded from it and pushed the input from sample stats.samples_in on
 *  gives the output from sample stats.samples_out on, bit for bit, as this
 *  one would.  Returns the bytes written, or -1 when the stream is not
 *  savable or cap is too small.  Does not allocate. */
long ssmd_stream_save(const ssmd_stream *s, void *buf, size_t cap);

/** Replaces a stream's state by a save (n bytes) of a stream of the same
 *  model (hash), rates, n_fft, hop, alignment and lookahead.  The stream must be fresh
 *  or savable.  Returns 0, or -1 with one line in err (the stream is
 *  untouched when the save is refused: another model or configuration, a
 *  truncated or corrupt save). */
int ssmd_stream_load(ssmd_stream *s, const void *buf, size_t n, char *err, size_t cap);

/** Counters. */
typedef struct ssmd_stream_stats {
    uint64_t samples_in;      /**< samples pushed (at in_rate_hz) */
    uint64_t samples_out;     /**< samples popped (at in_rate_hz) */
    uint64_t frames;          /**< model frames prepared */
    uint64_t nonfinite_in;    /**< pushed samples that were NaN/Inf and were zeroed */
    uint64_t clipped_in;      /**< pushed samples beyond ±SSMD_SAMPLE_LIMIT, clipped to it */
} ssmd_stream_stats;
void ssmd_stream_stats_get(const ssmd_stream *s, ssmd_stream_stats *out);

#endif /* SSMD_STREAM_H */
