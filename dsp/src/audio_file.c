/* SPDX-License-Identifier: MIT */
/* Streaming audio file reader and writer on libsndfile (dsp/audio_file.h).
 *
 * Design note.  libsndfile does the decoding; this file adds what ssmd needs
 * on top: one-line errors that name the file, 64-bit frame counts only,
 * non-finite samples zeroed and counted in both directions, clipping instead
 * of wrap-around for integer encodings, RF64 auto-downgrade for WAV, and
 * truncation detection.  libsndfile silently shortens a WAV/AIFF whose data
 * chunk claims more bytes than the file holds (it only notes "(should be N)"
 * in its parse log), so open reads that log and refuses such files; for every
 * other container a stream that ends before the frame count its header
 * announced is reported by read.
 */
#include "dsp/audio_file.h"

#include "clones.h"
#include "dsp/framer.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct dsp_audio_reader {
    SNDFILE *sf;
    dsp_audio_info info;
    uint64_t frames_read;
    uint64_t nonfinite;
    char name[384];
    uint64_t nonfinite_ch[];  /* per channel, info.channels of them */
};

struct dsp_audio_writer {
    SNDFILE *sf;
    int channels;
    int owns_path;          /* created by path (abort may unlink it) */
    uint64_t frames_written;
    uint64_t nonfinite;
    uint64_t clipped;       /* |x| > 1 written to an integer subtype */
    uint64_t header_every;  /* frames between header rewrites; 0 = never */
    uint64_t header_at;     /* frames_written at the last rewrite */
    int clips;              /* integer subtype: libsndfile clips |x| > 1 */
    float *scratch;         /* DSP_AUDIO_WRITE_BLOCK_FRAMES * channels */
    char *path;             /* full path for abort's unlink (owns_path only) */
    int format;             /* libsndfile format word */
    int fd;                 /* caller's descriptor (open_fd), -1 when opened by path */
    int wav_plain_at_close; /* a WAV written as RF64 + downgrade: plain PCM header at close */
    int seekable;           /* opened by path as a regular file (not a FIFO or device) */
    int sample_rate_hz;
    char name[384];
};

/* ---------------------------------------------------------------- tables */

static const struct { dsp_audio_container c; int major, sub; } container_map[] = {
    { DSP_AUDIO_CONTAINER_WAV,        SF_FORMAT_WAV,  0 },
    { DSP_AUDIO_CONTAINER_WAV,        SF_FORMAT_WAVEX, 0 },
    { DSP_AUDIO_CONTAINER_RF64,       SF_FORMAT_RF64, 0 },
    { DSP_AUDIO_CONTAINER_W64,        SF_FORMAT_W64,  0 },
    { DSP_AUDIO_CONTAINER_AIFF,       SF_FORMAT_AIFF, 0 },
    { DSP_AUDIO_CONTAINER_AU,         SF_FORMAT_AU,   0 },
    { DSP_AUDIO_CONTAINER_FLAC,       SF_FORMAT_FLAC, 0 },
    { DSP_AUDIO_CONTAINER_OGG_VORBIS, SF_FORMAT_OGG,  SF_FORMAT_VORBIS },
    { DSP_AUDIO_CONTAINER_OGG_OPUS,   SF_FORMAT_OGG,  SF_FORMAT_OPUS },
    { DSP_AUDIO_CONTAINER_RAW,        SF_FORMAT_RAW,  0 },
    { DSP_AUDIO_CONTAINER_MP3,        SF_FORMAT_MPEG, SF_FORMAT_MPEG_LAYER_III },
};

static const struct { dsp_audio_subtype s; int sub; const char *name; } subtype_map[] = {
    { DSP_AUDIO_SUBTYPE_PCM_S8, SF_FORMAT_PCM_S8, "PCM_S8" },
    { DSP_AUDIO_SUBTYPE_PCM_U8, SF_FORMAT_PCM_U8, "PCM_U8" },
    { DSP_AUDIO_SUBTYPE_PCM_16, SF_FORMAT_PCM_16, "PCM_16" },
    { DSP_AUDIO_SUBTYPE_PCM_24, SF_FORMAT_PCM_24, "PCM_24" },
    { DSP_AUDIO_SUBTYPE_PCM_32, SF_FORMAT_PCM_32, "PCM_32" },
    { DSP_AUDIO_SUBTYPE_FLOAT,  SF_FORMAT_FLOAT,  "FLOAT" },
    { DSP_AUDIO_SUBTYPE_DOUBLE, SF_FORMAT_DOUBLE, "DOUBLE" },
    { DSP_AUDIO_SUBTYPE_ULAW,   SF_FORMAT_ULAW,   "ULAW" },
    { DSP_AUDIO_SUBTYPE_ALAW,   SF_FORMAT_ALAW,   "ALAW" },
    { DSP_AUDIO_SUBTYPE_VORBIS, SF_FORMAT_VORBIS, "VORBIS" },
    { DSP_AUDIO_SUBTYPE_OPUS,   SF_FORMAT_OPUS,   "OPUS" },
    { DSP_AUDIO_SUBTYPE_MPEG_LAYER_III, SF_FORMAT_MPEG_LAYER_III, "MPEG_LAYER_III" },
};

static const char *const container_names[] = {
    [DSP_AUDIO_CONTAINER_AUTO] = "AUTO", [DSP_AUDIO_CONTAINER_WAV] = "WAV",
    [DSP_AUDIO_CONTAINER_RF64] = "RF64", [DSP_AUDIO_CONTAINER_W64] = "W64",
    [DSP_AUDIO_CONTAINER_AIFF] = "AIFF", [DSP_AUDIO_CONTAINER_AU] = "AU",
    [DSP_AUDIO_CONTAINER_FLAC] = "FLAC", [DSP_AUDIO_CONTAINER_OGG_VORBIS] = "Ogg/Vorbis",
    [DSP_AUDIO_CONTAINER_OGG_OPUS] = "Ogg/Opus", [DSP_AUDIO_CONTAINER_RAW] = "RAW",
    [DSP_AUDIO_CONTAINER_MP3] = "MP3",
    [DSP_AUDIO_CONTAINER_OTHER] = "other",
};

static int subtype_to_sf(dsp_audio_subtype s)
{
    for (size_t i = 0; i < sizeof subtype_map / sizeof subtype_map[0]; i++)
        if (subtype_map[i].s == s)
            return subtype_map[i].sub;
    return 0;
}

static const char *subtype_name(dsp_audio_subtype s)
{
    for (size_t i = 0; i < sizeof subtype_map / sizeof subtype_map[0]; i++)
        if (subtype_map[i].s == s)
            return subtype_map[i].name;
    return s == DSP_AUDIO_SUBTYPE_DEFAULT ? "DEFAULT" : "unknown";
}

static int endian_to_sf(dsp_audio_endian e)
{
    switch (e) {
    case DSP_AUDIO_ENDIAN_FILE:   return SF_ENDIAN_FILE;
    case DSP_AUDIO_ENDIAN_LITTLE: return SF_ENDIAN_LITTLE;
    case DSP_AUDIO_ENDIAN_BIG:    return SF_ENDIAN_BIG;
    case DSP_AUDIO_ENDIAN_CPU:    return SF_ENDIAN_CPU;
    }
    return -1;
}

static void describe(dsp_audio_info *info, int format)
{
    int major = format & SF_FORMAT_TYPEMASK, sub = format & SF_FORMAT_SUBMASK;
    info->container = DSP_AUDIO_CONTAINER_OTHER;
    for (size_t i = 0; i < sizeof container_map / sizeof container_map[0]; i++)
        if (container_map[i].major == major && (!container_map[i].sub || container_map[i].sub == sub)) {
            info->container = container_map[i].c;
            break;
        }
    info->subtype = DSP_AUDIO_SUBTYPE_OTHER;
    for (size_t i = 0; i < sizeof subtype_map / sizeof subtype_map[0]; i++)
        if (subtype_map[i].sub == sub)
            info->subtype = subtype_map[i].s;
    SF_FORMAT_INFO fm = { .format = major }, fs = { .format = sub };
    const char *mn = sf_command(NULL, SFC_GET_FORMAT_INFO, &fm, sizeof fm) == 0 && fm.name ? fm.name : "unknown container";
    const char *sn = sf_command(NULL, SFC_GET_FORMAT_INFO, &fs, sizeof fs) == 0 && fs.name ? fs.name : "unknown encoding";
    snprintf(info->format, sizeof info->format, "%s, %s", mn, sn);
}

/* dsp_status for a libsndfile error number. */
static int status_of(int sf_err)
{
    switch (sf_err) {
    case SF_ERR_NO_ERROR:            return DSP_OK;
    case SF_ERR_SYSTEM:              return DSP_ERR_IO;
    case SF_ERR_UNSUPPORTED_ENCODING: return DSP_ERR_UNSUPPORTED;
    default:                         return DSP_ERR_FORMAT;
    }
}

static void copy_name(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s", name ? name : "(unnamed)");
}

/* How many of x[0..n) have a magnitude above full scale (|x| > 1): in blocks
 * of a fixed 16 with a count per lane, for each ISA (clones.h). */
DSP_CLONES
static uint64_t count_beyond_full_scale(const float *x, size_t n)
{
    uint64_t total = 0;
    size_t i = 0;
    while (i + 16 <= n) {
        uint32_t lane[16] = { 0 };
        size_t end = n - i > ((size_t)1 << 28) ? i + ((size_t)1 << 28) : n; /* lanes < 2^24 */
        for (; i + 16 <= end; i += 16)
            for (int j = 0; j < 16; j++)
                lane[j] += fabsf(x[i + (size_t)j]) > 1.0f;
        for (int j = 0; j < 16; j++)
            total += lane[j];
    }
    for (; i < n; i++)
        total += fabsf(x[i]) > 1.0f;
    return total;
}

/* ------------------------------------------------------- open-failure text */

/* libsndfile's text without its "Error : " / "Error in X file. " decoration
 * and final full stop, or NULL when the text says nothing a user can act on
 * ("Unspecified internal error.", "SF_INFO struct incomplete", ...). */
static const char *sf_reason(const char *t, char *buf, size_t cap)
{
    static const char *const vague[] = { "internal error", "Internal error", "unimplemented format",
                                         "file is malformed", "unknown error", "No error",
                                         "Format not recognised" };
    if (!t)
        return NULL;
    for (size_t i = 0; i < sizeof vague / sizeof vague[0]; i++)
        if (strstr(t, vague[i]))
            return NULL;
    if (strncmp(t, "Error : ", 8) == 0)
        t += 8;
    else if (strncmp(t, "System error : ", 15) == 0)
        t += 15;
    else if (strncmp(t, "Error in ", 9) == 0 && strstr(t, ". "))
        t = strstr(t, ". ") + 2;
    snprintf(buf, cap, "%s", t);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '.' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

/* The extensions of every major format this libsndfile reads, e.g.
 * "wav aiff au ... flac caf ogg rf64 mp3". */
static void readable_formats(char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    buf[0] = '\0';
    sf_command(NULL, SFC_GET_FORMAT_MAJOR_COUNT, &n, sizeof n);
    for (int i = 0; i < n; i++) {
        SF_FORMAT_INFO fi = { .format = i };
        if (sf_command(NULL, SFC_GET_FORMAT_MAJOR, &fi, sizeof fi) != 0 || !fi.extension ||
            (fi.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_RAW)
            continue;
        const char *ext = strcmp(fi.extension, "oga") == 0 ? "ogg opus"   /* Ogg: Vorbis and Opus */
                        : strcmp(fi.extension, "m1a") == 0 ? "mp3" : fi.extension;  /* MPEG */
        if (strstr(buf, ext)) /* wav twice (WAV, WAVEX) */
            continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", ext);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

/* A container named by the first bytes of a file (NULL: none known). */
static const char *magic_container(const unsigned char *b, size_t n, size_t *min_header)
{
    static const struct { const char *magic; size_t len; const char *name; size_t min; } m[] = {
        { "RIFF", 4, "WAV", 44 }, { "RIFX", 4, "WAV", 44 }, { "RF64", 4, "RF64", 80 },
        { "BW64", 4, "RF64", 80 }, { "riff", 4, "W64", 104 }, { "FORM", 4, "AIFF", 54 },
        { ".snd", 4, "AU", 24 }, { "fLaC", 4, "FLAC", 42 }, { "OggS", 4, "Ogg", 58 },
        { "caff", 4, "CAF", 68 },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (n >= m[i].len && memcmp(b, m[i].magic, m[i].len) == 0) {
            *min_header = m[i].min;
            return m[i].name;
        }
    return NULL;
}

static int is_raw_name(const char *name)
{
    static const char *const exts[] = { "raw", "pcm", "s8", "u8", "s16", "s16le", "s16be", "s24", "s32",
                                        "f32", "f32le", "f64", "sln", "bin" };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return 1;
    return 0;
}

/* One line for a failed sf_open of `name` for reading.  head/n_head: the
 * file's first bytes (n_head 0 when they could not be read: a pipe);
 * size: the file's size in bytes, < 0 unknown. */
static int reader_open_failed(int sf_err, const char *name, const unsigned char *head, size_t n_head,
                              long long size, dsp_error *err)
{
    char why[160], formats[256];
    const char *reason = sf_reason(sf_strerror(NULL), why, sizeof why);
    size_t min_header = 0;
    const char *cont = magic_container(head, n_head, &min_header);
    if (size == 0)
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: empty file (0 bytes), not audio", name);
    if (cont && size >= 0 && (size_t)size < min_header)
        return dsp_error_set(err, DSP_ERR_FORMAT,
                             "%s: truncated %s header: the file is only %lld bytes (a %s header needs at least %zu)",
                             name, cont, size, cont, min_header);
    if (cont)
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: damaged or truncated %s file (%lld bytes): %s", name, cont, size,
                             reason ? reason : "libsndfile cannot parse it");
    if (sf_err == SF_ERR_UNRECOGNISED_FORMAT || !reason) {
        if (is_raw_name(name))
            return dsp_error_set(err, DSP_ERR_FORMAT,
                                 "%s: headerless (raw) samples: ssmd reads files whose header gives the rate, "
                                 "channels and encoding; add one, e.g. sox -t raw -r 16000 -e signed -b 16 -c 1 "
                                 "%s out.wav", name, name);
        readable_formats(formats, sizeof formats);
        if (n_head == 0 && size < 0)
            return dsp_error_set(err, DSP_ERR_FORMAT,
                                 "%s: not audio in a format ssmd reads (empty, headerless, or not audio); "
                                 "readable: %s", name, formats);
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: not an audio file, or a format ssmd cannot read; readable: %s",
                             name, formats);
    }
    return dsp_error_set(err, status_of(sf_err) ? status_of(sf_err) : DSP_ERR_FORMAT, "%s: %s", name, reason);
}

/* ---------------------------------------------------------------- reader */

/* libsndfile's parse log notes "data : 2000 (should be 500)" when a data
 * chunk (WAV, RF64, W64: "data"; AIFF: "SSND"; AU: "Data Size") is longer
 * than the file.
 * Declared sizes 0 and 0xFFFFFFFF are the placeholders streaming writers
 * leave, not truncation. */
static int data_chunk_truncated(SNDFILE *sf, long long *declared, long long *actual)
{
    char log[8192];
    log[0] = '\0';
    sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
    log[sizeof log - 1] = '\0';
    for (char *line = log; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        const char *p = line;
        while (*p == ' ') p++;
        if ((strncasecmp(p, "data", 4) == 0 || strncmp(p, "SSND", 4) == 0) && strstr(p, "(should be")) {
            const char *colon = strchr(p, ':');
            const char *sb = strstr(p, "(should be");
            long long d = colon ? strtoll(colon + 1, NULL, 0) : -1;
            long long a = strtoll(sb + 10, NULL, 10);
            if (d != 0 && d != 0xFFFFFFFFLL && d > a) {
                *declared = d;
                *actual = a;
                return 1;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

static int reader_finish_open(dsp_audio_reader **out, SNDFILE *sf, const SF_INFO *si,
                              const char *name, dsp_error *err)
{
    long long declared = 0, actual = 0;
    if (data_chunk_truncated(sf, &declared, &actual)) {
        sf_close(sf);
        return dsp_error_set(err, DSP_ERR_FORMAT,
                             "%s: truncated file: the data chunk declares %lld bytes but only %lld are present",
                             name, declared, actual);
    }
    if (si->channels < 1 || si->channels > DSP_AUDIO_MAX_CHANNELS || si->samplerate < 1) {
        sf_close(sf);
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: unusable layout: %d channels at %d Hz",
                             name, si->channels, si->samplerate);
    }
    dsp_audio_reader *r = calloc(1, sizeof *r + (size_t)si->channels * sizeof r->nonfinite_ch[0]);
    if (!r) {
        sf_close(sf);
        return dsp_error_set(err, DSP_ERR_NOMEM, "%s: out of memory", name);
    }
    r->sf = sf;
    copy_name(r->name, sizeof r->name, name);
    r->info.channels = si->channels;
    r->info.sample_rate_hz = si->samplerate;
    /* libsndfile says SF_COUNT_MAX when the length is unknown (pipes). */
    r->info.n_frames = (!si->seekable || si->frames < 0 || si->frames == SF_COUNT_MAX)
                       ? DSP_AUDIO_FRAMES_UNKNOWN : (int64_t)si->frames;
    describe(&r->info, si->format);
    *out = r;
    return DSP_OK;
}

static int raw_to_sfinfo(SF_INFO *si, const dsp_audio_raw_format *raw, const char *name,
                         dsp_error *err)
{
    int sub = subtype_to_sf(raw->subtype), endian = endian_to_sf(raw->endian);
    if (raw->sample_rate_hz <= 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: raw format: sample rate %d Hz must be positive",
                             name, raw->sample_rate_hz);
    if (raw->channels < 1 || raw->channels > DSP_AUDIO_MAX_CHANNELS)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: raw format: channel count %d is out of range 1..%d",
                             name, raw->channels, DSP_AUDIO_MAX_CHANNELS);
    if (!sub || endian < 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: raw format: unknown %s %d", name,
                             !sub ? "subtype" : "endianness", !sub ? (int)raw->subtype : (int)raw->endian);
    memset(si, 0, sizeof *si);
    si->samplerate = raw->sample_rate_hz;
    si->channels = raw->channels;
    si->format = SF_FORMAT_RAW | sub | endian;
    if (!sf_format_check(si))
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: raw format: libsndfile cannot read RAW with %s samples",
                             name, subtype_name(raw->subtype));
    return DSP_OK;
}

int dsp_audio_reader_open_fd(dsp_audio_reader **out, int fd, const char *name,
                             const dsp_audio_raw_format *raw, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio reader: out pointer is NULL");
    *out = NULL;
    if (!name)
        name = "(descriptor)";
    if (fd < 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: invalid file descriptor %d", name, fd);
    SF_INFO si;
    memset(&si, 0, sizeof si);
    if (raw) {
        int st = raw_to_sfinfo(&si, raw, name, err);
        if (st != DSP_OK)
            return st;
    }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    off_t at = regular ? lseek(fd, 0, SEEK_CUR) : -1;
    SNDFILE *sf = sf_open_fd(fd, SFM_READ, &si, SF_FALSE);
    if (!sf) {
        int e = sf_error(NULL);
        unsigned char head[64];
        ssize_t nh = at >= 0 ? pread(fd, head, sizeof head, at) : -1;
        return reader_open_failed(e, name, head, nh > 0 ? (size_t)nh : 0,
                                  at >= 0 ? (long long)(st.st_size - at) : -1, err);
    }
    return reader_finish_open(out, sf, &si, name, err);
}

int dsp_audio_reader_open(dsp_audio_reader **out, const char *path,
                          const dsp_audio_raw_format *raw, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio reader: out pointer is NULL");
    *out = NULL;
    if (!path || !*path)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio reader: empty path");
    if (strcmp(path, "-") == 0)
        return dsp_audio_reader_open_fd(out, STDIN_FILENO, "-", raw, err);
    /* libsndfile answers "Format not recognised." for a directory. */
    struct stat st;
    if (stat(path, &st) != 0)
        return dsp_error_set(err, DSP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return dsp_error_set(err, DSP_ERR_IO, "%s: is a directory, not an audio file", path);
    /* libsndfile says "System error" for these; read the first bytes for the
     * message of a failed open (which container the file claims to be). */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dsp_error_set(err, DSP_ERR_IO, "%s: cannot open: %s", path,
                             errno == EACCES ? "permission denied (no read permission)" : strerror(errno));
    unsigned char head[64];
    ssize_t nh = S_ISREG(st.st_mode) ? read(fd, head, sizeof head) : 0;
    close(fd);
    if (S_ISREG(st.st_mode) && st.st_size == 0)
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: empty file (0 bytes), not audio", path);
    SF_INFO si;
    memset(&si, 0, sizeof si);
    if (raw) {
        int s = raw_to_sfinfo(&si, raw, path, err);
        if (s != DSP_OK)
            return s;
    }
    SNDFILE *sf = sf_open(path, SFM_READ, &si);
    if (!sf) {
        int e = sf_error(NULL);
        return reader_open_failed(e, path, head, nh > 0 ? (size_t)nh : 0,
                                  S_ISREG(st.st_mode) ? (long long)st.st_size : -1, err);
    }
    return reader_finish_open(out, sf, &si, path, err);
}

const dsp_audio_info *dsp_audio_reader_info(const dsp_audio_reader *r)
{
    return r ? &r->info : NULL;
}

int dsp_audio_reader_read(dsp_audio_reader *r, float *out, size_t max_frames,
                          size_t *n_read, dsp_error *err)
{
    if (n_read)
        *n_read = 0;
    if (!r || !n_read || (max_frames && !out))
        return dsp_error_set(err, DSP_ERR_INVALID, "audio reader: NULL argument");
    size_t ch = (size_t)r->info.channels;
    size_t got = 0;
    while (got < max_frames) {
        size_t want = max_frames - got;
        if (want > (size_t)(SF_COUNT_MAX / (sf_count_t)ch))
            want = (size_t)(SF_COUNT_MAX / (sf_count_t)ch);
        sf_count_t n = sf_readf_float(r->sf, out + got * ch, (sf_count_t)want);
        if (n <= 0)
            break;
        float *x = out + got * ch;
        if (ch == 1) {
            size_t bad = dsp_sanitize_f32(x, (size_t)n);
            r->nonfinite += bad;
            r->nonfinite_ch[0] += bad;
        } else {
            for (size_t i = 0; i < (size_t)n * ch; i++)
                if (!isfinite(x[i])) {
                    x[i] = 0.0f;
                    r->nonfinite++;
                    r->nonfinite_ch[i % ch]++;
                }
        }
        got += (size_t)n;
    }
    r->frames_read += got;
    *n_read = got;
    if (got == max_frames)
        return DSP_OK;
    int e = sf_error(r->sf);
    if (e != SF_ERR_NO_ERROR) {
        char why[160];
        const char *reason = sf_reason(sf_strerror(r->sf), why, sizeof why);
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: damaged or truncated audio data after %llu frames%s%s%s",
                             r->name, (unsigned long long)r->frames_read, reason ? " (" : "",
                             reason ? reason : "", reason ? ")" : "");
    }
    if (r->info.n_frames != DSP_AUDIO_FRAMES_UNKNOWN && r->frames_read < (uint64_t)r->info.n_frames)
        return dsp_error_set(err, DSP_ERR_FORMAT,
                             "%s: truncated file: the header announces %lld frames but the data ends after %llu",
                             r->name, (long long)r->info.n_frames, (unsigned long long)r->frames_read);
    return DSP_OK;
}

int dsp_audio_reader_peak(dsp_audio_reader *r, double *peak, dsp_error *err)
{
    if (peak)
        *peak = 0;
    if (!r || !peak)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio reader: NULL argument");
    SF_INFO si;
    memset(&si, 0, sizeof si);
    sf_command(r->sf, SFC_GET_CURRENT_SF_INFO, &si, sizeof si);
    /* scanned here rather than taken from a PEAK chunk or SFC_CALC_NORM_SIGNAL_MAX:
     * with one infinite sample both report nonsense (0.5 for a file peaking at
     * 4e4), and the reader turns NaN and ±inf into 0, so the peak that matters
     * is the finite samples' one */
    if (!si.seekable)
        return dsp_error_set(err, DSP_ERR_UNSUPPORTED, "%s: cannot measure the peak of an unseekable stream",
                             r->name);
    sf_count_t at = sf_seek(r->sf, 0, SEEK_CUR);
    if (at < 0 || sf_seek(r->sf, 0, SEEK_SET) < 0)
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: measuring the peak failed: cannot seek", r->name);
    double buf[4096], m = 0;
    const sf_count_t ch = si.channels > 0 ? si.channels : 1,
                     frames = (sf_count_t)(sizeof buf / sizeof buf[0]) / ch;
    if (frames < 1) {
        sf_seek(r->sf, at, SEEK_SET);
        return dsp_error_set(err, DSP_ERR_UNSUPPORTED, "%s: %d channels: too many to measure the peak", r->name,
                             si.channels);
    }
    sf_count_t got;
    while ((got = sf_readf_double(r->sf, buf, frames)) > 0)
        for (sf_count_t i = 0; i < got * ch; i++)
            if (isfinite(buf[i]) && fabs(buf[i]) > m) m = fabs(buf[i]);
    if (sf_seek(r->sf, at, SEEK_SET) < 0)
        return dsp_error_set(err, DSP_ERR_FORMAT, "%s: measuring the peak failed: cannot seek back", r->name);
    *peak = m;
    return DSP_OK;
}

uint64_t dsp_audio_reader_frames_read(const dsp_audio_reader *r) { return r ? r->frames_read : 0; }
uint64_t dsp_audio_reader_nonfinite_count(const dsp_audio_reader *r) { return r ? r->nonfinite : 0; }

uint64_t dsp_audio_reader_nonfinite_channel_count(const dsp_audio_reader *r, int channel)
{
    return r && channel >= 0 && channel < r->info.channels ? r->nonfinite_ch[channel] : 0;
}

void dsp_audio_downmix_mean(float *out, const float *in, size_t n_frames, int n_channels)
{
    size_t nch = (size_t)n_channels;
    for (size_t i = 0; i < n_frames; i++) {
        float acc = 0;
        for (size_t k = 0; k < nch; k++) acc += in[i * nch + k];
        out[i] = acc / (float)nch;
    }
}

void dsp_audio_reader_close(dsp_audio_reader *r)
{
    if (!r)
        return;
    sf_close(r->sf);
    free(r);
}

/* ---------------------------------------------------------------- writer */

dsp_audio_container dsp_audio_container_from_path(const char *path)
{
    static const struct { const char *ext; dsp_audio_container c; } exts[] = {
        { "wav", DSP_AUDIO_CONTAINER_WAV },   { "rf64", DSP_AUDIO_CONTAINER_RF64 },
        { "w64", DSP_AUDIO_CONTAINER_W64 },   { "aif", DSP_AUDIO_CONTAINER_AIFF },
        { "aiff", DSP_AUDIO_CONTAINER_AIFF }, { "aifc", DSP_AUDIO_CONTAINER_AIFF },
        { "au", DSP_AUDIO_CONTAINER_AU },     { "snd", DSP_AUDIO_CONTAINER_AU },
        { "flac", DSP_AUDIO_CONTAINER_FLAC }, { "ogg", DSP_AUDIO_CONTAINER_OGG_VORBIS },
        { "oga", DSP_AUDIO_CONTAINER_OGG_VORBIS }, { "opus", DSP_AUDIO_CONTAINER_OGG_OPUS },
        { "raw", DSP_AUDIO_CONTAINER_RAW },   { "pcm", DSP_AUDIO_CONTAINER_RAW },
        { "mp3", DSP_AUDIO_CONTAINER_MP3 },
    };
    if (!path)
        return DSP_AUDIO_CONTAINER_AUTO;
    if (strcmp(path, "-") == 0)
        return DSP_AUDIO_CONTAINER_AU;
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot || !dot[1])
        return DSP_AUDIO_CONTAINER_AUTO;
    char ext[8];
    size_t n = strlen(dot + 1);
    if (n >= sizeof ext)
        return DSP_AUDIO_CONTAINER_AUTO;
    for (size_t i = 0; i < n; i++)
        ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    ext[n] = '\0';
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcmp(ext, exts[i].ext) == 0)
            return exts[i].c;
    return DSP_AUDIO_CONTAINER_AUTO;
}

/* Bytes per sample of a PCM/float subtype (0: variable or unknown). */
static int sample_bytes(int sub)
{
    switch (sub) {
    case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: case SF_FORMAT_ULAW: case SF_FORMAT_ALAW: return 1;
    case SF_FORMAT_PCM_16: return 2;
    case SF_FORMAT_PCM_24: return 3;
    case SF_FORMAT_PCM_32: case SF_FORMAT_FLOAT: return 4;
    case SF_FORMAT_DOUBLE: return 8;
    default: return 0;
    }
}

/* A WAV whose length is announced and whose data stays a margin below the
 * 4 GiB RIFF limit is written as plain RIFF (WAVE_FORMAT_PCM: readable by
 * every reader, including Python's wave module, also mid-write); anything
 * else as RF64 with auto-downgrade, which is WAVE_FORMAT_EXTENSIBLE. */
static int wav_fits_riff(const dsp_audio_write_format *fmt, int sub)
{
    const int64_t limit = INT64_C(0xFFFFFFFF) - (INT64_C(1) << 20); /* header and chunks */
    int b = sample_bytes(sub);
    if (fmt->expected_frames <= 0 || b == 0)
        return 0;
    return fmt->expected_frames <= limit / ((int64_t)b * fmt->channels);
}

/* The rates and channel counts the codec containers hold.  libsndfile
 * reports a breach vaguely ("Format not recognised", at open or only at the
 * first write for Vorbis), so it is checked here and named.  Limits measured
 * on libsndfile 1.2 with libFLAC, libvorbis and libopus: FLAC 1..8 channels
 * up to 655350 Hz; Vorbis 1..255 channels up to 200000 Hz; Opus 1..255
 * channels at the five rates its codec runs at; MP3 (LAME) 1..2 channels at
 * the nine MPEG-1/2/2.5 rates. */
static int container_limits(dsp_audio_container c, const dsp_audio_write_format *fmt, const char *name,
                            dsp_error *err)
{
    int max_ch = DSP_AUDIO_MAX_CHANNELS, max_rate = 0;
    const char *instead = "";
    switch (c) {
    case DSP_AUDIO_CONTAINER_FLAC:
        max_ch = 8, max_rate = 655350, instead = ".wav, .w64 or .aiff";
        break;
    case DSP_AUDIO_CONTAINER_OGG_VORBIS:
        max_ch = 255, max_rate = 200000, instead = ".wav or .flac";
        break;
    case DSP_AUDIO_CONTAINER_OGG_OPUS:
        max_ch = 255, instead = ".wav, .flac or .ogg";
        break;
    case DSP_AUDIO_CONTAINER_MP3:
        max_ch = 2, instead = ".wav, .flac or .ogg";
        break;
    default:
        return DSP_OK;
    }
    if (fmt->channels > max_ch)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: %s cannot hold %d channels (at most %d); use %s",
                             name, container_names[c], fmt->channels, max_ch, instead);
    if (c == DSP_AUDIO_CONTAINER_OGG_OPUS) {
        int r = fmt->sample_rate_hz;
        if (r != 8000 && r != 12000 && r != 16000 && r != 24000 && r != 48000)
            return dsp_error_set(err, DSP_ERR_INVALID,
                                 "%s: Ogg/Opus cannot hold a sample rate of %d Hz (only 8000, 12000, 16000, "
                                 "24000 or 48000 Hz); use %s", name, r, instead);
    } else if (c == DSP_AUDIO_CONTAINER_MP3) {
        static const int mpeg_rates[] = { 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000 };
        int ok = 0;
        for (size_t i = 0; i < sizeof mpeg_rates / sizeof mpeg_rates[0]; i++)
            ok |= fmt->sample_rate_hz == mpeg_rates[i];
        if (!ok)
            return dsp_error_set(err, DSP_ERR_INVALID,
                                 "%s: MP3 cannot hold a sample rate of %d Hz (only 8000, 11025, 12000, 16000, "
                                 "22050, 24000, 32000, 44100 or 48000 Hz); use %s", name, fmt->sample_rate_hz,
                                 instead);
    } else if (fmt->sample_rate_hz > max_rate) {
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: %s cannot hold a sample rate of %d Hz (at most %d Hz); use %s",
                             name, container_names[c], fmt->sample_rate_hz, max_rate, instead);
    }
    return DSP_OK;
}

/* One line for a failed sf_open of `name` for writing. */
static int writer_open_failed(int sf_err, const char *name, dsp_error *err)
{
    const char *t = sf_strerror(NULL);
    if (sf_err == SF_ERR_SYSTEM) { /* "System error : No such file or directory." */
        const char *colon = t ? strstr(t, " : ") : NULL;
        char why[160];
        snprintf(why, sizeof why, "%s", colon ? colon + 3 : strerror(errno));
        size_t n = strlen(why);
        while (n && (why[n - 1] == '.' || why[n - 1] == ' '))
            why[--n] = '\0';
        return dsp_error_set(err, DSP_ERR_IO, "%s: cannot create: %s", name, why);
    }
    char why[160];
    const char *reason = sf_reason(t, why, sizeof why);
    return dsp_error_set(err, status_of(sf_err) ? status_of(sf_err) : DSP_ERR_IO, "%s: cannot write this format: %s",
                         name, reason ? reason : "libsndfile refused it");
}

/* Fills si from fmt; validates.  pipe: the descriptor cannot seek. */
static int write_sfinfo(SF_INFO *si, dsp_audio_container *cont, const dsp_audio_write_format *fmt,
                        const char *name, int pipe, dsp_error *err)
{
    dsp_audio_container c = fmt->container;
    if (c == DSP_AUDIO_CONTAINER_AUTO)
        c = dsp_audio_container_from_path(name);
    if (c == DSP_AUDIO_CONTAINER_AUTO)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "%s: cannot tell the audio format from the file name "
                             "(use .wav .flac .ogg .opus .mp3 .au .aiff .w64 .rf64 .raw)", name);
    if ((int)c < DSP_AUDIO_CONTAINER_WAV || (int)c > DSP_AUDIO_CONTAINER_MP3)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: unknown container %d", name, (int)c);
    if (fmt->sample_rate_hz <= 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: sample rate %d Hz must be positive",
                             name, fmt->sample_rate_hz);
    if (fmt->channels < 1 || fmt->channels > DSP_AUDIO_MAX_CHANNELS)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: channel count %d is out of range 1..%d",
                             name, fmt->channels, DSP_AUDIO_MAX_CHANNELS);
    int st = container_limits(c, fmt, name, err);
    if (st != DSP_OK)
        return st;
    if (pipe && c != DSP_AUDIO_CONTAINER_AU && c != DSP_AUDIO_CONTAINER_RAW)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "%s: %s cannot be written to a pipe (its header needs seeking); use AU or RAW",
                             name, container_names[c]);
    int major = 0, sub = 0;
    for (size_t i = 0; i < sizeof container_map / sizeof container_map[0]; i++)
        if (container_map[i].c == c) {
            major = container_map[i].major;
            sub = container_map[i].sub;
            break;
        }
    dsp_audio_subtype s = fmt->subtype;
    if (sub) { /* codec containers: the codec is the subtype */
        if (s != DSP_AUDIO_SUBTYPE_DEFAULT && subtype_to_sf(s) != sub)
            return dsp_error_set(err, DSP_ERR_INVALID, "%s: %s does not take subtype %s", name,
                                 container_names[c], subtype_name(s));
    } else {
        if (s == DSP_AUDIO_SUBTYPE_DEFAULT)
            s = DSP_AUDIO_SUBTYPE_PCM_16;
        sub = subtype_to_sf(s);
        if (!sub || s == DSP_AUDIO_SUBTYPE_VORBIS || s == DSP_AUDIO_SUBTYPE_OPUS)
            return dsp_error_set(err, DSP_ERR_INVALID, "%s: %s cannot hold subtype %s", name,
                                 container_names[c], subtype_name(s));
    }
    if (c == DSP_AUDIO_CONTAINER_FLAC && (s == DSP_AUDIO_SUBTYPE_FLOAT || s == DSP_AUDIO_SUBTYPE_DOUBLE))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "%s: FLAC cannot hold float samples (8-, 16- or 24-bit PCM only); use .wav, .w64 "
                             "or .aiff for float", name);
    int endian = endian_to_sf(fmt->endian);
    if (endian < 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: unknown endianness %d", name, (int)fmt->endian);
    if (c == DSP_AUDIO_CONTAINER_WAV && !wav_fits_riff(fmt, sub))
        major = SF_FORMAT_RF64; /* downgraded to WAV on close when small enough */
    memset(si, 0, sizeof *si);
    si->samplerate = fmt->sample_rate_hz;
    si->channels = fmt->channels;
    si->format = major | sub | endian;
    if (!sf_format_check(si))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "%s: libsndfile cannot write %s with %s samples, %d channels at %d Hz",
                             name, container_names[c], subtype_name(s), fmt->channels, fmt->sample_rate_hz);
    *cont = c;
    return DSP_OK;
}

static int is_integer_subtype(int format)
{
    switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: case SF_FORMAT_PCM_16:
    case SF_FORMAT_PCM_24: case SF_FORMAT_PCM_32:
        return 1;
    default:
        return 0;
    }
}

static int writer_finish_open(dsp_audio_writer **out, SNDFILE *sf, const SF_INFO *si,
                              dsp_audio_container c, const dsp_audio_write_format *fmt,
                              const char *name, int owns_path, int seekable, dsp_error *err)
{
    if ((si->format & SF_FORMAT_TYPEMASK) == SF_FORMAT_RF64 && c == DSP_AUDIO_CONTAINER_WAV)
        sf_command(sf, SFC_RF64_AUTO_DOWNGRADE, NULL, SF_TRUE);
    /* libsndfile wraps integer overflow around unless asked to clip. */
    int clips = is_integer_subtype(si->format) || (si->format & SF_FORMAT_SUBMASK) == SF_FORMAT_ULAW ||
                (si->format & SF_FORMAT_SUBMASK) == SF_FORMAT_ALAW;
    if (is_integer_subtype(si->format))
        sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    /* The header (data length) is otherwise written only at close: a killed
     * process would leave "0 data bytes".  Rewriting it costs one seek and
     * a few dozen bytes per second of audio (docs/reliability.md). */
    uint64_t header_every = 0;
    int with_header = c == DSP_AUDIO_CONTAINER_WAV || c == DSP_AUDIO_CONTAINER_RF64 ||
                      c == DSP_AUDIO_CONTAINER_W64 || c == DSP_AUDIO_CONTAINER_AIFF ||
                      c == DSP_AUDIO_CONTAINER_AU;
    if (seekable && with_header && fmt->header_update_frames >= 0)
        header_every = fmt->header_update_frames > 0 ? (uint64_t)fmt->header_update_frames
                                                     : (uint64_t)si->samplerate;
    if (fmt->vbr_quality >= 0 && (c == DSP_AUDIO_CONTAINER_OGG_VORBIS || c == DSP_AUDIO_CONTAINER_OGG_OPUS ||
                                  c == DSP_AUDIO_CONTAINER_MP3)) {
        double q = fmt->vbr_quality > 1.0 ? 1.0 : fmt->vbr_quality;
        sf_command(sf, SFC_SET_VBR_ENCODING_QUALITY, &q, sizeof q);
    }
    dsp_audio_writer *w = calloc(1, sizeof *w);
    float *scratch = calloc((size_t)DSP_AUDIO_WRITE_BLOCK_FRAMES * (size_t)si->channels, sizeof *scratch);
    char *path = owns_path ? strdup(name) : NULL;
    if (!w || !scratch || (owns_path && !path)) {
        free(w);
        free(scratch);
        free(path);
        sf_close(sf);
        if (owns_path)
            unlink(name);
        return dsp_error_set(err, DSP_ERR_NOMEM, "%s: out of memory", name);
    }
    w->sf = sf;
    w->channels = si->channels;
    w->clips = clips;
    w->header_every = header_every;
    w->owns_path = owns_path;
    w->scratch = scratch;
    w->path = path;
    w->format = si->format;
    w->fd = -1;
    w->seekable = seekable;
    w->wav_plain_at_close = seekable && c == DSP_AUDIO_CONTAINER_WAV &&
                            (si->format & SF_FORMAT_TYPEMASK) == SF_FORMAT_RF64 && is_integer_subtype(si->format) &&
                            si->channels <= 2;
    w->sample_rate_hz = si->samplerate;
    copy_name(w->name, sizeof w->name, name);
    *out = w;
    return DSP_OK;
}

int dsp_audio_writer_open_fd(dsp_audio_writer **out, int fd, const char *name,
                             const dsp_audio_write_format *fmt, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio writer: out pointer is NULL");
    *out = NULL;
    if (!name)
        name = "(descriptor)";
    if (!fmt)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: no output format given", name);
    if (fd < 0)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: invalid file descriptor %d", name, fd);
    int pipe = lseek(fd, 0, SEEK_CUR) < 0;
    dsp_audio_write_format f = *fmt;
    if (f.container == DSP_AUDIO_CONTAINER_AUTO && strcmp(name, "-") == 0)
        f.container = DSP_AUDIO_CONTAINER_AU;
    SF_INFO si;
    dsp_audio_container c;
    int st = write_sfinfo(&si, &c, &f, name, pipe, err);
    if (st != DSP_OK)
        return st;
    SNDFILE *sf = sf_open_fd(fd, SFM_WRITE, &si, SF_FALSE);
    if (!sf)
        return writer_open_failed(sf_error(NULL), name, err);
    int st2 = writer_finish_open(out, sf, &si, c, &f, name, 0, !pipe, err);
    if (st2 == DSP_OK)
        (*out)->fd = fd;
    return st2;
}

int dsp_audio_writer_open(dsp_audio_writer **out, const char *path,
                          const dsp_audio_write_format *fmt, dsp_error *err)
{
    if (!out)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio writer: out pointer is NULL");
    *out = NULL;
    if (!path || !*path)
        return dsp_error_set(err, DSP_ERR_INVALID, "audio writer: empty path");
    if (strcmp(path, "-") == 0)
        return dsp_audio_writer_open_fd(out, STDOUT_FILENO, "-", fmt, err);
    if (!fmt)
        return dsp_error_set(err, DSP_ERR_INVALID, "%s: no output format given", path);
    SF_INFO si;
    dsp_audio_container c;
    int st = write_sfinfo(&si, &c, fmt, path, 0, err);
    if (st != DSP_OK)
        return st;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return dsp_error_set(err, DSP_ERR_IO, "%s: is a directory", path);
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf)
        return writer_open_failed(sf_error(NULL), path, err);
    struct stat after;
    int seekable = stat(path, &after) == 0 && S_ISREG(after.st_mode);
    return writer_finish_open(out, sf, &si, c, fmt, path, 1, seekable, err);
}

int dsp_audio_writer_write(dsp_audio_writer *w, const float *in, size_t n_frames, dsp_error *err)
{
    if (!w || (n_frames && !in))
        return dsp_error_set(err, DSP_ERR_INVALID, "audio writer: NULL argument");
    size_t ch = (size_t)w->channels;
    size_t done = 0;
    while (done < n_frames) {
        size_t n = n_frames - done;
        if (n > DSP_AUDIO_WRITE_BLOCK_FRAMES)
            n = DSP_AUDIO_WRITE_BLOCK_FRAMES;
        memcpy(w->scratch, in + done * ch, n * ch * sizeof *in);
        w->nonfinite += dsp_sanitize_f32(w->scratch, n * ch);
        if (w->clips)
            w->clipped += count_beyond_full_scale(w->scratch, n * ch);
        errno = 0;
        sf_count_t put = sf_writef_float(w->sf, w->scratch, (sf_count_t)n);
        int write_errno = errno;
        if (put > 0)
            w->frames_written += (uint64_t)put;
        /* libsndfile's MP3 encoder (1.2) returns every frame as written when
         * its file writes fail, and clears the error at its next call: the
         * error has to be read here, after each call */
        if (put != (sf_count_t)n || sf_error(w->sf)) {
            char buf[160];
            const char *why = sf_error(w->sf) ? sf_reason(sf_strerror(w->sf), buf, sizeof buf) : NULL;
            if (!why) /* libsndfile's text is vague (Ogg: "internal error"): the system's */
                why = write_errno ? strerror(write_errno) : "the encoder failed";
            return dsp_error_set(err, DSP_ERR_IO, "%s: write failed after %llu frames: %s", w->name,
                                 (unsigned long long)w->frames_written, why);
        }
        done += n;
        if (w->header_every && w->frames_written - w->header_at >= w->header_every) {
            sf_command(w->sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
            w->header_at = w->frames_written;
        }
    }
    return DSP_OK;
}

uint64_t dsp_audio_writer_frames_written(const dsp_audio_writer *w) { return w ? w->frames_written : 0; }
uint64_t dsp_audio_writer_nonfinite_count(const dsp_audio_writer *w) { return w ? w->nonfinite : 0; }
uint64_t dsp_audio_writer_clipped_count(const dsp_audio_writer *w) { return w ? w->clipped : 0; }

/* libsndfile's RF64 writer, downgraded to RIFF, describes 1- and 2-channel
 * integer PCM as WAVE_FORMAT_EXTENSIBLE (a 40-byte fmt chunk), which some
 * readers (Python's wave module) refuse.  Rewrites that fmt chunk in place to
 * the plain 16-byte WAVE_FORMAT_PCM one followed by a JUNK chunk over the 24
 * freed bytes, so no byte after it moves.  Only a RIFF file whose fmt chunk is
 * exactly that EXTENSIBLE form (PCM subformat GUID, valid bits = container
 * bits, 1 or 2 channels) is touched; an RF64 file (past 4 GiB) stays as it
 * is.  fd: read/write descriptor of the closed file.  Returns 0 or -1 (I/O). */
static int wav_extensible_to_pcm(int fd)
{
    static const uint8_t pcm_guid_tail[14] = { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                               0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71 };
    uint8_t h[12];
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h)
        return 0; /* too short to be ours: leave it */
    if (memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0)
        return 0;
    off_t at = 12;
    for (int guard = 0; guard < 64; guard++) {
        uint8_t ch[8];
        if (pread(fd, ch, sizeof ch, at) != (ssize_t)sizeof ch)
            return 0;
        uint32_t size = (uint32_t)ch[4] | (uint32_t)ch[5] << 8 | (uint32_t)ch[6] << 16 | (uint32_t)ch[7] << 24;
        if (memcmp(ch, "data", 4) == 0)
            return 0;
        if (memcmp(ch, "fmt ", 4) == 0) {
            uint8_t f[40];
            if (size != 40 || pread(fd, f, sizeof f, at + 8) != (ssize_t)sizeof f)
                return 0;
            int tag = f[0] | f[1] << 8, channels = f[2] | f[3] << 8, bits = f[14] | f[15] << 8;
            int valid = f[18] | f[19] << 8, sub = f[24] | f[25] << 8;
            if (tag != 0xFFFE || channels < 1 || channels > 2 || valid != bits || sub != 1 ||
                memcmp(f + 26, pcm_guid_tail, sizeof pcm_guid_tail) != 0)
                return 0;
            uint8_t out[48];
            memcpy(out, "fmt ", 4);
            out[4] = 16, out[5] = out[6] = out[7] = 0;
            memcpy(out + 8, f, 16);
            out[8] = 1, out[9] = 0; /* WAVE_FORMAT_PCM */
            memcpy(out + 24, "JUNK", 4);
            out[28] = 16, out[29] = out[30] = out[31] = 0;
            memset(out + 32, 0, 16);
            return pwrite(fd, out, sizeof out, at) == (ssize_t)sizeof out ? 0 : -1;
        }
        at += 8 + (off_t)size + (size & 1);
    }
    return 0;
}

/* An MP3 file libsndfile (LAME) wrote to a seekable path starts with a
 * Xing/Info tag whose byte count is the whole stream's, rewritten at close.
 * libsndfile does not report a failed write of the encoder's last frames
 * inside sf_close (its close returns the descriptor's close status), so the
 * file is checked against the tag: returns the tag's byte count when the file
 * holds fewer bytes (*size set), 0 when complete or without a tag. */
static uint64_t mp3_short_of_tag(const char *path, uint64_t *size)
{
    uint8_t d[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* never waits on a FIFO */
    if (fd < 0)
        return 0;
    struct stat sb;
    ssize_t got = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? pread(fd, d, sizeof d, 0) : -1;
    close(fd);
    if (got < 48 || d[0] != 0xFF || (d[1] & 0xE0) != 0xE0)
        return 0; /* no frame sync at the start (an ID3v2 tag first: not written here) */
    for (size_t i = 4; i + 16 <= (size_t)got && i < 64; i++) {
        if (memcmp(d + i, "Xing", 4) != 0 && memcmp(d + i, "Info", 4) != 0)
            continue;
        uint32_t flags = (uint32_t)d[i + 4] << 24 | (uint32_t)d[i + 5] << 16 | (uint32_t)d[i + 6] << 8 | d[i + 7];
        size_t at = i + 8 + ((flags & 1u) ? 4 : 0);
        if (!(flags & 2u) || at + 4 > (size_t)got)
            return 0;
        uint64_t bytes = (uint64_t)d[at] << 24 | (uint64_t)d[at + 1] << 16 | (uint64_t)d[at + 2] << 8 | d[at + 3];
        *size = (uint64_t)sb.st_size;
        return (uint64_t)sb.st_size < bytes ? bytes : 0;
    }
    return 0;
}

int dsp_audio_writer_close(dsp_audio_writer *w, dsp_error *err)
{
    if (!w)
        return DSP_OK;
    int status = DSP_OK;
    int prior = sf_error(w->sf);
    int e = sf_close(w->sf);
    int type = w->format & SF_FORMAT_TYPEMASK, sub = w->format & SF_FORMAT_SUBMASK;
    /* libsndfile writes a 0-sample MP3 or FLAC as 0 bytes (its encoders
     * start on the first write) and a 0-sample Ogg/Opus that it cannot open
     * again; a hand-written bare FLAC STREAMINFO header reads as empty in
     * sox but not in libsndfile's seeking readers (Python's soundfile:
     * "psf_fseek failed").  No empty file of these is one every reader takes. */
    const char *no_empty = type == SF_FORMAT_MPEG                           ? "MP3"
                           : type == SF_FORMAT_FLAC                         ? "FLAC"
                           : type == SF_FORMAT_OGG && sub == SF_FORMAT_OPUS ? "Ogg/Opus"
                                                                            : NULL;
    if (e == 0 && prior == 0 && w->frames_written == 0 && no_empty && w->owns_path) {
        unlink(w->path);
        status = dsp_error_set(err, DSP_ERR_INVALID, "%s: no audio to write (0 samples), and an empty %s file is one "
                               "not every reader opens: not written (.wav or .ogg hold an empty result)",
                               w->name, no_empty);
    } else if (e != 0 || prior != 0)
        status = dsp_error_set(err, DSP_ERR_IO, "%s: closing failed, the file is incomplete: %s",
                               w->name, sf_error_number(e ? e : prior));
    else if (type == SF_FORMAT_MPEG && w->owns_path && w->seekable && w->frames_written > 0) {
        uint64_t size = 0, want = mp3_short_of_tag(w->path, &size);
        if (want)
            status = dsp_error_set(err, DSP_ERR_IO, "%s: closing failed, the file is incomplete: %llu of the "
                                   "%llu bytes the encoder made were written", w->name,
                                   (unsigned long long)size, (unsigned long long)want);
    } else if (w->wav_plain_at_close) {
        int fd = w->fd >= 0 ? w->fd : open(w->path, O_RDWR | O_CLOEXEC);
        int bad = fd < 0 || wav_extensible_to_pcm(fd) != 0;
        if (fd >= 0 && w->fd < 0)
            close(fd);
        if (bad)
            status = dsp_error_set(err, DSP_ERR_IO, "%s: cannot rewrite the WAV header: %s", w->name,
                                   strerror(errno));
    }
    /* an incomplete file is not left behind as if it were the result (as abort) */
    if (status != DSP_OK && w->owns_path && w->frames_written > 0 && w->seekable)
        unlink(w->path);
    free(w->path);
    free(w->scratch);
    free(w);
    return status;
}

void dsp_audio_writer_abort(dsp_audio_writer *w)
{
    if (!w)
        return;
    sf_close(w->sf);
    if (w->owns_path)
        unlink(w->path);
    free(w->path);
    free(w->scratch);
    free(w);
}
