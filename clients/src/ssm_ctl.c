/* SPDX-License-Identifier: MIT */
/* ssm-ctl: sends one control command to ssmd and prints the JSON reply
 * (docs/protocol.md, "Control").  A DEALER sends [""][request JSON] (plus
 * [snapshot] for restore) so that the reply, which may carry a second frame,
 * can be awaited with a deadline. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5562"
/** Largest snapshot file restore sends (bytes): the daemon's control socket
 *  takes frames up to 16 MiB (status limits.control_max_message_bytes) and
 *  drops larger ones without a reply. */
#define MAX_SNAPSHOT_BYTES (16u << 20)

static const char *const usage_text =
    "Usage: ssm-ctl [OPTIONS] CMD\n"
    "Send a control command to ssmd and print its JSON reply.\n"
    "\n"
    "CMD: status | streams | reset | snapshot | restore | stop | cluster | locate\n"
    "  status              daemon counters, model, uptime\n"
    "  streams             the streams being processed\n"
    "  reset    --stream S zero the model state of stream S\n"
    "  snapshot --stream S --file F   write the state of S to F\n"
    "  restore  --stream S --file F   load the state in F into S\n"
    "  stop                shut the daemon down (as SIGTERM)\n"
    "  cluster             cluster mode: members, stream owners, etcd's health\n"
    "  locate   --stream S cluster mode: the member that owns S or would get it, and S's\n"
    "                      last checkpoint (input sample, age)\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP   control socket (default: $" CLI_ENV_CONTROL " when set, else\n"
    "                      " DEFAULT_ENDPOINT ")\n"
    "  -s, --stream NAME   the stream (reset, snapshot, restore, locate)\n"
    "  -f, --file PATH     snapshot file (written by snapshot, read by restore)\n"
    "  -t, --timeout S     give up after S seconds without a reply (default 5)\n"
    "  -h, --help          this text\n"
    "\n"
    "Environment:\n"
    "  " CLI_ENV_CONTROL "        the control endpoint when -e is not given\n"
    "\n"
    "Exit status:\n"
    "  0                   the daemon answered ok=true\n"
    "  1                   the daemon answered ok=false or did not answer\n"
    "  2                   bad options\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ssm-ctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ssm-ctl --help)\n");
    return CLI_EXIT_USAGE;
}

/* Reads a whole file (at most MAX_SNAPSHOT_BYTES) into a malloc'ed buffer. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ssm-ctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "ssm-ctl: %s: not a regular file\n", path);
        fclose(f);
        return -1;
    }
    if ((uint64_t)st.st_size > MAX_SNAPSHOT_BYTES) {
        fprintf(stderr, "ssm-ctl: %s: %lld bytes is more than the %u bytes a control message to the daemon may "
                "hold (larger states cannot go through the control socket)\n", path, (long long)st.st_size,
                MAX_SNAPSHOT_BYTES);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "ssm-ctl: %s: cannot read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

/* Writes bytes to path through a temporary file and a rename (never a half file). */
static int write_file(const char *path, const uint8_t *data, size_t len)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return -1;
    snprintf(tmp, cap, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL;
    if (ok) ok = fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "ssm-ctl: %s: cannot write: %s\n", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *endpoint = cli_endpoint_default(CLI_ENV_CONTROL, DEFAULT_ENDPOINT);
    const char *endpoint_env = cli_endpoint_env(CLI_ENV_CONTROL); /* named in endpoint errors */
    const char *stream = NULL, *file = NULL;
    double timeout_s = 5.0;
    static const struct option opts[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "stream", required_argument, NULL, 's' },
        { "file", required_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":e:s:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; endpoint_env = NULL; break;
        case 's': stream = optarg; break;
        case 'f': file = optarg; break;
        case 't':
            if (cli_parse_seconds(optarg, &timeout_s) != 0)
                return usage_error("--timeout: '%s' is not a number of seconds > 0", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return CLI_EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return usage_error("%s", "missing command");
    if (argc - optind > 1) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    const char *cmd = argv[optind];
    static const char *const cmds[] = { "status", "streams", "reset", "snapshot", "restore",
                                        "stop", "cluster", "locate" };
    int known = 0;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) known |= strcmp(cmd, cmds[i]) == 0;
    if (!known) return usage_error("unknown command '%s'", cmd);
    int needs_stream = !strcmp(cmd, "reset") || !strcmp(cmd, "snapshot") || !strcmp(cmd, "restore") ||
                       !strcmp(cmd, "locate");
    int needs_file = !strcmp(cmd, "snapshot") || !strcmp(cmd, "restore");
    if (needs_stream && !stream) return usage_error("%s needs --stream NAME", cmd);
    if (!needs_stream && stream) return usage_error("%s takes no --stream", cmd);
    if (needs_file && !file) return usage_error("%s needs --file PATH", cmd);
    if (!needs_file && file) return usage_error("%s takes no --file", cmd);
    if (stream && !ssmd_stream_name_valid(stream, strlen(stream)))
        return usage_error("--stream: '%s' is not a valid stream name "
                           "(1-64 of [A-Za-z0-9_.-], not starting with '.')", stream);

    uint8_t *snap = NULL;
    size_t snap_len = 0;
    if (!strcmp(cmd, "restore") && read_file(file, &snap, &snap_len) != 0) return CLI_EXIT_FAIL;

    cli_signals_install();
    long id = (long)getpid();
    json_t *req = json_pack("{s:i, s:s, s:I}", "version", 1, "cmd", cmd, "id", (json_int_t)id);
    if (stream) json_object_set_new(req, "stream", json_string(stream));
    char *req_text = json_dumps(req, JSON_COMPACT);
    json_decref(req);

    int rc = CLI_EXIT_FAIL;
    char why[256];
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (cli_socket_limits(sock, SSMD_CLIENT_MAX_FRAME_BYTES, 0, -1, why, sizeof why) != 0) {
        fprintf(stderr, "ssm-ctl: %s\n", why);
        goto out;
    }
    double t0 = cli_now_s();
    if (cli_connect(ctx, sock, endpoint, endpoint_env, timeout_s, why, sizeof why) != 0) {
        fprintf(stderr, "ssm-ctl: %s\n", why);
        goto out;
    }
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, req_text, strlen(req_text), snap ? ZMQ_SNDMORE : 0) < 0 ||
        (snap && zmq_send(sock, snap, snap_len, 0) < 0)) {
        fprintf(stderr, "ssm-ctl: cannot send to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto out;
    }
    for (;;) {
        double left = timeout_s - (cli_now_s() - t0);
        cli_msg m;
        int got = left > 0 ? cli_msg_recv(sock, &m, left) : 0;
        if (got == 0) {
            fprintf(stderr, "ssm-ctl: no reply from %s within %.1f s\n", endpoint, timeout_s);
            goto out;
        }
        if (got < 0) {
            fprintf(stderr, "ssm-ctl: interrupted\n");
            goto out;
        }
        size_t l0 = 0, l1 = 0, l2 = 0;
        cli_msg_frame(&m, 0, &l0);
        const char *text = (const char *)cli_msg_frame(&m, 1, &l1);
        const uint8_t *extra = cli_msg_frame(&m, 2, &l2);
        json_error_t jerr;
        json_t *rep = (m.n_frames >= 2 && l0 == 0) ? json_loadb(text, l1, 0, &jerr) : NULL;
        if (!rep || !json_is_object(rep)) {
            fprintf(stderr, "ssm-ctl: malformed reply from %s (%d frames, not [\"\"][JSON])\n",
                    endpoint, m.n_frames);
            json_decref(rep);
            cli_msg_close(&m);
            goto out;
        }
        json_t *rid = json_object_get(rep, "id");
        if (rid && (!json_is_integer(rid) || json_integer_value(rid) != id)) {
            json_decref(rep); /* a late reply to someone else's request: keep waiting */
            cli_msg_close(&m);
            continue;
        }
        char *pretty = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (pretty) printf("%s\n", pretty);
        free(pretty);
        fflush(stdout);
        json_t *ok = json_object_get(rep, "ok");
        if (!json_is_true(ok)) {
            const char *code = json_string_value(json_object_get(rep, "error"));
            const char *msg = json_string_value(json_object_get(rep, "message"));
            fprintf(stderr, "ssm-ctl: %s failed: %s: %s\n", cmd, code ? code : "(no error code)",
                    msg ? msg : "(no message)");
        } else if (!strcmp(cmd, "snapshot")) {
            if (m.n_frames < 3)
                fprintf(stderr, "ssm-ctl: snapshot reply has no state frame\n");
            else if (write_file(file, extra, l2) == 0)
                rc = CLI_EXIT_OK;
        } else {
            rc = CLI_EXIT_OK;
        }
        json_decref(rep);
        cli_msg_close(&m);
        break;
    }
out:
    free(req_text);
    free(snap);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}
