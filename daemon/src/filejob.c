/* Design note: one reader, one writer, one model runner and one ssmd_stream
 * per model stream ('mono': one, downmixed; 'split': one per channel, all
 * stepped together as a batch).  Channels advance in lockstep (they are pushed
 * identical sample counts), so their outputs come out in equal counts and
 * are interleaved back into frames directly. */
#include "filejob.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dsp/audio_file.h"
#include "dsp/features.h"
#include "frontend.h"
#include "ssm/model.h"
#include "stream.h"

enum { CHUNK = 4096, OUT_CHUNK = 1024 };

typedef struct job {
    const ssmd_config *cfg;
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *melbank;
    ssm_runner *runner;
    int n_streams, channels;
    ssmd_stream **streams;
    ssm_state **states;
    dsp_audio_reader *reader;
    dsp_audio_writer *writer;
    float *in, *chan, *features, *mask, *vad, *outs, *frame_out;
    int *ready;
    double vad_sum;
    uint64_t vad_n, resets;
} job;

static int job_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int job_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ssmd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static dsp_resample_quality quality_of(const char *q)
{
    if (strcmp(q, "fast") == 0) return DSP_RESAMPLE_FASTEST;
    if (strcmp(q, "medium") == 0) return DSP_RESAMPLE_MEDIUM;
    return DSP_RESAMPLE_BEST;
}

/* Steps every stream that has a frame ready, as one batch, and writes the
 * output frames that became complete.  Returns 0 or 1 (error printed). */
static int step_ready(job *j)
{
    for (;;) {
        int nb = 0;
        size_t nf = (size_t)j->fe.n_features, nbins = (size_t)j->fe.n_bins;
        for (int s = 0; s < j->n_streams; s++) {
            j->ready[s] = ssmd_stream_prepare(j->streams[s], j->features + (size_t)nb * nf);
            if (j->ready[s]) j->states[nb++] = ssmd_stream_state(j->streams[s]);
        }
        if (nb > 0) {
            unsigned heads = ssm_model_heads(j->model);
            ssm_outputs out = { .mask = (heads & SSM_MODEL_HEAD_MASK) ? j->mask : NULL,
                                .vad = (heads & SSM_MODEL_HEAD_VAD) ? j->vad : NULL };
            int rc = ssm_step(j->runner, j->states, nb, j->features, NULL, &out, NULL);
            if (rc == SSM_ERR_NONFINITE) j->resets++;
            else if (rc != SSM_OK) return job_fail("model step: %s", ssm_strerror(rc));
            for (int s = 0, b = 0; s < j->n_streams; s++) {
                if (!j->ready[s]) continue;
                ssmd_stream_complete(j->streams[s], out.mask ? j->mask + (size_t)b * nbins : NULL);
                if (out.vad) { j->vad_sum += j->vad[b]; j->vad_n++; }
                b++;
            }
        }
        /* drain outputs in lockstep */
        for (;;) {
            size_t got = 0;
            for (int s = 0; s < j->n_streams; s++) {
                size_t g = ssmd_stream_pop(j->streams[s], j->outs + (size_t)s * OUT_CHUNK, OUT_CHUNK);
                if (s > 0 && g != got) return job_fail("internal: channel streams out of step");
                got = g;
            }
            if (got == 0) break;
            int oc = j->n_streams;
            for (size_t i = 0; i < got; i++)
                for (int s = 0; s < oc; s++)
                    j->frame_out[i * (size_t)oc + (size_t)s] = j->outs[(size_t)s * OUT_CHUNK + i];
            dsp_error de = { 0 };
            if (dsp_audio_writer_write(j->writer, j->frame_out, got, &de) != DSP_OK)
                return job_fail("%s", de.msg);
        }
        if (nb == 0) return 0;
    }
}

static void progress(const job *j, uint64_t done, int64_t total, double t0, int final)
{
    double el = now_s() - t0, secs = (double)done / j->fe.sample_rate_hz;
    double audio_s = (double)done / (double)dsp_audio_reader_info(j->reader)->sample_rate_hz;
    (void)secs;
    double speed = el > 0 ? audio_s / el : 0;
    if (total > 0) {
        double frac = (double)done / (double)total;
        double eta = frac > 0 ? el * (1 - frac) / frac : 0;
        fprintf(stderr, "\r%5.1f%%  %8.1f s of audio  %6.1fx real time  ETA %5.1f s%s", 100 * frac,
                audio_s, speed, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "\r%8.1f s of audio  %6.1fx real time%s", audio_s, speed, final ? "\n" : "");
    }
}

static void job_free(job *j)
{
    for (int s = 0; j->streams && s < j->n_streams; s++) ssmd_stream_destroy(j->streams[s]);
    free(j->streams);
    free(j->states);
    free(j->ready);
    ssm_runner_destroy(j->runner);
    dsp_melbank_destroy(j->melbank);
    ssm_model_free(j->model);
    dsp_audio_reader_close(j->reader);
    free(j->in); free(j->chan); free(j->features); free(j->mask); free(j->vad);
    free(j->outs); free(j->frame_out);
}

int ssmd_file_job_run(const ssmd_config *cfg, const char *model_path, volatile sig_atomic_t *stop)
{
    job jb = { .cfg = cfg }, *j = &jb;
    int rc = 1;
    ssm_error me = { 0 };
    dsp_error de = { 0 };
    char why[512];
    if (!cfg->output[0]) {
        job_fail("output: no output file given (-o FILE; '-' writes AU to stdout)");
        return 1;
    }
    if (ssm_model_load(model_path, NULL, &j->model, &me) != SSM_OK) {
        job_fail("%s", me.msg);
        return 1;
    }
    if (ssmd_frontend_from_model(&j->fe, j->model, why, sizeof why) != 0) {
        job_fail("%s: %s", model_path, why);
        goto out;
    }
    if (dsp_audio_reader_open(&j->reader, cfg->input, NULL, &de) != DSP_OK) {
        job_fail("%s", de.msg);
        goto out;
    }
    const dsp_audio_info *info = dsp_audio_reader_info(j->reader);
    j->channels = info->channels;
    j->n_streams = strcmp(cfg->channels, "split") == 0 ? j->channels : 1;
    if (j->n_streams > cfg->max_streams) {
        job_fail("%s: %d channels as separate streams exceed max_streams %ld", cfg->input,
                 j->channels, cfg->max_streams);
        goto out;
    }
    if (j->fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = j->fe.sample_rate_hz, .n_fft = (size_t)j->fe.n_fft,
                              .n_mels = (size_t)j->fe.n_mels, .fmin_hz = j->fe.fmin_hz,
                              .fmax_hz = j->fe.fmax_hz, .scale = DSP_MEL_SLANEY,
                              .norm = DSP_MEL_NORM_SLANEY };
        if (!(j->melbank = dsp_melbank_create(&mc, &de))) {
            job_fail("%s: %s", model_path, de.msg);
            goto out;
        }
    }
    if (ssm_runner_create(j->model, j->n_streams, 1, 0, &j->runner, &me) != SSM_OK) {
        job_fail("%s", me.msg);
        goto out;
    }
    size_t ns = (size_t)j->n_streams, nch = (size_t)j->channels;
    j->streams = calloc(ns, sizeof *j->streams);
    j->states = calloc(ns, sizeof *j->states);
    j->ready = calloc(ns, sizeof *j->ready);
    j->in = malloc(CHUNK * nch * sizeof(float));
    j->chan = malloc(CHUNK * sizeof(float) * ns);
    j->features = malloc(ns * (size_t)j->fe.n_features * sizeof(float));
    j->mask = malloc(ns * (size_t)j->fe.n_bins * sizeof(float));
    j->vad = malloc(ns * sizeof(float));
    j->outs = malloc(ns * OUT_CHUNK * sizeof(float));
    j->frame_out = malloc(ns * OUT_CHUNK * sizeof(float));
    if (!j->streams || !j->states || !j->ready || !j->in || !j->chan || !j->features || !j->mask ||
        !j->vad || !j->outs || !j->frame_out) {
        job_fail("out of memory");
        goto out;
    }
    ssmd_stream_config sc = { .in_rate_hz = info->sample_rate_hz, .align_output = true,
                              .quality = quality_of(cfg->resample_quality) };
    for (size_t s = 0; s < ns; s++) {
        if (!(j->streams[s] = ssmd_stream_create(j->model, &j->fe, j->melbank, &sc, why, sizeof why))) {
            job_fail("%s: %s", cfg->input, why);
            goto out;
        }
    }
    dsp_audio_write_format wf = { .container = DSP_AUDIO_CONTAINER_AUTO,
                                  .subtype = DSP_AUDIO_SUBTYPE_DEFAULT,
                                  .sample_rate_hz = info->sample_rate_hz, .channels = (int)ns,
                                  .vbr_quality = -1 };
    if (info->subtype == DSP_AUDIO_SUBTYPE_FLOAT || info->subtype == DSP_AUDIO_SUBTYPE_DOUBLE)
        wf.subtype = DSP_AUDIO_SUBTYPE_FLOAT;
    else if (info->subtype == DSP_AUDIO_SUBTYPE_PCM_24 || info->subtype == DSP_AUDIO_SUBTYPE_PCM_32)
        wf.subtype = DSP_AUDIO_SUBTYPE_PCM_24;
    if (dsp_audio_writer_open(&j->writer, cfg->output, &wf, &de) != DSP_OK) {
        /* formats whose codec fixes the subtype (Vorbis, Opus) refuse an explicit one */
        wf.subtype = DSP_AUDIO_SUBTYPE_DEFAULT;
        if (dsp_audio_writer_open(&j->writer, cfg->output, &wf, &de) != DSP_OK) {
            job_fail("%s", de.msg);
            goto out;
        }
    }

    bool show = strcmp(cfg->progress, "always") == 0 ||
                (strcmp(cfg->progress, "auto") == 0 && isatty(STDERR_FILENO));
    double t0 = now_s(), last = t0;
    uint64_t n_in = 0;
    bool stopped = false;
    for (;;) {
        if (stop && *stop) { stopped = true; break; }
        size_t got = 0;
        if (dsp_audio_reader_read(j->reader, j->in, CHUNK, &got, &de) != DSP_OK) {
            job_fail("%s", de.msg);
            goto abort_out;
        }
        if (got == 0) break;
        n_in += got;
        for (size_t s = 0; s < ns; s++) {
            float *c = j->chan + s * CHUNK;
            if (ns == 1 && nch > 1) { /* mono: downmix */
                for (size_t i = 0; i < got; i++) {
                    float acc = 0;
                    for (size_t k = 0; k < nch; k++) acc += j->in[i * nch + k];
                    c[i] = acc / (float)nch;
                }
            } else {
                for (size_t i = 0; i < got; i++) c[i] = j->in[i * nch + s];
            }
        }
        /* push all streams the same amounts, stepping whenever frames are ready */
        size_t done = 0;
        while (done < got) {
            size_t used = 0;
            for (size_t s = 0; s < ns; s++) {
                size_t u = ssmd_stream_push(j->streams[s], j->chan + s * CHUNK + done, got - done);
                if (s > 0 && u != used) { job_fail("internal: channel streams out of step"); goto abort_out; }
                used = u;
            }
            done += used;
            if (step_ready(j) != 0) goto abort_out;
        }
        if (show && now_s() - last > 0.2) {
            progress(j, n_in, info->n_frames, t0, 0);
            last = now_s();
        }
    }
    for (size_t s = 0; s < ns; s++) ssmd_stream_finish(j->streams[s]);
    while (!ssmd_stream_done(j->streams[0]))
        if (step_ready(j) != 0) goto abort_out;
    if (show) progress(j, n_in, stopped ? (int64_t)n_in : info->n_frames, t0, 1);
    if (dsp_audio_writer_close(j->writer, &de) != DSP_OK) {
        j->writer = NULL;
        job_fail("%s", de.msg);
        goto out;
    }
    uint64_t n_out = dsp_audio_writer_frames_written(j->writer);
    (void)n_out;
    j->writer = NULL;
    {
        double el = now_s() - t0, audio_s = (double)n_in / info->sample_rate_hz;
        ssmd_stream_stats st;
        ssmd_stream_stats_get(j->streams[0], &st);
        fprintf(stderr,
                "ssmd: %s -> %s: %.2f s of audio (%d Hz, %d ch, %s), %llu frames of %d samples, "
                "%.3f s, %.1fx real time, model %s, state %zu bytes/stream, latency %.1f ms "
                "compensated",
                cfg->input, cfg->output, audio_s, info->sample_rate_hz, info->channels,
                ns > 1 ? "split" : "mono", (unsigned long long)st.frames, j->fe.hop_samples, el,
                el > 0 ? audio_s / el : 0.0,
                ssm_model_meta(j->model, "name") ? ssm_model_meta(j->model, "name") : model_path,
                ssm_state_bytes(j->model), 1e3 * j->fe.latency_samples / j->fe.sample_rate_hz);
        if (j->vad_n) fprintf(stderr, ", mean voice activity %.2f", j->vad_sum / (double)j->vad_n);
        if (j->resets) fprintf(stderr, ", %llu state resets", (unsigned long long)j->resets);
        if (st.nonfinite_in) fprintf(stderr, ", %llu non-finite input samples zeroed",
                                     (unsigned long long)st.nonfinite_in);
        if (stopped) fprintf(stderr, " (stopped by signal; output finalised)");
        fputc('\n', stderr);
    }
    rc = 0;
    goto out;
abort_out:
    if (show) fputc('\n', stderr);
    dsp_audio_writer_abort(j->writer);
    j->writer = NULL;
out:
    if (j->writer) dsp_audio_writer_abort(j->writer);
    job_free(j);
    return rc;
}
