/* SPDX-License-Identifier: MIT */
/* ssmd output sample formats: the one definition of --output-format, shared
 * by the daemon (the file job's and the generator's --output) and the
 * clients (ssm-push --output, ssm-sub --output), so the choices and the
 * default cannot drift apart.
 *
 *   pcm16   16-bit integer PCM (the default): every reader opens it, Python's
 *           `wave` module included; samples beyond full scale are clipped
 *           (and counted by the writer)
 *   pcm24   24-bit integer PCM
 *   float   32-bit IEEE float: bit-exact model output, keeps |x| > 1;
 *           WAV, RF64, W64, AIFF, AU and RAW hold it, FLAC does not
 *
 * Lossy containers (.ogg, .opus, .mp3) are encoded by their codec whatever
 * the option says.
 *
 * Header-only (static inline; needs dsp/audio_file.h for the subtype
 * mapping).  Thread-safety: every function here is pure and re-entrant.
 */
#ifndef SSMD_OUTPUT_FORMAT_H
#define SSMD_OUTPUT_FORMAT_H

#include <string.h>

#include "dsp/audio_file.h"

/** Sample formats an output file can be written in. */
typedef enum ssmd_output_format {
    SSMD_OUTPUT_FORMAT_PCM16 = 0,
    SSMD_OUTPUT_FORMAT_PCM24,
    SSMD_OUTPUT_FORMAT_FLOAT,
} ssmd_output_format;

/** The default of ssmd, ssm-push and ssm-sub, and its name. */
#define SSMD_OUTPUT_FORMAT_DEFAULT SSMD_OUTPUT_FORMAT_PCM16
#define SSMD_OUTPUT_FORMAT_DEFAULT_NAME "pcm16"
/** The accepted names, '|'-separated (the daemon's option table form). */
#define SSMD_OUTPUT_FORMAT_CHOICES "pcm16|pcm24|float"

/** The name of a format ("pcm16", "pcm24", "float"); NULL for a value out of
 *  range.  The returned string is static. */
static inline const char *ssmd_output_format_name(ssmd_output_format f)
{
    switch (f) {
    case SSMD_OUTPUT_FORMAT_PCM16: return "pcm16";
    case SSMD_OUTPUT_FORMAT_PCM24: return "pcm24";
    case SSMD_OUTPUT_FORMAT_FLOAT: return "float";
    }
    return NULL;
}

/** Parses a name (exact, lower case) into *out.  Returns 0, or -1 (and leaves
 *  *out alone) for NULL or an unknown name: the caller reports it with
 *  SSMD_OUTPUT_FORMAT_CHOICES. */
static inline int ssmd_output_format_parse(const char *name, ssmd_output_format *out)
{
    static const ssmd_output_format all[] = { SSMD_OUTPUT_FORMAT_PCM16, SSMD_OUTPUT_FORMAT_PCM24,
                                              SSMD_OUTPUT_FORMAT_FLOAT };
    if (!name || !out) return -1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, ssmd_output_format_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/** The writer subtype for format f in the container a path names
 *  (dsp_audio_container_from_path): DEFAULT (the codec) for Ogg/Vorbis,
 *  Ogg/Opus and MP3; otherwise PCM_16, PCM_24 or FLOAT.  A container that
 *  cannot hold the result (float in FLAC) is refused by
 *  dsp_audio_writer_open() with one line naming both. */
static inline dsp_audio_subtype ssmd_output_format_subtype(ssmd_output_format f, dsp_audio_container c)
{
    if (c == DSP_AUDIO_CONTAINER_OGG_VORBIS || c == DSP_AUDIO_CONTAINER_OGG_OPUS || c == DSP_AUDIO_CONTAINER_MP3)
        return DSP_AUDIO_SUBTYPE_DEFAULT;
    switch (f) {
    case SSMD_OUTPUT_FORMAT_PCM24: return DSP_AUDIO_SUBTYPE_PCM_24;
    case SSMD_OUTPUT_FORMAT_FLOAT: return DSP_AUDIO_SUBTYPE_FLOAT;
    case SSMD_OUTPUT_FORMAT_PCM16: break;
    }
    return DSP_AUDIO_SUBTYPE_PCM_16;
}

#endif /* SSMD_OUTPUT_FORMAT_H */
