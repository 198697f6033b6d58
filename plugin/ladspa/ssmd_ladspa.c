/* SPDX-License-Identifier: MIT */
/* ssmd as a LADSPA plugin (DESIGN.md §1, the fourth host of the engine):
 * the daemon's per-stream pipeline (daemon/include/ssmd/stream.h) and model step,
 * in-process, for desktop hosts (PipeWire's filter-chain, sox, Audacity,
 * EasyEffects).  Two plugin types in one file:
 *   ssmd_denoise_mono    UniqueID 0xE55D01 (15031553)
 *   ssmd_denoise_stereo  UniqueID 0xE55D02 (15031554), each channel its own
 *                        stream and model state
 * (IDs below LADSPA's 0x1000000 bound; not registered with ladspa.org, chosen
 * unused by the plugins Debian ships).
 *
 * Design note.  The pipeline works in whole model frames (hop samples at the
 * model's rate, resampled to and from the host's rate when they differ); a
 * LADSPA host hands any number of samples to run() and wants as many back at
 * once.  Each channel therefore writes the pipeline's live output into a ring
 * that starts with `prefill` zeros: the smallest count that never runs dry
 * whatever the block sizes (measured at instantiate by pushing one sample at
 * a time through a scratch stream, ssmd_ladspa_measure_prefill; the
 * resampler stages fixed blocks, so how much output exists depends only on
 * how much input went in, provided each run() pass drains the stream's
 * staging as ssmd_ladspa_feed does).  The output lags the input by
 *   latency = prefill + latency_samples·host_rate / model_rate   host samples
 * (latency_samples: n_fft − hop, plus lookahead_frames·hop for a model with lookahead),
 * rounded to the nearest whole sample (the port is an integer port; the
 * fractional part, when the rates do not divide, is under half a sample) and
 * reported on the `latency` output port (the LADSPA convention hosts such as
 * PipeWire read).  Should the ring still run dry, the missing samples are
 * zeros and the late ones are dropped, so the delay never changes.
 *
 * Real-time rules (DESIGN.md §5): the model is loaded, the streams, runner
 * and rings allocated in instantiate/activate; run() allocates, locks and
 * logs nothing.  The model is shared between instances that resolve the same
 * file (reference counted under a mutex taken only outside run()).
 * $SSMD_LADSPA_DEBUG (set at instantiate): cleanup prints one line with the
 * number of run() calls, the smallest and largest block, the latency and
 * the output samples that were not ready ("N underruns"; for tests).
 * Errors (no model, a broken file, a model without a mask head, a host rate
 * the resampler refuses): instantiate returns NULL after one line on stderr.
 */
#include <errno.h>
#include <ladspa.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define SSMD_LADSPA_HAVE_CSR 1
#endif

#include "dsp/features.h"
#include "frontend.h"
#include "kernels/ssm_kernels.h"
#include "model_find.h"
#include "ssm/model.h"
#include "stream.h"

#define SSMD_LADSPA_ID_MONO 0xE55D01u
#define SSMD_LADSPA_ID_STEREO 0xE55D02u
/** Host samples handled per pass inside run(): larger blocks are cut into
 *  passes so that the rings stay small whatever the host's block size. */
#define SSMD_LADSPA_PASS 4096u
/** Resampler recipe when the host's rate is not the model's: soxr's buffers
 *  decide how much of the ring's prefill the plugin needs (the worst over
 *  20 s of probing at 44.1 kHz: best 14867 samples, medium 7587, fastest
 *  2562), so
 *  the plugin uses the fastest (16-bit, ~96 dB rejection): ssmd's
 *  `--resample-quality fast`. */
#define SSMD_LADSPA_RESAMPLE_QUALITY DSP_RESAMPLE_FASTEST
/** Seconds of input the prefill probe pushes (ssmd_ladspa_measure_prefill). */
#define SSMD_LADSPA_PROBE_S 5u
/** Output samples popped from a stream per call. */
#define SSMD_LADSPA_POP 1024u

/* Control ports, after the audio ports (2·n_channels of them). */
enum {
    CTL_ATTEN_DB = 0, /* in: attenuation limit, dB */
    CTL_VAD_THRESHOLD, /* in: gate threshold, 0..1 (0 = off) */
    CTL_VAD_GRACE_MS,  /* in: grace period, ms */
    CTL_VAD,           /* out: latest voice-activity probability */
    CTL_LATENCY,       /* out: latency, host samples */
    CTL_COUNT
};
#define SSMD_LADSPA_MAX_PORTS (4 + CTL_COUNT)

/* Defaults as the daemon's options (daemon/src/config.c). */
#define SSMD_LADSPA_ATTEN_DEFAULT 100.0f
#define SSMD_LADSPA_GRACE_DEFAULT 200.0f
#define SSMD_LADSPA_GRACE_MAX 60000.0f

/* ---- the model, shared ------------------------------------------------- */

typedef struct ssmd_ladspa_model {
    char path[4096];
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *melbank;
    int refs;
} ssmd_ladspa_model;

static pthread_mutex_t g_model_lock = PTHREAD_MUTEX_INITIALIZER;
static ssmd_ladspa_model *g_model; /* the shared one (may have refs 0 only transiently) */

static void ssmd_ladspa_model_unref(ssmd_ladspa_model *m)
{
    if (!m) return;
    pthread_mutex_lock(&g_model_lock);
    bool last = --m->refs == 0;
    if (last && g_model == m) g_model = NULL;
    pthread_mutex_unlock(&g_model_lock);
    if (!last) return;
    dsp_melbank_destroy(m->melbank);
    ssm_model_free(m->model);
    free(m);
}

/* Loads (or shares) the model at path; NULL with one line in err. */
static ssmd_ladspa_model *ssmd_ladspa_model_ref(const char *path, char *err, size_t cap)
{
    pthread_mutex_lock(&g_model_lock);
    if (g_model && strcmp(g_model->path, path) == 0) {
        g_model->refs++;
        ssmd_ladspa_model *m = g_model;
        pthread_mutex_unlock(&g_model_lock);
        return m;
    }
    pthread_mutex_unlock(&g_model_lock);
    ssmd_ladspa_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->refs = 1;
    ssm_error me = { 0 };
    char why[512];
    if (ssm_model_load(path, NULL, &m->model, &me) != SSM_OK) {
        snprintf(err, cap, "%s", me.msg);
        goto fail;
    }
    if (ssmd_frontend_from_model(&m->fe, m->model, why, sizeof why) != 0) {
        snprintf(err, cap, "%s: %s", path, why);
        goto fail;
    }
    if (!(ssm_model_heads(m->model) & SSM_MODEL_HEAD_MASK)) {
        snprintf(err, cap, "%s: the model has no mask head (not a denoiser)", path);
        goto fail;
    }
    if (m->fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = m->fe.sample_rate_hz, .n_fft = (size_t)m->fe.n_fft,
                              .n_mels = (size_t)m->fe.n_mels, .fmin_hz = m->fe.fmin_hz,
                              .fmax_hz = m->fe.fmax_hz, .scale = DSP_MEL_SLANEY,
                              .norm = DSP_MEL_NORM_SLANEY };
        dsp_error de = { 0 };
        if (dsp_melbank_create(&m->melbank, &mc, &de) != DSP_OK) {
            snprintf(err, cap, "%s: %s", path, de.msg);
            goto fail;
        }
    }
    pthread_mutex_lock(&g_model_lock);
    if (!g_model) g_model = m; /* else another file is shared already: this one stays private */
    pthread_mutex_unlock(&g_model_lock);
    return m;
fail:
    dsp_melbank_destroy(m->melbank);
    ssm_model_free(m->model);
    free(m);
    return NULL;
}

/* ---- one instance ------------------------------------------------------ */

typedef struct ssmd_ladspa_channel {
    ssmd_stream *stream;
    uint64_t quiet_frames; /* dsp_mask_limit's gate count */
    uint64_t frames;       /* model steps since the stream started */
    float vad;             /* latest frame's voice activity */
    float *ring;           /* {ring_cap} output at the host rate */
    uint64_t written, read; /* absolute sample counts through the ring */
} ssmd_ladspa_channel;

typedef struct ssmd_ladspa {
    ssmd_ladspa_model *m;
    ssm_runner *runner;
    int n_channels;
    int rate_hz;
    size_t ring_cap;
    uint64_t prefill;  /* zeros the rings start with, host samples */
    float latency;     /* host samples, reported on CTL_LATENCY */
    bool ran;          /* run() since the last activate: the streams need a fresh start */
    bool debug;        /* $SSMD_LADSPA_DEBUG: cleanup reports the block sizes run() saw */
    unsigned long runs, block_min, block_max;
    uint64_t underruns; /* output samples that were not ready (zeros went out) */
    float *row, *mask, *pop; /* {n_features}, {n_bins}, {SSMD_LADSPA_POP} */
    ssmd_ladspa_channel ch[2];
    LADSPA_Data *port[SSMD_LADSPA_MAX_PORTS];
} ssmd_ladspa;

static ssmd_stream *ssmd_ladspa_stream_new(const ssmd_ladspa *p, char *err, size_t cap)
{
    ssmd_stream_config sc = { .in_rate_hz = p->rate_hz, .align_output = false,
                              .quality = SSMD_LADSPA_RESAMPLE_QUALITY, .max_prepared = 1 };
    return ssmd_stream_create(p->m->model, &p->m->fe, p->m->melbank, &sc, err, cap);
}

/* The leading zeros that keep the output ring from running dry when the
 * host hands over one sample at a time (the worst case: any larger block
 * asks for the same total at fewer points): max over T of T − (output
 * available after T input samples), over SSMD_LADSPA_PROBE_S of input, with
 * the spectrum passed through (the counts do not depend on the values).
 * Without resampling the answer is exact (hop − 1: output comes a hop at a
 * time).  With soxr it is not periodic within the probe: at 44.1 kHz the
 * worst seen grows from 2515 (1 s) to 2521 (5 s), 2562 (20 s), 2595 (60 s),
 * so one hop at the host rate is added as a margin; should the ring still
 * run dry, zeros go out and the delay is kept (counted, see debug).
 * -1 on failure (a line in err); ~0.1 s of CPU at instantiate. */
static long ssmd_ladspa_measure_prefill(const ssmd_ladspa *p, char *err, size_t cap)
{
    ssmd_stream *s = ssmd_ladspa_stream_new(p, err, cap);
    if (!s) return -1;
    const ssmd_frontend *fe = &p->m->fe;
    uint64_t n = SSMD_LADSPA_PROBE_S * (uint64_t)p->rate_hz, avail = 0;
    uint64_t min_n = 8u * (uint64_t)fe->n_fft * (uint64_t)p->rate_hz / (uint64_t)fe->sample_rate_hz;
    if (n < min_n) n = min_n;
    long worst = 0;
    const float zero = 0.0f;
    for (uint64_t t = 1; t <= n; t++) {
        size_t used = 0;
        while (used == 0) {
            used = ssmd_stream_push(s, &zero, 1);
            while (ssmd_stream_prepare(s, p->row)) {
                ssmd_stream_complete(s, NULL);
                size_t k;
                while ((k = ssmd_stream_pop(s, p->pop, SSMD_LADSPA_POP)) > 0) avail += k;
            }
            size_t k;
            while ((k = ssmd_stream_pop(s, p->pop, SSMD_LADSPA_POP)) > 0) avail += k;
        }
        if (t > avail && (long)(t - avail) > worst) worst = (long)(t - avail);
    }
    ssmd_stream_destroy(s);
    if (p->rate_hz != fe->sample_rate_hz)
        worst += (long)((uint64_t)fe->hop_samples * (uint64_t)p->rate_hz / (uint64_t)fe->sample_rate_hz);
    return worst;
}

static void ssmd_ladspa_cleanup(LADSPA_Handle h)
{
    ssmd_ladspa *p = h;
    if (!p) return;
    if (p->debug)
        fprintf(stderr, "ssmd_ladspa: %lu run() calls, blocks of %lu..%lu samples, latency %.3f samples, "
                "%llu underruns\n", p->runs, p->block_min, p->block_max, (double)p->latency,
                (unsigned long long)p->underruns);
    for (int c = 0; c < 2; c++) {
        ssmd_stream_destroy(p->ch[c].stream);
        free(p->ch[c].ring);
    }
    ssm_runner_destroy(p->runner);
    free(p->row);
    free(p->mask);
    free(p->pop);
    ssmd_ladspa_model_unref(p->m);
    free(p);
}

/* Starts every channel afresh: streams (when they ran), gate counts, rings
 * holding `prefill` zeros.  0, or -1 with a line in err. */
static int ssmd_ladspa_reset(ssmd_ladspa *p, char *err, size_t cap)
{
    for (int c = 0; c < p->n_channels; c++) {
        ssmd_ladspa_channel *ch = &p->ch[c];
        if (!ch->stream || p->ran) {
            ssmd_stream_destroy(ch->stream);
            ch->stream = ssmd_ladspa_stream_new(p, err, cap);
            if (!ch->stream) return -1;
        }
        ch->quiet_frames = 0;
        ch->frames = 0;
        ch->vad = 0.0f;
        memset(ch->ring, 0, p->ring_cap * sizeof(float));
        ch->read = 0;
        ch->written = p->prefill;
    }
    p->ran = false;
    return 0;
}

static LADSPA_Handle ssmd_ladspa_instantiate(const LADSPA_Descriptor *d, unsigned long rate)
{
    char err[8192], path[4096]; /* err holds a line naming the path */
    /* the daemon's search order (model_find.h): $SSMD_MODEL, the XDG data
     * dirs, the installed datadir, the source tree */
    if (ssmd_model_find(SSMD_MODEL_DEFAULT, NULL, path, sizeof path, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd_ladspa: %s\n", err);
        return NULL;
    }
    ssmd_ladspa *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "ssmd_ladspa: out of memory\n");
        return NULL;
    }
    p->n_channels = d->UniqueID == SSMD_LADSPA_ID_STEREO ? 2 : 1;
    if (rate < 1 || rate > DSP_RESAMPLE_MAX_RATE_HZ) {
        fprintf(stderr, "ssmd_ladspa: host sample rate %lu Hz is not supported (1..%d)\n", rate,
                DSP_RESAMPLE_MAX_RATE_HZ);
        free(p);
        return NULL;
    }
    p->rate_hz = (int)rate;
    p->debug = getenv("SSMD_LADSPA_DEBUG") != NULL;
    p->m = ssmd_ladspa_model_ref(path, err, sizeof err);
    if (!p->m) {
        fprintf(stderr, "ssmd_ladspa: %s\n", err);
        free(p);
        return NULL;
    }
    const ssmd_frontend *fe = &p->m->fe;
    ssm_error me = { 0 };
    if (ssm_runner_create(p->m->model, 1, 1, 0, &p->runner, &me) != SSM_OK) {
        fprintf(stderr, "ssmd_ladspa: %s\n", me.msg);
        goto fail;
    }
    p->row = calloc((size_t)fe->n_features, sizeof(float));
    p->mask = calloc((size_t)fe->n_bins, sizeof(float));
    p->pop = calloc(SSMD_LADSPA_POP, sizeof(float));
    if (!p->row || !p->mask || !p->pop) {
        fprintf(stderr, "ssmd_ladspa: out of memory\n");
        goto fail;
    }
    long prefill = ssmd_ladspa_measure_prefill(p, err, sizeof err);
    if (prefill < 0) {
        fprintf(stderr, "ssmd_ladspa: %s\n", err);
        goto fail;
    }
    p->prefill = (uint64_t)prefill;
    /* a pass adds at most PASS samples plus one frame's resampled output
     * (< 2 hops at the host rate + the resampler's blocks) on top of the prefill */
    size_t frame_out = (size_t)(2 * (uint64_t)fe->n_fft * rate / (uint64_t)fe->sample_rate_hz) + 2048;
    p->ring_cap = (size_t)prefill + SSMD_LADSPA_PASS + frame_out;
    /* the port is an integer port (LADSPA_HINT_INTEGER): whole samples.  The
     * prefill is whole already; the framer's delay at the host rate is
     * fractional when the rates do not divide (110.25 at 11025 Hz): it is
     * rounded to the nearest sample, the true delay differs from the port
     * by that fraction (≤ 0.5 sample), which whole-sample zeros cannot take
     * out. */
    p->latency = (float)((double)prefill + (double)llround((double)fe->latency_samples * (double)rate /
                                                           (double)fe->sample_rate_hz));
    for (int c = 0; c < p->n_channels; c++) {
        p->ch[c].ring = calloc(p->ring_cap, sizeof(float));
        if (!p->ch[c].ring) {
            fprintf(stderr, "ssmd_ladspa: out of memory\n");
            goto fail;
        }
    }
    if (ssmd_ladspa_reset(p, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd_ladspa: %s\n", err);
        goto fail;
    }
    return p;
fail:
    ssmd_ladspa_cleanup(p);
    return NULL;
}

static void ssmd_ladspa_connect(LADSPA_Handle h, unsigned long port, LADSPA_Data *data)
{
    ssmd_ladspa *p = h;
    if (port < (unsigned long)(2 * p->n_channels + CTL_COUNT)) p->port[port] = data;
}

static void ssmd_ladspa_activate(LADSPA_Handle h)
{
    ssmd_ladspa *p = h;
    char err[512];
    if (p->ran && ssmd_ladspa_reset(p, err, sizeof err) != 0) /* LADSPA offers no way to fail here */
        fprintf(stderr, "ssmd_ladspa: activate: %s\n", err);
    float *lat = p->port[2 * p->n_channels + CTL_LATENCY];
    if (lat) *lat = p->latency;
}

/* A control's value, or its default when unconnected or NaN, clamped to [lo, hi]. */
static float ssmd_ladspa_control(const LADSPA_Data *v, float def, float lo, float hi)
{
    float x = v && !isnan(*v) ? *v : def;
    return x < lo ? lo : x > hi ? hi : x;
}

/* Appends produced samples to the ring; samples whose time has passed (the
 * ring ran dry and zeros went out instead) are dropped to keep the delay. */
static void ssmd_ladspa_ring_write(ssmd_ladspa *p, ssmd_ladspa_channel *ch, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++, ch->written++) {
        if (ch->written < ch->read) continue;
        if (ch->written - ch->read >= p->ring_cap) continue; /* cannot happen with ring_cap's bound */
        ch->ring[ch->written % p->ring_cap] = x[i];
    }
}

/* Pushes n host samples of one channel through its pipeline: every frame
 * that completes is stepped, gated, limited and its output queued.
 * With resampling, ssmd_stream_push counts input as consumed once it sits in
 * the stream's staging buffers (up to 1024 host samples, resampled), but it
 * moves staged samples into the framer only while no frame is waiting; so
 * after the last of the n samples is taken, frames may still be staged.  The
 * loop goes on pushing (zero new samples, which drains the staging) until a
 * round yields no frame: every frame the n samples complete is produced
 * within this call, as ssmd_ladspa_measure_prefill's one-sample pushes do;
 * stopping at pos == n left up to the staging's worth of output for the next
 * run() and the ring ran dry with large host blocks at rates other than the
 * model's. */
static void ssmd_ladspa_feed(ssmd_ladspa *p, ssmd_ladspa_channel *ch, const float *x, size_t n,
                             const dsp_mask_limit_config *mlc)
{
    ssm_state *state = ssmd_stream_state(ch->stream);
    bool has_vad = (ssm_model_heads(p->m->model) & SSM_MODEL_HEAD_VAD) != 0;
    size_t pos = 0, k;
    bool framed;
    do {
        pos += ssmd_stream_push(ch->stream, x + pos, n - pos); /* n − pos = 0: drains the staging */
        framed = false;
        while (ssmd_stream_prepare(ch->stream, p->row)) {
            framed = true;
            float vad = 0.0f;
            ssm_outputs o = { .mask = p->mask, .vad = has_vad ? &vad : NULL };
            /* a model with lookahead d: the first d rows describe the zeros before the input */
            bool heads_of_input = ch->frames >= (uint64_t)p->m->fe.lookahead_frames;
            ch->frames++;
            int rc = ssm_step(p->runner, &state, 1, p->row, NULL, &o, NULL);
            if (rc == SSM_OK || rc == SSM_ERR_NONFINITE) { /* a reset state gave zeros: gated below */
                dsp_mask_limit(p->mask, (size_t)p->m->fe.n_bins, heads_of_input ? o.vad : NULL, mlc,
                               &ch->quiet_frames);
                if (has_vad && heads_of_input) ch->vad = vad;
                ssmd_stream_complete(ch->stream, p->mask);
            } else {
                ssmd_stream_complete(ch->stream, NULL); /* cannot happen with a valid runner */
            }
            while ((k = ssmd_stream_pop(ch->stream, p->pop, SSMD_LADSPA_POP)) > 0)
                ssmd_ladspa_ring_write(p, ch, p->pop, k);
        }
        while ((k = ssmd_stream_pop(ch->stream, p->pop, SSMD_LADSPA_POP)) > 0)
            ssmd_ladspa_ring_write(p, ch, p->pop, k);
    } while (pos < n || framed);
}

static void ssmd_ladspa_run(LADSPA_Handle h, unsigned long n_samples)
{
    ssmd_ladspa *p = h;
    const int nc = p->n_channels;
    LADSPA_Data **ctl = p->port + 2 * nc;
#ifdef SSMD_LADSPA_HAVE_CSR
    unsigned int csr = _mm_getcsr(); /* the model runs with subnormals flushed, as in the daemon */
#endif
    ssm_fp_flush_denormals();
    p->ran = true;
    if (p->runs == 0 || n_samples < p->block_min) p->block_min = n_samples;
    if (n_samples > p->block_max) p->block_max = n_samples;
    p->runs++;
    dsp_mask_limit_config mlc = {
        .atten_lim_db = ssmd_ladspa_control(ctl[CTL_ATTEN_DB], SSMD_LADSPA_ATTEN_DEFAULT, 0.0f, 100.0f),
        .vad_gate_percent = 100.0f * ssmd_ladspa_control(ctl[CTL_VAD_THRESHOLD], 0.0f, 0.0f, 1.0f),
        .vad_grace_ms = (uint64_t)lrintf(
            ssmd_ladspa_control(ctl[CTL_VAD_GRACE_MS], SSMD_LADSPA_GRACE_DEFAULT, 0.0f, SSMD_LADSPA_GRACE_MAX)),
        .hop_samples = (uint64_t)p->m->fe.hop_samples,
        .sample_rate_hz = (uint64_t)p->m->fe.sample_rate_hz,
    };
    for (unsigned long off = 0; off < n_samples;) {
        size_t m = n_samples - off < SSMD_LADSPA_PASS ? (size_t)(n_samples - off) : SSMD_LADSPA_PASS;
        /* every input of the pass is consumed before any output is written,
         * so the host may pass the same buffer for both (in-place) */
        for (int c = 0; c < nc; c++)
            if (p->port[c]) ssmd_ladspa_feed(p, &p->ch[c], p->port[c] + off, m, &mlc);
        for (int c = 0; c < nc; c++) {
            ssmd_ladspa_channel *ch = &p->ch[c];
            float *out = p->port[nc + c];
            for (size_t i = 0; i < m; i++, ch->read++) {
                float y = 0.0f;
                if (ch->read < ch->written) y = ch->ring[ch->read % p->ring_cap];
                else p->underruns++;
                if (out) out[off + i] = y;
            }
        }
        off += m;
    }
    float vad = p->ch[0].vad;
    if (nc == 2 && p->ch[1].vad > vad) vad = p->ch[1].vad;
    if (ctl[CTL_VAD]) *ctl[CTL_VAD] = vad;
    if (ctl[CTL_LATENCY]) *ctl[CTL_LATENCY] = p->latency;
#ifdef SSMD_LADSPA_HAVE_CSR
    _mm_setcsr(csr);
#endif
}

/* ---- descriptors ------------------------------------------------------- */

static const char *const g_names_mono[] = {
    "Input", "Output",
    "Attenuation limit (dB)", "VAD threshold", "VAD grace period (ms)", "VAD", "latency",
};
static const char *const g_names_stereo[] = {
    "Input L", "Input R", "Output L", "Output R",
    "Attenuation limit (dB)", "VAD threshold", "VAD grace period (ms)", "VAD", "latency",
};
static LADSPA_PortDescriptor g_pd[2][SSMD_LADSPA_MAX_PORTS];
static LADSPA_PortRangeHint g_hints[2][SSMD_LADSPA_MAX_PORTS];
static LADSPA_Descriptor g_desc[2];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void ssmd_ladspa_describe(void)
{
    for (int k = 0; k < 2; k++) {
        int nc = k + 1, np = 2 * nc + CTL_COUNT;
        LADSPA_PortDescriptor *pd = g_pd[k];
        LADSPA_PortRangeHint *hi = g_hints[k];
        for (int c = 0; c < nc; c++) {
            pd[c] = LADSPA_PORT_INPUT | LADSPA_PORT_AUDIO;
            pd[nc + c] = LADSPA_PORT_OUTPUT | LADSPA_PORT_AUDIO;
        }
        int b = 2 * nc;
        pd[b + CTL_ATTEN_DB] = pd[b + CTL_VAD_THRESHOLD] = pd[b + CTL_VAD_GRACE_MS] =
            LADSPA_PORT_INPUT | LADSPA_PORT_CONTROL;
        pd[b + CTL_VAD] = pd[b + CTL_LATENCY] = LADSPA_PORT_OUTPUT | LADSPA_PORT_CONTROL;
        hi[b + CTL_ATTEN_DB] = (LADSPA_PortRangeHint){
            LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_MAXIMUM, 0.0f, 100.0f };
        hi[b + CTL_VAD_THRESHOLD] = (LADSPA_PortRangeHint){
            LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_0, 0.0f, 1.0f };
        /* LADSPA defaults are fixed points of the range: DEFAULT_LOW on a
         * linear 0..800 range is 0.75·0 + 0.25·800 = 200 ms, the daemon's
         * vad_grace_ms default; run() accepts up to 60000 as the daemon does */
        hi[b + CTL_VAD_GRACE_MS] = (LADSPA_PortRangeHint){
            LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_LOW, 0.0f, 800.0f };
        hi[b + CTL_VAD] = (LADSPA_PortRangeHint){ LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE, 0.0f, 1.0f };
        hi[b + CTL_LATENCY] = (LADSPA_PortRangeHint){ LADSPA_HINT_INTEGER, 0.0f, 0.0f };
        LADSPA_Descriptor *d = &g_desc[k];
        d->UniqueID = nc == 1 ? SSMD_LADSPA_ID_MONO : SSMD_LADSPA_ID_STEREO;
        d->Label = nc == 1 ? "ssmd_denoise_mono" : "ssmd_denoise_stereo";
        d->Properties = LADSPA_PROPERTY_HARD_RT_CAPABLE;
        d->Name = nc == 1 ? "ssmd speech denoiser (mono)" : "ssmd speech denoiser (stereo)";
        d->Maker = "ssmd";
        d->Copyright = "MIT";
        d->PortCount = (unsigned long)np;
        d->PortDescriptors = pd;
        d->PortNames = nc == 1 ? g_names_mono : g_names_stereo;
        d->PortRangeHints = hi;
        d->instantiate = ssmd_ladspa_instantiate;
        d->connect_port = ssmd_ladspa_connect;
        d->activate = ssmd_ladspa_activate;
        d->run = ssmd_ladspa_run;
        d->cleanup = ssmd_ladspa_cleanup;
    }
}

/** LADSPA entry point: the descriptor of plugin type `index` (0: mono,
 *  1: stereo), NULL beyond.  Thread-safe; the descriptors live as long as
 *  the library. */
const LADSPA_Descriptor *ladspa_descriptor(unsigned long index)
{
    pthread_once(&g_once, ssmd_ladspa_describe);
    return index < 2 ? &g_desc[index] : NULL;
}
