/* SPDX-License-Identifier: MIT */
/* clients/src/client.h — what ssm-sub, ssm-push and ssm-ctl share.
 *
 * Small helpers around ZeroMQ for command-line clients of ssmd
 * (docs/protocol.md): connecting with a deadline (a socket monitor tells
 * whether the TCP/IPC connection was made, so an absent daemon is reported
 * after --timeout instead of hanging), receiving whole multipart messages,
 * decoding data-plane messages with daemon/include/ssmd/protocol.h, parsing
 * numbers from options, and opening audio writers.
 *
 * Exit codes shared by the programs: CLI_EXIT_OK (0), CLI_EXIT_FAIL (1: the
 * daemon, a file or the network failed), CLI_EXIT_USAGE (2: bad options).
 *
 * Thread safety: single-threaded programs; cli_stop_requested is set from a
 * signal handler.  Nothing here is real-time safe (it blocks and allocates).
 */
#ifndef SSMD_CLIENT_H
#define SSMD_CLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "dsp/audio_file.h"
#include "ssmd/output_format.h"
#include "ssmd/protocol.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/** Most frames kept of one multipart message; later frames are counted and dropped. */
#define CLI_MAX_FRAMES 8

/** One received multipart message. */
typedef struct cli_msg {
    int n_frames;        /**< frames received (may exceed CLI_MAX_FRAMES) */
    int n_kept;          /**< frames stored in frames[] */
    zmq_msg_t frames[CLI_MAX_FRAMES];
} cli_msg;

/** A decoded data-plane message ([topic][header][payload]); pointers into a cli_msg. */
typedef struct cli_data {
    const char *topic;   /**< not NUL-terminated */
    size_t topic_len;
    char stream[SSMD_STREAM_NAME_MAX + 1];
    uint16_t kind;       /**< ssmd_kind from the topic */
    ssmd_header h;
    const uint8_t *payload;
    size_t payload_len;  /**< bytes */
} cli_data;

/** Subscriber sockets' defaults (ssm-sub --rcvbuf, --rcvhwm): the kernel
 *  receive buffer (SO_RCVBUF, bytes; Linux reserves twice it) and ZeroMQ's
 *  receive queue (messages).  Small, so that a slow subscriber's backlog
 *  stays bounded and it sees drops (seq gaps) instead of ever older data:
 *  the age bound in docs/protocol.md counts both. */
#define CLI_SUB_RCVBUF_BYTES 65536
#define CLI_SUB_RCVHWM 32

/** Environment variables that name the daemon's endpoints for a client run
 *  without -e (docs/protocol.md, "Sockets"): a test or a deployment on other
 *  ports sets them once for every client, C and Python. */
#define CLI_ENV_PUB "SSMD_PUB"
#define CLI_ENV_INGEST "SSMD_INGEST"
#define CLI_ENV_CONTROL "SSMD_CONTROL"

/** The endpoint a client uses without -e: the environment variable env_name
 *  (CLI_ENV_*) when it is set and not empty, else fallback (the daemon's
 *  default).  The string is getenv()'s or fallback: not to be freed. */
const char *cli_endpoint_default(const char *env_name, const char *fallback);

/** env_name when that variable is set and not empty (the endpoint a client
 *  without -e uses comes from it, and its errors name it), else NULL. */
const char *cli_endpoint_env(const char *env_name);

/** Set to the signal number by SIGINT/SIGTERM once cli_signals_install() ran. */
extern volatile sig_atomic_t cli_stop_requested;

/** Installs SIGINT/SIGTERM handlers that set cli_stop_requested (no SA_RESTART,
 *  so blocking ZeroMQ calls return EINTR). */
void cli_signals_install(void);

/** Monotonic clock in seconds. */
double cli_now_s(void);

/** Parses a whole string as an unsigned integer in [min, max]; 0 on success, -1 otherwise. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/** Parses a whole string as a finite number > 0 (seconds); 0 on success, -1 otherwise. */
int cli_parse_seconds(const char *s, double *out);

/** Connects sock to endpoint and waits up to timeout_s seconds for the
 *  connection to be established (ZMQ_EVENT_CONNECTED from a socket monitor;
 *  ctx is the socket's context).  Returns 0 when connected; -1 with a
 *  one-line reason in msg[cap] on a malformed endpoint, a timeout ("no
 *  connection to EP after 1.0 s (is ssmd running?)") or a signal.  env_name:
 *  the environment variable the endpoint came from (cli_endpoint_env), NULL
 *  for -e or the default; the messages then name it:
 *  'SSMD_PUB="tcp://x:y": invalid endpoint (...)'. */
int cli_connect(void *ctx, void *sock, const char *endpoint, const char *env_name, double timeout_s,
                char *msg, size_t cap);

/** Sets the receive-side limits of sock; call before connecting.
 *  max_msg_bytes: ZMQ_MAXMSGSIZE, the largest frame accepted from a peer (a
 *  peer sending more is disconnected; use SSMD_CLIENT_MAX_FRAME_BYTES);
 *  rcvbuf_bytes: ZMQ_RCVBUF (0: the OS default, autotuned); rcvhwm:
 *  ZMQ_RCVHWM in messages (0: unlimited; < 0: libzmq's default, 1000).
 *  Returns 0, or -1 with one line in msg[cap] naming the option refused. */
int cli_socket_limits(void *sock, int64_t max_msg_bytes, int rcvbuf_bytes, int rcvhwm,
                      char *msg, size_t cap);

/** Waits up to timeout_s (< 0: forever) for a message on sock, in slices
 *  that notice cli_stop_requested, and receives all its frames into *m.
 *  Returns 1 with a message (release it with cli_msg_close), 0 on timeout,
 *  -1 when a signal or an error stopped the wait (m is then empty). */
int cli_msg_recv(void *sock, cli_msg *m, double timeout_s);

/** Releases the frames of m (no-op on an empty message). */
void cli_msg_close(cli_msg *m);

/** Frame i of m: its bytes and length (NULL, 0 when i is out of range). */
const uint8_t *cli_msg_frame(const cli_msg *m, int i, size_t *len);

/** Decodes frames first..first+2 of m as [topic][header][payload] into *d
 *  (which points into m).  Returns SSMD_PROTO_OK or a negative
 *  ssmd_proto_status (BAD_TOPIC also for a wrong frame count); why[cap]
 *  then holds one line. */
int cli_data_decode(const cli_msg *m, int first, cli_data *d, char *why, size_t cap);

/** Names of the set flags, comma separated ("-" for none), into out[cap]. */
const char *cli_flags_text(uint32_t flags, char *out, size_t cap);

/** Opens an audio writer for received f32 audio: the container comes from
 *  path's extension ("-": AU on stdout); samples are stored in format
 *  (--output-format: pcm16, pcm24 or float, the daemon's choices and default,
 *  ssmd/output_format.h), the codec in Ogg/Vorbis, Ogg/Opus and MP3.
 *  expected_frames (0 = unknown, e.g. a live stream) lets a .wav be plain PCM
 *  RIFF from the start.  Returns a dsp_status and fills err like
 *  dsp_audio_writer_open() (float in .flac: one line naming both). */
int cli_writer_open(dsp_audio_writer **out, const char *path, ssmd_output_format format, int sample_rate_hz,
                    int channels, int64_t expected_frames, dsp_error *err);

/** Parses an --output-format value into *out; on an unknown name prints
 *  "PROG: --output-format: expected one of pcm16|pcm24|float, got 'X'" on
 *  stderr and returns CLI_EXIT_USAGE, else 0. */
int cli_output_format_arg(const char *prog, const char *arg, ssmd_output_format *out);

/** Refuses an --output-format (given: it was on the command line) that would
 *  do nothing: without an output file, or for a .ogg/.opus/.mp3 output whose
 *  codec sets the samples.  Prints one line naming the format and why and
 *  returns CLI_EXIT_USAGE; else 0. */
int cli_output_format_check(const char *prog, int given, ssmd_output_format f, const char *out_path);

#endif /* SSMD_CLIENT_H */
