/* SPDX-License-Identifier: MIT */
/* A real ssmd daemon inside a fuzzer's process, for the targets that feed the
 * daemon's sockets (fuzz_push.c, fuzz_control.c).
 *
 * ssmd_server_run (the same function main() calls) runs on a thread of its
 * own with ipc:// endpoints in a private temporary folder, the model named by
 * SSMD_FUZZ_MODEL (a small random model from tests/daemon/make_stream_models.py),
 * max_streams 4 and one compute thread; the fuzz target talks to it through
 * ZeroMQ exactly as a client would, so every byte goes through the real
 * transport (frame caps), the push source's validation and the stream path,
 * or the control handler table.  A "stop" request ends the run; the thread
 * then starts the daemon again (ssmd_fuzz_daemon_generation counts runs).
 * At exit the daemon is stopped and joined before LeakSanitizer looks.
 *
 * Threads: the functions below are for the fuzzer's thread only. */
#ifndef SSMD_FUZZ_DAEMON_HARNESS_H
#define SSMD_FUZZ_DAEMON_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

/** Starts the daemon once (later calls return at once); push_idle_s is the
 *  idle expiry of push streams.  Aborts when the daemon cannot start: a
 *  fuzzer without its target is useless. */
void ssmd_fuzz_daemon_start(long push_idle_s);

/** How many times the daemon has started (1 after the first start; one more
 *  after each "stop"). */
unsigned ssmd_fuzz_daemon_generation(void);

/** A new DEALER socket connected to the daemon's "ingest" or "control"
 *  endpoint (unlimited queues, no linger); close it with ssmd_fuzz_close
 *  (those still open at exit are closed then). */
void *ssmd_fuzz_connect(const char *which);
void ssmd_fuzz_close(void *sock);

/** Sends one control request of n_frames frames (frames[i] of lens[i] bytes)
 *  on a control DEALER and receives its reply, the JSON frame into reply
 *  (NUL-terminated, cut at cap - 1) and the count of reply frames into
 *  *n_reply; waits at most timeout_ms.  Returns 0, or -1 on timeout (then
 *  replace the socket: a late reply would answer the next request). */
int ssmd_fuzz_control(void *sock, int n_frames, const void *const *frames, const size_t *lens,
                      char *reply, size_t cap, int *n_reply, int timeout_ms);

/** zmq_poll for input on one socket, zmq_msg_recv and zmq_send, retried
 *  when a signal interrupts them (libFuzzer's SIGALRM timer does, every
 *  few seconds): poll returns > 0 when input is waiting, 0 after
 *  timeout_ms; recv and send abort on any other failure. */
int ssmd_fuzz_poll_in(void *sock, int timeout_ms);
void ssmd_fuzz_recv(void *sock, zmq_msg_t *m);
void ssmd_fuzz_send(void *sock, const void *p, size_t n, int flags);

/** ssmd_fuzz_control with one JSON text frame. */
int ssmd_fuzz_control_text(void *sock, const char *json, char *reply, size_t cap, int timeout_ms);

#endif /* SSMD_FUZZ_DAEMON_HARNESS_H */
