/* SPDX-License-Identifier: MIT */
/* The in-process daemon of the socket fuzz targets (daemon_harness.h).
 * Why a thread running ssmd_server_run rather than calls into the rooms: the
 * loop, transport, sources and engine are exercised exactly as deployed (no
 * test-only entry points in daemon/src), and a message reaches the push
 * source only after ZeroMQ's frame caps, as an attacker's would. */
#include "daemon_harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "config.h"
#include "server.h"

#ifndef SSMD_FUZZ_MODEL
#error "SSMD_FUZZ_MODEL must name the model file (fuzz/meson.build)"
#endif

static struct {
    pthread_t thread;
    ssmd_config cfg;
    ssmd_server_control ctl;
    volatile sig_atomic_t stop, hup;
    atomic_uint generation;
    atomic_bool quit;
    char dir[64];
    char ep[3][128];
    void *ctx;
    void *socks[16];               /* the clients' sockets still open, closed at exit */
    int started;
} g;

static void *daemon_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&g.quit)) {
        atomic_fetch_add(&g.generation, 1);
        int rc = ssmd_server_run(&g.cfg, SSMD_FUZZ_MODEL, &g.ctl);
        if (rc != 0) {
            fprintf(stderr, "fuzz harness: the daemon exited with status %d\n", rc);
            abort();
        }
    }
    return NULL;
}

/* At exit, before LeakSanitizer's check: the daemon is stopped and joined
 * (its context is terminated by ssmd_transport_close), then the clients'
 * sockets are closed and their context terminated.  zmq_ctx_term waits for
 * every socket of its context, so a socket left open makes the exit hang
 * with ZeroMQ's threads alive; that is why the harness keeps the list. */
static void harness_stop(void)
{
    if (!g.started) return;
    atomic_store(&g.quit, true);
    g.stop = 1;
    pthread_join(g.thread, NULL);
    for (int i = 0; i < 16; i++)
        if (g.socks[i]) zmq_close(g.socks[i]);
    if (g.ctx) zmq_ctx_term(g.ctx); /* blocks until every socket is closed */
    ssmd_config_free(&g.cfg);
    static const char *const names[] = { "pub", "ingest", "control" };
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", g.dir, names[i]);
        unlink(path);
    }
    rmdir(g.dir);
    g.started = 0;
}

static void set_or_die(const char *key, const char *value)
{
    char err[512];
    if (ssmd_config_set(&g.cfg, key, value, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz harness: %s\n", err);
        abort();
    }
}

void ssmd_fuzz_daemon_start(long push_idle_s)
{
    if (g.started) return;
    snprintf(g.dir, sizeof g.dir, "/tmp/ssmd-fuzz-XXXXXX");
    if (!mkdtemp(g.dir) || ssmd_config_init(&g.cfg) != 0) abort();
    static const char *const names[] = { "pub", "ingest", "control" };
    for (int i = 0; i < 3; i++) {
        snprintf(g.ep[i], sizeof g.ep[i], "ipc://%s/%s", g.dir, names[i]);
        set_or_die(names[i], g.ep[i]);
    }
    char idle[32];
    snprintf(idle, sizeof idle, "%ld", push_idle_s);
    set_or_die("input", "none");
    set_or_die("serve", "yes");
    set_or_die("max_streams", "4");
    set_or_die("threads", "1");
    set_or_die("log_level", "error");
    set_or_die("push_idle_s", idle);
    g.ctl = (ssmd_server_control){ .stop = &g.stop, .hup = &g.hup };
    g.ctx = zmq_ctx_new();
    if (!g.ctx || pthread_create(&g.thread, NULL, daemon_thread, NULL) != 0) abort();
    g.started = 1;
    atexit(harness_stop);
    /* wait until it answers */
    void *c = ssmd_fuzz_connect("control");
    char reply[256];
    for (int i = 0; i < 100; i++) {
        if (ssmd_fuzz_control_text(c, "{\"version\":1,\"cmd\":\"status\"}", reply, sizeof reply, 100) == 0) {
            ssmd_fuzz_close(c);
            return;
        }
        ssmd_fuzz_close(c); /* a late reply must not answer the next request */
        c = ssmd_fuzz_connect("control");
    }
    fprintf(stderr, "fuzz harness: the daemon does not answer on %s\n", g.ep[2]);
    abort();
}

unsigned ssmd_fuzz_daemon_generation(void)
{
    return atomic_load(&g.generation);
}

void *ssmd_fuzz_connect(const char *which)
{
    const char *ep = strcmp(which, "ingest") == 0 ? g.ep[1] : strcmp(which, "control") == 0 ? g.ep[2] : NULL;
    void *sock = ep ? zmq_socket(g.ctx, ZMQ_DEALER) : NULL;
    if (!sock) abort();
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(sock, ep) != 0) abort();
    for (int i = 0; i < 16; i++)
        if (!g.socks[i]) {
            g.socks[i] = sock;
            return sock;
        }
    abort(); /* more than 16 open at once: a socket is not being closed */
}

void ssmd_fuzz_close(void *sock)
{
    for (int i = 0; i < 16; i++)
        if (g.socks[i] == sock) g.socks[i] = NULL;
    zmq_close(sock);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int ssmd_fuzz_poll_in(void *sock, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    for (;;) {
        zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
        int left = (int)(end - now_ms());
        int rc = zmq_poll(&it, 1, left > 0 ? left : 0);
        if (rc >= 0) return rc;
        if (zmq_errno() != EINTR) abort();
    }
}

void ssmd_fuzz_recv(void *sock, zmq_msg_t *m)
{
    while (zmq_msg_recv(m, sock, 0) < 0)
        if (zmq_errno() != EINTR) abort();
}

void ssmd_fuzz_send(void *sock, const void *p, size_t n, int flags)
{
    while (zmq_send(sock, p, n, flags) < 0)
        if (zmq_errno() != EINTR) abort();
}

int ssmd_fuzz_control(void *sock, int n_frames, const void *const *frames, const size_t *lens,
                      char *reply, size_t cap, int *n_reply, int timeout_ms)
{
    for (int i = 0; i < n_frames; i++) ssmd_fuzz_send(sock, frames[i], lens[i], i + 1 < n_frames ? ZMQ_SNDMORE : 0);
    if (ssmd_fuzz_poll_in(sock, timeout_ms) <= 0) return -1;
    int n = 0;
    reply[0] = '\0';
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        ssmd_fuzz_recv(sock, &m);
        /* the JSON frame is the first non-empty one (REQ-style requests get
         * an empty delimiter back first) */
        if (!reply[0] && zmq_msg_size(&m) > 0) {
            size_t k = zmq_msg_size(&m) < cap - 1 ? zmq_msg_size(&m) : cap - 1;
            memcpy(reply, zmq_msg_data(&m), k);
            reply[k] = '\0';
        }
        n++;
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        if (!more) break;
    }
    *n_reply = n;
    return 0;
}

int ssmd_fuzz_control_text(void *sock, const char *json, char *reply, size_t cap, int timeout_ms)
{
    const void *f[1] = { json };
    size_t len[1] = { strlen(json) };
    int n;
    return ssmd_fuzz_control(sock, 1, f, len, reply, cap, &n, timeout_ms);
}
