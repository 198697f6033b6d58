/* SPDX-License-Identifier: MIT */
/* train/pitch_ext.c — the daemon's own pitch features (dsp/src/pitch.c) for
 * whole training clips, called from train/pitch_ext.py through ctypes.
 *
 * ssm_train_pitch(n_clips, length, x, out, …) frames each clip as the daemon's
 * framer does (frame m holds samples [(m+1)·hop − n_fft, (m+1)·hop), zeros
 * before the start and after the end; M = length/hop + 1 frames: model.stft's
 * frames), takes each frame's spectrum with the same analysis window and
 * calls dsp_pitch_frame in order, so the features are the bits ssmd computes
 * for the same float32 samples.
 *   x   {n_clips, length} float32 (length a multiple of hop)
 *   out {n_clips, M, n_edges} float32
 * Returns 0, or −1 with a message in err {256} when dsp/ refuses the
 * configuration.  Clips are independent (each starts from a zero history).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/pitch.h"
#include "dsp/stft.h"

int ssm_train_pitch(int n_clips, long length, const float *x, float *out, int n_fft, int hop, int lag_min,
                    int lag_max, const int *edges, int n_edges, char *err)
{
    dsp_error de = { 0 };
    dsp_stft *st = NULL, *scratch = NULL;
    dsp_pitch *p = NULL;
    float *frame = NULL, *spec = NULL;
    int rc = -1;
    const dsp_stft_config sc = { .n_fft = (size_t)n_fft, .hop_samples = (size_t)hop,
                                 .analysis_window = DSP_WINDOW_SQRT_HANN, .synthesis_window = DSP_WINDOW_NONE };
    const dsp_pitch_config pc = { .n_fft = (size_t)n_fft, .hop_samples = (size_t)hop, .lag_min = lag_min,
                                  .lag_max = lag_max, .band_edges = edges, .n_edges = (size_t)n_edges };
    if (length % hop != 0) {
        snprintf(err, 256, "clip length %ld is not a multiple of the hop %d", length, hop);
        return -1;
    }
    if (dsp_stft_create(&st, &sc, &de) != DSP_OK || dsp_stft_create(&scratch, &sc, &de) != DSP_OK ||
        dsp_pitch_create(&p, &pc, &de) != DSP_OK) {
        snprintf(err, 256, "%s", de.msg);
        goto done;
    }
    frame = malloc(sizeof *frame * (size_t)n_fft);
    spec = malloc(sizeof *spec * 2 * (size_t)(n_fft / 2 + 1));
    if (!frame || !spec) {
        snprintf(err, 256, "out of memory");
        goto done;
    }
    const long n_frames = length / hop + 1;
    for (int c = 0; c < n_clips; c++) {
        const float *xc = x + (size_t)c * (size_t)length;
        dsp_pitch_reset(p);
        for (long m = 0; m < n_frames; m++) {
            const long first = (m + 1) * hop - n_fft;
            for (int i = 0; i < n_fft; i++) {
                const long k = first + i;
                frame[i] = k >= 0 && k < length ? xc[k] : 0.0f;
            }
            dsp_stft_forward(st, spec, frame);
            dsp_pitch_frame(p, scratch, frame, spec, out + ((size_t)c * (size_t)n_frames + (size_t)m) * (size_t)n_edges);
        }
    }
    rc = 0;
done:
    free(frame);
    free(spec);
    dsp_pitch_destroy(p);
    dsp_stft_destroy(scratch);
    dsp_stft_destroy(st);
    return rc;
}
