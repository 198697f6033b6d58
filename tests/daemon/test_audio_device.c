/* SPDX-License-Identifier: MIT */
/* Capture and playback through PortAudio on virtual ALSA devices
 * (tests/daemon/vmic/README.md): the test writes known float32 patterns and
 * an asoundrc into a temporary directory and points ALSA at it before the
 * first PortAudio call, then checks the device list, the spec lookup and its
 * errors, the exact samples captured (mono and stereo), the rate fallback,
 * overflow counting and recovery, reopen (also after the device vanished)
 * and that what is played (mono and stereo) reaches the file behind the
 * playback device.
 *
 * The virtual devices are not paced: ALSA's null PCM is always ready, so the
 * callbacks run back to back as fast as the CPU allows.  A file of N frames is
 * delivered in a few milliseconds; after its end the ALSA file plugin repeats
 * stale data.  The checks are written for that: a ring longer than the file
 * receives the whole file before anything is dropped.
 *
 * Usage: test_audio_device ASOUNDRC_TEMPLATE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "audio_device.h"

#define MONO_FRAMES 48000    /* 3 s at 16 kHz */
#define STEREO_FRAMES 32000  /* 2 s at 16 kHz */
#define TWO_CH_FRAMES 16000  /* 1 s at 16 kHz, ssmd_2ch_mic (opens with 2 channels only) */

static char tmpdir[256];
static char errbuf[1024];

/* The pattern an int16 device would deliver: a counter, exact in float. */
static float mono_value(size_t k) { return (float)((long)(k % 30000) - 15000) / 32768.0f; }
/* ssmd_2ch_mic's right channel: another counter, never equal to the left one
 * for long (so a left-only capture is told apart). */
static float right_value(size_t k) { return (float)(7000 - (long)(k * 3 % 20000)) / 32768.0f; }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static int write_floats(const char *name, const float *x, size_t n)
{
    char p[512];
    path_in_tmp(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t w = fwrite(x, sizeof(float), n, f); /* little-endian host (x86-64, aarch64) */
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int write_mono_file(void)
{
    float *x = malloc(MONO_FRAMES * sizeof(float));
    if (!x) return -1;
    for (size_t k = 0; k < MONO_FRAMES; k++) x[k] = mono_value(k);
    int rc = write_floats("mono.f32", x, MONO_FRAMES);
    free(x);
    return rc;
}

static const char *paced_template, *paced_lib;

/* Appends the template at path to out with @DIR@ and @PACED_LIB@ replaced. */
static int copy_template(const char *path, FILE *out)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        char *s = line;
        for (;;) {
            char *d = strstr(s, "@DIR@"), *l = strstr(s, "@PACED_LIB@");
            char *at = d && (!l || d < l) ? d : l;
            if (!at) break;
            fwrite(s, 1, (size_t)(at - s), out);
            fputs(at == d ? tmpdir : (paced_lib ? paced_lib : ""), out);
            s = at + (at == d ? 5 : 11);
        }
        fputs(s, out);
    }
    fclose(in);
    return 0;
}

static int setup_vmic(const char *template_path)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ssmd-test-audio-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    if (write_mono_file() != 0) return -1;
    float *st = malloc(2 * STEREO_FRAMES * sizeof(float));
    if (!st) return -1;
    for (size_t k = 0; k < STEREO_FRAMES; k++) {
        st[2 * k] = mono_value(k);
        st[2 * k + 1] = -mono_value(k);
    }
    int rc = write_floats("stereo.f32", st, 2 * STEREO_FRAMES);
    for (size_t k = 0; rc == 0 && k < TWO_CH_FRAMES; k++) {
        st[2 * k] = mono_value(k);
        st[2 * k + 1] = right_value(k);
    }
    if (rc == 0) rc = write_floats("two_ch.f32", st, 2 * TWO_CH_FRAMES);
    free(st);
    if (rc != 0) return -1;

    /* asoundrc from the templates, @DIR@ -> tmpdir, @PACED_LIB@ -> the module */
    char p[512];
    path_in_tmp(p, sizeof p, "asoundrc");
    FILE *out = fopen(p, "wb");
    if (!out) return -1;
    if (copy_template(template_path, out) != 0 ||
        (paced_template && copy_template(paced_template, out) != 0)) {
        fclose(out);
        return -1;
    }
    if (fclose(out) != 0) return -1;
    /* Before any PortAudio call: ALSA reads its configuration once. */
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s", p);
    setenv("ALSA_CONFIG_PATH", cfg, 1);
    setenv("HOME", tmpdir, 1); /* no personal ~/.asoundrc */
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- tests */

static void test_list(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(ssmd_audio_list(f, errbuf, sizeof errbuf), 0);
    fclose(f);
    printf("%s", text);
    assert_non_null(strstr(text, "ssmd_vmic"));
    assert_non_null(strstr(text, "ssmd_stereo_mic"));
    assert_non_null(strstr(text, "ssmd_2ch_mic"));
    assert_non_null(strstr(text, "ssmd_vout"));
    assert_non_null(strstr(text, "index"));
    free(text);
}

static void test_open_by_name_and_index(void **state)
{
    (void)state;
    ssmd_capture *c = ssmd_capture_open("VMIC", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("open 'VMIC': %s", errbuf);
    assert_string_equal(ssmd_capture_device_name(c), "ssmd_vmic");
    assert_int_equal(ssmd_capture_rate_hz(c), 16000);
    assert_int_equal(ssmd_capture_channels(c), 1);
    int index = ssmd_capture_device_index(c);
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), 0);
    ssmd_capture_close(c);

    char spec[32];
    snprintf(spec, sizeof spec, "%d", index);
    c = ssmd_capture_open(spec, 16000, 1, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("open '%s': %s", spec, errbuf);
    assert_string_equal(ssmd_capture_device_name(c), "ssmd_vmic");
    assert_int_equal(ssmd_capture_device_index(c), index);
    ssmd_capture_close(c);

    /* exact name wins over an earlier substring match: "ssmd_stereo_mic"
     * contains "mic", "ssmd_vmic" is listed first */
    c = ssmd_capture_open("Ssmd_Stereo_Mic", 16000, 2, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("open 'Ssmd_Stereo_Mic': %s", errbuf);
    assert_string_equal(ssmd_capture_device_name(c), "ssmd_stereo_mic");
    ssmd_capture_close(c);
    c = ssmd_capture_open("mic", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("open 'mic': %s", errbuf);
    printf("'mic' -> %s (lowest index containing it)\n", ssmd_capture_device_name(c));
    assert_string_equal(ssmd_capture_device_name(c), "ssmd_vmic");
    ssmd_capture_close(c);

    /* "" = PortAudio's default input device (with no sound card, the first
     * device that has inputs) */
    c = ssmd_capture_open("", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("open '': %s", errbuf);
    printf("'' -> %s\n", ssmd_capture_device_name(c));
    ssmd_capture_close(c);

    /* playback by name */
    ssmd_playback *p = ssmd_playback_open("vout", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!p) fail_msg("playback 'vout': %s", errbuf);
    assert_string_equal(ssmd_playback_device_name(p), "ssmd_vout");
    ssmd_playback_close(p);
    ssmd_capture_close(NULL);
    ssmd_playback_close(NULL);
}

static void test_bad_specs(void **state)
{
    (void)state;
    assert_null(ssmd_capture_open("usb", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_string_equal(errbuf, "device 'usb': no input device matches (see ssmd --list-devices)");

    assert_null(ssmd_capture_open("999", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_true(strncmp(errbuf, "device 999: index out of range (", 32) == 0);
    assert_null(ssmd_capture_open("99999999999999999999", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_non_null(strstr(errbuf, "index out of range"));

    /* an output-only device asked for capture, by name and by index */
    assert_null(ssmd_capture_open("vout", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_string_equal(errbuf, "device 'vout': no input device matches ('ssmd_vout' has no input "
                                "channels; see ssmd --list-devices)");
    /* an input-only device asked for playback */
    assert_null(ssmd_playback_open("ssmd_vmic", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_string_equal(errbuf, "device 'ssmd_vmic': no output device matches ('ssmd_vmic' has no "
                                "output channels; see ssmd --list-devices)");
    assert_null(ssmd_playback_open("nothing-like-this", 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_string_equal(errbuf, "device 'nothing-like-this': no output device matches "
                                "(see ssmd --list-devices)");

    /* a playback rate the device cannot do: no fallback for playback */
    assert_null(ssmd_playback_open("ssmd_vout", 100, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_non_null(strstr(errbuf, "device 'ssmd_vout' ('ssmd_vout'): cannot open 100 Hz, 1 channels: "));
    /* more channels than the device has */
    assert_null(ssmd_playback_open("ssmd_vout", 16000, 129, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_non_null(strstr(errbuf, "129 channels asked, the device has 128"));

    /* parameters */
    assert_null(ssmd_capture_open("ssmd_vmic", 16000, 1, 0, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    assert_non_null(strstr(errbuf, "bad parameters"));
    assert_null(ssmd_capture_open("ssmd_vmic", 16000, 0, 100, errbuf, sizeof errbuf));
    assert_null(ssmd_capture_open("ssmd_vmic", -5, 1, 100, errbuf, sizeof errbuf));
    assert_null(ssmd_playback_open("ssmd_vout", 0, 1, 100, errbuf, sizeof errbuf));
    assert_null(ssmd_playback_open("ssmd_vout", 16000, 0, 100, errbuf, sizeof errbuf));
    char longspec[400];
    memset(longspec, 'x', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = 0;
    assert_null(ssmd_capture_open(longspec, 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    /* NULL err is allowed */
    assert_null(ssmd_capture_open("usb", 16000, 1, 100, NULL, 0));
}

static void test_output_only_by_index(void **state)
{
    (void)state;
    ssmd_playback *p = ssmd_playback_open("ssmd_vout", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!p) fail_msg("%s", errbuf);
    ssmd_playback_close(p);
    /* find ssmd_vout's index from the list */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(ssmd_audio_list(f, errbuf, sizeof errbuf), 0);
    fclose(f);
    int index = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int i;
        char name[128];
        if (sscanf(line, "%d %127s", &i, name) == 2 && strcmp(name, "ssmd_vout") == 0) index = i;
    }
    free(text);
    assert_true(index >= 0);
    char spec[32], want[128];
    snprintf(spec, sizeof spec, "%d", index);
    assert_null(ssmd_capture_open(spec, 16000, 1, 100, errbuf, sizeof errbuf));
    printf("%s\n", errbuf);
    snprintf(want, sizeof want, "device %d ('ssmd_vout'): has no input channels", index);
    assert_string_equal(errbuf, want);
}

/* Reads n frames (polling like the daemon's loop) into out. */
static size_t read_frames(ssmd_capture *c, float *out, size_t n)
{
    size_t got = 0;
    for (int tries = 0; got < n && tries < 5000; tries++) {
        size_t want = n - got < 700 ? n - got : 700; /* odd chunk size on purpose */
        size_t k = ssmd_capture_read(c, out + got * (size_t)ssmd_capture_channels(c), want);
        got += k;
        if (k == 0) sleep_ms(1);
    }
    return got;
}

static void test_capture_exact_mono(void **state)
{
    (void)state;
    /* 4 s ring > the 3 s file: nothing of the file is dropped */
    ssmd_capture *c = ssmd_capture_open("ssmd_vmic", 16000, 1, 4000, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    float *x = malloc(MONO_FRAMES * sizeof(float));
    assert_non_null(x);
    size_t got = read_frames(c, x, MONO_FRAMES);
    ssmd_capture_stats st;
    ssmd_capture_stats_get(c, &st);
    size_t bad = 0, first_bad = SIZE_MAX;
    double worst = 0.0, sum2 = 0.0;
    for (size_t k = 0; k < got; k++) {
        double e = fabs((double)x[k] - (double)mono_value(k));
        if (e > worst) worst = e;
        if (e != 0.0 && bad++ == 0) first_bad = k;
        sum2 += (double)x[k] * x[k];
    }
    printf("mono capture: %zu of %d frames at %d Hz (%.2f s), %zu differ (first at %zu), worst "
           "error %.3g, rms %.6f; stats: captured %llu dropped %llu pa_overflows %llu\n",
           got, MONO_FRAMES, ssmd_capture_rate_hz(c), (double)got / 16000.0, bad,
           first_bad == SIZE_MAX ? 0 : first_bad, worst, sqrt(sum2 / (double)(got ? got : 1)),
           (unsigned long long)st.frames_captured, (unsigned long long)st.frames_dropped,
           (unsigned long long)st.pa_overflows);
    assert_int_equal(got, MONO_FRAMES);
    assert_int_equal(bad, 0);
    assert_true(st.frames_captured >= MONO_FRAMES);
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), 0);
    free(x);
    ssmd_capture_close(c);
}

/* ssmd_paced_mic (vmic/pcm_paced.c) has a clock: it can never have delivered more
 * frames than the rate times the time since it was opened (the unpaced ssmd_vmic
 * delivers its whole 3 s file within milliseconds), and what it delivers is the
 * file, exactly.  The 5 s deadline for 0.25 s of audio only stops a hang. */
static void test_capture_paced(void **state)
{
    (void)state;
    enum { WANT = 4000, CAP = 8000 };
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    ssmd_capture *c = ssmd_capture_open("ssmd_paced_mic", 16000, 1, 4000, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    float *x = malloc(CAP * sizeof(float));
    assert_non_null(x);
    size_t got = 0;
    double elapsed = 0.0;
    while (got < WANT && elapsed < 5.0) {
        size_t k = ssmd_capture_read(c, x + got, CAP - got);
        got += k;
        if (k == 0) sleep_ms(5);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    ssmd_capture_stats st;
    ssmd_capture_stats_get(c, &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    elapsed = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
    size_t bad = 0;
    for (size_t k = 0; k < got; k++)
        if (x[k] != mono_value(k)) bad++;
    printf("paced capture: %zu frames read, %llu captured in %.3f s since open (at most %.0f at "
           "16 kHz), %zu differ; process CPU %.3f s\n",
           got, (unsigned long long)st.frames_captured, elapsed, 16000.0 * elapsed, bad, cpu);
    assert_true(got >= WANT);
    assert_true((double)st.frames_captured <= 16000.0 * elapsed + 1.0);
    assert_int_equal(bad, 0);
    free(x);
    ssmd_capture_close(c);
}

static void test_capture_exact_stereo(void **state)
{
    (void)state;
    ssmd_capture *c = ssmd_capture_open("ssmd_stereo_mic", 16000, 2, 3000, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    assert_int_equal(ssmd_capture_channels(c), 2);
    float *x = malloc(2 * STEREO_FRAMES * sizeof(float));
    assert_non_null(x);
    size_t got = read_frames(c, x, STEREO_FRAMES);
    size_t bad = 0;
    for (size_t k = 0; k < got; k++)
        if (x[2 * k] != mono_value(k) || x[2 * k + 1] != -mono_value(k)) bad++;
    printf("stereo capture: %zu of %d frames, %zu frames differ\n", got, STEREO_FRAMES, bad);
    assert_int_equal(got, STEREO_FRAMES);
    assert_int_equal(bad, 0);
    free(x);
    ssmd_capture_close(c);

    /* max_channels 1 on a stereo device opens one channel */
    c = ssmd_capture_open("ssmd_stereo_mic", 16000, 1, 100, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    assert_int_equal(ssmd_capture_channels(c), 1);
    ssmd_capture_close(c);
}

/* A device that opens with exactly 2 channels (a stereo-only microphone):
 * asked for 1 channel, capture opens both (PortAudio alone would open 2 and
 * pass on the left one) and delivers them exactly; also at a rate that falls
 * back to the default. */
static void test_capture_stereo_only(void **state)
{
    (void)state;
    static const struct { int rate_hz, max_channels; } cases[] = { { 16000, 1 }, { 16000, 3 }, { 100, 1 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssmd_capture *c = ssmd_capture_open("ssmd_2ch_mic", cases[i].rate_hz, cases[i].max_channels,
                                            3000, errbuf, sizeof errbuf);
        if (!c) fail_msg("%s", errbuf);
        printf("stereo-only device asked for %d Hz, %d channel(s): opened %d Hz, %d channels "
               "(the device reports %d)\n", cases[i].rate_hz, cases[i].max_channels,
               ssmd_capture_rate_hz(c), ssmd_capture_channels(c), ssmd_capture_device_channels(c));
        assert_int_equal(ssmd_capture_device_channels(c), 2);
        assert_int_equal(ssmd_capture_channels(c), 2);
        if (i == 0) {
            float *x = malloc(2 * TWO_CH_FRAMES * sizeof(float));
            assert_non_null(x);
            size_t got = read_frames(c, x, TWO_CH_FRAMES), bad = 0;
            for (size_t k = 0; k < got; k++)
                if (x[2 * k] != mono_value(k) || x[2 * k + 1] != right_value(k)) bad++;
            printf("stereo-only capture: %zu of %d frames, %zu frames differ\n", got, TWO_CH_FRAMES, bad);
            assert_int_equal(got, TWO_CH_FRAMES);
            assert_int_equal(bad, 0);
            free(x);
        }
        ssmd_capture_close(c);
    }
}

static void test_rate_fallback(void **state)
{
    (void)state;
    /* PortAudio's ALSA host refuses 100 Hz (measured: 1000 to 384000 Hz
     * open on these devices): capture falls back to the device's default
     * rate and the caller resamples. */
    ssmd_capture *c = ssmd_capture_open("ssmd_vmic", 100, 1, 500, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    printf("asked 100 Hz, opened %d Hz\n", ssmd_capture_rate_hz(c));
    assert_int_equal(ssmd_capture_rate_hz(c), 44100);
    float x[1000];
    assert_int_equal(read_frames(c, x, 1000), 1000);
    for (size_t k = 0; k < 1000; k++) assert_true(x[k] == mono_value(k));
    ssmd_capture_close(c);
    /* 0 = the default rate */
    c = ssmd_capture_open("ssmd_vmic", 0, 1, 500, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    assert_int_equal(ssmd_capture_rate_hz(c), 44100);
    ssmd_capture_close(c);
    /* a supported non-default rate is used as asked */
    c = ssmd_capture_open("ssmd_vmic", 48000, 1, 500, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    assert_int_equal(ssmd_capture_rate_hz(c), 48000);
    ssmd_capture_close(c);
}

static void test_overflow_and_resume(void **state)
{
    (void)state;
    /* 50 ms at 16 kHz = 800 frames, rounded up to a 1024-float ring */
    ssmd_capture *c = ssmd_capture_open("ssmd_vmic", 16000, 1, 50, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    sleep_ms(200); /* the owner stalls; the device keeps delivering */
    ssmd_capture_stats before;
    ssmd_capture_stats_get(c, &before);
    float x[2048];
    size_t got = ssmd_capture_read(c, x, 2048);
    /* write-what-fits: the ring kept the OLDEST frames, the newer were dropped */
    size_t bad = 0;
    for (size_t k = 0; k < got; k++) if (x[k] != mono_value(k)) bad++;
    printf("after a 200 ms stall: read %zu frames (%zu differ from the file's start), "
           "captured %llu, dropped %llu\n", got, bad, (unsigned long long)before.frames_captured,
           (unsigned long long)before.frames_dropped);
    assert_int_equal(got, 1024);
    assert_int_equal(bad, 0);
    assert_true(ssmd_capture_overflows(c) > 0);
    assert_true(before.frames_dropped + 1024 >= before.frames_captured);
    /* reading resumes: new frames arrive once there is room */
    size_t again = 0;
    ssmd_capture_stats after;
    for (int i = 0; i < 2000; i++) { /* at most 2 s, on a loaded machine */
        sleep_ms(1);
        if (again == 0) again = ssmd_capture_read(c, x, 2048);
        ssmd_capture_stats_get(c, &after);
        if (again > 0 && after.frames_dropped > before.frames_dropped) break;
    }
    printf("resumed: %zu frames; dropped now %llu\n", again, (unsigned long long)after.frames_dropped);
    assert_true(again > 0);
    assert_true(after.frames_dropped > before.frames_dropped);
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), 0);
    ssmd_capture_close(c);
}

static void test_reopen(void **state)
{
    (void)state;
    ssmd_capture *c = ssmd_capture_open("vmic", 16000, 1, 4000, errbuf, sizeof errbuf);
    if (!c) fail_msg("%s", errbuf);
    float x[1000];
    assert_int_equal(read_frames(c, x, 1000), 1000);
    for (size_t k = 0; k < 1000; k++) assert_true(x[k] == mono_value(k));
    ssmd_capture_stats s1;
    ssmd_capture_stats_get(c, &s1);

    /* reopen while running: the file PCM starts over */
    assert_int_equal(ssmd_capture_reopen(c, errbuf, sizeof errbuf), 0);
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), 0);
    assert_int_equal(read_frames(c, x, 1000), 1000);
    for (size_t k = 0; k < 1000; k++) assert_true(x[k] == mono_value(k));
    ssmd_capture_stats s2;
    ssmd_capture_stats_get(c, &s2);
    assert_true(s2.frames_captured > s1.frames_captured); /* counters keep counting */

    /* the device vanishes: without its input file ALSA cannot open it and
     * PortAudio no longer lists it; reopen fails, status says why */
    char p[512];
    path_in_tmp(p, sizeof p, "mono.f32");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(ssmd_capture_reopen(c, errbuf, sizeof errbuf), -1);
    printf("reopen without the device: %s\n", errbuf);
    assert_string_equal(errbuf, "device 'vmic': no input device matches (see ssmd --list-devices)");
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), -1);
    printf("status: %s\n", errbuf);
    assert_string_equal(errbuf, "device 'vmic': no input device matches (see ssmd --list-devices)");
    assert_int_equal(ssmd_capture_read(c, x, 1000), 0);
    assert_int_equal(ssmd_capture_frames(c), 0);
    assert_int_equal(ssmd_capture_reopen(c, errbuf, sizeof errbuf), -1);

    /* it comes back */
    assert_int_equal(write_mono_file(), 0);
    assert_int_equal(ssmd_capture_reopen(c, errbuf, sizeof errbuf), 0);
    assert_int_equal(ssmd_capture_status(c, errbuf, sizeof errbuf), 0);
    assert_int_equal(read_frames(c, x, 1000), 1000);
    for (size_t k = 0; k < 1000; k++) assert_true(x[k] == mono_value(k));
    printf("reopened on %s at %d Hz\n", ssmd_capture_device_name(c), ssmd_capture_rate_hz(c));
    ssmd_capture_close(c);
}

static float *read_file_floats(const char *name, size_t *n)
{
    char p[512];
    path_in_tmp(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc(bytes > 0 ? (size_t)bytes : 1);
    *n = fread(x, sizeof(float), (size_t)bytes / sizeof(float), f);
    fclose(f);
    return x;
}

static void test_playback_to_file(void **state)
{
    (void)state;
    enum { N1 = 8000, N2 = 20000 };
    float *a = malloc(N1 * sizeof(float)), *b = malloc(N2 * sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    for (int k = 0; k < N1; k++) a[k] = (float)(k % 30000 + 1) / 32768.0f;      /* never 0 */
    for (int k = 0; k < N2; k++) b[k] = -(float)(k % 30000 + 1) / 32768.0f;
    /* 500 ms at 16 kHz: 8000 frames -> an 8192-float ring */
    ssmd_playback *p = ssmd_playback_open("vout", 16000, 1, 500, errbuf, sizeof errbuf);
    if (!p) fail_msg("%s", errbuf);
    sleep_ms(20);
    assert_int_equal(ssmd_playback_underruns(p), 0); /* silence before the first frame is not one */
    assert_int_equal(ssmd_playback_write(p, a, N1), N1);
    for (int i = 0; i < 5000 && ssmd_playback_queued(p) > 0; i++) sleep_ms(1);
    /* the second burst is larger than the ring: what does not fit is dropped */
    size_t w2 = ssmd_playback_write(p, b, N2);
    for (int i = 0; i < 5000 && ssmd_playback_queued(p) > 0; i++) sleep_ms(1);
    sleep_ms(30);
    uint64_t played = ssmd_playback_played(p), dropped = ssmd_playback_dropped(p);
    uint64_t under = ssmd_playback_underruns(p);
    assert_int_equal(ssmd_playback_status(p, errbuf, sizeof errbuf), 0);
    ssmd_playback_close(p);

    size_t n = 0;
    float *f = read_file_floats("played.f32", &n);
    assert_non_null(f);
    /* the file holds silence (before the first write and on underruns) and
     * the queued frames, in order */
    size_t j = 0, bad = 0, zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] == 0.0f) { zeros++; continue; }
        float want = j < N1 ? a[j] : (j - N1 < w2 ? b[j - N1] : NAN);
        if (f[i] != want) bad++;
        j++;
    }
    printf("playback: queued %d + %zu frames (dropped %llu), played %llu, underrun frames %llu; "
           "file: %zu samples, %zu nonzero, %zu zeros, %zu out of order\n", N1, w2,
           (unsigned long long)dropped, (unsigned long long)played, (unsigned long long)under, n, j,
           zeros, bad);
    assert_true(w2 > 0 && w2 < N2);
    assert_int_equal(dropped, N2 - w2);
    assert_int_equal(played, N1 + w2);
    assert_int_equal(j, N1 + w2);
    assert_int_equal(bad, 0);
    assert_true(under > 0); /* the unpaced device ran dry between and after the bursts */
    free(f);
    free(a);
    free(b);
}

static void test_playback_stereo(void **state)
{
    (void)state;
    enum { N = 5000 };
    float *a = malloc(2 * N * sizeof(float));
    assert_non_null(a);
    for (int k = 0; k < N; k++) {
        a[2 * k] = (float)(k + 1) / 32768.0f;
        a[2 * k + 1] = -(float)(k + 1) / 32768.0f;
    }
    ssmd_playback *p = ssmd_playback_open("ssmd_vout", 48000, 2, 200, errbuf, sizeof errbuf);
    if (!p) fail_msg("%s", errbuf);
    assert_int_equal(ssmd_playback_channels(p), 2);
    assert_int_equal(ssmd_playback_rate_hz(p), 48000);
    /* in odd-sized pieces, as the loop would */
    size_t done = 0;
    while (done < N) {
        size_t n = N - done < 333 ? N - done : 333;
        assert_int_equal(ssmd_playback_write(p, a + 2 * done, n), n);
        done += n;
    }
    for (int i = 0; i < 5000 && ssmd_playback_queued(p) > 0; i++) sleep_ms(1);
    sleep_ms(20);
    ssmd_playback_close(p);
    size_t n = 0;
    float *f = read_file_floats("played.f32", &n);
    assert_non_null(f);
    /* frames of silence (both channels 0) around the N frames queued */
    size_t j = 0, bad = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (f[i] == 0.0f && f[i + 1] == 0.0f) continue;
        if (j >= N || f[i] != a[2 * j] || f[i + 1] != a[2 * j + 1]) bad++;
        j++;
    }
    printf("stereo playback: file %zu samples (even: %s), %zu nonzero frames, %zu wrong\n", n,
           n % 2 == 0 ? "yes" : "no", j, bad);
    assert_int_equal(n % 2, 0);
    assert_int_equal(j, N);
    assert_int_equal(bad, 0);
    free(f);
    free(a);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s tests/daemon/vmic/asoundrc.in tests/daemon/vmic/paced.asoundrc.in "
                "BUILD/tests/daemon/libasound_module_pcm_ssmd_paced.so\n", argv[0]);
        return 2;
    }
    paced_template = argv[2];
    /* ALSA dlopen()s a relative path from the working directory */
    static char lib_path[PATH_MAX];
    if (!realpath(argv[3], lib_path)) {
        fprintf(stderr, "%s: %s\n", argv[3], strerror(errno));
        return 1;
    }
    paced_lib = lib_path;
    if (setup_vmic(argv[1]) != 0) {
        fprintf(stderr, "cannot set up the virtual devices in %s\n", tmpdir);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_open_by_name_and_index),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_output_only_by_index),
        cmocka_unit_test(test_capture_exact_mono),
        cmocka_unit_test(test_capture_paced),
        cmocka_unit_test(test_capture_exact_stereo),
        cmocka_unit_test(test_capture_stereo_only),
        cmocka_unit_test(test_rate_fallback),
        cmocka_unit_test(test_overflow_and_resume),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_playback_to_file),
        cmocka_unit_test(test_playback_stereo),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
