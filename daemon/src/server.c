/* SPDX-License-Identifier: MIT */
/* Design note (see server.h for why one loop thread; srv.h for the rooms).
 * One iteration:
 *   1. transport: zmq_poll the sockets (timeout 0 while a source or the
 *      engine has work left from the last iteration, else a few ms), answer ZAP, re-send metas to new subscribers
 *      (sink_pub.c), answer the control requests the control thread passed
 *      on (control.c: it answers status itself, at once, whatever the loop
 *      is doing; the other commands touch the streams, so the loop answers them);
 *   2. SIGHUP → reload; stop → every stream's input ends;
 *   3. sources: each pulls what input it has into its streams (source_*.c);
 *   4. the engine steps every stream with a frame ready as one batch and
 *      hands the results to each stream's sinks (engine.c, sink_*.c);
 *      steps 3 and 4 each stop at a time budget while the sockets are served
 *      (SSMD_INGEST_BUDGET_MS, SSMD_ENGINE_BUDGET_MS), so step 1 comes round
 *      again soon and a control request never waits behind a push burst
 *      (passed-on control requests are also answered after step 3 and after step 4);
 *   5. streams whose input ended and whose output is drained are closed; the
 *      run ends when a finite source (a file, a generation) is complete.
 * The loop calls sources through ssmd_source_ops only: which ones run is
 * decided once, at start-up, from the options. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "srv.h"
#include "kernels/ssm_kernels.h"

/* The audio pipeline: loads the model, its front-end and the runner that
 * steps up to max_streams streams.  Returns 0, or -1 after one line on stderr. */
static int pipeline_setup(ssmd_srv *s)
{
    ssm_error me = { 0 };
    char err[512];
    ssm_model_options mo;
    ssmd_config_model_options(s->cfg, &mo);
    if (ssm_model_load(s->model_path, &mo, &s->model, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", ssmd_log_safe(me.msg));
        return -1;
    }
    if (ssm_model_backend_note(s->model)[0])
        ssmd_log(SSMD_LOG_INFO, "backend %s: %s", ssm_model_backend(s->model), ssm_model_backend_note(s->model));
    if (ssmd_frontend_from_model(&s->fe, s->model, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s: %s", s->model_path, err);
        return -1;
    }
    if (s->fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = s->fe.sample_rate_hz, .n_fft = (size_t)s->fe.n_fft,
                              .n_mels = (size_t)s->fe.n_mels, .fmin_hz = s->fe.fmin_hz,
                              .fmax_hz = s->fe.fmax_hz, .scale = DSP_MEL_SLANEY, .norm = DSP_MEL_NORM_SLANEY };
        dsp_error de = { 0 };
        if (dsp_melbank_create(&s->mb, &mc, &de) != DSP_OK) {
            ssmd_log(SSMD_LOG_ERROR, "%s: %s", s->model_path, de.msg);
            return -1;
        }
    }
    if (!(s->stream_shared = ssmd_stream_shared_create(&s->fe, err, sizeof err))) {
        fprintf(stderr, "ssmd: %s\n", err);
        return -1;
    }
    s->max_streams = (int)s->cfg->max_streams;
    unsigned rflags = 0;
    int wrc = ssmd_config_runner_flags(s->cfg, s->model, &rflags, err, sizeof err);
    if (wrc < 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        return -1;
    }
    if (wrc > 0) ssmd_log(SSMD_LOG_WARN, "%s", err);
    s->chunk_frames = (int)s->cfg->chunk_frames;
    if (ssm_runner_create(s->model, s->max_streams, s->chunk_frames, rflags, &s->runner, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", ssmd_log_safe(me.msg));
        return -1;
    }
    /* batches of 2·16 streams or more are split over the threads (same bits) */
    if (s->cfg->threads > 1 && ssm_runner_set_threads(s->runner, (int)s->cfg->threads, 16, &me) != SSM_OK) {
        fprintf(stderr, "ssmd: threads: %s\n", me.msg);
        return -1;
    }
    s->compute_runner = s->runner;
    return 0;
}

/* The engine's buffers and the stream table, for max_streams streams; one
 * table so that allocation and release cannot disagree. */
#define SRV_BUFFERS(s) { (s)->streams, (s)->states, (s)->batch, (s)->step_flags, (s)->features, \
                         (s)->mask, (s)->vad, (s)->emb }

static int buffers_alloc(ssmd_srv *s)
{
    size_t ms = (size_t)s->max_streams, rows = ms > (size_t)s->chunk_frames ? ms : (size_t)s->chunk_frames;
    s->streams = calloc(ms, sizeof *s->streams);
    s->states = calloc(rows, sizeof *s->states);
    s->batch = calloc(rows, sizeof *s->batch);
    s->step_flags = calloc(rows, sizeof *s->step_flags);
    s->features = malloc(rows * (size_t)s->fe.n_features * sizeof(float));
    s->mask = malloc(rows * (size_t)s->fe.n_bins * sizeof(float));
    s->vad = malloc(rows * sizeof(float));
    s->emb = malloc(rows * (size_t)ssm_model_d_model(s->model) * sizeof(float));
    void *bufs[] = SRV_BUFFERS(s);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!bufs[i]) {
            fprintf(stderr, "ssmd: out of memory\n");
            return -1;
        }
    return 0;
}

static void buffers_free(ssmd_srv *s)
{
    void *bufs[] = SRV_BUFFERS(s);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* Closes the streams that ended: end event, sinks finalised (an output file
 * closed), the source's summary line. */
static void reap_streams(ssmd_srv *s, int *rc)
{
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        if (!st->used || !st->ended) continue;
        if (st->stale) { /* another member runs it now: nothing more goes out (cluster mode) */
            ssmd_srv_stream_report(s, st, SSMD_LOG_DEBUG, NULL, false);
            ssmd_srv_stream_close(s, st);
            continue;
        }
        ssmd_srv_event(s, st, "end", NULL);
        for (int k = 0; k < st->n_sinks; k++)
            if (st->sinks[k].ops->finish && st->sinks[k].ops->finish(s, st, st->sinks[k].self) != 0) *rc = 1;
        if (st->src->stream_ended) st->src->stream_ended(s, st, rc);
        else ssmd_srv_stream_report(s, st, SSMD_LOG_INFO, NULL, false);
        ssmd_srv_stream_close(s, st);
    }
}

/* SIGHUP: re-read the configuration; copy the reloadable options into the
 * running one through the option table, log each change. */
/* Options that cannot act on this model or with these values say so (start-up and reload). */
static void warn_ineffective(const ssmd_srv *s)
{
    if (s->token_mode || s->cfg->vad_gate <= 0) return;
    if (!(ssm_model_heads(s->model) & SSM_MODEL_HEAD_VAD))
        ssmd_log(SSMD_LOG_WARN, "vad_gate: the model has no voice-activity head; the gate does nothing");
    else if (s->cfg->atten_lim_db <= 0)
        ssmd_log(SSMD_LOG_WARN, "vad_gate: atten_lim_db is 0 (pass-through), so the gate does nothing");
}

static void reload_config(ssmd_srv *s)
{
    if (!s->ctl || !s->ctl->reload) return;
    ssmd_config fresh;
    char err[1024];
    if (ssmd_config_init(&fresh) != 0) return;
    if (s->ctl->reload(&fresh, err, sizeof err, s->ctl->reload_user) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "reload: %s; keeping the running configuration", err);
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
            ssmd_log(SSMD_LOG_WARN, "reload: %s changed but needs a restart; keeping the running value", o[i].key);
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
        ssmd_log(SSMD_LOG_WARN, "reload: %s changed", o[i].key);
    }
    if (s->t.zap) { /* the allowlist file is re-read even when its name is unchanged */
        long k = ssmd_transport_reload_allowlist(&s->t, s->cfg->curve_allow_file, err, sizeof err);
        if (k < 0)
            ssmd_log(SSMD_LOG_ERROR, "reload: curve_allow_file: %s; keeping the old allowlist", err);
        else
            ssmd_log(SSMD_LOG_WARN, "reload: curve allowlist has %ld key%s", k, k == 1 ? "" : "s");
    }
    ssmd_log_set_level_name(s->cfg->log_level);
    warn_ineffective(s);
    ssmd_log(SSMD_LOG_WARN, "reload: %d option%s applied, %d need a restart", changed, changed == 1 ? "" : "s",
             ignored);
    ssmd_config_free(&fresh);
}

/* Runs the loop until a stop, a failure or a finite source's end; returns
 * the exit status. */
static int loop_run(ssmd_srv *s)
{
    const ssmd_server_control *ctl = s->ctl;
    int rc = 0;
    bool stopping = false, draining = false;
    double stop_t = 0, drain_t = 0;
    for (;;) {
        bool busy = false, done = false;
        if (s->t.pub) {
            int wait_ms = s->engine_backlog ? 0 : SSMD_POLL_MS;
            for (int i = 0; i < s->n_sources; i++)
                if (s->sources[i]->poll_ms) {
                    int ms = s->sources[i]->poll_ms(s);
                    if (ms < wait_ms) wait_ms = ms;
                }
            if (ssmd_transport_poll(&s->t, stopping ? 0 : wait_ms) < 0 && zmq_errno() != EINTR) {
                ssmd_log(SSMD_LOG_ERROR, "poll: %s", zmq_strerror(zmq_errno()));
                return 1;
            }
            ssmd_transport_handle_zap(&s->t);
            if (!stopping) ssmd_pub_handle_subscriptions(s);
            ssmd_control_handle(s);
        }
        if (ctl && ctl->hup && *ctl->hup) {
            *ctl->hup = 0;
            reload_config(s);
        }
        bool stop_now = false;
        if (((s->stop && *s->stop) || s->stop_requested) && !stopping && !draining) {
            /* cluster mode: the streams that can move go to the other members first */
            if (s->cluster && ssmd_srv_checkpoint_drain_begin(s) > 0) {
                draining = true;
                drain_t = ssmd_now_s();
            } else {
                stop_now = true;
            }
        }
        if (draining) {
            int left = ssmd_srv_checkpoint_drain_left(s);
            if (left == 0 || ssmd_now_s() - drain_t > SSMD_DRAIN_S) {
                if (left)
                    ssmd_log(SSMD_LOG_WARN, "stopping: %d stream%s not handed over within %.0f s; they end here",
                             left, left == 1 ? "" : "s", (double)SSMD_DRAIN_S);
                draining = false;
                stop_now = true;
            }
        }
        if (stop_now) {
            stopping = true;
            stop_t = ssmd_now_s();
            /* a file-only generation job reports the stop in its summary line */
            ssmd_log(s->t.pub || !s->token_mode ? SSMD_LOG_INFO : SSMD_LOG_DEBUG, "stopping: finishing streams");
            for (int i = 0; i < s->max_streams; i++)
                if (s->streams[i].used) s->streams[i].eos = true;
        }
        for (int i = 0; i < s->n_sources; i++)
            if (s->sources[i]->pull(s, stopping, &busy) != 0) return 1;
        /* control is served between the phases too (a non-blocking read when
         * nothing waits): a request waits for one phase, not a whole iteration */
        if (s->t.pub) ssmd_control_handle(s);
        if (ssmd_engine_run(s) != 0) return 1;
        if (s->cluster) {
            ssmd_srv_checkpoint_stale(s);
            ssmd_srv_checkpoint_acks(s);
            ssmd_srv_checkpoint_rebalance(s);
        }
        if (s->t.pub) ssmd_control_handle(s);
        for (int i = 0; i < s->n_sources; i++)
            if (s->sources[i]->tick) s->sources[i]->tick(s);
        reap_streams(s, &rc);
        for (int i = 0; i < s->n_sources; i++)
            if (s->sources[i]->at_end && s->sources[i]->at_end(s)) done = true;
        if (done) break;
        if (stopping && (ssmd_srv_active_streams(s) == 0 || ssmd_now_s() - stop_t > 1.5)) break;
        if (!s->t.pub && !busy) {
            /* no sockets: only the file paces the loop */
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

int ssmd_server_run(ssmd_config *cfg, const char *model_path, const ssmd_server_control *ctl)
{
    ssmd_srv srv = { .cfg = cfg, .model_path = model_path, .stop = ctl ? ctl->stop : NULL, .ctl = ctl,
                     .file = { .gain = 1.0f }, .dev = { .mu = PTHREAD_MUTEX_INITIALIZER } },
             *s = &srv;
    static const ssmd_source_ops *const every_source[] = { &ssmd_source_push, &ssmd_source_mic,
                                                           &ssmd_source_file, &ssmd_source_generate };
    int rc = 2;
    /* this thread is the loop: every source, the engine and the sinks run
     * here (the step workers set the same mode); subnormal tails of silence
     * would otherwise cost ~9x per frame (bench/denormal_bench.c) */
    ssm_fp_flush_denormals();
    ssmd_log_set_level(SSMD_LOG_ERROR);
    ssmd_log_set_level_name(cfg->log_level);
    if (cfg->generate_s > 0) { /* generation: the token model and its job instead of the audio pipeline */
        if ((rc = ssmd_source_generate_setup(s)) != 0) {
            if (rc < 0) rc = 0; /* stopped by a signal while feeding the prompt */
            goto out;
        }
        rc = 2;
    } else if (pipeline_setup(s) != 0) {
        goto out;
    }
    warn_ineffective(s);
    if (buffers_alloc(s) != 0) goto out;
    if (getrandom(&s->epoch, sizeof s->epoch, 0) != (ssize_t)sizeof s->epoch) s->epoch = ssmd_realtime_ns();
    s->t_start = ssmd_now_s();
    s->ctl_trace_on = getenv("SSMD_CONTROL_TRACE") != NULL;

    bool is_file = strcmp(cfg->input, "none") != 0 && strcmp(cfg->input, "mic") != 0;
    /* auto: a file-to-file job binds nothing, unless it waits for subscribers */
    bool serve = strcmp(cfg->serve, "yes") == 0 ||
                 (strcmp(cfg->serve, "auto") == 0 && (!(is_file && cfg->output[0]) || cfg->wait_subscribers > 0));
    if (s->gen.job) serve = cfg->generate_publish; /* a file-only generation job has no sockets */
    if (serve && ssmd_transport_open(&s->t, cfg) != 0) goto out;
    if (!serve && !is_file && !s->gen.job) {
        fprintf(stderr, "ssmd: serve: 'no' is only for file-to-file jobs; input '%s' needs the sockets\n",
                cfg->input);
        goto out;
    }
    if (serve) s->sources[s->n_sources++] = &ssmd_source_push;
    if (strcmp(cfg->input, "mic") == 0) s->sources[s->n_sources++] = &ssmd_source_mic;
    if (is_file) s->sources[s->n_sources++] = &ssmd_source_file;
    if (s->gen.job) s->sources[s->n_sources++] = &ssmd_source_generate;
    if (ssmd_srv_checkpoint_check(s) != 0) goto out;
    if (cfg->cluster[0]) {
        char err[1024];
        if (!serve || s->gen.job) {
            fprintf(stderr, "ssmd: cluster: only a serving daemon that processes pushed audio joins a cluster "
                            "(not a file-to-file job or a generation)\n");
            goto out;
        }
        if (ssmd_cluster_start(&s->cluster, cfg, s->epoch, err, sizeof err) != 0) {
            fprintf(stderr, "ssmd: %s\n", err);
            goto out;
        }
    }
    for (int i = 0; i < s->n_sources; i++)
        if (s->sources[i]->open && s->sources[i]->open(s) != 0) goto out;
    if (serve)
        ssmd_log(SSMD_LOG_INFO, "serving %s on pub %s, ingest %s, control %s", model_path, cfg->pub, cfg->ingest,
                 cfg->control);
    if (ssmd_control_start(s) != 0) {
        rc = 1;
        goto out;
    }
    rc = loop_run(s);
    ssmd_control_stop(s);
    if (s->t.pub) ssmd_log(SSMD_LOG_INFO, "stopped");
out:
    for (int i = 0; s->streams && i < s->max_streams; i++)
        if (s->streams[i].used) ssmd_srv_stream_close(s, &s->streams[i]);
    ssmd_control_stop(s); /* before the sockets close */
    ssmd_cluster_stop(s->cluster); /* revokes the lease: this member and its owner keys go at once */
    ssmd_transport_close(&s->t);
    for (size_t i = 0; i < sizeof every_source / sizeof every_source[0]; i++)
        if (every_source[i]->close) every_source[i]->close(s);
    buffers_free(s);
    ssm_runner_destroy(s->runner);
    dsp_melbank_destroy(s->mb);
    ssmd_stream_shared_destroy(s->stream_shared);
    ssm_model_free(s->model);
    return rc;
}
