/* ssmd: command line, signals, and dispatch to the job.  Kept small
 * (STYLE.md 15): options live in config.c, work in the job modules. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audio_device.h"
#include "config.h"
#include "server.h"

#ifndef SSMD_VERSION
#define SSMD_VERSION "unknown"
#endif
#ifndef SSMD_DEFAULT_MODEL
#define SSMD_DEFAULT_MODEL "models/default.safetensors"
#endif

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
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

int main(int argc, char **argv)
{
    ssmd_config cfg;
    if (ssmd_config_init(&cfg) != 0) {
        fprintf(stderr, "ssmd: out of memory\n");
        return 1;
    }
    ssmd_cli_action action;
    char err[1024];
    int rc = 0;
    if (ssmd_config_parse_args(&cfg, argc, argv, &action, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
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
    install_signals();
    const char *model = cfg.model[0] ? cfg.model : SSMD_DEFAULT_MODEL;
    if (!cfg.model[0] && access(model, R_OK) != 0) {
        fprintf(stderr, "ssmd: no model given and the bundled default %s does not exist yet "
                        "(it comes with issue 6); pass --model FILE\n", model);
        rc = 2;
        goto out;
    }
    rc = ssmd_server_run(&cfg, model, &stop_requested);
out:
    ssmd_config_free(&cfg);
    return rc;
}
