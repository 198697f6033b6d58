/* SPDX-License-Identifier: MIT */
/* Transport (transport.h): socket set-up, CURVE/ZAP, caps and framing. */
#include "transport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Sends [topic][header][payload] on sock (to identity first when given).
 * Never blocks: a full queue drops the message; returns 0 sent, -1 dropped. */
int ssmd_transport_send(void *sock, const uint8_t *identity, size_t id_len, const char *topic,
                        const ssmd_header *h, const void *payload, size_t bytes)
{
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, h);
    if (identity && zmq_send(sock, identity, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, payload, bytes, ZMQ_DONTWAIT) < 0) return -1;
    return 0;
}

/* Receives every frame of one message (up to 8 kept); returns the count, or
 * -1 when nothing was waiting.  A signal (SIGHUP's reload) can interrupt
 * zmq_msg_recv with EINTR even between the frames of a message that has
 * arrived whole (libzmq checks its command mailbox every 100 frames with an
 * interruptible poll); the rest of the message is then asked for again, or
 * the next read would start inside it and take its header for an identity
 * (tests/daemon/test_transport_eintr.c). */
int ssmd_transport_recv(void *sock, zmq_msg_t *frames, int *n_total)
{
    int n = 0, total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            if (total > 0 && zmq_errno() == EINTR) continue;
            *n_total = total;
            return total == 0 ? -1 : n;
        }
        int more = zmq_msg_more(&m);
        if (n < SSMD_TRANSPORT_MAX_FRAMES) frames[n++] = m;
        else zmq_msg_close(&m);
        total++;
        if (!more) break;
    }
    *n_total = total;
    return n;
}

void ssmd_transport_frames_close(zmq_msg_t *frames, int n)
{
    for (int i = 0; i < n; i++) zmq_msg_close(&frames[i]);
}


static bool endpoint_is_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0) return true;
    return strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

static void *open_socket(ssmd_transport *t, const ssmd_config *cfg, int type, const char *key, const char *ep)
{
    void *sock = zmq_socket(t->ctx, type);
    int linger = 200, hwm = (int)cfg->pub_hwm, one = 1;
    /* ingest: at most ingest_max_payload (+ 4 KiB for topic and header) bytes a frame and SSMD_INGEST_HWM messages
     * queued per client, so a flooding client costs bounded memory; control
     * requests are small (snapshots are state-sized) */
    int64_t maxmsg = type == ZMQ_ROUTER && strcmp(key, "ingest") == 0 ? (int64_t)cfg->ingest_max_payload + 4096
                                                                      : SSMD_CONTROL_MAX_MSG;
    int rcvhwm = SSMD_INGEST_HWM;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    /* the control socket's connections have an I/O thread of their own */
    uint64_t affinity = strcmp(key, "control") == 0 ? SSMD_TRANSPORT_CONTROL_AFFINITY : SSMD_TRANSPORT_DATA_AFFINITY;
    zmq_setsockopt(sock, ZMQ_AFFINITY, &affinity, sizeof affinity);
    if (type == ZMQ_XPUB) {
        /* what a subscriber sends are subscriptions (topic prefixes of a few dozen
         * bytes): a larger message drops that subscriber instead of being buffered */
        int64_t max_sub = SSMD_SUBSCRIPTION_MAX_MSG;
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sock, ZMQ_XPUB_VERBOSE, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_sub, sizeof max_sub);
        /* without a fixed send buffer the kernel autotunes it up to megabytes
         * (tcp_wmem), which holds a slow subscriber's backlog beyond pub_hwm:
         * its data aged without bound instead of being dropped (docs/protocol.md) */
        if (cfg->pub_sndbuf > 0) {
            int sndbuf = (int)cfg->pub_sndbuf;
            zmq_setsockopt(sock, ZMQ_SNDBUF, &sndbuf, sizeof sndbuf);
        }
    } else {
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
        /* a result for a client whose queue is full fails with EAGAIN instead of
         * vanishing, so the stream is held until it drains (sink_reply.c) */
        if (strcmp(key, "ingest") == 0) {
            int sndhwm = SSMD_REPLY_HWM;
            zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
            zmq_setsockopt(sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
        }
    }
    if (t->curve_secret[0]) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, t->curve_secret, 40);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "ssmd", 4);
    }
    if (zmq_bind(sock, ep) != 0) {
        fprintf(stderr, "ssmd: %s: cannot bind %s: %s\n", key, ep, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    char last[4096 + 16];
    size_t len = sizeof last;
    struct stat sb;
    if (strncmp(ep, "ipc://", 6) == 0 && t->n_ipc < 3 && zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &len) == 0 &&
        strncmp(last, "ipc://", 6) == 0 && strlen(last + 6) < sizeof t->ipc[0].path && last[6] != '@' &&
        stat(last + 6, &sb) == 0) {
        snprintf(t->ipc[t->n_ipc].path, sizeof t->ipc[0].path, "%s", last + 6);
        t->ipc[t->n_ipc].dev = sb.st_dev;
        t->ipc[t->n_ipc].ino = sb.st_ino;
        t->n_ipc++;
    }
    return sock;
}

/* Reads a file holding one Z85 key (40 characters) per line; a line whose
 * first non-blank character is '#' is a comment ('#' is a Z85 digit, so not
 * within a line).  Returns the number of keys (decoded into out when not NULL), or
 * -1 with err set. */
static long read_z85_keys(const char *path, uint8_t (*out)[32], size_t cap, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    long n = 0;
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '#') continue;
        char *e = p + strcspn(p, "\r\n");
        while (e > p && isspace((unsigned char)e[-1])) e--;
        *e = '\0';
        if (*p == '\0') continue;
        uint8_t key[32];
        if (e - p != 40 || !zmq_z85_decode(key, p)) {
            snprintf(err, errcap, "%s:%d: not a Z85 CURVE key (40 characters)", path, lineno);
            fclose(f);
            return -1;
        }
        if (out && (size_t)n < cap) memcpy(out[n], key, 32);
        n++;
    }
    fclose(f);
    return n;
}

/* CURVE: the server key and the ZAP allowlist (RFC 27) of client keys. */
static int setup_curve(ssmd_transport *t, const ssmd_config *c)
{
    char err[512];
    uint8_t secret[1][32];
    if (read_z85_keys(c->curve_secret_file, secret, 1, err, sizeof err) != 1) {
        fprintf(stderr, "ssmd: curve_secret_file: %s\n",
                err[0] ? err : "the file must hold exactly one key");
        return -1;
    }
    zmq_z85_encode(t->curve_secret, secret[0], 32);
    if (!c->curve_allow_file[0]) {
        fprintf(stderr, "ssmd: curve_allow_file: required with curve_secret_file (the client keys "
                        "allowed to connect)\n");
        return -1;
    }
    long n = read_z85_keys(c->curve_allow_file, NULL, 0, err, sizeof err);
    if (n < 0 || (n > 0 && !(t->allow = malloc((size_t)n * 32)))) {
        fprintf(stderr, "ssmd: curve_allow_file: %s\n", n < 0 ? err : "out of memory");
        return -1;
    }
    t->n_allow = (size_t)read_z85_keys(c->curve_allow_file, t->allow, (size_t)n, err, sizeof err);
    t->zap = zmq_socket(t->ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(t->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(t->zap, "inproc://zeromq.zap.01") != 0) {
        fprintf(stderr, "ssmd: ZAP handler: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* Answers ZAP requests: CURVE clients whose public key is in the allowlist
 * are admitted, everything else is refused (and counted). */
void ssmd_transport_handle_zap(ssmd_transport *t)
{
    if (!t->zap) return;
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
    while ((n = ssmd_transport_recv(t->zap, f, &total)) >= 0) {
        bool ok = false;
        if (n >= 7 && total == 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
            zmq_msg_size(&f[6]) == 32) {
            for (size_t i = 0; i < t->n_allow && !ok; i++) ok = memcmp(t->allow[i], zmq_msg_data(&f[6]), 32) == 0;
        }
        if (ok) t->zap_allowed++;
        else {
            t->zap_denied++;
            ssmd_log(SSMD_LOG_INFO, "refused a client: %s", total == 7 ? "public key not in curve_allow_file"
                                                                  : "malformed ZAP request");
        }
        const char *status = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
        zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2) zmq_send(t->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        else zmq_send(t->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(t->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(t->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(t->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(t->zap, "", 0, 0);
        ssmd_transport_frames_close(f, n);
    }
}

int ssmd_transport_open(ssmd_transport *t, const ssmd_config *c)
{
    const char *keys[3] = { "pub", "ingest", "control" }, *eps[3] = { c->pub, c->ingest, c->control };
    bool curve = c->curve_secret_file[0] != '\0';
    for (int i = 0; i < 3; i++) {
        if (!endpoint_is_local(eps[i]) && !curve && !c->allow_insecure_remote) {
            fprintf(stderr, "ssmd: %s: %s is not a loopback address; remote access needs CURVE "
                            "(--curve-secret-file and --curve-allow-file) or --allow-insecure-remote\n",
                    keys[i], eps[i]);
            return -1;
        }
    }
    t->ctx = zmq_ctx_new();
    if (t->ctx) zmq_ctx_set(t->ctx, ZMQ_IO_THREADS, SSMD_TRANSPORT_IO_THREADS);
    if (curve && setup_curve(t, c) != 0) return -1;
    if (!(t->pub = open_socket(t, c, ZMQ_XPUB, "pub", c->pub)) ||
        !(t->ingest = open_socket(t, c, ZMQ_ROUTER, "ingest", c->ingest)) ||
        !(t->control = open_socket(t, c, ZMQ_ROUTER, "control", c->control)))
        return -1;
    /* the relay: unbounded queues, as its traffic is bounded by the requests
     * in flight (control.c) */
    char name[64];
    int zero = 0;
    snprintf(name, sizeof name, "inproc://ssmd-control-relay-%p", (void *)t);
    t->relay_loop = zmq_socket(t->ctx, ZMQ_PAIR);
    t->relay_front = zmq_socket(t->ctx, ZMQ_PAIR);
    void *ends[2] = { t->relay_loop, t->relay_front };
    for (int i = 0; i < 2; i++)
        if (!ends[i] || zmq_setsockopt(ends[i], ZMQ_SNDHWM, &zero, sizeof zero) != 0 ||
            zmq_setsockopt(ends[i], ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
            zmq_setsockopt(ends[i], ZMQ_LINGER, &zero, sizeof zero) != 0) {
            fprintf(stderr, "ssmd: control relay: %s\n", zmq_strerror(zmq_errno()));
            return -1;
        }
    if (zmq_bind(t->relay_loop, name) != 0 || zmq_connect(t->relay_front, name) != 0) {
        fprintf(stderr, "ssmd: control relay: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

void ssmd_transport_close(ssmd_transport *t)
{
    if (t->pub) zmq_close(t->pub);
    if (t->ingest) zmq_close(t->ingest);
    if (t->control) zmq_close(t->control);
    if (t->zap) zmq_close(t->zap);
    if (t->relay_loop) zmq_close(t->relay_loop);
    if (t->relay_front) zmq_close(t->relay_front);
    if (t->ctx) zmq_ctx_term(t->ctx);
    t->pub = t->ingest = t->control = t->zap = t->relay_loop = t->relay_front = t->ctx = NULL;
    for (int i = 0; i < t->n_ipc; i++) { /* ours only: a later daemon may own the path now */
        struct stat sb;
        if (stat(t->ipc[i].path, &sb) == 0 && S_ISSOCK(sb.st_mode) && sb.st_dev == t->ipc[i].dev &&
            sb.st_ino == t->ipc[i].ino)
            unlink(t->ipc[i].path);
    }
    t->n_ipc = 0;
    free(t->allow);
    t->allow = NULL;
}

int ssmd_transport_poll(ssmd_transport *t, int timeout_ms)
{
    zmq_pollitem_t items[4] = { { t->pub, 0, ZMQ_POLLIN, 0 }, { t->ingest, 0, ZMQ_POLLIN, 0 },
                                { t->relay_loop, 0, ZMQ_POLLIN, 0 }, { t->zap, 0, ZMQ_POLLIN, 0 } };
    return zmq_poll(items, t->zap ? 4 : 3, timeout_ms);
}

long ssmd_transport_reload_allowlist(ssmd_transport *t, const char *path, char *err, size_t cap)
{
    long k = read_z85_keys(path, NULL, 0, err, cap);
    uint8_t (*keys)[32] = k > 0 ? malloc((size_t)k * 32) : NULL;
    if (k < 0 || (k > 0 && !keys)) {
        if (k >= 0) snprintf(err, cap, "out of memory");
        free(keys);
        return -1;
    }
    read_z85_keys(path, keys, (size_t)k, err, cap);
    free(t->allow);
    t->allow = keys;
    t->n_allow = (size_t)k;
    return k;
}
