/* SPDX-License-Identifier: MIT */
/* The ssmd server: one loop thread that owns the ZeroMQ sockets, the
 * sources (file, client pushes, capture device, generator) and the model
 * runner, and steps every stream with a frame ready as one batch
 * (DESIGN.md §5).  The rooms the loop ties together (transport, control,
 * sources, engine, sinks) are described in srv.h.
 *
 * Why one thread: ZeroMQ sockets are not thread-safe and the batched step
 * of the default model costs tens of microseconds, far below the poll
 * period (a few ms), so one loop keeps latency bounded without locks.  The
 * other threads: PortAudio's callback (lock-free rings, audio_device.h), the
 * step workers of large batches, the cluster thread, and the control thread,
 * which owns the control socket, answers status from atomic counters and
 * passes the other requests to the loop (control.c).  A separate compute
 * thread becomes worthwhile once a batch costs more than the poll period
 * (large models, thousands of streams): see docs/architecture.md. */
#ifndef SSMD_SERVER_H
#define SSMD_SERVER_H

#include <signal.h>

#include "config.h"

/** Re-reads the configuration (config file and command line) into fresh, an
 *  initialised ssmd_config; returns 0, or -1 with one line in err. */
typedef int (*ssmd_reload_fn)(ssmd_config *fresh, char *err, size_t cap, void *user);

/** How the main thread talks to the loop: flags set by signal handlers. */
typedef struct ssmd_server_control {
    volatile sig_atomic_t *stop;  /**< SIGINT/SIGTERM: finish streams, exit 0 */
    volatile sig_atomic_t *hup;   /**< SIGHUP: re-read, apply the reloadable options */
    ssmd_reload_fn reload;
    void *reload_user;
} ssmd_server_control;

/** Runs the daemon with cfg until *ctl->stop becomes non-zero, a control
 *  "stop", or — when cfg->input is a file — the file is done, or — with
 *  cfg->generate_s > 0 — every generated stream is complete (model_path is
 *  then the token model; without cfg->generate_publish no socket is opened
 *  and the samples go to cfg->output as fast as the model steps).  On *ctl->hup
 *  the options marked reloadable in the option table (log level, progress,
 *  publish_mask/embedding, the CURVE allowlist) take their new values in cfg;
 *  the others keep theirs (a line says which changed).  Returns the process
 *  exit status: 0, 1 on a runtime failure, 2 on a configuration error (one
 *  line on stderr either way). */
int ssmd_server_run(ssmd_config *cfg, const char *model_path, const ssmd_server_control *ctl);

#endif /* SSMD_SERVER_H */
