/* SPDX-License-Identifier: MIT */
/* Control: JSON requests on the control ROUTER socket (docs/protocol.md),
 * one handler per "cmd" found through a table; each request gets exactly one
 * reply, errors included, so a REQ client is never left waiting.  Loop
 * thread; allocates per request (JSON), never per frame. */
#include "srv.h"
#include "model_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void control_reply(ssmd_srv *s, zmq_msg_t *f, int k, json_t *reply, const void *extra, size_t extra_len)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (!text) { /* never leave a REQ client waiting */
        text = strdup("{\"ok\":false,\"version\":1,\"error\":\"INTERNAL\",\"message\":\"reply could not be encoded\"}");
        extra = NULL;
        if (!text) return;
    }
    bool ok = zmq_send(s->t.control, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok && k == 2) ok = zmq_send(s->t.control, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok) ok = zmq_send(s->t.control, text, strlen(text), extra ? ZMQ_SNDMORE | ZMQ_DONTWAIT : ZMQ_DONTWAIT) >= 0;
    if (ok && extra) ok = zmq_send(s->t.control, extra, extra_len, ZMQ_DONTWAIT) >= 0;
    if (!ok) s->c.replies_dropped++;
    free(text);
}

/* Client text echoed in a reply: non-printable and non-ASCII bytes become
 * '?', so a name cut in the middle of a UTF-8 character can never make the
 * reply invalid JSON. */
static void ascii_safe(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src && *src && n + 1 < cap; src++)
        dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
    dst[n] = '\0';
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
    const char *sname;             /* the "stream" field as sent (NULL when absent) */
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

static void cmd_status(ssmd_srv *s, request *r)
{
    json_t *reply = r->reply;
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
    json_object_set_new(reply, "device", s->mic.cap ? json_pack("{s:s, s:i, s:i, s:b, s:I, s:I}",
        "name", ssmd_capture_device_name(s->mic.cap), "sample_rate_hz", ssmd_capture_rate_hz(s->mic.cap),
        "channels", ssmd_capture_channels(s->mic.cap), "running", !s->mic.failed,
        "capture_dropped", (json_int_t)ssmd_capture_overflows(s->mic.cap),
        "failures", (json_int_t)s->c.device_failures) : json_null());
    json_object_set_new(reply, "counters", json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "frames", (json_int_t)s->c.frames, "dropped_samples", (json_int_t)s->c.dropped_samples,
        "published", (json_int_t)s->c.published, "publish_dropped", (json_int_t)s->c.publish_dropped,
        "bad_messages", (json_int_t)s->c.bad_messages, "bad_requests", (json_int_t)s->c.bad_requests,
        "state_resets", (json_int_t)s->c.state_resets, "nonfinite_samples", (json_int_t)s->c.nonfinite_samples,
        "replies_dropped", (json_int_t)s->c.replies_dropped, "subscriptions", (json_int_t)s->c.subscriptions,
        "monitor_dropped", (json_int_t)s->c.monitor_dropped,
        "input_clipped", (json_int_t)s->c.input_clipped, "output_clipped", (json_int_t)s->c.output_clipped,
        "reply_stalls", (json_int_t)s->c.reply_stalls, "push_lost_samples", (json_int_t)s->c.push_lost_samples,
        "live_frames", (json_int_t)s->c.live_frames, "bulk_frames", (json_int_t)s->c.bulk_frames,
        "ingest_blocked_ms", (json_int_t)(1e3 * s->c.ingest_blocked_s),
        "capture_read_ms", (json_int_t)(1e3 * s->c.capture_s)));
    json_object_set_new(reply, "limits", json_pack("{s:I, s:i, s:I, s:I}",
        "ingest_max_payload_bytes", (json_int_t)s->cfg->ingest_max_payload, "ingest_queue_messages",
        SSMD_INGEST_HWM, "pub_hwm", (json_int_t)s->cfg->pub_hwm, "pub_sndbuf", (json_int_t)s->cfg->pub_sndbuf));
    json_object_set_new(reply, "curve", s->t.zap ? json_pack("{s:I, s:I, s:I}", "allowed_keys",
        (json_int_t)s->t.n_allow, "admitted", (json_int_t)s->t.zap_allowed, "refused",
        (json_int_t)s->t.zap_denied) : json_null());
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
    int rc = ssm_state_restore(ssmd_srv_stream_state(s, r->st), zmq_msg_data(&r->f[r->k + 1]),
                               zmq_msg_size(&r->f[r->k + 1]));
    if (rc != SSM_OK)
        fail(s, r, rc == SSM_ERR_MISMATCH ? "SNAPSHOT_MISMATCH" : "BAD_SNAPSHOT",
             rc == SSM_ERR_MISMATCH ? "the snapshot was made with another model or format"
                                    : "the snapshot is truncated or corrupt, or holds an invalid value "
                                      "(non-finite, or an attention layer's frame counter that is not "
                                      "a whole number in range)");
    else
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
        fail(s, r, "MISSING_FIELD", "\"stream\" (a valid stream name) is required");
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
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        r->reply = control_error(s, r->id, "BAD_VERSION", "\"version\": 1 is required");
    } else if (!cmd) {
        r->reply = control_error(s, r->id, "MISSING_FIELD", "\"cmd\" (a string) is required");
    } else if (c && c->needs_stream && !sname) {
        r->reply = control_error(s, r->id, "MISSING_FIELD", "\"stream\" is required");
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

void ssmd_control_handle(ssmd_srv *s)
{
    zmq_msg_t f[SSMD_TRANSPORT_MAX_FRAMES];
    int total = 0, n;
    while ((n = ssmd_transport_recv(s->t.control, f, &total)) >= 0) {
        request r = { .f = f, .total = total, .k = (n > 1 && zmq_msg_size(&f[1]) == 0) ? 2 : 1 };
        json_t *reply = dispatch(s, &r, n);
        control_reply(s, f, r.k, reply, r.extra, r.extra_len);
        free(r.extra);
        ssmd_transport_frames_close(f, n);
    }
}
