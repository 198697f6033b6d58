/* SPDX-License-Identifier: MIT */
/* dsp/audio_file.h — streaming audio file reader and writer (libsndfile).
 *
 * Reader: every format libsndfile reads (on Debian 12: WAV, RF64, W64, AIFF,
 * AU, FLAC, Ogg/Vorbis, Ogg/Opus, CAF, ... and headerless RAW described by the
 * caller), any channel count and sample rate, delivered as interleaved float
 * frames in chunks the caller sizes.  Memory is constant for files of any
 * length; frame counts are 64-bit (sf_count_t / uint64_t) so files over 4 GiB
 * work.
 * Writer: WAV (plain RIFF WAVE_FORMAT_PCM / IEEE_FLOAT when the caller says
 * the length fits under the 4 GiB RIFF limit; otherwise RF64 with
 * auto-downgrade: small files are RIFF, files past 4 GiB become RF64), RF64,
 * W64, AIFF, AU, FLAC, Ogg/Vorbis, Ogg/Opus, MP3 and RAW; AU (and RAW) can also be
 * written to an unseekable pipe.  Headers of seekable WAV, RF64, W64, AIFF
 * and AU files are rewritten every second of audio while writing, so a
 * process killed mid-write leaves a file that reads up to about its last
 * second.
 *
 * Conventions.
 *   - A frame is one sample per channel; buffers are interleaved, so n frames
 *     are n * channels floats.  Full scale is [-1, 1]: integer files are
 *     scaled by 1/2^(bits-1) on read and by 2^(bits-1) on write (libsndfile's
 *     normalisation with clipping enabled, which makes the two symmetric).
 *   - Non-finite samples (NaN, +-Inf) are replaced by 0 on read (float files
 *     can hold them) and on write, and counted; see the *_nonfinite_count()
 *     getters: one NaN in a recurrent state would poison a stream.
 *   - Writing to an integer subtype clips to full scale (SFC_SET_CLIPPING):
 *     libsndfile would otherwise wrap +1.5 around to a negative value.  The
 *     samples clipped (|x| > 1) are counted: dsp_audio_writer_clipped_count().
 *   - Known libsndfile 1.2.0 limits: an Ogg/Opus file with 0 frames is
 *     written but libsndfile cannot read it back (FORMAT error on open); an
 *     MP3 or FLAC file with 0 frames is 0 bytes (and a bare FLAC STREAMINFO
 *     header, which sox reads as empty, fails in libsndfile's seeking
 *     readers), so dsp_audio_writer_close() removes these three when nothing
 *     was written and says so.  A .wav of unknown length is written as RF64 with
 *     auto-downgrade, whose RIFF form is WAVE_FORMAT_EXTENSIBLE (Python's
 *     `wave` module, 3.11, refuses it); close rewrites the format chunk of
 *     a finished 1- or 2-channel integer-PCM file to plain WAVE_FORMAT_PCM
 *     (16 bytes, then a JUNK chunk in the freed bytes: the data does not
 *     move).  Until close, and for float or more than 2 channels, it stays
 *     EXTENSIBLE; announce expected_frames to get plain PCM from the start.
 *   - Errors: every function that can fail returns a dsp_status (negative)
 *     and, when err is not NULL, fills err->msg with one line naming the
 *     file and what is wrong, in words a user can act on; libsndfile's
 *     vague texts ("Unspecified internal error", "SF_INFO struct
 *     incomplete", "Format not recognised") never reach it.  Reader: missing
 *     file, directory, permission denied; "empty file (0 bytes)"; "truncated
 *     WAV header: the file is only N bytes" (the first bytes name a container
 *     whose header needs more); "damaged or truncated FLAC file" (a known
 *     container libsndfile cannot parse, with its reason when it gives one);
 *     "headerless (raw) samples" for .raw/.pcm/.s16/... names (with the sox
 *     command that adds a header); otherwise "not an audio file, or a format
 *     ssmd cannot read; readable: wav flac ..." listing the extensions of
 *     every format this libsndfile reads; "truncated file" when the data
 *     ends before its header's length; "damaged or truncated audio data
 *     after N frames" when decoding fails mid-file.  Writer: "cannot tell the
 *     audio format from the file name" (with the extensions), "cannot
 *     create: <system reason>", and a container that cannot hold the data:
 *     FLAC 1..8 channels up to 655350 Hz, Ogg/Vorbis 1..255 channels up to
 *     200000 Hz, Ogg/Opus 1..255 channels at 8000, 12000, 16000, 24000 or
 *     48000 Hz, MP3 1..2 channels at the nine MPEG rates (8000..48000 Hz),
 *     no float samples in FLAC, each named with the value and the
 *     alternatives.
 *
 * Thread safety: one reader or writer object is used by one thread at a time;
 * distinct objects are independent, except that libsndfile reports open
 * failures through a process-wide slot, so two opens failing at the same
 * instant on two threads may swap their messages.  Opening, reading, writing
 * and closing do file I/O (they block) and are not real-time safe; read and
 * write never allocate after open.
 */
#ifndef DSP_AUDIO_FILE_H
#define DSP_AUDIO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "dsp/dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** n_frames value for a stream whose length is unknown (read from a pipe). */
#define DSP_AUDIO_FRAMES_UNKNOWN INT64_C(-1)
/** Largest channel count accepted (libsndfile's own limit is 1024). */
#define DSP_AUDIO_MAX_CHANNELS 1024
/** Frames the writer converts per libsndfile call (its scratch buffer, sized
 *  at open: DSP_AUDIO_WRITE_BLOCK_FRAMES * channels floats). */
#define DSP_AUDIO_WRITE_BLOCK_FRAMES 4096

/** Container (major format). */
typedef enum dsp_audio_container {
    DSP_AUDIO_CONTAINER_AUTO = 0, /**< writer: from the file extension (see
                                       dsp_audio_container_from_path) */
    DSP_AUDIO_CONTAINER_WAV,      /**< RIFF WAV, written as RF64 with auto-downgrade */
    DSP_AUDIO_CONTAINER_RF64,     /**< always RF64 */
    DSP_AUDIO_CONTAINER_W64,      /**< Sony Wave64 */
    DSP_AUDIO_CONTAINER_AIFF,
    DSP_AUDIO_CONTAINER_AU,       /**< Sun/NeXT AU; the only one writable to a pipe with a header */
    DSP_AUDIO_CONTAINER_FLAC,
    DSP_AUDIO_CONTAINER_OGG_VORBIS,
    DSP_AUDIO_CONTAINER_OGG_OPUS, /**< rates 8000, 12000, 16000, 24000, 48000 only */
    DSP_AUDIO_CONTAINER_RAW,      /**< headerless samples */
    DSP_AUDIO_CONTAINER_MP3,      /**< MPEG-1/2 Layer III (libsndfile >= 1.1 with LAME and mpg123):
                                       1 or 2 channels at 8000..48000 Hz (MPEG rates) */
    DSP_AUDIO_CONTAINER_OTHER,    /**< reader: a format libsndfile knows that is not listed */
} dsp_audio_container;

/** Sample encoding (libsndfile subtype). */
typedef enum dsp_audio_subtype {
    DSP_AUDIO_SUBTYPE_DEFAULT = 0, /**< writer: PCM_16 (Vorbis/Opus: their codec) */
    DSP_AUDIO_SUBTYPE_PCM_S8,
    DSP_AUDIO_SUBTYPE_PCM_U8,
    DSP_AUDIO_SUBTYPE_PCM_16,
    DSP_AUDIO_SUBTYPE_PCM_24,
    DSP_AUDIO_SUBTYPE_PCM_32,
    DSP_AUDIO_SUBTYPE_FLOAT,       /**< 32-bit IEEE float */
    DSP_AUDIO_SUBTYPE_DOUBLE,      /**< 64-bit IEEE float */
    DSP_AUDIO_SUBTYPE_ULAW,
    DSP_AUDIO_SUBTYPE_ALAW,
    DSP_AUDIO_SUBTYPE_VORBIS,      /**< lossy (reader reports it; writer implies it) */
    DSP_AUDIO_SUBTYPE_OPUS,
    DSP_AUDIO_SUBTYPE_MPEG_LAYER_III, /**< MP3 (reader reports it; writer implies it) */
    DSP_AUDIO_SUBTYPE_OTHER,       /**< reader: anything else libsndfile decodes */
} dsp_audio_subtype;

/** Byte order of the samples (RAW files; other containers fix their own). */
typedef enum dsp_audio_endian {
    DSP_AUDIO_ENDIAN_FILE = 0, /**< the container's default (RAW: little) */
    DSP_AUDIO_ENDIAN_LITTLE,
    DSP_AUDIO_ENDIAN_BIG,
    DSP_AUDIO_ENDIAN_CPU,
} dsp_audio_endian;

/** The layout of a headerless RAW file, given by the caller. */
typedef struct dsp_audio_raw_format {
    int sample_rate_hz;         /**< > 0 */
    int channels;               /**< 1..DSP_AUDIO_MAX_CHANNELS */
    dsp_audio_subtype subtype;  /**< PCM_S8/U8/16/24/32, FLOAT, DOUBLE, ULAW, ALAW */
    dsp_audio_endian endian;
} dsp_audio_raw_format;

/** What a reader found (constant after open). */
typedef struct dsp_audio_info {
    int channels;               /**< interleaved channels per frame */
    int sample_rate_hz;
    int64_t n_frames;           /**< frames in the file, or DSP_AUDIO_FRAMES_UNKNOWN */
    dsp_audio_container container;
    dsp_audio_subtype subtype;
    char format[128];           /**< libsndfile's names, e.g. "WAV (Microsoft), Signed 16 bit PCM" */
} dsp_audio_info;

/* ------------------------------------------------------------------ reader */

/** Opaque streaming reader. */
typedef struct dsp_audio_reader dsp_audio_reader;

/** Opens `path` for reading ("-" reads standard input).  raw NULL: the format
 *  is detected from the file's header; raw non-NULL: the file is read as
 *  headerless samples in that layout (any header bytes become samples).
 *  On success stores the reader in *out (caller owns it; free with
 *  dsp_audio_reader_close()) and returns DSP_OK.  On failure *out is NULL and
 *  the call returns DSP_ERR_INVALID (NULL path, bad raw layout),
 *  DSP_ERR_IO (missing file, a directory, permission) or DSP_ERR_FORMAT
 *  (not audio, unknown or corrupt header, truncated data chunk); err->msg
 *  names the path.  Not real-time safe. */
int dsp_audio_reader_open(dsp_audio_reader **out, const char *path,
                          const dsp_audio_raw_format *raw, dsp_error *err);

/** As dsp_audio_reader_open() on an already open descriptor (a pipe, a
 *  socket, a file).  name is used in messages only.  The descriptor stays
 *  owned by the caller (it is not closed by dsp_audio_reader_close()). */
int dsp_audio_reader_open_fd(dsp_audio_reader **out, int fd, const char *name,
                             const dsp_audio_raw_format *raw, dsp_error *err);

/** The stream's layout.  Never NULL for a valid reader; valid until close. */
const dsp_audio_info *dsp_audio_reader_info(const dsp_audio_reader *r);

/** Reads up to max_frames interleaved frames into out (room for
 *  max_frames * channels floats) and stores the count in *n_read; fewer
 *  than max_frames only at the end of the stream, 0 (with max_frames > 0)
 *  means the end.  Non-finite samples are replaced by 0 and counted.
 *  Returns DSP_OK, DSP_ERR_INVALID (NULL arguments), DSP_ERR_FORMAT (decoding
 *  failed, or the stream ended before the n_frames its header announced:
 *  the file is truncated) or DSP_ERR_IO.  On error *n_read still tells how
 *  many good frames were stored.  Never allocates. */
int dsp_audio_reader_read(dsp_audio_reader *r, float *out, size_t max_frames,
                          size_t *n_read, dsp_error *err);

/** Frames delivered so far. */
uint64_t dsp_audio_reader_frames_read(const dsp_audio_reader *r);

/** Samples (not frames) replaced by 0 because they were NaN or infinite. */
uint64_t dsp_audio_reader_nonfinite_count(const dsp_audio_reader *r);

/** The same count for one channel (0-based; 0 for a channel out of range):
 *  what a caller that splits the channels into streams reports per stream. */
uint64_t dsp_audio_reader_nonfinite_channel_count(const dsp_audio_reader *r, int channel);

/** The largest absolute finite sample value of the whole stream, in
 *  full-scale units (1.0 = full scale; integer files never exceed it, float
 *  files can), stored in *peak; NaN and ±inf samples (which the reader turns
 *  into 0) are left out.  Scans the file once (reads every sample, then
 *  returns to the current position; for a file of hours this costs a second
 *  read of it): a PEAK chunk or libsndfile's own scan would be faster but
 *  report nonsense once a sample is infinite.  Returns DSP_OK,
 *  DSP_ERR_INVALID (NULL arguments), DSP_ERR_UNSUPPORTED (the stream cannot
 *  seek: a pipe; *peak is then 0) or DSP_ERR_FORMAT (seeking failed).  Not
 *  real-time safe; does not allocate. */
int dsp_audio_reader_peak(dsp_audio_reader *r, double *peak, dsp_error *err);

/** Closes the file and frees the reader.  NULL is a no-op. */
void dsp_audio_reader_close(dsp_audio_reader *r);

/** Downmixes n_frames interleaved frames of n_channels (>= 1) samples each to
 *  their mean: out[i] = (in[i*n_channels] + ... + in[i*n_channels +
 *  n_channels-1]) / n_channels, summed left to right in float (so 2 channels
 *  give exactly the float32 (l + r) / 2 numpy computes).  out holds n_frames
 *  floats and may be in itself (each out[i] is written after its frame is
 *  read).  What --channels mono does to a file's and a microphone's frames.
 *  Pure; real-time safe. */
void dsp_audio_downmix_mean(float *out, const float *in, size_t n_frames, int n_channels);

/* ------------------------------------------------------------------ writer */

/** What to write. */
typedef struct dsp_audio_write_format {
    dsp_audio_container container; /**< AUTO: from the extension ("-": AU) */
    dsp_audio_subtype subtype;     /**< DEFAULT: PCM_16; ignored (must be DEFAULT
                                        or the codec) for Vorbis/Opus/MP3 */
    dsp_audio_endian endian;       /**< FILE unless writing RAW */
    int sample_rate_hz;            /**< > 0 */
    int channels;                  /**< 1..DSP_AUDIO_MAX_CHANNELS */
    double vbr_quality;            /**< Vorbis/Opus/MP3 quality 0 (small) .. 1 (best);
                                        < 0: libsndfile's default */
    int64_t expected_frames;       /**< WAV: frames the caller expects to write, 0 =
                                        unknown.  When known and the data fits under
                                        the 4 GiB RIFF limit the file is plain RIFF
                                        from the start (WAVE_FORMAT_PCM for integer
                                        samples, which every reader, Python's `wave`
                                        included, accepts); unknown or larger: RF64
                                        with auto-downgrade (WAVE_FORMAT_EXTENSIBLE).
                                        Writing more than announced is allowed while
                                        the RIFF limit holds. */
    int64_t header_update_frames;  /**< rewrite the header (SFC_UPDATE_HEADER_NOW)
                                        after every this many frames: 0 = once per
                                        second of audio (sample_rate_hz frames),
                                        < 0 = only at close.  Only for seekable WAV,
                                        RF64, W64, AIFF and AU outputs. */
} dsp_audio_write_format;

/** Opaque streaming writer. */
typedef struct dsp_audio_writer dsp_audio_writer;

/** Maps a path's extension (case-insensitive) to a container: .wav -> WAV,
 *  .rf64, .w64, .aif/.aiff/.aifc -> AIFF, .au/.snd -> AU, .flac,
 *  .ogg/.oga -> OGG_VORBIS, .opus -> OGG_OPUS, .mp3 -> MP3, .raw/.pcm -> RAW;
 *  "-" -> AU.
 *  Returns DSP_AUDIO_CONTAINER_AUTO when nothing matches.  Pure. */
dsp_audio_container dsp_audio_container_from_path(const char *path);

/** Creates (truncates) `path` for writing; "-" writes to standard output
 *  (which must then be AU or RAW: the others need to seek back to finish
 *  their header).  On success stores the writer in *out (caller owns it;
 *  finish with dsp_audio_writer_close()) and returns DSP_OK.  On failure *out
 *  is NULL and the call returns DSP_ERR_INVALID (unknown extension, bad rate,
 *  channels or subtype, a combination libsndfile cannot write; err->msg says
 *  which), DSP_ERR_UNSUPPORTED or DSP_ERR_IO (cannot create the file).
 *  Allocates one scratch block (DSP_AUDIO_WRITE_BLOCK_FRAMES frames). */
int dsp_audio_writer_open(dsp_audio_writer **out, const char *path,
                          const dsp_audio_write_format *fmt, dsp_error *err);

/** As dsp_audio_writer_open() on an open, writable descriptor (a pipe when
 *  the container is AU or RAW).  name is used in messages and, with an AUTO
 *  container, for its extension.  The descriptor stays owned by the caller. */
int dsp_audio_writer_open_fd(dsp_audio_writer **out, int fd, const char *name,
                             const dsp_audio_write_format *fmt, dsp_error *err);

/** Appends n_frames interleaved frames (n_frames * channels floats).
 *  Non-finite samples are written as 0 and counted; integer subtypes clip
 *  (counted).  Rewrites the header every header_update_frames.
 *  Returns DSP_OK, DSP_ERR_INVALID or DSP_ERR_IO (short write: disk full,
 *  closed pipe; err->msg has libsndfile's reason).  Never allocates. */
int dsp_audio_writer_write(dsp_audio_writer *w, const float *in, size_t n_frames,
                           dsp_error *err);

/** Frames written so far. */
uint64_t dsp_audio_writer_frames_written(const dsp_audio_writer *w);

/** Samples (not frames) written as 0 because they were NaN or infinite. */
uint64_t dsp_audio_writer_nonfinite_count(const dsp_audio_writer *w);

/** Samples (not frames) clipped to full scale because |x| > 1 and the
 *  subtype is an integer encoding (PCM_*, mu-law, A-law); always 0 for float
 *  and codec subtypes, which keep such values. */
uint64_t dsp_audio_writer_clipped_count(const dsp_audio_writer *w);

/** Finishes the file (libsndfile rewrites the header with the final length),
 *  closes it and frees the writer, also on failure.  NULL is a no-op returning
 *  DSP_OK.  An MP3, FLAC or Ogg/Opus file (by path) with 0 frames written is
 *  removed and DSP_ERR_INVALID returned with one line saying so: libsndfile
 *  writes the first two as 0 bytes and the third as a file it cannot open,
 *  so not every reader would take them (the other containers hold 0 frames
 *  as they are).  Returns DSP_ERR_IO when the close failed: then a regular
 *  file opened by path is removed, as by abort (it would be incomplete).  An
 *  MP3 written to a regular file by path is checked against the byte count of
 *  its Xing/Info header (libsndfile 1.2 does not report a failed write of the
 *  encoder's last frames inside sf_close).  Always call it; it is the only way
 *  to get a valid header. */
int dsp_audio_writer_close(dsp_audio_writer *w, dsp_error *err);

/** Closes and frees the writer and deletes the file it was writing (not for
 *  "-" or descriptors), for a job that failed half-way: nothing half-written
 *  is left behind.  NULL is a no-op. */
void dsp_audio_writer_abort(dsp_audio_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* DSP_AUDIO_FILE_H */
