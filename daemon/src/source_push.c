/* The push source: audio that clients push on the ingest ROUTER socket as
 * [topic][header][payload] messages (docs/protocol.md).  The first message
 * of a new name opens a stream owned by that client (its identity), whose
 * processed audio goes back to it through the reply sink; a malformed
 * message gets an error event and a counter, never a crash.  Pushes are
 * never dropped: the socket is read only while every push stream has room
 * (ZeroMQ's flow control slows a fast client down), at most
 * MAX_INGEST_PER_ITER messages per iteration.  A stream whose client goes
 * silent for push_idle_s seconds is ended.  Loop thread. */
#include "srv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

enum { MAX_INGEST_PER_ITER = 64 };

/* True while every push stream has room for another message's worth of
 * input; otherwise the ingest socket is left unread this iteration. */
static bool ingest_has_room(const ssmd_srv *s)
{
    for (int i = 0; i < s->max_streams; i++) {
        const ssmd_srv_stream *st = &s->streams[i];
        if (st->used && st->src == &ssmd_source_push && st->pend_len - st->pend_pos > st->pend_cap / 2) return false;
    }
    return true;
}

static void ingest_error(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *code,
                         const char *stream, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static void ingest_error(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *code,
                         const char *stream, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->c.bad_messages++;
    ssmd_log(SSMD_LOG_DEBUG, "ingest: %s: %s", code, msg);
    json_t *o = json_pack("{s:s, s:s, s:s}", "event", "error", "error", code, "message", msg);
    json_object_set_new(o, "stream", stream ? json_string(stream) : json_null());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return;
    ssmd_header h = { .kind = SSMD_KIND_EVENT, .dtype = SSMD_DTYPE_UTF8, .rows = 1,
                      .cols = (uint32_t)strlen(text), .epoch = s->epoch };
    if (ssmd_transport_send(s->t.ingest, id, id_len, "_ssmd/event/", &h, text, strlen(text)) != 0)
        s->c.replies_dropped++;
    free(text);
}

static const char *proto_code(int rc)
{
    switch (rc) {
    case SSMD_PROTO_SHORT: return "SHORT";
    case SSMD_PROTO_BAD_MAGIC: return "BAD_MAGIC";
    case SSMD_PROTO_BAD_VERSION: return "BAD_VERSION";
    case SSMD_PROTO_BAD_LENGTH: return "BAD_LENGTH";
    case SSMD_PROTO_BAD_KIND: return "BAD_KIND";
    case SSMD_PROTO_BAD_DTYPE: return "BAD_DTYPE";
    case SSMD_PROTO_BAD_SIZE: return "BAD_SIZE";
    default: return "BAD_TOPIC";
    }
}


static void handle_ingest(ssmd_srv *s)
{
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
    for (int iter = 0; iter < MAX_INGEST_PER_ITER && ingest_has_room(s) &&
                       (n = ssmd_transport_recv(s->t.ingest, f, &total)) >= 0; iter++) {
        const uint8_t *id = zmq_msg_data(&f[0]);
        size_t id_len = zmq_msg_size(&f[0]);
        int k = 1;
        if (n > 1 && zmq_msg_size(&f[1]) == 0) k = 2; /* REQ-style empty delimiter */
        char name[SSMD_STREAM_NAME_MAX + 1] = "";
        uint16_t kind = 0;
        ssmd_header h;
        int rc;
        if (s->token_mode) {
            ingest_error(s, id, id_len, "NOT_SUPPORTED", NULL, "this daemon is generating from a token model "
                         "(--generate-s); it does not process pushed audio");
        } else if (total - k != 3) {
            ingest_error(s, id, id_len, "BAD_FRAMES", NULL, "expected 3 frames [topic][header][payload], got %d", total - k);
        } else if (ssmd_topic_parse(zmq_msg_data(&f[k]), zmq_msg_size(&f[k]), name, &kind) != SSMD_PROTO_OK ||
                   name[0] == '_') {
            ingest_error(s, id, id_len, "BAD_TOPIC", NULL, "topic must be '<stream>/audio/' with a valid stream name");
        } else if ((rc = ssmd_header_decode(zmq_msg_data(&f[k + 1]), zmq_msg_size(&f[k + 1]),
                                            zmq_msg_size(&f[k + 2]), (size_t)s->cfg->ingest_max_payload,
                                            &h)) != SSMD_PROTO_OK) {
            ingest_error(s, id, id_len, proto_code(rc), name, "%s", ssmd_proto_strerror(rc));
        } else if (kind != SSMD_KIND_AUDIO || h.kind != SSMD_KIND_AUDIO ||
                   (h.dtype != SSMD_DTYPE_F32 && h.dtype != SSMD_DTYPE_I16)) {
            ingest_error(s, id, id_len, "BAD_KIND", name, "ingest takes audio messages of dtype f32 or i16");
        } else if (h.sample_rate_hz == 0 || h.sample_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ || h.cols == 0 ||
                   h.cols > 64 ||
                   (uint64_t)h.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)s->fe.sample_rate_hz ||
                   (uint64_t)s->fe.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)h.sample_rate_hz) {
            ingest_error(s, id, id_len, "BAD_SIZE", name,
                         "sample rate %u Hz or %u channels out of range (rates within 1:%d of the "
                         "model's %d Hz, 1..64 channels)", h.sample_rate_hz, h.cols,
                         DSP_RESAMPLE_MAX_RATIO, s->fe.sample_rate_hz);
        } else {
            ssmd_srv_stream *st = ssmd_srv_stream_find(s, name);
            char err[256];
            if (st && (st->src != &ssmd_source_push || st->owner_len != id_len || memcmp(st->owner, id, id_len) != 0)) {
                ingest_error(s, id, id_len, "NAME_IN_USE", name, "stream '%s' belongs to another source", name);
                st = NULL;
            } else if (st && st->rate_hz != (int)h.sample_rate_hz) {
                ingest_error(s, id, id_len, "RATE_CHANGED", name, "stream '%s' is %d Hz, message says %u Hz",
                             name, st->rate_hz, h.sample_rate_hz);
                st = NULL;
            } else if (st && st->eos) {
                ingest_error(s, id, id_len, "STREAM_ENDED", name, "stream '%s' already ended", name);
                st = NULL;
            } else if (!st) {
                if (id_len > sizeof st->owner) {
                    ingest_error(s, id, id_len, "BAD_FRAMES", name, "client identity too long");
                } else if (!(st = ssmd_srv_stream_open(s, name, &ssmd_source_push, (int)h.sample_rate_hz, true, true,
                                                     err, sizeof err))) {
                    ingest_error(s, id, id_len, strcmp(err, "TOO_MANY_STREAMS") == 0 ? "TOO_MANY_STREAMS" : "INTERNAL",
                                 name, "%s", strcmp(err, "TOO_MANY_STREAMS") == 0
                                                 ? "max_streams streams are already running" : err);
                } else {
                    memcpy(st->owner, id, id_len);
                    st->owner_len = id_len;
                    ssmd_srv_stream_attach(st, &ssmd_sink_reply, NULL);
                    ssmd_reply_meta(s, st); /* tells the client the cap it splits at */
                }
            }
            if (st) {
                const uint8_t *p = zmq_msg_data(&f[k + 2]);
                size_t rows = h.rows, cols = h.cols;
                float chunk[1024];
                uint64_t nonfinite = 0;
                for (size_t r0 = 0; r0 < rows; r0 += 1024) {
                    size_t m = rows - r0 < 1024 ? rows - r0 : 1024;
                    for (size_t r = 0; r < m; r++) {
                        float acc = 0;
                        for (size_t c = 0; c < cols; c++) {
                            size_t idx = (r0 + r) * cols + c;
                            float v;
                            if (h.dtype == SSMD_DTYPE_F32) {
                                uint32_t u = ssmd_get_u32(p + 4 * idx);
                                memcpy(&v, &u, 4);
                            } else {
                                v = (float)(int16_t)ssmd_get_u16(p + 2 * idx) / 32768.0f;
                            }
                            if (!isfinite(v)) { v = 0; nonfinite++; }
                            acc += v;
                        }
                        chunk[r] = acc / (float)cols;
                    }
                    ssmd_srv_stream_append_all(s, st, chunk, m);
                }
                s->c.nonfinite_samples += nonfinite;
                st->t_last_in = ssmd_now_s();
                if (h.flags & SSMD_FLAG_END_OF_STREAM) st->eos = true;
            }
        }
        ssmd_transport_frames_close(f, n);
    }
}


/* A push stream whose client sent nothing for push_idle_s seconds (it
 * crashed or forgot end-of-stream) is ended as if it had sent end-of-stream,
 * so abandoned streams cannot hold the slots. */
static void expire_idle_pushes(ssmd_srv *s)
{
    double t = ssmd_now_s();
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (st->used && st->src == &ssmd_source_push && !st->eos && t - st->t_last_in > (double)s->cfg->push_idle_s) {
            st->eos = true;
            ssmd_srv_event(s, st, "idle", "no input for push_idle_s seconds; stream ended");
            ssmd_log(SSMD_LOG_INFO, "stream %s: idle for %ld s, ended", st->name, s->cfg->push_idle_s);
        }
    }
}


static int push_pull(ssmd_srv *s, bool stopping, bool *busy)
{
    (void)busy;
    if (!stopping && s->t.pub) handle_ingest(s);
    expire_idle_pushes(s);
    return 0;
}

const ssmd_source_ops ssmd_source_push = { .name = "push", .pull = push_pull };
