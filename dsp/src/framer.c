/* SPDX-License-Identifier: MIT */
/* Framer and weighted overlap-add.
 *
 * Design note: both sides keep a linear buffer of n_window floats and move
 * it by one hop per frame (memmove), instead of a ring.  That costs N floats
 * per frame but keeps every frame contiguous, so popping is one memcpy and
 * the overlap-add is one loop, and results depend only on the sample
 * sequence — the chunk-size invariance the daemon's tests demand.
 *
 * Analysis buffer: abuf[0 .. N−H) is history, abuf[N−H .. N−H+fill) the new
 * samples of the coming frame; the frame is ready when fill == H.
 * Synthesis accumulator: acc[0 .. N) covers stream samples
 * [frames_synth·H, frames_synth·H + N); adding a frame makes acc[0 .. H)
 * final.
 */
#include "dsp/framer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct dsp_framer {
    size_t n_window;
    size_t hop;
    bool   align;

    size_t fill;           /* new samples in the pending frame, 0..hop */
    bool   finishing;
    uint64_t samples_in;   /* real samples consumed */
    uint64_t nonfinite;
    uint64_t frames_out;   /* frames popped */
    uint64_t frames_needed;/* valid once finishing: frames to pop in total */
    uint64_t frames_synth; /* frames overlap-added */
    uint64_t samples_out;

    float *abuf;           /* {n_window} */
    float *acc;            /* {n_window} */
};

size_t dsp_sanitize_f32(float *x, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            x[i] = 0.0f;
            bad++;
        }
    }
    return bad;
}

int dsp_framer_create(dsp_framer **out, const dsp_framer_config *cfg, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "framer: out pointer is NULL");
    *out = NULL;
    if (!cfg)
        return dsp_error_set(err, DSP_ERR_INVALID, "framer: no configuration given");
    if (cfg->n_window == 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "framer: n_window must be at least 1 (got 0)");
    if (cfg->hop_samples == 0 || cfg->hop_samples > cfg->n_window)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "framer: hop_samples must be in [1, n_window=%zu] (got %zu)",
                             cfg->n_window, cfg->hop_samples);
    if (cfg->n_window > ((size_t)1 << 28))
        return dsp_error_set(err, DSP_ERR_INVALID, "framer: n_window %zu is too large (max 2^28)",
                             cfg->n_window);
    dsp_framer *f = calloc(1, sizeof *f);
    float *bufs = calloc(2 * cfg->n_window, sizeof *bufs);
    if (!f || !bufs) {
        free(f);
        free(bufs);
        return dsp_error_set(err, DSP_ERR_NOMEM, "framer: out of memory for n_window %zu",
                             cfg->n_window);
    }
    f->n_window = cfg->n_window;
    f->hop = cfg->hop_samples;
    f->align = cfg->align_output;
    f->abuf = bufs;
    f->acc = bufs + cfg->n_window;
    *out = f;
    return DSP_OK;
}

void dsp_framer_destroy(dsp_framer *f)
{
    if (!f)
        return;
    free(f->abuf);
    free(f);
}

void dsp_framer_reset(dsp_framer *f)
{
    memset(f->abuf, 0, 2 * f->n_window * sizeof *f->abuf);
    f->fill = 0;
    f->finishing = false;
    f->samples_in = f->nonfinite = 0;
    f->frames_out = f->frames_needed = f->frames_synth = f->samples_out = 0;
}

size_t dsp_framer_push(dsp_framer *f, const float *in, size_t n_in, size_t *n_nonfinite)
{
    size_t take = 0, bad = 0;
    if (!f->finishing && f->fill < f->hop && in) {
        take = f->hop - f->fill;
        if (take > n_in)
            take = n_in;
        float *dst = f->abuf + (f->n_window - f->hop) + f->fill;
        memcpy(dst, in, take * sizeof *dst);
        bad = dsp_sanitize_f32(dst, take);
        f->fill += take;
        f->samples_in += take;
        f->nonfinite += bad;
    }
    if (n_nonfinite)
        *n_nonfinite = bad;
    return take;
}

int dsp_framer_pop_frame(dsp_framer *f, float *frame_out)
{
    if (!f || !frame_out)
        return DSP_ERR_INVALID;
    if (f->fill < f->hop) {
        if (!f->finishing || f->frames_out >= f->frames_needed)
            return 0;
        /* End of input: the rest of the frame is zero padding. */
        float *dst = f->abuf + (f->n_window - f->hop) + f->fill;
        memset(dst, 0, (f->hop - f->fill) * sizeof *dst);
        f->fill = f->hop;
    }
    memcpy(frame_out, f->abuf, f->n_window * sizeof *frame_out);
    memmove(f->abuf, f->abuf + f->hop, (f->n_window - f->hop) * sizeof *f->abuf);
    f->fill = 0;
    f->frames_out++;
    return 1;
}

/* Stream index one past the last sample to emit (live indexing, i.e. before
 * dropping the latency); UINT64_MAX while the input is open. */
static uint64_t stream_end(const dsp_framer *f)
{
    if (!f->finishing)
        return UINT64_MAX;
    return f->samples_in + (f->n_window - f->hop);
}

size_t dsp_framer_synthesize(dsp_framer *f, float *out, const float *frame)
{
    const size_t n = f->n_window, h = f->hop;
    const uint64_t start = f->frames_synth * h;  /* stream index of acc[0] */
    const uint64_t end = stream_end(f);
    if (start >= end)
        return 0;

    float *acc = f->acc;
    for (size_t i = 0; i < n; i++)
        acc[i] += frame[i];

    /* acc[0..h) is final: emit the part inside [lo, end). */
    const uint64_t lo = f->align ? (uint64_t)(n - h) : 0;
    uint64_t a = start > lo ? start : lo;
    uint64_t b = start + h < end ? start + h : end;
    size_t produced = 0;
    if (b > a) {
        produced = (size_t)(b - a);
        memcpy(out, acc + (a - start), produced * sizeof *out);
    }
    memmove(acc, acc + h, (n - h) * sizeof *acc);
    memset(acc + (n - h), 0, h * sizeof *acc);
    f->frames_synth++;
    f->samples_out += produced;
    return produced;
}

void dsp_framer_finish(dsp_framer *f)
{
    if (f->finishing)
        return;
    f->finishing = true;
    /* Synthesis must reach stream index L + (N − H): ceil of that over H. */
    uint64_t need = f->samples_in + (f->n_window - f->hop);
    f->frames_needed = (need + f->hop - 1) / f->hop;
    if (f->frames_needed < f->frames_out)
        f->frames_needed = f->frames_out;
}

bool dsp_framer_done(const dsp_framer *f)
{
    return f->finishing && f->frames_synth * f->hop >= stream_end(f);
}

size_t dsp_framer_latency_samples(const dsp_framer *f) { return f->n_window - f->hop; }
size_t dsp_framer_n_window(const dsp_framer *f) { return f->n_window; }
size_t dsp_framer_hop_samples(const dsp_framer *f) { return f->hop; }
uint64_t dsp_framer_samples_in(const dsp_framer *f) { return f->samples_in; }
uint64_t dsp_framer_nonfinite_count(const dsp_framer *f) { return f->nonfinite; }
uint64_t dsp_framer_frames_out(const dsp_framer *f) { return f->frames_out; }
uint64_t dsp_framer_samples_out(const dsp_framer *f) { return f->samples_out; }
