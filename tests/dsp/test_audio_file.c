/* SPDX-License-Identifier: MIT */
/* Tests of dsp/audio_file.h: round trips through every container, RAW with an
 * explicit layout (checked against bytes this test writes by hand), edge
 * lengths, channel interleaving, clipping, non-finite samples, error
 * messages, AU through a pipe, and (with --long) flat memory while reading a
 * one-hour file.
 *
 * Files are written into a fresh directory under the current directory (the
 * build dir when run by meson) and deleted afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dsp/audio_file.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "audio_file_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
                unlink(p);
                rmdir(p);
            }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* A deterministic test signal: per channel, two tones plus a little noise,
 * peak below 0.9. */
static float *make_signal(size_t n, int ch, int rate)
{
    float *x = malloc((n ? n : 1) * (size_t)ch * sizeof *x);
    assert_non_null(x);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < ch; c++) {
            s = s * 1664525u + 1013904223u;
            double noise = ((double)(s >> 8) / 16777216.0 - 0.5) * 0.02;
            double t = (double)i / rate;
            x[i * (size_t)ch + (size_t)c] =
                (float)(0.5 * sin(2 * M_PI * (220.0 * (c + 1)) * t) +
                        0.3 * sin(2 * M_PI * 1234.5 * t + c) + noise);
        }
    return x;
}

static void write_file(const char *path, const dsp_audio_write_format *f, const float *x, size_t n)
{
    dsp_audio_writer *w = NULL;
    dsp_error err = { 0, "" };
    int st = dsp_audio_writer_open(&w, path, f, &err);
    if (st != DSP_OK)
        printf("open %s: %s\n", path, err.msg);
    assert_int_equal(st, DSP_OK);
    /* odd chunk sizes on purpose */
    size_t pos = 0, k = 0;
    static const size_t chunks[] = { 1, 999, 4096, 37, 10000 };
    while (pos < n) {
        size_t m = chunks[k++ % 5];
        if (m > n - pos) m = n - pos;
        assert_int_equal(dsp_audio_writer_write(w, x + pos * (size_t)f->channels, m, &err), DSP_OK);
        pos += m;
    }
    assert_int_equal(dsp_audio_writer_frames_written(w), n);
    st = dsp_audio_writer_close(w, &err);
    if (st != DSP_OK)
        printf("close %s: %s\n", path, err.msg);
    assert_int_equal(st, DSP_OK);
}

/* Reads a whole file in 1000-frame chunks; returns the samples (caller frees). */
static float *read_file(const char *path, const dsp_audio_raw_format *raw, dsp_audio_info *info,
                        size_t *n_frames, uint64_t *nonfinite)
{
    dsp_audio_reader *r = NULL;
    dsp_error err = { 0, "" };
    int st = dsp_audio_reader_open(&r, path, raw, &err);
    if (st != DSP_OK)
        printf("open %s: %s\n", path, err.msg);
    assert_int_equal(st, DSP_OK);
    *info = *dsp_audio_reader_info(r);
    size_t ch = (size_t)info->channels, cap = 1000, n = 0;
    float *x = malloc(cap * ch * sizeof *x);
    assert_non_null(x);
    for (;;) {
        if (n + 1000 > cap) {
            cap *= 2;
            x = realloc(x, cap * ch * sizeof *x);
            assert_non_null(x);
        }
        size_t got = 0;
        st = dsp_audio_reader_read(r, x + n * ch, 1000, &got, &err);
        if (st != DSP_OK)
            printf("read %s: %s\n", path, err.msg);
        assert_int_equal(st, DSP_OK);
        n += got;
        if (got == 0)
            break;
    }
    if (nonfinite)
        *nonfinite = dsp_audio_reader_nonfinite_count(r);
    dsp_audio_reader_close(r);
    *n_frames = n;
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* Best SNR (dB) of y against x over lags -max_lag..max_lag (lossy codecs may
 * shift by their own delay; the test reports the lag it found). */
static double best_snr(const float *x, const float *y, size_t n, int ch, int max_lag, int *lag_out)
{
    double best = -INFINITY;
    size_t edge = 2048;
    for (int lag = -max_lag; lag <= max_lag; lag++) {
        double s = 0, e = 0;
        for (size_t i = edge; i + edge < n; i++) {
            long j = (long)i + lag;
            for (int c = 0; c < ch; c++) {
                double xv = x[i * (size_t)ch + (size_t)c], yv = y[(size_t)j * (size_t)ch + (size_t)c];
                s += xv * xv;
                e += (yv - xv) * (yv - xv);
            }
        }
        double snr = 10 * log10(s / (e > 0 ? e : 1e-300));
        if (snr > best) {
            best = snr;
            *lag_out = lag;
        }
    }
    return best;
}

struct fmt_case {
    const char *file;
    dsp_audio_container container; /* AUTO: from the extension */
    dsp_audio_subtype subtype;
    int rate, channels;
    dsp_audio_container expect_container;
    double tol;       /* lossless: max |error|; lossy: < 0, see min_snr */
    double min_snr;   /* lossy only */
};

static void test_round_trip_formats(void **state)
{
    (void)state;
    const double lsb16 = 1.0 / 32768, lsb24 = 1.0 / 8388608, lsb8 = 1.0 / 128;
    /* Lossy thresholds: at default quality Vorbis keeps tones (which carry
     * all but 1e-4 of this signal's power) at roughly 30 dB SNR or better; the
     * psycho-acoustic model discards what it deems inaudible (the
     * -40 dB noise floor among it), so 20 dB is a safe floor that still
     * fails on misalignment, a wrong rate or a dropped channel (~0 dB).
     * Opus at default bitrate behaves alike. */
    static const struct fmt_case cases[] = {
        { "a.wav", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 16000, 1, DSP_AUDIO_CONTAINER_WAV, 1.0 / 32768, 0 },
        { "b.wav", 0, DSP_AUDIO_SUBTYPE_PCM_24, 44100, 2, DSP_AUDIO_CONTAINER_WAV, 1.0 / 8388608, 0 },
        { "c.wav", 0, DSP_AUDIO_SUBTYPE_FLOAT, 48000, 2, DSP_AUDIO_CONTAINER_WAV, 0.0, 0 },
        { "d.wav", 0, DSP_AUDIO_SUBTYPE_PCM_U8, 8000, 1, DSP_AUDIO_CONTAINER_WAV, 1.0 / 128, 0 },
        { "e.rf64", 0, DSP_AUDIO_SUBTYPE_PCM_16, 22050, 2, DSP_AUDIO_CONTAINER_RF64, 1.0 / 32768, 0 },
        { "f.w64", 0, DSP_AUDIO_SUBTYPE_PCM_24, 96000, 1, DSP_AUDIO_CONTAINER_W64, 1.0 / 8388608, 0 },
        { "g.aiff", 0, DSP_AUDIO_SUBTYPE_PCM_16, 44100, 2, DSP_AUDIO_CONTAINER_AIFF, 1.0 / 32768, 0 },
        { "h.au", 0, DSP_AUDIO_SUBTYPE_PCM_16, 16000, 1, DSP_AUDIO_CONTAINER_AU, 1.0 / 32768, 0 },
        { "i.au", 0, DSP_AUDIO_SUBTYPE_FLOAT, 16000, 3, DSP_AUDIO_CONTAINER_AU, 0.0, 0 },
        { "j.flac", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 16000, 1, DSP_AUDIO_CONTAINER_FLAC, 1.0 / 32768, 0 },
        { "k.flac", 0, DSP_AUDIO_SUBTYPE_PCM_24, 48000, 2, DSP_AUDIO_CONTAINER_FLAC, 1.0 / 8388608, 0 },
        { "l.data", DSP_AUDIO_CONTAINER_FLAC, DSP_AUDIO_SUBTYPE_PCM_16, 8000, 2, DSP_AUDIO_CONTAINER_FLAC, 1.0 / 32768, 0 },
        { "m.ogg", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 44100, 2, DSP_AUDIO_CONTAINER_OGG_VORBIS, -1, 20.0 },
        { "n.ogg", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 16000, 1, DSP_AUDIO_CONTAINER_OGG_VORBIS, -1, 20.0 },
        { "o.opus", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 48000, 2, DSP_AUDIO_CONTAINER_OGG_OPUS, -1, 20.0 },
        { "p.opus", 0, DSP_AUDIO_SUBTYPE_DEFAULT, 16000, 1, DSP_AUDIO_CONTAINER_OGG_OPUS, -1, 20.0 },
        { "q.WAV", 0, DSP_AUDIO_SUBTYPE_PCM_32, 16000, 1, DSP_AUDIO_CONTAINER_WAV, 1.0 / 8388608, 0 },
        { "r.aif", 0, DSP_AUDIO_SUBTYPE_FLOAT, 16000, 1, DSP_AUDIO_CONTAINER_AIFF, 0.0, 0 },
        { "s.au", 0, DSP_AUDIO_SUBTYPE_ULAW, 8000, 1, DSP_AUDIO_CONTAINER_AU, 0.04, 0 },
    };
    (void)lsb16; (void)lsb24; (void)lsb8;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct fmt_case *c = &cases[k];
        size_t n = (size_t)c->rate / 2 + 17; /* ~0.5 s, odd */
        float *x = make_signal(n, c->channels, c->rate);
        dsp_audio_write_format f = { c->container, c->subtype, DSP_AUDIO_ENDIAN_FILE, c->rate, c->channels, -1, 0, 0 };
        const char *path = tmp_path(c->file);
        write_file(path, &f, x, n);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, NULL, &info, &m, NULL);
        assert_int_equal(info.channels, c->channels);
        assert_int_equal(info.sample_rate_hz, c->rate);
        assert_int_equal(info.container, c->expect_container);
        if (c->tol >= 0) {
            double e = max_abs_diff(x, y, n * (size_t)c->channels);
            printf("%-7s %-40s %6d Hz %d ch: %zu frames, max |err| %.3g (limit %.3g)\n",
                   c->file, info.format, c->rate, c->channels, m, e, c->tol);
            assert_int_equal(info.n_frames, (int64_t)n);
            assert_int_equal(m, n);
            assert_true(e <= c->tol);
        } else {
            int lag = 0;
            double snr = m == n ? best_snr(x, y, n, c->channels, 4, &lag) : -INFINITY;
            printf("%-7s %-40s %6d Hz %d ch: %zu frames (wrote %zu), SNR %.1f dB at lag %d (limit %.0f dB)\n",
                   c->file, info.format, c->rate, c->channels, m, n, snr, lag, c->min_snr);
            assert_int_equal(m, n);
            assert_int_equal(info.n_frames, (int64_t)n);
            assert_int_equal(lag, 0);
            assert_true(snr >= c->min_snr);
        }
        free(x);
        free(y);
        unlink(path);
    }
}

/* 0, 1, 100 frames: lengths kept in every container that can hold them. */
static void test_small_lengths(void **state)
{
    (void)state;
    static const char *const files[] = { "z.wav", "z.flac", "z.au", "z.aiff", "z.w64", "z.ogg", "z.opus" };
    static const size_t lens[] = { 0, 1, 100 };
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++)
        for (size_t li = 0; li < 3; li++) {
            size_t n = lens[li];
            float *x = make_signal(n, 1, 16000);
            dsp_audio_write_format f = { 0, 0, 0, 16000, 1, -1, 0, 0 };
            const char *path = tmp_path(files[fi]);
            if (n == 0 && (strstr(files[fi], ".opus") || strstr(files[fi], ".flac"))) {
                /* libsndfile 1.2.0 writes an empty FLAC as 0 bytes and an
                 * empty Ogg/Opus stream that it then refuses ("file is
                 * malformed"): close removes the file and says so, naming it
                 * (audio_file.h) */
                dsp_audio_writer *w = NULL;
                dsp_error err = { 0, "" };
                assert_int_equal(dsp_audio_writer_open(&w, path, &f, &err), DSP_OK);
                int st = dsp_audio_writer_close(w, &err);
                printf("%-7s   0 frames written: close -> %d: %s\n", files[fi], st, err.msg);
                assert_int_equal(st, DSP_ERR_INVALID);
                assert_non_null(strstr(err.msg, path));
                assert_non_null(strstr(err.msg, "no audio to write"));
                assert_int_equal(access(path, F_OK), -1);
                free(x);
                continue;
            }
            write_file(path, &f, x, n);
            dsp_audio_info info;
            size_t m = 0;
            float *y = read_file(path, NULL, &info, &m, NULL);
            printf("%-7s %3zu frames written, %3zu read, header says %lld\n", files[fi], n, m,
                   (long long)info.n_frames);
            assert_int_equal(m, n);
            assert_int_equal(info.n_frames, (int64_t)n);
            free(x);
            free(y);
            unlink(path);
        }
}

/* dsp_audio_downmix_mean against a double-precision mean (and, for 1 and 2
 * channels, exactly: a copy, and float32 (l + r) / 2), on awkward lengths,
 * also in place. */
static void test_downmix_mean(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 7, 253 };
    static const int chans[] = { 1, 2, 3, 6 };
    double worst = 0;
    for (size_t li = 0; li < 4; li++)
        for (size_t ci = 0; ci < 4; ci++) {
            size_t n = lens[li], nch = (size_t)chans[ci];
            float *x = malloc((n * nch + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
            assert_non_null(x);
            assert_non_null(y);
            for (size_t i = 0; i < n * nch; i++) x[i] = (float)sin(0.37 * (double)i + (double)nch);
            dsp_audio_downmix_mean(y, x, n, chans[ci]);
            for (size_t i = 0; i < n; i++) {
                double ref = 0;
                for (size_t k = 0; k < nch; k++) ref += x[i * nch + k];
                ref /= (double)nch;
                worst = fmax(worst, fabs(ref - y[i]));
                if (nch == 1) assert_true(y[i] == x[i]);
                if (nch == 2) assert_true(y[i] == (x[2 * i] + x[2 * i + 1]) / 2.0f);
            }
            dsp_audio_downmix_mean(x, x, n, chans[ci]); /* in place */
            for (size_t i = 0; i < n; i++) assert_true(x[i] == y[i]);
            free(x);
            free(y);
        }
    printf("downmix mean: 1, 2, 3, 6 channels x 0, 1, 7, 253 frames, worst |err| vs double %.3g "
           "(tolerance 1e-6)\n", worst);
    assert_true(worst <= 1e-6);
}

/* Six channels, each a different ramp: interleaving is kept exactly. */
/* The wFormatTag of a WAV file's fmt chunk (1 PCM, 3 float, 0xFFFE
 * EXTENSIBLE), -1 when there is none. */
static int wav_format_tag(const char *path)
{
    unsigned char h[4096];
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    size_t n = fread(h, 1, sizeof h, fp);
    fclose(fp);
    if (n < 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) return -1;
    for (size_t at = 12; at + 10 <= n;) {
        size_t size = (size_t)h[at + 4] | (size_t)h[at + 5] << 8 | (size_t)h[at + 6] << 16 | (size_t)h[at + 7] << 24;
        if (!memcmp(h + at, "fmt ", 4)) return h[at + 8] | h[at + 9] << 8;
        at += 8 + size + (size & 1);
    }
    return -1;
}

/* A .wav whose length is not announced (expected_frames 0: RF64 with
 * auto-downgrade) is plain WAVE_FORMAT_PCM after close for 1 and 2 integer
 * channels, reads back exactly, and stays EXTENSIBLE for float and for 3
 * channels, where the rewrite does not apply. */
static void test_wav_unknown_length_plain(void **state)
{
    (void)state;
    enum { N = 3001 };
    static float x[N * 3];
    for (size_t i = 0; i < N * 3; i++) x[i] = (float)((double)((int)(i * 37 % 2001) - 1000) / 32768.0);
    static const struct { int ch; dsp_audio_subtype sub; int tag; } cases[] = {
        { 1, DSP_AUDIO_SUBTYPE_PCM_16, 1 }, { 2, DSP_AUDIO_SUBTYPE_PCM_16, 1 },
        { 2, DSP_AUDIO_SUBTYPE_PCM_24, 1 }, { 2, DSP_AUDIO_SUBTYPE_FLOAT, 0xFFFE },
        { 3, DSP_AUDIO_SUBTYPE_PCM_16, 0xFFFE },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dsp_audio_write_format f = { 0, cases[k].sub, 0, 16000, cases[k].ch, -1, 0, 0 };
        const char *path = tmp_path("unknown.wav");
        write_file(path, &f, x, N);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, NULL, &info, &m, NULL);
        double e = max_abs_diff(x, y, (size_t)N * (size_t)cases[k].ch);
        int tag = wav_format_tag(path);
        printf("unknown-length wav, %d ch, subtype %d: format tag 0x%X (want 0x%X), %zu frames, max |err| %.3g\n",
               cases[k].ch, (int)cases[k].sub, (unsigned)tag, (unsigned)cases[k].tag, m, e);
        assert_int_equal(tag, cases[k].tag);
        assert_int_equal(m, N);
        assert_true(e == 0.0);
        free(y);
        unlink(path);
    }
}

/* .mp3: the extension maps to MP3, mono and stereo at an MPEG rate write and
 * read back with their channels and length; other rates and 3 channels are
 * refused in one line naming MP3. */
static void test_mp3(void **state)
{
    (void)state;
    assert_int_equal(dsp_audio_container_from_path("a/b.MP3"), DSP_AUDIO_CONTAINER_MP3);
    enum { N = 4800 };
    static float x[N * 2];
    for (size_t i = 0; i < N * 2; i++) x[i] = (float)(0.3 * sin(2 * M_PI * 440.0 * (double)(i / 2) / 48000.0));
    for (int ch = 1; ch <= 2; ch++) {
        dsp_audio_write_format f = { 0, 0, 0, 48000, ch, -1, 0, 0 };
        const char *path = tmp_path("t.mp3");
        write_file(path, &f, x, N);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, NULL, &info, &m, NULL);
        printf("mp3 %d ch: container %d, %d channels, %zu frames (wrote %d): %s\n", ch, (int)info.container,
               info.channels, m, N, info.format);
        assert_int_equal(info.container, DSP_AUDIO_CONTAINER_MP3);
        assert_int_equal(info.channels, ch);
        assert_true(m + 1152 >= N && m <= N + 1152);
        free(y);
        unlink(path);
    }
    static const struct { int rate, ch; const char *word; } bad[] = { { 96000, 1, "96000 Hz" }, { 48000, 3, "3 channels" } };
    for (size_t k = 0; k < 2; k++) {
        dsp_audio_write_format f = { 0, 0, 0, bad[k].rate, bad[k].ch, -1, 0, 0 };
        dsp_audio_writer *w = NULL;
        dsp_error err = { 0 };
        int st = dsp_audio_writer_open(&w, tmp_path("bad.mp3"), &f, &err);
        printf("mp3 %d Hz %d ch: %s\n", bad[k].rate, bad[k].ch, err.msg);
        assert_int_equal(st, DSP_ERR_INVALID);
        assert_null(w);
        assert_non_null(strstr(err.msg, "MP3"));
        assert_non_null(strstr(err.msg, bad[k].word));
    }
}

/* Writes 10 s of 48 kHz mono noise as MP3 to path with a file-size limit of
 * limit bytes (0: none) in a child whose SIGXFSZ is ignored, so writes past it
 * fail (EFBIG) as on a full disk.  Returns 0 when the writer reported success,
 * 1 when a write or the close reported the failure naming the file, 2 when the
 * child itself failed. */
static int mp3_with_size_limit(const char *path, long limit)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { (rlim_t)limit, (rlim_t)limit };
        if (limit > 0 && setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(2);
        enum { N = 480000, BLOCK = 4800 };
        static float x[BLOCK];
        uint32_t r = 1;
        dsp_audio_write_format f = { DSP_AUDIO_CONTAINER_MP3, 0, 0, 48000, 1, -1, 0, 0 };
        dsp_audio_writer *w = NULL;
        dsp_error e = { 0, "" };
        int st = dsp_audio_writer_open(&w, path, &f, &e);
        for (int b = 0; b < N / BLOCK && st == DSP_OK; b++) {
            for (int i = 0; i < BLOCK; i++) {
                r = r * 1664525u + 1013904223u;
                x[i] = 0.3f * ((float)(r >> 8) / 16777216.0f - 0.5f);
            }
            st = dsp_audio_writer_write(w, x, BLOCK, &e);
        }
        if (st == DSP_OK)
            st = dsp_audio_writer_close(w, &e);
        else
            dsp_audio_writer_abort(w);
        printf("mp3 with a file-size limit of %ld bytes -> %d: %s\n", limit, st, e.msg);
        fflush(stdout);
        _exit(st == DSP_OK ? 0 : strstr(e.msg, path) ? 1 : 2);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* libsndfile's MP3 encoder does not report failed file writes by its return
 * value, and not at all in its final flush inside sf_close: a full disk used to
 * leave a third of the audio with success reported.  Both places must fail. */
static void test_mp3_full_disk(void **state)
{
    (void)state;
    const char *path = tmp_path("limit.mp3");
    assert_int_equal(mp3_with_size_limit(path, 0), 0); /* no limit: the whole file */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    long full = (long)sb.st_size;
    printf("complete MP3: %ld bytes\n", full);
    assert_true(full > 20000);
    unlink(path);
    /* a third of the file fits: writes fail mid-stream */
    assert_int_equal(mp3_with_size_limit(path, full / 3), 1);
    /* all but the last byte fits: the encoder's final frames at close fail */
    assert_int_equal(mp3_with_size_limit(path, full - 1), 1);
    unlink(path);
}

static void test_six_channels(void **state)
{
    (void)state;
    enum { CH = 6, N = 5000 };
    float *x = malloc(N * CH * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < N; i++)
        for (int c = 0; c < CH; c++)
            x[i * CH + (size_t)c] = (float)((c + 1) * 0.1 - 0.65 + 0.0001 * (double)(i % 100));
    static const char *const files[] = { "six.wav", "six.flac", "six.w64" };
    for (size_t fi = 0; fi < 3; fi++) {
        dsp_audio_write_format f = { 0, DSP_AUDIO_SUBTYPE_PCM_24, 0, 48000, CH, -1, 0, 0 };
        const char *path = tmp_path(files[fi]);
        write_file(path, &f, x, N);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, NULL, &info, &m, NULL);
        double e = max_abs_diff(x, y, N * CH);
        printf("%s: %d channels, %zu frames, max |err| %.3g\n", files[fi], info.channels, m, e);
        assert_int_equal(info.channels, CH);
        assert_int_equal(m, N);
        assert_true(e <= 1.0 / 8388608);
        free(y);
        unlink(path);
    }
    free(x);
}

/* +-1.5 into integer files comes back as full scale with the same sign. */
static void test_clipping(void **state)
{
    (void)state;
    float x[8] = { 1.5f, -1.5f, 1.0f, -1.0f, 3e9f, -3e9f, 0.25f, 1.0001f };
    static const struct { const char *file; dsp_audio_subtype s; } cases[] = {
        { "clip16.wav", DSP_AUDIO_SUBTYPE_PCM_16 }, { "clip24.wav", DSP_AUDIO_SUBTYPE_PCM_24 },
        { "clip32.wav", DSP_AUDIO_SUBTYPE_PCM_32 }, { "clip16.au", DSP_AUDIO_SUBTYPE_PCM_16 },
        { "clip16.flac", DSP_AUDIO_SUBTYPE_PCM_16 }, { "clip8.wav", DSP_AUDIO_SUBTYPE_PCM_U8 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dsp_audio_write_format f = { 0, cases[k].s, 0, 16000, 1, -1, 0, 0 };
        const char *path = tmp_path(cases[k].file);
        write_file(path, &f, x, 8);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, NULL, &info, &m, NULL);
        assert_int_equal(m, 8);
        printf("%-11s +1.5 -> %.6f, -1.5 -> %.6f, +3e9 -> %.6f, -3e9 -> %.6f\n", cases[k].file,
               y[0], y[1], y[4], y[5]);
        double tol = cases[k].s == DSP_AUDIO_SUBTYPE_PCM_U8 ? 1.0 / 64 : 1.0 / 16384;
        for (int i = 0; i < 6; i++)
            assert_true(fabs(y[i] - (x[i] > 0 ? 1.0 : -1.0)) <= tol);
        assert_true(fabs(y[6] - 0.25) <= tol);
        assert_true(y[7] > 1.0 - tol);
        free(y);
        unlink(path);
    }
}

/* NaN/Inf handed to the writer: written as 0 and counted. */
static void test_nonfinite_write(void **state)
{
    (void)state;
    float x[10] = { 0.5f, NAN, -0.25f, INFINITY, -INFINITY, 0.125f, NAN, 0, 0, -0.5f };
    static const char *const files[] = { "nf.wav", "nf16.flac" };
    for (int k = 0; k < 2; k++) {
        dsp_audio_write_format f = { 0, k ? DSP_AUDIO_SUBTYPE_PCM_16 : DSP_AUDIO_SUBTYPE_FLOAT, 0, 16000, 2, -1, 0, 0 };
        dsp_audio_writer *w = NULL;
        const char *path = tmp_path(files[k]);
        assert_int_equal(dsp_audio_writer_open(&w, path, &f, NULL), DSP_OK);
        assert_int_equal(dsp_audio_writer_write(w, x, 5, NULL), DSP_OK);
        uint64_t bad = dsp_audio_writer_nonfinite_count(w);
        assert_int_equal(dsp_audio_writer_close(w, NULL), DSP_OK);
        dsp_audio_info info;
        size_t m = 0;
        uint64_t bad_read = 99;
        float *y = read_file(path, NULL, &info, &m, &bad_read);
        printf("%s: writer replaced %llu non-finite samples; reader found %llu\n", files[k],
               (unsigned long long)bad, (unsigned long long)bad_read);
        assert_int_equal(bad, 4);
        assert_int_equal(bad_read, 0);
        assert_int_equal(m, 5);
        for (int i = 0; i < 10; i++)
            assert_true(fabs(y[i] - (isfinite(x[i]) ? x[i] : 0.0f)) <= 1.0 / 32768);
        free(y);
        unlink(path);
    }
}

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A float WAV written byte by byte (so the writer's zeroing cannot hide
 * anything) holding NaN and Inf: the reader zeroes and counts them. */
static void test_nonfinite_read(void **state)
{
    (void)state;
    float data[8] = { 0.5f, NAN, -INFINITY, 0.25f, INFINITY, -0.75f, NAN, 1.0f };
    uint8_t hdr[44];
    memcpy(hdr, "RIFF", 4);
    put_le(hdr + 4, 36 + sizeof data, 4);
    memcpy(hdr + 8, "WAVEfmt ", 8);
    put_le(hdr + 16, 16, 4);
    put_le(hdr + 20, 3, 2);        /* WAVE_FORMAT_IEEE_FLOAT */
    put_le(hdr + 22, 1, 2);        /* mono */
    put_le(hdr + 24, 16000, 4);
    put_le(hdr + 28, 16000 * 4, 4);
    put_le(hdr + 32, 4, 2);
    put_le(hdr + 34, 32, 2);
    memcpy(hdr + 36, "data", 4);
    put_le(hdr + 40, sizeof data, 4);
    uint8_t body[sizeof data];
    for (int i = 0; i < 8; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        put_le(body + 4 * i, u, 4);
    }
    const char *path = tmp_path("nanread.wav");
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(hdr, 1, sizeof hdr, fp);
    fwrite(body, 1, sizeof body, fp);
    fclose(fp);
    dsp_audio_info info;
    size_t m = 0;
    uint64_t bad = 0;
    float *y = read_file(path, NULL, &info, &m, &bad);
    printf("hand-made float WAV: %zu frames, %llu non-finite replaced, format \"%s\"\n", m,
           (unsigned long long)bad, info.format);
    assert_int_equal(m, 8);
    assert_int_equal(bad, 4);
    assert_int_equal(info.subtype, DSP_AUDIO_SUBTYPE_FLOAT);
    for (int i = 0; i < 8; i++)
        assert_true(y[i] == (isfinite(data[i]) ? data[i] : 0.0f));
    free(y);
    unlink(path);
}

/* RAW: bytes written here by hand in a known layout, read with an explicit
 * format; and a RAW round trip through the writer. */
static void test_raw(void **state)
{
    (void)state;
    enum { N = 300, CH = 2 };
    int32_t v[N * CH];
    for (int i = 0; i < N * CH; i++)
        v[i] = (int32_t)((i * 7919) % 65536) - 32768;
    /* PCM_16 big-endian, stereo */
    uint8_t be16[N * CH * 2];
    for (int i = 0; i < N * CH; i++) {
        be16[2 * i] = (uint8_t)((uint16_t)v[i] >> 8);
        be16[2 * i + 1] = (uint8_t)((uint16_t)v[i] & 0xFF);
    }
    /* PCM_24 little-endian, stereo: value * 256 + 77 */
    uint8_t le24[N * CH * 3];
    for (int i = 0; i < N * CH; i++)
        put_le(le24 + 3 * i, (uint32_t)(v[i] * 256 + 77) & 0xFFFFFF, 3);
    struct { const char *file; const uint8_t *bytes; size_t len; dsp_audio_raw_format fmt; double scale, add; } cases[] = {
        { "be16.raw", be16, sizeof be16, { 11025, CH, DSP_AUDIO_SUBTYPE_PCM_16, DSP_AUDIO_ENDIAN_BIG }, 32768.0, 0 },
        { "le24.bin", le24, sizeof le24, { 16000, CH, DSP_AUDIO_SUBTYPE_PCM_24, DSP_AUDIO_ENDIAN_LITTLE }, 8388608.0, 77 },
    };
    for (int k = 0; k < 2; k++) {
        const char *path = tmp_path(cases[k].file);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        fwrite(cases[k].bytes, 1, cases[k].len, fp);
        fclose(fp);
        dsp_audio_info info;
        size_t m = 0;
        float *y = read_file(path, &cases[k].fmt, &info, &m, NULL);
        double worst = 0;
        for (int i = 0; i < N * CH; i++) {
            double want = (k == 0 ? v[i] : v[i] * 256.0 + 77) / cases[k].scale;
            double d = fabs(y[i] - want);
            if (d > worst) worst = d;
        }
        printf("%s (%s): %zu frames at %d Hz, max |err| vs hand-decoded %.3g\n", cases[k].file,
               info.format, m, info.sample_rate_hz, worst);
        assert_int_equal(m, N);
        assert_int_equal(info.n_frames, N);
        assert_int_equal(info.sample_rate_hz, cases[k].fmt.sample_rate_hz);
        assert_int_equal(info.container, DSP_AUDIO_CONTAINER_RAW);
        assert_true(worst <= 1e-7);
        free(y);
        unlink(path);
    }
    /* writer RAW round trip: FLOAT big-endian, 3 channels */
    float *x = make_signal(1000, 3, 8000);
    dsp_audio_write_format wf = { DSP_AUDIO_CONTAINER_RAW, DSP_AUDIO_SUBTYPE_FLOAT, DSP_AUDIO_ENDIAN_BIG, 8000, 3, -1, 0, 0 };
    const char *path = tmp_path("f32be.pcm");
    write_file(path, &wf, x, 1000);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 1000 * 3 * 4); /* no header */
    dsp_audio_raw_format rf = { 8000, 3, DSP_AUDIO_SUBTYPE_FLOAT, DSP_AUDIO_ENDIAN_BIG };
    dsp_audio_info info;
    size_t m = 0;
    float *y = read_file(path, &rf, &info, &m, NULL);
    assert_int_equal(m, 1000);
    assert_true(max_abs_diff(x, y, 3000) == 0.0);
    free(x);
    free(y);
    unlink(path);
}

static void expect_open_error(const char *path, const dsp_audio_raw_format *raw, int want_status,
                              const char *needle)
{
    dsp_audio_reader *r = (dsp_audio_reader *)&r;
    dsp_error err = { 0, "" };
    int st = dsp_audio_reader_open(&r, path, raw, &err);
    printf("open %s -> %d: %s\n", path, st, err.msg);
    assert_int_equal(st, want_status);
    assert_int_equal(err.status, want_status);
    assert_null(r);
    assert_non_null(strstr(err.msg, path));
    if (needle)
        assert_non_null(strstr(err.msg, needle));
    assert_null(strchr(err.msg, '\n'));
}

/* Reads to the end and returns the status of the read that ended it. */
static int read_to_end(const char *path, dsp_error *err)
{
    dsp_audio_reader *r = NULL;
    int st = dsp_audio_reader_open(&r, path, NULL, err);
    if (st != DSP_OK)
        return st;
    float buf[4096];
    size_t got;
    do {
        st = dsp_audio_reader_read(r, buf, 4096 / (size_t)dsp_audio_reader_info(r)->channels, &got, err);
    } while (st == DSP_OK && got > 0);
    dsp_audio_reader_close(r);
    return st;
}

static void truncate_copy(const char *src, const char *dst, long keep)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    long left = keep;
    size_t n;
    while (left > 0 && (n = fread(buf, 1, left < 4096 ? (size_t)left : 4096, in)) > 0) {
        fwrite(buf, 1, n, out);
        left -= (long)n;
    }
    fclose(in);
    fclose(out);
}

static void test_read_errors(void **state)
{
    (void)state;
    /* nonexistent, directory, text */
    expect_open_error(tmp_path("does-not-exist.wav"), NULL, DSP_ERR_IO, "No such file");
    expect_open_error(tmpdir, NULL, DSP_ERR_IO, "directory");
    const char *txt = tmp_path("notes.txt");
    FILE *fp = fopen(txt, "w");
    assert_non_null(fp);
    for (int i = 0; i < 50; i++)
        fputs("this is a text file, not audio\n", fp);
    fclose(fp);
    expect_open_error(txt, NULL, DSP_ERR_FORMAT, NULL);
    /* empty file */
    const char *empty = tmp_path("empty.wav");
    fclose(fopen(empty, "w"));
    expect_open_error(empty, NULL, DSP_ERR_FORMAT, NULL);

    /* truncated files: header cut, data chunk cut (WAV, AIFF), FLAC cut */
    float *x = make_signal(20000, 1, 16000);
    dsp_audio_write_format f = { 0, 0, 0, 16000, 1, -1, 0, 0 };
    static const char *const srcs[] = { "full.wav", "full.aiff", "full.flac", "full.au" };
    for (int k = 0; k < 4; k++)
        write_file(tmp_path(srcs[k]), &f, x, 20000);
    free(x);
    truncate_copy(tmp_path("full.wav"), tmp_path("cut-header.wav"), 30);
    expect_open_error(tmp_path("cut-header.wav"), NULL, DSP_ERR_FORMAT, NULL);
    truncate_copy(tmp_path("full.wav"), tmp_path("cut-data.wav"), 44 + 5000);
    expect_open_error(tmp_path("cut-data.wav"), NULL, DSP_ERR_FORMAT, "truncated");
    truncate_copy(tmp_path("full.aiff"), tmp_path("cut-data.aiff"), 3000);
    expect_open_error(tmp_path("cut-data.aiff"), NULL, DSP_ERR_FORMAT, "truncated");
    /* FLAC and AU: open succeeds (header intact), the read that ends early fails. */
    static const char *const cut_late[] = { "cut.flac", "cut.au" };
    static const char *const full_late[] = { "full.flac", "full.au" };
    for (int k = 0; k < 2; k++) {
        struct stat sb;
        assert_int_equal(stat(tmp_path(full_late[k]), &sb), 0);
        truncate_copy(tmp_path(full_late[k]), tmp_path(cut_late[k]), (long)sb.st_size / 2);
        dsp_error err = { 0, "" };
        int st = read_to_end(tmp_path(cut_late[k]), &err);
        printf("read %s -> %d: %s\n", tmp_path(cut_late[k]), st, err.msg);
        if (st == DSP_OK) /* libsndfile noticed nothing: must not happen */
            fail_msg("%s: truncation not detected", cut_late[k]);
        assert_non_null(strstr(err.msg, cut_late[k]));
    }
    /* the intact ones read cleanly */
    for (int k = 0; k < 4; k++) {
        dsp_error err = { 0, "" };
        assert_int_equal(read_to_end(tmp_path(srcs[k]), &err), DSP_OK);
    }

    /* bad raw formats */
    const char *raw = tmp_path("some.raw");
    fp = fopen(raw, "wb");
    assert_non_null(fp);
    fwrite("0123456789abcdef", 1, 16, fp);
    fclose(fp);
    dsp_audio_raw_format bad[] = {
        { 0, 1, DSP_AUDIO_SUBTYPE_PCM_16, 0 },
        { -8000, 1, DSP_AUDIO_SUBTYPE_PCM_16, 0 },
        { 16000, 0, DSP_AUDIO_SUBTYPE_PCM_16, 0 },
        { 16000, 5000, DSP_AUDIO_SUBTYPE_PCM_16, 0 },
        { 16000, 1, DSP_AUDIO_SUBTYPE_DEFAULT, 0 },
        { 16000, 1, DSP_AUDIO_SUBTYPE_VORBIS, 0 },
        { 16000, 1, (dsp_audio_subtype)77, 0 },
        { 16000, 1, DSP_AUDIO_SUBTYPE_PCM_16, (dsp_audio_endian)9 },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        expect_open_error(raw, &bad[k], DSP_ERR_INVALID, "raw format");
}

static void expect_writer_error(const char *path, const dsp_audio_write_format *f, const char *needle)
{
    dsp_audio_writer *w = (dsp_audio_writer *)&w;
    dsp_error err = { 0, "" };
    int st = dsp_audio_writer_open(&w, path, f, &err);
    printf("write %s -> %d: %s\n", path, st, err.msg);
    assert_true(st < 0);
    assert_int_equal(err.status, st);
    assert_null(w);
    assert_non_null(strstr(err.msg, path));
    if (needle)
        assert_non_null(strstr(err.msg, needle));
}

static void test_write_errors(void **state)
{
    (void)state;
    dsp_audio_write_format f = { 0, 0, 0, 16000, 1, -1, 0, 0 };
    expect_writer_error(tmp_path("noext"), &f, "file name");
    expect_writer_error(tmp_path("x.mp9"), &f, "file name");
    expect_writer_error(tmp_path("no-such-dir/x.wav"), &f, "No such file");
    expect_writer_error(tmpdir, &(dsp_audio_write_format){ DSP_AUDIO_CONTAINER_WAV, 0, 0, 16000, 1, -1, 0, 0 }, "directory");
    expect_writer_error(tmp_path("x.flac"), &(dsp_audio_write_format){ 0, DSP_AUDIO_SUBTYPE_FLOAT, 0, 16000, 1, -1, 0, 0 }, "FLAC");
    expect_writer_error(tmp_path("x.opus"), &(dsp_audio_write_format){ 0, 0, 0, 44100, 1, -1, 0, 0 }, "sample rate");
    expect_writer_error(tmp_path("x.ogg"), &(dsp_audio_write_format){ 0, DSP_AUDIO_SUBTYPE_PCM_16, 0, 16000, 1, -1, 0, 0 }, "subtype");
    expect_writer_error(tmp_path("x.wav"), &(dsp_audio_write_format){ 0, 0, 0, 0, 1, -1, 0, 0 }, "sample rate 0");
    expect_writer_error(tmp_path("x.wav"), &(dsp_audio_write_format){ 0, 0, 0, 16000, 0, -1, 0, 0 }, "channel count 0");
    expect_writer_error(tmp_path("x.wav"), &(dsp_audio_write_format){ 0, DSP_AUDIO_SUBTYPE_VORBIS, 0, 16000, 1, -1, 0, 0 }, "subtype");
    /* a pipe cannot take WAV */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    dsp_audio_writer *w = NULL;
    dsp_error err = { 0, "" };
    assert_int_equal(dsp_audio_writer_open_fd(&w, fds[1], "pipe.wav", &f, &err), DSP_ERR_INVALID);
    printf("write pipe.wav -> %s\n", err.msg);
    assert_non_null(strstr(err.msg, "pipe"));
    close(fds[0]);
    close(fds[1]);
    /* a full disk: the write or the close must fail, naming the file */
    if (access("/dev/full", W_OK) == 0) {
        static const dsp_audio_container conts[] = { DSP_AUDIO_CONTAINER_AU, DSP_AUDIO_CONTAINER_WAV,
                                                     DSP_AUDIO_CONTAINER_FLAC };
        for (int k = 0; k < 3; k++) {
            dsp_audio_write_format ff = { conts[k], 0, 0, 16000, 1, -1, 0, 0 };
            dsp_error e1 = { 0, "" };
            int st = dsp_audio_writer_open(&w, "/dev/full", &ff, &e1);
            if (st == DSP_OK) {
                float ramp[4096];
                for (int i = 0; i < 4096; i++)
                    ramp[i] = (float)i / 4096.0f;
                for (int i = 0; i < 64 && st == DSP_OK; i++)
                    st = dsp_audio_writer_write(w, ramp, 4096, &e1);
                int cst = dsp_audio_writer_close(w, st == DSP_OK ? &e1 : NULL);
                if (st == DSP_OK)
                    st = cst;
            }
            printf("/dev/full (container %d) -> %d: %s\n", (int)conts[k], st, e1.msg);
            assert_true(st < 0);
            assert_non_null(strstr(e1.msg, "/dev/full"));
        }
    }
    /* abort removes the half-written file */
    const char *p = tmp_path("aborted.wav");
    assert_int_equal(dsp_audio_writer_open(&w, p, &f, NULL), DSP_OK);
    float z[16] = { 0 };
    assert_int_equal(dsp_audio_writer_write(w, z, 16, NULL), DSP_OK);
    dsp_audio_writer_abort(w);
    assert_int_equal(access(p, F_OK), -1);
    dsp_audio_writer_abort(NULL);
    assert_int_equal(dsp_audio_writer_close(NULL, NULL), DSP_OK);
    dsp_audio_reader_close(NULL);
}

/* AU written to "-" by a child whose stdout is a pipe; read back here from
 * the pipe's read end, either as a descriptor or as "-" (stdin). */
static void au_pipe(int via_stdin)
{
    enum { N = 50000, CH = 2 };
    float *x = make_signal(N, CH, 16000);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(10);
        close(fds[1]);
        dsp_audio_write_format f = { DSP_AUDIO_CONTAINER_AUTO, DSP_AUDIO_SUBTYPE_PCM_24, 0, 16000, CH, -1, 0, 0 };
        dsp_audio_writer *w = NULL;
        dsp_error err = { 0, "" };
        if (dsp_audio_writer_open(&w, "-", &f, &err) != DSP_OK) {
            fprintf(stderr, "child: %s\n", err.msg);
            _exit(11);
        }
        for (size_t pos = 0; pos < N; pos += 777) {
            size_t m = N - pos < 777 ? N - pos : 777;
            if (dsp_audio_writer_write(w, x + pos * CH, m, &err) != DSP_OK) {
                fprintf(stderr, "child: %s\n", err.msg);
                _exit(12);
            }
        }
        if (dsp_audio_writer_close(w, &err) != DSP_OK) {
            fprintf(stderr, "child: %s\n", err.msg);
            _exit(13);
        }
        _exit(0);
    }
    close(fds[1]);
    dsp_audio_reader *r = NULL;
    dsp_error err = { 0, "" };
    int saved_stdin = -1, st;
    if (via_stdin) { /* read "-": the pipe becomes this process's stdin */
        saved_stdin = dup(STDIN_FILENO);
        assert_true(saved_stdin >= 0);
        assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
        st = dsp_audio_reader_open(&r, "-", NULL, &err);
    } else {
        st = dsp_audio_reader_open_fd(&r, fds[0], "pipe", NULL, &err);
    }
    if (st != DSP_OK)
        printf("open pipe: %s\n", err.msg);
    assert_int_equal(st, DSP_OK);
    const dsp_audio_info *info = dsp_audio_reader_info(r);
    float *y = malloc((N + 10) * CH * sizeof *y);
    assert_non_null(y);
    size_t n = 0, got = 0;
    do {
        size_t room = N + 10 - n < 1000 ? N + 10 - n : 1000;
        st = dsp_audio_reader_read(r, y + n * CH, room, &got, &err);
        if (st != DSP_OK)
            printf("read pipe: %s\n", err.msg);
        assert_int_equal(st, DSP_OK);
        n += got;
    } while (got > 0 && n < N + 10);
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    double e = max_abs_diff(x, y, N * CH);
    printf("AU through a pipe (%s): %s, %d ch, %d Hz, header frames %lld, read %zu (wrote %d), max |err| %.3g, child exit %d\n",
           via_stdin ? "reader on \"-\"" : "reader on the fd", info->format, info->channels, info->sample_rate_hz, (long long)info->n_frames, n, N, e,
           WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    assert_int_equal(info->container, DSP_AUDIO_CONTAINER_AU);
    assert_int_equal(info->channels, CH);
    assert_int_equal(n, N);
    assert_true(e <= 1.0 / 8388608);
    dsp_audio_reader_close(r);
    close(fds[0]);
    if (saved_stdin >= 0) {
        dup2(saved_stdin, STDIN_FILENO);
        close(saved_stdin);
    }
    free(x);
    free(y);
}

static void test_au_pipe(void **state) { (void)state; au_pipe(0); }
static void test_au_pipe_stdin(void **state) { (void)state; au_pipe(1); }

/* ------------------------------------------------------------- slow test */

static long vm_hwm_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, "VmHWM:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(fp);
    return v;
}

/* The sample the one-hour file holds at index i: every 16-bit code is used,
 * so each frame read is checked exactly. */
static float hour_sample(uint64_t i)
{
    return (float)((int32_t)((i * 7919u + (i >> 16)) % 65536u) - 32768) / 32768.0f;
}

static void test_memory_one_hour(void **state)
{
    (void)state;
    const uint64_t rate = 16000, n = rate * 3600;
    enum { CHUNK = 4096 };
    const char *path = tmp_path("hour.wav");
    float buf[CHUNK];
    dsp_audio_write_format f = { 0, DSP_AUDIO_SUBTYPE_PCM_16, 0, (int)rate, 1, -1, 0, 0 };
    dsp_audio_writer *w = NULL;
    assert_int_equal(dsp_audio_writer_open(&w, path, &f, NULL), DSP_OK);
    long hwm_w0 = 0;
    for (uint64_t pos = 0; pos < n; pos += CHUNK) {
        size_t m = n - pos < CHUNK ? (size_t)(n - pos) : CHUNK;
        for (size_t k = 0; k < m; k++)
            buf[k] = hour_sample(pos + k);
        assert_int_equal(dsp_audio_writer_write(w, buf, m, NULL), DSP_OK);
        if (pos < 60 * rate && pos + CHUNK >= 60 * rate)
            hwm_w0 = vm_hwm_kib();
    }
    assert_int_equal(dsp_audio_writer_close(w, NULL), DSP_OK);
    long hwm_w1 = vm_hwm_kib();
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);

    dsp_audio_reader *r = NULL;
    assert_int_equal(dsp_audio_reader_open(&r, path, NULL, NULL), DSP_OK);
    assert_int_equal(dsp_audio_reader_info(r)->n_frames, (int64_t)n);
    uint64_t total = 0, wrong = 0;
    long hwm_r0 = -1;
    size_t got;
    do {
        assert_int_equal(dsp_audio_reader_read(r, buf, CHUNK, &got, NULL), DSP_OK);
        for (size_t k = 0; k < got; k++)
            wrong += buf[k] != hour_sample(total + k);
        if (total < 60 * rate && total + got >= 60 * rate)
            hwm_r0 = vm_hwm_kib();
        total += got;
    } while (got > 0);
    long hwm_r1 = vm_hwm_kib();
    dsp_audio_reader_close(r);
    unlink(path);
    printf("one hour 16 kHz mono PCM_16: %lld bytes, %llu frames read, %llu wrong samples\n",
           (long long)sb.st_size, (unsigned long long)total, (unsigned long long)wrong);
    printf("peak RSS (VmHWM): writing: %ld KiB after 1 min, %ld KiB at end (+%ld KiB); "
           "reading: %ld KiB after 1 min, %ld KiB at end (+%ld KiB); limit +2048 KiB\n",
           hwm_w0, hwm_w1, hwm_w1 - hwm_w0, hwm_r0, hwm_r1, hwm_r1 - hwm_r0);
    assert_int_equal(total, n);
    assert_int_equal(wrong, 0);
    assert_true(hwm_r0 > 0 && hwm_w0 > 0);
    assert_true(hwm_r1 - hwm_r0 < 2048);
    assert_true(hwm_w1 - hwm_w0 < 2048);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--long") == 0) {
        const struct CMUnitTest slow[] = { cmocka_unit_test(test_memory_one_hour) };
        return cmocka_run_group_tests_name("audio_file_long", slow, setup_dir, remove_dir);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_formats),
        cmocka_unit_test(test_small_lengths),
        cmocka_unit_test(test_six_channels),
        cmocka_unit_test(test_wav_unknown_length_plain),
        cmocka_unit_test(test_mp3),
        cmocka_unit_test(test_mp3_full_disk),
        cmocka_unit_test(test_downmix_mean),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_nonfinite_write),
        cmocka_unit_test(test_nonfinite_read),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_au_pipe),
        cmocka_unit_test(test_au_pipe_stdin),
    };
    return cmocka_run_group_tests_name("audio_file", tests, setup_dir, remove_dir);
}
