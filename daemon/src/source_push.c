/* SPDX-License-Identifier: MIT */
/* The push source: audio that clients push on the ingest ROUTER socket as
 * [topic][header][payload] messages (docs/protocol.md).  The first message
 * of a new name opens a stream owned by that client (its identity), whose
 * processed audio goes back to it through the reply sink; a malformed
 * message gets an error event and a counter, never a crash.  Pushes are
 * never dropped: the socket is read while no message is parked (ZeroMQ's
 * flow control slows a fast client down otherwise), at most
 * MAX_INGEST_PER_ITER messages and SSMD_INGEST_BUDGET_MS per iteration, and
 * no model step runs inside a read: the part of a message that does not fit
 * its stream's pending input is parked (below) and goes in at the next
 * iterations, after the engine has made room (it steps that stream first,
 * ssmd_srv_stream_live).  So a control request waits for one iteration's
 * bounded work, not for everything clients pushed.  A client that keeps
 * within the window its stream's meta advertises (ingest_window_samples,
 * the pending input's size) always fits, so a bulk push does not hold up the
 * other clients' messages.  A stream whose client goes silent for
 * push_idle_s seconds is ended; time its messages may have waited in the
 * socket is not silence.
 *
 * Continuity: a stream's messages must follow each other, seq 0, 1, 2, ...
 * and first_sample 0, then each message's first_sample plus its rows.  A
 * message that does not (one lost, repeated or reordered by a client) is
 * refused whole with DISCONTINUITY, naming what was expected and what came,
 * so audio with a hole is never glued together; the stream stays open and
 * expects the same message again (a client may resend it).
 *
 * Back-pressure from the results: a stream whose client does not read its
 * results is held (sink_reply.c) and consumes nothing; the part of a message
 * that did not fit is parked (s->push) and the socket is not read until it
 * has gone in, so the client's sends block (the same park serves a message
 * larger than the room of a stream that is not held).  A client held for push_idle_s
 * seconds is given up: its stream ends, what it pushed and was not processed
 * is counted (push_lost_samples), logged as a warning and published as an
 * error event on the stream's event topic.  Loop thread. */
#include "srv.h"
#include "errf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

enum { MAX_INGEST_PER_ITER = 64 };

/* True while no message is parked; otherwise the ingest socket is left
 * unread this iteration.  Only the stream a message belongs to decides
 * whether it fits: one stream with a full pending input (a bulk push) does
 * not stop the messages of the others (a push at real-time pace) as long as
 * its client keeps within ingest_window_samples (advertised in the meta);
 * before, the socket was left unread while any push stream was more than
 * half full, so every client's messages waited behind the bulk ones. */
static bool ingest_has_room(const ssmd_srv *s)
{
    return !s->push.parked;
}

/* The error reply [_ssmd/event/][header][JSON]; owner (may be NULL) is
 * added to the JSON as "owner" (NOT_OWNER), its reference taken. */
static void ingest_error_v(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *code, const char *stream,
                           json_t *owner, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (owner || strcmp(code, "CLUSTER_UNAVAILABLE") == 0) s->c.cluster_refused++; /* not malformed */
    else s->c.bad_messages++;
    ssmd_log(SSMD_LOG_DEBUG, "ingest: %s: %s", code, msg);
    json_t *o = json_pack("{s:s, s:s, s:s}", "event", "error", "error", code, "message", msg);
    json_object_set_new(o, "stream", stream ? json_string(stream) : json_null());
    if (owner) json_object_set_new(o, "owner", owner);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return;
    ssmd_header h = { .kind = SSMD_KIND_EVENT, .dtype = SSMD_DTYPE_UTF8, .rows = 1,
                      .cols = (uint32_t)strlen(text), .epoch = s->epoch };
    if (ssmd_transport_send(s->t.ingest, id, id_len, "_ssmd/event/", &h, text, strlen(text)) != 0)
        s->c.replies_dropped++;
    free(text);
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
    va_list ap;
    va_start(ap, fmt);
    ingest_error_v(s, id, id_len, code, stream, NULL, fmt, ap);
    va_end(ap);
}

static void ingest_error_extra(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *code,
                               const char *stream, json_t *owner, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
static void ingest_error_extra(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *code,
                               const char *stream, json_t *owner, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ingest_error_v(s, id, id_len, code, stream, owner, fmt, ap);
    va_end(ap);
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

/* BAD_SIZE with the numbers: a payload (or the size its header announces)
 * beyond this daemon's ingest cap names both the size and the cap; otherwise
 * the header's rows x cols x element size and the payload frame's length.
 * h holds the decoded fields (ssmd_header_decode fills them before it checks
 * the size). */
static void size_error(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *name, const ssmd_header *h,
                       size_t payload_bytes)
{
    size_t esize = ssmd_dtype_bytes(h->dtype);
    unsigned long long cap = (unsigned long long)s->cfg->ingest_max_payload;
    /* rows and cols are < 2^32: their product fits; x 4 may not */
    uint64_t n = (uint64_t)h->rows * h->cols;
    bool overflow = n > UINT64_MAX / (esize ? esize : 1);
    unsigned long long announced = overflow ? 0 : (unsigned long long)(n * esize);
    if (payload_bytes > cap || overflow || announced > cap) {
        char size[64];
        if (payload_bytes > cap) snprintf(size, sizeof size, "a payload of %zu bytes", payload_bytes);
        else if (overflow) snprintf(size, sizeof size, "a header announcing more than 2^64 bytes");
        else snprintf(size, sizeof size, "a header announcing %llu bytes", announced);
        ingest_error(s, id, id_len, "BAD_SIZE", name,
                     "message too large: %s is more than this daemon's ingest cap of %llu bytes "
                     "(ingest_max_payload, advertised as ingest_max_payload_bytes in the stream's meta); "
                     "split the samples into smaller messages", size, cap);
    } else
        ingest_error(s, id, id_len, "BAD_SIZE", name,
                     "payload size mismatch: the header says %u rows x %u cols x %zu bytes = %llu bytes, "
                     "the payload frame has %zu bytes", h->rows, h->cols, esize, announced, payload_bytes);
}

/* Appends rows [*row, rows) of a pushed payload (f32 or i16, cols channels
 * averaged) to the stream's pending input.  Returns true when every row went
 * in (end-of-stream then applies); false when the pending input is full or
 * the stream is held, *row then says how far it got. */
static bool push_rows_from(ssmd_srv *s, ssmd_srv_stream *st, const uint8_t *p, const ssmd_header *h, size_t *row)
{
    size_t rows = h->rows, cols = h->cols;
    float chunk[1024];
    uint8_t bad[1024]; /* non-finite values per row (cols <= 64) */
    while (*row < rows) {
        size_t r0 = *row, m = rows - r0 < 1024 ? rows - r0 : 1024;
        if (cols == 1 && h->dtype == SSMD_DTYPE_F32) {
            /* mono f32, the common case: the values of the general path
             * below (a non-finite float, every exponent bit set, becomes 0;
             * so does -0, as 0 + -0 is +0 there) in one pass over integers,
             * without the per-sample dtype and channel loop (3 % of the
             * daemon's CPU at 256 streams in bench/daemon_streams.py) */
            for (size_t r = 0; r < m; r++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                uint32_t u;
                memcpy(&u, p + 4 * (r0 + r), 4);
#else
                uint32_t u = ssmd_get_u32(p + 4 * (r0 + r));
#endif
                bool nonfinite = (u & 0x7f800000u) == 0x7f800000u;
                u = nonfinite || u == 0x80000000u ? 0u : u;
                memcpy(&chunk[r], &u, 4);
                bad[r] = nonfinite;
            }
        } else {
            for (size_t r = 0; r < m; r++) {
                float acc = 0;
                bad[r] = 0;
                for (size_t c = 0; c < cols; c++) {
                    size_t idx = (r0 + r) * cols + c;
                    float v;
                    if (h->dtype == SSMD_DTYPE_F32) {
                        uint32_t u = ssmd_get_u32(p + 4 * idx);
                        memcpy(&v, &u, 4);
                    } else {
                        v = (float)(int16_t)ssmd_get_u16(p + 2 * idx) / 32768.0f;
                    }
                    if (!isfinite(v)) { v = 0; bad[r]++; }
                    acc += v;
                }
                chunk[r] = acc / (float)cols;
            }
        }
        long got = ssmd_srv_stream_append_some(s, st, chunk, m);
        uint64_t n_bad = 0;
        for (long r = 0; r < got; r++) n_bad += bad[r];
        ssmd_srv_stream_count_nonfinite(s, st, n_bad);
        *row += (size_t)got;
        if ((size_t)got < m) return false;
    }
    if (h->flags & SSMD_FLAG_END_OF_STREAM) st->eos = true;
    return true;
}

static bool push_rows(ssmd_srv *s, ssmd_srv_stream *st, const uint8_t *p, const ssmd_header *h, size_t row)
{
    s->push.row = row;
    return push_rows_from(s, st, p, h, &s->push.row);
}

/* The parked rest of a message goes in as its stream drains; true when
 * nothing is parked any more. */
static bool resume_parked(ssmd_srv *s)
{
    if (!s->push.parked) return true;
    ssmd_srv_stream *st = ssmd_srv_stream_find(s, s->push.name);
    if (st && !st->ended && st->src == &ssmd_source_push && !st->held &&
        !push_rows_from(s, st, zmq_msg_data(&s->push.payload), &s->push.h, &s->push.row))
        return false;
    if (st && !st->held) st->t_last_in = ssmd_now_s();
    if (st && st->held) return false;
    zmq_msg_close(&s->push.payload);
    s->push.parked = false;
    return true;
}

/* A client whose queue is already full when its stream opens reads no
 * results: its message is refused, not held (a held stream would stop the
 * ingest socket for everyone again), and counted as lost; logged once a
 * second. */
static void refuse_full_client(ssmd_srv *s, const char *name, const uint8_t *id, size_t id_len, uint32_t rows)
{
    s->c.push_lost_samples += rows;
    s->push.refusals++;
    double t = ssmd_now_s();
    memcpy(s->push.refused_id, id, id_len);
    s->push.refused_id_len = id_len;
    s->push.t_refused = t;
    if (t - s->push.t_refusal_logged >= 1.0) {
        ssmd_log(SSMD_LOG_WARN, "stream %s: the client does not read its results (its queue is full): "
                 "%llu message(s) refused, their samples counted in push_lost_samples", name,
                 (unsigned long long)s->push.refusals);
        s->push.refusals = 0;
        s->push.t_refusal_logged = t;
    }
}

static bool client_refused(const ssmd_srv *s, const uint8_t *id, size_t id_len)
{
    return s->push.refused_id_len == id_len && memcmp(s->push.refused_id, id, id_len) == 0 &&
           ssmd_now_s() - s->push.t_refused < (double)s->cfg->push_idle_s;
}

/* A stream resumed from a checkpoint takes its input from the checkpoint's
 * input sample on: each message's header first_sample says where it starts,
 * so a client that replays what it kept (from any sample up to the resume
 * point) has the part the checkpoint already covers dropped here, and a
 * message that would leave a gap is refused (REPLAY_GAP) and changes
 * nothing.  Returns false when refused; *row0 is the first row to take. */
static bool resumed_input(ssmd_srv *s, ssmd_srv_stream *st, const uint8_t *id, size_t id_len, const ssmd_header *h,
                          size_t *row0)
{
    uint64_t want = st->in_samples; /* every message before this one went in whole */
    if (h->first_sample > want) {
        ingest_error(s, id, id_len, "REPLAY_GAP", st->name,
                     "stream '%s' resumed from a checkpoint and needs its input from sample %llu on; this message "
                     "starts at sample %llu: push from sample %llu", st->name, (unsigned long long)want,
                     (unsigned long long)h->first_sample, (unsigned long long)want);
        return false;
    }
    uint64_t skip = want - h->first_sample;
    *row0 = skip < h->rows ? (size_t)skip : h->rows;
    st->replay_skipped += *row0;
    return true;
}

/* Cluster mode: a stream new to this daemon is opened only when it owns it
 * (claimed in etcd, cluster.h).  Otherwise the client gets NOT_OWNER, with
 * the owner's node and ingest endpoint, or CLUSTER_UNAVAILABLE while etcd
 * does not answer; nothing is opened either way. */
static bool cluster_admits(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *name, ssmd_cluster_found *ckpt)
{
    ssmd_cluster_owner o;
    char msg[1024];
    /* with checkpoints on (ckpt), the claim also reads the stream's last checkpoint */
    ssmd_cluster_verdict v = ssmd_cluster_claim(s->cluster, name, &o, ckpt, msg, sizeof msg);
    if (v == SSMD_CLUSTER_OWNED) return true;
    if (v == SSMD_CLUSTER_ELSEWHERE) {
        json_t *extra = json_pack("{s:s, s:s}", "node", o.node, "ingest", o.ingest);
        ingest_error_extra(s, id, id_len, "NOT_OWNER", name, extra, "%s", msg);
    } else {
        ingest_error_extra(s, id, id_len, "CLUSTER_UNAVAILABLE", name, NULL, "%s", msg);
    }
    return false;
}

/* Refuses a message that does not continue its stream (st; NULL: no stream
 * of that name is open, so the message must be a first one, seq 0 and
 * first_sample 0).  The stream's event topic gets an error event and the log
 * a warning once per break (until a message is accepted again). */
static void refuse_discontinuous(ssmd_srv *s, const uint8_t *id, size_t id_len, const char *name,
                                 ssmd_srv_stream *st, const ssmd_header *h)
{
    uint64_t want_seq = st ? st->push_seq_next : 0, want_first = st ? st->push_sample_next : 0;
    char seq_part[64] = "", sample_part[64] = "", msg[512];
    if (h->seq > want_seq)
        snprintf(seq_part, sizeof seq_part, "%llu message(s) missing", (unsigned long long)(h->seq - want_seq));
    else if (h->seq < want_seq)
        snprintf(seq_part, sizeof seq_part, "a message repeated or out of order");
    if (h->first_sample > want_first)
        snprintf(sample_part, sizeof sample_part, "a gap of %llu samples",
                 (unsigned long long)(h->first_sample - want_first));
    else if (h->first_sample < want_first)
        snprintf(sample_part, sizeof sample_part, "an overlap of %llu samples",
                 (unsigned long long)(want_first - h->first_sample));
    snprintf(msg, sizeof msg, "stream '%s': message seq %llu, first_sample %llu does not %s (expected seq %llu, "
             "first_sample %llu: %s%s%s); refused, nothing of it processed", name, (unsigned long long)h->seq,
             (unsigned long long)h->first_sample, st ? "follow the last one accepted" : "start the stream",
             (unsigned long long)want_seq, (unsigned long long)want_first, seq_part,
             seq_part[0] && sample_part[0] ? ", " : "", sample_part);
    s->c.push_discontinuities++;
    ingest_error(s, id, id_len, "DISCONTINUITY", name, "%s", msg);
    if (st && !st->push_broken) {
        st->push_broken = true;
        ssmd_log(SSMD_LOG_WARN, "%s", msg);
        ssmd_srv_event(s, st, "error", msg);
    }
}

static bool free_slot(const ssmd_srv *s)
{
    for (int i = 0; i < s->max_streams; i++)
        if (!s->streams[i].used) return true;
    return false;
}

static void handle_ingest(ssmd_srv *s)
{
    double t = ssmd_now_s(), since = s->push.t_polled > 0 ? t - s->push.t_polled : 0;
    s->push.t_polled = t;
    /* while messages wait in the socket (it was left unread, or the last read
     * stopped at its budget), clients wait on us: that time is not their
     * idleness (push_idle_s).  Counting it ended streams whose next message
     * was queued behind others' for push_idle_s: the rest of such a push
     * opened a new stream of the same name that nobody collected. */
    if (s->push.backlogged)
        for (int i = 0; i < s->max_streams; i++)
            if (s->streams[i].used && s->streams[i].src == &ssmd_source_push) s->streams[i].t_last_in += since;
    s->push.backlogged = true;
    if (!resume_parked(s) || !ingest_has_room(s)) {
        s->c.ingest_blocked_ns += (uint64_t)(1e9 * since);
        return;
    }
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
    double deadline = t + SSMD_INGEST_BUDGET_MS * 1e-3;
    for (int iter = 0;; iter++) {
        if (iter >= MAX_INGEST_PER_ITER || !ingest_has_room(s) || (iter > 0 && ssmd_now_s() >= deadline)) break;
        if ((n = ssmd_transport_recv(s->t.ingest, f, &total)) < 0) {
            s->push.backlogged = false; /* every waiting message was read */
            break;
        }
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
            char topic[100];
            ssmd_errf_echo(topic, sizeof topic, zmq_msg_data(&f[k]), zmq_msg_size(&f[k]));
            ingest_error(s, id, id_len, "BAD_TOPIC", NULL, "topic '%s' is not '<stream>/audio/' with a valid stream "
                         "name (1-64 of [A-Za-z0-9_.-], not starting with '.' or '_')", topic);
        } else if ((rc = ssmd_header_decode(zmq_msg_data(&f[k + 1]), zmq_msg_size(&f[k + 1]),
                                            zmq_msg_size(&f[k + 2]), (size_t)s->cfg->ingest_max_payload,
                                            &h)) != SSMD_PROTO_OK) {
            if (rc == SSMD_PROTO_BAD_SIZE) size_error(s, id, id_len, name, &h, zmq_msg_size(&f[k + 2]));
            else ingest_error(s, id, id_len, proto_code(rc), name, "%s", ssmd_proto_strerror(rc));
        } else if (kind != SSMD_KIND_AUDIO || h.kind != SSMD_KIND_AUDIO ||
                   (h.dtype != SSMD_DTYPE_F32 && h.dtype != SSMD_DTYPE_I16)) {
            /* names what is wrong: the topic's kind, the header's, or the dtype */
            const char *tk = ssmd_kind_name(kind), *hk = ssmd_kind_name(h.kind);
            if (kind != SSMD_KIND_AUDIO)
                ingest_error(s, id, id_len, "BAD_KIND", name, "topic '%s/%s/': ingest takes '<stream>/audio/' "
                             "messages", name, tk ? tk : "?");
            else if (h.kind != SSMD_KIND_AUDIO)
                ingest_error(s, id, id_len, "BAD_KIND", name, "the header's kind is %s (%u), the topic's audio: "
                             "ingest takes audio messages", hk ? hk : "unknown", (unsigned)h.kind);
            else
                ingest_error(s, id, id_len, "BAD_KIND", name, "dtype %u: ingest takes audio of dtype f32 (1) or "
                             "i16 (2)", (unsigned)h.dtype);
        } else if (h.sample_rate_hz == 0 || h.sample_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ || h.cols == 0 ||
                   h.cols > 64 ||
                   (uint64_t)h.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)s->fe.sample_rate_hz ||
                   (uint64_t)s->fe.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)h.sample_rate_hz) {
            ingest_error(s, id, id_len, "BAD_SIZE", name,
                         "sample rate %u Hz or %u channels out of range (rates within 1:%d of the "
                         "model's %d Hz, 1..64 channels)", h.sample_rate_hz, h.cols,
                         DSP_RESAMPLE_MAX_RATIO, s->fe.sample_rate_hz);
        } else {
            if (s->cluster) ssmd_srv_checkpoint_stale(s); /* a stale copy of this name goes first */
            ssmd_srv_stream *st = ssmd_srv_stream_find(s, name);
            ssmd_cluster_found *ckpt = NULL; /* a new stream's checkpoint, read at its claim */
            size_t row0 = 0;
            char err[256];
            if (st && st->stale) {
                /* closed at the end of this loop iteration (another member claimed it while this
                 * one's lease was lost): the client tries again shortly */
                ingest_error(s, id, id_len, "CLUSTER_UNAVAILABLE", name, "stream '%s': this node's stale copy "
                             "(claimed by another member while this node's lease was lost) is closing; push "
                             "again", name);
                st = NULL;
            } else if (st && (st->src != &ssmd_source_push || st->owner_len != id_len ||
                              memcmp(st->owner, id, id_len) != 0)) {
                ingest_error(s, id, id_len, "NAME_IN_USE", name, "stream '%s' belongs to another source", name);
                st = NULL;
            } else if (st && st->rate_hz != (int)h.sample_rate_hz) {
                ingest_error(s, id, id_len, "RATE_CHANGED", name, "stream '%s' is %d Hz, message says %u Hz",
                             name, st->rate_hz, h.sample_rate_hz);
                st = NULL;
            } else if (st && st->push_cols && h.rows > 0 && st->push_cols != h.cols) {
                /* its channels are downmixed as the stream started (a message without samples,
                 * such as an end-of-stream, has none to mix: its count does not matter) */
                ingest_error(s, id, id_len, "CHANNELS_CHANGED", name, "stream '%s' has %u channels, message "
                             "says %u", name, st->push_cols, h.cols);
                st = NULL;
            } else if (st && st->eos) {
                ingest_error(s, id, id_len, "STREAM_ENDED", name, "stream '%s' already ended", name);
                st = NULL;
            } else if (st && (st->push_accepted || !st->resumed) &&
                       (h.seq != st->push_seq_next || h.first_sample != st->push_sample_next)) {
                /* (a stream resumed from a checkpoint takes its first message from wherever the
                 * client replays: resumed_input trims it or refuses it with REPLAY_GAP) */
                refuse_discontinuous(s, id, id_len, name, st, &h);
                st = NULL;
            } else if (!st) {
                if (id_len > sizeof st->owner) {
                    ingest_error(s, id, id_len, "BAD_FRAMES", name, "client identity too long");
                } else if (client_refused(s, id, id_len)) {
                    refuse_full_client(s, name, id, id_len, h.rows);
                } else if ((h.seq != 0 || h.first_sample != 0) && !(s->cluster && s->cfg->checkpoint_s > 0)) {
                    /* with checkpoints a first message may be a replay after a failover: the claim
                     * below resumes the stream from its checkpoint, or it starts afresh there */
                    refuse_discontinuous(s, id, id_len, name, NULL, &h);
                } else if (s->cluster && !free_slot(s)) {
                    /* full: refused before claiming, so no owner key comes and goes */
                    ingest_error(s, id, id_len, "TOO_MANY_STREAMS", name, "max_streams streams are already running");
                } else if (s->cluster && s->cfg->checkpoint_s > 0 && (h.seq != 0 || h.first_sample != 0) &&
                           !(ckpt = calloc(1, sizeof *ckpt))) {
                    /* only a replay (a first message past sample 0) reads the stream's checkpoint: a
                     * stream pushed from sample 0 starts afresh whatever an earlier stream of that
                     * name left in etcd (its checkpoints replace the old ones) */
                    ingest_error(s, id, id_len, "INTERNAL", name, "out of memory");
                } else if (s->cluster && !cluster_admits(s, id, id_len, name, ckpt)) {
                    /* refused: another member's stream, or etcd unavailable */
                } else if (!(st = ssmd_srv_stream_open(s, name, &ssmd_source_push, (int)h.sample_rate_hz, true, true,
                                                     err, sizeof err))) {
                    ingest_error(s, id, id_len, strcmp(err, "TOO_MANY_STREAMS") == 0 ? "TOO_MANY_STREAMS" : "INTERNAL",
                                 name, "%s", strcmp(err, "TOO_MANY_STREAMS") == 0
                                                 ? "max_streams streams are already running" : err);
                    if (s->cluster) ssmd_cluster_release(s->cluster, name);
                } else {
                    st->claimed = s->cluster != NULL;
                    void *reply = ssmd_sink_reply_create();
                    if (!reply) {
                        ingest_error(s, id, id_len, "INTERNAL", name, "out of memory for the stream's replies");
                        st->ended = true;
                        st = NULL;
                    } else {
                        memcpy(st->owner, id, id_len);
                        st->owner_len = id_len;
                        ssmd_srv_stream_attach(st, &ssmd_sink_reply, reply);
                        if (st->claimed && ckpt) /* a replay: the stream goes on from its checkpoint */
                            ssmd_srv_checkpoint_resume(s, st, ckpt);
                        if (st->claimed && s->cfg->checkpoint_s > 0) {
                            ssmd_srv_checkpoint_arm(s, st);
                            if (st->resumed || st->resume_error[0]) ssmd_pub_meta(s, st); /* says so */
                        }
                        if (!st->resumed && (h.seq != 0 || h.first_sample != 0)) {
                            /* a replay with nothing to resume from: processing it from here would
                             * leave out the samples before it, so it is refused and the stream
                             * closed (the client pushes again from sample 0) */
                            s->c.push_discontinuities++;
                            ingest_error(s, id, id_len, "DISCONTINUITY", name,
                                         "stream '%s': message seq %llu, first_sample %llu does not start the "
                                         "stream and there is no checkpoint to resume from%s%s (expected seq 0, "
                                         "first_sample 0); refused, nothing of it processed: push from sample 0",
                                         name, (unsigned long long)h.seq, (unsigned long long)h.first_sample,
                                         st->resume_error[0] ? ": " : "", st->resume_error);
                            st->eos = true;
                            st->ended = true;
                            st = NULL;
                        }
                        /* tells the client the cap it splits at (and where it resumed) */
                        else if (ssmd_reply_meta(s, st) == EAGAIN) {
                            refuse_full_client(s, name, id, id_len, h.rows);
                            ssmd_srv_event(s, st, "error", "the client does not read its results (its queue "
                                           "is full); message refused");
                            st->eos = true;
                            st->ended = true;
                            st = NULL;
                        }
                    }
                }
            }
            ssmd_cluster_found_clear(ckpt);
            free(ckpt);
            if (st) st->t_last_in = ssmd_now_s(); /* its client is there, even when refused below */
            if (st && st->resumed && !resumed_input(s, st, id, id_len, &h, &row0)) st = NULL;
            if (st) {
                st->push_seq_next = h.seq + 1;
                st->push_sample_next = h.first_sample + h.rows;
                st->push_broken = false;
                st->push_accepted = true;
                if (h.rows > 0) st->push_cols = h.cols;
                if (h.flags & SSMD_FLAG_FOLLOWS) st->client_follows = true; /* it may be handed over */
                if (!push_rows(s, st, zmq_msg_data(&f[k + 2]), &h, row0)) { /* held: park the rest */
                    zmq_msg_init(&s->push.payload);
                    zmq_msg_move(&s->push.payload, &f[k + 2]);
                    s->push.parked = true;
                    snprintf(s->push.name, sizeof s->push.name, "%s", st->name);
                    s->push.h = h;
                }
            }
        }
        ssmd_transport_frames_close(f, n);
    }
}


/* Gives up a held stream (its client has not read its results for
 * push_idle_s, or the daemon stops): it ends now; the pushed samples whose
 * results were not delivered (pending, inside the pipeline, the result kept
 * by the reply sink, the parked rest of a message) are discarded, counted,
 * logged and published as an error event. */
static void give_up_held(ssmd_srv *s, ssmd_srv_stream *st, const char *why)
{
    size_t kept = 0;
    for (int k = 0; k < st->n_sinks; k++)
        if (st->sinks[k].ops == &ssmd_sink_reply) kept = ssmd_sink_reply_held_samples(st->sinks[k].self);
    /* aligned push streams give out as many samples as they took in */
    uint64_t lost = (st->in_samples > st->out_samples ? st->in_samples - st->out_samples : 0) + kept;
    if (s->push.parked && strcmp(s->push.name, st->name) == 0) {
        lost += s->push.h.rows - s->push.row;
        zmq_msg_close(&s->push.payload);
        s->push.parked = false;
    }
    s->c.push_lost_samples += lost;
    if (kept) s->c.replies_dropped++;
    char reason[256];
    snprintf(reason, sizeof reason, "%s; stream ended, the results of %llu pushed samples not delivered",
             why, (unsigned long long)lost);
    ssmd_log(SSMD_LOG_WARN, "stream %s: %s", st->name, reason);
    ssmd_srv_event(s, st, "error", reason);
    st->pend_pos = st->pend_len = 0;
    st->eos = true;
    st->held = false;
    st->ended = true;
}

/* A push stream whose client sent nothing for push_idle_s seconds (it
 * crashed or forgot end-of-stream) is ended as if it had sent end-of-stream,
 * so abandoned streams cannot hold the slots.  A stream held that long
 * because its client reads no results is given up (it would otherwise stop
 * the ingest socket for every client); at shutdown, at once. */
static void expire_idle_pushes(ssmd_srv *s, bool stopping)
{
    double t = ssmd_now_s();
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || st->src != &ssmd_source_push || st->ended) continue;
        if (st->held && (stopping || t - st->t_held > (double)s->cfg->push_idle_s)) {
            char why[128];
            if (stopping) snprintf(why, sizeof why, "the daemon is stopping and the client did not read its results");
            else snprintf(why, sizeof why, "the client did not read its results for %ld s (push_idle_s)",
                          s->cfg->push_idle_s);
            give_up_held(s, st, why);
            continue;
        }
        if (st->held || (s->push.parked && strcmp(s->push.name, st->name) == 0)) continue;
        if (!st->eos && t - st->t_last_in > (double)s->cfg->push_idle_s) {
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
    else resume_parked(s);
    expire_idle_pushes(s, stopping);
    return 0;
}

/* A parked rest that can go in next iteration: poll without waiting. */
static int push_poll_ms(const ssmd_srv *s)
{
    if (!s->push.parked) return SSMD_POLL_MS;
    const ssmd_srv_stream *st = ssmd_srv_stream_find((ssmd_srv *)s, s->push.name);
    return st && st->held ? SSMD_POLL_MS : 0;
}

const ssmd_source_ops ssmd_source_push = { .name = "push", .pull = push_pull, .poll_ms = push_poll_ms };
