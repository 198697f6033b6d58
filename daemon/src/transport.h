/* SPDX-License-Identifier: MIT */
/* Transport: the daemon's ZeroMQ sockets (XPUB data plane, ROUTER ingest,
 * ROUTER control), CURVE encryption with its ZAP allowlist (RFC 27), the
 * message-size and queue caps, and the frame-level send/receive helpers
 * (docs/protocol.md).  It knows nothing of streams or requests.
 *
 * Threads: ZeroMQ sockets are not thread-safe, so each belongs to one
 * thread: the control ROUTER and the front end of the control relay to the
 * control thread while it runs (control.c), every other socket to the server
 * loop.  The counters the control thread reports (zap_*, n_allow) are atomic.
 * Open/close and the allowlist reload allocate; send/recv do not block
 * (DONTWAIT) apart from the remaining frames of a message already arriving.
 * Internal to daemon/src/. */
#ifndef SSMD_TRANSPORT_H
#define SSMD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zmq.h>

#include "config.h"
#include "ssmd/protocol.h"

/* ingest frames: ingest_max_payload (at most SSMD_INGEST_MAX_PAYLOAD_BYTES,
 * 8 MiB: 2 M float samples, 43 s at 48 kHz) + 4 KiB, 32 messages queued per
 * client; control messages 16 MiB (snapshots are state-sized) */
#define SSMD_CONTROL_MAX_MSG ((int64_t)16 * 1024 * 1024)
/* subscription messages on the PUB socket: 1 + a topic prefix */
#define SSMD_SUBSCRIPTION_MAX_MSG ((int64_t)4096)
enum { SSMD_INGEST_HWM = 32, SSMD_TRANSPORT_MAX_FRAMES = 8 };
/* Results queued per client on the ingest socket before a send fails with
 * EAGAIN and the stream is held (sink_reply.c).  A result message carries
 * what one engine pass computed for the stream, up to 4 096 samples
 * (SSMD_OUT_CHUNK, 16 KiB), so 250 bound a client's queue at about 4 MiB,
 * what ZeroMQ's default of 1 000 one-frame messages held before. */
enum { SSMD_REPLY_HWM = 250 };
/* ZeroMQ I/O threads of the daemon's context.  One could not move the
 * published messages into the kernel as fast as the loop queued them under
 * the soak's load (~34 000 messages/s to 8 subscribers): every subscriber's
 * pub_hwm queue filled at once and all lost the same messages
 * (docs/reliability.md, soak); the connections are spread over two.  A
 * third serves the control socket alone (ZMQ_AFFINITY), so a control request
 * never waits behind the published messages of a busy I/O thread. */
enum { SSMD_TRANSPORT_IO_THREADS = 3, SSMD_TRANSPORT_DATA_AFFINITY = 0x3, SSMD_TRANSPORT_CONTROL_AFFINITY = 0x4 };

/** The socket set.  Zero-initialise; every pointer is NULL when not open. */
typedef struct ssmd_transport {
    void *ctx, *pub, *ingest, *control, *zap;
    /** The control relay, an inproc PAIR: the control thread passes the
     *  requests it does not answer itself from relay_front to relay_loop,
     *  where the loop answers them, and their replies back (control.c). */
    void *relay_front, *relay_loop;
    char curve_secret[41];            /**< Z85 server secret key, "" when CURVE is off */
    uint8_t (*allow)[32];             /**< allowed client public keys (binary), owned */
    _Atomic uint64_t n_allow;
    _Atomic uint64_t zap_denied, zap_allowed; /**< clients refused / admitted */
    /** The socket files of the ipc:// endpoints bound (libzmq leaves them
     *  behind): removed by ssmd_transport_close when they are still the ones
     *  bound (same device and inode; another daemon may have bound the path
     *  since). */
    struct { char path[4096]; dev_t dev; ino_t ino; } ipc[3];
    int n_ipc;
} ssmd_transport;

/** Binds cfg->pub, cfg->ingest and cfg->control (with CURVE and the ZAP
 *  handler when cfg->curve_secret_file is set).  A non-loopback endpoint
 *  without CURVE is refused unless cfg->allow_insecure_remote.  Returns 0,
 *  or -1 after one line on stderr; call ssmd_transport_close either way. */
int ssmd_transport_open(ssmd_transport *t, const ssmd_config *cfg);

/** Closes the sockets (linger 200 ms) and the context; safe on a zeroed or
 *  half-opened transport, and twice. */
void ssmd_transport_close(ssmd_transport *t);

/** Waits up to timeout_ms for input on any socket of the loop (pub, ingest,
 *  relay_loop, zap).  Returns zmq_poll's result (-1 with zmq_errno() on
 *  failure). */
int ssmd_transport_poll(ssmd_transport *t, int timeout_ms);

/** Answers every waiting ZAP request: CURVE clients whose key is in the
 *  allowlist are admitted, the rest refused and counted. */
void ssmd_transport_handle_zap(ssmd_transport *t);

/** Re-reads the allowlist file at path (SIGHUP).  Returns the number of
 *  keys now allowed, or -1 with one line in err (the old list is kept). */
long ssmd_transport_reload_allowlist(ssmd_transport *t, const char *path, char *err, size_t cap);

/** Sends [identity][topic][header][payload] on sock (identity only when not
 *  NULL).  Never blocks: a full queue drops the message.  Returns 0 sent, -1
 *  dropped. */
int ssmd_transport_send(void *sock, const uint8_t *identity, size_t id_len, const char *topic,
                        const ssmd_header *h, const void *payload, size_t bytes);

/** Receives every frame of one message, keeping the first
 *  SSMD_TRANSPORT_MAX_FRAMES in frames (initialised; close them with
 *  ssmd_transport_frames_close); *n_total receives the count of all frames.
 *  Returns the frames kept, or -1 when no message was waiting. */
int ssmd_transport_recv(void *sock, zmq_msg_t *frames, int *n_total);
void ssmd_transport_frames_close(zmq_msg_t *frames, int n);

#endif /* SSMD_TRANSPORT_H */
