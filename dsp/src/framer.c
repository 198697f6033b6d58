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

#include "clones.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dsp_framer {
    size_t n_window;
    size_t hop;
    size_t delay;          /* processing delay D (dsp_framer_config.delay_samples) */
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

/* Zeroes *x where it is Inf or NaN (exponent bits all ones); returns 1 if so.
 * Finite values, -0.0 and denormals included, are stored back unchanged. */
static inline uint32_t sanitize_one(float *x)
{
    uint32_t u;
    memcpy(&u, x, sizeof u);
    uint32_t nonfinite = (u & 0x7f800000u) == 0x7f800000u;
    u &= nonfinite - 1u;
    memcpy(x, &u, sizeof u);
    return nonfinite;
}

/* Branch-free, in blocks of a fixed 16 with a count per lane so that gcc
 * vectorises it at -O2 (its default cost model there skips loops of unknown
 * trip count), compiled for each ISA (clones.h): it runs on every sample. */
DSP_CLONES
size_t dsp_sanitize_f32(float *x, size_t n)
{
    size_t bad = 0, i = 0;
    while (i + 16 <= n) {
        uint32_t lane[16] = { 0 }; /* added up every 2^28 samples: a lane counts at most 2^24 */
        size_t end = n - i > ((size_t)1 << 28) ? i + ((size_t)1 << 28) : n;
        for (; i + 16 <= end; i += 16)
            for (int j = 0; j < 16; j++)
                lane[j] += sanitize_one(&x[i + (size_t)j]);
        for (int j = 0; j < 16; j++)
            bad += lane[j];
    }
    for (; i < n; i++)
        bad += sanitize_one(&x[i]);
    return bad;
}

/* Sanitises *x as above, then clips it to [−limit, limit]; returns 1 if it was
 * finite and beyond the limit.  The clip is the same two selects for every
 * value, so -0.0 and values within the limit keep their bits. */
static inline uint32_t condition_one(float *x, float limit, uint32_t *nonfinite)
{
    *nonfinite += sanitize_one(x);
    const float v = *x;
    const uint32_t c = (uint32_t)(v > limit) + (uint32_t)(v < -limit);
    const float w = v > limit ? limit : v;
    *x = w < -limit ? -limit : w;
    return c;
}

DSP_CLONES
void dsp_condition_f32(float *x, size_t n, float limit, uint64_t *n_nonfinite, uint64_t *n_clipped)
{
    uint32_t bad[16] = { 0 }, clip[16] = { 0 }; /* per lane, added up every 2^28 samples */
    size_t i = 0;
    uint64_t nb = 0, nc = 0;
    while (i + 16 <= n) {
        /* 2^24 blocks at most between the additions: a lane counts at most 2^24 */
        size_t end = n - i > ((size_t)1 << 28) ? i + ((size_t)1 << 28) : n;
        for (; i + 16 <= end; i += 16)
            for (int j = 0; j < 16; j++)
                clip[j] += condition_one(&x[i + (size_t)j], limit, &bad[j]);
        for (int j = 0; j < 16; j++) {
            nb += bad[j];
            nc += clip[j];
            bad[j] = clip[j] = 0;
        }
    }
    uint32_t b = 0, c = 0;
    for (; i < n; i++)
        c += condition_one(&x[i], limit, &b);
    *n_nonfinite += nb + b;
    *n_clipped += nc + c;
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
    if (cfg->delay_samples > ((size_t)1 << 28))
        return dsp_error_set(err, DSP_ERR_INVALID, "framer: delay_samples %zu is too large (max 2^28)",
                             cfg->delay_samples);
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
    f->delay = cfg->delay_samples;
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

static uint64_t latency(const dsp_framer *f)
{
    return (uint64_t)(f->n_window - f->hop) + f->delay;
}

/* Stream index one past the last sample to emit (live indexing, i.e. before
 * dropping the latency); UINT64_MAX while the input is open. */
static uint64_t stream_end(const dsp_framer *f)
{
    if (!f->finishing)
        return UINT64_MAX;
    return f->samples_in + latency(f);
}

/* acc[i] += x[i], i < n (no overlap), in blocks of 16 for each ISA. */
DSP_CLONES
static void add_into(float *restrict acc, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[i + (size_t)j] += x[i + (size_t)j];
    for (; i < n; i++)
        acc[i] += x[i];
}

size_t dsp_framer_synthesize(dsp_framer *f, float *out, const float *frame)
{
    const size_t n = f->n_window, h = f->hop;
    const uint64_t start = f->frames_synth * h;  /* stream index of acc[0] */
    const uint64_t end = stream_end(f);
    if (start >= end)
        return 0;

    float *acc = f->acc;
    add_into(acc, frame, n);

    /* acc[0..h) is final: emit the part inside [lo, end). */
    const uint64_t lo = f->align ? latency(f) : 0;
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
    /* Synthesis must reach stream index L + latency: ceil of that over H. */
    uint64_t need = f->samples_in + latency(f);
    f->frames_needed = (need + f->hop - 1) / f->hop;
    if (f->frames_needed < f->frames_out)
        f->frames_needed = f->frames_out;
}

bool dsp_framer_done(const dsp_framer *f)
{
    return f->finishing && f->frames_synth * f->hop >= stream_end(f);
}

size_t dsp_framer_latency_samples(const dsp_framer *f) { return (size_t)latency(f); }
size_t dsp_framer_n_window(const dsp_framer *f) { return f->n_window; }
size_t dsp_framer_hop_samples(const dsp_framer *f) { return f->hop; }
uint64_t dsp_framer_samples_in(const dsp_framer *f) { return f->samples_in; }
uint64_t dsp_framer_nonfinite_count(const dsp_framer *f) { return f->nonfinite; }
uint64_t dsp_framer_frames_out(const dsp_framer *f) { return f->frames_out; }
uint64_t dsp_framer_samples_out(const dsp_framer *f) { return f->samples_out; }

/* ---- state save / load -------------------------------------------------- */

enum { FRAMER_STATE_HEADER = 112, FRAMER_STATE_VERSION = 1 };

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f32s(unsigned char *p, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int b = 0; b < 4; b++) p[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
}

static void get_f32s(float *x, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int b = 0; b < 4; b++) u |= (uint32_t)p[4 * i + (size_t)b] << (8 * b);
        memcpy(&x[i], &u, 4);
    }
}

size_t dsp_framer_state_bytes(const dsp_framer *f)
{
    return FRAMER_STATE_HEADER + 2 * f->n_window * sizeof(float);
}

long dsp_framer_state_save(const dsp_framer *f, void *buf, size_t size)
{
    size_t need = dsp_framer_state_bytes(f);
    if (!buf || size < need) return DSP_ERR_INVALID;
    unsigned char *p = buf;
    memset(p, 0, FRAMER_STATE_HEADER);
    memcpy(p, "DSPFRAME", 8);
    const uint64_t fields[] = { FRAMER_STATE_VERSION, f->n_window, f->hop, f->align, f->fill, f->finishing,
                                f->samples_in, f->nonfinite, f->frames_out, f->frames_needed, f->frames_synth,
                                f->samples_out, f->delay };
    _Static_assert(8 + sizeof fields <= FRAMER_STATE_HEADER, "framer state header");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) put_u64(p + 8 + 8 * i, fields[i]);
    put_f32s(p + FRAMER_STATE_HEADER, f->abuf, 2 * f->n_window); /* abuf and acc are one allocation */
    return (long)need;
}

int dsp_framer_state_load(dsp_framer *f, const void *buf, size_t size, dsp_error *err)
{
    const unsigned char *p = buf;
    if (!p || size != dsp_framer_state_bytes(f))
        return dsp_error_set(err, DSP_ERR_FORMAT, "framer state: %zu bytes, expected %zu", size,
                             dsp_framer_state_bytes(f));
    if (memcmp(p, "DSPFRAME", 8) != 0) return dsp_error_set(err, DSP_ERR_FORMAT, "framer state: bad magic");
    uint64_t v[13]; /* v[12], the delay, is 0 in saves from before it existed */
    for (size_t i = 0; i < 13; i++) v[i] = get_u64(p + 8 + 8 * i);
    if (v[0] != FRAMER_STATE_VERSION)
        return dsp_error_set(err, DSP_ERR_FORMAT, "framer state: version %llu, expected %d",
                             (unsigned long long)v[0], FRAMER_STATE_VERSION);
    if (v[1] != f->n_window || v[2] != f->hop || v[3] != (uint64_t)f->align || v[12] != f->delay)
        return dsp_error_set(err, DSP_ERR_FORMAT,
                             "framer state: n_window %llu, hop %llu, aligned %llu, delay %llu; this framer has "
                             "%zu, %zu, %d, %zu",
                             (unsigned long long)v[1], (unsigned long long)v[2], (unsigned long long)v[3],
                             (unsigned long long)v[12], f->n_window, f->hop, (int)f->align, f->delay);
    /* the invariants push/pop/synthesize keep */
    const uint64_t h = f->hop, most = UINT64_MAX / 2 / h;
    bool ok = v[4] <= h && v[5] <= 1 && v[7] <= v[6] && v[8] <= most && v[10] <= v[8] && v[11] <= v[10] * h;
    if (ok && !v[5]) ok = v[9] == 0 && v[6] == v[8] * h + v[4];
    if (!ok) return dsp_error_set(err, DSP_ERR_FORMAT, "framer state: inconsistent counters");
    const unsigned char *q = p + FRAMER_STATE_HEADER;
    for (size_t i = 0; i < 2 * f->n_window; i++) {
        uint32_t u = (uint32_t)q[4 * i] | (uint32_t)q[4 * i + 1] << 8 | (uint32_t)q[4 * i + 2] << 16 |
                     (uint32_t)q[4 * i + 3] << 24;
        if ((u & 0x7f800000u) == 0x7f800000u)
            return dsp_error_set(err, DSP_ERR_FORMAT, "framer state: a non-finite sample");
    }
    get_f32s(f->abuf, q, 2 * f->n_window);
    f->fill = (size_t)v[4];
    f->finishing = v[5] != 0;
    f->samples_in = v[6];
    f->nonfinite = v[7];
    f->frames_out = v[8];
    f->frames_needed = v[9];
    f->frames_synth = v[10];
    f->samples_out = v[11];
    return DSP_OK;
}
