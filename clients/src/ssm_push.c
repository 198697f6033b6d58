/* SPDX-License-Identifier: MIT */
/* ssm-push: sends an audio file to ssmd as named streams and optionally
 * writes the processed audio that comes back (docs/protocol.md, "Ingest").
 * As the daemon's own file job: each channel of a multi-channel file is its
 * own stream, NAME.0, NAME.1, ..., each with its own model state, and the
 * results are written back as the output's channels (--channels mono: one
 * stream NAME, the mean of the channels).
 *
 * One DEALER socket carries both directions.  The loop polls it for input
 * (results, error replies) and output (the next chunk) together: results are
 * drained while the upload is still running, so neither side's queue fills
 * up, and --realtime only changes when the next chunk is due.  The file is
 * read one chunk ahead so that the last chunk carries the end-of-stream flag
 * (an empty file sends a single rows = 0 end-of-stream message per stream).
 * Each chunk goes out stream after stream; the results of the streams arrive
 * interleaved in time, so each stream's wait in a small queue until every
 * stream has the next frames, which are then written interleaved. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client.h"
#include "push_cluster.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5561"
#define DEFAULT_CHUNK 1024u
/* the most streams one push opens (--channels auto on a file with more
 * channels than this is refused; the daemon's max_streams may be lower, it
 * then refuses the stream beyond with TOO_MANY_STREAMS) */
#define PUSH_MAX_STREAMS 64

static const char *const usage_text =
    "Usage: ssm-push [OPTIONS] --stream NAME FILE\n"
    "Push an audio file to ssmd for processing and write back the processed audio.\n"
    "It is pushed as stream NAME; ssm-push waits until all of it is processed.\n"
    "FILE is any format libsndfile reads (\"-\" reads standard input); the file's own\n"
    "sample rate is kept.  As ssmd's file job, each channel of a multi-channel FILE is\n"
    "its own stream, NAME.0, NAME.1, ... (at most 64), and OUT has FILE's channels.\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP   ingest socket (default: $" CLI_ENV_INGEST " when set, else\n"
    "                      " DEFAULT_ENDPOINT ")\n"
    "  -s, --stream NAME   stream name: 1-64 of [A-Za-z0-9_.-], not starting with '.'\n"
    "      --channels M    auto (default): one stream per channel of FILE (mono: NAME);\n"
    "                      mono: one stream NAME, the mean of the channels (as ssmd's)\n"
    "  -o, --output OUT    write the processed audio that comes back to OUT (format from\n"
    "                      the extension; \"-\": AU on stdout)\n"
    "      --output-format F  sample format of OUT: " SSMD_OUTPUT_FORMAT_CHOICES " (default\n"
    "                      " SSMD_OUTPUT_FORMAT_DEFAULT_NAME ", as ssmd's; .ogg/.opus/.mp3: their codec)\n"
    "  -r, --realtime      send at the file's sample rate instead of as fast as possible\n"
    "  -c, --chunk N       sample frames read at a time, sent as one message (default 1024)\n"
    "                      or as several within the daemon's advertised cap\n"
    "                      (ingest_max_payload_bytes in its first reply; 64 KiB until then)\n"
    "  -t, --timeout S     give up when the daemon is silent for S seconds (default 10;\n"
    "                      with --cluster: the owner counts as lost)\n"
    "      --cluster URL   push to the stream's owner in the cluster of ssmd daemons whose\n"
    "                      etcd is URL, etcd://HOST:PORT[,HOST:PORT...] (the owner key, else\n"
    "                      the placement), follow NOT_OWNER, and when the owner is lost push\n"
    "                      to the next one, replaying the input since its last acknowledged\n"
    "                      checkpoint (docs/cluster.md); not with -e\n"
    "      --failover-timeout S  with --cluster: give up when no new owner takes the\n"
    "                      stream within S seconds of losing one (default 60)\n"
    "  -v, --verbose       print a summary on stderr\n"
    "  -h, --help          this text\n"
    "\n"
    "OUT is checked (format, channels, sample format, a writable place) before anything\n"
    "is pushed.  SIGINT/SIGTERM, and an error reply of the daemon, end the pushed\n"
    "streams on the daemon (end-of-stream) and exit 1 without OUT.\n"
    "\n"
    "Environment:\n"
    "  " CLI_ENV_INGEST "         the ingest endpoint when -e is not given\n"
    "\n"
    "Exit status:\n"
    "  0                   every pushed sample came back\n"
    "  1                   error: file, daemon error reply, timeout, wrong length, interrupted,\n"
    "                      no new owner in time (--cluster)\n"
    "  2                   bad options\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ssm-push: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ssm-push --help)\n");
    return CLI_EXIT_USAGE;
}

/* One pushed stream: a channel of the file, or its downmix. */
typedef struct push_stream {
    char name[SSMD_STREAM_NAME_MAX + 1];
    char topic[SSMD_STREAM_NAME_MAX + 16];
    uint64_t seq_out, pushed;
    uint64_t seq_in, received;
    int got_eos;
    int sent_eos;        /* its end-of-stream went out */
    int meta_seen;       /* its meta (the daemon's first reply) came back */
    float *pend;         /* results not yet written (all streams must have a frame first) */
    size_t pend_n, pend_cap;
    /* --cluster: the input since the last acknowledged checkpoint (pushed is then the next
     * sample to send to the current owner, received the output collected, both absolute) */
    push_kept kept;
    uint64_t ack_in, ack_out; /* the newest checkpoint acknowledged, not applied yet (ack_in 0: none) */
} push_stream;

typedef struct push_state {
    const char *endpoint, *stream, *in_path, *out_path;
    const char *endpoint_env; /* the variable the endpoint came from, NULL for -e or the default */
    ssmd_output_format out_format;
    int realtime, verbose, downmix;
    size_t chunk;
    double timeout_s;

    dsp_audio_reader *reader;
    int channels, rate_hz, out_rate_hz;
    int n_streams;       /* channels, or 1 with --channels mono */
    push_stream *streams;
    float *inter;        /* chunk * channels, interleaved read buffer */
    float *plane[2];     /* two chunk buffers, current and read-ahead: n_streams planes of chunk */
    size_t plane_n[2];   /* frames in each */
    int cur;             /* index of the chunk to send next */
    int cur_stream;      /* the stream whose part of the current chunk goes next */
    size_t off;          /* frames of that part already sent */
    uint64_t cap_bytes;  /* the daemon's advertised ingest cap (its meta reply), 0 until seen */
    uint64_t window;     /* the daemon's advertised ingest_window_samples (its meta reply): frames
                            a stream keeps pushed ahead of its results, at most; 0 until seen */
    int sent_eos;        /* every stream's end-of-stream was sent */
    uint64_t seq_out, pushed; /* messages and frames (per stream) sent */

    dsp_audio_writer *writer;
    int n_eos;           /* streams whose last result came back */
    uint64_t written;    /* frames written to the output */

    char error_line[1400];  /* a daemon's error reply, printed once the other streams are ended */
    char error_stream[SSMD_STREAM_NAME_MAX + 1]; /* the stream it names ("" when none) */

    /* --cluster (push_cluster.h) */
    const char *cluster;    /* etcd URL, NULL: a plain push to endpoint */
    double failover_timeout_s;
    ssmd_etcd *etcd;
    push_target owner;      /* the member pushed to now */
    push_target dead;       /* the owner lost last (not tried again while etcd lists it) */
    int have_dead;
    push_target redirect;   /* a NOT_OWNER reply's member, tried next */
    int have_redirect, redirects;
    int retry;              /* an answer that asks to try again (CLUSTER_UNAVAILABLE): wait first */
    int eof;                /* the input is read to its end */
    void *mon;              /* the owner connection's monitor (disconnected) */
    int failovers;
    uint64_t resumed_max;   /* the largest input sample a new owner resumed a stream from */
} push_state;

/* Reads the next chunk into plane[slot]: one plane per channel, or the mean
 * of the channels with --channels mono.  Returns 0 or -1. */
static int push_read_chunk(push_state *s, int slot)
{
    size_t n = 0;
    dsp_error err;
    if (dsp_audio_reader_read(s->reader, s->inter, s->chunk, &n, &err) != DSP_OK) {
        fprintf(stderr, "ssm-push: %s\n", err.msg);
        return -1;
    }
    float *p = s->plane[slot];
    const size_t nc = (size_t)s->channels;
    if (s->channels == 1) {
        memcpy(p, s->inter, n * sizeof *p);
    } else if (s->n_streams == 1) {
        const float scale = 1.0f / (float)s->channels;
        for (size_t i = 0; i < n; i++) {
            float acc = 0.0f;
            for (size_t c = 0; c < nc; c++) acc += s->inter[i * nc + c];
            p[i] = acc * scale;
        }
    } else {
        for (size_t c = 0; c < nc; c++)
            for (size_t i = 0; i < n; i++) p[c * s->chunk + i] = s->inter[i * nc + c];
    }
    s->plane_n[slot] = n;
    return 0;
}

/* Sends the next part of the current chunk of the current stream: at most
 * the daemon's advertised cap (SSMD_INGEST_MIN_PAYLOAD_BYTES until its meta
 * reply said it), the last part of the last chunk flagged end-of-stream;
 * after the last part of a chunk, moves on to the next stream, and after the
 * last stream reads the next read-ahead.  Returns 1 sent, 0 would block, -1
 * error. */
/* Frames of the next part: the rest of the current stream's chunk, at most
 * the cap and the window. */
static size_t push_next_part(const push_state *s)
{
    size_t cap_frames = (size_t)((s->cap_bytes ? s->cap_bytes : SSMD_INGEST_MIN_PAYLOAD_BYTES) / sizeof(float));
    size_t n = s->plane_n[s->cur] - s->off;
    if (n > cap_frames) n = cap_frames;
    /* at most half the window: the daemon holds back its pipeline's delay (resamplers,
     * framer) until more input comes, so a part of the whole window would wait for results
     * that never come */
    if (s->window && n > s->window / 2) n = (size_t)(s->window / 2 ? s->window / 2 : 1);
    return n;
}

/* True when the next part keeps its stream within the daemon's window of
 * the results received: within it a message always fits the stream's
 * pending input at the daemon, so this push never stops the daemon from
 * reading the other clients' messages (docs/protocol.md, "Ingest"). */
static int push_within_window(const push_state *s)
{
    const push_stream *st = &s->streams[s->cur_stream];
    size_t n = push_next_part(s);
    /* before the stream's meta (the daemon's first reply) has said the window: two messages
     * of the smallest cap any daemon has (32 768 frames, within every daemon's 4 s of pending
     * input from 8 192 Hz up), at least the first */
    uint64_t window = st->meta_seen ? s->window : 2 * SSMD_INGEST_MIN_PAYLOAD_BYTES / sizeof(float);
    return !window || st->pushed == 0 || st->pushed - st->received + n <= window;
}

static int push_send_chunk(push_state *s, void *sock)
{
    int next = 1 - s->cur;
    push_stream *st = &s->streams[s->cur_stream];
    size_t n = push_next_part(s);
    int chunk_done = s->off + n == s->plane_n[s->cur];
    int last = chunk_done && s->plane_n[next] == 0;
    ssmd_header h;
    memset(&h, 0, sizeof h);
    h.kind = SSMD_KIND_AUDIO;
    h.dtype = SSMD_DTYPE_F32;
    h.flags = last ? SSMD_FLAG_END_OF_STREAM : 0;
    h.sample_rate_hz = (uint32_t)s->rate_hz;
    h.rows = (uint32_t)n;
    h.cols = 1;
    h.seq = st->seq_out;
    h.first_sample = st->pushed;
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, &h);
    /* ZeroMQ accepts the rest of a multipart message once its first frame went in */
    if (zmq_send(sock, st->topic, strlen(st->topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() == EAGAIN) return 0;
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, s->plane[s->cur] + (size_t)s->cur_stream * s->chunk + s->off, n * sizeof(float), 0) < 0) {
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    st->seq_out++;
    st->pushed += n;
    if (last) st->sent_eos = 1;
    s->seq_out++;
    s->off += n;
    if (!chunk_done) return 1;
    s->off = 0;
    if (++s->cur_stream < s->n_streams) return 1;
    s->pushed = st->pushed;
    if (last) {
        s->sent_eos = 1;
        return 1;
    }
    s->cur_stream = 0;
    s->cur = next;
    return push_read_chunk(s, 1 - next) == 0 ? 1 : -1;
}

/* The stream named name, or NULL when it is none of ours. */
static push_stream *push_stream_find(push_state *s, const char *name)
{
    for (int k = 0; k < s->n_streams; k++)
        if (strcmp(s->streams[k].name, name) == 0) return &s->streams[k];
    return NULL;
}

/* Writes the frames every stream has a result for, interleaved (stream k =
 * channel k of the output), and drops them from the queues.  Returns 0 or -1. */
static int push_write_ready(push_state *s)
{
    size_t ready = SIZE_MAX;
    for (int k = 0; k < s->n_streams; k++)
        if (s->streams[k].pend_n < ready) ready = s->streams[k].pend_n;
    if (ready == 0 || ready == SIZE_MAX) return 0;
    const size_t nc = (size_t)s->n_streams;
    float buf[1024];
    size_t per = sizeof buf / sizeof buf[0] / nc;
    dsp_error err;
    for (size_t r = 0; r < ready; r += per) {
        size_t nr = ready - r < per ? ready - r : per;
        for (size_t i = 0; i < nr; i++)
            for (size_t c = 0; c < nc; c++) buf[i * nc + c] = s->streams[c].pend[r + i];
        if (dsp_audio_writer_write(s->writer, buf, nr, &err) != DSP_OK) {
            fprintf(stderr, "ssm-push: %s\n", err.msg);
            return -1;
        }
    }
    for (int k = 0; k < s->n_streams; k++) {
        push_stream *st = &s->streams[k];
        memmove(st->pend, st->pend + ready, (st->pend_n - ready) * sizeof *st->pend);
        st->pend_n -= ready;
    }
    s->written += ready;
    return 0;
}

/* Appends n result frames (unaligned f32 bytes) to st's queue.  Returns 0 or -1. */
static int push_queue_result(push_stream *st, const uint8_t *payload, size_t n)
{
    if (st->pend_n + n > st->pend_cap) {
        size_t cap = st->pend_cap ? st->pend_cap : 4096;
        while (cap < st->pend_n + n) cap *= 2;
        float *p = realloc(st->pend, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "ssm-push: out of memory for %zu result frames of %s\n", cap, st->name);
            return -1;
        }
        st->pend = p;
        st->pend_cap = cap;
    }
    /* payload alignment from ZeroMQ is not guaranteed: memcpy */
    memcpy(st->pend + st->pend_n, payload, n * sizeof(float));
    st->pend_n += n;
    return 0;
}

/* --cluster: applies the newest acknowledged checkpoint once the output
 * before its output_sample has come back (a new owner resumes from it, or
 * from a later one, and sends the output from its output_sample on): the
 * input before its input_sample is dropped. */
static void push_apply_ack(push_stream *st)
{
    if (st->ack_in == 0 || st->ack_out > st->received) return;
    push_kept_trim(&st->kept, st->ack_in);
    st->ack_in = 0;
}

/* Handles one received message.  Returns 0 to go on, -1 on a fatal error
 * (printed), -2 on an error reply of the daemon (in s->error_line, printed by
 * the caller after it ended the other streams), -3 (--cluster) on a refusal
 * that another member (s->redirect) or a later try may accept. */
static int handle_reply(push_state *s, const cli_msg *m)
{
    char why[256];
    cli_data d;
    int rc = cli_data_decode(m, 0, &d, why, sizeof why);
    /* an error reply is reported even when its header is damaged */
    int is_error = d.topic_len == 12 && !memcmp(d.topic, "_ssmd/event/", 12);
    if (rc != SSMD_PROTO_OK && !is_error) {
        fprintf(stderr, "ssm-push: ignoring a malformed message from the daemon: %s\n", why);
        return 0;
    }
    if (is_error) {
        size_t l = 0;
        const char *text = (const char *)cli_msg_frame(m, 2, &l);
        json_error_t jerr;
        json_t *j = text ? json_loadb(text, l, 0, &jerr) : NULL;
        const char *code = json_string_value(json_object_get(j, "error"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        const char *ev = json_string_value(json_object_get(j, "event"));
        if (ev && strcmp(ev, "error") != 0) { /* another daemon event: not for us to act on */
            json_decref(j);
            return 0;
        }
        const char *named = json_string_value(json_object_get(j, "stream"));
        push_stream *nst = named ? push_stream_find(s, named) : NULL;
        if (s->cluster && code && nst && nst->meta_seen && strcmp(code, "NOT_OWNER") == 0) {
            /* the stream is no longer that member's (handed over, its "moved" event missed) */
            s->dead = s->owner;
            s->have_dead = 1;
            s->failovers++;
            s->retry = 0;
            json_decref(j);
            return -3;
        }
        if (s->cluster && code && nst && !nst->meta_seen && (strcmp(code, "NOT_OWNER") == 0 ||
            strcmp(code, "CLUSTER_UNAVAILABLE") == 0 || strcmp(code, "TOO_MANY_STREAMS") == 0)) {
            /* nothing was opened: push to the member it names, or ask etcd again shortly */
            json_t *o = json_object_get(j, "owner");
            const char *node = json_string_value(json_object_get(o, "node"));
            const char *ingest = json_string_value(json_object_get(o, "ingest"));
            s->retry = 1;
            if (strcmp(code, "NOT_OWNER") == 0 && node && ingest && strlen(node) < sizeof s->redirect.node &&
                strlen(ingest) < sizeof s->redirect.ingest && s->redirects < 4) {
                memset(&s->redirect, 0, sizeof s->redirect);
                snprintf(s->redirect.node, sizeof s->redirect.node, "%s", node);
                snprintf(s->redirect.ingest, sizeof s->redirect.ingest, "%s", ingest);
                push_cluster_member_epoch(s->etcd, node, s->redirect.epoch, sizeof s->redirect.epoch,
                                          &s->redirect.lease);
                if (!s->have_dead || !push_cluster_same(&s->redirect, &s->dead)) {
                    s->have_redirect = 1;
                    s->redirects++;
                    s->retry = 0;
                }
            }
            if (s->verbose)
                fprintf(stderr, "ssm-push: %s on %s: %s: %s\n", named, s->owner.node, code, msg ? msg : "");
            json_decref(j);
            return -3;
        }
        char hint[256] = "";
        if (code && strcmp(code, "TOO_MANY_STREAMS") == 0 && s->n_streams > 1)
            snprintf(hint, sizeof hint, " (%s has %d channels, one stream each; --channels mono pushes one "
                     "downmixed stream)", s->in_path, s->channels);
        snprintf(s->error_line, sizeof s->error_line, "ssm-push: daemon error %s: %s%s", code ? code : "(no code)",
                 msg ? msg : (text ? "(no message)" : "(empty reply)"), hint);
        snprintf(s->error_stream, sizeof s->error_stream, "%s", named ? named : "");
        json_decref(j);
        return -2;
    }
    push_stream *st = push_stream_find(s, d.stream);
    if (d.kind == SSMD_KIND_META && st) {
        /* the daemon's first reply: its ingest cap, which messages are split to */
        json_error_t jerr;
        json_t *j = json_loadb((const char *)d.payload, d.payload_len, 0, &jerr);
        json_int_t cap = json_integer_value(json_object_get(j, "ingest_max_payload_bytes"));
        if (cap >= (json_int_t)SSMD_INGEST_MIN_PAYLOAD_BYTES) s->cap_bytes = (uint64_t)cap;
        st->meta_seen = 1;
        s->redirects = 0; /* --cluster: this member took the stream */
        json_int_t window = json_integer_value(json_object_get(j, "ingest_window_samples"));
        if (window > 0 && (!s->window || (uint64_t)window < s->window)) s->window = (uint64_t)window;
        int bad = 0;
        if (s->cluster && st->kept.from > 0) {
            /* a replay: the owner must have resumed the stream from a checkpoint whose output
             * does not start past the output already collected */
            json_t *r = json_object_get(j, "resumed");
            json_int_t in = json_integer_value(json_object_get(r, "input_sample"));
            json_int_t out = json_integer_value(json_object_get(r, "output_sample"));
            if (!json_is_object(r)) {
                fprintf(stderr, "ssm-push: %s took the replay of %s from sample %llu without resuming it from a "
                        "checkpoint\n", s->owner.node, st->name, (unsigned long long)st->kept.from);
                bad = 1;
            } else if (out > 0 && (uint64_t)out > st->received) {
                fprintf(stderr, "ssm-push: %s resumed %s from a checkpoint at input sample %lld whose output starts "
                        "at %lld, past the %llu output samples received: output lost with the old owner\n",
                        s->owner.node, st->name, (long long)in, (long long)out, (unsigned long long)st->received);
                bad = 1;
            } else if (in > 0 && (uint64_t)in > s->resumed_max) {
                s->resumed_max = (uint64_t)in;
            }
        }
        json_decref(j);
        return bad ? -1 : 0;
    }
    if (d.kind == SSMD_KIND_EVENT && st && s->cluster) {
        /* a stored checkpoint: the input before its input_sample is not needed again once the
         * output before its output_sample has come back (push_apply_ack) */
        json_error_t jerr;
        json_t *j = json_loadb((const char *)d.payload, d.payload_len, 0, &jerr);
        const char *ev = json_string_value(json_object_get(j, "event"));
        json_int_t in = json_integer_value(json_object_get(j, "input_sample"));
        json_int_t out = json_integer_value(json_object_get(j, "output_sample"));
        if (ev && strcmp(ev, "checkpoint") == 0 && in > 0 && out >= 0 && (uint64_t)in > st->ack_in) {
            st->ack_in = (uint64_t)in;
            st->ack_out = (uint64_t)out;
        }
        int moved = ev && strcmp(ev, "moved") == 0;
        if (moved) {
            /* handed over to a member that joined (docs/cluster.md, "A member joining"): its owner
             * key is gone, its checkpoint stays; etcd's placement is the next owner, and the member
             * left is not gone back to (its other channels' owner keys go in the same moment) */
            const char *node = json_string_value(json_object_get(json_object_get(j, "owner"), "node"));
            if (s->verbose)
                fprintf(stderr, "ssm-push: %s moved from node %s to node %s\n", st->name, s->owner.node,
                        node ? node : "?");
            s->dead = s->owner;
            s->have_dead = 1;
            s->failovers++;
            s->retry = 0;
        }
        json_decref(j);
        push_apply_ack(st);
        return moved ? -3 : 0;
    }
    if (d.kind != SSMD_KIND_AUDIO || !st) return 0;
    if (d.h.dtype != SSMD_DTYPE_F32 || d.h.cols != 1 || d.h.sample_rate_hz == 0 ||
        (s->out_rate_hz && d.h.sample_rate_hz != (uint32_t)s->out_rate_hz)) {
        fprintf(stderr, "ssm-push: result %s seq %llu is not mono f32 audio at the stream's rate "
                "(dtype %u, %u channels, %u Hz)\n", st->topic, (unsigned long long)d.h.seq,
                (unsigned)d.h.dtype, (unsigned)d.h.cols, (unsigned)d.h.sample_rate_hz);
        return -1;
    }
    if (d.h.seq != st->seq_in) {
        fprintf(stderr, "ssm-push: result messages of %s lost: expected seq %llu, got %llu\n", st->name,
                (unsigned long long)st->seq_in, (unsigned long long)d.h.seq);
        return -1;
    }
    st->seq_in++;
    s->out_rate_hz = (int)d.h.sample_rate_hz;
    size_t skip = 0;
    if (s->cluster) {
        /* by first_sample: what the previous owner sent already is dropped, a hole is an error */
        if (d.h.first_sample > st->received) {
            fprintf(stderr, "ssm-push: output samples %llu..%llu of %s never came (the next result from %s starts "
                    "at %llu)\n", (unsigned long long)st->received, (unsigned long long)d.h.first_sample - 1,
                    st->name, s->owner.node, (unsigned long long)d.h.first_sample);
            return -1;
        }
        uint64_t dup = st->received - d.h.first_sample;
        skip = dup < d.h.rows ? (size_t)dup : d.h.rows;
    }
    size_t rows = d.h.rows - skip;
    if (s->writer && rows &&
        (push_queue_result(st, d.payload + skip * sizeof(float), rows) != 0 || push_write_ready(s) != 0))
        return -1;
    st->received += rows;
    if (s->cluster) push_apply_ack(st);
    if ((d.h.flags & SSMD_FLAG_END_OF_STREAM) && !st->got_eos) {
        st->got_eos = 1;
        s->n_eos++;
    }
    return 0;
}

/* ---- --cluster: owners in etcd, kept input, failover (docs/cluster.md) ---- */

/* Reads the next chunk into every stream's kept input; at the end of the
 * input sets s->eof.  Returns 0 or -1 (printed). */
static int push_cluster_read(push_state *s)
{
    if (push_read_chunk(s, 0) != 0) return -1;
    size_t n = s->plane_n[0];
    if (n == 0) {
        s->eof = 1;
        return 0;
    }
    for (int k = 0; k < s->n_streams; k++)
        if (push_kept_append(&s->streams[k].kept, s->plane[0] + (size_t)k * s->chunk, n) != 0) {
            fprintf(stderr, "ssm-push: out of memory keeping %zu samples of %s for a replay\n",
                    s->streams[k].kept.n + n, s->streams[k].name);
            return -1;
        }
    return 0;
}

/* Reads input while a stream has less than a chunk of it unsent (with
 * --realtime only what is due after elapsed_s; *wait_ms is lowered to the
 * time until the next chunk is due).  Returns 0 or -1. */
static int push_cluster_fill(push_state *s, double elapsed_s, int *wait_ms)
{
    while (!s->eof) {
        uint64_t total = s->streams[0].kept.from + s->streams[0].kept.n; /* the same for every stream */
        int need = 0;
        for (int k = 0; k < s->n_streams; k++)
            if (!s->streams[k].sent_eos && total - s->streams[k].pushed < s->chunk) need = 1;
        if (!need) return 0;
        if (s->realtime) {
            double due = (double)total / (double)s->rate_hz;
            if (due > elapsed_s) {
                int ms = (int)((due - elapsed_s) * 1000.0) + 1;
                if (ms < *wait_ms) *wait_ms = ms;
                return 0;
            }
        }
        if (push_cluster_read(s) != 0) return -1;
    }
    return 0;
}

/* The stream whose next message can go now (round robin from cur_stream)
 * and its rows in *rows; -1 when none: before the owner's meta (its answer
 * to the first message) a stream sends one message, so a member that
 * refuses it gets one, not a pipeline; then within the cap and the window. */
static int push_cluster_next(const push_state *s, size_t *rows)
{
    size_t cap_frames = (size_t)((s->cap_bytes ? s->cap_bytes : SSMD_INGEST_MIN_PAYLOAD_BYTES) / sizeof(float));
    for (int i = 0; i < s->n_streams; i++) {
        int k = (s->cur_stream + i) % s->n_streams;
        const push_stream *st = &s->streams[k];
        if (st->sent_eos || st->got_eos || (st->seq_out > 0 && !st->meta_seen)) continue;
        uint64_t total = st->kept.from + st->kept.n;
        size_t n = (size_t)(total - st->pushed);
        if (n == 0 && !s->eof) continue;
        if (n > cap_frames) n = cap_frames;
        if (s->window && n > s->window / 2) n = (size_t)(s->window / 2 ? s->window / 2 : 1);
        uint64_t window = st->meta_seen ? s->window : 2 * SSMD_INGEST_MIN_PAYLOAD_BYTES / sizeof(float);
        uint64_t ahead = st->pushed > st->received ? st->pushed - st->received : 0;
        if (window && st->seq_out > 0 && ahead + n > window) continue;
        *rows = n;
        return k;
    }
    return -1;
}

/* Sends rows of stream k's kept input from its next sample, the last one
 * flagged end-of-stream.  Returns 1 sent, 0 would block, -1 error. */
static int push_cluster_send(push_state *s, void *sock, int k, size_t rows)
{
    push_stream *st = &s->streams[k];
    int last = s->eof && st->pushed + rows == st->kept.from + st->kept.n;
    ssmd_header h;
    memset(&h, 0, sizeof h);
    h.kind = SSMD_KIND_AUDIO;
    h.dtype = SSMD_DTYPE_F32;
    /* FOLLOWS: this client follows the stream when it is handed over to a member that joins */
    h.flags = SSMD_FLAG_FOLLOWS | (last ? SSMD_FLAG_END_OF_STREAM : 0);
    h.sample_rate_hz = (uint32_t)s->rate_hz;
    h.rows = (uint32_t)rows;
    h.cols = 1;
    h.seq = st->seq_out;
    h.first_sample = st->pushed; /* past 0 on a new owner: a replay, resumed from its checkpoint */
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, &h);
    if (zmq_send(sock, st->topic, strlen(st->topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() == EAGAIN) return 0;
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, rows ? push_kept_at(&st->kept, st->pushed) : (const float *)"", rows * sizeof(float), 0) < 0) {
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    st->seq_out++;
    st->pushed += rows;
    s->seq_out++;
    s->cur_stream = (k + 1) % s->n_streams;
    if (last) st->sent_eos = 1;
    s->sent_eos = 1;
    for (int j = 0; j < s->n_streams; j++)
        if (!s->streams[j].sent_eos) s->sent_eos = 0;
    return 1;
}

/* Closes the connection to the owner and its monitor. */
static void push_cluster_close(push_state *s, void **sock)
{
    if (s->mon) {
        zmq_socket_monitor(*sock, NULL, 0);
        zmq_close(s->mon);
        s->mon = NULL;
    }
    if (*sock) zmq_close(*sock);
    *sock = NULL;
}

/* True when the owner connection's monitor says it was disconnected (the
 * daemon died or closed it).  Reads every monitor message waiting. */
static int push_cluster_disconnected(push_state *s)
{
    int lost = 0;
    zmq_msg_t f;
    for (;;) {
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, s->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return lost;
        }
        const uint8_t *p = zmq_msg_data(&f);
        if (zmq_msg_size(&f) >= 6 && (p[0] | (p[1] << 8)) == ZMQ_EVENT_DISCONNECTED) lost = 1;
        int more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&f);
            more = zmq_msg_recv(&f, s->mon, 0) >= 0 && zmq_msg_more(&f);
            zmq_msg_close(&f);
        }
    }
}

/* Finds the member to push to (a NOT_OWNER reply's member, else etcd: the
 * stream's owner key or placement, but not the owner lost last while etcd
 * still lists it, i.e. until its lease has expired), connects to it with a
 * monitor for its disconnection, and readies every stream that has not
 * ended for a start there from its kept input (a replay when that starts
 * past sample 0).  Returns the socket, or NULL (printed) when none took it
 * within failover_timeout_s or on a signal. */
static void *push_cluster_connect(push_state *s, void *ctx)
{
    static int n_monitors = 0;
    double t0 = cli_now_s();
    char err[512], last[700] = "etcd not asked yet";
    for (;;) {
        if (cli_stop_requested) {
            fprintf(stderr, "ssm-push: interrupted by %s while looking for the owner of %s\n",
                    cli_stop_requested == SIGTERM ? "SIGTERM" : "SIGINT", s->stream);
            return NULL;
        }
        push_target t;
        int found = 0;
        if (s->have_redirect) {
            t = s->redirect;
            s->have_redirect = 0;
            found = 1;
        } else if (!s->retry) {
            int rc = push_cluster_locate(s->etcd, s->streams[0].name, &t, err, sizeof err);
            if (rc < 0) snprintf(last, sizeof last, "%s", err);
            else if (rc == 0) snprintf(last, sizeof last, "etcd lists no member");
            else if (s->have_dead && push_cluster_same(&t, &s->dead))
                snprintf(last, sizeof last, "etcd still lists node %s, the owner lost, as %s's %s (its lease has "
                         "not expired)", t.node, s->streams[0].name, t.by_owner ? "owner" : "placement");
            else found = 1;
        }
        s->retry = 0;
        if (found) {
            void *sock = zmq_socket(ctx, ZMQ_DEALER);
            int zero = 0;
            zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
            double ct = s->timeout_s < 5.0 ? s->timeout_s : 5.0;
            if (cli_socket_limits(sock, SSMD_CLIENT_MAX_FRAME_BYTES, 0, 0, err, sizeof err) == 0 &&
                cli_connect(ctx, sock, t.ingest, NULL, ct, err, sizeof err) == 0) {
                char addr[64];
                snprintf(addr, sizeof addr, "inproc://ssm-push-owner-%d", n_monitors++);
                s->mon = zmq_socket(ctx, ZMQ_PAIR);
                zmq_setsockopt(s->mon, ZMQ_LINGER, &zero, sizeof zero);
                if (zmq_socket_monitor(sock, addr, ZMQ_EVENT_DISCONNECTED) != 0 || zmq_connect(s->mon, addr) != 0) {
                    fprintf(stderr, "ssm-push: cannot monitor the connection: %s\n", zmq_strerror(zmq_errno()));
                    push_cluster_close(s, &sock);
                    return NULL;
                }
                s->owner = t;
                s->cap_bytes = 0;
                s->window = 0;
                s->sent_eos = 1;
                for (int k = 0; k < s->n_streams; k++) {
                    push_stream *st = &s->streams[k];
                    if (st->got_eos) continue;
                    st->seq_out = 0;
                    st->seq_in = 0;
                    st->pushed = st->kept.from;
                    st->sent_eos = 0;
                    st->meta_seen = 0;
                    s->sent_eos = 0;
                }
                if (s->verbose)
                    fprintf(stderr, "ssm-push: pushing %s to node %s at %s (%s)%s\n", s->stream, t.node, t.ingest,
                            t.by_owner ? "its owner" : "its placement",
                            s->streams[0].kept.from ? ", replaying from the acknowledged checkpoint" : "");
                return sock;
            }
            zmq_close(sock);
            snprintf(last, sizeof last, "node %s: %s", t.node, err);
            s->dead = t;
            s->have_dead = 1;
        }
        if (cli_now_s() - t0 > s->failover_timeout_s) {
            fprintf(stderr, "ssm-push: no member took %s within %.1f s: %s\n", s->stream, s->failover_timeout_s,
                    last);
            return NULL;
        }
        struct timespec ts = { 0, 250 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* The owner is lost (why): closes the connection, remembers the owner so
 * that it is not tried again while etcd lists it, and connects to the next
 * (push_cluster_connect). */
static void *push_cluster_failover(push_state *s, void *ctx, void **sock, const char *why)
{
    push_cluster_close(s, sock);
    s->dead = s->owner;
    s->have_dead = 1;
    s->failovers++;
    s->redirects = 0;
    if (s->verbose)
        fprintf(stderr, "ssm-push: lost node %s (%s); looking for the next owner in etcd\n", s->owner.node, why);
    return *sock = push_cluster_connect(s, ctx);
}

/* After SIGINT/SIGTERM or a daemon's error reply: sends a bare end-of-stream
 * (rows 0) for every stream that got messages and no end-of-stream yet (but
 * skip, the stream an error reply named, which the daemon refused), so the
 * daemon ends them now instead of after its push_idle_s, waiting at most a
 * second for them to leave.  Returns how many streams were ended. */
static int push_end_streams(push_state *s, void *sock, const char *skip)
{
    int ended = 0, timeout_ms = 1000;
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(sock, ZMQ_LINGER, &timeout_ms, sizeof timeout_ms);
    for (int k = 0; k < s->n_streams; k++) {
        push_stream *st = &s->streams[k];
        if (st->seq_out == 0 || st->sent_eos || (skip && strcmp(st->name, skip) == 0)) continue;
        ssmd_header h;
        memset(&h, 0, sizeof h);
        h.kind = SSMD_KIND_AUDIO;
        h.dtype = SSMD_DTYPE_F32;
        h.flags = SSMD_FLAG_END_OF_STREAM;
        h.sample_rate_hz = (uint32_t)s->rate_hz;
        h.cols = 1;
        h.seq = st->seq_out;
        h.first_sample = st->pushed;
        uint8_t hb[SSMD_HEADER_BYTES];
        ssmd_header_encode(hb, &h);
        int rc;
        do rc = zmq_send(sock, st->topic, strlen(st->topic), ZMQ_SNDMORE);
        while (rc < 0 && zmq_errno() == EINTR);
        if (rc < 0 || zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE) < 0 || zmq_send(sock, "", 0, 0) < 0) {
            fprintf(stderr, "ssm-push: cannot end stream %s: %s\n", st->name, zmq_strerror(zmq_errno()));
            continue;
        }
        st->sent_eos = 1;
        ended++;
    }
    return ended;
}

static int run(push_state *s)
{
    dsp_error err;
    if (dsp_audio_reader_open(&s->reader, s->in_path, NULL, &err) != DSP_OK) {
        fprintf(stderr, "ssm-push: %s\n", err.msg);
        return CLI_EXIT_FAIL;
    }
    const dsp_audio_info *info = dsp_audio_reader_info(s->reader);
    s->channels = info->channels;
    s->rate_hz = info->sample_rate_hz;
    s->n_streams = s->downmix || s->channels == 1 ? 1 : s->channels;
    if (s->n_streams > PUSH_MAX_STREAMS) {
        fprintf(stderr, "ssm-push: %s has %d channels, more streams than %d; use --channels mono to downmix\n",
                s->in_path, s->channels, PUSH_MAX_STREAMS);
        return CLI_EXIT_FAIL;
    }
    s->streams = calloc((size_t)s->n_streams, sizeof *s->streams);
    s->inter = malloc(s->chunk * (size_t)s->channels * sizeof(float));
    s->plane[0] = malloc(s->chunk * (size_t)s->n_streams * sizeof(float));
    s->plane[1] = malloc(s->chunk * (size_t)s->n_streams * sizeof(float));
    if (!s->streams || !s->inter || !s->plane[0] || !s->plane[1]) {
        fprintf(stderr, "ssm-push: out of memory for %zu-frame chunks\n", s->chunk);
        return CLI_EXIT_FAIL;
    }
    for (int k = 0; k < s->n_streams; k++) {
        push_stream *st = &s->streams[k];
        int w = s->n_streams == 1 ? snprintf(st->name, sizeof st->name, "%s", s->stream)
                                  : snprintf(st->name, sizeof st->name, "%s.%d", s->stream, k);
        if (w < 0 || (size_t)w >= sizeof st->name || !ssmd_stream_name_valid(st->name, strlen(st->name))) {
            fprintf(stderr, "ssm-push: --stream: '%s.%d' (one stream per channel of %s) is longer than %d "
                    "bytes; use a shorter name or --channels mono\n", s->stream, k, s->in_path,
                    SSMD_STREAM_NAME_MAX);
            return CLI_EXIT_FAIL;
        }
        ssmd_topic_format(st->topic, sizeof st->topic, st->name, SSMD_KIND_AUDIO);
    }
    /* everything about the output is checked before anything is pushed (a
     * stream opened for nothing keeps its name on the daemon until its
     * push_idle_s): the file is created now, at the rate the results come
     * back at (the stream's own), and removed again on any failure below */
    if (s->out_path) {
        s->out_rate_hz = s->rate_hz;
        if (cli_writer_open(&s->writer, s->out_path, s->out_format, s->rate_hz, s->n_streams, info->n_frames,
                            &err) != DSP_OK) {
            fprintf(stderr, "ssm-push: %s\n", err.msg);
            return CLI_EXIT_FAIL;
        }
    }
    s->cur = 0;
    if (!s->cluster) { /* --cluster reads into the streams' kept input as it sends (push_cluster_fill) */
        if (push_read_chunk(s, 0) != 0) return CLI_EXIT_FAIL;
        s->plane_n[1] = 0;
        if (s->plane_n[0] > 0 && push_read_chunk(s, 1) != 0) return CLI_EXIT_FAIL;
    }

    int rc = CLI_EXIT_FAIL;
    char why[256];
    void *ctx = zmq_ctx_new();
    void *sock = NULL;
    int zero = 0;
    if (s->cluster) {
        if (!(s->etcd = ssmd_etcd_create(s->cluster, 1000, why, sizeof why))) {
            fprintf(stderr, "ssm-push: %s\n", why);
            goto out;
        }
        /* results are never dropped on our side: the same socket options as below */
        if (!(sock = push_cluster_connect(s, ctx))) goto out;
    } else {
        sock = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        /* results are never dropped on our side (RCVHWM 0; the loop below reads
         * them while it sends); a frame larger than any the daemon sends
         * disconnects it */
        if (cli_socket_limits(sock, SSMD_CLIENT_MAX_FRAME_BYTES, 0, 0, why, sizeof why) != 0) {
            fprintf(stderr, "ssm-push: %s\n", why);
            goto out;
        }
        if (cli_connect(ctx, sock, s->endpoint, s->endpoint_env, s->timeout_s, why, sizeof why) != 0) {
            fprintf(stderr, "ssm-push: %s\n", why);
            goto out;
        }
    }
    double t_start = cli_now_s(), t_last = t_start;
    /* --cluster: when the first message since the owner's last reply went (0: none).  A frozen
     * owner (SIGSTOP, a paused VM) still takes the messages into its socket buffers, so t_last,
     * which sends move too, does not notice it: the owner is lost when it has been silent for
     * timeout_s since such a message with half a second of input unanswered (docs/cluster.md,
     * "Clients across a failover": silent while an answer is due) */
    double t_unanswered = 0;
    while (s->n_eos < s->n_streams) {
        if (cli_stop_requested) {
            int ended = push_end_streams(s, sock, NULL);
            if (s->cluster) s->pushed = s->streams[0].pushed; /* --cluster counts per stream */
            fprintf(stderr, "ssm-push: interrupted by %s after %llu samples; %d stream%s ended on the daemon "
                    "(end-of-stream sent)%s\n", cli_stop_requested == SIGTERM ? "SIGTERM" : "SIGINT",
                    (unsigned long long)s->pushed, ended, ended == 1 ? "" : "s",
                    s->out_path && strcmp(s->out_path, "-") != 0 ? "; no output file written" : "");
            goto out;
        }
        double now = cli_now_s();
        int wait_ms = 100;
        size_t c_rows = 0;
        int c_next = -1;
        if (s->cluster) {
            if (push_cluster_fill(s, now - t_start, &wait_ms) != 0) goto out;
            c_next = push_cluster_next(s, &c_rows);
        }
        int want_send = s->cluster ? c_next >= 0 : !s->sent_eos && push_within_window(s);
        if (want_send && s->realtime && !s->cluster) {
            double due = t_start + (double)s->pushed / (double)s->rate_hz;
            if (due > now) {
                want_send = 0;
                double ms = (due - now) * 1000.0;
                if (ms < wait_ms) wait_ms = (int)ms + 1;
            }
        }
        zmq_pollitem_t its[2] = { { sock, 0, (short)(ZMQ_POLLIN | (want_send ? ZMQ_POLLOUT : 0)), 0 },
                                  { s->mon, 0, ZMQ_POLLIN, 0 } };
        zmq_pollitem_t *it = &its[0];
        int n = zmq_poll(its, s->mon ? 2 : 1, wait_ms);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            fprintf(stderr, "ssm-push: poll: %s\n", zmq_strerror(zmq_errno()));
            goto out;
        }
        /* what the owner sent before it went (a "moved" event, results) is read first */
        if (s->mon && (its[1].revents & ZMQ_POLLIN) && !(it->revents & ZMQ_POLLIN) && push_cluster_disconnected(s)) {
            if (!push_cluster_failover(s, ctx, &sock, "disconnected")) goto out;
            t_last = cli_now_s();
            t_unanswered = 0;
            continue;
        }
        if (it->revents & ZMQ_POLLIN) {
            cli_msg m;
            if (cli_msg_recv(sock, &m, 0.0) == 1) {
                int hr = handle_reply(s, &m);
                cli_msg_close(&m);
                if (hr == -3) { /* --cluster: refused, nothing opened: another member or a later try */
                    push_cluster_close(s, &sock);
                    if (!(sock = push_cluster_connect(s, ctx))) goto out;
                    t_last = cli_now_s();
                    t_unanswered = 0;
                    continue;
                }
                if (hr == -2) { /* one line: the error, and the streams it leaves ended at once */
                    int ended = push_end_streams(s, sock, s->error_stream);
                    fprintf(stderr, "%s", s->error_line);
                    if (ended)
                        fprintf(stderr, "; %d other stream%s ended on the daemon (end-of-stream sent)", ended,
                                ended == 1 ? "" : "s");
                    fprintf(stderr, "\n");
                }
                if (hr != 0) goto out;
                t_last = cli_now_s();
                t_unanswered = 0;
            }
            continue; /* drain results before sending more */
        }
        if (it->revents & ZMQ_POLLOUT) {
            if ((s->cluster ? push_cluster_send(s, sock, c_next, c_rows) : push_send_chunk(s, sock)) < 0) goto out;
            t_last = cli_now_s();
            if (s->cluster && !t_unanswered) t_unanswered = t_last;
        }
        int frozen = 0;
        if (s->cluster && t_unanswered && cli_now_s() - t_unanswered > s->timeout_s)
            for (int k = 0; k < s->n_streams && !frozen; k++) {
                const push_stream *st = &s->streams[k];
                frozen = !st->got_eos && st->pushed > st->received &&
                         st->pushed - st->received >= (uint64_t)(s->rate_hz / 2);
            }
        if (s->cluster && (frozen || cli_now_s() - t_last > s->timeout_s)) {
            char lost[96];
            snprintf(lost, sizeof lost, "no answer for %.1f s", s->timeout_s);
            if (!push_cluster_failover(s, ctx, &sock, lost)) goto out;
            t_last = cli_now_s();
            t_unanswered = 0;
            continue;
        }
        if (it->revents & ZMQ_POLLOUT) continue;
        if (cli_now_s() - t_last > s->timeout_s) {
            if (s->sent_eos)
                fprintf(stderr,
                        "ssm-push: no answer from the daemon at %s for %.1f s after the end of the "
                        "stream (%d of %d streams ended)\n",
                        s->endpoint, s->timeout_s, s->n_eos, s->n_streams);
            else
                fprintf(stderr, "ssm-push: the daemon at %s accepted no data for %.1f s\n",
                        s->endpoint, s->timeout_s);
            goto out;
        }
    }
    for (int k = 0; k < s->n_streams; k++) {
        const push_stream *st = &s->streams[k];
        if (st->received != st->pushed) { /* the output is incomplete: removed at out: */
            fprintf(stderr, "ssm-push: the daemon returned %llu samples of %s for %llu pushed%s\n",
                    (unsigned long long)st->received, st->name, (unsigned long long)st->pushed,
                    s->out_path ? "; no output file written" : "");
            goto out;
        }
    }
    if (s->writer) {
        dsp_audio_writer *w = s->writer;
        s->writer = NULL;
        if (dsp_audio_writer_close(w, &err) != DSP_OK) {
            fprintf(stderr, "ssm-push: %s\n", err.msg);
            goto out;
        }
    }
    if (s->cluster) s->pushed = s->streams[0].pushed;
    if (s->verbose)
        fprintf(stderr, "ssm-push: %s: %d stream(s) of %llu samples at %d Hz in %llu messages, %llu frames "
                "written in %.2f s\n", s->stream, s->n_streams, (unsigned long long)s->pushed, s->rate_hz,
                (unsigned long long)s->seq_out, (unsigned long long)s->written, cli_now_s() - t_start);
    if (s->cluster && (s->verbose || s->failovers)) {
        char resumed[64] = "";
        if (s->resumed_max)
            snprintf(resumed, sizeof resumed, ", resumed from input sample %llu", (unsigned long long)s->resumed_max);
        fprintf(stderr, "ssm-push: %s: %d failover(s), last owner node %s%s\n", s->stream, s->failovers,
                s->owner.node, resumed);
    }
    rc = CLI_EXIT_OK;
out:
    if (s->writer) dsp_audio_writer_abort(s->writer); /* no half-written output */
    s->writer = NULL;
    if (s->cluster) push_cluster_close(s, &sock);
    else zmq_close(sock);
    zmq_ctx_term(ctx);
    ssmd_etcd_destroy(s->etcd);
    return rc;
}

int main(int argc, char **argv)
{
    push_state s;
    memset(&s, 0, sizeof s);
    s.endpoint = cli_endpoint_default(CLI_ENV_INGEST, DEFAULT_ENDPOINT);
    s.endpoint_env = cli_endpoint_env(CLI_ENV_INGEST); /* named in endpoint errors */
    s.chunk = DEFAULT_CHUNK;
    s.timeout_s = 10.0;
    s.failover_timeout_s = 60.0;
    s.out_format = SSMD_OUTPUT_FORMAT_DEFAULT;
    enum { OPT_OUTPUT_FORMAT = 256, OPT_CHANNELS, OPT_CLUSTER, OPT_FAILOVER_TIMEOUT };
    static const struct option opts[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "stream", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "output-format", required_argument, NULL, OPT_OUTPUT_FORMAT },
        { "channels", required_argument, NULL, OPT_CHANNELS },
        { "cluster", required_argument, NULL, OPT_CLUSTER },
        { "failover-timeout", required_argument, NULL, OPT_FAILOVER_TIMEOUT },
        { "realtime", no_argument, NULL, 'r' },
        { "chunk", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int c, format_given = 0, endpoint_given = 0;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":e:s:o:rc:t:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': s.endpoint = optarg; s.endpoint_env = NULL; endpoint_given = 1; break;
        case 's': s.stream = optarg; break;
        case 'o': s.out_path = optarg; break;
        case OPT_OUTPUT_FORMAT:
            if (cli_output_format_arg("ssm-push", optarg, &s.out_format) != 0) return CLI_EXIT_USAGE;
            format_given = 1;
            break;
        case OPT_CHANNELS:
            if (strcmp(optarg, "auto") == 0) s.downmix = 0;
            else if (strcmp(optarg, "mono") == 0) s.downmix = 1;
            else return usage_error("--channels: expected auto or mono, got '%s'", optarg);
            break;
        case OPT_CLUSTER: {
            char err[512];
            if (ssmd_etcd_url_check(optarg, err, sizeof err) != 0) {
                fprintf(stderr, "ssm-push: --%s (see ssm-push --help)\n", err);
                return CLI_EXIT_USAGE;
            }
            s.cluster = optarg;
            break;
        }
        case OPT_FAILOVER_TIMEOUT:
            if (cli_parse_seconds(optarg, &s.failover_timeout_s) != 0)
                return usage_error("--failover-timeout: '%s' is not a number of seconds > 0", optarg);
            break;
        case 'r': s.realtime = 1; break;
        case 'c':
            if (cli_parse_u64(optarg, 1, SSMD_INGEST_MAX_PAYLOAD_BYTES / sizeof(float), &v) != 0)
                return usage_error("--chunk: '%s' is not a frame count in 1..2097152 (8 MiB of samples, "
                                   "the most a daemon takes per message)", optarg);
            s.chunk = (size_t)v;
            _Static_assert(SSMD_INGEST_MAX_PAYLOAD_BYTES / sizeof(float) == 2097152, "--chunk message");
            break;
        case 't':
            if (cli_parse_seconds(optarg, &s.timeout_s) != 0)
                return usage_error("--timeout: '%s' is not a number of seconds > 0", optarg);
            break;
        case 'v': s.verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return CLI_EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!s.stream) return usage_error("%s", "missing --stream NAME");
    if (s.cluster && endpoint_given)
        return usage_error("%s", "-e and --cluster: give one (with --cluster the stream's owner comes from etcd)");
    if (!ssmd_stream_name_valid(s.stream, strlen(s.stream)) || s.stream[0] == '_')
        return usage_error("--stream: '%s' is not a valid stream name (1-64 of [A-Za-z0-9_.-], "
                           "not starting with '.' or '_')", s.stream);
    if (s.out_path && dsp_audio_container_from_path(s.out_path) == DSP_AUDIO_CONTAINER_AUTO)
        /* checked before anything is pushed: a stream opened for nothing keeps its name
         * until the daemon's push_idle_s */
        return usage_error("%s: cannot tell the audio format from the file name (use .wav .flac .ogg .opus "
                           ".mp3 .au .aiff .w64 .rf64 .raw)", s.out_path);
    if (cli_output_format_check("ssm-push", format_given, s.out_format, s.out_path) != 0) return CLI_EXIT_USAGE;
    if (optind >= argc) return usage_error("%s", "missing FILE");
    if (argc - optind > 1) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    s.in_path = argv[optind];
    cli_signals_install();
    int rc = run(&s);
    dsp_audio_writer_abort(s.writer); /* a failure before the push loop: no output left behind */
    dsp_audio_reader_close(s.reader);
    for (int k = 0; s.streams && k < s.n_streams; k++) {
        free(s.streams[k].pend);
        push_kept_free(&s.streams[k].kept);
    }
    free(s.streams);
    free(s.inter);
    free(s.plane[0]);
    free(s.plane[1]);
    return rc;
}
