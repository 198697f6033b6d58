/* SPDX-License-Identifier: MIT */
/* PortAudio capture and playback behind SPSC rings (see audio_device.h).
 *
 * Design note.  The two callbacks are the only code on PortAudio's real-time
 * thread.  They touch the ring and a few relaxed atomic counters and nothing
 * else; frames are kept whole by asking the ring how much fits first
 * (write_space) and writing a multiple of the channel count, so the ring's
 * fill level is always a whole number of frames and a read of whole frames
 * never splits one.  Everything that can fail or wait (resolving the spec,
 * opening, stopping) happens on the owner's thread.
 */
#include "audio_device.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <portaudio.h>
#if defined(__linux__) && defined(__has_include)
#if __has_include(<pa_linux_alsa.h>)
#include <pa_linux_alsa.h>
#define SSMD_HAVE_PA_ALSA 1
#endif
#endif
#ifndef SSMD_HAVE_PA_ALSA
#define SSMD_HAVE_PA_ALSA 0
#endif

#include "ring.h"

/* One line into err (if any). */
static void set_err(char *err, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* "device 'usb'" / "device 7" / "default input device": how errors name a spec. */
static void spec_label(char *out, size_t cap, const char *spec, bool input)
{
    if (!spec || !spec[0]) snprintf(out, cap, "default %s device", input ? "input" : "output");
    else {
        bool digits = true;
        for (const char *s = spec; *s; s++) if (!isdigit((unsigned char)*s)) digits = false;
        if (digits) snprintf(out, cap, "device %s", spec);
        else snprintf(out, cap, "device '%s'", spec);
    }
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return n == 0;
}

static bool equal_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

static int dev_channels(const PaDeviceInfo *d, bool input)
{
    return input ? d->maxInputChannels : d->maxOutputChannels;
}

/* Resolves spec to a device index with channels in the wanted direction.
 * PortAudio must be initialized.  Returns the index or -1 with err set. */
static int resolve_device(const char *spec, bool input, char *err, size_t cap)
{
    char label[300];
    spec_label(label, sizeof label, spec, input);
    const char *dir = input ? "input" : "output";
    int count = Pa_GetDeviceCount();
    if (count < 0) {
        set_err(err, cap, "%s: %s", label, Pa_GetErrorText(count));
        return -1;
    }
    if (!spec || !spec[0]) {
        PaDeviceIndex d = input ? Pa_GetDefaultInputDevice() : Pa_GetDefaultOutputDevice();
        if (d == paNoDevice) {
            set_err(err, cap, "%s: none (%d devices; see ssmd --list-devices)", label, count);
            return -1;
        }
        return d;
    }
    bool digits = true;
    for (const char *s = spec; *s; s++) if (!isdigit((unsigned char)*s)) digits = false;
    if (digits) {
        long idx = strlen(spec) > 9 ? -1 : strtol(spec, NULL, 10);
        if (idx < 0 || idx >= count) {
            set_err(err, cap, "%s: index out of range (%d devices)", label, count);
            return -1;
        }
        const PaDeviceInfo *info = Pa_GetDeviceInfo((PaDeviceIndex)idx);
        if (!info || dev_channels(info, input) < 1) {
            set_err(err, cap, "%s ('%s'): has no %s channels", label, info ? info->name : "?", dir);
            return -1;
        }
        return (int)idx;
    }
    int substring = -1, wrong_dir = -1;
    for (int i = 0; i < count; i++) {
        const PaDeviceInfo *info = Pa_GetDeviceInfo(i);
        if (!info || !info->name) continue;
        bool exact = equal_nocase(info->name, spec);
        if (!exact && !contains_nocase(info->name, spec)) continue;
        if (dev_channels(info, input) < 1) {
            if (wrong_dir < 0) wrong_dir = i;
            continue;
        }
        if (exact) return i;
        if (substring < 0) substring = i;
    }
    if (substring >= 0) return substring;
    if (wrong_dir >= 0)
        set_err(err, cap, "%s: no %s device matches ('%s' has no %s channels; see ssmd --list-devices)",
                label, dir, Pa_GetDeviceInfo(wrong_dir)->name, dir);
    else
        set_err(err, cap, "%s: no %s device matches (see ssmd --list-devices)", label, dir);
    return -1;
}

/* Pa_Initialize / Pa_Terminate with the host libraries' chatter silenced: ALSA and
 * JACK print dozens of lines on stderr ("cannot find card '0'", "jack server
 * is not running") while PortAudio enumerates devices, which buries ssmd's
 * own one-line messages.  PortAudio reports real failures through its return
 * codes, so stderr goes to /dev/null for the duration of the call, unless
 * SSMD_AUDIO_DEBUG is set in the environment.  Called from the loop thread
 * only, before any callback of ours runs. */
static PaError pa_quiet(PaError (*fn)(void))
{
    if (getenv("SSMD_AUDIO_DEBUG")) return fn();
    fflush(stderr);
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && null >= 0) dup2(null, STDERR_FILENO);
    PaError e = fn();
    fflush(stderr);
    if (saved >= 0 && null >= 0) dup2(saved, STDERR_FILENO);
    if (saved >= 0) close(saved);
    if (null >= 0) close(null);
    return e;
}

static PaError pa_initialize(void) { return pa_quiet(Pa_Initialize); }
static PaError pa_terminate(void) { return pa_quiet(Pa_Terminate); }

int ssmd_audio_list(FILE *out, char *err, size_t err_cap)
{
    PaError e = pa_initialize();
    if (e != paNoError) {
        set_err(err, err_cap, "audio devices: %s", Pa_GetErrorText(e));
        return -1;
    }
    int n = Pa_GetDeviceCount();
    if (n < 0) {
        set_err(err, err_cap, "audio devices: %s", Pa_GetErrorText(n));
        pa_terminate();
        return -1;
    }
    PaDeviceIndex din = Pa_GetDefaultInputDevice(), dout = Pa_GetDefaultOutputDevice();
    fprintf(out, "%-5s %-40s %5s %5s %9s  %-8s %s\n", "index", "name", "in", "out", "rate Hz",
            "host API", "default");
    for (int i = 0; i < n; i++) {
        const PaDeviceInfo *d = Pa_GetDeviceInfo(i);
        if (!d) continue;
        const PaHostApiInfo *h = Pa_GetHostApiInfo(d->hostApi);
        fprintf(out, "%-5d %-40.40s %5d %5d %9.0f  %-8.8s %s%s\n", i, d->name, d->maxInputChannels,
                d->maxOutputChannels, d->defaultSampleRate, h && h->name ? h->name : "?",
                i == din ? "input" : "", i == dout ? (i == din ? ",output" : "output") : "");
    }
    if (n == 0)
        fprintf(out, "(no devices; a test microphone can be made from a raw file with an ALSA "
                     "'file' PCM: see tests/daemon/vmic/README.md)\n");
    pa_terminate();
    return 0;
}

/* ---------------------------------------------------------------- capture */

struct ssmd_capture {
    /* what the owner asked for (kept for reopen) */
    char spec[256];
    int want_rate_hz, max_channels, ring_ms;
    /* what is open */
    bool pa_up;            /* holds one Pa_Initialize reference */
    PaStream *stream;
    ssmd_ring *ring;
    int index, rate_hz, channels;
    int device_channels;   /* the device's maximum input channels */
    char name[256];
    char last_err[512];    /* why the last reopen failed, for status */
    /* written by the callback, read by the owner */
    atomic_uint_least64_t captured, dropped, pa_overflows;
};

static int capture_cb(const void *input, void *output, unsigned long frames,
                      const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags flags, void *user)
{
    (void)output;
    (void)time;
    ssmd_capture *c = user;
    if (flags & paInputOverflow)
        atomic_fetch_add_explicit(&c->pa_overflows, 1, memory_order_relaxed);
    size_t ch = (size_t)c->channels;
    size_t fit = 0;
    if (input) {
        fit = ssmd_ring_write_space(c->ring) / ch;
        if (fit > frames) fit = frames;
        ssmd_ring_write(c->ring, input, fit * ch);
    }
    if (fit < frames)
        atomic_fetch_add_explicit(&c->dropped, frames - fit, memory_order_relaxed);
    /* release after the dropped count: a reader that loads captured first
     * (acquire) sees dropped at least as large as that moment's */
    atomic_fetch_add_explicit(&c->captured, frames, memory_order_release);
    return paContinue;
}

/* Closes a device stream, its ring and its PortAudio reference (capture and
 * playback alike); each part only when held. */
static void pa_shut(PaStream **stream, ssmd_ring **ring, bool *pa_up)
{
    if (*stream) {
        Pa_AbortStream(*stream); /* abort: do not wait for buffers to drain */
        Pa_CloseStream(*stream);
        *stream = NULL;
    }
    ssmd_ring_destroy(*ring);
    *ring = NULL;
    if (*pa_up) {
        pa_terminate();
        *pa_up = false;
    }
}

static void capture_shut(ssmd_capture *c)
{
    pa_shut(&c->stream, &c->ring, &c->pa_up);
}

/* The ALSA PCM name behind a PortAudio ALSA device: PortAudio (19.6, 19.7)
 * names a sound card's device "card: device (hw:0,0)" (or "(plughw:0,0)")
 * and a PCM of the ALSA configuration by its own name.  False when the
 * device is not ALSA's or the name is too long. */
static bool alsa_pcm_name(const PaDeviceInfo *info, char *out, size_t cap)
{
#if SSMD_HAVE_PA_ALSA
    const PaHostApiInfo *h = Pa_GetHostApiInfo(info->hostApi);
    if (!h || h->type != paALSA || !info->name) return false;
    const char *name = info->name, *open = strrchr(name, '(');
    size_t len = strlen(name);
    if (open && open > name && open[-1] == ' ' && len > 0 && name[len - 1] == ')' &&
        (strncmp(open + 1, "hw:", 3) == 0 || strncmp(open + 1, "plughw:", 7) == 0)) {
        name = open + 1;
        len = strlen(name) - 1;
    }
    if (len == 0 || len >= cap) return false;
    memcpy(out, name, len);
    out[len] = 0;
    return true;
#else
    (void)info;
    (void)out;
    (void)cap;
    return false;
#endif
}

/* One Pa_OpenStream of c->channels channels at rate_hz.  An ALSA device is
 * opened by its PCM name (PaAlsaStreamInfo), which makes PortAudio ask ALSA
 * for exactly c->channels: opened by index, PortAudio opens at least the
 * device's minimum channel count and hands over the first c->channels, so a
 * stereo-only microphone asked for 1 channel "opens" and delivers its left
 * channel alone.  Opened by name, it refuses (paInvalidChannelCount) and the
 * caller can ask for what it has. */
static PaError capture_try_open(ssmd_capture *c, int idx, const PaDeviceInfo *info,
                                const char *alsa_name, int rate_hz)
{
    PaStreamParameters in = {
        .device = idx, .channelCount = c->channels, .sampleFormat = paFloat32,
        .suggestedLatency = info->defaultLowInputLatency, .hostApiSpecificStreamInfo = NULL,
    };
#if SSMD_HAVE_PA_ALSA
    PaAlsaStreamInfo alsa = { .size = sizeof alsa, .hostApiType = paALSA, .version = 1,
                              .deviceString = alsa_name };
    if (alsa_name) {
        in.device = paUseHostApiSpecificDeviceSpecification;
        in.hostApiSpecificStreamInfo = &alsa;
    }
#else
    (void)alsa_name;
#endif
    c->rate_hz = rate_hz;
    PaError e = Pa_OpenStream(&c->stream, &in, NULL, rate_hz, paFramesPerBufferUnspecified,
                              paNoFlag, capture_cb, c);
    if (e != paNoError) c->stream = NULL;
    return e;
}

/* Opens c->stream: min(max_channels, the device's) channels, or, when the
 * device refuses that count, 2 channels, then the device's maximum; each at
 * the wanted rate, else the device's default rate.  Sets c->channels and
 * c->rate_hz to what opened; on failure err names the last try. */
static int capture_open_stream(ssmd_capture *c, int idx, const PaDeviceInfo *info,
                               const char *label, char *err, size_t cap)
{
    char alsa_buf[256];
    const char *alsa_name = alsa_pcm_name(info, alsa_buf, sizeof alsa_buf) ? alsa_buf : NULL;
    int dev_ch = info->maxInputChannels;
    int tries[3] = { c->max_channels < dev_ch ? c->max_channels : dev_ch, 2, dev_ch }, n_tries = 0;
    for (int i = 0; i < 3; i++) {
        bool dup = tries[i] < 1 || tries[i] > dev_ch;
        for (int j = 0; j < n_tries; j++) dup = dup || tries[j] == tries[i];
        if (!dup) tries[n_tries++] = tries[i];
    }
    /* The wanted rate if the device opens at it, else its default rate.
     * Trying Pa_OpenStream itself rather than Pa_IsFormatSupported: the
     * latter leaves the buffer size to ALSA, which picks the largest the
     * device allows (274 MB on a null PCM) and is slow to allocate. */
    double dflt = info->defaultSampleRate;
    int dflt_hz = (int)(dflt + 0.5);
    PaError e = paInvalidChannelCount;
    for (int t = 0; t < n_tries && e == paInvalidChannelCount; t++) {
        c->channels = tries[t];
        e = paInvalidSampleRate;
        if (c->want_rate_hz > 0) e = capture_try_open(c, idx, info, alsa_name, c->want_rate_hz);
        if (e != paNoError && (c->want_rate_hz <= 0 || (double)c->want_rate_hz != dflt)) {
            if (dflt_hz < 1) {
                set_err(err, cap, "%s ('%s'): the device reports no usable default rate", label,
                        c->name);
                return -1;
            }
            e = capture_try_open(c, idx, info, alsa_name, dflt_hz);
        }
    }
    if (e == paNoError) return 0;
    if (c->want_rate_hz > 0 && c->want_rate_hz != c->rate_hz)
        set_err(err, cap, "%s ('%s'): cannot open %d Hz nor the default %d Hz, %d channels: %s",
                label, c->name, c->want_rate_hz, c->rate_hz, c->channels, Pa_GetErrorText(e));
    else
        set_err(err, cap, "%s ('%s'): cannot open %d Hz, %d channels: %s", label, c->name,
                c->rate_hz, c->channels, Pa_GetErrorText(e));
    return -1;
}

/* Resolves, opens and starts; on failure leaves c shut with err set. */
static int capture_start(ssmd_capture *c, char *err, size_t cap)
{
    char label[300];
    spec_label(label, sizeof label, c->spec, true);
    PaError e = pa_initialize();
    if (e != paNoError) {
        set_err(err, cap, "%s: PortAudio: %s", label, Pa_GetErrorText(e));
        return -1;
    }
    c->pa_up = true;
    int idx = resolve_device(c->spec, true, err, cap);
    if (idx < 0) goto fail;
    const PaDeviceInfo *info = Pa_GetDeviceInfo(idx);
    c->index = idx;
    snprintf(c->name, sizeof c->name, "%s", info->name);
    c->device_channels = info->maxInputChannels;
    if (capture_open_stream(c, idx, info, label, err, cap) != 0) goto fail;
    /* ring: ring_ms at the opened rate, whole frames (the callback runs only
     * after Pa_StartStream, below) */
    size_t frames = ((size_t)c->rate_hz * (size_t)c->ring_ms + 999) / 1000;
    if (frames < 1) frames = 1;
    if (frames > SSMD_RING_MAX_CAPACITY / (size_t)c->channels) {
        set_err(err, cap, "%s: ring of %d ms at %d Hz x %d channels is too large", label,
                c->ring_ms, c->rate_hz, c->channels);
        goto fail;
    }
    c->ring = ssmd_ring_create(frames * (size_t)c->channels);
    if (!c->ring) {
        set_err(err, cap, "%s: out of memory for a %d ms ring", label, c->ring_ms);
        goto fail;
    }
    e = Pa_StartStream(c->stream);
    if (e != paNoError) {
        set_err(err, cap, "%s ('%s'): cannot start: %s", label, c->name, Pa_GetErrorText(e));
        goto fail;
    }
    c->last_err[0] = 0;
    return 0;
fail:
    capture_shut(c);
    return -1;
}

ssmd_capture *ssmd_capture_open(const char *device, int want_rate_hz, int max_channels,
                                int ring_ms, char *err, size_t err_cap)
{
    char label[300];
    spec_label(label, sizeof label, device, true);
    if (!device) device = "";
    if (strlen(device) >= sizeof ((ssmd_capture *)0)->spec) {
        set_err(err, err_cap, "device spec is too long (%zu characters)", strlen(device));
        return NULL;
    }
    if (want_rate_hz < 0 || max_channels < 1 || ring_ms < 1) {
        set_err(err, err_cap, "%s: bad parameters (rate %d Hz, max %d channels, ring %d ms)",
                label, want_rate_hz, max_channels, ring_ms);
        return NULL;
    }
    ssmd_capture *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, err_cap, "%s: out of memory", label);
        return NULL;
    }
    snprintf(c->spec, sizeof c->spec, "%s", device);
    c->want_rate_hz = want_rate_hz;
    c->max_channels = max_channels;
    c->ring_ms = ring_ms;
    atomic_init(&c->captured, 0);
    atomic_init(&c->dropped, 0);
    atomic_init(&c->pa_overflows, 0);
    if (capture_start(c, err, err_cap) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

int ssmd_capture_rate_hz(const ssmd_capture *c) { return c->rate_hz; }
int ssmd_capture_channels(const ssmd_capture *c) { return c->channels; }
int ssmd_capture_device_channels(const ssmd_capture *c) { return c->device_channels; }
const char *ssmd_capture_device_name(const ssmd_capture *c) { return c->name; }
int ssmd_capture_device_index(const ssmd_capture *c) { return c->index; }

size_t ssmd_capture_read(ssmd_capture *c, float *out, size_t max_frames)
{
    if (!c->ring || max_frames == 0) return 0;
    size_t ch = (size_t)c->channels;
    if (max_frames > SIZE_MAX / ch) max_frames = SIZE_MAX / ch;
    /* The fill level is whole frames, so a whole-frame request reads whole frames. */
    return ssmd_ring_read(c->ring, out, max_frames * ch) / ch;
}

size_t ssmd_capture_frames(const ssmd_capture *c)
{
    return c->ring ? ssmd_ring_available(c->ring) / (size_t)c->channels : 0;
}

uint64_t ssmd_capture_overflows(const ssmd_capture *c)
{
    return atomic_load_explicit(&c->dropped, memory_order_relaxed);
}

void ssmd_capture_stats_get(const ssmd_capture *c, ssmd_capture_stats *out)
{
    out->frames_captured = atomic_load_explicit(&c->captured, memory_order_acquire);
    out->frames_dropped = atomic_load_explicit(&c->dropped, memory_order_relaxed);
    out->pa_overflows = atomic_load_explicit(&c->pa_overflows, memory_order_relaxed);
}

int ssmd_capture_status(ssmd_capture *c, char *err, size_t err_cap)
{
    char label[300];
    spec_label(label, sizeof label, c->spec, true);
    if (!c->stream) {
        /* a failed reopen: its error already names the device */
        if (c->last_err[0]) set_err(err, err_cap, "%s", c->last_err);
        else set_err(err, err_cap, "%s: not open", label);
        return -1;
    }
    PaError a = Pa_IsStreamActive(c->stream);
    if (a == 1) return 0;
    set_err(err, err_cap, "%s ('%s'): capture stopped: %s", label, c->name,
            a == 0 ? "the stream is no longer active" : Pa_GetErrorText(a));
    return -1;
}

int ssmd_capture_reopen(ssmd_capture *c, char *err, size_t err_cap)
{
    capture_shut(c);
    char why[512];
    if (capture_start(c, why, sizeof why) != 0) {
        snprintf(c->last_err, sizeof c->last_err, "%s", why);
        set_err(err, err_cap, "%s", why);
        return -1;
    }
    return 0;
}

void ssmd_capture_close(ssmd_capture *c)
{
    if (!c) return;
    capture_shut(c);
    free(c);
}

/* --------------------------------------------------------------- playback */

struct ssmd_playback {
    char spec[256];
    bool pa_up;
    PaStream *stream;
    ssmd_ring *ring;
    int index, rate_hz, channels;
    char name[256];
    atomic_uint_least64_t played, underruns, dropped;
    atomic_bool started;   /* set by the owner when the first frame is queued */
};

static int playback_cb(const void *input, void *output, unsigned long frames,
                       const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags flags, void *user)
{
    (void)input;
    (void)time;
    (void)flags;
    ssmd_playback *p = user;
    float *out = output;
    size_t ch = (size_t)p->channels;
    size_t got = ssmd_ring_read(p->ring, out, frames * ch) / ch;
    if (got < frames) {
        memset(out + got * ch, 0, (frames - got) * ch * sizeof(float));
        if (atomic_load_explicit(&p->started, memory_order_relaxed))
            atomic_fetch_add_explicit(&p->underruns, frames - got, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&p->played, got, memory_order_relaxed);
    return paContinue;
}

static void playback_shut(ssmd_playback *p)
{
    pa_shut(&p->stream, &p->ring, &p->pa_up);
}

ssmd_playback *ssmd_playback_open(const char *device, int rate_hz, int channels, int ring_ms,
                                  char *err, size_t err_cap)
{
    char label[300];
    spec_label(label, sizeof label, device, false);
    if (!device) device = "";
    if (strlen(device) >= sizeof ((ssmd_playback *)0)->spec) {
        set_err(err, err_cap, "monitor device spec is too long (%zu characters)", strlen(device));
        return NULL;
    }
    if (rate_hz < 1 || channels < 1 || ring_ms < 1) {
        set_err(err, err_cap, "%s: bad parameters (rate %d Hz, %d channels, ring %d ms)", label,
                rate_hz, channels, ring_ms);
        return NULL;
    }
    ssmd_playback *p = calloc(1, sizeof *p);
    if (!p) {
        set_err(err, err_cap, "%s: out of memory", label);
        return NULL;
    }
    snprintf(p->spec, sizeof p->spec, "%s", device);
    atomic_init(&p->played, 0);
    atomic_init(&p->underruns, 0);
    atomic_init(&p->dropped, 0);
    atomic_init(&p->started, false);
    p->rate_hz = rate_hz;
    p->channels = channels;

    PaError e = pa_initialize();
    if (e != paNoError) {
        set_err(err, err_cap, "%s: PortAudio: %s", label, Pa_GetErrorText(e));
        goto fail;
    }
    p->pa_up = true;
    int idx = resolve_device(device, false, err, err_cap);
    if (idx < 0) goto fail;
    const PaDeviceInfo *info = Pa_GetDeviceInfo(idx);
    p->index = idx;
    snprintf(p->name, sizeof p->name, "%s", info->name);
    if (channels > info->maxOutputChannels) {
        set_err(err, err_cap, "%s ('%s'): %d channels asked, the device has %d", label, p->name,
                channels, info->maxOutputChannels);
        goto fail;
    }
    size_t frames = ((size_t)rate_hz * (size_t)ring_ms + 999) / 1000;
    if (frames < 1) frames = 1;
    if (frames > SSMD_RING_MAX_CAPACITY / (size_t)channels ||
        !(p->ring = ssmd_ring_create(frames * (size_t)channels))) {
        set_err(err, err_cap, "%s: cannot allocate a %d ms ring", label, ring_ms);
        goto fail;
    }
    PaStreamParameters outp = {
        .device = idx, .channelCount = channels, .sampleFormat = paFloat32,
        .suggestedLatency = info->defaultLowOutputLatency, .hostApiSpecificStreamInfo = NULL,
    };
    e = Pa_OpenStream(&p->stream, NULL, &outp, rate_hz, paFramesPerBufferUnspecified, paNoFlag,
                      playback_cb, p);
    if (e != paNoError) {
        p->stream = NULL;
        set_err(err, err_cap, "%s ('%s'): cannot open %d Hz, %d channels: %s", label, p->name,
                rate_hz, channels, Pa_GetErrorText(e));
        goto fail;
    }
    e = Pa_StartStream(p->stream);
    if (e != paNoError) {
        set_err(err, err_cap, "%s ('%s'): cannot start: %s", label, p->name, Pa_GetErrorText(e));
        goto fail;
    }
    return p;
fail:
    playback_shut(p);
    free(p);
    return NULL;
}

int ssmd_playback_rate_hz(const ssmd_playback *p) { return p->rate_hz; }
int ssmd_playback_channels(const ssmd_playback *p) { return p->channels; }
const char *ssmd_playback_device_name(const ssmd_playback *p) { return p->name; }

size_t ssmd_playback_write(ssmd_playback *p, const float *interleaved, size_t frames)
{
    size_t ch = (size_t)p->channels;
    size_t fit = ssmd_ring_write_space(p->ring) / ch;
    if (fit > frames) fit = frames;
    if (fit > 0) {
        ssmd_ring_write(p->ring, interleaved, fit * ch);
        atomic_store_explicit(&p->started, true, memory_order_relaxed);
    }
    if (fit < frames)
        atomic_fetch_add_explicit(&p->dropped, frames - fit, memory_order_relaxed);
    return fit;
}

size_t ssmd_playback_queued(const ssmd_playback *p)
{
    return ssmd_ring_available(p->ring) / (size_t)p->channels;
}

uint64_t ssmd_playback_underruns(const ssmd_playback *p)
{
    return atomic_load_explicit(&p->underruns, memory_order_relaxed);
}

uint64_t ssmd_playback_dropped(const ssmd_playback *p)
{
    return atomic_load_explicit(&p->dropped, memory_order_relaxed);
}

uint64_t ssmd_playback_played(const ssmd_playback *p)
{
    return atomic_load_explicit(&p->played, memory_order_relaxed);
}

int ssmd_playback_status(ssmd_playback *p, char *err, size_t err_cap)
{
    char label[300];
    spec_label(label, sizeof label, p->spec, false);
    PaError a = p->stream ? Pa_IsStreamActive(p->stream) : 0;
    if (a == 1) return 0;
    set_err(err, err_cap, "%s ('%s'): playback stopped: %s", label, p->name,
            a == 0 ? "the stream is no longer active" : Pa_GetErrorText(a));
    return -1;
}

void ssmd_playback_close(ssmd_playback *p)
{
    if (!p) return;
    playback_shut(p);
    free(p);
}
