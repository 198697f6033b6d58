/* SPDX-License-Identifier: MIT */
/* libFuzzer target for control requests through the real handler: bytes
 * become the frames of one request on the control ROUTER of a running daemon
 * (daemon_harness.h), parsed by jansson and dispatched through control.c's
 * name → handler table, with a push stream "a" open so that reset, snapshot
 * and restore reach the model state.
 *
 * Input: byte 0 chooses the frame layout, bytes 1–2 a split position (LE),
 * the rest is the request text:
 *   bit 0  an empty delimiter frame first (REQ-style client)
 *   bit 2  text[pos:] goes as a second raw frame (restore's snapshot frame)
 *   bit 4  a valid snapshot of "a", with text[pos:] XOR'd into its start, as
 *          the second frame (corrupt and mismatching snapshots)
 *   bit 5  ...and that snapshot cut short by len(text[pos:]) bytes
 *   bit 6  two more empty frames (too many frames)
 * Invariants: exactly one reply per request, within 30 s; the reply is a JSON
 * object with "ok" (bool) and "version": 1; a failure carries "error" and
 * "message" strings; only a successful reply may carry a second frame; the
 * daemon keeps answering (a "stop" restarts it and the harness re-opens "a"). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zmq.h>

#include "daemon_harness.h"
#include "ssmd/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *ctl, *ing;
static uint8_t *snap;
static size_t snap_len;
static unsigned gen;

/* Opens push stream "a" (0.5 s of a 440 Hz-ish ramp at 16 kHz, no end of
 * stream) and takes a snapshot of its state for the restore paths. */
static void open_stream_a(void)
{
    enum { N = 8000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)((i * 37) % 200 - 100) / 400.0f;
    ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .sample_rate_hz = 16000, .rows = N,
                      .cols = 1 };
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, &h);
    ssmd_fuzz_send(ing, "a/audio/", 8, ZMQ_SNDMORE);
    ssmd_fuzz_send(ing, hb, sizeof hb, ZMQ_SNDMORE);
    ssmd_fuzz_send(ing, x, sizeof x, 0);
    const void *f[1] = { "{\"version\":1,\"cmd\":\"snapshot\",\"stream\":\"a\"}" };
    size_t len[1] = { strlen(f[0]) };
    for (int tries = 0; tries < 200; tries++) {
        /* a snapshot request, raw, to get the second frame */
        ssmd_fuzz_send(ctl, f[0], len[0], 0);
        if (ssmd_fuzz_poll_in(ctl, 1000) <= 0) abort();
        zmq_msg_t m;
        int got = 0;
        for (int more = 1; more;) {
            zmq_msg_init(&m);
            ssmd_fuzz_recv(ctl, &m);
            if (got == 1) {
                free(snap);
                snap_len = zmq_msg_size(&m);
                snap = malloc(snap_len);
                memcpy(snap, zmq_msg_data(&m), snap_len);
            }
            got++;
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (got == 2) return;
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL); /* the push has not arrived yet: NO_SUCH_STREAM */
    }
    fprintf(stderr, "fuzz_control: stream 'a' did not open\n");
    abort();
}

static void setup(void)
{
    if (ctl) return;
    ssmd_fuzz_daemon_start(86400);
    ctl = ssmd_fuzz_connect("control");
    ing = ssmd_fuzz_connect("ingest");
    open_stream_a();
    gen = ssmd_fuzz_daemon_generation();
}

/* After a "stop": wait for the next daemon, reconnect, re-open "a". */
static void restart(void)
{
    for (int i = 0; i < 500 && ssmd_fuzz_daemon_generation() == gen; i++) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    if (ssmd_fuzz_daemon_generation() == gen) {
        fprintf(stderr, "fuzz_control: the daemon did not stop after 'stop'\n");
        abort();
    }
    ssmd_fuzz_close(ctl);
    ssmd_fuzz_close(ing);
    ctl = ssmd_fuzz_connect("control");
    ing = ssmd_fuzz_connect("ingest");
    char reply[256];
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ok = ssmd_fuzz_control_text(ctl, "{\"version\":1,\"cmd\":\"status\"}", reply, sizeof reply, 100) == 0;
        if (!ok) { /* a late reply must not answer the next request */
            ssmd_fuzz_close(ctl);
            ctl = ssmd_fuzz_connect("control");
        }
    }
    if (!ok) abort();
    open_stream_a();
    gen = ssmd_fuzz_daemon_generation();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    setup();
    unsigned mode = data[0];
    size_t pos = (size_t)(data[1] | data[2] << 8);
    const uint8_t *text = data + 3;
    size_t len = size - 3;
    if (pos > len || !(mode & 0x14)) pos = len;
    const void *f[6];
    size_t fl[6];
    int n = 0, delim = mode & 1;
    uint8_t *mine = NULL;
    if (delim) { f[n] = ""; fl[n++] = 0; }
    f[n] = text; fl[n++] = pos;
    if (mode & 0x10) {
        size_t raw = len - pos, cut = (mode & 0x20) ? (raw < snap_len ? raw : snap_len) : 0;
        mine = malloc(snap_len + 1);
        memcpy(mine, snap, snap_len);
        for (size_t i = 0; i < raw && i < snap_len; i++) mine[i] ^= text[pos + i];
        f[n] = mine; fl[n++] = snap_len - cut;
    } else if (mode & 0x04) {
        f[n] = text + pos; fl[n++] = len - pos;
    }
    if (mode & 0x40) {
        f[n] = ""; fl[n++] = 0;
        f[n] = ""; fl[n++] = 0;
    }
    delim = fl[0] == 0; /* the daemon takes any empty first frame for a REQ delimiter */
    static char reply[1 << 16];
    int n_reply = 0;
    if (ssmd_fuzz_control(ctl, n, f, fl, reply, sizeof reply, &n_reply, 30000) != 0) {
        fprintf(stderr, "fuzz_control: no reply within 30 s\n");
        __builtin_trap();
    }
    free(mine);
    json_error_t je;
    json_t *r = json_loads(reply, 0, &je);
    json_t *okv = json_object_get(r, "ok"), *ver = json_object_get(r, "version");
    if (!json_is_object(r) || !json_is_boolean(okv) || json_integer_value(ver) != 1) {
        fprintf(stderr, "fuzz_control: bad reply: %s\n", reply);
        __builtin_trap();
    }
    int replies = n_reply - delim;
    if ((json_is_false(okv) && (!json_is_string(json_object_get(r, "error")) ||
                                !json_is_string(json_object_get(r, "message")) || replies != 1)) ||
        replies < 1 || replies > 2) {
        fprintf(stderr, "fuzz_control: %d reply frames (delimiter %d): %s\n", n_reply, delim, reply);
        __builtin_trap();
    }
    bool ok = json_is_true(okv);
    json_decref(r);
    if (ok) {
        /* the daemon parsed the same text; a successful "stop" ends its run */
        json_t *q = json_loadb((const char *)text, pos, JSON_REJECT_DUPLICATES, &je);
        const char *cmd = json_string_value(json_object_get(q, "cmd"));
        bool stopped = cmd && strcmp(cmd, "stop") == 0;
        json_decref(q);
        if (stopped) restart();
    }
    return 0;
}
