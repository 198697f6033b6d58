/* SPDX-License-Identifier: MIT */
/* clients/src/client.c — shared helpers of the command-line clients (client.h). */
#include "client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop_requested = 0;

static void on_signal(int sig)
{
    cli_stop_requested = sig;
}

void cli_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout pipe becomes a write error, not a kill */
    signal(SIGXFSZ, SIG_IGN); /* so does a file-size limit (ulimit -f) */
}

const char *cli_endpoint_default(const char *env_name, const char *fallback)
{
    const char *v = getenv(env_name);
    return v && *v ? v : fallback;
}

const char *cli_endpoint_env(const char *env_name)
{
    const char *v = getenv(env_name);
    return v && *v ? env_name : NULL;
}

double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1; /* no sign, no blanks */
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_seconds(const char *s, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v) || v <= 0.0 || v > 1e9) return -1;
    *out = v;
    return 0;
}

/* The monitor's first frame: u16 event, u32 value (ZeroMQ 4 layout). */
static int monitor_event(void *mon, int timeout_ms, uint16_t *event)
{
    zmq_pollitem_t it = { mon, 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc <= 0) return rc;
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, mon, 0) < 0) {
        zmq_msg_close(&f);
        return -1;
    }
    int ok = zmq_msg_size(&f) >= 6;
    if (ok) {
        const uint8_t *p = zmq_msg_data(&f);
        *event = (uint16_t)(p[0] | (p[1] << 8));
    }
    int more = zmq_msg_more(&f);
    zmq_msg_close(&f);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, mon, 0) < 0) more = 0;
        else more = zmq_msg_more(&f);
        zmq_msg_close(&f);
    }
    return ok ? 1 : 0;
}

int cli_connect(void *ctx, void *sock, const char *endpoint, const char *env_name, double timeout_s,
                char *msg, size_t cap)
{
    char addr[64];
    static int n_monitors = 0;
    snprintf(addr, sizeof addr, "inproc://ssmd-cli-monitor-%d", n_monitors++);
    if (zmq_socket_monitor(sock, addr, ZMQ_EVENT_CONNECTED) != 0) {
        snprintf(msg, cap, "cannot monitor socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
    if (!mon || zmq_connect(mon, addr) != 0) {
        snprintf(msg, cap, "cannot monitor socket: %s", zmq_strerror(zmq_errno()));
        if (mon) zmq_close(mon);
        zmq_socket_monitor(sock, NULL, 0);
        return -1;
    }
    int rc = -1;
    if (zmq_connect(sock, endpoint) != 0) {
        if (env_name)
            snprintf(msg, cap, "%s=\"%s\": invalid endpoint (%s; expected tcp://HOST:PORT, ipc://PATH or "
                     "inproc://NAME)", env_name, endpoint, zmq_strerror(zmq_errno()));
        else
            snprintf(msg, cap, "bad endpoint '%s': %s", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    double deadline = cli_now_s() + timeout_s;
    for (;;) {
        if (cli_stop_requested) {
            snprintf(msg, cap, "interrupted while connecting to %s", endpoint);
            break;
        }
        double left = deadline - cli_now_s();
        if (left <= 0) {
            snprintf(msg, cap, "no connection to %s%s%s%s after %.1f s (is ssmd running?)", endpoint,
                     env_name ? " (from $" : "", env_name ? env_name : "", env_name ? ")" : "", timeout_s);
            break;
        }
        uint16_t ev = 0;
        int slice = left > 0.1 ? 100 : (int)(left * 1000) + 1;
        int got = monitor_event(mon, slice, &ev);
        if (got < 0 && zmq_errno() != EINTR) {
            snprintf(msg, cap, "cannot monitor socket: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (got == 1 && ev == ZMQ_EVENT_CONNECTED) {
            rc = 0;
            break;
        }
    }
done:
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(mon);
    return rc;
}

int cli_socket_limits(void *sock, int64_t max_msg_bytes, int rcvbuf_bytes, int rcvhwm,
                      char *msg, size_t cap)
{
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg_bytes, sizeof max_msg_bytes) != 0) {
        snprintf(msg, cap, "cannot set the message size cap %lld: %s", (long long)max_msg_bytes,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    if (rcvbuf_bytes > 0 && zmq_setsockopt(sock, ZMQ_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes) != 0) {
        snprintf(msg, cap, "cannot set the receive buffer to %d bytes: %s", rcvbuf_bytes,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    if (rcvhwm >= 0 && zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0) {
        snprintf(msg, cap, "cannot set the receive queue to %d messages: %s", rcvhwm,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

void cli_msg_close(cli_msg *m)
{
    for (int i = 0; i < m->n_kept; i++) zmq_msg_close(&m->frames[i]);
    m->n_kept = 0;
    m->n_frames = 0;
}

int cli_msg_recv(void *sock, cli_msg *m, double timeout_s)
{
    m->n_frames = 0;
    m->n_kept = 0;
    double deadline = timeout_s < 0 ? -1 : cli_now_s() + timeout_s;
    for (;;) {
        if (cli_stop_requested) return -1;
        int slice = 100, last = 0;
        if (deadline >= 0) {
            double left = deadline - cli_now_s();
            if (left <= 0.1) { /* the last slice (timeout 0: one look without waiting) */
                slice = left > 0 ? (int)(left * 1000) + 1 : 0;
                last = 1;
            }
        }
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll(&it, 1, slice);
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue; /* cli_stop_requested decides */
            return -1;
        }
        if (rc > 0) break;
        if (last) return 0;
    }
    int more = 1;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *f = m->n_kept < CLI_MAX_FRAMES ? &m->frames[m->n_kept] : &tmp;
        zmq_msg_init(f);
        if (zmq_msg_recv(f, sock, 0) < 0) { /* cannot happen after POLLIN, but be safe */
            zmq_msg_close(f);
            cli_msg_close(m);
            return -1;
        }
        more = zmq_msg_more(f);
        m->n_frames++;
        if (f == &tmp) zmq_msg_close(f);
        else m->n_kept++;
    }
    return 1;
}

const uint8_t *cli_msg_frame(const cli_msg *m, int i, size_t *len)
{
    if (i < 0 || i >= m->n_kept) {
        *len = 0;
        return NULL;
    }
    zmq_msg_t *f = (zmq_msg_t *)&m->frames[i]; /* zmq_msg_data takes a non-const pointer */
    *len = zmq_msg_size(f);
    return zmq_msg_data(f);
}

int cli_data_decode(const cli_msg *m, int first, cli_data *d, char *why, size_t cap)
{
    memset(d, 0, sizeof *d);
    if (m->n_frames != first + 3) {
        snprintf(why, cap, "%d frames, expected %d", m->n_frames - first, 3);
        return SSMD_PROTO_BAD_TOPIC;
    }
    size_t hl = 0;
    d->topic = (const char *)cli_msg_frame(m, first, &d->topic_len);
    const uint8_t *hb = cli_msg_frame(m, first + 1, &hl);
    d->payload = cli_msg_frame(m, first + 2, &d->payload_len);
    int rc = ssmd_topic_parse(d->topic, d->topic_len, d->stream, &d->kind);
    if (rc != SSMD_PROTO_OK) {
        snprintf(why, cap, "malformed topic '%.*s'", (int)(d->topic_len > 80 ? 80 : d->topic_len),
                 d->topic);
        return rc;
    }
    rc = ssmd_header_decode(hb, hl, d->payload_len, 0, &d->h);
    if (rc != SSMD_PROTO_OK) {
        snprintf(why, cap, "%.*s: %s", (int)d->topic_len, d->topic, ssmd_proto_strerror(rc));
        return rc;
    }
    if (d->h.kind != d->kind) {
        snprintf(why, cap, "%.*s: header kind %u does not match the topic", (int)d->topic_len,
                 d->topic, (unsigned)d->h.kind);
        return SSMD_PROTO_BAD_KIND;
    }
    return SSMD_PROTO_OK;
}

const char *cli_flags_text(uint32_t flags, char *out, size_t cap)
{
    static const char *const names[] = { "discontinuity", "overflow", "clipped",
                                         "end-of-stream", "state-reset" };
    size_t n = 0;
    out[0] = '\0';
    for (unsigned b = 0; b < 32; b++) {
        if (!(flags & (1u << b))) continue;
        char unknown[16];
        const char *name = b < 5 ? names[b] : unknown;
        if (b >= 5) snprintf(unknown, sizeof unknown, "bit%u", b);
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", name);
        if (w < 0 || (size_t)w >= cap - n) break;
        n += (size_t)w;
    }
    if (n == 0) snprintf(out, cap, "-");
    return out;
}

int cli_writer_open(dsp_audio_writer **out, const char *path, ssmd_output_format format, int sample_rate_hz,
                    int channels, int64_t expected_frames, dsp_error *err)
{
    dsp_audio_write_format f;
    memset(&f, 0, sizeof f);
    f.container = DSP_AUDIO_CONTAINER_AUTO;
    f.subtype = ssmd_output_format_subtype(format, dsp_audio_container_from_path(path));
    f.sample_rate_hz = sample_rate_hz;
    f.channels = channels;
    f.vbr_quality = -1.0;
    f.expected_frames = expected_frames > 0 ? expected_frames : 0;
    return dsp_audio_writer_open(out, path, &f, err);
}

int cli_output_format_arg(const char *prog, const char *arg, ssmd_output_format *out)
{
    if (ssmd_output_format_parse(arg, out) == 0) return 0;
    fprintf(stderr, "%s: --output-format: expected one of " SSMD_OUTPUT_FORMAT_CHOICES ", got '%s'\n", prog, arg);
    return CLI_EXIT_USAGE;
}

int cli_output_format_check(const char *prog, int given, ssmd_output_format f, const char *out_path)
{
    if (!given) return 0;
    const char *name = ssmd_output_format_name(f);
    if (!out_path) {
        fprintf(stderr, "%s: --output-format %s: there is no output file (-o) to apply it to\n", prog, name);
        return CLI_EXIT_USAGE;
    }
    dsp_audio_container c = dsp_audio_container_from_path(out_path);
    if (ssmd_output_format_subtype(f, c) == DSP_AUDIO_SUBTYPE_DEFAULT) {
        fprintf(stderr, "%s: --output-format %s: %s is encoded by its codec (.ogg .opus .mp3), which sets the "
                "samples; the option applies to .wav .flac .aiff .au .w64 .rf64 .raw outputs\n", prog, name, out_path);
        return CLI_EXIT_USAGE;
    }
    return 0;
}
