/* SPDX-License-Identifier: MIT */
/* The PUB sink: a stream's audio, per-frame outputs and events as
 * [topic][header][payload] messages on the XPUB socket (docs/protocol.md),
 * its <stream>/meta/ description, and the re-send of metas to new
 * subscribers.  Without sockets (a file-to-file job) nothing is sent but the
 * per-topic sequence numbers still advance.  Loop thread; the audio and frame
 * hooks do not allocate (ZeroMQ copies into its own messages). */
#include "srv.h"
#include "model_info.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void publish(ssmd_srv *s, ssmd_srv_stream *st, uint16_t kind, uint16_t dtype, uint32_t flags,
                    uint32_t rows, uint32_t cols, uint64_t first_sample, const void *payload,
                    size_t bytes)
{
    ssmd_header h = { .kind = kind, .dtype = dtype, .flags = flags, .sample_rate_hz = (uint32_t)st->rate_hz,
                      .rows = rows, .cols = cols,
                      .hop_samples = (uint32_t)s->fe.hop_samples, .seq = st->seq[kind]++,
                      .first_sample = first_sample,
                      .capture_ns = 0, .epoch = s->epoch };
    if (st->clock_ns) { /* live (mic) streams */
        /* the input sample first_sample (audio: the output sample's input,
         * latency earlier in live mode) was captured at clock_ns - age */
        double lat = kind == SSMD_KIND_AUDIO
                         ? (double)s->fe.latency_samples * st->rate_hz / s->fe.sample_rate_hz : 0.0;
        double age_s = ((double)st->clock_sample - ((double)first_sample - lat)) / st->rate_hz;
        h.capture_ns = st->clock_ns - (uint64_t)(age_s > 0 ? age_s * 1e9 : 0);
    }
    if (!s->t.pub) return;
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, kind);
    if (ssmd_transport_send(s->t.pub, NULL, 0, topic, &h, payload, bytes) == 0) s->c.published++;
    else s->c.publish_dropped++;
}

static char *audio_meta_json(ssmd_srv *s, ssmd_srv_stream *st)
{
    /* ingest_max_payload_bytes: what a client may push in one message (it
     * splits longer pushes; SSMD_INGEST_MIN_PAYLOAD_BYTES until it saw this) */
    char epoch[32];
    snprintf(epoch, sizeof epoch, "0x%016llx", (unsigned long long)s->epoch);
    json_t *heads = json_array();
    unsigned hm = ssm_model_heads(s->model);
    if (hm & SSM_MODEL_HEAD_MASK) json_array_append_new(heads, json_string("mask"));
    if (hm & SSM_MODEL_HEAD_VAD) json_array_append_new(heads, json_string("vad"));
    if (hm & SSM_MODEL_HEAD_LM) json_array_append_new(heads, json_string("lm"));
    json_array_append_new(heads, json_string("embedding"));
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:s, s:i}, s:o, s:o, s:I, s:s, s:I}",
        "stream", st->name, "source", st->src->name, "sample_rate_hz", st->rate_hz,
        "channels", 1, "model_rate_hz", s->fe.sample_rate_hz, "n_fft", s->fe.n_fft,
        "hop_samples", s->fe.hop_samples, "latency_samples", s->fe.latency_samples,
        "features", "kind", s->fe.features == SSMD_FEATURES_LOG_MEL ? "log_mel"
                            : s->fe.features == SSMD_FEATURES_LOG_POWER_PITCH ? "log_power_pitch" : "log_power",
        "n", s->fe.n_features, "heads", heads, "model", ssmd_model_info_json(s->model, s->model_path),
        "state_bytes", (json_int_t)ssm_state_bytes(s->model), "epoch", epoch,
        "ingest_max_payload_bytes", (json_int_t)s->cfg->ingest_max_payload);
    /* a pushing client that keeps at most this many frames pushed ahead of the results it
     * received always fits the stream's pending input, so its messages never stop the ingest
     * socket for the others (source_push.c) */
    if (o && st->src == &ssmd_source_push)
        json_object_set_new(o, "ingest_window_samples", json_integer((json_int_t)st->pend_cap));
    ssmd_srv_checkpoint_json(s, st, o); /* cluster mode with checkpoints */
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void publish_text(ssmd_srv *s, ssmd_srv_stream *st, uint16_t kind, const char *text)
{
    if (text) publish(s, st, kind, SSMD_DTYPE_UTF8, 0, 1, (uint32_t)strlen(text), st->in_samples, text, strlen(text));
}

char *ssmd_pub_meta_json(ssmd_srv *s, ssmd_srv_stream *st)
{
    return st->src->meta_json ? st->src->meta_json(s, st) : audio_meta_json(s, st);
}

void ssmd_pub_meta(ssmd_srv *s, ssmd_srv_stream *st)
{
    char *m = ssmd_pub_meta_json(s, st);
    publish_text(s, st, SSMD_KIND_META, m);
    free(m);
}


/* ---- XPUB subscriptions ------------------------------------------------- */

/* Subscriptions mark the metas they match as due; each due meta is
 * published once per loop iteration, however many subscriptions arrived
 * (a storm of subscriptions must not multiply into a storm of metas), and at
 * most MAX_SUBS_PER_ITER subscription messages are read per iteration. */
enum { MAX_SUBS_PER_ITER = 256 };
void ssmd_pub_handle_subscriptions(ssmd_srv *s)
{
    zmq_msg_t m;
    for (int k = 0; k < MAX_SUBS_PER_ITER; k++) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->t.pub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        const uint8_t *d = zmq_msg_data(&m);
        size_t len = zmq_msg_size(&m);
        if (len >= 1 && d[0] == 1) {
            s->c.subscriptions++;
            const char *prefix = (const char *)d + 1;
            size_t pl = len - 1;
            for (int i = 0; i < s->max_streams; i++) {
                ssmd_srv_stream *st = &s->streams[i];
                if (!st->used) continue;
                char topic[SSMD_STREAM_NAME_MAX + 16];
                int tl = ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_META);
                if (tl > 0 && (size_t)tl >= pl && memcmp(topic, prefix, pl) == 0) st->meta_due = true;
            }
        }
        zmq_msg_close(&m);
    }
    /* Streams held back until wait_subscribers arrived are announced once
     * they have: an XPUB hands a subscription to the application only after
     * registering it, so what is published from now on reaches them.  Until
     * then their metas are not re-sent (the announcement carries it). */
    bool waiting = ssmd_srv_waiting_subscribers(s);
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used) continue;
        if (st->start_due) {
            st->meta_due = false;
            if (!waiting) ssmd_srv_stream_announce(s, st);
        } else if (st->meta_due) {
            st->meta_due = false;
            ssmd_pub_meta(s, st);
        }
    }
}

/* ---- the sink --------------------------------------------------------- */

static int pub_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    (void)self;
    publish(s, st, SSMD_KIND_AUDIO, SSMD_DTYPE_F32, flags, (uint32_t)n, 1, st->out_samples, x,
            n * sizeof(float));
    return 0;
}

static void pub_frame(ssmd_srv *s, ssmd_srv_stream *st, void *self, const ssmd_frame_out *f)
{
    (void)self;
    publish(s, st, SSMD_KIND_FEATURES, SSMD_DTYPE_F32, f->flags, 1, f->n_features, f->first_sample,
            f->features, f->n_features * sizeof(float));
    if (f->vad)
        publish(s, st, SSMD_KIND_VAD, SSMD_DTYPE_F32, f->flags, 1, 1, f->head_first_sample, f->vad,
                sizeof(float));
    if (f->mask)
        publish(s, st, SSMD_KIND_MASK, SSMD_DTYPE_F32, f->flags, 1, f->n_bins, f->head_first_sample, f->mask,
                f->n_bins * sizeof(float));
    if (f->embedding)
        publish(s, st, SSMD_KIND_EMBEDDING, SSMD_DTYPE_F32, f->flags, 1, f->d_model, f->first_sample,
                f->embedding, f->d_model * sizeof(float));
}

static void pub_event(ssmd_srv *s, ssmd_srv_stream *st, void *self, const char *json)
{
    (void)self;
    publish_text(s, st, SSMD_KIND_EVENT, json);
}

const ssmd_sink_ops ssmd_sink_pub = { .name = "pub", .audio = pub_audio, .frame = pub_frame, .event = pub_event };
