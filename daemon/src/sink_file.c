/* SPDX-License-Identifier: MIT */
/* The output-file sink (--output): the processed audio of one stream, or of
 * one stream per input channel, appended to one file libsndfile writes.
 *
 * Design note.  A split file input (stereo in) is one stream per channel,
 * each with its own model state; their outputs are interleaved back into a
 * file with the input's channel count.  The streams are fed the same input
 * at the same time and the engine steps them in one batch, so their outputs
 * advance together, but not in the same call: each channel keeps what it
 * emitted until every channel has that much, then those frames are written.
 * The lag is at most one engine iteration plus the end-of-stream tail, far
 * below the per-channel buffer (SSMD_PENDING_SECONDS of audio); a channel
 * running beyond it would be a bug and fails the run with one line.
 *
 * Sample format: --output-format (ssmd/output_format.h, the same default as
 * ssm-push and ssm-sub), not the input's: a float input gives pcm16 output
 * unless float is asked for.
 *
 * Ownership: the mux belongs to its channels' streams once attached; finish
 * of the last channel closes the writer (a valid header), destroy of the
 * last channel deletes a file that was never finished (a failed run).
 * Loop thread; the write is file I/O (libsndfile); nothing allocates after
 * open. */
#include "srv.h"
#include "ssmd/output_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mux_channel {
    ssmd_file_mux *m;
    int k;
    bool finished;
    float *buf;      /* {cap} emitted, not yet written */
    size_t len;
} mux_channel;

struct ssmd_file_mux {
    dsp_audio_writer *w;
    int channels, refs, n_finished;
    bool failed, clips; /* clips: an integer encoding, |x| > 1 is clipped */
    size_t cap;      /* per-channel buffer, samples */
    float *inter;    /* {SSMD_OUT_CHUNK * channels} interleaving scratch */
    mux_channel ch[];
};

static void mux_free(ssmd_file_mux *m)
{
    for (int k = 0; k < m->channels; k++) free(m->ch[k].buf);
    free(m->inter);
    free(m);
}

int ssmd_file_mux_open(ssmd_file_mux **out, const char *path, const char *format_name, const dsp_audio_info *in,
                       int channels, int64_t expected_frames)
{
    *out = NULL;
    dsp_error de = { 0 };
    ssmd_output_format of = SSMD_OUTPUT_FORMAT_DEFAULT;
    if (format_name && format_name[0] && ssmd_output_format_parse(format_name, &of) != 0) {
        fprintf(stderr, "ssmd: --output-format: expected one of " SSMD_OUTPUT_FORMAT_CHOICES ", got '%s'\n",
                format_name);
        return -1;
    }
    dsp_audio_container cont = dsp_audio_container_from_path(path);
    dsp_audio_write_format wf = { .container = DSP_AUDIO_CONTAINER_AUTO,
                                  .subtype = ssmd_output_format_subtype(of, cont),
                                  .sample_rate_hz = in->sample_rate_hz, .channels = channels,
                                  .vbr_quality = -1, .expected_frames = expected_frames };
    ssmd_file_mux *m = calloc(1, sizeof *m + (size_t)channels * sizeof(mux_channel));
    if (!m) {
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    m->channels = channels;
    m->cap = (size_t)in->sample_rate_hz * SSMD_PENDING_SECONDS + 4 * (size_t)SSMD_OUT_CHUNK;
    bool oom = false;
    if (channels > 1) {
        m->inter = malloc((size_t)SSMD_OUT_CHUNK * (size_t)channels * sizeof(float));
        oom = !m->inter;
        for (int k = 0; k < channels && !oom; k++) {
            m->ch[k].buf = malloc(m->cap * sizeof(float));
            oom = !m->ch[k].buf;
        }
    }
    for (int k = 0; k < channels; k++) {
        m->ch[k].m = m;
        m->ch[k].k = k;
    }
    if (oom) {
        mux_free(m);
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    if (dsp_audio_writer_open(&m->w, path, &wf, &de) != DSP_OK) {
        fprintf(stderr, "ssmd: %s\n", de.msg);
        mux_free(m);
        return -1;
    }
    m->clips = wf.subtype != DSP_AUDIO_SUBTYPE_FLOAT && wf.subtype != DSP_AUDIO_SUBTYPE_DEFAULT;
    *out = m;
    return 0;
}

void *ssmd_file_mux_channel(ssmd_file_mux *m, int k)
{
    m->refs++;
    return &m->ch[k];
}

void ssmd_file_mux_discard(ssmd_file_mux *m)
{
    if (!m) return;
    dsp_audio_writer_abort(m->w);
    mux_free(m);
}

static int mux_write(ssmd_file_mux *m, const float *x, size_t n)
{
    dsp_error de = { 0 };
    if (dsp_audio_writer_write(m->w, x, n, &de) != DSP_OK) {
        ssmd_log(SSMD_LOG_ERROR, "%s", de.msg);
        m->failed = true;
        return -1;
    }
    return 0;
}

/* Writes the frames every channel has, interleaved. */
static int mux_flush(ssmd_file_mux *m)
{
    size_t n = SIZE_MAX;
    for (int k = 0; k < m->channels; k++)
        if (m->ch[k].len < n) n = m->ch[k].len;
    size_t nch = (size_t)m->channels;
    for (size_t done = 0; done < n;) {
        size_t part = n - done < SSMD_OUT_CHUNK ? n - done : SSMD_OUT_CHUNK;
        for (size_t i = 0; i < part; i++)
            for (size_t k = 0; k < nch; k++) m->inter[i * nch + k] = m->ch[k].buf[done + i];
        if (mux_write(m, m->inter, part) != 0) return -1;
        done += part;
    }
    for (int k = 0; k < m->channels && n > 0; k++) {
        mux_channel *c = &m->ch[k];
        memmove(c->buf, c->buf + n, (c->len - n) * sizeof(float));
        c->len -= n;
    }
    return 0;
}

static int file_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    (void)s;
    (void)flags;
    mux_channel *c = self;
    if (!c || n == 0) return 0;
    ssmd_file_mux *m = c->m;
    st->out_file_int = m->clips;
    if (m->failed) return -1;
    if (m->channels == 1) return mux_write(m, x, n);
    if (n > m->cap - c->len) {
        ssmd_log(SSMD_LOG_ERROR, "%s: channel %d ran %zu samples ahead of the others; output abandoned",
                 st->name, c->k, c->len + n);
        m->failed = true;
        return -1;
    }
    memcpy(c->buf + c->len, x, n * sizeof(float));
    c->len += n;
    return mux_flush(m);
}

static int file_finish(ssmd_srv *s, ssmd_srv_stream *st, void *self)
{
    (void)s;
    mux_channel *c = self;
    if (!c || c->finished) return 0;
    ssmd_file_mux *m = c->m;
    c->finished = true;
    if (++m->n_finished < m->channels) return 0;
    for (int k = 0; k < m->channels; k++)
        if (m->ch[k].len != m->ch[0].len && !m->failed) {
            ssmd_log(SSMD_LOG_ERROR, "%s: the channels ended with different lengths; output abandoned", st->name);
            m->failed = true;
        }
    if (m->failed) return -1; /* destroy deletes the file */
    dsp_error de = { 0 };
    dsp_audio_writer *w = m->w;
    m->w = NULL;
    if (dsp_audio_writer_close(w, &de) != DSP_OK) {
        ssmd_log(SSMD_LOG_ERROR, "%s", de.msg);
        return -1;
    }
    return 0;
}

static void file_destroy(void *self)
{
    mux_channel *c = self;
    if (!c) return;
    ssmd_file_mux *m = c->m;
    if (--m->refs > 0) return;
    if (m->w) dsp_audio_writer_abort(m->w); /* never finished: nothing half-written stays */
    mux_free(m);
}

const ssmd_sink_ops ssmd_sink_file = { .name = "file", .audio = file_audio, .finish = file_finish,
                                       .destroy = file_destroy };
