/* The ssmd server: one loop thread that owns the ZeroMQ sockets, the
 * sources (file, client pushes, capture device) and the model runner, and
 * steps every stream with a frame ready as one batch (DESIGN.md §5).
 *
 * Why one thread: ZeroMQ sockets are not thread-safe and the batched step
 * of the default model costs tens of microseconds, far below the poll
 * period (a few ms), so one loop keeps latency bounded without locks.  The
 * only other thread is PortAudio's callback, which talks to the loop through
 * lock-free rings (audio_device.h).  A separate compute thread becomes
 * worthwhile once a batch costs more than the poll period (large models,
 * thousands of streams): see docs/architecture.md. */
#ifndef SSMD_SERVER_H
#define SSMD_SERVER_H

#include <signal.h>

#include "config.h"

/** Runs the daemon with cfg until *stop becomes non-zero (SIGINT/SIGTERM),
 *  a control "stop", or — when cfg->input is a file — the file is done.
 *  Returns the process exit status: 0, 1 on a runtime failure, 2 on a
 *  configuration error (one line on stderr either way). */
int ssmd_server_run(const ssmd_config *cfg, const char *model_path, volatile sig_atomic_t *stop);

#endif /* SSMD_SERVER_H */
