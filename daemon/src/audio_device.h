/* SPDX-License-Identifier: MIT */
/* Live audio devices for ssmd: PortAudio capture (the microphone) and
 * playback (the "monitor"), each behind a lock-free ring (ring.h).
 *
 * Threads (DESIGN.md §5, STYLE.md 7).  PortAudio runs a callback on its own
 * real-time thread.  The callback only converts/copies paFloat32 samples
 * between the device and a ring preallocated at open, and counts: no
 * allocation, lock, syscall, logging or ZeroMQ call.  Every function below is
 * called by ONE owning thread (the daemon's loop thread) for a given handle;
 * handles are not shared between threads.  Of those, the per-poll calls are
 * real-time safe and never block: ssmd_capture_read, ssmd_capture_frames,
 * ssmd_capture_overflows, ssmd_capture_stats, ssmd_playback_write and the
 * playback counters.  open/close/reopen/status/list talk to PortAudio (they
 * may allocate, take PortAudio's locks and wait for the callback thread) and
 * must not run on a real-time thread.
 *
 * Samples.  Interleaved 32-bit float frames in [-1, 1] (PortAudio's
 * paFloat32: int16 devices arrive as k/32768 exactly).  A frame is one sample
 * per channel; counts in this API are frames unless a name says otherwise.
 *
 * Device specs (the `device` and `monitor` options): "" = PortAudio's
 * default input (capture) or output (playback) device; a decimal number =
 * the index printed by ssmd_audio_list / `ssmd --list-devices`; anything
 * else = a device name, compared case-insensitively, exact match first, then
 * the first device (lowest index) whose name contains it, among the devices
 * that have input (capture) or output (playback) channels.
 *
 * Errors are one line in err (err_cap bytes, may be NULL) naming the spec
 * and the reason, e.g.
 *   "device 'usb': no input device matches (see ssmd --list-devices)"
 *   "device 7: index out of range (3 devices)"
 *   "device 1 ('ssmd_vout'): has no input channels"
 *   "device 'ssmd_vmic' ('ssmd_vmic'): cannot open 16000 Hz, 2 channels: Invalid sample rate"
 * (the quoted name after the spec is the resolved device's name).
 *
 * PortAudio.  Pa_Initialize/Pa_Terminate are reference-counted by PortAudio;
 * each open and each list call initializes it and each close terminates it.
 * PortAudio enumerates devices only when the count goes from 0 to 1, so a
 * reopen sees a replugged device only when nothing else holds PortAudio
 * (the monitor, for instance, keeps it).  While initializing, ALSA and JACK
 * print probe messages on stderr ("cannot find card '0'", "jack server is
 * not running"); they are harmless, so stderr is pointed at /dev/null while
 * PortAudio initializes (set SSMD_AUDIO_DEBUG=1 to see them).
 */
#ifndef SSMD_AUDIO_DEVICE_H
#define SSMD_AUDIO_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Writes the device table to out (for `ssmd --list-devices`): a header
 *  line, then one line per device: index, name (cut at 40 characters), max
 *  input and output channels, default rate in Hz, host API, and "input",
 *  "output" or "input,output" when it is PortAudio's default device in that
 *  direction; "(no devices)" when there are none.  The index and the name are
 *  what the device specs accept.  Returns 0, or -1 with the reason in err when
 *  PortAudio cannot initialize.  Not real-time safe. */
int ssmd_audio_list(FILE *out, char *err, size_t err_cap);

/* ---------------------------------------------------------------- capture */

typedef struct ssmd_capture ssmd_capture;

/** Counters of a capture, in frames since open (reopen keeps counting). */
typedef struct ssmd_capture_stats {
    uint64_t frames_captured;  /**< frames the callback received from PortAudio */
    uint64_t frames_dropped;   /**< of those, frames refused because the ring was full */
    uint64_t pa_overflows;     /**< callbacks that PortAudio flagged paInputOverflow
                                    (the device lost data before we saw it; a count
                                    of events, not frames, since PortAudio gives none) */
} ssmd_capture_stats;

/** Opens and starts capture from the device spec (see above).
 *  want_rate_hz: the model's rate; used if the device opens at it,
 *    otherwise the device's default rate (the caller resamples: read
 *    ssmd_capture_rate_hz).  0 means the default rate.  An error only when
 *    neither opens.
 *  max_channels (>= 1): opens min(max_channels, the device's input channels)
 *    channels (a virtual ALSA device reports 128); when the device refuses
 *    that count (a stereo-only microphone asked for 1), 2 channels, then the
 *    device's maximum: ssmd_capture_channels may exceed max_channels, and
 *    the caller downmixes or picks.  ALSA devices are opened by their PCM
 *    name so that ALSA, not PortAudio, decides: opened by index, PortAudio
 *    silently opens the device's minimum count and passes on the first
 *    channel(s) only.  Other host APIs keep PortAudio's behaviour.
 *  ring_ms (>= 1): ring length in milliseconds at the opened rate (at least
 *    that: the ring's float count is rounded up to a power of two, so it may
 *    hold up to twice as much); when the owner does not read for longer, the
 *    newest frames are dropped and counted (what is in the ring is kept).
 *  Returns NULL with one line in err on failure.  Not real-time safe. */
ssmd_capture *ssmd_capture_open(const char *device, int want_rate_hz, int max_channels,
                                int ring_ms, char *err, size_t err_cap);

/** Opened sample rate in Hz, channel count (frames hold this many samples),
 *  the device's PortAudio name (owned by the handle, valid until close or
 *  reopen) and its index. */
int ssmd_capture_rate_hz(const ssmd_capture *c);
int ssmd_capture_channels(const ssmd_capture *c);
/** The device's maximum input channel count as PortAudio reports it (for the
 *  log: what the device has against what was opened). */
int ssmd_capture_device_channels(const ssmd_capture *c);
const char *ssmd_capture_device_name(const ssmd_capture *c);
int ssmd_capture_device_index(const ssmd_capture *c);

/** Moves up to max_frames interleaved frames (max_frames × channels floats)
 *  from the ring into out, oldest first; returns the frames moved, 0 when
 *  none are waiting.  Never blocks.  RT-safe. */
size_t ssmd_capture_read(ssmd_capture *c, float *out, size_t max_frames);

/** Frames waiting in the ring.  RT-safe. */
size_t ssmd_capture_frames(const ssmd_capture *c);

/** Frames dropped because the ring was full (stats.frames_dropped).  PortAudio's
 *  own paInputOverflow flags are counted separately in stats.pa_overflows.
 *  RT-safe. */
uint64_t ssmd_capture_overflows(const ssmd_capture *c);

/** Snapshot of the counters (frames_dropped is at least the drops among
 *  frames_captured).  RT-safe. */
void ssmd_capture_stats_get(const ssmd_capture *c, ssmd_capture_stats *out);

/** 0 while the stream runs; -1 with a line in err when it stopped (the device
 *  failed or vanished: PortAudio stopped the stream, or a reopen failed).  The
 *  daemon reports it and calls ssmd_capture_reopen periodically.  Frames
 *  already in the ring stay readable.  Not real-time safe (asks PortAudio). */
int ssmd_capture_status(ssmd_capture *c, char *err, size_t err_cap);

/** Closes the stream and PortAudio and opens again with the same spec,
 *  want_rate_hz, max_channels and ring_ms (it re-resolves the spec, so the
 *  index, name, rate or channels may change: read them again).  Frames still
 *  in the ring are discarded; counters keep counting.  Returns 0, or -1 with
 *  a line in err; after a failure the handle stays valid, reads return 0,
 *  status reports the failure and reopen may be retried. */
int ssmd_capture_reopen(ssmd_capture *c, char *err, size_t err_cap);

/** Stops the stream and frees everything; NULL does nothing. */
void ssmd_capture_close(ssmd_capture *c);

/* --------------------------------------------------------------- playback */

typedef struct ssmd_playback ssmd_playback;

/** Opens and starts playback (the monitor) on the device spec (see above).
 *  rate_hz (> 0) and channels (>= 1) are what the caller will write: the
 *  device must accept them (no fallback: the caller resamples to the rate it
 *  asks for, e.g. the capture rate); otherwise NULL with a line in err.
 *  ring_ms (>= 1): ring length in milliseconds (at least; rounded up as for
 *  capture), which bounds the monitor's added latency.  The callback plays what the
 *  ring holds and zeros when it runs dry (an underrun).  Not real-time safe. */
ssmd_playback *ssmd_playback_open(const char *device, int rate_hz, int channels, int ring_ms,
                                  char *err, size_t err_cap);

/** Opened rate in Hz, channels, the device's name (owned by the handle). */
int ssmd_playback_rate_hz(const ssmd_playback *p);
int ssmd_playback_channels(const ssmd_playback *p);
const char *ssmd_playback_device_name(const ssmd_playback *p);

/** Queues up to `frames` interleaved frames (frames × channels floats);
 *  returns the frames queued.  Frames that do not fit are dropped and
 *  counted (ssmd_playback_dropped).  Never blocks.  RT-safe. */
size_t ssmd_playback_write(ssmd_playback *p, const float *interleaved, size_t frames);

/** Frames queued and not yet taken by the callback.  RT-safe. */
size_t ssmd_playback_queued(const ssmd_playback *p);

/** Frames of silence the callback had to output because the ring ran dry,
 *  counted from the first frame ever queued (the silence before it is not an
 *  underrun).  RT-safe. */
uint64_t ssmd_playback_underruns(const ssmd_playback *p);

/** Frames refused by ssmd_playback_write because the ring was full.  RT-safe. */
uint64_t ssmd_playback_dropped(const ssmd_playback *p);

/** Frames the callback took from the ring and played.  RT-safe. */
uint64_t ssmd_playback_played(const ssmd_playback *p);

/** 0 while the stream runs; -1 with a line in err when it stopped. */
int ssmd_playback_status(ssmd_playback *p, char *err, size_t err_cap);

/** Stops the stream (frames still queued are not played) and frees
 *  everything; NULL does nothing. */
void ssmd_playback_close(ssmd_playback *p);

#endif /* SSMD_AUDIO_DEVICE_H */
