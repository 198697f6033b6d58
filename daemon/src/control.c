/* SPDX-License-Identifier: MIT */
/* Control: JSON requests on the control ROUTER socket (docs/protocol.md);
 * each request gets exactly one reply, errors included, so a REQ client is
 * never left waiting.  Allocates per request (JSON), never per frame.
 *
 * Design note: two threads answer.  The control thread owns the ROUTER and
 * answers `status` itself, from what the run fixed at start-up, the counters
 * (atomic, srv.h) and the capture device's published description: a status
 * request waits neither for the loop's work (a batch of model steps, a read
 * of pushed audio, a stream opening) nor for the loop thread to get a core on
 * a busy machine; the control thread sleeps in zmq_poll and its connections
 * have a ZeroMQ I/O thread of their own (transport.h).  Every other command
 * touches the streams or their model states, which belong to the loop, so
 * the control thread passes the request unchanged through the relay (an
 * inproc PAIR) to the loop, whose handlers (one per "cmd", found through a
 * table) answer between the phases of its iterations as before, and passes
 * the reply back.  So do status requests that are not well-formed (the loop
 * answers and counts the error) and a status from a client whose earlier
 * request is still with the loop: each client's replies keep the order of its
 * requests.  At most CONTROL_IN_FLIGHT_MAX requests are with the loop; beyond,
 * the control thread reads no more until replies come back (the ROUTER's
 * per-client queues bound the rest). */
#include "srv.h"
#include "errf.h"
#include "model_info.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <jansson.h>

enum { CONTROL_IN_FLIGHT_MAX = 64 };

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sends the reply (freed) to the client of request frames f on sock: the
 * ROUTER (the control thread), or the relay (the loop, whose replies the
 * control thread passes on). */
static void control_reply(ssmd_srv *s, void *sock, zmq_msg_t *f, int k, json_t *reply, const void *extra,
                          size_t extra_len)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (!text) { /* never leave a REQ client waiting */
        text = strdup("{\"ok\":false,\"version\":1,\"error\":\"INTERNAL\",\"message\":\"reply could not be encoded\"}");
        extra = NULL;
        if (!text) return;
    }
    bool ok = zmq_send(sock, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok && k == 2) ok = zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok) ok = zmq_send(sock, text, strlen(text), extra ? ZMQ_SNDMORE | ZMQ_DONTWAIT : ZMQ_DONTWAIT) >= 0;
    if (ok && extra) ok = zmq_send(sock, extra, extra_len, ZMQ_DONTWAIT) >= 0;
    if (!ok) s->c.replies_dropped++;
    free(text);
}

/* Client text echoed in a reply (ssmd_errf_echo: never invalid JSON). */
static void ascii_safe(char *dst, size_t cap, const char *src)
{
    ssmd_errf_echo(dst, cap, src, src ? strlen(src) : 0);
}

/* A request field as the client sent it, for an error message: its JSON text
 * (cut, ASCII), or "nothing" when absent. */
static void field_echo(char *dst, size_t cap, const json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (text) ssmd_errf_echo(dst, cap, text, strlen(text));
    else snprintf(dst, cap, "nothing");
    free(text);
}

static json_t *control_error(ssmd_srv *s, json_t *id, const char *code, const char *msg)
{
    s->c.bad_requests++;
    json_t *o = json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "error", code, "message", msg, "version", 1);
    if (id) json_object_set(o, "id", id);
    return o;
}

/* One request being answered: the handler fills reply (an {"ok": true}
 * object with the id), or replaces it with an error; extra is a second
 * reply frame (a snapshot), malloc'd. */
typedef struct request {
    json_t *id, *reply;
    ssmd_srv_stream *st;           /* the "stream" named, when the command needs one */
    const char *sname;             /* the "stream" field as sent (NULL when absent or not a string) */
    const json_t *sfield;          /* the "stream" field, whatever it is (NULL when absent) */
    zmq_msg_t *f;
    int k, total;                  /* the JSON frame's index, the frames received */
    void *extra;
    size_t extra_len;
} request;

static void fail(ssmd_srv *s, request *r, const char *code, const char *msg)
{
    json_decref(r->reply);
    r->reply = control_error(s, r->id, code, msg);
}

/* The status reply's fields.  Runs on the control thread (on the loop for a
 * status passed on): it reads only what the run fixed at start-up (model,
 * runner, limits; s->mic.cap is set before the control thread starts and
 * cleared after it stops), atomics (the counters, the stream count, the
 * capture ring's drop count, the CURVE counts) and the device's description
 * that source_mic.c publishes under s->dev.mu. */
static void status_fill(ssmd_srv *s, json_t *reply, const ssmd_control_trace *tr)
{
    char epoch[32];
    snprintf(epoch, sizeof epoch, "0x%016llx", (unsigned long long)s->epoch);
    json_object_set_new(reply, "epoch", json_string(epoch));
    json_object_set_new(reply, "uptime_s", json_real(ssmd_now_s() - s->t_start));
    json_object_set_new(reply, "model", ssmd_model_info_json(s->model, s->model_path));
    json_object_set_new(reply, "streams", json_integer(ssmd_srv_active_streams(s)));
    const ssm_runner *crn = s->compute_runner;
    json_object_set_new(reply, "compute", json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}",
        "backend", ssm_model_backend(s->model), "note", ssm_model_backend_note(s->model),
        "kernels", ssm_runner_isa(crn), "weights", ssm_runner_weights(crn),
        "threads", crn ? ssm_runner_threads(crn) : 0, "max_streams", s->max_streams));
    json_t *dev = json_null();
    if (s->mic.cap) {
        pthread_mutex_lock(&s->dev.mu);
        dev = json_pack("{s:s, s:i, s:i, s:b, s:I, s:I}", "name", s->dev.name, "sample_rate_hz", s->dev.rate_hz,
                        "channels", s->dev.channels, "running", s->dev.running,
                        "capture_dropped", (json_int_t)ssmd_capture_overflows(s->mic.cap),
                        "failures", (json_int_t)s->c.device_failures);
        pthread_mutex_unlock(&s->dev.mu);
    }
    json_object_set_new(reply, "device", dev);
    json_object_set_new(reply, "counters", json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "frames", (json_int_t)s->c.frames, "dropped_samples", (json_int_t)s->c.dropped_samples,
        "published", (json_int_t)s->c.published, "publish_dropped", (json_int_t)s->c.publish_dropped,
        "bad_messages", (json_int_t)s->c.bad_messages, "bad_requests", (json_int_t)s->c.bad_requests,
        "state_resets", (json_int_t)s->c.state_resets, "nonfinite_samples", (json_int_t)s->c.nonfinite_samples,
        "replies_dropped", (json_int_t)s->c.replies_dropped, "subscriptions", (json_int_t)s->c.subscriptions,
        "monitor_dropped", (json_int_t)s->c.monitor_dropped,
        "input_clipped", (json_int_t)s->c.input_clipped, "output_clipped", (json_int_t)s->c.output_clipped,
        "reply_stalls", (json_int_t)s->c.reply_stalls, "push_lost_samples", (json_int_t)s->c.push_lost_samples,
        "push_discontinuities", (json_int_t)s->c.push_discontinuities,
        "live_frames", (json_int_t)s->c.live_frames, "bulk_frames", (json_int_t)s->c.bulk_frames,
        "ingest_blocked_ms", (json_int_t)(s->c.ingest_blocked_ns / 1000000u),
        "capture_read_ms", (json_int_t)(s->c.capture_ns / 1000000u)));
    json_object_set_new(reply, "limits", json_pack("{s:I, s:i, s:I, s:I, s:I}",
        "control_max_message_bytes", (json_int_t)SSMD_CONTROL_MAX_MSG,
        "ingest_max_payload_bytes", (json_int_t)s->cfg->ingest_max_payload, "ingest_queue_messages", SSMD_INGEST_HWM, "pub_hwm", (json_int_t)s->cfg->pub_hwm, "pub_sndbuf", (json_int_t)s->cfg->pub_sndbuf));
    json_object_set_new(reply, "curve", s->t.zap ? json_pack("{s:I, s:I, s:I}", "allowed_keys",
        (json_int_t)s->t.n_allow, "admitted", (json_int_t)s->t.zap_allowed, "refused",
        (json_int_t)s->t.zap_denied) : json_null());
    if (s->ctl_trace_on) /* CLOCK_MONOTONIC ns, and the answering thread's CPU time since its last empty look */
        json_object_set_new(reply, "trace", json_pack("{s:I, s:I, s:I, s:I, s:s}",
            "idle_ns", (json_int_t)tr->empty_ns, "read_ns", (json_int_t)tr->read_ns,
            "cpu_ns", (json_int_t)(tr->read_cpu_ns - tr->empty_cpu_ns),
            "reply_ns", (json_int_t)clock_ns(CLOCK_MONOTONIC), "thread", tr == &s->ctl_trace ? "loop" : "control"));
}

static void cmd_status(ssmd_srv *s, request *r)
{
    status_fill(s, r->reply, &s->ctl_trace);
}

static void cmd_streams(ssmd_srv *s, request *r)
{
    json_t *arr = json_array();
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *t = &s->streams[i];
        if (!t->used) continue;
        json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", t->name,
            "source", t->src->name, "sample_rate_hz", t->rate_hz, "frames", (json_int_t)t->frames,
            "samples_in", (json_int_t)t->in_samples, "samples_out", (json_int_t)t->out_samples,
            "state_resets", (json_int_t)t->resets, "nonfinite_samples", (json_int_t)t->in_nonfinite,
            "input_clipped", (json_int_t)t->in_clipped,
            "output_clipped", (json_int_t)t->out_clipped);
        ssmd_srv_checkpoint_json(s, t, o); /* cluster mode with checkpoints */
        json_array_append_new(arr, o);
    }
    json_object_set_new(r->reply, "streams", arr);
}

static void cmd_reset(ssmd_srv *s, request *r)
{
    ssm_state_reset(ssmd_srv_stream_state(s, r->st));
    ssmd_srv_event(s, r->st, "reset", "requested");
}

static void cmd_snapshot(ssmd_srv *s, request *r)
{
    size_t cap = ssm_state_bytes(s->model), written = 0;
    if (cap > (size_t)SSMD_CONTROL_MAX_MSG) {
        /* restore could not take it back: the control socket drops larger frames */
        char m[400];
        snprintf(m, sizeof m, "this model's state is %zu bytes, more than the %lld bytes a control message may "
                 "hold (restore could not send it back); snapshot such streams with the C API "
                 "(ssm_state_snapshot)", cap, (long long)SSMD_CONTROL_MAX_MSG);
        fail(s, r, "SNAPSHOT_TOO_LARGE", m);
        return;
    }
    void *buf = malloc(cap);
    if (!buf || ssm_state_snapshot(ssmd_srv_stream_state(s, r->st), buf, cap, &written) != SSM_OK) {
        free(buf);
        fail(s, r, "INTERNAL", "snapshot failed");
        return;
    }
    r->extra = buf;
    r->extra_len = written;
    json_object_set_new(r->reply, "bytes", json_integer((json_int_t)written));
}

static void cmd_restore(ssmd_srv *s, request *r)
{
    if (r->total != r->k + 2) {
        fail(s, r, "MISSING_FIELD", "restore needs the snapshot as a second frame");
        return;
    }
    size_t bytes = zmq_msg_size(&r->f[r->k + 1]);
    int rc = ssm_state_restore(ssmd_srv_stream_state(s, r->st), zmq_msg_data(&r->f[r->k + 1]), bytes);
    char m[400];
    if (rc == SSM_ERR_MISMATCH)
        fail(s, r, "SNAPSHOT_MISMATCH", "the snapshot was made with another model or format");
    else if (rc != SSM_OK) {
        snprintf(m, sizeof m, "the snapshot of %zu bytes (this model's are %zu bytes) is truncated or corrupt, "
                 "or holds an invalid value (non-finite, or an attention layer's frame counter that is not a "
                 "whole number in range)", bytes, ssm_state_bytes(s->model));
        fail(s, r, "BAD_SNAPSHOT", m);
    } else
        ssmd_srv_event(s, r->st, "reset", "restored from snapshot");
}

/* Cluster mode only (cluster.h): members, owners, this node's health. */
static void cmd_cluster(ssmd_srv *s, request *r)
{
    if (!s->cluster) {
        fail(s, r, "NOT_CLUSTERED", "this daemon runs standalone (no --cluster)");
        return;
    }
    json_t *o = ssmd_cluster_describe(s->cluster);
    if (!o) {
        fail(s, r, "INTERNAL", "out of memory");
        return;
    }
    json_object_set_new(o, "refused", json_integer((json_int_t)s->c.cluster_refused));
    json_object_set_new(o, "handed_over", json_integer((json_int_t)s->c.cluster_handed_over));
    json_object_set_new(o, "stale_closed", json_integer((json_int_t)s->c.cluster_stale_closed));
    json_object_set_new(r->reply, "cluster", o);
}

/* Which member owns (or would get) a stream; claims nothing. */
static void cmd_locate(ssmd_srv *s, request *r)
{
    if (!s->cluster) {
        fail(s, r, "NOT_CLUSTERED", "this daemon runs standalone (no --cluster)");
        return;
    }
    if (!r->sname || !ssmd_stream_name_valid(r->sname, strlen(r->sname))) {
        char m[200], got[100];
        field_echo(got, sizeof got, r->sfield);
        snprintf(m, sizeof m, "\"stream\" (a valid stream name) is required, got %s", got);
        fail(s, r, "MISSING_FIELD", m);
        return;
    }
    json_t *o = ssmd_cluster_locate(s->cluster, r->sname);
    if (!o) {
        fail(s, r, "INTERNAL", "out of memory");
        return;
    }
    json_object_update(r->reply, o);
    json_decref(o);
}

static void cmd_stop(ssmd_srv *s, request *r)
{
    (void)r;
    s->stop_requested = true;
}

static const struct command {
    const char *name;
    bool needs_stream;             /* "stream" must name a running stream */
    void (*handle)(ssmd_srv *s, request *r);
} commands[] = {
    { "status", false, cmd_status },     { "streams", false, cmd_streams },
    { "reset", true, cmd_reset },        { "snapshot", true, cmd_snapshot },
    { "restore", true, cmd_restore },    { "stop", false, cmd_stop },
    { "cluster", false, cmd_cluster },   { "locate", false, cmd_locate },
};

/* Parses and checks one request, then runs its handler; returns the reply. */
static json_t *dispatch(ssmd_srv *s, request *r, int n)
{
    json_error_t je;
    if (n <= r->k || r->total > r->k + 2)
        return control_error(s, NULL, "BAD_JSON", "expected one JSON frame (and a snapshot frame for restore)");
    json_t *req = json_loadb(zmq_msg_data(&r->f[r->k]), zmq_msg_size(&r->f[r->k]), JSON_REJECT_DUPLICATES, &je);
    if (!req || !json_is_object(req)) {
        char m[300];
        snprintf(m, sizeof m, "request is not a JSON object: %s", req ? "other JSON value" : je.text);
        json_decref(req);
        return control_error(s, NULL, "BAD_JSON", m);
    }
    r->id = json_object_get(req, "id");
    json_t *ver = json_object_get(req, "version");
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    const char *sname = json_string_value(json_object_get(req, "stream"));
    const struct command *c = NULL;
    for (size_t i = 0; cmd && i < sizeof commands / sizeof commands[0] && !c; i++)
        if (strcmp(cmd, commands[i].name) == 0) c = &commands[i];
    r->st = sname ? ssmd_srv_stream_find(s, sname) : NULL;
    r->sname = sname;
    r->sfield = json_object_get(req, "stream");
    char got[100];
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        r->reply = control_error(s, r->id, "BAD_VERSION", "\"version\": 1 is required");
    } else if (!cmd) {
        char m[160];
        field_echo(got, sizeof got, json_object_get(req, "cmd"));
        snprintf(m, sizeof m, "\"cmd\" (a string) is required, got %s", got);
        r->reply = control_error(s, r->id, "MISSING_FIELD", m);
    } else if (c && c->handle != cmd_restore && r->total > r->k + 1) {
        /* a frame after the JSON is restore's snapshot; any other command refuses it (stop
         * with a stray frame used to stop the daemon) */
        char m[160];
        snprintf(m, sizeof m, "%s takes one JSON frame, got %d (only restore takes a second, the snapshot)", cmd,
                 r->total - r->k);
        r->reply = control_error(s, r->id, "BAD_JSON", m);
    } else if (c && c->needs_stream && !sname) {
        char m[200];
        field_echo(got, sizeof got, r->sfield);
        snprintf(m, sizeof m, "%s needs \"stream\" (the name of a running stream, a string), got %s", cmd, got);
        r->reply = control_error(s, r->id, "MISSING_FIELD", m);
    } else if (c && c->needs_stream && !r->st) {
        char m[200], safe[100];
        ascii_safe(safe, sizeof safe, sname);
        snprintf(m, sizeof m, "no stream named '%s'", safe);
        r->reply = control_error(s, r->id, "NO_SUCH_STREAM", m);
    } else if (!c) {
        char m[220], safe[100];
        ascii_safe(safe, sizeof safe, cmd);
        snprintf(m, sizeof m, "unknown command '%s' (status, streams, reset, snapshot, restore, stop, cluster, "
                 "locate)", safe);
        r->reply = control_error(s, r->id, "UNKNOWN_COMMAND", m);
    } else {
        r->reply = json_pack("{s:b, s:i}", "ok", 1, "version", 1);
        if (r->id) json_object_set(r->reply, "id", r->id);
        c->handle(s, r);
    }
    json_decref(req); /* the reply holds its own reference to the id */
    return r->reply;
}

static void trace_mark(const ssmd_srv *s, uint64_t *ns, uint64_t *cpu_ns)
{
    if (!s->ctl_trace_on) return;
    *ns = clock_ns(CLOCK_MONOTONIC);
    *cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

void ssmd_control_handle(ssmd_srv *s)
{
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
    for (;;) {
        if ((n = ssmd_transport_recv(s->t.relay_loop, f, &total)) < 0) {
            trace_mark(s, &s->ctl_trace.empty_ns, &s->ctl_trace.empty_cpu_ns);
            break;
        }
        trace_mark(s, &s->ctl_trace.read_ns, &s->ctl_trace.read_cpu_ns);
        request r = { .f = f, .total = total, .k = (n > 1 && zmq_msg_size(&f[1]) == 0) ? 2 : 1 };
        json_t *reply = dispatch(s, &r, n);
        control_reply(s, s->t.relay_loop, f, r.k, reply, r.extra, r.extra_len);
        free(r.extra);
        ssmd_transport_frames_close(f, n);
    }
}

/* ---- the control thread ---------------------------------------------------- */

struct ssmd_control {
    ssmd_srv *s;
    pthread_t thread;
    int n_in_flight;                 /* requests with the loop, not answered yet */
    struct {
        uint8_t id[256];             /* a client's ROUTER identity (at most 255 bytes) */
        size_t len;
        int n;                       /* its requests with the loop; 0: the entry is free */
    } in_flight[CONTROL_IN_FLIGHT_MAX];
    ssmd_control_trace trace;
};

static int in_flight_find(const ssmd_control *c, zmq_msg_t *id)
{
    for (int i = 0; i < CONTROL_IN_FLIGHT_MAX; i++)
        if (c->in_flight[i].n > 0 && c->in_flight[i].len == zmq_msg_size(id) &&
            memcmp(c->in_flight[i].id, zmq_msg_data(id), c->in_flight[i].len) == 0)
            return i;
    return -1;
}

/* A request of the client identified by id goes to the loop (there is a free
 * entry: fewer than CONTROL_IN_FLIGHT_MAX requests are in flight). */
static void in_flight_add(ssmd_control *c, zmq_msg_t *id)
{
    int i = in_flight_find(c, id);
    for (int j = 0; i < 0 && j < CONTROL_IN_FLIGHT_MAX; j++)
        if (c->in_flight[j].n == 0 && zmq_msg_size(id) <= sizeof c->in_flight[j].id) {
            i = j;
            c->in_flight[i].len = zmq_msg_size(id);
            memcpy(c->in_flight[i].id, zmq_msg_data(id), c->in_flight[i].len);
        }
    if (i >= 0) c->in_flight[i].n++;
    c->n_in_flight++;
}

static void in_flight_done(ssmd_control *c, zmq_msg_t *id)
{
    int i = in_flight_find(c, id);
    if (i >= 0) c->in_flight[i].n--;
    if (c->n_in_flight > 0) c->n_in_flight--;
}

/* The reply when the request is a well-formed status, which the control
 * thread answers; NULL for everything else (the loop's: its errors are
 * counted there, with the same checks as dispatch). */
static json_t *front_status(ssmd_control *c, zmq_msg_t *f, int n, int total, int k)
{
    if (n <= k || total != k + 1) return NULL; /* a stray frame: the loop's dispatch refuses it */
    json_t *req = json_loadb(zmq_msg_data(&f[k]), zmq_msg_size(&f[k]), JSON_REJECT_DUPLICATES, NULL), *reply = NULL;
    if (json_is_object(req)) {
        json_t *ver = json_object_get(req, "version"), *id = json_object_get(req, "id");
        const char *cmd = json_string_value(json_object_get(req, "cmd"));
        if (json_is_integer(ver) && json_integer_value(ver) == 1 && cmd && strcmp(cmd, "status") == 0 &&
            (reply = json_pack("{s:b, s:i}", "ok", 1, "version", 1))) {
            if (id) json_object_set(reply, "id", id);
            status_fill(c->s, reply, &c->trace);
        }
    }
    json_decref(req);
    return reply;
}

/* A reply of the loop, [identity][...], on to its client. */
static void front_relay_reply(ssmd_control *c, zmq_msg_t *f, int n)
{
    in_flight_done(c, &f[0]);
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        ok = zmq_msg_send(&f[i], c->s->t.control, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) >= 0;
    if (!ok) c->s->c.replies_dropped++;
}

static void *control_main(void *arg)
{
    ssmd_control *c = arg;
    ssmd_srv *s = c->s;
    void *router = s->t.control, *relay = s->t.relay_front;
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
#ifdef __linux__
    prctl(PR_SET_NAME, "ssmd-control", 0, 0, 0);
#endif
    for (;;) {
        zmq_pollitem_t items[2] = { { relay, 0, ZMQ_POLLIN, 0 },
                                    { router, 0, c->n_in_flight < CONTROL_IN_FLIGHT_MAX ? ZMQ_POLLIN : 0, 0 } };
        if (zmq_poll(items, 2, -1) < 0) {
            if (zmq_errno() == EINTR) continue;
            ssmd_log(SSMD_LOG_ERROR, "control thread: poll: %s; control requests are no longer answered",
                     zmq_strerror(zmq_errno()));
            return NULL;
        }
        /* the loop's replies; a message of one frame is ssmd_control_stop's */
        while ((n = ssmd_transport_recv(relay, f, &total)) >= 0) {
            if (total == 1) {
                ssmd_transport_frames_close(f, n);
                return NULL;
            }
            front_relay_reply(c, f, n);
            ssmd_transport_frames_close(f, n);
        }
        while (c->n_in_flight < CONTROL_IN_FLIGHT_MAX) {
            if ((n = ssmd_transport_recv(router, f, &total)) < 0) {
                trace_mark(s, &c->trace.empty_ns, &c->trace.empty_cpu_ns);
                break;
            }
            trace_mark(s, &c->trace.read_ns, &c->trace.read_cpu_ns);
            int k = (n > 1 && zmq_msg_size(&f[1]) == 0) ? 2 : 1;
            /* a client with a request at the loop: this one follows it there */
            json_t *reply = in_flight_find(c, &f[0]) < 0 ? front_status(c, f, n, total, k) : NULL;
            if (reply) {
                control_reply(s, router, f, k, reply, NULL, 0);
            } else {
                in_flight_add(c, &f[0]);
                for (int i = 0; i < n; i++) zmq_msg_send(&f[i], relay, i + 1 < n ? ZMQ_SNDMORE : 0);
            }
            ssmd_transport_frames_close(f, n);
        }
    }
}

int ssmd_control_start(ssmd_srv *s)
{
    if (!s->t.control) return 0;
    ssmd_control *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "ssmd: control thread: out of memory\n");
        return -1;
    }
    c->s = s;
    /* the signals stay with the loop thread, whose poll they interrupt */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int e = pthread_create(&c->thread, NULL, control_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        fprintf(stderr, "ssmd: control thread: %s\n", strerror(e));
        free(c);
        return -1;
    }
    s->ctl_front = c;
    return 0;
}

void ssmd_control_stop(ssmd_srv *s)
{
    ssmd_control *c = s->ctl_front;
    if (!c) return;
    zmq_send(s->t.relay_loop, "", 0, 0); /* one frame: stop */
    pthread_join(c->thread, NULL);
    free(c);
    s->ctl_front = NULL;
}
