/* SPDX-License-Identifier: MIT */
/* The reply sink: a push stream's processed audio goes back to the client
 * that pushed it, on the ingest ROUTER socket addressed by its identity
 * (st->owner), as <stream>/audio/ messages, after the stream's meta.
 *
 * Back-pressure instead of loss.  The ingest socket is a ROUTER with
 * ZMQ_ROUTER_MANDATORY, so a send to a client whose queue is full (it does
 * not read its results) fails with EAGAIN instead of being dropped silently.
 * The message is then kept here (one message: the engine emits at most
 * SSMD_OUT_CHUNK samples at a time) and the stream is held (st->held): the
 * engine processes nothing more for it, its pending input fills, and the push
 * source stops reading the ingest socket, so ZeroMQ's flow control slows the
 * client down.  Each loop iteration the engine calls flush, which retries;
 * once the message has left, the stream runs again.  A client that stays
 * held for push_idle_s is given up by the push source, loudly
 * (source_push.c).  A client that has gone (EHOSTUNREACH) cannot receive
 * anything: its results are counted in replies_dropped.
 *
 * Loop thread; never blocks; allocates only when a stream opens. */
#include "srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct reply_sink {
    bool pending;                 /* a message waits in buf */
    size_t n;                     /* its samples */
    uint32_t flags;
    uint64_t seq, first_sample;
    float buf[SSMD_OUT_CHUNK];
} reply_sink;

void *ssmd_sink_reply_create(void)
{
    return calloc(1, sizeof(reply_sink));
}

/* Sends one result message; returns 0 sent, EAGAIN (the client's queue is
 * full) or another errno (the client has gone: dropped). */
static int reply_send(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n, uint32_t flags, uint64_t seq,
                      uint64_t first_sample)
{
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_AUDIO);
    ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .flags = flags,
                      .sample_rate_hz = (uint32_t)st->rate_hz, .rows = (uint32_t)n, .cols = 1,
                      .hop_samples = (uint32_t)s->fe.hop_samples, .seq = seq,
                      .first_sample = first_sample, .epoch = s->epoch };
    if (ssmd_transport_send(s->t.ingest, st->owner, st->owner_len, topic, &h, x, n * sizeof(float)) == 0) return 0;
    return zmq_errno() == EAGAIN ? EAGAIN : (zmq_errno() ? zmq_errno() : EIO);
}

static int reply_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    reply_sink *r = self;
    if (!s->t.ingest) return 0;
    uint64_t seq = st->seq[0]++;
    int e = r->pending ? EAGAIN : reply_send(s, st, x, n, flags, seq, st->out_samples);
    if (e == 0) return 0;
    if (e != EAGAIN || r->pending || n > SSMD_OUT_CHUNK) {
        /* the client has gone (or, never expected, a second message while held) */
        s->c.replies_dropped++;
        return 0;
    }
    memcpy(r->buf, x, n * sizeof(float));
    r->n = n;
    r->flags = flags;
    r->seq = seq;
    r->first_sample = st->out_samples;
    r->pending = true;
    if (!st->held) {
        st->held = true;
        st->t_held = ssmd_now_s();
        s->c.reply_stalls++;
    }
    return 0;
}

static bool reply_flush(ssmd_srv *s, ssmd_srv_stream *st, void *self)
{
    reply_sink *r = self;
    if (!r->pending) return true;
    int e = reply_send(s, st, r->buf, r->n, r->flags, r->seq, r->first_sample);
    if (e == EAGAIN) return false;
    if (e != 0) s->c.replies_dropped++;
    r->pending = false;
    return true;
}

size_t ssmd_sink_reply_held_samples(const void *self)
{
    const reply_sink *r = self;
    return r && r->pending ? r->n : 0;
}

int ssmd_reply_meta(ssmd_srv *s, ssmd_srv_stream *st)
{
    char *text = ssmd_pub_meta_json(s, st);
    if (!text || !s->t.ingest) {
        free(text);
        return 0;
    }
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_META);
    ssmd_header h = { .kind = SSMD_KIND_META, .dtype = SSMD_DTYPE_UTF8, .sample_rate_hz = (uint32_t)st->rate_hz,
                      .rows = 1, .cols = (uint32_t)strlen(text), .hop_samples = (uint32_t)s->fe.hop_samples,
                      .epoch = s->epoch };
    int rc = 0;
    if (ssmd_transport_send(s->t.ingest, st->owner, st->owner_len, topic, &h, text, strlen(text))) {
        rc = zmq_errno() == EAGAIN ? EAGAIN : -1;
        s->c.replies_dropped++;
    }
    free(text);
    return rc;
}

void ssmd_reply_event(ssmd_srv *s, ssmd_srv_stream *st, const char *json)
{
    if (!s->t.ingest) return;
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_EVENT);
    ssmd_header h = { .kind = SSMD_KIND_EVENT, .dtype = SSMD_DTYPE_UTF8, .sample_rate_hz = (uint32_t)st->rate_hz,
                      .rows = 1, .cols = (uint32_t)strlen(json), .hop_samples = (uint32_t)s->fe.hop_samples,
                      .first_sample = st->in_samples, .epoch = s->epoch };
    /* advisory: a client whose queue is full misses it, the next one supersedes it */
    ssmd_transport_send(s->t.ingest, st->owner, st->owner_len, topic, &h, json, strlen(json));
}

const ssmd_sink_ops ssmd_sink_reply = { .name = "reply", .audio = reply_audio, .flush = reply_flush,
                                        .destroy = free };
