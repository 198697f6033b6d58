/* SPDX-License-Identifier: MIT */
/* dsp/mulaw.h — 8-bit mu-law companding (μ = 255), the token alphabet of the
 * generative (lm) head.
 *
 * Convention: torchaudio.functional.mu_law_encoding / mu_law_decoding with
 * quantization_channels = 256, as used by the SaShiMi and Mamba audio
 * experiments, computed in float32 like torch does:
 *   encode  y = sign(x)·ln(1 + μ|x|)/ln(1 + μ);  code = (int)((y + 1)/2·μ + 0.5)
 *           (truncation toward zero; the result is in [0, 255])
 *   decode  y = code/μ·2 − 1;  x = sign(y)·(exp(|y|·ln(1 + μ)) − 1)/μ
 * Inputs outside [−1, 1] are clamped to it first; NaN encodes as 0.0 would
 * (code 128).  decode(encode(x)) is within half a quantisation step of x.
 *
 * Pure functions: caller-owned buffers (output first, counts in elements),
 * no allocation; thread-safe and real-time safe.
 */
#ifndef DSP_MULAW_H
#define DSP_MULAW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Number of mu-law codes (quantization_channels). */
#define DSP_MULAW_CODES 256

/** codes_out[i] = mu-law code of x[i] in [0, 255], for i < n. */
void dsp_mulaw_encode(uint8_t *codes_out, const float *x, size_t n);

/** x_out[i] = sample value of codes[i] (in [−1, 1] up to one float
 *  rounding, as torch), for i < n. */
void dsp_mulaw_decode(float *x_out, const uint8_t *codes, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DSP_MULAW_H */
