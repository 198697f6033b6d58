/* SPDX-License-Identifier: MIT */
/* The microphone source: a capture device (PortAudio, audio_device.h), one
 * stream per channel ('split': mic.0, mic.1, ...) or one stream 'mic'
 * (mono: one channel asked for; a device that only opens with more, a
 * stereo-only microphone, is downmixed to the mean of its channels), live: not aligned, stamped with the capture
 * clock, and what does not fit in a stream's pending input is dropped and
 * flagged.  The device is checked about once a second and reopened after a
 * failure while the other streams go on.  With --monitor the first stream's
 * processed audio is played through the device sink.  Loop thread; the
 * PortAudio callback only fills the capture ring. */
#include "srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What status reports of the device (name, rate and channels as opened,
 * running), copied for the control thread, which answers status while the
 * loop may be reopening the device (control.c). */
static void device_publish(ssmd_srv *s)
{
    pthread_mutex_lock(&s->dev.mu);
    s->dev.running = !s->mic.failed;
    snprintf(s->dev.name, sizeof s->dev.name, "%s", ssmd_capture_device_name(s->mic.cap));
    s->dev.rate_hz = ssmd_capture_rate_hz(s->mic.cap);
    s->dev.channels = ssmd_capture_channels(s->mic.cap);
    pthread_mutex_unlock(&s->dev.mu);
}

/* Opens the device and one stream per channel ('split', at most max_ch) or
 * one stream ('mono': the device opened with one channel, or the mean of the
 * channels it insists on), plus the monitor. */
static int mic_open(ssmd_srv *s)
{
    const ssmd_config *c = s->cfg;
    char err[512];
    bool split = strcmp(c->channels, "split") == 0;
    int max_ch = split ? (s->max_streams < 64 ? s->max_streams : 64) : 1;
    s->mic.cap = ssmd_capture_open(c->device, s->fe.sample_rate_hz, max_ch, (int)c->ring_ms, err, sizeof err);
    if (!s->mic.cap) {
        fprintf(stderr, "ssmd: %s\n", err);
        return -1;
    }
    device_publish(s);
    int rate = ssmd_capture_rate_hz(s->mic.cap), nch = ssmd_capture_channels(s->mic.cap);
    /* sized for max_ch: a reopen may come back with more channels */
    s->mic.buf = malloc((size_t)SSMD_FILE_CHUNK * (size_t)(max_ch > nch ? max_ch : nch) * sizeof(float));
    s->mic.chan = malloc(SSMD_FILE_CHUNK * sizeof(float));
    if (!s->mic.buf || !s->mic.chan) {
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    s->mic.n = nch;
    /* 'split' on a device that opened more channels than asked for (it
     * refused fewer): the first max_ch become streams, the rest are unused */
    s->mic.n_streams = split ? (nch < max_ch ? nch : max_ch) : 1;
    s->mic.downmix = !split;
    if (split && nch > max_ch)
        ssmd_log(SSMD_LOG_WARN, "capture device '%s' opened with %d channels (it refuses fewer); the %d beyond "
                 "--max-streams are not used", ssmd_capture_device_name(s->mic.cap), nch, nch - max_ch);
    for (int k = 0; k < s->mic.n_streams; k++) {
        char name[32];
        if (s->mic.n_streams == 1) snprintf(name, sizeof name, "mic");
        else snprintf(name, sizeof name, "mic.%d", k);
        ssmd_srv_stream *st = ssmd_srv_stream_open(s, name, &ssmd_source_mic, rate, false, true, err, sizeof err);
        if (!st) {
            fprintf(stderr, "ssmd: %s: %s\n", name, err);
            return -1;
        }
        s->mic.slots[k] = (int)(st - s->streams);
    }
    ssmd_log(SSMD_LOG_INFO, "capturing '%s' at %d Hz: the device has %d input channels, opened %d (%d asked)%s",
             ssmd_capture_device_name(s->mic.cap), rate, ssmd_capture_device_channels(s->mic.cap), nch, max_ch,
             s->mic.n_streams > 1 ? ", one stream each" : nch > 1 ? ", downmixed to their mean" : "");
    if (c->monitor[0]) {
        s->mic.mon = ssmd_playback_open(c->monitor, rate, 1, (int)c->ring_ms, err, sizeof err);
        if (!s->mic.mon) {
            fprintf(stderr, "ssmd: monitor: %s\n", err);
            return -1;
        }
        ssmd_srv_stream_attach(&s->streams[s->mic.slots[0]], &ssmd_sink_device, s->mic.mon);
    }
    return 0;
}

/* Moves captured frames into the mic streams; checks the device about once a
 * second and reopens it after a failure (other streams go on meanwhile). */
static void pump_capture(ssmd_srv *s)
{
    if (!s->mic.cap) return;
    double t = ssmd_now_s();
    if (t - s->mic.check_t > (s->mic.failed ? 2.0 : 1.0)) {
        s->mic.check_t = t;
        char err[512];
        if (!s->mic.failed && ssmd_capture_status(s->mic.cap, err, sizeof err) != 0) {
            s->mic.failed = true;
            s->c.device_failures++;
            device_publish(s);
            ssmd_log(SSMD_LOG_ERROR, "capture failed: %s; retrying every 2 s", err);
            for (int k = 0; k < s->mic.n_streams; k++) ssmd_srv_event(s, &s->streams[s->mic.slots[k]], "device_failed", err);
        } else if (s->mic.failed) {
            if (ssmd_capture_reopen(s->mic.cap, err, sizeof err) == 0 &&
                ssmd_capture_channels(s->mic.cap) == s->mic.n &&
                ssmd_capture_rate_hz(s->mic.cap) == s->streams[s->mic.slots[0]].rate_hz) {
                s->mic.failed = false;
                device_publish(s);
                ssmd_log(SSMD_LOG_WARN, "capture device '%s' is back", ssmd_capture_device_name(s->mic.cap));
                for (int k = 0; k < s->mic.n_streams; k++) {
                    ssmd_srv_stream *st = &s->streams[s->mic.slots[k]];
                    st->flags_next |= SSMD_FLAG_DISCONTINUITY;
                    ssmd_srv_event(s, st, "device_restored", NULL);
                }
            } else {
                device_publish(s); /* what the failed reopen found */
                if (ssmd_capture_channels(s->mic.cap) != s->mic.n) ssmd_log(SSMD_LOG_DEBUG, "capture reopen: %s", err);
            }
        }
    }
    if (s->mic.failed) return; /* nothing to read; a reopen may change the geometry */
    double t_read = ssmd_now_s();
    size_t nch = (size_t)s->mic.n, got;
    while ((got = ssmd_capture_read(s->mic.cap, s->mic.buf, SSMD_FILE_CHUNK)) > 0) {
        uint64_t dropped = ssmd_capture_overflows(s->mic.cap);
        uint64_t now = ssmd_realtime_ns();
        size_t waiting = ssmd_capture_frames(s->mic.cap);
        for (size_t k = 0; k < (size_t)s->mic.n_streams; k++) {
            ssmd_srv_stream *st = &s->streams[s->mic.slots[k]];
            if (s->mic.downmix) dsp_audio_downmix_mean(s->mic.chan, s->mic.buf, got, (int)nch);
            else for (size_t i = 0; i < got; i++) s->mic.chan[i] = s->mic.buf[i * nch + k];
            if (dropped != s->mic.dropped_seen) st->flags_next |= SSMD_FLAG_OVERFLOW | SSMD_FLAG_DISCONTINUITY;
            ssmd_srv_stream_append(s, st, s->mic.chan, got);
            /* the last frame read was captured `waiting` frames before now */
            st->clock_sample = st->in_samples;
            st->clock_ns = now - (uint64_t)(1e9 * (double)waiting / st->rate_hz);
        }
        s->c.capture_dropped += dropped - s->mic.dropped_seen;
        s->mic.dropped_seen = dropped;
    }
    s->c.capture_ns += (uint64_t)(1e9 * (ssmd_now_s() - t_read));
}


static int mic_pull(ssmd_srv *s, bool stopping, bool *busy)
{
    (void)busy;
    if (!stopping) pump_capture(s);
    return 0;
}

static void mic_close(ssmd_srv *s)
{
    ssmd_playback_close(s->mic.mon);
    ssmd_capture_close(s->mic.cap);
    free(s->mic.buf);
    free(s->mic.chan);
    s->mic.mon = NULL;
    s->mic.cap = NULL;
    s->mic.buf = s->mic.chan = NULL;
}

const ssmd_source_ops ssmd_source_mic = { .name = "mic", .open = mic_open, .pull = mic_pull, .close = mic_close };
