/* SPDX-License-Identifier: MIT */
/* The generator source (--generate-s): a mu-law
 * token model's streams gen0, gen1, ... (generate.h's job: generator,
 * prompt, output file); with --generate-publish paced at real time and
 * published like live audio.
 * A run in generation mode serves these streams only: the audio front-end
 * and the engine's runner are not set up (a token model has neither), so the
 * streams have no audio pipeline (st NULL) and the engine passes them by;
 * this source steps the generator itself, a slice at a time, and hands each
 * released block to the streams' sinks like any other audio.  Pushes are
 * refused, and the run ends when every stream has generated generate_s
 * seconds (or on stop).  Without --generate-publish the same source runs a
 * file-only job: no sockets, as fast as the model steps.
 * Loop thread; allocation at set-up only. */
#include "srv.h"
#include "model_info.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>


/* Loads s->model, opens the job (prompt; the output file comes later, in
 * gen_open_streams) and sizes the server for its streams.  Without
 * --generate-publish (a file-only job, no sockets) the sampling options are
 * checked before the model is loaded, and the lines that job always printed
 * (backend note, summary) are printed whatever the log level. */
int ssmd_source_generate_setup(ssmd_srv *s)
{
    char err[1024];
    bool paced = s->cfg->generate_publish;
    ssm_sample_params sp;
    if (ssmd_generate_check_config(s->cfg, err, sizeof err) != 0 ||
        (!paced && ssmd_generate_params_from_config(s->cfg, &sp, err, sizeof err) != 0)) {
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
        ssmd_log(paced ? SSMD_LOG_INFO : SSMD_LOG_ERROR, "backend %s: %s", ssm_model_backend(s->model), ssm_model_backend_note(s->model));
    int rate = 16000;
    ssmd_generate_check_model(s->model, &rate, err, sizeof err); /* reported by ssmd_genjob_open */
    /* published: 20 ms blocks, each released when its last sample is due, as
     * live audio; file-only: 1024 samples, released at once */
    size_t block = paced ? (size_t)rate / 50 : 1024;
    int rc = ssmd_genjob_open(s->cfg, s->model, s->model_path, block, s->stop, &s->gen.job, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        return rc < 0 ? -1 : rc; /* -1: stopped while feeding the prompt */
    }
    if (!(s->gen.buf = malloc(block * sizeof *s->gen.buf))) {
        fprintf(stderr, "ssmd: out of memory\n");
        return 1;
    }
    s->max_streams = ssmd_genjob_n_streams(s->gen.job);
    s->token_mode = true;
    s->compute_runner = ssmd_generator_runner(ssmd_genjob_generator(s->gen.job));
    /* what the headers and buffers need: one model step per sample */
    memset(&s->fe, 0, sizeof s->fe);
    s->fe.sample_rate_hz = rate;
    s->fe.n_fft = s->fe.hop_samples = s->fe.n_bins = s->fe.n_features = 1;
    return 0;
}

/* Opens the output file, then the streams gen0, gen1, ... (meta and start
 * event published). */
static int gen_open_streams(ssmd_srv *s)
{
    char gerr[1024]; /* the output file last: a failed start leaves an existing file alone */
    if (ssmd_genjob_open_output(s->gen.job, s->cfg, gerr, sizeof gerr) != 0) {
        fprintf(stderr, "ssmd: %s\n", gerr);
        return -1;
    }
    for (int i = 0; i < ssmd_genjob_n_streams(s->gen.job); i++) {
        char name[32], err[512];
        snprintf(name, sizeof name, "gen%d", i);
        ssmd_srv_stream *st = ssmd_srv_stream_open(s, name, &ssmd_source_generate, ssmd_genjob_rate_hz(s->gen.job),
                                                   false, false, err, sizeof err);
        if (!st || st->gen_index != i) {
            fprintf(stderr, "ssmd: %s: %s\n", name, st ? "slot does not match the generator's stream" : err);
            return -1;
        }
    }
    return 0;
}

/* The poll timeout the generation allows: 0 while the pending block needs
 * model steps, else the time until it is due (at most SSMD_POLL_MS). */
static int gen_poll_ms(const ssmd_srv *s)
{
    if (!s->gen.job || s->gen.done || ssmd_srv_waiting_subscribers(s)) return SSMD_POLL_MS;
    size_t m = ssmd_genjob_block(s->gen.job, NULL);
    if (m == 0 || s->gen.t0 == 0) return 0;
    double wait = s->gen.t0 + (double)(ssmd_genjob_released(s->gen.job) + m) / ssmd_genjob_rate_hz(s->gen.job) - ssmd_now_s();
    return wait <= 0 ? 0 : wait >= SSMD_POLL_MS * 1e-3 ? SSMD_POLL_MS : (int)ceil(wait * 1e3);
}

/* Ends every generated stream (end-of-stream marker where the last block
 * did not carry it), finalises the output file, logs the summary. */
static int gen_finish(ssmd_srv *s)
{
    int rc = 0;
    char err[1024];
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || st->src != &ssmd_source_generate) continue;
        if (!st->eos_sent) ssmd_srv_emit_audio(s, st, s->gen.buf, 0, SSMD_FLAG_END_OF_STREAM | st->flags_next);
        st->eos_sent = st->eos = st->finished = st->ended = true;
    }
    if (ssmd_genjob_close(s->gen.job, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        rc = -1;
    }
    s->gen.done = true;
    int n = ssmd_genjob_n_streams(s->gen.job), rate = ssmd_genjob_rate_hz(s->gen.job);
    double audio_s = (double)ssmd_genjob_released(s->gen.job) / rate, el = s->gen.t0 > 0 ? ssmd_now_s() - s->gen.t0 : 0;
    const ssm_runner *grn = ssmd_generator_runner(ssmd_genjob_generator(s->gen.job));
    ssmd_log(s->t.pub ? SSMD_LOG_WARN : SSMD_LOG_ERROR, "generated %.2f s x %d stream%s in %.2f s (%.2fx real time%s), resets %llu, "
         "%s weights, %s kernels -> %s%s%s",
         audio_s, n, n == 1 ? "" : "s", el, el > 0 ? audio_s / el : 0.0,
         ssmd_genjob_finished(s->gen.job) ? "" : ", stopped",
         (unsigned long long)ssmd_generator_resets(ssmd_genjob_generator(s->gen.job)),
         ssm_runner_weights(grn), ssm_runner_isa(grn), s->cfg->output,
         s->cfg->output[0] && s->t.pub ? " and " : "", s->t.pub ? s->cfg->pub : "");
    return rc;
}

/* Generation: runs model steps toward the pending block, then releases it:
 * each stream's samples go to its sinks (gen<i>/audio/, the last block
 * flagged end-of-stream) and the block is appended to the output file.
 * Published (--generate-publish): at most GEN_SLICE_S of steps per
 * iteration (so control requests and subscriptions are answered within
 * milliseconds however many streams a step carries), and a block is
 * released when its last sample is due in real time.  File-only: a whole
 * block per iteration, released at once.  Returns -1 on a failure. */
#define GEN_SLICE_S 0.005
static int gen_pull(ssmd_srv *s, bool stopping, bool *busy)
{
    bool paced = s->cfg->generate_publish;
    if (!s->gen.job || s->gen.done) return 0;
    if (stopping) return gen_finish(s);
    if (paced && ssmd_srv_waiting_subscribers(s)) return 0;
    if (s->gen.t0 == 0) s->gen.t0 = ssmd_now_s();
    double slice_end = ssmd_now_s() + GEN_SLICE_S;
    int ran;
    do { /* at least one step per iteration */
        if ((ran = ssmd_genjob_step(s->gen.job, paced ? 1 : INT_MAX)) < 0) {
            ssmd_log(SSMD_LOG_ERROR, "generation: model step failed");
            return -1;
        }
    } while (ran > 0 && ssmd_now_s() < slice_end);
    const float *x;
    size_t m = ssmd_genjob_block(s->gen.job, &x);
    uint64_t released = ssmd_genjob_released(s->gen.job);
    int n = ssmd_genjob_n_streams(s->gen.job), rate = ssmd_genjob_rate_hz(s->gen.job);
    if (m == 0 || (paced && ssmd_now_s() < s->gen.t0 + (double)(released + m) / rate)) return 0;
    *busy = !paced;
    bool last = released + m >= (uint64_t)s->cfg->generate_s * (uint64_t)rate;
    uint64_t resets = ssmd_generator_resets(ssmd_genjob_generator(s->gen.job));
    s->c.state_resets += resets - s->gen.resets_seen;
    s->gen.resets_seen = resets;
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || st->src != &ssmd_source_generate) continue;
        for (size_t k = 0; k < m; k++) s->gen.buf[k] = x[k * (size_t)n + (size_t)st->gen_index];
        uint32_t flags = st->flags_next | (last ? SSMD_FLAG_END_OF_STREAM : 0);
        st->flags_next = 0;
        ssmd_srv_emit_audio(s, st, s->gen.buf, m, flags); /* no per-stream writer: cannot fail */
        st->eos_sent = last;
        st->in_samples += m;
        st->frames += m;
        s->c.frames += m;
    }
    char err[1024];
    if (ssmd_genjob_next(s->gen.job, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        return -1;
    }
    return ssmd_genjob_finished(s->gen.job) ? gen_finish(s) : 0;
}

static bool gen_at_end(const ssmd_srv *s)
{
    return s->gen.done && ssmd_srv_active_streams(s) == 0;
}

static void gen_stream_ended(ssmd_srv *s, ssmd_srv_stream *st, int *rc)
{
    (void)s;
    (void)rc;
    ssmd_log(s->t.pub ? SSMD_LOG_INFO : SSMD_LOG_DEBUG, "%s: %.2f s generated at %d Hz, %llu samples published", st->name,
             (double)st->out_samples / st->rate_hz, st->rate_hz, (unsigned long long)st->out_samples);
}

/* One model step per sample, mu-law codes in and out. */
static char *gen_meta_json(ssmd_srv *s, ssmd_srv_stream *st)
{
    char epoch[32];
    snprintf(epoch, sizeof epoch, "0x%016llx", (unsigned long long)s->epoch);
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:s, s:i}, s:[s], s:o, "
                          "s:I, s:s, s:I, s:I, s:I}",
        "stream", st->name, "source", st->src->name, "sample_rate_hz", st->rate_hz,
        "channels", 1, "model_rate_hz", st->rate_hz, "n_fft", 1, "hop_samples", 1, "latency_samples", 0,
        "features", "kind", "mulaw", "n", 256, "heads", "lm", "model", ssmd_model_info_json(s->model, s->model_path),
        "state_bytes", (json_int_t)ssm_state_bytes(s->model), "epoch", epoch,
        "seed", (json_int_t)s->cfg->seed + st->gen_index,
        "block_samples", (json_int_t)ssmd_genjob_block_samples(s->gen.job),
        "total_samples", (json_int_t)s->cfg->generate_s * st->rate_hz);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static ssm_state *gen_state(ssmd_srv *s, ssmd_srv_stream *st)
{
    return ssmd_generator_state(ssmd_genjob_generator(s->gen.job), st->gen_index);
}

static void gen_close(ssmd_srv *s)
{
    ssmd_genjob_destroy(s->gen.job);
    free(s->gen.buf);
    s->gen.job = NULL;
    s->gen.buf = NULL;
}

const ssmd_source_ops ssmd_source_generate = {
    .name = "generate", .open = gen_open_streams, .pull = gen_pull, .poll_ms = gen_poll_ms,
    .at_end = gen_at_end, .stream_ended = gen_stream_ended, .meta_json = gen_meta_json,
    .state = gen_state, .close = gen_close, .waits_for_subscribers = true,
};
