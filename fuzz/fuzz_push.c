/* SPDX-License-Identifier: MIT */
/* libFuzzer target for pushed audio through the real stream path: bytes
 * become up to 8 messages on the ingest ROUTER of a running daemon
 * (daemon_harness.h), where the push source validates topic, header and
 * payload, opens streams (max_streams 4, so TOO_MANY_STREAMS is reachable),
 * downmixes, resamples to the model's rate and the engine steps the model.
 *
 * Input: messages, each one byte (low nibble: frames − 1, at most 10) then,
 * per frame, a 2-byte LE length and that many bytes (cut at the input's end).
 * Each message is followed by a 12-frame sentinel, which the daemon answers
 * with a BAD_FRAMES error after the message (one pipe keeps order; the rest
 * of a message that does not fit its stream's pending input is parked and
 * goes in before the socket is read again), so the harness knows which
 * messages were refused (an error event before the sentinel's) and counts,
 * independently of the daemon's counters, the rows of every accepted message
 * per stream.  The sentinel's answer does not say the engine has stepped the
 * message: that happens in later phases and iterations.  Then it ends every
 * stream still open with an end-of-stream message (a stream whose
 * end-of-stream was accepted may still be listed, ending) and waits until
 * none is left, so each input starts from an idle daemon.
 * Invariants: every message the daemon sends back is a valid
 * [topic][header][payload] (a stream's meta, JSON, comes first; error events
 * are JSON with "event": "error" and an "error" code); a stream's returned
 * audio is contiguous (first_sample)
 * and each stream (from its first accepted message to end-of-stream) returns
 * exactly as many samples as its accepted messages carried: nothing pushed
 * is lost; streams end within 10 s of end-of-stream.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zmq.h>

#include "daemon_harness.h"
#include "ssmd/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_MESSAGES = 8, MAX_FRAMES = 10, SENTINEL_FRAMES = 12, MAX_NAMES = 32 };

static void *ctl, *ing;

/* Per stream name, for this input: what the accepted messages carried and
 * what came back, one total per stream (a name is reused after its stream
 * ended). */
static struct track {
    char name[SSMD_STREAM_NAME_MAX + 1];
    uint64_t sent, next;            /* rows of the open stream: accepted, returned */
    uint64_t seq;                   /* messages of the open stream accepted: the next one's seq */
    bool open;                      /* accepted input since the last end-of-stream */
    uint64_t sent_done[MAX_MESSAGES + 1], ret_done[MAX_MESSAGES + 1];
    int n_sent_done, n_ret_done;
} tracks[MAX_NAMES];
static int n_tracks;

static struct track *track_of(const char *name)
{
    for (int i = 0; i < n_tracks; i++)
        if (strcmp(tracks[i].name, name) == 0) return &tracks[i];
    if (n_tracks == MAX_NAMES) abort(); /* at most 8 messages an input */
    struct track *t = &tracks[n_tracks++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_push: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    __builtin_trap();
}

/* Reads one message from the ingest socket and checks it; returns 1 when it
 * is the sentinel's error, 2 for another error, 0 otherwise. */
static int take_reply(void)
{
    zmq_msg_t f[4];
    int n = 0;
    for (int more = 1; more;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        ssmd_fuzz_recv(ing, &m);
        more = zmq_msg_more(&m);
        if (n < 4) f[n++] = m;
        else { zmq_msg_close(&m); n = 5; }
    }
    if (n != 3) fail("a reply without 3 frames", NULL);
    char name[SSMD_STREAM_NAME_MAX + 1];
    uint16_t kind;
    ssmd_header h;
    if (ssmd_topic_parse(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), name, &kind) != SSMD_PROTO_OK)
        fail("a reply with a bad topic", NULL);
    if (ssmd_header_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), zmq_msg_size(&f[2]), 0, &h) != SSMD_PROTO_OK ||
        h.kind != kind)
        fail("a reply with a bad header", name);
    int what = 0;
    if (kind == SSMD_KIND_EVENT) {
        json_error_t je;
        json_t *e = json_loadb(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), 0, &je);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (!ev || !msg) fail("an event without event/message", NULL);
        if (strcmp(ev, "error") == 0) {
            if (!json_is_string(json_object_get(e, "error"))) fail("an error event without a code", NULL);
            /* the sentinel's answer: BAD_FRAMES for its 12 frames (the messages the harness sends
             * have at most MAX_FRAMES); other errors may quote the client's bytes (a topic with
             * "got 12" in it), so the code must match too */
            what = strcmp(json_string_value(json_object_get(e, "error")), "BAD_FRAMES") == 0 &&
                           strstr(msg, "got 12") != NULL ? 1 : 2;
        }
        json_decref(e);
    } else if (kind == SSMD_KIND_AUDIO) {
        if (h.dtype != SSMD_DTYPE_F32 || h.cols != 1) fail("reply audio not mono f32", name);
        struct track *t = track_of(name);
        if (h.first_sample != t->next) {
            char d[160];
            snprintf(d, sizeof d, "%s: first_sample %llu, expected %llu", name,
                     (unsigned long long)h.first_sample, (unsigned long long)t->next);
            fail("reply audio not contiguous", d);
        }
        const uint8_t *p = zmq_msg_data(&f[2]);
        for (uint32_t i = 0; i < h.rows; i++) {
            float v;
            memcpy(&v, p + 4 * (size_t)i, 4);
            if (v != v) fail("NaN in reply audio", name);
        }
        t->next += h.rows;
        if (h.flags & SSMD_FLAG_END_OF_STREAM) {
            if (t->n_ret_done == MAX_MESSAGES + 1) fail("more streams ended than were opened", name);
            t->ret_done[t->n_ret_done++] = t->next;
            t->next = 0;
        }
    } else if (kind == SSMD_KIND_META) { /* a stream's first reply: its meta, JSON */
        json_error_t je;
        json_t *m = json_loadb(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), 0, &je);
        if (!json_is_object(m)) fail("a meta reply that is not a JSON object", name);
        json_decref(m);
    } else {
        fail("a reply that is neither meta, audio nor event", name);
    }
    for (int i = 0; i < (n < 4 ? n : 4); i++) zmq_msg_close(&f[i]);
    return what;
}

static json_t *control(const char *req)
{
    static char reply[1 << 16];
    if (ssmd_fuzz_control_text(ctl, req, reply, sizeof reply, 60000) != 0) fail("control: no reply in 60 s", req);
    json_error_t je;
    json_t *r = json_loads(reply, 0, &je);
    if (!json_is_true(json_object_get(r, "ok"))) fail("control request failed", reply);
    return r;
}

static void send_sentinel(void)
{
    for (int k = 0; k < SENTINEL_FRAMES; k++) ssmd_fuzz_send(ing, "x", 1, k + 1 < SENTINEL_FRAMES ? ZMQ_SNDMORE : 0);
}

/* Waits for the sentinel's answer; returns true when another error came
 * before it (the message before the sentinel was refused). */
static bool refused(void)
{
    bool err = false;
    for (;;) {
        if (ssmd_fuzz_poll_in(ing, 60000) <= 0) {
            /* is the loop stuck, or only slow? */
            static char st[4096];
            if (ssmd_fuzz_control_text(ctl, "{\"version\":1,\"cmd\":\"status\"}", st, sizeof st, 2000) != 0)
                snprintf(st, sizeof st, "no answer to streams either: the daemon's loop is stuck");
            fail("no answer to the sentinel within 60 s", st);
        }
        int w = take_reply();
        if (w == 1) return err;
        err |= w == 2;
    }
}

/* An accepted message: its stream and rows, as the protocol reads them. */
static void count_accepted(const uint8_t *const *fr, const size_t *len, int n)
{
    int k = (n > 1 && len[0] == 0) ? 1 : 0; /* REQ-style empty delimiter */
    char name[SSMD_STREAM_NAME_MAX + 1];
    uint16_t kind;
    ssmd_header h;
    if (n - k != 3 || ssmd_topic_parse((const char *)fr[k], len[k], name, &kind) != SSMD_PROTO_OK ||
        ssmd_header_decode(fr[k + 1], len[k + 1], len[k + 2], 0, &h) != SSMD_PROTO_OK)
        fail("the daemon accepted a malformed message", NULL);
    struct track *t = track_of(name);
    t->sent += h.rows;
    t->seq++;
    t->open = true;
    if (h.flags & SSMD_FLAG_END_OF_STREAM) {
        t->sent_done[t->n_sent_done++] = t->sent;
        t->sent = 0;
        t->seq = 0;
        t->open = false;
    }
}

static void send_eos(const char *name, uint32_t rate)
{
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, name, SSMD_KIND_AUDIO);
    struct track *t = track_of(name);
    /* the stream's next message: the ingest takes contiguous messages only (seq, first_sample) */
    ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .sample_rate_hz = rate, .rows = 0,
                      .cols = 1, .flags = SSMD_FLAG_END_OF_STREAM, .seq = t->seq, .first_sample = t->sent };
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, &h);
    ssmd_fuzz_send(ing, topic, strlen(topic), ZMQ_SNDMORE);
    ssmd_fuzz_send(ing, hb, sizeof hb, ZMQ_SNDMORE);
    ssmd_fuzz_send(ing, "", 0, 0);
    send_sentinel();
    if (refused()) fail("the harness's end-of-stream was refused", name);
    t->sent_done[t->n_sent_done++] = t->sent;
    t->sent = 0;
    t->seq = 0;
    t->open = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctl) {
        ssmd_fuzz_daemon_start(86400);
        ctl = ssmd_fuzz_connect("control");
        ing = ssmd_fuzz_connect("ingest");
    }
    n_tracks = 0;
    size_t pos = 0;
    for (int m = 0; m < MAX_MESSAGES && pos < size; m++) {
        /* low 4 bits: frames; bit 4: make a valid header's seq and first_sample continue its
         * stream (random ones are refused as discontinuous and reach no further) */
        bool contiguous = (data[pos] & 16) != 0;
        int frames = (data[pos++] & 15) + 1;
        if (frames > MAX_FRAMES) frames = MAX_FRAMES;
        const uint8_t *fr[MAX_FRAMES];
        size_t len[MAX_FRAMES];
        uint8_t hb[SSMD_HEADER_BYTES];
        for (int k = 0; k < frames; k++) {
            len[k] = 0;
            if (pos + 2 <= size) {
                len[k] = (size_t)(data[pos] | data[pos + 1] << 8);
                pos += 2;
            } else {
                pos = size;
            }
            if (len[k] > size - pos) len[k] = size - pos;
            fr[k] = data + pos;
            pos += len[k];
        }
        char cname[SSMD_STREAM_NAME_MAX + 1];
        uint16_t ckind;
        ssmd_header ch;
        if (contiguous && frames == 3 && len[1] == SSMD_HEADER_BYTES &&
            ssmd_topic_parse((const char *)fr[0], len[0], cname, &ckind) == SSMD_PROTO_OK &&
            ssmd_header_decode(fr[1], len[1], len[2], 0, &ch) == SSMD_PROTO_OK) {
            struct track *t = track_of(cname);
            ch.seq = t->seq;
            ch.first_sample = t->sent;
            ssmd_header_encode(hb, &ch);
            fr[1] = hb;
        }
        for (int k = 0; k < frames; k++)
            ssmd_fuzz_send(ing, fr[k], len[k], k + 1 < frames ? ZMQ_SNDMORE : 0);
        send_sentinel();
        if (!refused()) count_accepted(fr, len, frames);
    }

    /* end every stream still open (the daemon's list must match ours).  A
     * stream whose end-of-stream was accepted may still be listed: the
     * sentinel's answer only says the message went into the stream's
     * pending input (source_push.c); the engine steps what is pending over
     * the next iterations (SSMD_ENGINE_BUDGET_MS) and control requests are
     * answered between the loop's phases (server.c), so the stream ends and
     * is reaped after the harness asks.  Such a stream must be one whose
     * end the harness has not read yet (an end read came before the last
     * sentinel's answer, so from an earlier iteration, which reaped it); it
     * is waited for below like the others.  The list is checked whole
     * before any end-of-stream is sent: waiting for one reads the others'
     * ends. */
    json_t *r = control("{\"version\":1,\"cmd\":\"streams\"}");
    size_t i;
    json_t *s;
    bool to_end[MAX_NAMES] = { false };
    json_array_foreach(json_object_get(r, "streams"), i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        struct track *t = name ? track_of(name) : NULL;
        if (t && !t->open && t->n_sent_done > t->n_ret_done) continue; /* ending */
        if (!t || !t->open) fail("streams lists a stream the harness did not leave open", name);
        to_end[t - tracks] = true;
    }
    json_array_foreach(json_object_get(r, "streams"), i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (name && to_end[track_of(name) - tracks])
            send_eos(name, (uint32_t)json_integer_value(json_object_get(s, "sample_rate_hz")));
    }
    json_decref(r);
    for (int k = 0; k < n_tracks; k++)
        if (tracks[k].open) fail("a stream the harness left open is not listed", tracks[k].name);
    /* wait for every stream's end-of-stream and compare */
    for (int waited = 0;; waited++) {
        int missing = 0;
        for (int k = 0; k < n_tracks; k++) missing += tracks[k].n_sent_done - tracks[k].n_ret_done;
        if (missing == 0) break;
        if (waited > 500) fail("a stream did not end within 10 s of end-of-stream", NULL);
        if (ssmd_fuzz_poll_in(ing, 20) > 0) take_reply();
    }
    for (int k = 0; k < n_tracks; k++) {
        struct track *t = &tracks[k];
        for (int j = 0; j < t->n_sent_done; j++)
            if (t->ret_done[j] != t->sent_done[j]) {
                char d[200];
                snprintf(d, sizeof d, "%s: %llu samples accepted, %llu returned", t->name,
                         (unsigned long long)t->sent_done[j], (unsigned long long)t->ret_done[j]);
                fail("pushed audio lost", d);
            }
    }
    /* the daemon reaps ended streams in the iteration that ends them */
    for (int tries = 0;; tries++) {
        r = control("{\"version\":1,\"cmd\":\"streams\"}");
        size_t left = json_array_size(json_object_get(r, "streams"));
        json_decref(r);
        if (left == 0) break;
        if (tries > 500) fail("ended streams are not reaped", NULL);
        if (ssmd_fuzz_poll_in(ing, 20) > 0) take_reply();
    }
    while (ssmd_fuzz_poll_in(ing, 0) > 0) take_reply();
    return 0;
}
