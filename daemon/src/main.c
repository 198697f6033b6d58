/* SPDX-License-Identifier: MIT */
/* ssmd: command line, signals, and dispatch to the job.  Kept small
 * (STYLE.md 15): options live in config.c, work in the job modules. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "audio_device.h"
#include "config.h"
#include "log.h"
#include "model_find.h"
#include "server.h"

#ifndef SSMD_VERSION
#define SSMD_VERSION "unknown"
#endif
static volatile sig_atomic_t stop_requested, hup_requested;

static void on_signal(int sig)
{
    if (sig == SIGHUP) hup_requested = 1;
    else stop_requested = 1;
}

typedef struct args { int argc; char **argv; } args;

/* SIGHUP: the same command line again (it re-reads the --config file). */
static int reload(ssmd_config *fresh, char *err, size_t cap, void *user)
{
    const args *a = user;
    ssmd_cli_action action;
    return ssmd_config_parse_args(fresh, a->argc, a->argv, &action, err, cap);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* past a file-size limit (ulimit -f) a write fails with EFBIG and the
     * job ends with a one-line error naming the file, instead of the
     * process being killed mid-write by SIGXFSZ */
    signal(SIGXFSZ, SIG_IGN);
}

static int list_devices(void)
{
    char err[512];
    if (ssmd_audio_list(stdout, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: audio devices: %s\n", err);
        return 1;
    }
    return 0;
}

/* Writes a new CURVE key pair as PREFIX.key (secret) and PREFIX.pub (public),
 * Z85 text, the secret one readable by the owner only. */
static int curve_keygen(const char *prefix)
{
    char pub[41], sec[41], path[4096];
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "ssmd: curve-keygen: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    const char *ext[2] = { ".key", ".pub" }, *val[2] = { sec, pub };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, ext[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, i == 0 ? 0600 : 0644);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f || fprintf(f, "%s\n", val[i]) < 0 || fclose(f) != 0) {
            fprintf(stderr, "ssmd: curve-keygen: %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    printf("%s.key (secret) and %s.pub: %s\n", prefix, prefix, pub);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--curve-keygen") == 0) {
        if (argc != 3) {
            fprintf(stderr, "ssmd: --curve-keygen: needs a file prefix (writes PREFIX.key and PREFIX.pub)\n");
            return 2;
        }
        return curve_keygen(argv[2]);
    }
    install_signals(); /* first: a SIGHUP or SIGTERM during start-up must not kill us */
    ssmd_config cfg;
    if (ssmd_config_init(&cfg) != 0) {
        fprintf(stderr, "ssmd: out of memory\n");
        return 1;
    }
    ssmd_cli_action action;
    char err[1024];
    int rc = 0;
    if (ssmd_config_parse_args(&cfg, argc, argv, &action, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", ssmd_log_safe(err));
        rc = 2;
        goto out;
    }
    switch (action) {
    case SSMD_CLI_HELP:
        ssmd_config_print_help(stdout, "ssmd");
        goto out;
    case SSMD_CLI_VERSION:
        printf("ssmd %s\n", SSMD_VERSION);
        goto out;
    case SSMD_CLI_LIST_DEVICES:
        rc = list_devices();
        goto out;
    case SSMD_CLI_RUN:
        break;
    }
    /* a job that would lose its result or ignore an option: refused (or,
     * from a config file, warned about) before the model is loaded */
    char warn[2048];
    if (ssmd_config_check(&cfg, err, sizeof err, warn, sizeof warn) != 0) {
        fprintf(stderr, "ssmd: %s\n", ssmd_log_safe(err));
        rc = 2;
        goto out;
    }
    ssmd_log_set_level_name(cfg.log_level);
    ssmd_log_safe(warn);
    for (char *line = warn, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        ssmd_log(SSMD_LOG_WARN, "warning: %s", line);
    }
    /* generation (--generate-s) runs the server with its generator source
     * (source_gen.c): into the output file, and published with
     * --generate-publish; otherwise the audio pipeline (server.h) */
    /* --model, else $SSMD_MODEL, else the search path (model_find.h) */
    char model[4096];
    if (ssmd_model_find(cfg.generate_s > 0 ? SSMD_MODEL_MULAW_LM : SSMD_MODEL_DEFAULT, cfg.model, model,
                        sizeof model, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s; pass --model FILE\n", err);
        rc = 2;
        goto out;
    }
    ssmd_log(SSMD_LOG_DEBUG, "model: %s", model);
    args a = { argc, argv };
    ssmd_server_control ctl = { .stop = &stop_requested, .hup = &hup_requested, .reload = reload,
                                .reload_user = &a };
    rc = ssmd_server_run(&cfg, model, &ctl);
out:
    ssmd_config_free(&cfg);
    return rc;
}
