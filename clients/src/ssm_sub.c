/* SPDX-License-Identifier: MIT */
/* ssm-sub: subscribes to ssmd's data plane and prints one line per message,
 * or writes one stream's audio to a file (docs/protocol.md, "Data plane").
 *
 * seq is tracked per topic: a jump forward is reported on stderr as dropped
 * messages (a slow subscriber loses messages when the daemon's queue for it
 * is full); the first message of a topic, a new daemon epoch or seq going
 * back (the stream was restarted) start the count afresh.
 *
 * --cluster: one SUB socket connected to the PUB endpoint of every member
 * etcd lists (re-read every second), and per topic what the Python
 * ClusterSubscriber does (docs/cluster.md, "Subscribers across an owner
 * change"): audio deduplicated by first_sample (a new owner publishes again
 * the output from its checkpoint on), per-frame topics by first_sample, seq
 * renumbered 0, 1, 2... as printed, missing audio flagged (DISCONTINUITY)
 * and reported; the `end` event that follows a `moved` one (a hand-over)
 * does not end the stream. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <portaudio.h>

#include "client.h"
#include "push_cluster.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5560"
#define MAX_TOPICS 4096     /* distinct topics tracked for seq gaps */
#define MAX_TOPIC_BYTES 255
/** Largest gap (seconds of audio) --output fills with silence. */
#define MAX_FILL_S 60
/** Most channels --output / --play take. */
#define SUB_MAX_CHANNELS 64
/** --cluster: most members connected; the member list is re-read this often (s). */
#define SUB_CLUSTER_MAX_MEMBERS 256
#define SUB_CLUSTER_REFRESH_S 1.0
/** --cluster: a member no longer listed stays connected this long (s): a clean
 *  stop leaves the list first (at most 5 s of hand-overs, 1.5 s of last output). */
#define SUB_CLUSTER_GONE_S 10.0

static const char *const usage_text =
    "Usage: ssm-sub [OPTIONS] [TOPIC_PREFIX...]\n"
    "Subscribe to ssmd's data plane and print, write or play what it publishes.\n"
    "All topics when no prefix is given, else those starting with a prefix such as\n"
    "'mic/' or 'mic/features/'; one line per message:\n"
    "  TOPIC seq=N first_sample=N ROWSxCOLS DTYPE rate=HZ flags=NAMES [values | JSON]\n"
    "Gaps in a topic's seq are reported on stderr as dropped messages.\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP   data-plane socket (default: $" CLI_ENV_PUB " when set, else\n"
    "                      " DEFAULT_ENDPOINT ")\n"
    "      --cluster URL   follow streams across the members of an ssmd cluster\n"
    "                      (etcd://HOST:PORT[,HOST:PORT...]): connect to every member's\n"
    "                      data plane, drop the output a new owner publishes again,\n"
    "                      number seq per topic as printed; missed audio is flagged\n"
    "                      DISCONTINUITY and reported (docs/cluster.md)\n"
    "  -j, --json          print JSON lines (header fields, values or the JSON payload)\n"
    "  -q, --quiet         print nothing per message\n"
    "  -o, --output FILE   write the <s>/audio/ payloads of one stream to FILE (format from\n"
    "                      the extension; \"-\": AU on stdout, then nothing else is\n"
    "                      printed there); stops at the stream's end; dropped messages\n"
    "                      become silence\n"
    "      --output-format F  sample format of FILE: " SSMD_OUTPUT_FORMAT_CHOICES " (default\n"
    "                      " SSMD_OUTPUT_FORMAT_DEFAULT_NAME ", as ssmd's; .ogg/.opus/.mp3: their codec)\n"
    "      --play          play the audio of that stream on an output device (PortAudio);\n"
    "                      stops at the stream's end\n"
    "      --device DEV    with --play: device index or name substring (default: the\n"
    "                      default output)\n"
    "      --stream NAME   with --output/--play: the stream (default: the first seen)\n"
    "  -n, --count N       stop after N messages\n"
    "  -s, --seconds S     stop after S seconds\n"
    "      --until-end     stop at the end of a stream: its {\"event\":\"end\"}, or a message\n"
    "                      flagged end-of-stream when its events are not subscribed;\n"
    "                      with --output/--play, the end of the stream written/played\n"
    "  -t, --timeout S     give up when the daemon cannot be reached within S seconds\n"
    "                      (default 5)\n"
    "      --rcvbuf BYTES  kernel receive buffer of the connection (default 65536; 0: the\n"
    "                      OS default, autotuned up to megabytes)\n"
    "      --rcvhwm N      messages queued in this client before the connection stalls\n"
    "                      (default 32; 0: unlimited). With the daemon's pub_hwm and\n"
    "                      pub_sndbuf these bound how old the data of a slow reader can\n"
    "                      get before it sees drops (docs/protocol.md)\n"
    "  -h, --help          this text\n"
    "\n"
    "Environment:\n"
    "  " CLI_ENV_PUB "            the data-plane endpoint when -e is not given\n"
    "\n"
    "Exit status:\n"
    "  0                   ok\n"
    "  1                   unreachable daemon or output error\n"
    "  2                   bad options\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ssm-sub: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ssm-sub --help)\n");
    return CLI_EXIT_USAGE;
}

typedef struct topic_seq {
    char topic[MAX_TOPIC_BYTES + 1];
    uint64_t next_seq, epoch;
    /* --cluster */
    uint64_t next_first;  /* the first sample (audio) or frame (per-frame topics) not yet delivered */
    int have_next;
    uint64_t out_seq;     /* seq as renumbered */
    uint64_t moved_epoch; /* events: the epoch of the owner that said "moved" (its "end" is not the end) */
} topic_seq;

typedef struct sub_state {
    const char *endpoint, *out_path, *out_stream;
    const char *endpoint_env; /* the variable the endpoint came from, NULL for -e or the default */
    ssmd_output_format out_format;
    char **prefixes;
    int n_prefixes;
    int json, quiet, until_end;
    uint64_t max_count;
    double seconds, timeout_s;
    int rcvbuf_bytes, rcvhwm;

    topic_seq *topics;
    size_t n_topics;
    uint64_t n_msgs, n_dropped, n_malformed;

    /* --cluster */
    const char *cluster;
    ssmd_etcd *etcd;
    char *eps[SUB_CLUSTER_MAX_MEMBERS];
    double eps_gone[SUB_CLUSTER_MAX_MEMBERS]; /* when the member left etcd's list; 0: listed */
    size_t n_eps;
    double t_refresh;
    uint64_t n_missed, n_duplicates, n_switches;
    int not_end; /* the message is the "end" of an owner that handed the stream over */

    /* the stream whose audio goes to --output / --play */
    char sel_stream[SSMD_STREAM_NAME_MAX + 1];
    uint32_t sel_rate, sel_cols;
    uint64_t sel_next_first, sel_frames;
    dsp_audio_writer *writer;
    int play, pa_initialized;
    const char *play_device;
    PaStream *player;
    uint64_t play_underflows;
    int done;
    FILE *out; /* where lines go (stdout, or stderr when audio goes to stdout) */
} sub_state;

/* The topic's entry (added when new: *fresh = 1), NULL when MAX_TOPICS are tracked. */
static topic_seq *topic_entry(sub_state *s, const cli_data *d, int *fresh)
{
    size_t tl = d->topic_len > MAX_TOPIC_BYTES ? MAX_TOPIC_BYTES : d->topic_len;
    *fresh = 0;
    for (size_t i = 0; i < s->n_topics; i++)
        if (strlen(s->topics[i].topic) == tl && !memcmp(s->topics[i].topic, d->topic, tl)) return &s->topics[i];
    if (s->n_topics == MAX_TOPICS) return NULL;
    topic_seq *t = &s->topics[s->n_topics++];
    memset(t, 0, sizeof *t);
    memcpy(t->topic, d->topic, tl);
    t->topic[tl] = '\0';
    *fresh = 1;
    return t;
}

static size_t dtype_bytes(uint16_t dt)
{
    return dt == SSMD_DTYPE_F32 ? 4 : dt == SSMD_DTYPE_I16 ? 2 : 1;
}

/* The event name of an event message into out[cap] ("" when it is none). */
static void event_name(const cli_data *d, char *out, size_t cap)
{
    out[0] = '\0';
    if (d->kind != SSMD_KIND_EVENT || d->h.dtype != SSMD_DTYPE_UTF8) return;
    json_error_t jerr;
    json_t *j = json_loadb((const char *)d->payload, d->payload_len, 0, &jerr);
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (ev) snprintf(out, cap, "%s", ev);
    json_decref(j);
}

/* --cluster: follows d's topic across owners.  Returns 1 when d repeats what
 * was delivered (drop it), else 0 with d trimmed to the new samples, its seq
 * renumbered and *gap the samples missed before it (flagged DISCONTINUITY). */
static int cluster_follow(sub_state *s, cli_data *d, uint64_t *gap)
{
    int fresh;
    *gap = 0;
    s->not_end = 0;
    topic_seq *t = topic_entry(s, d, &fresh);
    if (!t) return 0; /* too many topics: passed as they come */
    if (!fresh && t->epoch != d->h.epoch) {
        s->n_switches++;
        fprintf(stderr, "ssm-sub: %s: owner changed (epoch 0x%016" PRIx64 " -> 0x%016" PRIx64 ")\n", t->topic,
                t->epoch, d->h.epoch);
    }
    t->epoch = d->h.epoch;
    if (d->kind == SSMD_KIND_AUDIO) {
        uint64_t first = d->h.first_sample, rows = d->h.rows;
        if (t->have_next && rows > 0 && first + rows <= t->next_first) {
            s->n_duplicates += rows;
            return 1;
        }
        if (t->have_next && rows == 0 && first < t->next_first) {
            d->h.first_sample = t->next_first; /* a bare end-of-stream marker: nothing to trim */
        } else if (t->have_next && first < t->next_first) {
            uint64_t cut = t->next_first - first;
            size_t bytes = (size_t)cut * d->h.cols * dtype_bytes(d->h.dtype);
            s->n_duplicates += cut;
            d->payload += bytes;
            d->payload_len -= bytes;
            d->h.rows -= (uint32_t)cut;
            d->h.first_sample = t->next_first;
        } else if (t->have_next && first > t->next_first) {
            *gap = first - t->next_first;
            s->n_missed += *gap;
            d->h.flags |= SSMD_FLAG_DISCONTINUITY;
            fprintf(stderr, "ssm-sub: %s: samples %" PRIu64 "..%" PRIu64 " missed\n", t->topic, t->next_first,
                    first - 1);
        }
        t->next_first = d->h.first_sample + d->h.rows;
        t->have_next = 1;
    } else if (d->kind == SSMD_KIND_EVENT) {
        char ev[32];
        event_name(d, ev, sizeof ev);
        if (!strcmp(ev, "moved")) t->moved_epoch = d->h.epoch;
        if (!strcmp(ev, "end") && t->moved_epoch && t->moved_epoch == d->h.epoch) {
            s->not_end = 1;  /* the hand-over's end: the stream goes on elsewhere */
            t->moved_epoch = 0; /* once: a later end of that owner (the stream back there) is one */
        }
    } else if (d->kind != SSMD_KIND_META) {
        if (t->have_next && d->h.first_sample < t->next_first) {
            s->n_duplicates += d->h.rows;
            return 1;
        }
        t->next_first = d->h.first_sample + 1;
        t->have_next = 1;
    }
    d->h.seq = t->out_seq++;
    return 0;
}

/* --cluster: connects to the members etcd lists now; a member no longer
 * listed stays connected for SUB_CLUSTER_GONE_S more (a member that stops
 * cleanly leaves the list first, then publishes its hand-overs and its
 * other streams' last output), then is disconnected.  Returns the members
 * listed, or -1 when etcd did not answer (the connections stay). */
static int cluster_refresh(sub_state *s, void *sock, char *why, size_t cap)
{
    char *now[SUB_CLUSTER_MAX_MEMBERS];
    double t = cli_now_s();
    s->t_refresh = t;
    int n = push_cluster_member_pubs(s->etcd, now, SUB_CLUSTER_MAX_MEMBERS, why, cap);
    if (n < 0) return -1;
    for (size_t j = 0; j < s->n_eps; j++) { /* listed again, or gone since when */
        int listed = 0;
        for (int i = 0; i < n && !listed; i++) listed = !strcmp(s->eps[j], now[i]);
        if (listed) s->eps_gone[j] = 0;
        else if (s->eps_gone[j] == 0) s->eps_gone[j] = t;
    }
    for (size_t j = 0; j < s->n_eps;) { /* gone for longer than the grace */
        if (s->eps_gone[j] > 0 && t - s->eps_gone[j] >= SUB_CLUSTER_GONE_S) {
            zmq_disconnect(sock, s->eps[j]);
            free(s->eps[j]);
            s->n_eps--;
            s->eps[j] = s->eps[s->n_eps];
            s->eps_gone[j] = s->eps_gone[s->n_eps];
        } else {
            j++;
        }
    }
    for (int i = 0; i < n; i++) { /* new members */
        size_t j = 0;
        while (j < s->n_eps && strcmp(s->eps[j], now[i]) != 0) j++;
        if (j < s->n_eps) {
            free(now[i]);
        } else if (s->n_eps == SUB_CLUSTER_MAX_MEMBERS || zmq_connect(sock, now[i]) != 0) {
            fprintf(stderr, "ssm-sub: cannot connect to member endpoint %s: %s (tried again in a second)\n",
                    now[i], s->n_eps == SUB_CLUSTER_MAX_MEMBERS ? "too many members" : zmq_strerror(zmq_errno()));
            free(now[i]);
        } else {
            s->eps[s->n_eps] = now[i];
            s->eps_gone[s->n_eps++] = 0;
        }
    }
    return n;
}

/* Updates seq tracking; reports a gap.  Returns messages lost before this one. */
static uint64_t track_seq(sub_state *s, const cli_data *d)
{
    size_t tl = d->topic_len > MAX_TOPIC_BYTES ? MAX_TOPIC_BYTES : d->topic_len;
    topic_seq *t = NULL;
    for (size_t i = 0; i < s->n_topics; i++) {
        if (strlen(s->topics[i].topic) == tl && !memcmp(s->topics[i].topic, d->topic, tl)) {
            t = &s->topics[i];
            break;
        }
    }
    if (!t) {
        if (s->n_topics == MAX_TOPICS) return 0; /* stop tracking new topics, keep running */
        t = &s->topics[s->n_topics++];
        memcpy(t->topic, d->topic, tl);
        t->topic[tl] = '\0';
        t->next_seq = d->h.seq + 1;
        t->epoch = d->h.epoch;
        return 0;
    }
    uint64_t lost = 0;
    if (t->epoch != d->h.epoch) {
        fprintf(stderr, "ssm-sub: %s: the daemon restarted (new epoch 0x%016" PRIx64 ")\n",
                t->topic, d->h.epoch);
    } else if (d->h.seq > t->next_seq) {
        lost = d->h.seq - t->next_seq;
        fprintf(stderr, "ssm-sub: %s: %" PRIu64 " message%s dropped (seq %" PRIu64 "..%" PRIu64 ")\n",
                t->topic, lost, lost == 1 ? "" : "s", t->next_seq, d->h.seq - 1);
        s->n_dropped += lost;
    } else if (d->h.seq < t->next_seq) {
        fprintf(stderr, "ssm-sub: %s: seq went back from %" PRIu64 " to %" PRIu64
                " (stream restarted)\n", t->topic, t->next_seq - 1, d->h.seq);
    }
    t->next_seq = d->h.seq + 1;
    t->epoch = d->h.epoch;
    return lost;
}

static const char *dtype_name(uint16_t dt)
{
    switch (dt) {
    case SSMD_DTYPE_F32: return "f32";
    case SSMD_DTYPE_I16: return "i16";
    case SSMD_DTYPE_U8: return "u8";
    case SSMD_DTYPE_UTF8: return "utf8";
    default: return "?";
    }
}

/* Value i of a numeric payload as a double (payload may be unaligned). */
static double value_at(const cli_data *d, size_t i)
{
    switch (d->h.dtype) {
    case SSMD_DTYPE_F32: {
        float f;
        memcpy(&f, d->payload + 4 * i, 4);
        return f;
    }
    case SSMD_DTYPE_I16: return (int16_t)ssmd_get_u16(d->payload + 2 * i);
    default: return d->payload[i];
    }
}

static void print_text(sub_state *s, const cli_data *d)
{
    char flags[96];
    FILE *o = s->out;
    fprintf(o, "%.*s seq=%" PRIu64 " first_sample=%" PRIu64 " %ux%u %s rate=%u flags=%s",
            (int)d->topic_len, d->topic, d->h.seq, d->h.first_sample, d->h.rows, d->h.cols,
            dtype_name(d->h.dtype), d->h.sample_rate_hz, cli_flags_text(d->h.flags, flags, sizeof flags));
    if (d->h.dtype == SSMD_DTYPE_UTF8) {
        fputc(' ', o);
        for (size_t i = 0; i < d->payload_len; i++) { /* one line: control bytes escaped */
            unsigned char ch = d->payload[i];
            if (ch < 0x20) fprintf(o, "\\x%02x", ch);
            else fputc(ch, o);
        }
    } else if (d->kind == SSMD_KIND_AUDIO) {
        size_t n = (size_t)d->h.rows * d->h.cols;
        double acc = 0.0;
        for (size_t i = 0; i < n; i++) {
            double v = value_at(d, i);
            acc += v * v;
        }
        fprintf(o, " rms=%.4g", n ? sqrt(acc / (double)n) : 0.0);
    } else {
        size_t n = (size_t)d->h.rows * d->h.cols;
        for (size_t i = 0; i < n; i++) fprintf(o, " %.6g", value_at(d, i));
    }
    fputc('\n', o);
}

static void print_json(sub_state *s, const cli_data *d)
{
    char epoch[24];
    snprintf(epoch, sizeof epoch, "0x%016" PRIx64, d->h.epoch);
    json_t *j = json_object();
    json_object_set_new(j, "topic", json_stringn(d->topic, d->topic_len));
    json_object_set_new(j, "stream", json_string(d->stream));
    json_object_set_new(j, "kind", json_string(ssmd_kind_name(d->h.kind)));
    json_object_set_new(j, "dtype", json_string(dtype_name(d->h.dtype)));
    json_object_set_new(j, "flags", json_integer(d->h.flags));
    json_object_set_new(j, "sample_rate_hz", json_integer(d->h.sample_rate_hz));
    json_object_set_new(j, "rows", json_integer(d->h.rows));
    json_object_set_new(j, "cols", json_integer(d->h.cols));
    json_object_set_new(j, "hop_samples", json_integer(d->h.hop_samples));
    json_object_set_new(j, "seq", json_integer((json_int_t)d->h.seq));
    json_object_set_new(j, "first_sample", json_integer((json_int_t)d->h.first_sample));
    json_object_set_new(j, "capture_ns", json_integer((json_int_t)d->h.capture_ns));
    json_object_set_new(j, "epoch", json_string(epoch));
    if (d->h.dtype == SSMD_DTYPE_UTF8) {
        json_error_t jerr;
        json_t *p = json_loadb((const char *)d->payload, d->payload_len, JSON_DECODE_ANY, &jerr);
        if (p) json_object_set_new(j, "json", p);
        else json_object_set_new(j, "text", json_stringn((const char *)d->payload, d->payload_len));
    } else {
        size_t n = (size_t)d->h.rows * d->h.cols;
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            double v = value_at(d, i);
            /* JSON has no NaN/Inf: null stands for a non-finite value */
            json_array_append_new(a, isfinite(v) ? (d->h.dtype == SSMD_DTYPE_F32
                                                        ? json_real(v)
                                                        : json_integer((json_int_t)v))
                                                 : json_null());
        }
        json_object_set_new(j, "values", a);
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    if (text) fprintf(s->out, "%s\n", text);
    free(text);
    json_decref(j);
}

/* Opens the PortAudio output for the selected stream (rate, channels).
 * Returns 0, or -1 with a message on stderr. */
static int player_open(sub_state *s)
{
    PaError pe = Pa_Initialize();
    if (pe != paNoError) {
        fprintf(stderr, "ssm-sub: --play: cannot start PortAudio: %s\n", Pa_GetErrorText(pe));
        return -1;
    }
    s->pa_initialized = 1;
    PaDeviceIndex dev = Pa_GetDefaultOutputDevice();
    if (s->play_device) {
        uint64_t idx;
        int n = Pa_GetDeviceCount();
        dev = paNoDevice;
        if (cli_parse_u64(s->play_device, 0, (uint64_t)(n > 0 ? n - 1 : 0), &idx) == 0 && n > 0) {
            dev = (PaDeviceIndex)idx;
        } else {
            for (int i = 0; i < n && dev == paNoDevice; i++) {
                const PaDeviceInfo *di = Pa_GetDeviceInfo(i);
                if (di && di->maxOutputChannels > 0 && strstr(di->name, s->play_device)) dev = i;
            }
        }
    }
    const PaDeviceInfo *di = dev == paNoDevice ? NULL : Pa_GetDeviceInfo(dev);
    if (!di || di->maxOutputChannels < 1) {
        fprintf(stderr, "ssm-sub: --play: no output device %s%s%s\n",
                s->play_device ? "matches '" : "(no default)", s->play_device ? s->play_device : "",
                s->play_device ? "'" : "");
        return -1;
    }
    PaStreamParameters out;
    memset(&out, 0, sizeof out);
    out.device = dev;
    out.channelCount = (int)s->sel_cols;
    out.sampleFormat = paFloat32;
    out.suggestedLatency = di->defaultHighOutputLatency;
    pe = Pa_OpenStream(&s->player, NULL, &out, (double)s->sel_rate, paFramesPerBufferUnspecified,
                       paNoFlag, NULL, NULL);
    if (pe == paNoError) pe = Pa_StartStream(s->player);
    if (pe != paNoError) {
        fprintf(stderr, "ssm-sub: --play: cannot play %u Hz x %u on '%s': %s\n", s->sel_rate,
                s->sel_cols, di->name, Pa_GetErrorText(pe));
        return -1;
    }
    fprintf(stderr, "ssm-sub: playing %s (%u Hz, %u channel%s) on '%s'\n", s->sel_stream,
            s->sel_rate, s->sel_cols, s->sel_cols == 1 ? "" : "s", di->name);
    return 0;
}

/* Lets the queued audio play out and releases PortAudio. */
static void player_close(sub_state *s, int drain)
{
    if (s->player) {
        if (drain) Pa_StopStream(s->player);
        else Pa_AbortStream(s->player);
        Pa_CloseStream(s->player);
        s->player = NULL;
    }
    if (s->pa_initialized) Pa_Terminate();
    s->pa_initialized = 0;
}

/* Sends frames of the selected stream to the file and/or the player. */
static int sink_audio(sub_state *s, const float *buf, size_t n_frames, int to_player)
{
    dsp_error err;
    if (s->writer && dsp_audio_writer_write(s->writer, buf, n_frames, &err) != DSP_OK) {
        fprintf(stderr, "ssm-sub: %s\n", err.msg);
        return -1;
    }
    if (to_player && s->player) {
        PaError pe = Pa_WriteStream(s->player, buf, (unsigned long)n_frames);
        if (pe == paOutputUnderflowed) s->play_underflows++;
        else if (pe != paNoError) {
            fprintf(stderr, "ssm-sub: --play: %s\n", Pa_GetErrorText(pe));
            return -1;
        }
    }
    return 0;
}

/* Writes/plays the audio of the selected stream (--stream, or the first
 * seen).  Returns 0, or -1 on an output error. */
static int handle_audio(sub_state *s, const cli_data *d, uint64_t lost)
{
    dsp_error err;
    if (!s->sel_stream[0]) {
        if (s->out_stream && strcmp(s->out_stream, d->stream) != 0) return 0;
        if (d->h.cols == 0 || d->h.sample_rate_hz == 0) return 0;
        if (d->h.cols > SUB_MAX_CHANNELS) {
            fprintf(stderr, "ssm-sub: %s has %u channels, more than this client writes\n",
                    d->stream, d->h.cols);
            return -1;
        }
        snprintf(s->sel_stream, sizeof s->sel_stream, "%s", d->stream);
        s->sel_rate = d->h.sample_rate_hz;
        s->sel_cols = d->h.cols;
        s->sel_next_first = d->h.first_sample;
        if (s->out_path) {
            if (cli_writer_open(&s->writer, s->out_path, s->out_format, (int)s->sel_rate, (int)s->sel_cols,
                                0, &err) != DSP_OK) {
                fprintf(stderr, "ssm-sub: %s\n", err.msg);
                return -1;
            }
            if (strcmp(s->out_path, "-") != 0)
                fprintf(stderr, "ssm-sub: writing %s (%u Hz, %u channel%s) to %s\n", s->sel_stream,
                        s->sel_rate, s->sel_cols, s->sel_cols == 1 ? "" : "s", s->out_path);
        }
        if (s->play && player_open(s) != 0) return -1;
    } else if (strcmp(s->sel_stream, d->stream) != 0) {
        return 0;
    }
    if (d->h.sample_rate_hz != s->sel_rate || d->h.cols != s->sel_cols) {
        fprintf(stderr, "ssm-sub: %s changed from %u Hz x %u to %u Hz x %u; stopping\n",
                d->stream, s->sel_rate, s->sel_cols, d->h.sample_rate_hz, d->h.cols);
        return -1;
    }
    float buf[4096];
    size_t per = sizeof buf / sizeof buf[0] / s->sel_cols;
    if (lost && s->writer && d->h.first_sample > s->sel_next_first) {
        /* keep the file's timeline: the dropped messages covered these samples
         * (the player just goes on) */
        uint64_t fill = d->h.first_sample - s->sel_next_first;
        if (fill > (uint64_t)MAX_FILL_S * s->sel_rate) fill = (uint64_t)MAX_FILL_S * s->sel_rate;
        memset(buf, 0, sizeof buf);
        for (uint64_t done = 0; done < fill;) {
            size_t n = fill - done < per ? (size_t)(fill - done) : per;
            if (sink_audio(s, buf, n, 0) != 0) return -1;
            done += n;
        }
        fprintf(stderr, "ssm-sub: %" PRIu64 " samples of silence written for the dropped audio\n",
                fill);
    }
    for (size_t r = 0; r < d->h.rows; r += per) {
        size_t nr = d->h.rows - r < per ? d->h.rows - r : per;
        for (size_t i = 0; i < nr * s->sel_cols; i++) {
            double v = value_at(d, r * s->sel_cols + i);
            buf[i] = (float)(d->h.dtype == SSMD_DTYPE_I16 ? v / 32768.0 : v);
        }
        if (sink_audio(s, buf, nr, 1) != 0) return -1;
    }
    s->sel_frames += d->h.rows;
    s->sel_next_first = d->h.first_sample + d->h.rows;
    if (d->h.flags & SSMD_FLAG_END_OF_STREAM) s->done = 1;
    return 0;
}

/* Does a subscription prefix cover the topic "<stream>/event/"? */
static int events_subscribed(const sub_state *s, const char *stream)
{
    char t[SSMD_STREAM_NAME_MAX + 16];
    snprintf(t, sizeof t, "%s/event/", stream);
    if (s->n_prefixes == 0) return 1;
    for (int i = 0; i < s->n_prefixes; i++)
        if (!strncmp(t, s->prefixes[i], strlen(s->prefixes[i]))) return 1;
    return 0;
}

/* Does the end of `stream` stop --until-end?  With --output or --play only
 * the end of the stream written or played does (--stream, or the first one
 * whose audio arrived): the streams of one stereo file (NAME.0, NAME.1) end
 * at nearly the same time, and the other one's end could come before the
 * last audio of ours, leaving the file short. */
static int end_stops(const sub_state *s, const char *stream)
{
    if (!s->out_path && !s->play) return 1;
    const char *ours = s->sel_stream[0] ? s->sel_stream : s->out_stream;
    return !ours || !strcmp(ours, stream);
}

static int is_end_event(const cli_data *d)
{
    char ev[32];
    event_name(d, ev, sizeof ev);
    return !strcmp(ev, "end");
}

static int run(sub_state *s)
{
    int rc = CLI_EXIT_FAIL;
    char why[256];
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (cli_socket_limits(sock, SSMD_CLIENT_MAX_FRAME_BYTES, s->rcvbuf_bytes, s->rcvhwm, why,
                          sizeof why) != 0) {
        fprintf(stderr, "ssm-sub: %s\n", why);
        goto out;
    }
    if (s->n_prefixes == 0) zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    for (int i = 0; i < s->n_prefixes; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, s->prefixes[i], strlen(s->prefixes[i]));
    double t0 = cli_now_s();
    if (s->cluster) {
        if (!(s->etcd = ssmd_etcd_create(s->cluster, 1000, why, sizeof why))) {
            fprintf(stderr, "ssm-sub: --cluster: %s\n", why);
            goto out;
        }
        int n;
        while ((n = cluster_refresh(s, sock, why, sizeof why)) <= 0) {
            if (cli_now_s() - t0 > s->timeout_s) {
                fprintf(stderr, "ssm-sub: --cluster %s: %s\n", s->cluster,
                        n < 0 ? why : "no member listed (is any ssmd running with --cluster?)");
                goto out;
            }
            struct timespec ts = { 0, 200000000 };
            nanosleep(&ts, NULL);
        }
        fprintf(stderr, "ssm-sub: following the streams of %d member%s of %s\n", n, n == 1 ? "" : "s", s->cluster);
    } else if (cli_connect(ctx, sock, s->endpoint, s->endpoint_env, s->timeout_s, why, sizeof why) != 0) {
        fprintf(stderr, "ssm-sub: %s\n", why);
        goto out;
    }
    while (!s->done && !(s->max_count && s->n_msgs >= s->max_count)) {
        double left = -1.0;
        if (s->seconds > 0) {
            left = s->seconds - (cli_now_s() - t0);
            if (left <= 0) break;
        }
        if (s->cluster) { /* members that join or leave: re-read every second */
            double wait = s->t_refresh + SUB_CLUSTER_REFRESH_S - cli_now_s();
            if (wait <= 0) {
                if (cluster_refresh(s, sock, why, sizeof why) < 0)
                    fprintf(stderr, "ssm-sub: --cluster: %s (keeping the connections)\n", why);
                wait = SUB_CLUSTER_REFRESH_S;
            }
            if (left < 0 || wait < left) left = wait;
        }
        cli_msg m;
        int got = cli_msg_recv(sock, &m, left);
        if (got == 0 && s->cluster && !(s->seconds > 0 && cli_now_s() - t0 >= s->seconds)) continue;
        if (got == 0) break;
        if (got < 0) {
            if (cli_stop_requested) break; /* Ctrl-C: finish the output file cleanly */
            fprintf(stderr, "ssm-sub: receive: %s\n", zmq_strerror(zmq_errno()));
            goto out;
        }
        cli_data d;
        if (cli_data_decode(&m, 0, &d, why, sizeof why) != SSMD_PROTO_OK) {
            fprintf(stderr, "ssm-sub: skipping a malformed message: %s\n", why);
            s->n_malformed++;
            cli_msg_close(&m);
            continue;
        }
        uint64_t lost;
        if (s->cluster) {
            uint64_t gap;
            if (cluster_follow(s, &d, &gap)) {
                cli_msg_close(&m);
                continue;
            }
            lost = gap > 0;
        } else {
            lost = track_seq(s, &d);
        }
        s->n_msgs++;
        if (!s->quiet) {
            if (s->json) print_json(s, &d);
            else print_text(s, &d);
            fflush(s->out);
            if (ferror(s->out)) { /* e.g. `ssm-sub | head`: stop quietly */
                cli_msg_close(&m);
                rc = CLI_EXIT_OK;
                goto out;
            }
        }
        if ((s->out_path || s->play) && d.kind == SSMD_KIND_AUDIO && handle_audio(s, &d, lost) != 0) {
            cli_msg_close(&m);
            goto out;
        }
        if (s->until_end && end_stops(s, d.stream)) {
            if (is_end_event(&d) && !s->not_end) s->done = 1;
            if ((d.h.flags & SSMD_FLAG_END_OF_STREAM) && !events_subscribed(s, d.stream)) s->done = 1;
        }
        cli_msg_close(&m);
    }
    if (s->writer) {
        dsp_error err;
        dsp_audio_writer *w = s->writer;
        s->writer = NULL;
        if (dsp_audio_writer_close(w, &err) != DSP_OK) {
            fprintf(stderr, "ssm-sub: %s\n", err.msg);
            goto out;
        }
    } else if (s->out_path) {
        fprintf(stderr, "ssm-sub: no audio received; %s not written\n", s->out_path);
    }
    player_close(s, 1);
    if (s->n_dropped)
        fprintf(stderr, "ssm-sub: %" PRIu64 " message%s dropped in total\n", s->n_dropped,
                s->n_dropped == 1 ? "" : "s");
    if (s->cluster)
        fprintf(stderr, "ssm-sub: --cluster: %" PRIu64 " owner change%s, %" PRIu64 " samples published again "
                "dropped, %" PRIu64 " samples missed\n", s->n_switches, s->n_switches == 1 ? "" : "s",
                s->n_duplicates, s->n_missed);
    rc = CLI_EXIT_OK;
out:
    if (s->writer) dsp_audio_writer_abort(s->writer);
    s->writer = NULL;
    player_close(s, 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    for (size_t j = 0; j < s->n_eps; j++) free(s->eps[j]);
    s->n_eps = 0;
    ssmd_etcd_destroy(s->etcd);
    s->etcd = NULL;
    return rc;
}

int main(int argc, char **argv)
{
    sub_state s;
    memset(&s, 0, sizeof s);
    s.endpoint = cli_endpoint_default(CLI_ENV_PUB, DEFAULT_ENDPOINT);
    s.endpoint_env = cli_endpoint_env(CLI_ENV_PUB); /* named in endpoint errors */
    s.timeout_s = 5.0;
    s.rcvbuf_bytes = CLI_SUB_RCVBUF_BYTES;
    s.rcvhwm = CLI_SUB_RCVHWM;
    s.out = stdout;
    enum { OPT_STREAM = 256, OPT_UNTIL_END, OPT_PLAY, OPT_DEVICE, OPT_RCVBUF, OPT_RCVHWM, OPT_OUTPUT_FORMAT,
           OPT_CLUSTER };
    int endpoint_given = 0;
    s.out_format = SSMD_OUTPUT_FORMAT_DEFAULT;
    static const struct option opts[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "cluster", required_argument, NULL, OPT_CLUSTER },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "output", required_argument, NULL, 'o' },
        { "output-format", required_argument, NULL, OPT_OUTPUT_FORMAT },
        { "stream", required_argument, NULL, OPT_STREAM },
        { "count", required_argument, NULL, 'n' },
        { "seconds", required_argument, NULL, 's' },
        { "until-end", no_argument, NULL, OPT_UNTIL_END },
        { "play", no_argument, NULL, OPT_PLAY },
        { "device", required_argument, NULL, OPT_DEVICE },
        { "timeout", required_argument, NULL, 't' },
        { "rcvbuf", required_argument, NULL, OPT_RCVBUF },
        { "rcvhwm", required_argument, NULL, OPT_RCVHWM },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int c, format_given = 0;
    while ((c = getopt_long(argc, argv, ":e:jqo:n:s:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e': s.endpoint = optarg; s.endpoint_env = NULL; endpoint_given = 1; break;
        case OPT_CLUSTER: s.cluster = optarg; break;
        case 'j': s.json = 1; break;
        case 'q': s.quiet = 1; break;
        case 'o': s.out_path = optarg; break;
        case OPT_OUTPUT_FORMAT:
            if (cli_output_format_arg("ssm-sub", optarg, &s.out_format) != 0) return CLI_EXIT_USAGE;
            format_given = 1;
            break;
        case OPT_STREAM: s.out_stream = optarg; break;
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &s.max_count) != 0)
                return usage_error("--count: '%s' is not a count >= 1", optarg);
            break;
        case 's':
            if (cli_parse_seconds(optarg, &s.seconds) != 0)
                return usage_error("--seconds: '%s' is not a number of seconds > 0", optarg);
            break;
        case OPT_UNTIL_END: s.until_end = 1; break;
        case OPT_PLAY: s.play = 1; break;
        case OPT_DEVICE: s.play_device = optarg; break;
        case 't':
            if (cli_parse_seconds(optarg, &s.timeout_s) != 0)
                return usage_error("--timeout: '%s' is not a number of seconds > 0", optarg);
            break;
        case OPT_RCVBUF:
        case OPT_RCVHWM: {
            uint64_t v;
            if (cli_parse_u64(optarg, 0, 1u << 30, &v) != 0)
                return usage_error(c == OPT_RCVBUF ? "--rcvbuf: '%s' is not a byte count in 0..1073741824"
                                                   : "--rcvhwm: '%s' is not a message count in 0..1073741824",
                                   optarg);
            if (c == OPT_RCVBUF) s.rcvbuf_bytes = (int)v;
            else s.rcvhwm = (int)v;
            break;
        }
        case 'h': fputs(usage_text, stdout); return CLI_EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (s.cluster) {
        char why[256];
        if (endpoint_given) return usage_error("%s", "--cluster and --endpoint exclude each other");
        if (ssmd_etcd_url_check(s.cluster, why, sizeof why) != 0) return usage_error("--cluster: %s", why);
        if (ssmd_etcd_global_init() != 0) {
            fprintf(stderr, "ssm-sub: cannot initialise libcurl\n");
            return CLI_EXIT_FAIL;
        }
    }
    if (s.out_stream && !s.out_path && !s.play)
        return usage_error("%s", "--stream needs --output or --play");
    if (s.play_device && !s.play) return usage_error("%s", "--device needs --play");
    if (s.out_stream && !ssmd_stream_name_valid(s.out_stream, strlen(s.out_stream)))
        return usage_error("--stream: '%s' is not a valid stream name", s.out_stream);
    if (s.out_path && !strcmp(s.out_path, "-")) s.out = stderr;
    if (s.out_path && !strcmp(s.out_path, "-") && !s.json) s.quiet = 1;
    s.prefixes = argv + optind;
    s.n_prefixes = argc - optind;
    for (int i = 0; i < s.n_prefixes; i++)
        if (strlen(s.prefixes[i]) > MAX_TOPIC_BYTES)
            return usage_error("topic prefix '%.40s...' is too long", s.prefixes[i]);
    if (s.out_path && dsp_audio_container_from_path(s.out_path) == DSP_AUDIO_CONTAINER_AUTO)
        return usage_error("--output: cannot tell the audio format of '%s' from its extension "
                           "(.wav .flac .au .ogg .opus .mp3 .aiff .w64 .rf64 .raw)", s.out_path);
    if (cli_output_format_check("ssm-sub", format_given, s.out_format, s.out_path) != 0) return CLI_EXIT_USAGE;
    s.topics = calloc(MAX_TOPICS, sizeof *s.topics);
    if (!s.topics) {
        fprintf(stderr, "ssm-sub: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    cli_signals_install();
    int rc = run(&s);
    free(s.topics);
    return rc;
}
