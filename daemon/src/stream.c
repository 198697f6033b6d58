/* SPDX-License-Identifier: MIT */
/* Design note: the stream keeps three small staging buffers so that no call
 * ever has to allocate or block:
 *   scr  sanitised input waiting for the input resampler (in_rs)
 *   rs   model-rate samples waiting for the framer
 *   syn  model-rate output samples waiting for the output resampler (out_rs)
 *   out  samples at the stream's own rate waiting to be popped
 * Without resampling (stream rate == model rate) scr/rs/out_rs are unused
 * and samples go straight into the framer and from the synthesis to `out`.
 * Back-pressure instead of growth: prepare() yields no new frame while output
 * of the previous one is still pending, so every buffer stays bounded. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/features.h"
#include "dsp/framer.h"
#include "dsp/stft.h"
#include "protocol.h"

enum { SCR_CAP = 1024 };

struct ssmd_stream_shared {
    dsp_stft *stft;
    dsp_pitch *pitch;              /* log_power_pitch: owner of the pitch search's scratch */
    float *frame, *power, *iframe; /* {n_fft}, {n_bins}, {n_fft}: scratch of one prepare / complete */
};

struct ssmd_stream {
    const ssm_model *model;
    const ssmd_frontend *fe;
    const dsp_melbank *melbank;
    ssmd_stream_config cfg;
    ssm_state *state;
    dsp_framer *framer;
    ssmd_stream_shared *own;          /* the stream's own shared part (cfg.shared NULL), else NULL */
    dsp_stft *stft;                   /* the shared part's */
    dsp_pitch *pitch; /* log_power_pitch front-ends: the pitch history */
    dsp_resampler *in_rs, *out_rs;

    float *frame, *power, *iframe;        /* the shared part's scratch */
    float *spec;                          /* a ring of `depth` spectra {2·n_bins} */
    float *dly; int dly_head;             /* the model's lookahead: the last fe->lookahead_frames
                                           * completed spectra, oldest at dly_head (zeros at start) */
    float *scr; size_t scr_pos, scr_len;
    float *rs;  size_t rs_pos, rs_len, rs_cap;
    float *syn; size_t syn_pos, syn_len;
    float *out; size_t out_pos, out_len, out_cap;

    int depth, n_prep, prep_head;         /* frames prepared and not yet completed; oldest */
    bool finishing, framer_finished, in_flushed, out_flushed;
    ssmd_stream_stats stats;
};

static void *xcalloc(size_t n, size_t size, bool *ok)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) *ok = false;
    return p;
}

static dsp_pitch_config pitch_config(const ssmd_frontend *fe)
{
    dsp_pitch_config pc = { .n_fft = (size_t)fe->n_fft, .hop_samples = (size_t)fe->hop_samples,
                            .lag_min = fe->pitch_lag_min, .lag_max = fe->pitch_lag_max,
                            .band_edges = fe->pitch_edges, .n_edges = (size_t)fe->n_pitch_edges };
    return pc;
}

ssmd_stream_shared *ssmd_stream_shared_create(const ssmd_frontend *fe, char *err, size_t cap)
{
    ssmd_stream_shared *sh = calloc(1, sizeof *sh);
    if (!sh) {
        snprintf(err, cap, "stream: out of memory");
        return NULL;
    }
    dsp_stft_config sc = { .n_fft = (size_t)fe->n_fft, .hop_samples = (size_t)fe->hop_samples,
                           .analysis_window = fe->analysis, .synthesis_window = fe->synthesis };
    dsp_error de = { 0 };
    dsp_pitch_config pc = pitch_config(fe);
    if (dsp_stft_create(&sh->stft, &sc, &de) != DSP_OK ||
        (fe->features == SSMD_FEATURES_LOG_POWER_PITCH && dsp_pitch_create(&sh->pitch, &pc, &de) != DSP_OK)) {
        snprintf(err, cap, "stream: %s", de.msg);
        ssmd_stream_shared_destroy(sh);
        return NULL;
    }
    bool ok = true;
    sh->frame = xcalloc((size_t)fe->n_fft, sizeof(float), &ok);
    sh->iframe = xcalloc((size_t)fe->n_fft, sizeof(float), &ok);
    sh->power = xcalloc((size_t)fe->n_bins, sizeof(float), &ok);
    if (!ok) {
        snprintf(err, cap, "stream: out of memory");
        ssmd_stream_shared_destroy(sh);
        return NULL;
    }
    return sh;
}

void ssmd_stream_shared_destroy(ssmd_stream_shared *sh)
{
    if (!sh) return;
    dsp_stft_destroy(sh->stft);
    dsp_pitch_destroy(sh->pitch);
    free(sh->frame);
    free(sh->iframe);
    free(sh->power);
    free(sh);
}

ssmd_stream *ssmd_stream_create(const ssm_model *model, const ssmd_frontend *fe,
                                const dsp_melbank *melbank, const ssmd_stream_config *cfg,
                                char *err, size_t cap)
{
    if (cfg->in_rate_hz <= 0 || cfg->in_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ) {
        snprintf(err, cap, "stream: sample rate %d Hz out of range", cfg->in_rate_hz);
        return NULL;
    }
    if (fe->features == SSMD_FEATURES_LOG_MEL && !melbank) {
        snprintf(err, cap, "stream: log-mel front-end without a mel filterbank");
        return NULL;
    }
    ssmd_stream *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "stream: out of memory");
        return NULL;
    }
    s->model = model;
    s->fe = fe;
    s->melbank = melbank;
    s->cfg = *cfg;
    s->depth = cfg->max_prepared > 1 ? cfg->max_prepared : 1;
    dsp_error de = { 0 };
    bool ok = true;
    if (ssm_state_create(model, &s->state) != SSM_OK) {
        snprintf(err, cap, "stream: cannot allocate the model state");
        goto fail;
    }
    dsp_framer_config fc = { .n_window = (size_t)fe->n_fft, .hop_samples = (size_t)fe->hop_samples,
                             .align_output = cfg->align_output,
                             .delay_samples = (size_t)fe->lookahead_frames * (size_t)fe->hop_samples };
    ssmd_stream_shared *sh = cfg->shared;
    if (!sh && !(sh = s->own = ssmd_stream_shared_create(fe, err, cap))) goto fail;
    dsp_pitch_config pc = pitch_config(fe);
    pc.scratch_from = sh->pitch;
    s->stft = sh->stft;
    s->frame = sh->frame;
    s->power = sh->power;
    s->iframe = sh->iframe;
    if (dsp_framer_create(&s->framer, &fc, &de) != DSP_OK ||
        (fe->features == SSMD_FEATURES_LOG_POWER_PITCH && dsp_pitch_create(&s->pitch, &pc, &de) != DSP_OK)) {
        snprintf(err, cap, "stream: %s", de.msg);
        goto fail;
    }
    size_t hop = (size_t)fe->hop_samples;
    s->out_cap = 2 * hop;
    if (cfg->in_rate_hz != fe->sample_rate_hz) {
        if (dsp_resampler_create(&s->in_rs, cfg->in_rate_hz, fe->sample_rate_hz, 1, cfg->quality, &de) ||
            dsp_resampler_create(&s->out_rs, fe->sample_rate_hz, cfg->in_rate_hz, 1, cfg->quality, &de)) {
            snprintf(err, cap, "stream: %s", de.msg);
            goto fail;
        }
        s->rs_cap = dsp_resampler_max_out_frames(s->in_rs, SCR_CAP);
        s->out_cap = dsp_resampler_max_out_frames(s->out_rs, hop);
        s->scr = xcalloc(SCR_CAP, sizeof(float), &ok);
        s->rs = xcalloc(s->rs_cap, sizeof(float), &ok);
    }
    s->spec = xcalloc((size_t)s->depth * 2 * (size_t)fe->n_bins, sizeof(float), &ok);
    if (fe->lookahead_frames > 0)
        s->dly = xcalloc((size_t)fe->lookahead_frames * 2 * (size_t)fe->n_bins, sizeof(float), &ok);
    s->syn = xcalloc(hop, sizeof(float), &ok);
    s->out = xcalloc(s->out_cap, sizeof(float), &ok);
    if (!ok) {
        snprintf(err, cap, "stream: out of memory");
        goto fail;
    }
    return s;
fail:
    ssmd_stream_destroy(s);
    return NULL;
}

void ssmd_stream_destroy(ssmd_stream *s)
{
    if (!s) return;
    ssm_state_destroy(s->state);
    dsp_framer_destroy(s->framer);
    ssmd_stream_shared_destroy(s->own);
    dsp_pitch_destroy(s->pitch);
    dsp_resampler_destroy(s->in_rs);
    dsp_resampler_destroy(s->out_rs);
    free(s->spec); free(s->dly);
    free(s->scr); free(s->rs); free(s->syn); free(s->out);
    free(s);
}

/* Moves model-rate samples from rs into the framer; false when a frame is
 * waiting (the framer stopped consuming). */
static bool feed_framer(ssmd_stream *s)
{
    while (s->rs_pos < s->rs_len) {
        size_t used = dsp_framer_push(s->framer, s->rs + s->rs_pos, s->rs_len - s->rs_pos, NULL);
        s->rs_pos += used;
        if (used == 0) return false;
    }
    s->rs_pos = s->rs_len = 0;
    return true;
}

/* Runs the sanitised input in scr through the input resampler into rs. */
static void resample_scr(ssmd_stream *s)
{
    if (s->scr_pos == s->scr_len) return;
    size_t used = 0, got = 0;
    dsp_resampler_process(s->in_rs, s->scr + s->scr_pos, s->scr_len - s->scr_pos, &used,
                          s->rs, s->rs_cap, &got);
    s->scr_pos += used;
    if (s->scr_pos == s->scr_len) s->scr_pos = s->scr_len = 0;
    s->rs_pos = 0;
    s->rs_len = got;
}

/* Input conditioning before anything touches the signal: NaN/Inf become 0
 * and finite magnitudes beyond SSMD_SAMPLE_LIMIT are clipped to it (both
 * counted), so that no finite input can overflow the STFT or the output. */
static void condition(float *x, size_t n, uint64_t *nonfinite, uint64_t *clipped)
{
    dsp_condition_f32(x, n, SSMD_SAMPLE_LIMIT, nonfinite, clipped);
}

size_t ssmd_stream_push(ssmd_stream *s, const float *in, size_t n)
{
    if (s->finishing) return 0;
    size_t consumed = 0;
    if (!s->in_rs) {
        /* condition a small copy; what the framer does not take (a frame is
         * waiting) is not consumed and comes again with the next push */
        float tmp[256];
        while (consumed < n) {
            size_t k = n - consumed < 256 ? n - consumed : 256;
            memcpy(tmp, in + consumed, k * sizeof(float));
            uint64_t nf = 0, cl = 0;
            condition(tmp, k, &nf, &cl);
            size_t used = dsp_framer_push(s->framer, tmp, k, NULL);
            if (used < k) { /* count only what was taken: recount that prefix */
                nf = cl = 0;
                memcpy(tmp, in + consumed, used * sizeof(float));
                condition(tmp, used, &nf, &cl);
            }
            s->stats.nonfinite_in += nf;
            s->stats.clipped_in += cl;
            consumed += used;
            if (used < k) break; /* a frame is waiting */
        }
        s->stats.samples_in += consumed;
        return consumed;
    }
    for (;;) {
        if (!feed_framer(s)) break;
        if (s->scr_pos < s->scr_len) { /* leftover the resampler did not take */
            resample_scr(s);
            continue;
        }
        if (consumed == n) break;
        size_t c = n - consumed < SCR_CAP ? n - consumed : SCR_CAP;
        memcpy(s->scr, in + consumed, c * sizeof(float));
        condition(s->scr, c, &s->stats.nonfinite_in, &s->stats.clipped_in);
        s->scr_pos = 0;
        s->scr_len = c;
        consumed += c;
        resample_scr(s);
    }
    s->stats.samples_in += consumed;
    return consumed;
}

/* After finish: drain scr and rs, flush the input resampler, then let the
 * framer pad its tail.  Stops early when a frame is waiting. */
static void advance_finish(ssmd_stream *s)
{
    while (!s->framer_finished) {
        if (!feed_framer(s)) return;
        if (s->in_rs && s->scr_pos < s->scr_len) {
            resample_scr(s);
        } else if (s->in_rs && !s->in_flushed) {
            size_t got = 0;
            dsp_resampler_flush(s->in_rs, s->rs, s->rs_cap, &got);
            s->rs_pos = 0;
            s->rs_len = got;
            if (got == 0) s->in_flushed = true;
        } else {
            dsp_framer_finish(s->framer);
            s->framer_finished = true;
        }
    }
}

static bool output_pending(const ssmd_stream *s)
{
    return s->syn_pos < s->syn_len || s->out_pos < s->out_len;
}

int ssmd_stream_prepare(ssmd_stream *s, float *row)
{
    if (s->n_prep == s->depth || (s->n_prep == 0 && output_pending(s))) return 0;
    if (s->finishing) advance_finish(s);
    if (dsp_framer_pop_frame(s->framer, s->frame) != 1) return 0;
    const ssmd_frontend *fe = s->fe;
    float *spec = s->spec + (size_t)((s->prep_head + s->n_prep) % s->depth) * 2 * (size_t)fe->n_bins;
    dsp_stft_forward(s->stft, spec, s->frame);
    dsp_spec_power(s->power, spec, (size_t)fe->n_bins);
    if (fe->features == SSMD_FEATURES_LOG_MEL)
        dsp_melbank_apply_log(s->melbank, row, s->power, fe->log_floor);
    else
        dsp_log_floor(row, s->power, (size_t)fe->n_bins, fe->log_floor);
    if (s->pitch) dsp_pitch_frame(s->pitch, s->stft, s->frame, spec, row + fe->n_bins);
    s->n_prep++;
    s->stats.frames++;
    return 1;
}

void ssmd_stream_complete(ssmd_stream *s, const float *mask)
{
    if (s->n_prep == 0) return;
    size_t n_bins = (size_t)s->fe->n_bins;
    float *spec = s->spec + (size_t)s->prep_head * 2 * n_bins;
    s->n_prep--;
    /* the next frame prepared goes where this one was when none is waiting: a stream
     * stepped a frame at a time keeps to one spectrum slot (in cache) instead of
     * walking the whole ring (depth = the engine's chunk of frames) */
    s->prep_head = s->n_prep == 0 ? 0 : (s->prep_head + 1) % s->depth;
    if (s->dly) {
        /* lookahead d: this mask row is frame t − d's; frame t waits in its place */
        float *old = s->dly + (size_t)s->dly_head * 2 * n_bins;
        s->dly_head = (s->dly_head + 1) % s->fe->lookahead_frames;
        for (size_t k = 0; k < 2 * n_bins; k++) {
            const float v = old[k];
            old[k] = spec[k];
            spec[k] = v;
        }
    }
    if (mask) dsp_spec_apply_gain(spec, mask, n_bins);
    dsp_stft_inverse(s->stft, s->iframe, spec);
    float *dst = s->out_rs ? s->syn : s->out;
    size_t got = dsp_framer_synthesize(s->framer, dst, s->iframe);
    if (s->out_rs) {
        s->syn_pos = 0;
        s->syn_len = got;
    } else {
        s->out_pos = 0;
        s->out_len = got;
    }
}

/* Refills `out` from syn through the output resampler, or from its flush
 * once the framer's output is complete. */
static void refill_out(ssmd_stream *s)
{
    if (!s->out_rs) {
        if (dsp_framer_done(s->framer)) s->out_flushed = true;
        return;
    }
    size_t got = 0;
    if (s->syn_pos < s->syn_len) {
        size_t used = 0;
        dsp_resampler_process(s->out_rs, s->syn + s->syn_pos, s->syn_len - s->syn_pos, &used,
                              s->out, s->out_cap, &got);
        s->syn_pos += used;
    } else if (dsp_framer_done(s->framer) && !s->out_flushed) {
        dsp_resampler_flush(s->out_rs, s->out, s->out_cap, &got);
        if (got == 0) s->out_flushed = true;
    }
    s->out_pos = 0;
    s->out_len = got;
}

size_t ssmd_stream_pop(ssmd_stream *s, float *dst, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        if (s->out_pos == s->out_len) {
            refill_out(s);
            if (s->out_pos == s->out_len) break;
        }
        size_t k = s->out_len - s->out_pos;
        if (k > cap - n) k = cap - n;
        memcpy(dst + n, s->out + s->out_pos, k * sizeof(float));
        s->out_pos += k;
        n += k;
    }
    if (s->cfg.align_output && s->finishing) {
        /* Exact length: the two resamplers can round the model-rate length
         * so that the stream-rate total differs from the input by a sample;
         * trim the excess, pad a shortfall with zeros at the very end. */
        uint64_t room = s->stats.samples_in - s->stats.samples_out;
        if (n > room) n = (size_t)room;
        if (n == 0 && s->out_flushed && room > 0 && !output_pending(s) && s->n_prep == 0) {
            n = room < cap ? (size_t)room : cap;
            memset(dst, 0, n * sizeof(float));
        }
    }
    s->stats.samples_out += n;
    return n;
}

void ssmd_stream_finish(ssmd_stream *s)
{
    s->finishing = true;
}

bool ssmd_stream_done(const ssmd_stream *s)
{
    return s->finishing && s->framer_finished && s->out_flushed && !output_pending(s) &&
           s->n_prep == 0 && (!s->cfg.align_output || s->stats.samples_out == s->stats.samples_in);
}

ssm_state *ssmd_stream_state(ssmd_stream *s)
{
    return s->state;
}

void ssmd_stream_stats_get(const ssmd_stream *s, ssmd_stream_stats *out)
{
    *out = s->stats;
}

/* ---- save / load ---------------------------------------------------------- */

enum { SAVE_HEADER = 96, SAVE_VERSION = 1 };

/* the lookahead's delayed spectra, oldest first, as little-endian floats */
static size_t dly_bytes(const ssmd_stream *s)
{
    return s->dly ? (size_t)s->fe->lookahead_frames * 2 * (size_t)s->fe->n_bins * sizeof(float) : 0;
}

size_t ssmd_stream_save_bytes(const ssmd_stream *s)
{
    if (s->in_rs) return 0;
    return SAVE_HEADER + dsp_framer_state_bytes(s->framer) + ssm_state_bytes(s->model) +
           (s->pitch ? dsp_pitch_state_bytes(s->pitch) : 0) + dly_bytes(s);
}

bool ssmd_stream_savable(const ssmd_stream *s)
{
    return !s->in_rs && s->n_prep == 0 && !output_pending(s) && !s->finishing;
}

long ssmd_stream_save(const ssmd_stream *s, void *buf, size_t cap)
{
    size_t need = ssmd_stream_save_bytes(s);
    if (!ssmd_stream_savable(s) || need == 0 || cap < need) return -1;
    uint8_t *p = buf;
    memset(p, 0, SAVE_HEADER);
    memcpy(p, "SSMDSTRM", 8);
    const uint32_t u32[] = { SAVE_VERSION, (uint32_t)s->cfg.in_rate_hz, (uint32_t)s->fe->sample_rate_hz,
                             (uint32_t)s->fe->n_fft, (uint32_t)s->fe->hop_samples, s->cfg.align_output };
    for (size_t i = 0; i < 6; i++) ssmd_put_u32(p + 8 + 4 * i, u32[i]);
    const uint64_t u64[] = { s->stats.samples_in, s->stats.samples_out, s->stats.frames, s->stats.nonfinite_in,
                             s->stats.clipped_in };
    for (size_t i = 0; i < 5; i++) ssmd_put_u64(p + 32 + 8 * i, u64[i]);
    ssmd_put_u32(p + 72, (uint32_t)s->fe->lookahead_frames); /* 0 in saves from before lookahead */
    size_t fb = dsp_framer_state_bytes(s->framer);
    if (dsp_framer_state_save(s->framer, p + SAVE_HEADER, fb) < 0) return -1;
    size_t written = 0;
    if (ssm_state_snapshot(s->state, p + SAVE_HEADER + fb, cap - SAVE_HEADER - fb, &written) != SSM_OK) return -1;
    if (s->pitch) { /* log_power_pitch: the pitch history follows the model state */
        if (cap - SAVE_HEADER - fb - written < dsp_pitch_state_bytes(s->pitch)) return -1;
        dsp_pitch_state_save(s->pitch, p + SAVE_HEADER + fb + written);
        written += dsp_pitch_state_bytes(s->pitch);
    }
    if (s->dly) { /* then the lookahead's delayed spectra */
        size_t n = dly_bytes(s) / sizeof(float), d = (size_t)s->fe->lookahead_frames, w = n / d;
        if (cap - SAVE_HEADER - fb - written < dly_bytes(s)) return -1;
        uint8_t *q = p + SAVE_HEADER + fb + written;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &s->dly[(((size_t)s->dly_head + i / w) % d) * w + i % w], 4);
            ssmd_put_u32(q + 4 * i, u);
        }
        written += dly_bytes(s);
    }
    return (long)(SAVE_HEADER + fb + written);
}

int ssmd_stream_load(ssmd_stream *s, const void *buf, size_t n, char *err, size_t cap)
{
    const uint8_t *p = buf;
    size_t need = ssmd_stream_save_bytes(s), fb = dsp_framer_state_bytes(s->framer);
    if (need == 0) {
        snprintf(err, cap, "a stream at %d Hz resamples to the model's %d Hz: its state cannot be loaded",
                 s->cfg.in_rate_hz, s->fe->sample_rate_hz);
        return -1;
    }
    if (n < SAVE_HEADER || memcmp(p, "SSMDSTRM", 8) != 0) {
        snprintf(err, cap, "not a stream save (bad magic or %zu bytes)", n);
        return -1;
    }
    uint32_t u32[6];
    for (size_t i = 0; i < 6; i++) u32[i] = ssmd_get_u32(p + 8 + 4 * i);
    if (u32[0] != SAVE_VERSION) {
        snprintf(err, cap, "stream save version %u, this build reads %d", u32[0], SAVE_VERSION);
        return -1;
    }
    if (u32[1] != (uint32_t)s->cfg.in_rate_hz || u32[2] != (uint32_t)s->fe->sample_rate_hz ||
        u32[3] != (uint32_t)s->fe->n_fft || u32[4] != (uint32_t)s->fe->hop_samples ||
        u32[5] != (uint32_t)s->cfg.align_output) {
        snprintf(err, cap, "the save is of a stream at %u Hz (model %u Hz, n_fft %u, hop %u, aligned %u); this one is "
                 "at %d Hz (model %d Hz, n_fft %d, hop %d, aligned %d)", u32[1], u32[2], u32[3], u32[4], u32[5],
                 s->cfg.in_rate_hz, s->fe->sample_rate_hz, s->fe->n_fft, s->fe->hop_samples, (int)s->cfg.align_output);
        return -1;
    }
    if (ssmd_get_u32(p + 72) != (uint32_t)s->fe->lookahead_frames) {
        snprintf(err, cap, "the save is of a model with lookahead %u frames; this one has %d", ssmd_get_u32(p + 72),
                 s->fe->lookahead_frames);
        return -1;
    }
    if (n != need) {
        snprintf(err, cap, "stream save of %zu bytes, expected %zu", n, need);
        return -1;
    }
    ssmd_stream_stats st = { 0 };
    st.samples_in = ssmd_get_u64(p + 32);
    st.samples_out = ssmd_get_u64(p + 40);
    st.frames = ssmd_get_u64(p + 48);
    st.nonfinite_in = ssmd_get_u64(p + 56);
    st.clipped_in = ssmd_get_u64(p + 64);
    /* the model state first: it is the part that can be refused for another
     * model, and the framer's load cannot fail after its own checks pass */
    ssm_state *tmp = NULL;
    if (ssm_state_create(s->model, &tmp) != SSM_OK) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    size_t pb = s->pitch ? dsp_pitch_state_bytes(s->pitch) : 0, lb = dly_bytes(s);
    size_t mb = n - SAVE_HEADER - fb - pb - lb;
    int rc = ssm_state_restore(tmp, p + SAVE_HEADER + fb, mb);
    ssm_state_destroy(tmp);
    if (rc != SSM_OK) {
        snprintf(err, cap, "%s", rc == SSM_ERR_MISMATCH ? "the model state was saved with another model"
                                                         : "the model state is corrupt or holds a non-finite value");
        return -1;
    }
    dsp_error de = { 0 };
    if (s->pitch && dsp_pitch_state_check(s->pitch, p + SAVE_HEADER + fb + mb, pb, &de) != DSP_OK) {
        snprintf(err, cap, "%s", de.msg);
        return -1;
    }
    const uint8_t *lq = p + SAVE_HEADER + fb + mb + pb;
    for (size_t i = 0; i < lb / 4; i++) {
        uint32_t u = ssmd_get_u32(lq + 4 * i);
        if ((u & 0x7f800000u) == 0x7f800000u) {
            snprintf(err, cap, "the lookahead's delayed spectra hold a non-finite value");
            return -1;
        }
    }
    /* the framer's own state, put back if the save's counters contradict the
     * loaded one: a refused save leaves the stream as it was (stream.h) */
    uint8_t *was = malloc(fb);
    if (!was || dsp_framer_state_save(s->framer, was, fb) != (long)fb) {
        free(was);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    if (dsp_framer_state_load(s->framer, p + SAVE_HEADER, fb, &de) != DSP_OK) {
        free(was);
        snprintf(err, cap, "%s", de.msg);
        return -1;
    }
    if (dsp_framer_samples_in(s->framer) != st.samples_in || dsp_framer_samples_out(s->framer) != st.samples_out) {
        snprintf(err, cap, "the save's counters contradict its framer state");
        dsp_framer_state_load(s->framer, was, fb, NULL); /* its own save: cannot fail */
        free(was);
        return -1;
    }
    free(was);
    ssm_state_restore(s->state, p + SAVE_HEADER + fb, mb); /* checked above */
    if (s->pitch) dsp_pitch_state_load(s->pitch, p + SAVE_HEADER + fb + mb, pb, NULL); /* checked above */
    for (size_t i = 0; i < lb / 4; i++) {
        uint32_t u = ssmd_get_u32(lq + 4 * i);
        memcpy(&s->dly[i], &u, 4);
    }
    s->dly_head = 0;
    s->stats = st;
    s->n_prep = 0;
    s->prep_head = 0;
    s->scr_pos = s->scr_len = s->rs_pos = s->rs_len = s->syn_pos = s->syn_len = s->out_pos = s->out_len = 0;
    s->finishing = s->framer_finished = s->in_flushed = s->out_flushed = false;
    return 0;
}
