/* SPDX-License-Identifier: MIT */
/* In-process reference for the daemon's integration tests: runs an audio
 * file (mono downmix) through ssmd_stream + ssm_step exactly as the file job
 * does, and writes the aligned output as raw little-endian float32.
 * Usage: stream_run MODEL IN RAW_OUT */
#include <stdio.h>
#include <stdlib.h>

#include "dsp/audio_file.h"
#include "frontend.h"
#include "kernels/ssm_kernels.h"
#include "stream.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL IN RAW_OUT\n", argv[0]);
        return 2;
    }
    ssm_fp_flush_denormals(); /* as the daemon's loop thread */
    ssm_model *m = NULL;
    ssm_error me = { 0 };
    if (ssm_model_load(argv[1], NULL, &m, &me)) { fprintf(stderr, "%s\n", me.msg); return 1; }
    ssmd_frontend fe;
    char err[512];
    if (ssmd_frontend_from_model(&fe, m, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    dsp_error de = { 0 };
    dsp_melbank *mb = NULL;
    if (fe.features == SSMD_FEATURES_LOG_MEL) {
        dsp_mel_config mc = { .sample_rate_hz = fe.sample_rate_hz, .n_fft = (size_t)fe.n_fft,
                              .n_mels = (size_t)fe.n_mels, .fmin_hz = fe.fmin_hz, .fmax_hz = fe.fmax_hz };
        dsp_melbank_create(&mb, &mc, &de);
    }
    dsp_audio_reader *r = NULL;
    if (dsp_audio_reader_open(&r, argv[2], NULL, &de)) { fprintf(stderr, "%s\n", de.msg); return 1; }
    const dsp_audio_info *info = dsp_audio_reader_info(r);
    ssmd_stream_config sc = { .in_rate_hz = info->sample_rate_hz, .align_output = true,
                              .quality = DSP_RESAMPLE_BEST };
    ssmd_stream *s = ssmd_stream_create(m, &fe, mb, &sc, err, sizeof err);
    ssm_runner *run = NULL;
    if (!s || ssm_runner_create(m, 1, 1, 0, &run, &me)) { fprintf(stderr, "setup failed\n"); return 1; }
    FILE *out = fopen(argv[3], "wb");
    size_t nch = (size_t)info->channels;
    float *buf = malloc(4096 * nch * sizeof(float)), *mono = malloc(4096 * sizeof(float));
    float *row = malloc((size_t)fe.n_features * sizeof(float)), *mask = malloc((size_t)fe.n_bins * sizeof(float));
    float y[4096];
    ssm_state *st = ssmd_stream_state(s);
    ssm_outputs o = { .mask = (ssm_model_heads(m) & SSM_MODEL_HEAD_MASK) ? mask : NULL };
    int finished = 0;
    for (;;) {
        size_t got = 0, pos = 0;
        if (!finished) {
            dsp_audio_reader_read(r, buf, 4096, &got, &de);
            for (size_t i = 0; i < got; i++) {
                float acc = 0;
                for (size_t k = 0; k < nch; k++) acc += buf[i * nch + k];
                mono[i] = acc / (float)nch;
            }
            if (got == 0) { ssmd_stream_finish(s); finished = 1; }
        }
        do {
            if (pos < got) pos += ssmd_stream_push(s, mono + pos, got - pos);
            while (ssmd_stream_prepare(s, row)) {
                ssm_step(run, &st, 1, row, NULL, &o, NULL);
                ssmd_stream_complete(s, o.mask);
                size_t n;
                while ((n = ssmd_stream_pop(s, y, 4096)) > 0) fwrite(y, sizeof(float), n, out);
            }
            size_t n;
            while ((n = ssmd_stream_pop(s, y, 4096)) > 0) fwrite(y, sizeof(float), n, out);
        } while (pos < got);
        if (finished && ssmd_stream_done(s)) break;
    }
    fclose(out);
    free(buf); free(mono); free(row); free(mask);
    ssm_runner_destroy(run);
    ssmd_stream_destroy(s);
    dsp_audio_reader_close(r);
    dsp_melbank_destroy(mb);
    ssm_model_free(m);
    return 0;
}
