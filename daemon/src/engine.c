/* SPDX-License-Identifier: MIT */
/* The engine: the stream table and the step in the middle.  Each iteration
 * pushes every stream's pending input into its pipeline (stream.h), steps
 * every stream that has a frame ready as one batch (ssm_step), and hands the
 * results to the stream's sinks through ssmd_sink_ops: it never asks which
 * source filled a stream or which sinks it has.
 *
 * Memory is bounded: each stream's pending input holds at most
 * SSMD_SSMD_PENDING_SECONDS of audio.  Live sources (the capture device) drop what
 * does not fit, count it and flag a discontinuity; client pushes are never
 * dropped: a message larger than the room is fed in parts over several loop
 * iterations (ssmd_srv_stream_append_some takes what fits, the push source
 * keeps the rest; a stream whose results cannot leave is held instead,
 * sink_reply.c).  While the sockets are served the engine steps for at most
 * SSMD_ENGINE_BUDGET_MS an iteration, so control requests are answered
 * between the batches.  Live streams first: a batch holds the live streams
 * with a frame ready (their unprocessed input is at most live_backlog_ms: a
 * microphone, a client pushing at real-time pace; ssmd_srv_stream_live), and
 * only when none has one, every stream with a frame ready; so the bulk
 * streams (pushed as fast as possible, files) get the time the live ones
 * leave, and a live frame waits for at most one bulk batch and the loop's
 * other phases.  The order of the batches never changes a stream's samples.
 * A stream's audio is gathered over the pass (its
 * out buffer) and leaves as one message at the end of the pass, or earlier
 * when SSMD_OUT_CHUNK samples are ready: fewer, larger messages for the same
 * samples, and no frame waits for a later pass.  Loop thread; allocation only
 * when a stream opens. */
#include "srv.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

char *ssmd_srv_event_json(ssmd_srv *s, ssmd_srv_stream *st, json_t *o)
{
    const char *event = json_string_value(json_object_get(o, "event"));
    if (st->start_due && (!event || strcmp(event, "start") != 0))
        ssmd_srv_stream_announce(s, st); /* end before the wait ended */
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return NULL;
    for (int i = 0; i < st->n_sinks; i++)
        if (st->sinks[i].ops->event) st->sinks[i].ops->event(s, st, st->sinks[i].self, text);
    return text;
}

void ssmd_srv_event(ssmd_srv *s, ssmd_srv_stream *st, const char *event, const char *reason)
{
    json_t *o = json_pack("{s:s, s:s}", "event", event, "stream", st->name);
    if (o && reason) json_object_set_new(o, "reason", json_string(reason));
    free(ssmd_srv_event_json(s, st, o));
}

void ssmd_srv_stream_announce(ssmd_srv *s, ssmd_srv_stream *st)
{
    if (!st->start_due) return;
    st->start_due = false;
    st->meta_due = false; /* the meta goes out now */
    ssmd_pub_meta(s, st);
    ssmd_srv_event(s, st, "start", NULL);
}

/* ---- streams ---------------------------------------------------------- */

ssmd_srv_stream *ssmd_srv_stream_find(ssmd_srv *s, const char *name)
{
    for (int i = 0; i < s->max_streams; i++)
        if (s->streams[i].used && strcmp(s->streams[i].name, name) == 0) return &s->streams[i];
    return NULL;
}

int ssmd_srv_active_streams(const ssmd_srv *s)
{
    return s->n_streams;
}

void ssmd_srv_stream_close(ssmd_srv *s, ssmd_srv_stream *st)
{
    if (st->claimed) ssmd_cluster_release(s->cluster, st->name); /* its owner key goes */
    ssmd_stream_destroy(st->st);
    free(st->pend);
    free(st->out);
    for (int i = 0; i < st->n_sinks; i++)
        if (st->sinks[i].ops->destroy) st->sinks[i].ops->destroy(st->sinks[i].self);
    if (st->used) s->n_streams--;
    memset(st, 0, sizeof *st);
}

void ssmd_srv_stream_attach(ssmd_srv_stream *st, const ssmd_sink_ops *ops, void *self)
{
    assert(st->n_sinks < SSMD_SINKS_MAX); /* a stream has PUB and at most one other today */
    st->sinks[st->n_sinks].ops = ops;
    st->sinks[st->n_sinks].self = self;
    st->n_sinks++;
}

ssm_state *ssmd_srv_stream_state(ssmd_srv *s, ssmd_srv_stream *st)
{
    if (!st->st) return st->src->state ? st->src->state(s, st) : NULL;
    return ssmd_stream_state(st->st);
}

/* Claims a free slot; returns NULL with err set when none or on failure. */
ssmd_srv_stream *ssmd_srv_stream_open(ssmd_srv *s, const char *name, const ssmd_source_ops *src,
                                      int rate_hz, bool aligned, bool pipeline, char *err, size_t cap)
{
    ssmd_srv_stream *st = NULL;
    for (int i = 0; i < s->max_streams && !st; i++)
        if (!s->streams[i].used) st = &s->streams[i];
    if (!st) {
        snprintf(err, cap, "TOO_MANY_STREAMS");
        return NULL;
    }
    dsp_resample_quality q = strcmp(s->cfg->resample_quality, "fast") == 0     ? DSP_RESAMPLE_FASTEST
                             : strcmp(s->cfg->resample_quality, "medium") == 0 ? DSP_RESAMPLE_MEDIUM
                                                                                : DSP_RESAMPLE_BEST;
    ssmd_stream_config sc = { .in_rate_hz = rate_hz, .align_output = aligned, .quality = q,
                              .max_prepared = s->chunk_frames, .shared = s->stream_shared };
    memset(st, 0, sizeof *st);
    if (pipeline) { /* generated streams come from their generator, not the audio pipeline */
        st->st = ssmd_stream_create(s->model, &s->fe, s->mb, &sc, err, cap);
        if (!st->st) return NULL;
        st->pend_cap = (size_t)rate_hz * SSMD_PENDING_SECONDS;
        st->pend = malloc(st->pend_cap * sizeof(float));
        st->out = malloc(SSMD_OUT_CHUNK * sizeof(float));
        if (!st->pend || !st->out) {
            ssmd_stream_destroy(st->st);
            free(st->pend);
            free(st->out);
            snprintf(err, cap, "out of memory");
            return NULL;
        }
    }
    st->used = true;
    s->n_streams++;
    /* generated streams are opened first, into slots 0..n-1: slot i is the
     * generator's stream i (source_gen.c checks it) */
    if (!pipeline) st->gen_index = (int)(st - s->streams);
    snprintf(st->name, sizeof st->name, "%s", name);
    st->src = src;
    ssmd_srv_stream_attach(st, &ssmd_sink_pub, NULL);
    st->rate_hz = rate_hz;
    st->t_open = ssmd_now_s();
    /* Subscriptions arrive asynchronously (ZeroMQ's slow joiner): what is
     * published before they are read from the XPUB socket reaches nobody.
     * A source that waits for subscribers announces its streams when they
     * have arrived, so they get the first meta/ and the start event. */
    st->start_due = src->waits_for_subscribers && ssmd_srv_waiting_subscribers(s);
    if (!st->start_due) {
        ssmd_pub_meta(s, st);
        ssmd_srv_event(s, st, "start", NULL);
    }
    ssmd_log(s->t.pub ? SSMD_LOG_INFO : SSMD_LOG_DEBUG, "stream %s: started (%s, %d Hz)", st->name,
         src->name, rate_hz);
    return st;
}

static void pending_compact(ssmd_srv_stream *st)
{
    if (st->pend_pos == 0) return;
    memmove(st->pend, st->pend + st->pend_pos, (st->pend_len - st->pend_pos) * sizeof(float));
    st->pend_len -= st->pend_pos;
    st->pend_pos = 0;
}

void ssmd_srv_stream_count_nonfinite(ssmd_srv *s, ssmd_srv_stream *st, uint64_t n)
{
    st->in_nonfinite += n;
    s->c.nonfinite_samples += n;
}

void ssmd_srv_stream_append(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n)
{
    if (st->pend_len + n > st->pend_cap) pending_compact(st);
    size_t room = st->pend_cap - st->pend_len, k = n < room ? n : room;
    memcpy(st->pend + st->pend_len, x, k * sizeof(float));
    uint64_t over = 0, bad = 0;
    /* NaN compares false; Inf is counted as non-finite instead.  Branch-free, in blocks of a
     * fixed 16 with 32-bit block sums, so that gcc vectorises it at -O2 (every input sample) */
    size_t i = 0;
    for (; i + 16 <= k; i += 16) {
        uint32_t o = 0, b = 0;
        for (int j = 0; j < 16; j++) {
            const float a = fabsf(x[i + (size_t)j]);
            o += (uint32_t)((a > 1.0f) & (a <= FLT_MAX));
            b += (uint32_t)!(a <= FLT_MAX);
        }
        over += o;
        bad += b;
    }
    for (; i < k; i++) {
        const float a = fabsf(x[i]);
        over += (uint64_t)((a > 1.0f) & (a <= FLT_MAX));
        bad += (uint64_t)!(a <= FLT_MAX);
    }
    st->in_clipped += over;
    s->c.input_clipped += over;
    /* the stream's pipeline zeroes them (stream.c); the file reader and the
     * push source zero theirs before and count them themselves */
    ssmd_srv_stream_count_nonfinite(s, st, bad);
    st->pend_len += k;
    st->in_samples += k;
    if (k < n) {
        st->dropped_samples += n - k;
        s->c.dropped_samples += n - k;
        st->flags_next |= SSMD_FLAG_DISCONTINUITY;
    }
}

/* One audio message to every sink, in the order they were attached; rows
 * may be 0 (a bare end-of-stream marker). */
int ssmd_srv_emit_audio(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n, uint32_t flags)
{
    for (int i = 0; i < st->n_sinks; i++)
        if (st->sinks[i].ops->audio && st->sinks[i].ops->audio(s, st, st->sinks[i].self, x, n, flags) != 0)
            return -1;
    st->out_samples += n;
    return 0;
}

/* Output samples beyond full scale: an integer encoding clips them. */
static uint64_t count_over_full_scale(const float *x, size_t n)
{
    uint64_t over = 0;
    for (size_t i = 0; i < n; i++) over += fabsf(x[i]) > 1.0f;
    return over;
}

/* Emits what the stream's output buffer holds as one message (rows may be
 * 0: a bare end-of-stream marker); end: it is the stream's last.  A message
 * with samples beyond full scale carries CLIPPED. */
static int emit_out(ssmd_srv *s, ssmd_srv_stream *st, bool end)
{
    size_t n = st->out_len;
    uint32_t flags = st->flags_next;
    st->flags_next = 0;
    st->out_len = 0; /* a sink that cannot pass it on keeps a copy (sink_reply.c) */
    uint64_t over = count_over_full_scale(st->out, n);
    if (over) {
        flags |= SSMD_FLAG_CLIPPED;
        st->out_clipped += over;
        s->c.output_clipped += over;
    }
    if (end) {
        flags |= SSMD_FLAG_END_OF_STREAM;
        st->eos_sent = true;
    }
    return ssmd_srv_emit_audio(s, st, st->out, n, flags);
}

/* Pops the stream's output into its output buffer.  The buffer is emitted
 * when it is full, when the stream's output is complete (that message
 * carries end-of-stream), and at the end of the engine pass (flush_outputs):
 * the frames one pass computes for a stream leave as one message of up to
 * SSMD_OUT_CHUNK samples instead of one per frame, and nothing waits for a
 * later pass.  A sink that holds the stream (a client's full queue) stops
 * the popping: the rest stays in the pipeline until the stream runs again. */
static int drain_output(ssmd_srv *s, ssmd_srv_stream *st)
{
    while (!st->held) {
        size_t got = ssmd_stream_pop(st->st, st->out + st->out_len, SSMD_OUT_CHUNK - st->out_len);
        st->out_len += got;
        bool end = st->finished && !st->eos_sent && ssmd_stream_done(st->st);
        if (st->out_len == SSMD_OUT_CHUNK || end) {
            if (emit_out(s, st, end) != 0) return -1;
        } else if (got == 0) {
            break;
        }
    }
    return 0;
}

/* The end of an engine pass: every stream's popped output leaves. */
static int flush_outputs(ssmd_srv *s)
{
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (st->used && st->out_len > 0 && emit_out(s, st, false) != 0) return -1;
    }
    return 0;
}

/* Feeds the stream's pending input and prepares its next frame into row;
 * returns 1 when a frame was prepared. */
static int next_frame(ssmd_srv_stream *st, float *row)
{
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
    return ssmd_stream_prepare(st->st, row);
}

bool ssmd_srv_stream_live(const ssmd_srv *s, const ssmd_srv_stream *st)
{
    /* priority inheritance: while this stream's parked message waits for room, no client's
     * messages are read (source_push.c), so it is served first until the rest is in */
    if (s->push.parked && st->src == &ssmd_source_push && strcmp(s->push.name, st->name) == 0) return true;
    uint64_t backlog = st->pend_len - st->pend_pos;
    return backlog * 1000u <= (uint64_t)st->rate_hz * (uint64_t)s->cfg->live_backlog_ms;
}

/* Prepares the next frame of each stream that has one ready (of the live
 * streams only, or of every stream) into the batch buffers; returns the
 * batch size. */
static int gather_batch(ssmd_srv *s, bool live_only)
{
    size_t nf = (size_t)s->fe.n_features;
    int nb = 0;
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || st->ended || !st->st || st->held) continue;
        if (live_only && !ssmd_srv_stream_live(s, st)) continue;
        if (next_frame(st, s->features + (size_t)nb * nf)) {
            s->batch[nb] = i;
            s->states[nb] = ssmd_stream_state(st->st);
            nb++;
        }
    }
    return nb;
}

/* True when a sink of the stream can hold it (a reply whose client's queue
 * is full): its frames must then be completed one at a time. */
static bool may_be_held(const ssmd_srv_stream *st)
{
    for (int k = 0; k < st->n_sinks; k++)
        if (st->sinks[k].ops == &ssmd_sink_reply) return true;
    return false;
}

/* Steps every stream with a frame ready, as one batch, until none has.  A
 * stream that is alone with a frame ready and that no sink can hold (a file
 * job, the microphone) runs up to chunk_frames of the frames its input
 * already holds through one ssm_forward call: the same bits as
 * frame-by-frame steps (model.h), the weights read once per chunk instead of
 * once per frame; each frame then goes to the sinks exactly as a stepped one.
 * (A pushed stream is stepped frame by frame: its reply sink may hold it
 * between two frames, and a chunk's later frames would have nowhere to go.) */
int ssmd_engine_run(ssmd_srv *s)
{
    size_t nf = (size_t)s->fe.n_features, nb_bins = (size_t)s->fe.n_bins;
    size_t dm = (size_t)ssm_model_d_model(s->model);
    unsigned heads = ssm_model_heads(s->model);
    /* held streams: the sinks retry what they keep; a stream runs again once
     * nothing is kept (its output left, in order) */
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || !st->held) continue;
        bool clear = true;
        for (int k = 0; k < st->n_sinks; k++)
            if (st->sinks[k].ops->flush && !st->sinks[k].ops->flush(s, st, st->sinks[k].self)) clear = false;
        if (clear) {
            st->held = false;
            if (drain_output(s, st) != 0) return -1; /* what the pipeline had ready */
        }
    }
    /* a file-to-file job has no one to answer: it runs unbounded */
    double deadline = s->t.pub ? ssmd_now_s() + SSMD_ENGINE_BUDGET_MS * 1e-3 : 0;
    s->engine_backlog = false;
    for (;;) {
        if (deadline > 0 && ssmd_now_s() > deadline) {
            s->engine_backlog = true; /* the frames wait in their pending input */
            break;
        }
        /* live streams first (a microphone, pushes at real-time pace): a bulk stream is
         * stepped only in a batch where no live stream has a frame ready, so bulk work
         * delays live frames by at most one batch and the engine's budget */
        int nb = gather_batch(s, true);
        bool live = nb > 0;
        if (!live) nb = gather_batch(s, false);
        if (nb == 0) break;
        ssm_outputs out = { .mask = (heads & SSM_MODEL_HEAD_MASK) ? s->mask : NULL,
                            .vad = (heads & SSM_MODEL_HEAD_VAD) ? s->vad : NULL,
                            .embedding = s->cfg->publish_embedding ? s->emb : NULL };
        int rc;
        if (nb == 1 && s->chunk_frames > 1 && !may_be_held(&s->streams[s->batch[0]])) {
            ssmd_srv_stream *st = &s->streams[s->batch[0]];
            while (nb < s->chunk_frames && next_frame(st, s->features + (size_t)nb * nf)) s->batch[nb++] = s->batch[0];
            unsigned fl = 0;
            rc = ssm_forward(s->runner, s->states[0], nb, s->features, NULL, &out, &fl);
            memset(s->step_flags, 0, (size_t)nb * sizeof *s->step_flags);
            s->step_flags[0] = fl; /* a reset zeroed the whole chunk's outputs: reported once */
        } else {
            rc = ssm_step(s->runner, s->states, nb, s->features, NULL, &out, s->step_flags);
        }
        if (rc != SSM_OK && rc != SSM_ERR_NONFINITE) {
            ssmd_log(SSMD_LOG_ERROR, "model step failed: %s", ssm_strerror(rc));
            return -1;
        }
        if (live) s->c.live_frames += (uint64_t)nb;
        else s->c.bulk_frames += (uint64_t)nb;
        for (int b = 0; b < nb; b++) {
            ssmd_srv_stream *st = &s->streams[s->batch[b]];
            uint64_t first = st->frames * (uint64_t)s->fe.hop_samples * (uint64_t)st->rate_hz /
                             (uint64_t)s->fe.sample_rate_hz;
            /* a model with lookahead d: the heads' row of step t is frame t − d's (none yet for t < d) */
            const uint64_t la = (uint64_t)s->fe.lookahead_frames;
            const bool heads_of_input = st->frames >= la;
            ssmd_frame_out fo = { .first_sample = first, .features = s->features + (size_t)b * nf,
                                  .n_features = (uint32_t)nf, .n_bins = (uint32_t)nb_bins, .d_model = (uint32_t)dm };
            fo.head_first_sample = heads_of_input ? (st->frames - la) * (uint64_t)s->fe.hop_samples *
                                                        (uint64_t)st->rate_hz / (uint64_t)s->fe.sample_rate_hz
                                                  : 0;
            if (s->step_flags[b] & SSM_FLAG_RESET) {
                st->resets++;
                s->c.state_resets++;
                fo.flags |= SSMD_FLAG_STATE_RESET;
                ssmd_srv_event(s, st, "reset", "state became non-finite");
            }
            if (out.vad && heads_of_input) {
                fo.vad = s->vad + b;
                st->vad_sum += s->vad[b];
                st->vad_frames++;
            }
            /* the gate and the attenuation limit (shared with the LADSPA plugin); the
             * options are read every frame, so a reload takes effect at once */
            dsp_mask_limit_config mlc = { .atten_lim_db = (double)s->cfg->atten_lim_db,
                                          .vad_gate_percent = (float)s->cfg->vad_gate,
                                          .vad_grace_ms = (uint64_t)s->cfg->vad_grace_ms,
                                          .hop_samples = (uint64_t)s->fe.hop_samples,
                                          .sample_rate_hz = (uint64_t)s->fe.sample_rate_hz };
            dsp_mask_limit(out.mask ? s->mask + (size_t)b * nb_bins : NULL, nb_bins,
                           out.vad && heads_of_input ? s->vad + b : NULL, &mlc, &st->vad_quiet_frames);
            if (out.mask && s->cfg->publish_mask && heads_of_input) fo.mask = s->mask + (size_t)b * nb_bins;
            if (out.embedding) fo.embedding = s->emb + (size_t)b * dm;
            for (int k = 0; k < st->n_sinks; k++)
                if (st->sinks[k].ops->frame) st->sinks[k].ops->frame(s, st, st->sinks[k].self, &fo);
            ssmd_stream_complete(st->st, out.mask ? s->mask + (size_t)b * nb_bins : NULL);
            st->frames++;
            s->c.frames++;
            if (drain_output(s, st) != 0) return -1;
            if (st->ckpt_period) ssmd_srv_checkpoint_due(s, st); /* cluster mode, checkpoint.c */
        }
    }
    /* finishing streams may still have the resampler's tail to emit */
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || st->ended || !st->finished || !st->st || st->held) continue;
        if (drain_output(s, st) != 0) return -1;
        if (ssmd_stream_done(st->st) && !st->held) st->ended = true;
    }
    return flush_outputs(s);
}

/* Client pushes are not dropped: what does not fit in the pending buffer
 * stays with the caller (the push source parks it) until the engine has
 * consumed what is there, at the loop's next iteration.  The buffer is
 * compacted only when the samples do not fit after its end
 * (ssmd_srv_stream_append): compacting at every message moved up to the
 * whole backlog (2 s a stream) for each message pushed. */
long ssmd_srv_stream_append_some(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n)
{
    size_t room = st->pend_cap - (st->pend_len - st->pend_pos), k = n < room ? n : room;
    ssmd_srv_stream_append(s, st, x, k);
    return (long)k;
}

void ssmd_srv_stream_report(ssmd_srv *s, ssmd_srv_stream *st, int level, const char *output, bool compensated)
{
    double el = ssmd_now_s() - st->t_open, audio_s = (double)st->in_samples / st->rate_hz;
    char vad[64] = "", hist[64] = "";
    size_t hb = ssmd_frontend_history_bytes(&s->fe);
    if (hb) snprintf(hist, sizeof hist, " (pitch history %zu)", hb);
    if (st->vad_frames && (ssm_model_heads(s->model) & SSM_MODEL_HEAD_VAD))
        snprintf(vad, sizeof vad, ", mean voice activity %.2f", st->vad_sum / (double)st->vad_frames);
    ssmd_log(level,
             "%s%s%s: %.2f s of audio at %d Hz, %llu frames of %d samples, %.3f s, %.1fx real time, "
             "state %zu bytes%s, latency %.1f ms%s, %llu samples dropped, %llu state resets, "
             "%llu non-finite input samples (NaN/Inf) zeroed, %llu input samples beyond full scale, %llu output samples clipped%s, %s weights, "
             "%s kernels%s%s",
             st->name, output ? " -> " : "", output ? output : "",
             audio_s, st->rate_hz, (unsigned long long)st->frames, s->fe.hop_samples, el,
             el > 0 ? audio_s / el : 0.0, ssm_state_bytes(s->model) + hb, hist,
             1e3 * s->fe.latency_samples / s->fe.sample_rate_hz,
             compensated ? " compensated" : "", (unsigned long long)st->dropped_samples,
             (unsigned long long)st->resets, (unsigned long long)st->in_nonfinite,
             (unsigned long long)st->in_clipped,
             (unsigned long long)st->out_clipped,
             !st->out_clipped ? "" : st->out_file_int ? " (in the file)" : " (beyond full scale; the float file keeps them)",
             ssm_runner_weights(s->runner), ssm_runner_isa(s->runner), vad,
             s->stop_requested || (s->stop && *s->stop) ? " (stopped early; output finalised)" : "");
}
