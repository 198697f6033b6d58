/* The output-file sink (--output): a stream's processed audio appended to a
 * file libsndfile writes.  self: the dsp_audio_writer, owned by the sink once
 * attached: finish closes it (a valid header), destroy of an unfinished
 * writer deletes the file so a failed run leaves nothing half-written.
 * Loop thread; the write is file I/O (buffered by libsndfile). */
#include "srv.h"

#include <stdio.h>

int ssmd_sink_file_open(dsp_audio_writer **out, const char *path, const dsp_audio_info *in)
{
    dsp_error de = { 0 };
    dsp_audio_write_format wf = { .container = DSP_AUDIO_CONTAINER_AUTO, .subtype = DSP_AUDIO_SUBTYPE_DEFAULT,
                                  .sample_rate_hz = in->sample_rate_hz, .channels = 1, .vbr_quality = -1 };
    if (in->subtype == DSP_AUDIO_SUBTYPE_FLOAT || in->subtype == DSP_AUDIO_SUBTYPE_DOUBLE)
        wf.subtype = DSP_AUDIO_SUBTYPE_FLOAT;
    else if (in->subtype == DSP_AUDIO_SUBTYPE_PCM_24 || in->subtype == DSP_AUDIO_SUBTYPE_PCM_32)
        wf.subtype = DSP_AUDIO_SUBTYPE_PCM_24;
    if (dsp_audio_writer_open(out, path, &wf, &de) != DSP_OK) {
        wf.subtype = DSP_AUDIO_SUBTYPE_DEFAULT; /* Vorbis/Opus fix their own */
        if (dsp_audio_writer_open(out, path, &wf, &de) != DSP_OK) {
            fprintf(stderr, "ssmd: %s\n", de.msg);
            return -1;
        }
    }
    return 0;
}

static int file_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    (void)s;
    (void)st;
    (void)flags;
    dsp_audio_writer *w = self;
    if (!w || n == 0) return 0;
    dsp_error de = { 0 };
    if (dsp_audio_writer_write(w, x, n, &de) != DSP_OK) {
        ssmd_log(SSMD_LOG_ERROR, "%s", de.msg);
        return -1;
    }
    return 0;
}

static int file_finish(ssmd_srv *s, ssmd_srv_stream *st, void *self)
{
    (void)s;
    dsp_audio_writer *w = self;
    for (int i = 0; i < st->n_sinks; i++) /* closed: destroy has nothing left to abort */
        if (st->sinks[i].self == self) st->sinks[i].self = NULL;
    if (!w) return 0;
    dsp_error de = { 0 };
    if (dsp_audio_writer_close(w, &de) != DSP_OK) {
        ssmd_log(SSMD_LOG_ERROR, "%s", de.msg);
        return -1;
    }
    return 0;
}

static void file_destroy(void *self)
{
    if (self) dsp_audio_writer_abort(self);
}

const ssmd_sink_ops ssmd_sink_file = { .name = "file", .audio = file_audio, .finish = file_finish,
                                       .destroy = file_destroy };
