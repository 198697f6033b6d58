/* Streaming resampler on libsamplerate (see dsp/resample.h for the contract).
 *
 * Design note.  libsamplerate's sinc converters keep the filter centred on the
 * output instant: they prime their history with half a filter of zeros and
 * hold output back until enough look-ahead input has arrived.  So the stream
 * is already aligned; what remains is (a) proving it, which create does by
 * sending an impulse through a scratch converter and discarding as many
 * leading frames as the peak is late (0 for every sinc converter we know of),
 * and (b) making the length exact: the flush feeds blocks of zeros with
 * end_of_input left at 0 (so libsamplerate never pads on its own) and limits
 * output_frames so that generation stops exactly at round(n_in * ratio).
 * src_process() never allocates, so neither does anything here after create.
 */
#include "dsp/resample.h"

#include <limits.h>
#include <math.h>
#include <samplerate.h>
#include <stdlib.h>
#include <string.h>

/* Zeros fed per src_process() call during flush, in frames. */
#define ZERO_BLOCK_FRAMES 1024

struct dsp_resampler {
    SRC_STATE *src;
    int in_rate_hz, out_rate_hz, channels, quality;
    double ratio;              /* out / in, libsamplerate's src_ratio */
    int delay_frames;          /* leading output frames to discard */
    size_t lookahead_out;      /* output frames held back for look-ahead (bound) */
    uint64_t n_in, n_out;      /* frames consumed / delivered since reset */
    uint64_t discard_left;
    int flushed;
    float *zeros;              /* ZERO_BLOCK_FRAMES * channels zeros */
};

static const int src_types[] = {
    [DSP_RESAMPLE_BEST]    = SRC_SINC_BEST_QUALITY,
    [DSP_RESAMPLE_MEDIUM]  = SRC_SINC_MEDIUM_QUALITY,
    [DSP_RESAMPLE_FASTEST] = SRC_SINC_FASTEST,
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

/* Runs `in_frames` of `in` (or zeros when in is NULL) through a scratch mono
 * converter and returns the frames produced; out must hold out_cap frames. */
static long scratch_run(SRC_STATE *s, double ratio, const float *in, long in_frames,
                        float *out, long out_cap, int end_of_input, int *err)
{
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = in;
    d.input_frames = in_frames;
    d.data_out = out;
    d.output_frames = out_cap;
    d.end_of_input = end_of_input;
    d.src_ratio = ratio;
    *err = src_process(s, &d);
    return d.output_frames_gen;
}

/* Measures the converter's delay (argmax of the impulse response) and its
 * look-ahead (output frames still held back after L input frames). */
static int measure(dsp_resampler *r, dsp_error *err)
{
    int e = 0;
    SRC_STATE *s = src_new(src_types[r->quality], 1, &e);
    if (!s)
        return dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: src_new: %s", src_strerror(e));
    /* Enough input for 64 output frames plus the longest filter (best
     * quality: ~143 input frames each side at ratio >= 1, scaled by 1/ratio
     * when downsampling). */
    double ratio = r->ratio;
    long n_in = (long)ceil(64.0 / ratio) + (long)ceil(400.0 / (ratio < 1.0 ? ratio : 1.0));
    long n_out = (long)ceil((double)n_in * ratio) + 64;
    float *x = calloc((size_t)n_in, sizeof *x);
    float *y = calloc((size_t)n_out, sizeof *y);
    int status = DSP_OK;
    if (!x || !y) {
        status = dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
        goto done;
    }
    long got = scratch_run(s, ratio, x, n_in, y, n_out, 0, &e);
    if (e) goto lib_error;
    uint64_t want = dsp_resample_output_frames((uint64_t)n_in, r->in_rate_hz, r->out_rate_hz);
    r->lookahead_out = (size_t)(want > (uint64_t)got ? want - (uint64_t)got : 0) + 2;

    src_reset(s);
    x[0] = 1.0f;
    got = scratch_run(s, ratio, x, n_in, y, n_out, 1, &e);
    if (e) goto lib_error;
    long peak = 0;
    for (long k = 1; k < got; k++)
        if (fabsf(y[k]) > fabsf(y[peak]))
            peak = k;
    r->delay_frames = (int)peak;
    goto done;
lib_error:
    status = dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: src_process: %s", src_strerror(e));
done:
    free(x);
    free(y);
    src_delete(s);
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
    double ratio = (double)out_rate_hz / (double)in_rate_hz;
    if (!src_is_valid_ratio(ratio))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "resampler: libsamplerate refuses ratio %g", ratio);

    dsp_resampler *r = calloc(1, sizeof *r);
    if (!r)
        return dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
    r->in_rate_hz = in_rate_hz;
    r->out_rate_hz = out_rate_hz;
    r->channels = channels;
    r->quality = (int)quality;
    r->ratio = ratio;
    r->zeros = calloc((size_t)ZERO_BLOCK_FRAMES * (size_t)channels, sizeof *r->zeros);
    if (!r->zeros) {
        dsp_resampler_destroy(r);
        return dsp_error_set(err, DSP_ERR_NOMEM, "resampler: out of memory");
    }
    int e = 0;
    r->src = src_new(src_types[quality], channels, &e);
    if (!r->src) {
        dsp_resampler_destroy(r);
        return dsp_error_set(err, DSP_ERR_LIBRARY, "resampler: src_new: %s", src_strerror(e));
    }
    int status = measure(r, err);
    if (status != DSP_OK) {
        dsp_resampler_destroy(r);
        return status;
    }
    r->discard_left = (uint64_t)r->delay_frames;
    *out = r;
    return DSP_OK;
}

void dsp_resampler_destroy(dsp_resampler *r)
{
    if (!r)
        return;
    if (r->src)
        src_delete(r->src);
    free(r->zeros);
    free(r);
}

/* One src_process() call on a slice; discards leading frames still owed and
 * returns the frames kept in out (written from out[0]). */
static int run_slice(dsp_resampler *r, const float *in, size_t in_n, size_t *used,
                     float *out, size_t out_n, size_t *kept)
{
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = in;
    d.input_frames = (long)in_n;
    d.data_out = out;
    d.output_frames = (long)out_n;
    d.end_of_input = 0;
    d.src_ratio = r->ratio;
    if (src_process(r->src, &d) != 0)
        return DSP_ERR_LIBRARY;
    size_t gen = (size_t)d.output_frames_gen;
    size_t drop = (size_t)(r->discard_left < gen ? r->discard_left : gen);
    if (drop) {
        size_t ch = (size_t)r->channels;
        memmove(out, out + drop * ch, (gen - drop) * ch * sizeof *out);
        r->discard_left -= drop;
    }
    *used = (size_t)d.input_frames_used;
    *kept = gen - drop;
    return DSP_OK;
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
    size_t ch = (size_t)r->channels;
    size_t used = 0, made = 0;
    /* libsamplerate counts in `long` and multiplies by channels inside. */
    size_t slice = min_sz(DSP_RESAMPLE_SLICE_FRAMES, (size_t)LONG_MAX / ch);
    while (made < out_cap_frames) {
        size_t in_n = min_sz(in_frames - used, slice);
        size_t out_n = min_sz(out_cap_frames - made, slice);
        size_t u = 0, k = 0;
        int st = run_slice(r, in_n ? in + used * ch : r->zeros, in_n, &u,
                           out + made * ch, out_n, &k);
        if (st != DSP_OK)
            return st;
        used += u;
        made += k;
        r->n_in += u;
        r->n_out += k;
        if (u == 0 && k == 0)
            break;
        if (used == in_frames && u == in_n && made < out_cap_frames && r->discard_left == 0)
            break; /* input exhausted and not output-bound: nothing more to get */
    }
    *in_used = used;
    *out_frames = made;
    return DSP_OK;
}

int dsp_resampler_flush(dsp_resampler *r, float *out, size_t out_cap_frames,
                        size_t *out_frames)
{
    if (out_frames) *out_frames = 0;
    if (!r || !out_frames || (out_cap_frames && !out))
        return DSP_ERR_INVALID;
    r->flushed = 1;
    uint64_t target = dsp_resample_output_frames(r->n_in, r->in_rate_hz, r->out_rate_hz);
    size_t ch = (size_t)r->channels;
    size_t made = 0;
    /* Zero blocks needed to push the whole look-ahead out, with slack; more
     * calls than that without output means libsamplerate misbehaves. */
    unsigned idle = 0, idle_max = 16 + (unsigned)((double)(r->lookahead_out + r->delay_frames + 16) /
                                                   (r->ratio * ZERO_BLOCK_FRAMES));
    while (r->n_out < target && made < out_cap_frames) {
        uint64_t owed = target - r->n_out;
        size_t out_n = min_sz(min_sz(out_cap_frames - made, DSP_RESAMPLE_SLICE_FRAMES),
                              owed < (uint64_t)SIZE_MAX ? (size_t)owed : SIZE_MAX);
        size_t u = 0, k = 0;
        int st = run_slice(r, r->zeros, ZERO_BLOCK_FRAMES, &u, out + made * ch, out_n, &k);
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
    r->n_in = r->n_out = 0;
    r->discard_left = (uint64_t)r->delay_frames;
    r->flushed = 0;
    return src_reset(r->src) == 0 ? DSP_OK : DSP_ERR_LIBRARY;
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
