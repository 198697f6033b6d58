/* SPDX-License-Identifier: MIT */
/* A paced virtual microphone for the tests and the soak harness: an ALSA
 * external I/O plugin (alsa-lib's ioplug SDK, <alsa/pcm_external.h>) that
 * plays a raw float32 file in a loop as a capture device, at the rate the
 * application opened it with, in real time.
 *
 * Why: the ALSA `file` + `null` devices of asoundrc.in have no clock (the
 * null PCM is always ready), so PortAudio's capture callback runs back to
 * back and costs a core (README.md).  Here the hardware position is the
 * wall clock: CLOCK_MONOTONIC since start() times the rate, and a timerfd
 * that fires once a period is the poll descriptor, so PortAudio sleeps
 * between periods as it does with a sound card.  An application that falls
 * a whole buffer behind gets an overrun (-EPIPE), as from a sound card.
 *
 * Configuration (asoundrc; the module is loaded by absolute path):
 *   pcm_type.ssmd_paced { lib "/path/to/libasound_module_pcm_ssmd_paced.so" }
 *   pcm.NAME { type ssmd_paced  infile "/path/to/file.f32"  channels 1 }
 * infile: raw float32 little-endian, interleaved `channels` channels (1-8,
 * default 1); the rate is whatever the application asks (8000-192000 Hz).
 * Capture only; FLOAT_LE only; mmap or read access, interleaved.
 *
 * The samples are a function of the stream position alone (frame p of the
 * stream is frame (base + p) mod n of the file), because alsa-lib calls the
 * capture transfer callback again for frames it already filled whenever an
 * application calls snd_pcm_mmap_begin() twice without committing. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* alsa-lib's headers export the plugin's version symbol for dlopen() only when
 * PIC is defined (otherwise they reference the static-build table). */
#ifndef PIC
#define PIC
#endif
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>

typedef struct {
    snd_pcm_ioplug_t io;
    int timer_fd;
    float *data;          /* the whole infile, interleaved */
    uint64_t n_frames;    /* frames in data, > 0 */
    uint64_t base;        /* file frame of stream position 0 */
    uint64_t consumed;    /* stream frames handed out since prepare (appl_ptr) */
    struct timespec t0;   /* start() */
    int running;
} paced_t;

static uint64_t elapsed_frames(const paced_t *p)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - p->t0.tv_sec) * 1000000000LL + (now.tv_nsec - p->t0.tv_nsec);
    if (ns < 0) ns = 0;
    /* frames = ns * rate / 1e9, without overflow for runs of years */
    return (uint64_t)(ns / 1000000000LL) * p->io.rate +
           (uint64_t)(ns % 1000000000LL) * p->io.rate / 1000000000ULL;
}

static int paced_start(snd_pcm_ioplug_t *io)
{
    paced_t *p = io->private_data;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    uint64_t period_ns = (uint64_t)io->period_size * 1000000000ULL / io->rate;
    if (period_ns == 0) period_ns = 1;
    struct itimerspec its = {
        .it_interval = {(time_t)(period_ns / 1000000000ULL), (long)(period_ns % 1000000000ULL)},
        .it_value = {(time_t)(period_ns / 1000000000ULL), (long)(period_ns % 1000000000ULL)},
    };
    if (timerfd_settime(p->timer_fd, 0, &its, NULL) != 0) return -errno;
    p->running = 1;
    return 0;
}

static int paced_stop(snd_pcm_ioplug_t *io)
{
    paced_t *p = io->private_data;
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    timerfd_settime(p->timer_fd, 0, &off, NULL);
    p->running = 0;
    return 0;
}

/* Position in the buffer, or -EPIPE once the application is a buffer behind. */
static snd_pcm_sframes_t paced_pointer(snd_pcm_ioplug_t *io)
{
    paced_t *p = io->private_data;
    if (!p->running) return (snd_pcm_sframes_t)(io->hw_ptr % io->buffer_size);
    uint64_t now = elapsed_frames(p);
    if (now >= (uint64_t)io->appl_ptr + io->buffer_size) return -EPIPE;
    return (snd_pcm_sframes_t)(now % io->buffer_size);
}

static snd_pcm_sframes_t paced_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
                                        snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
    paced_t *p = io->private_data;
    unsigned ch = io->channels;
    uint64_t pos = (p->base + (uint64_t)io->appl_ptr) % p->n_frames;
    for (unsigned c = 0; c < ch; c++) {
        const snd_pcm_channel_area_t *a = &areas[c];
        char *dst = (char *)a->addr + (a->first + a->step * offset) / 8;
        uint64_t q = pos;
        for (snd_pcm_uframes_t k = 0; k < size; k++) {
            memcpy(dst, &p->data[q * ch + c], sizeof(float));
            dst += a->step / 8;
            if (++q == p->n_frames) q = 0;
        }
    }
    if ((uint64_t)io->appl_ptr + size > p->consumed) p->consumed = (uint64_t)io->appl_ptr + size;
    return (snd_pcm_sframes_t)size;
}

/* After an overrun (or a first prepare) the stream position restarts at 0:
 * go on in the file where the last stream stopped. */
static int paced_prepare(snd_pcm_ioplug_t *io)
{
    paced_t *p = io->private_data;
    p->base = (p->base + p->consumed) % p->n_frames;
    p->consumed = 0;
    p->running = 0;
    return 0;
}

static int paced_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
                              unsigned short *revents)
{
    paced_t *p = io->private_data;
    (void)nfds;
    uint64_t ticks;
    if (pfd[0].revents & POLLIN) {
        ssize_t r = read(p->timer_fd, &ticks, sizeof ticks); /* non-blocking: may be EAGAIN */
        (void)r;
    }
    *revents = 0;
    if (!p->running) return 0;
    uint64_t now = elapsed_frames(p);
    uint64_t avail = now > (uint64_t)io->appl_ptr ? now - (uint64_t)io->appl_ptr : 0;
    if (avail >= io->period_size || avail >= io->buffer_size) *revents = POLLIN;
    return 0;
}

static int paced_close(snd_pcm_ioplug_t *io)
{
    paced_t *p = io->private_data;
    close(p->timer_fd);
    free(p->data);
    free(p);
    return 0;
}

static const snd_pcm_ioplug_callback_t paced_callbacks = {
    .start = paced_start,
    .stop = paced_stop,
    .pointer = paced_pointer,
    .transfer = paced_transfer,
    .prepare = paced_prepare,
    .poll_revents = paced_poll_revents,
    .close = paced_close,
};

static int load_infile(paced_t *p, const char *path, unsigned channels)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        SNDERR("ssmd_paced: cannot open infile %s: %s", path, strerror(errno));
        return -ENOENT;
    }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return -EIO; }
    long bytes = ftell(f);
    rewind(f);
    size_t frame_bytes = sizeof(float) * channels;
    if (bytes < (long)frame_bytes) {
        SNDERR("ssmd_paced: infile %s holds no whole frame of %u float32 channels", path, channels);
        fclose(f);
        return -EINVAL;
    }
    p->n_frames = (uint64_t)bytes / frame_bytes;
    p->data = malloc((size_t)p->n_frames * frame_bytes);
    if (!p->data) { fclose(f); return -ENOMEM; }
    size_t got = fread(p->data, frame_bytes, (size_t)p->n_frames, f);
    fclose(f);
    return got == p->n_frames ? 0 : -EIO;
}

SND_PCM_PLUGIN_DEFINE_FUNC(ssmd_paced)
{
    const char *infile = NULL;
    long channels = 1;
    snd_config_iterator_t i, next;
    (void)root;
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        if (snd_config_get_id(n, &id) < 0) continue;
        if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint")) continue;
        if (!strcmp(id, "infile")) {
            if (snd_config_get_string(n, &infile) < 0) {
                SNDERR("ssmd_paced: infile must be a string");
                return -EINVAL;
            }
            continue;
        }
        if (!strcmp(id, "channels")) {
            if (snd_config_get_integer(n, &channels) < 0 || channels < 1 || channels > 8) {
                SNDERR("ssmd_paced: channels must be an integer 1-8");
                return -EINVAL;
            }
            continue;
        }
        SNDERR("ssmd_paced: unknown field %s", id);
        return -EINVAL;
    }
    if (!infile) {
        SNDERR("ssmd_paced: infile is not set");
        return -EINVAL;
    }
    if (stream != SND_PCM_STREAM_CAPTURE) return -EINVAL; /* capture only */

    paced_t *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    int err = load_infile(p, infile, (unsigned)channels);
    if (err < 0) { free(p->data); free(p); return err; }
    p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->timer_fd < 0) { err = -errno; free(p->data); free(p); return err; }

    p->io.version = SND_PCM_IOPLUG_VERSION;
    p->io.name = "ssmd paced virtual microphone";
    p->io.callback = &paced_callbacks;
    p->io.private_data = p;
    p->io.poll_fd = p->timer_fd;
    p->io.poll_events = POLLIN;
    p->io.mmap_rw = 0;
    err = snd_pcm_ioplug_create(&p->io, name, stream, mode);
    if (err < 0) { close(p->timer_fd); free(p->data); free(p); return err; }

    static const unsigned int access_list[] = {SND_PCM_ACCESS_MMAP_INTERLEAVED,
                                               SND_PCM_ACCESS_RW_INTERLEAVED};
    static const unsigned int format_list[] = {SND_PCM_FORMAT_FLOAT_LE};
    unsigned frame_bytes = 4u * (unsigned)channels;
    if ((err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_ACCESS, 2, access_list)) < 0 ||
        (err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_FORMAT, 1, format_list)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_CHANNELS, (unsigned)channels,
                                               (unsigned)channels)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_RATE, 8000, 192000)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 32 * frame_bytes,
                                               65536 * frame_bytes)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 64 * frame_bytes,
                                               4u << 20)) < 0) {
        snd_pcm_ioplug_delete(&p->io);
        return err;
    }
    *pcmp = p->io.pcm;
    return 0;
}

SND_PCM_PLUGIN_SYMBOL(ssmd_paced);
