/* SPDX-License-Identifier: MIT */
/* ssmd_transport_recv under a storm of signals: every message comes back
 * whole, [identity][topic][header][payload], in order.  libzmq's recv checks
 * its command mailbox every 100 frames with a poll() that a signal can
 * interrupt, so a blocking zmq_msg_recv for the rest of a message already
 * arriving can fail with EINTR; a receiver that gives up there splits the
 * message, and the next "message" starts with its header frame as the
 * identity (a push lost without a word, replies sent nowhere).  The daemon
 * gets such signals from SIGHUP reloads (main.c's handlers have no
 * SA_RESTART, and poll() is never restarted anyway); the fuzz_push target
 * found it through libFuzzer's SIGALRM timer.
 *
 * A signal landing in that poll() is a matter of microseconds, so the test
 * makes it certain instead: this executable defines poll(), which libzmq's
 * calls resolve to, and while the receiver reads it fails every zero-timeout
 * call (the mailbox check) with EINTR, as an interrupted poll() does.  The
 * check comes at a socket's 100th frame, the last frame of the 25th message
 * (4 frames each, with the identity). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "transport.h"

static atomic_bool g_armed;
static atomic_ulong g_injected;

int poll(struct pollfd *fds, nfds_t nfds, int timeout);
int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (atomic_load(&g_armed) && timeout == 0) {
        atomic_fetch_add(&g_injected, 1);
        errno = EINTR;
        return -1;
    }
    return (int)syscall(SYS_poll, fds, nfds, timeout);
}

/* zmq_send may be interrupted before anything is queued: send again. */
static void send_frame(void *sock, const void *p, size_t n, int flags)
{
    while (zmq_send(sock, p, n, flags) < 0) assert_int_equal(zmq_errno(), EINTR);
}

static void test_recv_whole_messages_when_interrupted(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int unlimited = 0; /* a split message leaves frames behind: sends must not block on them */
    zmq_setsockopt(dealer, ZMQ_SNDHWM, &unlimited, sizeof unlimited);
    zmq_setsockopt(router, ZMQ_RCVHWM, &unlimited, sizeof unlimited);
    assert_int_equal(zmq_bind(router, "inproc://eintr"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://eintr"), 0);
    /* one message unarmed first: the router attaches the dealer's pipe by
     * processing commands, which an always-interrupted poll would prevent */
    send_frame(dealer, "warm-up", 7, 0);
    for (int n = -1; n < 0;) {
        zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
        int total = 0;
        if ((n = ssmd_transport_recv(router, f, &total)) >= 0) ssmd_transport_frames_close(f, n);
    }
    enum { BATCH = 200, BATCHES = 50 };
    uint32_t next_sent = 0, next_got = 0;
    unsigned long bad = 0;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++, next_sent++) {
            send_frame(dealer, "t/audio/", 8, ZMQ_SNDMORE);
            send_frame(dealer, "h", 1, ZMQ_SNDMORE);
            send_frame(dealer, &next_sent, sizeof next_sent, 0);
        }
        atomic_store(&g_armed, true);
        for (int i = 0, idle = 0; i < BATCH && idle < 100000; idle++) {
            zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
            int total = 0, n = ssmd_transport_recv(router, f, &total);
            if (n < 0) continue; /* nothing yet, or its first frame was interrupted */
            uint32_t v = UINT32_MAX;
            if (n == 4 && total == 4 && zmq_msg_size(&f[1]) == 8 && zmq_msg_size(&f[2]) == 1 &&
                zmq_msg_size(&f[3]) == sizeof v)
                memcpy(&v, zmq_msg_data(&f[3]), sizeof v);
            if (v != next_got) bad++;
            next_got++;
            i++;
            ssmd_transport_frames_close(f, n);
        }
        atomic_store(&g_armed, false);
    }
    printf("%u messages, %lu interrupted polls: %lu split or out of order\n", next_got,
           atomic_load(&g_injected), bad);
    assert_true(atomic_load(&g_injected) > 0); /* the interruptions did happen */
    assert_int_equal(next_got, next_sent);
    assert_int_equal(bad, 0);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recv_whole_messages_when_interrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
