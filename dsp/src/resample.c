/* SPDX-License-Identifier: MIT */
/* Streaming resampler on libsoxr (see dsp/resample.h for the contract).
 *
 * Design note.  soxr converts in stages (half-band FIRs, an overlap-save
 * DFT filter, a polyphase FIR) joined by FIFOs that it grows with realloc()
 * whenever a write does not fit; how large they get, and when, depends on
 * how the input arrives (with caller-sized chunks a 44.1 -> 48 kHz stream
 * still reallocated 25 s in).  So soxr never sees the caller's chunking:
 *
 *   - Input is copied into a staging block of BLOCK_FRAMES frames and soxr
 *     only ever receives whole blocks (soxr_process with idone = NULL, so it
 *     takes the whole block); its output goes to an internal queue of
 *     oq_cap frames, and soxr is drained (calls with no input until it
 *     returns less than oq_cap) before the next block is fed.  The sequence
 *     of soxr calls is then a function of the block count alone, so the
 *     output is bit-identical however the caller chunks the input, and so is
 *     soxr's allocation pattern.
 *   - That pattern settles early: measured for 8..96 kHz <-> 16/44.1/48 kHz
 *     at all three qualities, with the same feeding, the last reallocation
 *     came after at most 70 144 input frames (8 -> 48 kHz best; 10 to 20
 *     minutes run each).  This is a measurement, not a proof: the prefix
 *     below is 3.7 times that, and the test counts allocations.  create
 *     therefore runs a prefix of zeros through the converter, at least
 *     PRIME_MIN_FRAMES long and a whole number of rate periods
 *     (in / gcd(in, out) frames) so it maps to a whole number of output frames,
 *     and discards that output.  After create, process and flush do not
 *     allocate (tests/dsp/test_resample.c counts allocations to check).
 *   - soxr's linear-phase filters are centred on the output instant (its
 *     output starts aligned, like libsamplerate's sinc converters); create
 *     still measures the delay with an impulse through a scratch converter
 *     built the same way and discards as many leading frames as the peak is
 *     late (0 for every recipe measured).
 *   - The flush feeds blocks of zeros (never soxr's own end-of-input, whose
 *     length rule is not ours) and stops generating at exactly
 *     round(n_in * out / in) frames.
 * soxr_clear() frees and rebuilds the converter, so reset does the same
 * (delete, create, prime): reset allocates.
 */
#include "dsp/resample.h"

#include <math.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

/* Input frames handed to soxr per call (the header explains the latency). */
#define BLOCK_FRAMES DSP_RESAMPLE_BLOCK_FRAMES
/* The least number of zero frames run through the converter at create; see
 * the design note (3.7 times the latest reallocation measured). */
#define PRIME_MIN_FRAMES 262144

struct dsp_resampler {
    soxr_t sx;
    int in_rate_hz, out_rate_hz, channels, quality;
    double ratio;              /* out / in */
    int delay_frames;          /* converter delay discarded (measured) */
    uint64_t prime_in;         /* zero frames run through at create / reset */
    uint64_t prime_out;        /* the output frames they map to (exact) */
    size_t lookahead_out;      /* bound on output frames held back */
    uint64_t n_in, n_out;      /* frames consumed / delivered since reset */
    uint64_t discard_left;     /* leading soxr output frames still to drop */
    uint64_t sx_in, sx_out;    /* frames fed to / produced by soxr since reset */
    size_t held_max;           /* max of ideal(sx_in) - sx_out after a drain */
    int flushed;
    int sx_more;               /* the last soxr call filled oq: drain before feeding */
    float *blk;                /* BLOCK_FRAMES * channels: staging block */
    size_t blk_fill;
    float *oq;                 /* oq_cap * channels: soxr output not yet delivered */
    size_t oq_cap, oq_pos, oq_len;
};

static const unsigned long soxr_recipes[] = {
    /* The steep filter (pass band to 1 - 0.01 / the 3 dB point, not 0.05)
     * keeps the top of the band: 44.1 -> 48 -> 44.1 kHz tones to 18 kHz have
     * an SI-SDR of 93 dB with it, 82 dB without (best), at ~10 % more time. */
    [DSP_RESAMPLE_BEST]    = SOXR_VHQ | SOXR_STEEP_FILTER,
    [DSP_RESAMPLE_MEDIUM]  = SOXR_HQ | SOXR_STEEP_FILTER,
    [DSP_RESAMPLE_FASTEST] = SOXR_MQ,
};

uint64_t dsp_resample_output_frames(uint64_t n_in_frames, int in_rate_hz, int out_rate_hz)
{
    if (in_rate_hz <= 0 || out_rate_hz <= 0)
        return 0;
    /* n*o/i = q*o + r*o/i with n = q*i + r; r*o < i*o fits easily in 64 bits.
     * Round half up: floor((2*r*o + i) / (2*i)). */
    uint64_t i = (uint64_t)in_rate_hz, o = (uint64_t)out_rate_hz;
    uint64_t q = n_in_frames / i, r = n_in_frames % i;
    return q * o + (2 * r * o + i) / (2 * i);
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* One soxr call with oq empty: feeds the staging block (feed != 0) or only
 * drains (feed == 0), then drops output frames still owed to the discard. */
static int sx_call(dsp_resampler *r, int feed)
{
    size_t od = 0;
    if (soxr_process(r->sx, r->blk, feed ? BLOCK_FRAMES : 0, NULL, r->oq, r->oq_cap, &od) != NULL)
        return DSP_ERR_LIBRARY;
    if (feed) {
        r->sx_in += BLOCK_FRAMES;
        r->blk_fill = 0;
    }
    r->sx_out += od;
    r->sx_more = od == r->oq_cap;
    size_t drop = (size_t)(r->discard_left < od ? r->discard_left : od);
    r->discard_left -= drop;
    r->oq_pos = drop;
    r->oq_len = od;
    if (!r->sx_more) {
        uint64_t ideal = dsp_resample_output_frames(r->sx_in, r->in_rate_hz, r->out_rate_hz);
        uint64_t held = ideal > r->sx_out ? ideal - r->sx_out : 0;
        if (held > r->held_max)
            r->held_max = (size_t)held;
    }
    return DSP_OK;
}

/* The common loop: takes up to in_frames frames of `in` (zeros when in is
 * NULL) into the staging block, feeding soxr whole blocks, and delivers up
 * to out_cap frames.  Stops when the input is used up and nothing is
 * pending, or when the output is full and something is still pending. */
static int push(dsp_resampler *r, const float *in, size_t in_frames, size_t *in_used,
                float *out, size_t out_cap, size_t *out_made)
{
    size_t ch = (size_t)r->channels, used = 0, made = 0;
    int st = DSP_OK;
    for (;;) {
        if (r->oq_pos < r->oq_len) {
            if (made == out_cap)
                break;
            size_t k = min_sz(r->oq_len - r->oq_pos, out_cap - made);
            memcpy(out + made * ch, r->oq + r->oq_pos * ch, k * ch * sizeof *out);
            r->oq_pos += k;
            made += k;
        } else if (r->sx_more) {
            if ((st = sx_call(r, 0)) != DSP_OK)
                break;
        } else if (used < in_frames) {
            size_t k = min_sz(BLOCK_FRAMES - r->blk_fill, in_frames - used);
            float *dst = r->blk + r->blk_fill * ch;
            if (in)
                memcpy(dst, in + used * ch, k * ch * sizeof *dst);
            else
                memset(dst, 0, k * ch * sizeof *dst);
            r->blk_fill += k;
            used += k;
            if (r->blk_fill == BLOCK_FRAMES && (st = sx_call(r, 1)) != DSP_OK)
                break;
        } else {
            break;
        }
    }
    *in_used = used;
    *out_made = made;
    return st;
}

/* Creates (or re-creates) the soxr converter and runs the zero prefix
 * through it; everything it produces is discarded.  Allocates. */
static int build(dsp_resampler *r, dsp_error *err)
{
    soxr_delete(r->sx);
    r->sx = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(soxr_recipes[r->quality], 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1); /* one thread: no OpenMP */
    soxr_error_t e = NULL;
    r->sx = soxr_create((double)r->in_rate_hz, (double)r->out_rate_hz, (unsigned)r->channels,
                        &e, &io, &q, &rt);
    if (!r->sx || e) {
        soxr_delete(r->sx);
        r->sx = NULL;
        return dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: soxr_create: %s",
                             e ? e : "failed");
    }
    r->n_in = r->n_out = r->sx_in = r->sx_out = 0;
    r->blk_fill = r->oq_pos = r->oq_len = 0;
    r->sx_more = 0;
    r->flushed = 0;
    r->held_max = 0;
    r->discard_left = r->prime_out + (uint64_t)r->delay_frames;
    size_t used = 0, made = 0;
    int st = push(r, NULL, (size_t)r->prime_in, &used, NULL, 0, &made);
    if (st != DSP_OK || used != r->prime_in || made != 0)
        return dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: soxr: %s",
                             st != DSP_OK ? soxr_error(r->sx) ? soxr_error(r->sx) : "failed"
                                          : "more output than input while priming");
    return DSP_OK;
}

/* Measures the converter's delay (argmax of the impulse response) with a
 * scratch converter built like r (mono, same prefix), and sets r's bound on
 * output held back from what that converter held during its run. */
static int measure(dsp_resampler *r, dsp_error *err)
{
    dsp_resampler s = *r;
    s.sx = NULL;
    s.channels = 1;
    s.delay_frames = 0;
    s.blk = calloc(BLOCK_FRAMES, sizeof *s.blk);
    s.oq = calloc(s.oq_cap, sizeof *s.oq);
    /* Enough input for 64 output frames after the longest look-ahead. */
    size_t n_in = (size_t)ceil(64.0 / r->ratio) + 8 * BLOCK_FRAMES;
    size_t n_out = (size_t)dsp_resample_output_frames(n_in, r->in_rate_hz, r->out_rate_hz);
    float *x = calloc(n_in, sizeof *x), *y = calloc(n_out + 1, sizeof *y);
    int status = DSP_OK;
    if (!s.blk || !s.oq || !x || !y) {
        status = dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
        goto done;
    }
    if ((status = build(&s, err)) != DSP_OK)
        goto done;
    x[0] = 1.0f;
    size_t used = 0, got = 0, more = 0;
    s.lookahead_out = 4 * s.oq_cap; /* generous flush limit: the bound is measured here */
    if (dsp_resampler_process(&s, x, n_in, &used, y, n_out, &got) != DSP_OK || used != n_in ||
        dsp_resampler_flush(&s, y + got, n_out - got + 1, &more) != DSP_OK ||
        got + more != n_out) {
        status = dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: soxr failed on an impulse");
        goto done;
    }
    size_t peak = 0;
    for (size_t k = 1; k < n_out; k++)
        if (fabsf(y[k]) > fabsf(y[peak]))
            peak = k;
    r->delay_frames = (int)peak;
    /* Frames held back just before a block completes: what soxr held after
     * a drain plus one block's worth. */
    r->lookahead_out = s.held_max + (size_t)ceil(BLOCK_FRAMES * r->ratio) + 2;
done:
    soxr_delete(s.sx);
    free(s.blk);
    free(s.oq);
    free(x);
    free(y);
    return status;
}

int dsp_resampler_create(dsp_resampler **out, int in_rate_hz, int out_rate_hz,
                         int channels, dsp_resample_quality quality, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "resampler: out pointer is NULL");
    *out = NULL;
    if (in_rate_hz <= 0 || in_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "resampler: input sample rate %d Hz is out of range 1..%d",
                             in_rate_hz, DSP_RESAMPLE_MAX_RATE_HZ);
    if (out_rate_hz <= 0 || out_rate_hz > DSP_RESAMPLE_MAX_RATE_HZ)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "resampler: output sample rate %d Hz is out of range 1..%d",
                             out_rate_hz, DSP_RESAMPLE_MAX_RATE_HZ);
    if ((int64_t)in_rate_hz > (int64_t)out_rate_hz * DSP_RESAMPLE_MAX_RATIO ||
        (int64_t)out_rate_hz > (int64_t)in_rate_hz * DSP_RESAMPLE_MAX_RATIO)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "resampler: ratio %d Hz -> %d Hz exceeds 1:%d",
                             in_rate_hz, out_rate_hz, DSP_RESAMPLE_MAX_RATIO);
    if (channels <= 0 || channels > DSP_RESAMPLE_MAX_CHANNELS)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "resampler: channel count %d is out of range 1..%d",
                             channels, DSP_RESAMPLE_MAX_CHANNELS);
    if ((int)quality < DSP_RESAMPLE_BEST || (int)quality > DSP_RESAMPLE_FASTEST)
        return dsp_error_set(err, DSP_ERR_INVALID, "resampler: unknown quality %d", (int)quality);

    dsp_resampler *r = calloc(1, sizeof *r);
    if (!r)
        return dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
    r->in_rate_hz = in_rate_hz;
    r->out_rate_hz = out_rate_hz;
    r->channels = channels;
    r->quality = (int)quality;
    r->ratio = (double)out_rate_hz / (double)in_rate_hz;
    uint64_t period = (uint64_t)in_rate_hz / gcd_u64((uint64_t)in_rate_hz, (uint64_t)out_rate_hz);
    r->prime_in = (PRIME_MIN_FRAMES + period - 1) / period * period;
    r->prime_out = dsp_resample_output_frames(r->prime_in, in_rate_hz, out_rate_hz);
    /* One block's output and a DFT burst, usually; more just takes another
     * drain call. */
    r->oq_cap = (size_t)ceil(BLOCK_FRAMES * r->ratio) + 4096;
    r->blk = calloc((size_t)BLOCK_FRAMES * (size_t)channels, sizeof *r->blk);
    r->oq = calloc(r->oq_cap * (size_t)channels, sizeof *r->oq);
    if (!r->blk || !r->oq) {
        dsp_resampler_destroy(r);
        return dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
    }
    int status = measure(r, err);
    if (status == DSP_OK)
        status = build(r, err);
    if (status != DSP_OK) {
        dsp_resampler_destroy(r);
        return status;
    }
    *out = r;
    return DSP_OK;
}

void dsp_resampler_destroy(dsp_resampler *r)
{
    if (!r)
        return;
    soxr_delete(r->sx);
    free(r->blk);
    free(r->oq);
    free(r);
}

int dsp_resampler_process(dsp_resampler *r, const float *in, size_t in_frames,
                          size_t *in_used, float *out, size_t out_cap_frames,
                          size_t *out_frames)
{
    if (in_used) *in_used = 0;
    if (out_frames) *out_frames = 0;
    if (!r || !in_used || !out_frames || (in_frames && !in) || (out_cap_frames && !out) ||
        r->flushed)
        return DSP_ERR_INVALID;
    if (!r->sx)
        return DSP_ERR_LIBRARY; /* a failed reset */
    size_t used = 0, made = 0;
    int st = push(r, in, in_frames, &used, out, out_cap_frames, &made);
    r->n_in += used;
    r->n_out += made;
    *in_used = used;
    *out_frames = made;
    return st;
}

int dsp_resampler_flush(dsp_resampler *r, float *out, size_t out_cap_frames,
                        size_t *out_frames)
{
    if (out_frames) *out_frames = 0;
    if (!r || !out_frames || (out_cap_frames && !out))
        return DSP_ERR_INVALID;
    if (!r->sx)
        return DSP_ERR_LIBRARY;
    r->flushed = 1;
    uint64_t target = dsp_resample_output_frames(r->n_in, r->in_rate_hz, r->out_rate_hz);
    size_t made = 0;
    /* Zero blocks needed to push the whole look-ahead out, with slack (soxr's
     * steepest filters at large upsampling ratios, e.g. 16 -> 300 kHz best,
     * take over 23 blocks before their first output); more blocks than that
     * without output means soxr misbehaves. */
    unsigned idle = 0, idle_max = 256 + (unsigned)((double)(r->lookahead_out + (size_t)r->delay_frames) /
                                                   (r->ratio * BLOCK_FRAMES));
    while (r->n_out < target && made < out_cap_frames) {
        uint64_t owed = target - r->n_out;
        size_t cap = min_sz(out_cap_frames - made, owed < (uint64_t)SIZE_MAX ? (size_t)owed : SIZE_MAX);
        size_t used = 0, k = 0;
        /* With nothing pending, push takes zeros up to the end of the block. */
        int st = push(r, NULL, BLOCK_FRAMES - r->blk_fill, &used, out + made * (size_t)r->channels,
                      cap, &k);
        if (st != DSP_OK)
            return st;
        made += k;
        r->n_out += k;
        if (k == 0 && ++idle > idle_max)
            return DSP_ERR_LIBRARY;
    }
    *out_frames = made;
    return DSP_OK;
}

int dsp_resampler_reset(dsp_resampler *r)
{
    if (!r)
        return DSP_ERR_INVALID;
    return build(r, NULL) == DSP_OK ? DSP_OK : DSP_ERR_LIBRARY;
}

int dsp_resampler_delay_frames(const dsp_resampler *r) { return r ? r->delay_frames : 0; }
uint64_t dsp_resampler_frames_in(const dsp_resampler *r) { return r ? r->n_in : 0; }
uint64_t dsp_resampler_frames_out(const dsp_resampler *r) { return r ? r->n_out : 0; }

size_t dsp_resampler_max_out_frames(const dsp_resampler *r, size_t in_frames)
{
    if (!r)
        return 0;
    double n = ceil((double)in_frames * r->ratio) + (double)r->lookahead_out + 1.0;
    return n >= (double)SIZE_MAX ? SIZE_MAX : (size_t)n;
}
