/* SPDX-License-Identifier: MIT */
/* The playback sink (--monitor): a live stream's processed audio to an
 * output device through ssmd_playback's ring (audio_device.h).  What does
 * not fit in the ring is dropped and counted (monitor_dropped).  Loop thread;
 * real-time safe (no allocation, lock or syscall).  self: the ssmd_playback,
 * owned by the mic source. */
#include "srv.h"

static int device_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    (void)st;
    (void)flags;
    if (n > 0) s->c.monitor_dropped += n - ssmd_playback_write(self, x, n);
    return 0;
}

const ssmd_sink_ops ssmd_sink_device = { .name = "device", .audio = device_audio };
