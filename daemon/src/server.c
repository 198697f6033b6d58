/* Design note (see server.h for why one loop thread).  One iteration:
 *   1. zmq_poll the three sockets (timeout 0 while there is work, else a few ms);
 *   2. XPUB subscriptions → re-send the matching <stream>/meta/ messages;
 *   3. control requests → JSON replies; ingest messages → per-stream pending input;
 *   4. sources: the file input (paced or as fast as possible);
 *   5. the engine: push pending input into every stream, step all streams
 *      that have a frame ready as one batch, publish per-frame topics, pop the
 *      output audio to its sinks (PUB, the pushing client, the output file);
 *   6. streams whose input ended and whose output is drained are closed.
 * Memory is bounded: each stream's pending input holds at most
 * PENDING_SECONDS of audio.  Live sources (the capture device) drop what
 * does not fit, count it and flag a discontinuity; client pushes are never
 * dropped: a message larger than the room is fed in parts with the engine
 * run in between, and the ingest socket is read only while there is room, so
 * a fast pusher is slowed down by ZeroMQ's flow control instead. */
#include "server.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "audio_device.h"
#include "dsp/audio_file.h"
#include "dsp/features.h"
#include "frontend.h"
#include "generate.h"
#include "ssm/model.h"
#include "ssmd/protocol.h"
#include "stream.h"

enum { OUT_CHUNK = 4096, FILE_CHUNK = 4096, PENDING_SECONDS = 4, POLL_MS = 4 };
/* ingest messages: 8 MiB (2 M float samples, 43 s at 48 kHz) at most, 32
 * queued per client; control messages 16 MiB (snapshots are state-sized);
 * at most 64 ingest messages handled per loop iteration */
#define INGEST_MAX_MSG ((int64_t)8 * 1024 * 1024 + 4096)
#define CONTROL_MAX_MSG ((int64_t)16 * 1024 * 1024)
enum { INGEST_HWM = 32, MAX_INGEST_PER_ITER = 64 };

enum { SRC_FILE, SRC_PUSH, SRC_MIC, SRC_GEN };
static const char *const source_names[] = { "file", "push", "mic", "generate" };

typedef struct srv_stream {
    bool used, finished, ended, eos_sent, meta_due;
    char name[SSMD_STREAM_NAME_MAX + 1];
    int source;
    int rate_hz;
    int gen_index;                /* SRC_GEN: the generator's stream (st is NULL) */
    ssmd_stream *st;
    float *pend;
    size_t pend_pos, pend_len, pend_cap;
    bool eos;                     /* no more input will come */
    uint64_t seq[9];              /* per kind */
    uint64_t in_samples;          /* input samples accepted */
    uint64_t out_samples;         /* output samples emitted */
    uint64_t frames, resets, dropped_samples;
    uint32_t flags_next;          /* flags for the next audio message */
    uint8_t owner[256];
    size_t owner_len;
    uint64_t clock_ns, clock_sample; /* wall clock of input sample clock_sample (mic) */
    double t_open;                   /* when the stream started (monotonic s) */
    double t_last_in;                /* last input (push streams: idle timeout) */
    dsp_audio_writer *writer;
    double vad_sum;
} srv_stream;

typedef struct counters {
    uint64_t frames, dropped_samples, published, publish_dropped, bad_messages, bad_requests,
        state_resets, nonfinite_samples, replies_dropped, subscriptions, capture_dropped,
        device_failures, monitor_dropped;
} counters;

typedef struct server {
    ssmd_config *cfg;
    const char *model_path;
    volatile sig_atomic_t *stop;
    const ssmd_server_control *ctl;
    bool stop_requested;
    int log_level;
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *mb;
    ssm_runner *runner;
    void *ctx, *pub, *ingest, *control, *zap;
    char curve_secret[41];            /* Z85 server secret key, "" when CURVE is off */
    uint8_t (*allow)[32];             /* allowed client public keys (binary) */
    size_t n_allow;
    uint64_t zap_denied, zap_allowed;
    srv_stream *streams;
    int max_streams;
    uint64_t epoch;
    double t_start;
    float *features, *mask, *vad, *emb, *outbuf;
    ssm_state **states;
    int *batch;
    unsigned *step_flags;             /* SSM_FLAG_* per batch row of the last step */
    /* file input */
    dsp_audio_reader *reader;
    int file_slot, file_channels;
    float *file_buf, *file_mono;
    bool file_mode;
    double file_t0;
    /* capture device */
    ssmd_capture *cap;
    ssmd_playback *mon;
    int mic_slots[64], n_mic;
    float *cap_buf, *cap_chan;
    uint64_t cap_dropped_seen;
    double cap_check_t;
    bool cap_failed;
    /* generation (--generate-s with --generate-publish): the token model's
     * streams gen0, gen1, ... instead of the audio pipeline */
    ssmd_genjob *gen;
    float *gen_buf;                   /* {block} one stream's samples of a block */
    double gen_t0;                    /* when sample 0 was due (monotonic s), 0 until started */
    uint64_t gen_resets_seen;
    bool gen_done;                    /* every stream ended, the output file closed */
    counters c;
} server;

/* ---- logging ---------------------------------------------------------- */

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

static void slog(const server *s, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void slog(const server *s, int level, const char *fmt, ...)
{
    if (level > s->log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("ssmd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- publishing ------------------------------------------------------- */

/* Sends [topic][header][payload] on sock (to identity first when given).
 * Never blocks: a full queue drops the message; returns 0 sent, -1 dropped. */
static int send_msg(void *sock, const uint8_t *identity, size_t id_len, const char *topic,
                    const ssmd_header *h, const void *payload, size_t bytes)
{
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, h);
    if (identity && zmq_send(sock, identity, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(sock, payload, bytes, ZMQ_DONTWAIT) < 0) return -1;
    return 0;
}

static void publish(server *s, srv_stream *st, uint16_t kind, uint16_t dtype, uint32_t flags,
                    uint32_t rows, uint32_t cols, uint64_t first_sample, const void *payload,
                    size_t bytes)
{
    ssmd_header h = { .kind = kind, .dtype = dtype, .flags = flags, .sample_rate_hz = (uint32_t)st->rate_hz,
                      .rows = rows, .cols = cols,
                      .hop_samples = (uint32_t)s->fe.hop_samples, .seq = st->seq[kind]++,
                      .first_sample = first_sample,
                      .capture_ns = 0, .epoch = s->epoch };
    if (st->source == SRC_MIC && st->clock_ns) {
        /* the input sample first_sample (audio: the output sample's input,
         * latency earlier in live mode) was captured at clock_ns - age */
        double lat = kind == SSMD_KIND_AUDIO
                         ? (double)s->fe.latency_samples * st->rate_hz / s->fe.sample_rate_hz : 0.0;
        double age_s = ((double)st->clock_sample - ((double)first_sample - lat)) / st->rate_hz;
        h.capture_ns = st->clock_ns - (uint64_t)(age_s > 0 ? age_s * 1e9 : 0);
    }
    if (!s->pub) return;
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, kind);
    if (send_msg(s->pub, NULL, 0, topic, &h, payload, bytes) == 0) s->c.published++;
    else s->c.publish_dropped++;
}

static char *meta_json(server *s, srv_stream *st)
{
    char hash[32], epoch[32];
    snprintf(hash, sizeof hash, "0x%016llx", (unsigned long long)ssm_model_hash(s->model));
    snprintf(epoch, sizeof epoch, "0x%016llx", (unsigned long long)s->epoch);
    if (st->source == SRC_GEN) { /* one model step per sample, mu-law codes in and out */
        const char *name = ssm_model_meta(s->model, "name");
        json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:s, s:i}, s:[s], s:{s:s, s:s}, "
                              "s:I, s:s, s:I, s:I, s:I}",
            "stream", st->name, "source", source_names[st->source], "sample_rate_hz", st->rate_hz,
            "channels", 1, "model_rate_hz", st->rate_hz, "n_fft", 1, "hop_samples", 1, "latency_samples", 0,
            "features", "kind", "mulaw", "n", 256, "heads", "lm", "model", "name", name ? name : s->model_path,
            "hash", hash, "state_bytes", (json_int_t)ssm_state_bytes(s->model), "epoch", epoch,
            "seed", (json_int_t)s->cfg->seed + st->gen_index,
            "block_samples", (json_int_t)ssmd_genjob_block_samples(s->gen),
            "total_samples", (json_int_t)s->cfg->generate_s * st->rate_hz);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return text;
    }
    json_t *heads = json_array();
    unsigned hm = ssm_model_heads(s->model);
    if (hm & SSM_MODEL_HEAD_MASK) json_array_append_new(heads, json_string("mask"));
    if (hm & SSM_MODEL_HEAD_VAD) json_array_append_new(heads, json_string("vad"));
    if (hm & SSM_MODEL_HEAD_LM) json_array_append_new(heads, json_string("lm"));
    json_array_append_new(heads, json_string("embedding"));
    const char *name = ssm_model_meta(s->model, "name");
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:s, s:i}, s:o, s:{s:s, s:s}, s:I, s:s}",
        "stream", st->name, "source", source_names[st->source], "sample_rate_hz", st->rate_hz,
        "channels", 1, "model_rate_hz", s->fe.sample_rate_hz, "n_fft", s->fe.n_fft,
        "hop_samples", s->fe.hop_samples, "latency_samples", s->fe.latency_samples,
        "features", "kind", s->fe.features == SSMD_FEATURES_LOG_MEL ? "log_mel" : "log_power",
        "n", s->fe.n_features, "heads", heads, "model", "name", name ? name : s->model_path,
        "hash", hash, "state_bytes", (json_int_t)ssm_state_bytes(s->model), "epoch", epoch);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void publish_text(server *s, srv_stream *st, uint16_t kind, const char *text)
{
    if (text) publish(s, st, kind, SSMD_DTYPE_UTF8, 0, 1, (uint32_t)strlen(text), st->in_samples, text, strlen(text));
}

static void publish_meta(server *s, srv_stream *st)
{
    char *m = meta_json(s, st);
    publish_text(s, st, SSMD_KIND_META, m);
    free(m);
}

static void publish_event(server *s, srv_stream *st, const char *event, const char *reason)
{
    json_t *o = json_pack("{s:s, s:s}", "event", event, "stream", st->name);
    if (reason) json_object_set_new(o, "reason", json_string(reason));
    char *text = json_dumps(o, JSON_COMPACT);
    publish_text(s, st, SSMD_KIND_EVENT, text);
    free(text);
    json_decref(o);
}

/* ---- streams ---------------------------------------------------------- */

static srv_stream *find_stream(server *s, const char *name)
{
    for (int i = 0; i < s->max_streams; i++)
        if (s->streams[i].used && strcmp(s->streams[i].name, name) == 0) return &s->streams[i];
    return NULL;
}

static int active_streams(const server *s)
{
    int n = 0;
    for (int i = 0; i < s->max_streams; i++) n += s->streams[i].used;
    return n;
}

static void stream_close(server *s, srv_stream *st)
{
    ssmd_stream_destroy(st->st);
    free(st->pend);
    if (st->writer) dsp_audio_writer_abort(st->writer);
    memset(st, 0, sizeof *st);
    (void)s;
}

/* Claims a free slot; returns NULL with err set when none or on failure. */
static srv_stream *stream_open(server *s, const char *name, int source, int rate_hz, bool aligned,
                               char *err, size_t cap)
{
    srv_stream *st = NULL;
    for (int i = 0; i < s->max_streams && !st; i++)
        if (!s->streams[i].used) st = &s->streams[i];
    if (!st) {
        snprintf(err, cap, "TOO_MANY_STREAMS");
        return NULL;
    }
    dsp_resample_quality q = strcmp(s->cfg->resample_quality, "fast") == 0     ? DSP_RESAMPLE_FASTEST
                             : strcmp(s->cfg->resample_quality, "medium") == 0 ? DSP_RESAMPLE_MEDIUM
                                                                                : DSP_RESAMPLE_BEST;
    ssmd_stream_config sc = { .in_rate_hz = rate_hz, .align_output = aligned, .quality = q };
    memset(st, 0, sizeof *st);
    if (source != SRC_GEN) { /* generated streams come from s->gen, not the audio pipeline */
        st->st = ssmd_stream_create(s->model, &s->fe, s->mb, &sc, err, cap);
        if (!st->st) return NULL;
        st->pend_cap = (size_t)rate_hz * PENDING_SECONDS;
        st->pend = malloc(st->pend_cap * sizeof(float));
        if (!st->pend) {
            ssmd_stream_destroy(st->st);
            snprintf(err, cap, "out of memory");
            return NULL;
        }
    }
    st->used = true;
    /* generated streams are opened first, into slots 0..n-1: slot i is the
     * generator's stream i (gen_streams_open checks it) */
    if (source == SRC_GEN) st->gen_index = (int)(st - s->streams);
    snprintf(st->name, sizeof st->name, "%s", name);
    st->source = source;
    st->rate_hz = rate_hz;
    st->t_open = now_s();
    publish_meta(s, st);
    publish_event(s, st, "start", NULL);
    slog(s, s->pub ? LOG_INFO : LOG_DEBUG, "stream %s: started (%s, %d Hz)", st->name,
         source_names[source], rate_hz);
    return st;
}

/* Appends mono samples to the stream's pending input; what does not fit is
 * dropped and counted. */
static void pending_compact(srv_stream *st)
{
    if (st->pend_pos == 0) return;
    memmove(st->pend, st->pend + st->pend_pos, (st->pend_len - st->pend_pos) * sizeof(float));
    st->pend_len -= st->pend_pos;
    st->pend_pos = 0;
}

static void stream_append(server *s, srv_stream *st, const float *x, size_t n)
{
    if (st->pend_len + n > st->pend_cap) pending_compact(st);
    size_t room = st->pend_cap - st->pend_len, k = n < room ? n : room;
    memcpy(st->pend + st->pend_len, x, k * sizeof(float));
    st->pend_len += k;
    st->in_samples += k;
    if (k < n) {
        st->dropped_samples += n - k;
        s->c.dropped_samples += n - k;
        st->flags_next |= SSMD_FLAG_DISCONTINUITY;
    }
}

/* One audio message to every sink: PUB <s>/audio/, the pushing client, the
 * output file.  rows may be 0 (a bare end-of-stream marker). */
static int emit_audio(server *s, srv_stream *st, const float *x, size_t n, uint32_t flags)
{
    publish(s, st, SSMD_KIND_AUDIO, SSMD_DTYPE_F32, flags, (uint32_t)n, 1, st->out_samples, x,
            n * sizeof(float));
    if (st->source == SRC_PUSH && s->ingest) {
        char topic[SSMD_STREAM_NAME_MAX + 16];
        ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_AUDIO);
        ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .flags = flags,
                          .sample_rate_hz = (uint32_t)st->rate_hz, .rows = (uint32_t)n, .cols = 1,
                          .hop_samples = (uint32_t)s->fe.hop_samples, .seq = st->seq[0]++,
                          .first_sample = st->out_samples, .epoch = s->epoch };
        if (send_msg(s->ingest, st->owner, st->owner_len, topic, &h, x, n * sizeof(float)))
            s->c.replies_dropped++;
    }
    if (s->mon && st->source == SRC_MIC && s->n_mic > 0 && st == &s->streams[s->mic_slots[0]] && n > 0)
        s->c.monitor_dropped += n - ssmd_playback_write(s->mon, x, n);
    if (st->writer && n > 0) {
        dsp_error de = { 0 };
        if (dsp_audio_writer_write(st->writer, x, n, &de) != DSP_OK) {
            slog(s, LOG_ERROR, "%s", de.msg);
            return -1;
        }
    }
    st->out_samples += n;
    return 0;
}

/* Pops the stream's output and emits it; the last message of a finished
 * stream carries end-of-stream. */
static int drain_output(server *s, srv_stream *st)
{
    size_t got;
    while ((got = ssmd_stream_pop(st->st, s->outbuf, OUT_CHUNK)) > 0) {
        uint32_t flags = st->flags_next;
        st->flags_next = 0;
        if (st->finished && ssmd_stream_done(st->st)) {
            flags |= SSMD_FLAG_END_OF_STREAM;
            st->eos_sent = true;
        }
        if (emit_audio(s, st, s->outbuf, got, flags) != 0) return -1;
    }
    if (st->finished && ssmd_stream_done(st->st) && !st->eos_sent) {
        st->eos_sent = true;
        if (emit_audio(s, st, s->outbuf, 0, SSMD_FLAG_END_OF_STREAM | st->flags_next) != 0) return -1;
    }
    return 0;
}

/* Steps every stream with a frame ready, as one batch, until none has. */
static int engine_run(server *s)
{
    size_t nf = (size_t)s->fe.n_features, nb_bins = (size_t)s->fe.n_bins;
    size_t dm = (size_t)ssm_model_d_model(s->model);
    unsigned heads = ssm_model_heads(s->model);
    for (;;) {
        int nb = 0;
        for (int i = 0; i < s->max_streams; i++) {
            srv_stream *st = &s->streams[i];
            if (!st->used || st->ended || st->source == SRC_GEN) continue;
            while (st->pend_pos < st->pend_len) {
                size_t used = ssmd_stream_push(st->st, st->pend + st->pend_pos, st->pend_len - st->pend_pos);
                st->pend_pos += used;
                if (used == 0) break;
            }
            if (st->pend_pos == st->pend_len) st->pend_pos = st->pend_len = 0;
            if (st->eos && st->pend_len == 0 && !st->finished) {
                ssmd_stream_finish(st->st);
                st->finished = true;
            }
            if (ssmd_stream_prepare(st->st, s->features + (size_t)nb * nf)) {
                s->batch[nb] = i;
                s->states[nb] = ssmd_stream_state(st->st);
                nb++;
            }
        }
        if (nb == 0) break;
        ssm_outputs out = { .mask = (heads & SSM_MODEL_HEAD_MASK) ? s->mask : NULL,
                            .vad = (heads & SSM_MODEL_HEAD_VAD) ? s->vad : NULL,
                            .embedding = s->cfg->publish_embedding ? s->emb : NULL };
        int rc = ssm_step(s->runner, s->states, nb, s->features, NULL, &out, s->step_flags);
        if (rc != SSM_OK && rc != SSM_ERR_NONFINITE) {
            slog(s, LOG_ERROR, "model step failed: %s", ssm_strerror(rc));
            return -1;
        }
        for (int b = 0; b < nb; b++) {
            srv_stream *st = &s->streams[s->batch[b]];
            uint64_t first = st->frames * (uint64_t)s->fe.hop_samples * (uint64_t)st->rate_hz /
                             (uint64_t)s->fe.sample_rate_hz;
            uint32_t fflags = 0;
            if (s->step_flags[b] & SSM_FLAG_RESET) {
                st->resets++;
                s->c.state_resets++;
                fflags |= SSMD_FLAG_STATE_RESET;
                publish_event(s, st, "reset", "state became non-finite");
            }
            publish(s, st, SSMD_KIND_FEATURES, SSMD_DTYPE_F32, fflags, 1, (uint32_t)nf, first,
                    s->features + (size_t)b * nf, nf * sizeof(float));
            if (out.vad) {
                publish(s, st, SSMD_KIND_VAD, SSMD_DTYPE_F32, fflags, 1, 1, first, s->vad + b, sizeof(float));
                st->vad_sum += s->vad[b];
            }
            if (out.mask) dsp_gain_floor(s->mask + (size_t)b * nb_bins, nb_bins, (double)s->cfg->atten_lim_db);
            if (out.mask && s->cfg->publish_mask)
                publish(s, st, SSMD_KIND_MASK, SSMD_DTYPE_F32, fflags, 1, (uint32_t)nb_bins, first,
                        s->mask + (size_t)b * nb_bins, nb_bins * sizeof(float));
            if (out.embedding)
                publish(s, st, SSMD_KIND_EMBEDDING, SSMD_DTYPE_F32, fflags, 1, (uint32_t)dm, first,
                        s->emb + (size_t)b * dm, dm * sizeof(float));
            ssmd_stream_complete(st->st, out.mask ? s->mask + (size_t)b * nb_bins : NULL);
            st->frames++;
            s->c.frames++;
            if (drain_output(s, st) != 0) return -1;
        }
    }
    /* finishing streams may still have the resampler's tail to emit */
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (!st->used || st->ended || !st->finished || st->source == SRC_GEN) continue;
        if (drain_output(s, st) != 0) return -1;
        if (ssmd_stream_done(st->st)) st->ended = true;
    }
    return 0;
}

/* ---- ingest ----------------------------------------------------------- */

/* Client pushes are not dropped: what does not fit in the pending buffer
 * waits while the engine consumes what is there. */
static int stream_append_all(server *s, srv_stream *st, const float *x, size_t n)
{
    while (n > 0) {
        pending_compact(st);
        size_t room = st->pend_cap - st->pend_len, k = n < room ? n : room;
        stream_append(s, st, x, k);
        x += k;
        n -= k;
        if (n > 0 && engine_run(s) != 0) return -1;
    }
    return 0;
}

/* True while every push stream has room for another message's worth of
 * input; otherwise the ingest socket is left unread this iteration. */
static bool ingest_has_room(const server *s)
{
    for (int i = 0; i < s->max_streams; i++) {
        const srv_stream *st = &s->streams[i];
        if (st->used && st->source == SRC_PUSH && st->pend_len - st->pend_pos > st->pend_cap / 2) return false;
    }
    return true;
}

static void ingest_error(server *s, const uint8_t *id, size_t id_len, const char *code,
                         const char *stream, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static void ingest_error(server *s, const uint8_t *id, size_t id_len, const char *code,
                         const char *stream, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->c.bad_messages++;
    slog(s, LOG_DEBUG, "ingest: %s: %s", code, msg);
    json_t *o = json_pack("{s:s, s:s, s:s}", "event", "error", "error", code, "message", msg);
    json_object_set_new(o, "stream", stream ? json_string(stream) : json_null());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return;
    ssmd_header h = { .kind = SSMD_KIND_EVENT, .dtype = SSMD_DTYPE_UTF8, .rows = 1,
                      .cols = (uint32_t)strlen(text), .epoch = s->epoch };
    if (send_msg(s->ingest, id, id_len, "_ssmd/event/", &h, text, strlen(text)) != 0)
        s->c.replies_dropped++;
    free(text);
}

static const char *proto_code(int rc)
{
    switch (rc) {
    case SSMD_PROTO_SHORT: return "SHORT";
    case SSMD_PROTO_BAD_MAGIC: return "BAD_MAGIC";
    case SSMD_PROTO_BAD_VERSION: return "BAD_VERSION";
    case SSMD_PROTO_BAD_LENGTH: return "BAD_LENGTH";
    case SSMD_PROTO_BAD_KIND: return "BAD_KIND";
    case SSMD_PROTO_BAD_DTYPE: return "BAD_DTYPE";
    case SSMD_PROTO_BAD_SIZE: return "BAD_SIZE";
    default: return "BAD_TOPIC";
    }
}

/* Receives every frame of one message (up to 8 kept); returns the count, or
 * -1 when nothing was waiting. */
enum { MAX_FRAMES = 8 };
static int recv_frames(void *sock, zmq_msg_t *frames, int *n_total)
{
    int n = 0, total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return total == 0 ? -1 : n;
        }
        int more = zmq_msg_more(&m);
        if (n < MAX_FRAMES) frames[n++] = m;
        else zmq_msg_close(&m);
        total++;
        if (!more) break;
    }
    *n_total = total;
    return n;
}

static void close_frames(zmq_msg_t *frames, int n)
{
    for (int i = 0; i < n; i++) zmq_msg_close(&frames[i]);
}

static void handle_ingest(server *s)
{
    zmq_msg_t f[MAX_FRAMES];
    int total = 0, n;
    for (int iter = 0; iter < MAX_INGEST_PER_ITER && ingest_has_room(s) &&
                       (n = recv_frames(s->ingest, f, &total)) >= 0; iter++) {
        const uint8_t *id = zmq_msg_data(&f[0]);
        size_t id_len = zmq_msg_size(&f[0]);
        int k = 1;
        if (n > 1 && zmq_msg_size(&f[1]) == 0) k = 2; /* REQ-style empty delimiter */
        char name[SSMD_STREAM_NAME_MAX + 1] = "";
        uint16_t kind = 0;
        ssmd_header h;
        int rc;
        if (s->gen) {
            ingest_error(s, id, id_len, "NOT_SUPPORTED", NULL, "this daemon is generating from a token model "
                         "(--generate-s); it does not process pushed audio");
        } else if (total - k != 3) {
            ingest_error(s, id, id_len, "BAD_FRAMES", NULL, "expected 3 frames [topic][header][payload], got %d", total - k);
        } else if (ssmd_topic_parse(zmq_msg_data(&f[k]), zmq_msg_size(&f[k]), name, &kind) != SSMD_PROTO_OK ||
                   name[0] == '_') {
            ingest_error(s, id, id_len, "BAD_TOPIC", NULL, "topic must be '<stream>/audio/' with a valid stream name");
        } else if ((rc = ssmd_header_decode(zmq_msg_data(&f[k + 1]), zmq_msg_size(&f[k + 1]),
                                            zmq_msg_size(&f[k + 2]), 0, &h)) != SSMD_PROTO_OK) {
            ingest_error(s, id, id_len, proto_code(rc), name, "%s", ssmd_proto_strerror(rc));
        } else if (kind != SSMD_KIND_AUDIO || h.kind != SSMD_KIND_AUDIO ||
                   (h.dtype != SSMD_DTYPE_F32 && h.dtype != SSMD_DTYPE_I16)) {
            ingest_error(s, id, id_len, "BAD_KIND", name, "ingest takes audio messages of dtype f32 or i16");
        } else if (h.sample_rate_hz == 0 || h.sample_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ || h.cols == 0 ||
                   h.cols > 64 ||
                   (uint64_t)h.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)s->fe.sample_rate_hz ||
                   (uint64_t)s->fe.sample_rate_hz * DSP_RESAMPLE_MAX_RATIO < (uint64_t)h.sample_rate_hz) {
            ingest_error(s, id, id_len, "BAD_SIZE", name,
                         "sample rate %u Hz or %u channels out of range (rates within 1:%d of the "
                         "model's %d Hz, 1..64 channels)", h.sample_rate_hz, h.cols,
                         DSP_RESAMPLE_MAX_RATIO, s->fe.sample_rate_hz);
        } else {
            srv_stream *st = find_stream(s, name);
            char err[256];
            if (st && (st->source != SRC_PUSH || st->owner_len != id_len || memcmp(st->owner, id, id_len) != 0)) {
                ingest_error(s, id, id_len, "NAME_IN_USE", name, "stream '%s' belongs to another source", name);
                st = NULL;
            } else if (st && st->rate_hz != (int)h.sample_rate_hz) {
                ingest_error(s, id, id_len, "RATE_CHANGED", name, "stream '%s' is %d Hz, message says %u Hz",
                             name, st->rate_hz, h.sample_rate_hz);
                st = NULL;
            } else if (st && st->eos) {
                ingest_error(s, id, id_len, "STREAM_ENDED", name, "stream '%s' already ended", name);
                st = NULL;
            } else if (!st) {
                if (id_len > sizeof st->owner) {
                    ingest_error(s, id, id_len, "BAD_FRAMES", name, "client identity too long");
                } else if (!(st = stream_open(s, name, SRC_PUSH, (int)h.sample_rate_hz, true, err, sizeof err))) {
                    ingest_error(s, id, id_len, strcmp(err, "TOO_MANY_STREAMS") == 0 ? "TOO_MANY_STREAMS" : "INTERNAL",
                                 name, "%s", strcmp(err, "TOO_MANY_STREAMS") == 0
                                                 ? "max_streams streams are already running" : err);
                } else {
                    memcpy(st->owner, id, id_len);
                    st->owner_len = id_len;
                }
            }
            if (st) {
                const uint8_t *p = zmq_msg_data(&f[k + 2]);
                size_t rows = h.rows, cols = h.cols;
                float chunk[1024];
                uint64_t nonfinite = 0;
                for (size_t r0 = 0; r0 < rows; r0 += 1024) {
                    size_t m = rows - r0 < 1024 ? rows - r0 : 1024;
                    for (size_t r = 0; r < m; r++) {
                        float acc = 0;
                        for (size_t c = 0; c < cols; c++) {
                            size_t idx = (r0 + r) * cols + c;
                            float v;
                            if (h.dtype == SSMD_DTYPE_F32) {
                                uint32_t u = ssmd_get_u32(p + 4 * idx);
                                memcpy(&v, &u, 4);
                            } else {
                                v = (float)(int16_t)ssmd_get_u16(p + 2 * idx) / 32768.0f;
                            }
                            if (!isfinite(v)) { v = 0; nonfinite++; }
                            acc += v;
                        }
                        chunk[r] = acc / (float)cols;
                    }
                    stream_append_all(s, st, chunk, m);
                }
                s->c.nonfinite_samples += nonfinite;
                st->t_last_in = now_s();
                if (h.flags & SSMD_FLAG_END_OF_STREAM) st->eos = true;
            }
        }
        close_frames(f, n);
    }
}

/* ---- control ---------------------------------------------------------- */

/* The model state behind a stream: its pipeline's, or the generator's. */
static ssm_state *stream_state(server *s, srv_stream *st)
{
    if (st->source == SRC_GEN) return ssmd_generator_state(ssmd_genjob_generator(s->gen), st->gen_index);
    return ssmd_stream_state(st->st);
}

static void control_reply(server *s, zmq_msg_t *f, int k, json_t *reply, const void *extra, size_t extra_len)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (!text) { /* never leave a REQ client waiting */
        text = strdup("{\"ok\":false,\"version\":1,\"error\":\"INTERNAL\",\"message\":\"reply could not be encoded\"}");
        extra = NULL;
        if (!text) return;
    }
    bool ok = zmq_send(s->control, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok && k == 2) ok = zmq_send(s->control, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok) ok = zmq_send(s->control, text, strlen(text), extra ? ZMQ_SNDMORE | ZMQ_DONTWAIT : ZMQ_DONTWAIT) >= 0;
    if (ok && extra) ok = zmq_send(s->control, extra, extra_len, ZMQ_DONTWAIT) >= 0;
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

static json_t *control_error(server *s, json_t *id, const char *code, const char *msg)
{
    s->c.bad_requests++;
    json_t *o = json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "error", code, "message", msg, "version", 1);
    if (id) json_object_set(o, "id", id);
    return o;
}

static void handle_control(server *s)
{
    zmq_msg_t f[MAX_FRAMES];
    int total = 0, n;
    while ((n = recv_frames(s->control, f, &total)) >= 0) {
        int k = (n > 1 && zmq_msg_size(&f[1]) == 0) ? 2 : 1;
        json_t *req = NULL, *reply = NULL, *id = NULL;
        void *extra = NULL;
        size_t extra_len = 0;
        json_error_t je;
        if (n <= k || total > k + 2) {
            reply = control_error(s, NULL, "BAD_JSON", "expected one JSON frame (and a snapshot frame for restore)");
            goto send;
        }
        req = json_loadb(zmq_msg_data(&f[k]), zmq_msg_size(&f[k]), JSON_REJECT_DUPLICATES, &je);
        if (!req || !json_is_object(req)) {
            char m[300];
            snprintf(m, sizeof m, "request is not a JSON object: %s", req ? "other JSON value" : je.text);
            reply = control_error(s, NULL, "BAD_JSON", m);
            goto send;
        }
        id = json_object_get(req, "id");
        json_t *ver = json_object_get(req, "version");
        const char *cmd = json_string_value(json_object_get(req, "cmd"));
        const char *sname = json_string_value(json_object_get(req, "stream"));
        if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
            reply = control_error(s, id, "BAD_VERSION", "\"version\": 1 is required");
            goto send;
        }
        if (!cmd) {
            reply = control_error(s, id, "MISSING_FIELD", "\"cmd\" (a string) is required");
            goto send;
        }
        srv_stream *st = sname ? find_stream(s, sname) : NULL;
        bool needs_stream = strcmp(cmd, "reset") == 0 || strcmp(cmd, "snapshot") == 0 || strcmp(cmd, "restore") == 0;
        if (needs_stream && !sname) {
            reply = control_error(s, id, "MISSING_FIELD", "\"stream\" is required");
            goto send;
        }
        if (needs_stream && !st) {
            char m[200], safe[100];
            ascii_safe(safe, sizeof safe, sname);
            snprintf(m, sizeof m, "no stream named '%s'", safe);
            reply = control_error(s, id, "NO_SUCH_STREAM", m);
            goto send;
        }
        reply = json_pack("{s:b, s:i}", "ok", 1, "version", 1);
        if (id) json_object_set(reply, "id", id);
        if (strcmp(cmd, "status") == 0) {
            char hash[32], epoch[32];
            snprintf(hash, sizeof hash, "0x%016llx", (unsigned long long)ssm_model_hash(s->model));
            snprintf(epoch, sizeof epoch, "0x%016llx", (unsigned long long)s->epoch);
            const char *mname = ssm_model_meta(s->model, "name");
            json_object_set_new(reply, "epoch", json_string(epoch));
            json_object_set_new(reply, "uptime_s", json_real(now_s() - s->t_start));
            json_object_set_new(reply, "model", json_pack("{s:s, s:s, s:I}", "name", mname ? mname : s->model_path,
                                                          "hash", hash, "state_bytes", (json_int_t)ssm_state_bytes(s->model)));
            json_object_set_new(reply, "streams", json_integer(active_streams(s)));
            /* generation mode steps the generator's runner, not s->runner */
            const ssm_runner *crn = s->runner ? s->runner
                                  : s->gen ? ssmd_generator_runner(ssmd_genjob_generator(s->gen)) : NULL;
            json_object_set_new(reply, "compute", json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}",
                "backend", ssm_model_backend(s->model), "note", ssm_model_backend_note(s->model),
                "kernels", ssm_runner_isa(crn), "weights", ssm_runner_weights(crn),
                "threads", crn ? ssm_runner_threads(crn) : 0, "max_streams", s->max_streams));
            json_object_set_new(reply, "device", s->cap ? json_pack("{s:s, s:i, s:i, s:b, s:I, s:I}",
                "name", ssmd_capture_device_name(s->cap), "sample_rate_hz", ssmd_capture_rate_hz(s->cap),
                "channels", ssmd_capture_channels(s->cap), "running", !s->cap_failed,
                "capture_dropped", (json_int_t)ssmd_capture_overflows(s->cap),
                "failures", (json_int_t)s->c.device_failures) : json_null());
            json_object_set_new(reply, "counters", json_pack(
                "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                "frames", (json_int_t)s->c.frames, "dropped_samples", (json_int_t)s->c.dropped_samples,
                "published", (json_int_t)s->c.published, "publish_dropped", (json_int_t)s->c.publish_dropped,
                "bad_messages", (json_int_t)s->c.bad_messages, "bad_requests", (json_int_t)s->c.bad_requests,
                "state_resets", (json_int_t)s->c.state_resets, "nonfinite_samples", (json_int_t)s->c.nonfinite_samples,
                "replies_dropped", (json_int_t)s->c.replies_dropped, "subscriptions", (json_int_t)s->c.subscriptions,
                "monitor_dropped", (json_int_t)s->c.monitor_dropped));
            json_object_set_new(reply, "curve", s->zap ? json_pack("{s:I, s:I, s:I}", "allowed_keys",
                (json_int_t)s->n_allow, "admitted", (json_int_t)s->zap_allowed, "refused",
                (json_int_t)s->zap_denied) : json_null());
        } else if (strcmp(cmd, "streams") == 0) {
            json_t *arr = json_array();
            for (int i = 0; i < s->max_streams; i++) {
                srv_stream *t = &s->streams[i];
                if (!t->used) continue;
                json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I}", "name", t->name,
                    "source", source_names[t->source], "sample_rate_hz", t->rate_hz, "frames", (json_int_t)t->frames,
                    "samples_in", (json_int_t)t->in_samples, "samples_out", (json_int_t)t->out_samples,
                    "state_resets", (json_int_t)t->resets));
            }
            json_object_set_new(reply, "streams", arr);
        } else if (strcmp(cmd, "reset") == 0) {
            ssm_state_reset(stream_state(s, st));
            publish_event(s, st, "reset", "requested");
        } else if (strcmp(cmd, "snapshot") == 0) {
            extra_len = ssm_state_bytes(s->model);
            extra = malloc(extra_len);
            size_t written = 0;
            if (!extra || ssm_state_snapshot(stream_state(s, st), extra, extra_len, &written) != SSM_OK) {
                json_decref(reply);
                reply = control_error(s, id, "INTERNAL", "snapshot failed");
                free(extra);
                extra = NULL;
            } else {
                extra_len = written;
                json_object_set_new(reply, "bytes", json_integer((json_int_t)written));
            }
        } else if (strcmp(cmd, "restore") == 0) {
            if (total != k + 2) {
                json_decref(reply);
                reply = control_error(s, id, "MISSING_FIELD", "restore needs the snapshot as a second frame");
            } else {
                int rc = ssm_state_restore(stream_state(s, st), zmq_msg_data(&f[k + 1]), zmq_msg_size(&f[k + 1]));
                if (rc != SSM_OK) {
                    json_decref(reply);
                    reply = control_error(s, id, rc == SSM_ERR_MISMATCH ? "SNAPSHOT_MISMATCH" : "BAD_SNAPSHOT",
                                          rc == SSM_ERR_MISMATCH ? "the snapshot was made with another model or format"
                                                                 : "the snapshot is truncated or corrupt");
                } else {
                    publish_event(s, st, "reset", "restored from snapshot");
                }
            }
        } else if (strcmp(cmd, "stop") == 0) {
            s->stop_requested = true;
        } else {
            json_decref(reply);
            char m[220], safe[100];
            ascii_safe(safe, sizeof safe, cmd);
            snprintf(m, sizeof m, "unknown command '%s' (status, streams, reset, snapshot, restore, stop)", safe);
            reply = control_error(s, id, "UNKNOWN_COMMAND", m);
        }
    send:
        control_reply(s, f, k, reply, extra, extra_len);
        free(extra);
        json_decref(req);
        close_frames(f, n);
    }
}

/* ---- XPUB subscriptions ------------------------------------------------- */

/* Subscriptions mark the metas they match as due; each due meta is
 * published once per loop iteration, however many subscriptions arrived
 * (a storm of subscriptions must not multiply into a storm of metas), and at
 * most MAX_SUBS_PER_ITER subscription messages are read per iteration. */
enum { MAX_SUBS_PER_ITER = 256 };
static void handle_subscriptions(server *s)
{
    zmq_msg_t m;
    for (int k = 0; k < MAX_SUBS_PER_ITER; k++) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->pub, ZMQ_DONTWAIT) < 0) {
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
                srv_stream *st = &s->streams[i];
                if (!st->used) continue;
                char topic[SSMD_STREAM_NAME_MAX + 16];
                int tl = ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_META);
                if (tl > 0 && (size_t)tl >= pl && memcmp(topic, prefix, pl) == 0) st->meta_due = true;
            }
        }
        zmq_msg_close(&m);
    }
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (st->used && st->meta_due) {
            st->meta_due = false;
            publish_meta(s, st);
        }
    }
}

/* ---- sockets ------------------------------------------------------------ */

static bool endpoint_is_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0) return true;
    return strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

static void *open_socket(server *s, int type, const char *key, const char *ep)
{
    void *sock = zmq_socket(s->ctx, type);
    int linger = 200, hwm = (int)s->cfg->pub_hwm, one = 1;
    /* ingest: at most INGEST_MAX_MSG bytes a message and INGEST_HWM messages
     * queued per client, so a flooding client costs bounded memory; control
     * requests are small (snapshots are state-sized) */
    int64_t maxmsg = type == ZMQ_ROUTER && strcmp(key, "ingest") == 0 ? INGEST_MAX_MSG : CONTROL_MAX_MSG;
    int rcvhwm = INGEST_HWM;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_XPUB) {
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sock, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    } else {
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    }
    if (s->curve_secret[0]) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->curve_secret, 40);
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "ssmd", 4);
    }
    if (zmq_bind(sock, ep) != 0) {
        fprintf(stderr, "ssmd: %s: cannot bind %s: %s\n", key, ep, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Reads a file holding one Z85 key (40 characters) per line; a line whose
 * first non-blank character is '#' is a comment ('#' is a Z85 digit, so not
 * within a line).  Returns the number of keys (decoded into out when not NULL), or
 * -1 with err set. */
static long read_z85_keys(const char *path, uint8_t (*out)[32], size_t cap, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    long n = 0;
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '#') continue;
        char *e = p + strcspn(p, "\r\n");
        while (e > p && isspace((unsigned char)e[-1])) e--;
        *e = '\0';
        if (*p == '\0') continue;
        uint8_t key[32];
        if (e - p != 40 || !zmq_z85_decode(key, p)) {
            snprintf(err, errcap, "%s:%d: not a Z85 CURVE key (40 characters)", path, lineno);
            fclose(f);
            return -1;
        }
        if (out && (size_t)n < cap) memcpy(out[n], key, 32);
        n++;
    }
    fclose(f);
    return n;
}

/* CURVE: the server key and the ZAP allowlist (RFC 27) of client keys. */
static int setup_curve(server *s)
{
    const ssmd_config *c = s->cfg;
    char err[512];
    uint8_t secret[1][32];
    if (read_z85_keys(c->curve_secret_file, secret, 1, err, sizeof err) != 1) {
        fprintf(stderr, "ssmd: curve_secret_file: %s\n",
                err[0] ? err : "the file must hold exactly one key");
        return -1;
    }
    zmq_z85_encode(s->curve_secret, secret[0], 32);
    if (!c->curve_allow_file[0]) {
        fprintf(stderr, "ssmd: curve_allow_file: required with curve_secret_file (the client keys "
                        "allowed to connect)\n");
        return -1;
    }
    long n = read_z85_keys(c->curve_allow_file, NULL, 0, err, sizeof err);
    if (n < 0 || (n > 0 && !(s->allow = malloc((size_t)n * 32)))) {
        fprintf(stderr, "ssmd: curve_allow_file: %s\n", n < 0 ? err : "out of memory");
        return -1;
    }
    s->n_allow = (size_t)read_z85_keys(c->curve_allow_file, s->allow, (size_t)n, err, sizeof err);
    s->zap = zmq_socket(s->ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(s->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s->zap, "inproc://zeromq.zap.01") != 0) {
        fprintf(stderr, "ssmd: ZAP handler: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* Answers ZAP requests: CURVE clients whose public key is in the allowlist
 * are admitted, everything else is refused (and counted). */
static void handle_zap(server *s)
{
    if (!s->zap) return;
    zmq_msg_t f[MAX_FRAMES];
    int total = 0, n;
    while ((n = recv_frames(s->zap, f, &total)) >= 0) {
        bool ok = false;
        if (n >= 7 && total == 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
            zmq_msg_size(&f[6]) == 32) {
            for (size_t i = 0; i < s->n_allow && !ok; i++) ok = memcmp(s->allow[i], zmq_msg_data(&f[6]), 32) == 0;
        }
        if (ok) s->zap_allowed++;
        else {
            s->zap_denied++;
            slog(s, LOG_INFO, "refused a client: %s", total == 7 ? "public key not in curve_allow_file"
                                                                  : "malformed ZAP request");
        }
        const char *status = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
        zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2) zmq_send(s->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        else zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(s->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(s->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(s->zap, "", 0, 0);
        close_frames(f, n);
    }
}

static int open_sockets(server *s)
{
    const ssmd_config *c = s->cfg;
    const char *keys[3] = { "pub", "ingest", "control" }, *eps[3] = { c->pub, c->ingest, c->control };
    bool curve = c->curve_secret_file[0] != '\0';
    for (int i = 0; i < 3; i++) {
        if (!endpoint_is_local(eps[i]) && !curve && !c->allow_insecure_remote) {
            fprintf(stderr, "ssmd: %s: %s is not a loopback address; remote access needs CURVE "
                            "(--curve-secret-file and --curve-allow-file) or --allow-insecure-remote\n",
                    keys[i], eps[i]);
            return -1;
        }
    }
    s->ctx = zmq_ctx_new();
    if (curve && setup_curve(s) != 0) return -1;
    if (!(s->pub = open_socket(s, ZMQ_XPUB, "pub", c->pub)) ||
        !(s->ingest = open_socket(s, ZMQ_ROUTER, "ingest", c->ingest)) ||
        !(s->control = open_socket(s, ZMQ_ROUTER, "control", c->control)))
        return -1;
    return 0;
}

static void close_sockets(server *s)
{
    if (s->pub) zmq_close(s->pub);
    if (s->ingest) zmq_close(s->ingest);
    if (s->control) zmq_close(s->control);
    if (s->zap) zmq_close(s->zap);
    if (s->ctx) zmq_ctx_term(s->ctx);
    s->pub = s->ingest = s->control = s->zap = s->ctx = NULL;
    free(s->allow);
    s->allow = NULL;
}

/* ---- file input ----------------------------------------------------------- */

static void file_stream_name(char *out, size_t cap, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = 0;
    for (const char *p = base; *p && n + 1 < cap && n < SSMD_STREAM_NAME_MAX; p++) {
        char ch = *p;
        out[n++] = (isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '.') ? ch : '_';
    }
    if (n == 0 || out[0] == '.' || out[0] == '_') out[0] = 'f';
    if (n == 0) n = 1;
    out[n] = '\0';
}

static int open_file_input(server *s)
{
    const ssmd_config *c = s->cfg;
    dsp_error de = { 0 };
    if (dsp_audio_reader_open(&s->reader, c->input, NULL, &de) != DSP_OK) {
        fprintf(stderr, "ssmd: %s\n", de.msg);
        return -1;
    }
    const dsp_audio_info *info = dsp_audio_reader_info(s->reader);
    s->file_channels = info->channels;
    if (strcmp(c->channels, "split") == 0 && info->channels > 1) {
        fprintf(stderr, "ssmd: channels: 'split' is not supported for file inputs yet (%s has %d "
                        "channels); use --channels mono to downmix\n", c->input, info->channels);
        return -1;
    }
    s->file_buf = malloc((size_t)FILE_CHUNK * (size_t)info->channels * sizeof(float));
    s->file_mono = malloc(FILE_CHUNK * sizeof(float));
    if (!s->file_buf || !s->file_mono) {
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    char name[SSMD_STREAM_NAME_MAX + 1], err[512];
    file_stream_name(name, sizeof name, c->input);
    srv_stream *st = stream_open(s, name, SRC_FILE, info->sample_rate_hz, true, err, sizeof err);
    if (!st) {
        fprintf(stderr, "ssmd: %s: %s\n", c->input, err);
        return -1;
    }
    s->file_slot = (int)(st - s->streams);
    struct stat in_st, out_st;
    if (c->output[0] && stat(c->input, &in_st) == 0 && stat(c->output, &out_st) == 0 &&
        in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
        fprintf(stderr, "ssmd: output: %s is the input file %s; writing it would destroy the input\n",
                c->output, c->input);
        return -1;
    }
    if (c->output[0]) {
        dsp_audio_write_format wf = { .container = DSP_AUDIO_CONTAINER_AUTO,
                                      .subtype = DSP_AUDIO_SUBTYPE_DEFAULT,
                                      .sample_rate_hz = info->sample_rate_hz, .channels = 1,
                                      .vbr_quality = -1 };
        if (info->subtype == DSP_AUDIO_SUBTYPE_FLOAT || info->subtype == DSP_AUDIO_SUBTYPE_DOUBLE)
            wf.subtype = DSP_AUDIO_SUBTYPE_FLOAT;
        else if (info->subtype == DSP_AUDIO_SUBTYPE_PCM_24 || info->subtype == DSP_AUDIO_SUBTYPE_PCM_32)
            wf.subtype = DSP_AUDIO_SUBTYPE_PCM_24;
        if (dsp_audio_writer_open(&st->writer, c->output, &wf, &de) != DSP_OK) {
            wf.subtype = DSP_AUDIO_SUBTYPE_DEFAULT; /* Vorbis/Opus fix their own */
            if (dsp_audio_writer_open(&st->writer, c->output, &wf, &de) != DSP_OK) {
                fprintf(stderr, "ssmd: %s\n", de.msg);
                return -1;
            }
        }
    }
    return 0;
}

/* Reads the next chunk of the file when the stream has room (and, with
 * realtime pacing, when the clock allows).  Returns -1 on a read error. */
static int pump_file(server *s, bool *busy)
{
    srv_stream *st = &s->streams[s->file_slot];
    if (!s->reader || st->eos) return 0;
    if (s->cfg->wait_subscribers > 0 && s->c.subscriptions < (uint64_t)s->cfg->wait_subscribers) return 0;
    if (s->file_t0 == 0) s->file_t0 = now_s();
    if (st->pend_len - st->pend_pos > FILE_CHUNK) return 0;
    size_t want = FILE_CHUNK;
    if (s->cfg->realtime) {
        double allowed = (now_s() - s->file_t0) * st->rate_hz - (double)st->in_samples;
        if (allowed < 1) return 0;
        if ((double)want > allowed) want = (size_t)allowed;
    }
    size_t got = 0;
    dsp_error de = { 0 };
    if (dsp_audio_reader_read(s->reader, s->file_buf, want, &got, &de) != DSP_OK) {
        slog(s, LOG_ERROR, "%s", de.msg);
        return -1;
    }
    if (got == 0) {
        st->eos = true;
        return 0;
    }
    size_t nch = (size_t)s->file_channels;
    for (size_t i = 0; i < got; i++) {
        float acc = 0;
        for (size_t k = 0; k < nch; k++) acc += s->file_buf[i * nch + k];
        s->file_mono[i] = acc / (float)nch;
    }
    stream_append(s, st, s->file_mono, got);
    if (!s->cfg->realtime) *busy = true;
    return 0;
}

/* ---- capture device ------------------------------------------------------ */

/* Opens the device and one stream per channel ('split') or one stream
 * ('mono', the device's first channel), plus the monitor. */
static int open_capture(server *s)
{
    const ssmd_config *c = s->cfg;
    char err[512];
    bool split = strcmp(c->channels, "split") == 0;
    int max_ch = split ? (s->max_streams < 64 ? s->max_streams : 64) : 1;
    s->cap = ssmd_capture_open(c->device, s->fe.sample_rate_hz, max_ch, (int)c->ring_ms, err, sizeof err);
    if (!s->cap) {
        fprintf(stderr, "ssmd: %s\n", err);
        return -1;
    }
    int rate = ssmd_capture_rate_hz(s->cap), nch = ssmd_capture_channels(s->cap);
    /* sized for max_ch: a reopen may come back with more channels */
    s->cap_buf = malloc((size_t)FILE_CHUNK * (size_t)(max_ch > nch ? max_ch : nch) * sizeof(float));
    s->cap_chan = malloc(FILE_CHUNK * sizeof(float));
    if (!s->cap_buf || !s->cap_chan) {
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    s->n_mic = nch;
    for (int k = 0; k < nch; k++) {
        char name[32];
        if (nch == 1) snprintf(name, sizeof name, "mic");
        else snprintf(name, sizeof name, "mic.%d", k);
        srv_stream *st = stream_open(s, name, SRC_MIC, rate, false, err, sizeof err);
        if (!st) {
            fprintf(stderr, "ssmd: %s: %s\n", name, err);
            return -1;
        }
        s->mic_slots[k] = (int)(st - s->streams);
    }
    slog(s, LOG_INFO, "capturing '%s' at %d Hz, %d channel%s", ssmd_capture_device_name(s->cap), rate, nch,
         nch > 1 ? "s (one stream each)" : "");
    if (c->monitor[0]) {
        s->mon = ssmd_playback_open(c->monitor, rate, 1, (int)c->ring_ms, err, sizeof err);
        if (!s->mon) {
            fprintf(stderr, "ssmd: monitor: %s\n", err);
            return -1;
        }
    }
    return 0;
}

/* Moves captured frames into the mic streams; checks the device about once a
 * second and reopens it after a failure (other streams go on meanwhile). */
static void pump_capture(server *s)
{
    if (!s->cap) return;
    double t = now_s();
    if (t - s->cap_check_t > (s->cap_failed ? 2.0 : 1.0)) {
        s->cap_check_t = t;
        char err[512];
        if (!s->cap_failed && ssmd_capture_status(s->cap, err, sizeof err) != 0) {
            s->cap_failed = true;
            s->c.device_failures++;
            slog(s, LOG_ERROR, "capture failed: %s; retrying every 2 s", err);
            for (int k = 0; k < s->n_mic; k++) publish_event(s, &s->streams[s->mic_slots[k]], "device_failed", err);
        } else if (s->cap_failed) {
            if (ssmd_capture_reopen(s->cap, err, sizeof err) == 0 &&
                ssmd_capture_channels(s->cap) == s->n_mic &&
                ssmd_capture_rate_hz(s->cap) == s->streams[s->mic_slots[0]].rate_hz) {
                s->cap_failed = false;
                slog(s, LOG_WARN, "capture device '%s' is back", ssmd_capture_device_name(s->cap));
                for (int k = 0; k < s->n_mic; k++) {
                    srv_stream *st = &s->streams[s->mic_slots[k]];
                    st->flags_next |= SSMD_FLAG_DISCONTINUITY;
                    publish_event(s, st, "device_restored", NULL);
                }
            } else if (ssmd_capture_channels(s->cap) != s->n_mic) {
                slog(s, LOG_DEBUG, "capture reopen: %s", err);
            }
        }
    }
    if (s->cap_failed) return; /* nothing to read; a reopen may change the geometry */
    size_t nch = (size_t)s->n_mic, got;
    while ((got = ssmd_capture_read(s->cap, s->cap_buf, FILE_CHUNK)) > 0) {
        uint64_t dropped = ssmd_capture_overflows(s->cap);
        uint64_t now = realtime_ns();
        size_t waiting = ssmd_capture_frames(s->cap);
        for (size_t k = 0; k < nch; k++) {
            srv_stream *st = &s->streams[s->mic_slots[k]];
            for (size_t i = 0; i < got; i++) s->cap_chan[i] = s->cap_buf[i * nch + k];
            if (dropped != s->cap_dropped_seen) st->flags_next |= SSMD_FLAG_OVERFLOW | SSMD_FLAG_DISCONTINUITY;
            stream_append(s, st, s->cap_chan, got);
            /* the last frame read was captured `waiting` frames before now */
            st->clock_sample = st->in_samples;
            st->clock_ns = now - (uint64_t)(1e9 * (double)waiting / st->rate_hz);
        }
        s->c.capture_dropped += dropped - s->cap_dropped_seen;
        s->cap_dropped_seen = dropped;
    }
}

/* A push stream whose client sent nothing for push_idle_s seconds (it
 * crashed or forgot end-of-stream) is ended as if it had sent end-of-stream,
 * so abandoned streams cannot hold the slots. */
static void expire_idle_pushes(server *s)
{
    double t = now_s();
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (st->used && st->source == SRC_PUSH && !st->eos && t - st->t_last_in > (double)s->cfg->push_idle_s) {
            st->eos = true;
            publish_event(s, st, "idle", "no input for push_idle_s seconds; stream ended");
            slog(s, LOG_INFO, "stream %s: idle for %ld s, ended", st->name, s->cfg->push_idle_s);
        }
    }
}

/* ---- generation (--generate-s with --generate-publish) --------------------- */

/* A run in generation mode serves the token model's streams only: the
 * audio front-end and the engine's runner are not set up (a token model has
 * neither), pushes are refused, and the run ends when every stream has
 * generated generate_s seconds (or on stop).  Loads s->model, opens the job
 * (prompt, output file) and sizes the server for its streams.  Returns 0, or
 * the exit status (2 bad option, model or input; 1 runtime) after one line
 * on stderr. */
static int gen_open(server *s)
{
    char err[1024];
    if (ssmd_generate_check_config(s->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        return 2;
    }
    ssm_model_options mo;
    ssm_error me = { 0 };
    ssmd_config_model_options(s->cfg, &mo);
    if (ssm_model_load(s->model_path, &mo, &s->model, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", me.msg);
        return 2;
    }
    if (ssm_model_backend_note(s->model)[0])
        slog(s, LOG_INFO, "backend %s: %s", ssm_model_backend(s->model), ssm_model_backend_note(s->model));
    int rate = 16000;
    ssmd_generate_check_model(s->model, &rate, err, sizeof err); /* reported by ssmd_genjob_open */
    /* 20 ms blocks, each released when its last sample is due, as live audio */
    size_t block = (size_t)rate / 50;
    int rc = ssmd_genjob_open(s->cfg, s->model, s->model_path, block, s->stop, &s->gen, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        return rc < 0 ? -1 : rc; /* -1: stopped while feeding the prompt */
    }
    if (!(s->gen_buf = malloc(block * sizeof *s->gen_buf))) {
        fprintf(stderr, "ssmd: out of memory\n");
        return 1;
    }
    s->max_streams = ssmd_genjob_n_streams(s->gen);
    /* what the headers and buffers need: one model step per sample */
    memset(&s->fe, 0, sizeof s->fe);
    s->fe.sample_rate_hz = rate;
    s->fe.n_fft = s->fe.hop_samples = s->fe.n_bins = s->fe.n_features = 1;
    return 0;
}

/* Opens the streams gen0, gen1, ... (meta and start event published). */
static int gen_streams_open(server *s)
{
    for (int i = 0; i < ssmd_genjob_n_streams(s->gen); i++) {
        char name[32], err[512];
        snprintf(name, sizeof name, "gen%d", i);
        srv_stream *st = stream_open(s, name, SRC_GEN, ssmd_genjob_rate_hz(s->gen), false, err, sizeof err);
        if (!st || st->gen_index != i) {
            fprintf(stderr, "ssmd: %s: %s\n", name, st ? "slot does not match the generator's stream" : err);
            return -1;
        }
    }
    return 0;
}

static bool gen_waiting(const server *s)
{
    return s->cfg->wait_subscribers > 0 && s->c.subscriptions < (uint64_t)s->cfg->wait_subscribers;
}

/* The poll timeout the generation allows: 0 while the pending block needs
 * model steps, else the time until it is due (at most POLL_MS). */
static int gen_poll_ms(const server *s)
{
    if (!s->gen || s->gen_done || gen_waiting(s)) return POLL_MS;
    size_t m = ssmd_genjob_block(s->gen, NULL);
    if (m == 0 || s->gen_t0 == 0) return 0;
    double wait = s->gen_t0 + (double)(ssmd_genjob_released(s->gen) + m) / ssmd_genjob_rate_hz(s->gen) - now_s();
    return wait <= 0 ? 0 : wait >= POLL_MS * 1e-3 ? POLL_MS : (int)ceil(wait * 1e3);
}

/* Ends every generated stream (end-of-stream marker where the last block
 * did not carry it), finalises the output file, logs the summary. */
static int gen_finish(server *s)
{
    int rc = 0;
    char err[1024];
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (!st->used || st->source != SRC_GEN) continue;
        if (!st->eos_sent) emit_audio(s, st, s->gen_buf, 0, SSMD_FLAG_END_OF_STREAM | st->flags_next);
        st->eos_sent = st->eos = st->finished = st->ended = true;
    }
    if (ssmd_genjob_close(s->gen, err, sizeof err) != 0) {
        slog(s, LOG_ERROR, "%s", err);
        rc = -1;
    }
    s->gen_done = true;
    int n = ssmd_genjob_n_streams(s->gen), rate = ssmd_genjob_rate_hz(s->gen);
    double audio_s = (double)ssmd_genjob_released(s->gen) / rate, el = s->gen_t0 > 0 ? now_s() - s->gen_t0 : 0;
    const ssm_runner *grn = ssmd_generator_runner(ssmd_genjob_generator(s->gen));
    slog(s, LOG_WARN, "generated %.2f s x %d stream%s in %.2f s (%.2fx real time%s), resets %llu, "
         "%s weights, %s kernels -> %s%s%s",
         audio_s, n, n == 1 ? "" : "s", el, el > 0 ? audio_s / el : 0.0,
         ssmd_genjob_finished(s->gen) ? "" : ", stopped",
         (unsigned long long)ssmd_generator_resets(ssmd_genjob_generator(s->gen)),
         ssm_runner_weights(grn), ssm_runner_isa(grn), s->cfg->output,
         s->cfg->output[0] ? " and " : "", s->cfg->pub);
    return rc;
}

/* Generation: runs model steps toward the pending block for at most
 * GEN_SLICE_S per iteration (so control requests and subscriptions are
 * answered within milliseconds however many streams a step carries), then
 * releases the block when its last
 * sample is due in real time: each stream's samples go out as
 * gen<i>/audio/ through emit_audio (the last block flagged end-of-stream)
 * and the block is appended to the output file.  Returns -1 on a failure. */
#define GEN_SLICE_S 0.005
static int pump_gen(server *s, bool stopping)
{
    if (!s->gen || s->gen_done) return 0;
    if (stopping) return gen_finish(s);
    if (gen_waiting(s)) return 0;
    if (s->gen_t0 == 0) s->gen_t0 = now_s();
    double slice_end = now_s() + GEN_SLICE_S;
    int ran;
    do { /* at least one step per iteration */
        if ((ran = ssmd_genjob_step(s->gen, 1)) < 0) {
            slog(s, LOG_ERROR, "generation: model step failed");
            return -1;
        }
    } while (ran > 0 && now_s() < slice_end);
    const float *x;
    size_t m = ssmd_genjob_block(s->gen, &x);
    uint64_t released = ssmd_genjob_released(s->gen);
    int n = ssmd_genjob_n_streams(s->gen), rate = ssmd_genjob_rate_hz(s->gen);
    if (m == 0 || now_s() < s->gen_t0 + (double)(released + m) / rate) return 0;
    bool last = released + m >= (uint64_t)s->cfg->generate_s * (uint64_t)rate;
    uint64_t resets = ssmd_generator_resets(ssmd_genjob_generator(s->gen));
    s->c.state_resets += resets - s->gen_resets_seen;
    s->gen_resets_seen = resets;
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (!st->used || st->source != SRC_GEN) continue;
        for (size_t k = 0; k < m; k++) s->gen_buf[k] = x[k * (size_t)n + (size_t)st->gen_index];
        uint32_t flags = st->flags_next | (last ? SSMD_FLAG_END_OF_STREAM : 0);
        st->flags_next = 0;
        emit_audio(s, st, s->gen_buf, m, flags); /* no per-stream writer: cannot fail */
        st->eos_sent = last;
        st->in_samples += m;
        st->frames += m;
        s->c.frames += m;
    }
    char err[1024];
    if (ssmd_genjob_next(s->gen, err, sizeof err) != 0) {
        slog(s, LOG_ERROR, "%s", err);
        return -1;
    }
    return ssmd_genjob_finished(s->gen) ? gen_finish(s) : 0;
}

/* ---- the loop ------------------------------------------------------------- */

/* "\r 42.0 %  4.3 s of audio  120.5x real time  ETA 1.2 s" on a terminal. */
static void progress_line(const server *s, bool final)
{
    const srv_stream *st = &s->streams[s->file_slot];
    const dsp_audio_info *info = dsp_audio_reader_info(s->reader);
    double el = now_s() - (s->file_t0 > 0 ? s->file_t0 : s->t_start);
    double audio_s = (double)st->in_samples / st->rate_hz, speed = el > 0 ? audio_s / el : 0;
    if (info->n_frames > 0) {
        double frac = (double)st->in_samples / (double)info->n_frames;
        double eta = frac > 0 ? el * (1 - frac) / frac : 0;
        fprintf(stderr, "\r%5.1f %%  %8.1f s of audio  %7.1fx real time  ETA %6.1f s ", 100 * frac, audio_s,
                speed, final ? 0.0 : eta);
    } else {
        fprintf(stderr, "\r%8.1f s of audio  %7.1fx real time ", audio_s, speed);
    }
    if (final) fputc('\n', stderr);
}

static void reap_streams(server *s, bool *file_done, int *rc)
{
    for (int i = 0; i < s->max_streams; i++) {
        srv_stream *st = &s->streams[i];
        if (!st->used || !st->ended) continue;
        publish_event(s, st, "end", NULL);
        if (st->source == SRC_GEN) {
            slog(s, LOG_INFO, "%s: %.2f s generated at %d Hz, %llu samples published", st->name,
                 (double)st->out_samples / st->rate_hz, st->rate_hz, (unsigned long long)st->out_samples);
            stream_close(s, st);
            continue;
        }
        bool wrote_file = st->writer != NULL;
        if (st->writer) {
            dsp_error de = { 0 };
            if (dsp_audio_writer_close(st->writer, &de) != DSP_OK) {
                slog(s, LOG_ERROR, "%s", de.msg);
                *rc = 1;
            }
            st->writer = NULL;
        }
        double el = now_s() - st->t_open, audio_s = (double)st->in_samples / st->rate_hz;
        char vad[64] = "";
        if (st->frames && (ssm_model_heads(s->model) & SSM_MODEL_HEAD_VAD))
            snprintf(vad, sizeof vad, ", mean voice activity %.2f", st->vad_sum / (double)st->frames);
        bool is_file_stream = s->reader && i == s->file_slot;
        slog(s, is_file_stream ? LOG_WARN : LOG_INFO,
             "%s%s%s: %.2f s of audio at %d Hz, %llu frames of %d samples, %.3f s, %.1fx real time, "
             "state %zu bytes, latency %.1f ms%s, %llu samples dropped, %llu state resets, %s weights, "
             "%s kernels%s%s",
             st->name, wrote_file ? " -> " : "", wrote_file ? s->cfg->output : "",
             audio_s, st->rate_hz, (unsigned long long)st->frames, s->fe.hop_samples, el,
             el > 0 ? audio_s / el : 0.0, ssm_state_bytes(s->model),
             1e3 * s->fe.latency_samples / s->fe.sample_rate_hz,
             is_file_stream ? " compensated" : "", (unsigned long long)st->dropped_samples,
             (unsigned long long)st->resets, ssm_runner_weights(s->runner), ssm_runner_isa(s->runner), vad, s->stop_requested || (s->stop && *s->stop) ? " (stopped early; output finalised)" : "");
        if (s->reader && i == s->file_slot) *file_done = true;
        stream_close(s, st);
    }
}

static void set_log_level(server *s)
{
    const char *levels[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(s->cfg->log_level, levels[i]) == 0) s->log_level = i;
}

/* SIGHUP: re-read the configuration; copy the reloadable options into the
 * running one through the option table, log each change. */
static void reload_config(server *s)
{
    if (!s->ctl || !s->ctl->reload) return;
    ssmd_config fresh;
    char err[1024];
    if (ssmd_config_init(&fresh) != 0) return;
    if (s->ctl->reload(&fresh, err, sizeof err, s->ctl->reload_user) != 0) {
        slog(s, LOG_ERROR, "reload: %s; keeping the running configuration", err);
        ssmd_config_free(&fresh);
        return;
    }
    size_t n;
    const ssmd_option *o = ssmd_options(&n);
    int changed = 0, ignored = 0;
    for (size_t i = 0; i < n; i++) {
        char *a = (char *)s->cfg + o[i].offset, *b = (char *)&fresh + o[i].offset;
        bool differs;
        if (o[i].type == SSMD_OPT_INT) differs = *(long *)a != *(long *)b;
        else if (o[i].type == SSMD_OPT_BOOL) differs = *(bool *)a != *(bool *)b;
        else differs = strcmp(*(char **)a, *(char **)b) != 0;
        if (!differs) continue;
        if (!o[i].reloadable) {
            ignored++;
            slog(s, LOG_WARN, "reload: %s changed but needs a restart; keeping the running value", o[i].key);
            continue;
        }
        changed++;
        if (o[i].type == SSMD_OPT_INT) *(long *)a = *(long *)b;
        else if (o[i].type == SSMD_OPT_BOOL) *(bool *)a = *(bool *)b;
        else {
            char *t = *(char **)a;
            *(char **)a = *(char **)b;
            *(char **)b = t;
        }
        slog(s, LOG_WARN, "reload: %s changed", o[i].key);
    }
    if (s->zap) { /* the allowlist file is re-read even when its name is unchanged */
        long k = read_z85_keys(s->cfg->curve_allow_file, NULL, 0, err, sizeof err);
        uint8_t (*keys)[32] = k > 0 ? malloc((size_t)k * 32) : NULL;
        if (k < 0 || (k > 0 && !keys)) {
            slog(s, LOG_ERROR, "reload: curve_allow_file: %s; keeping the old allowlist", k < 0 ? err : "out of memory");
            free(keys);
        } else {
            read_z85_keys(s->cfg->curve_allow_file, keys, (size_t)k, err, sizeof err);
            free(s->allow);
            s->allow = keys;
            s->n_allow = (size_t)k;
            slog(s, LOG_WARN, "reload: curve allowlist has %ld key%s", k, k == 1 ? "" : "s");
        }
    }
    set_log_level(s);
    slog(s, LOG_WARN, "reload: %d option%s applied, %d need a restart", changed, changed == 1 ? "" : "s", ignored);
    ssmd_config_free(&fresh);
}

int ssmd_server_run(ssmd_config *cfg, const char *model_path, const ssmd_server_control *ctl)
{
    server srv = { .cfg = cfg, .model_path = model_path, .stop = ctl ? ctl->stop : NULL, .ctl = ctl,
                   .file_slot = -1 }, *s = &srv;
    int rc = 2;
    set_log_level(s);
    if (cfg->generate_s > 0) { /* generation: the token model and its job instead of the audio pipeline */
        if ((rc = gen_open(s)) != 0) {
            if (rc < 0) rc = 0; /* stopped by a signal while feeding the prompt */
            goto out;
        }
        rc = 2;
        goto buffers;
    }
    ssm_error me = { 0 };
    char err[512];
    ssm_model_options mo;
    ssmd_config_model_options(cfg, &mo);
    if (ssm_model_load(model_path, &mo, &s->model, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", me.msg);
        goto out;
    }
    if (ssm_model_backend_note(s->model)[0])
        slog(s, LOG_INFO, "backend %s: %s", ssm_model_backend(s->model),
             ssm_model_backend_note(s->model));
    if (ssmd_frontend_from_model(&s->fe, s->model, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s: %s\n", model_path, err);
        goto out;
    }
    if (s->fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = s->fe.sample_rate_hz, .n_fft = (size_t)s->fe.n_fft,
                              .n_mels = (size_t)s->fe.n_mels, .fmin_hz = s->fe.fmin_hz,
                              .fmax_hz = s->fe.fmax_hz, .scale = DSP_MEL_SLANEY, .norm = DSP_MEL_NORM_SLANEY };
        dsp_error de = { 0 };
        if (!(s->mb = dsp_melbank_create(&mc, &de))) {
            fprintf(stderr, "ssmd: %s: %s\n", model_path, de.msg);
            goto out;
        }
    }
    s->max_streams = (int)cfg->max_streams;
    unsigned rflags = 0;
    int wrc = ssmd_config_runner_flags(cfg, s->model, &rflags, err, sizeof err);
    if (wrc < 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        goto out;
    }
    if (wrc > 0)
        slog(s, LOG_WARN, "%s", err);
    if (ssm_runner_create(s->model, s->max_streams, 1, rflags, &s->runner, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", me.msg);
        goto out;
    }
    /* batches of 2·16 streams or more are split over the threads (same bits) */
    if (cfg->threads > 1 && ssm_runner_set_threads(s->runner, (int)cfg->threads, 16, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: threads: %s\n", me.msg);
        goto out;
    }
buffers:;
    size_t ms = (size_t)s->max_streams;
    s->streams = calloc(ms, sizeof *s->streams);
    s->states = calloc(ms, sizeof *s->states);
    s->batch = calloc(ms, sizeof *s->batch);
    s->step_flags = calloc(ms, sizeof *s->step_flags);
    s->features = malloc(ms * (size_t)s->fe.n_features * sizeof(float));
    s->mask = malloc(ms * (size_t)s->fe.n_bins * sizeof(float));
    s->vad = malloc(ms * sizeof(float));
    s->emb = malloc(ms * (size_t)ssm_model_d_model(s->model) * sizeof(float));
    s->outbuf = malloc(OUT_CHUNK * sizeof(float));
    if (!s->streams || !s->states || !s->batch || !s->step_flags || !s->features || !s->mask || !s->vad || !s->emb || !s->outbuf) {
        fprintf(stderr, "ssmd: out of memory\n");
        goto out;
    }
    if (getrandom(&s->epoch, sizeof s->epoch, 0) != (ssize_t)sizeof s->epoch) s->epoch = (uint64_t)realtime_ns();
    s->t_start = now_s();

    bool is_file = strcmp(cfg->input, "none") != 0 && strcmp(cfg->input, "mic") != 0;
    bool serve = strcmp(cfg->serve, "yes") == 0 || (strcmp(cfg->serve, "auto") == 0 && !(is_file && cfg->output[0]));
    if (serve && open_sockets(s) != 0) goto out;
    if (!serve && !is_file) {
        fprintf(stderr, "ssmd: serve: 'no' is only for file-to-file jobs; input '%s' needs the sockets\n",
                cfg->input);
        goto out;
    }
    if (is_file && open_file_input(s) != 0) goto out;
    if (strcmp(cfg->input, "mic") == 0 && open_capture(s) != 0) goto out;
    if (s->gen) { /* the output file last: a failed start leaves an existing file alone */
        char gerr[1024];
        if (ssmd_genjob_open_output(s->gen, cfg, gerr, sizeof gerr) != 0) {
            fprintf(stderr, "ssmd: %s\n", gerr);
            goto out;
        }
        if (gen_streams_open(s) != 0) goto out;
    }
    if (serve)
        slog(s, LOG_INFO, "serving %s on pub %s, ingest %s, control %s", model_path, cfg->pub, cfg->ingest,
             cfg->control);

    bool show_progress = is_file && (strcmp(cfg->progress, "always") == 0 ||
                                      (strcmp(cfg->progress, "auto") == 0 && isatty(STDERR_FILENO)));
    double last_progress = 0;
    rc = 0;
    bool file_done = false, stopping = false;
    double stop_t = 0;
    for (;;) {
        bool busy = false;
        if (s->pub) {
            zmq_pollitem_t items[4] = { { s->pub, 0, ZMQ_POLLIN, 0 }, { s->ingest, 0, ZMQ_POLLIN, 0 },
                                        { s->control, 0, ZMQ_POLLIN, 0 }, { s->zap, 0, ZMQ_POLLIN, 0 } };
            bool work = s->reader && !s->streams[s->file_slot].eos && !cfg->realtime &&
                        (cfg->wait_subscribers == 0 || s->c.subscriptions >= (uint64_t)cfg->wait_subscribers);
            if (zmq_poll(items, s->zap ? 4 : 3, work || stopping ? 0 : gen_poll_ms(s)) < 0 && zmq_errno() != EINTR) {
                slog(s, LOG_ERROR, "poll: %s", zmq_strerror(zmq_errno()));
                rc = 1;
                break;
            }
            handle_zap(s);
            if (!stopping) handle_subscriptions(s);
            handle_control(s);
            if (!stopping) handle_ingest(s);
        }
        if (ctl && ctl->hup && *ctl->hup) {
            *ctl->hup = 0;
            reload_config(s);
        }
        if ((s->stop && *s->stop) || s->stop_requested) {
            if (!stopping) {
                stopping = true;
                stop_t = now_s();
                slog(s, LOG_INFO, "stopping: finishing streams");
                for (int i = 0; i < s->max_streams; i++)
                    if (s->streams[i].used) s->streams[i].eos = true;
            }
        }
        if (!stopping) pump_capture(s);
        expire_idle_pushes(s);
        if (!stopping && s->reader && pump_file(s, &busy) != 0) {
            rc = 1;
            break;
        }
        if (pump_gen(s, stopping) != 0) {
            rc = 1;
            break;
        }
        if (engine_run(s) != 0) {
            rc = 1;
            break;
        }
        if (show_progress && s->file_slot >= 0 && s->streams[s->file_slot].ended) {
            progress_line(s, true);
            show_progress = false;
        }
        reap_streams(s, &file_done, &rc);
        if (file_done || (s->gen_done && active_streams(s) == 0)) break;
        if (stopping && (active_streams(s) == 0 || now_s() - stop_t > 1.5)) break;
        if (!s->pub && !busy) {
            /* no sockets: only the file paces the loop */
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        if (show_progress && now_s() - last_progress > 0.2) {
            progress_line(s, false);
            last_progress = now_s();
        }
    }
    if (s->pub) slog(s, LOG_INFO, "stopped");
out:
    for (int i = 0; s->streams && i < s->max_streams; i++)
        if (s->streams[i].used) stream_close(s, &s->streams[i]);
    close_sockets(s);
    ssmd_playback_close(s->mon);
    ssmd_capture_close(s->cap);
    free(s->cap_buf);
    free(s->cap_chan);
    dsp_audio_reader_close(s->reader);
    free(s->file_buf);
    free(s->file_mono);
    free(s->streams);
    free(s->states);
    free(s->batch);
    free(s->step_flags);
    free(s->features);
    free(s->mask);
    free(s->vad);
    free(s->emb);
    free(s->outbuf);
    ssmd_genjob_destroy(s->gen);
    free(s->gen_buf);
    ssm_runner_destroy(s->runner);
    dsp_melbank_destroy(s->mb);
    ssm_model_free(s->model);
    return rc;
}
