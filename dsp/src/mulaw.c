/* SPDX-License-Identifier: MIT */
/* 8-bit mu-law as torchaudio.functional.mu_law_encoding/decoding (float32
 * arithmetic, like torch on a float tensor).  See dsp/mulaw.h. */
#include "dsp/mulaw.h"

#include <math.h>

#define MU 255.0f

void dsp_mulaw_encode(uint8_t *codes_out, const float *x, size_t n)
{
    const float log1p_mu = log1pf(MU);
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!(v >= -1.0f)) /* also NaN → handled below */
            v = isnan(v) ? 0.0f : -1.0f;
        if (v > 1.0f)
            v = 1.0f;
        const float a = fabsf(v);
        const float mag = log1pf(MU * a) / log1p_mu;
        const float y = v < 0.0f ? -mag : mag;
        int code = (int)((y + 1.0f) / 2.0f * MU + 0.5f);
        codes_out[i] = (uint8_t)(code < 0 ? 0 : code > 255 ? 255 : code);
    }
}

void dsp_mulaw_decode(float *x_out, const uint8_t *codes, size_t n)
{
    const float log1p_mu = log1pf(MU);
    for (size_t i = 0; i < n; i++) {
        const float y = (float)codes[i] / MU * 2.0f - 1.0f;
        const float mag = (expf(fabsf(y) * log1p_mu) - 1.0f) / MU;
        x_out[i] = y < 0.0f ? -mag : mag;
    }
}
