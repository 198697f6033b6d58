/* SPDX-License-Identifier: MIT */
/* Checkpoints (daemon/src/checkpoint.h) without etcd: a checkpoint of a
 * stream decodes into a fresh stream that continues bit for bit, with its
 * indices (input_sample = the input consumed, output_sample =
 * floor(input / hop)·hop - latency); damaged checkpoints are refused; the
 * description round-trips through its JSON and bad ones are refused; files
 * are written whole or not at all and read back only with the right size and
 * checksum; the checkpoint directory check names what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"

static const char *model_path;

typedef struct fixture {
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *mb;
    ssm_runner *runner;
} fixture;

static void fixture_open(fixture *f)
{
    char err[512];
    ssm_error me = { 0 };
    if (ssm_model_load(model_path, NULL, &f->model, &me) != SSM_OK) fail_msg("%s", me.msg);
    if (ssmd_frontend_from_model(&f->fe, f->model, err, sizeof err) != 0) fail_msg("%s", err);
    dsp_mel_config mc = { .sample_rate_hz = f->fe.sample_rate_hz, .n_fft = (size_t)f->fe.n_fft,
                          .n_mels = (size_t)f->fe.n_mels, .scale = DSP_MEL_SLANEY, .norm = DSP_MEL_NORM_SLANEY };
    dsp_error de = { 0 };
    dsp_melbank_create(&f->mb, &mc, &de);
    assert_non_null(f->mb);
    assert_int_equal(ssm_runner_create(f->model, 1, 1, 0, &f->runner, &me), SSM_OK);
}

static void fixture_close(fixture *f)
{
    ssm_runner_destroy(f->runner);
    dsp_melbank_destroy(f->mb);
    ssm_model_free(f->model);
}

static ssmd_stream *stream_new(fixture *f)
{
    ssmd_stream_config sc = { .in_rate_hz = f->fe.sample_rate_hz, .align_output = true };
    char err[512];
    ssmd_stream *s = ssmd_stream_create(f->model, &f->fe, f->mb, &sc, err, sizeof err);
    if (!s) fail_msg("%s", err);
    return s;
}

/* Pushes x[0..n) through s frame by frame; the output goes to y at *len. */
static void feed(fixture *f, ssmd_stream *s, const float *x, size_t n, float *y, size_t *len)
{
    float row[512], mask[512];
    ssm_state *st = ssmd_stream_state(s);
    ssm_outputs out = { .mask = mask };
    for (size_t pos = 0; pos < n;) {
        pos += ssmd_stream_push(s, x + pos, n - pos);
        while (ssmd_stream_prepare(s, row)) {
            assert_int_equal(ssm_step(f->runner, &st, 1, row, NULL, &out, NULL), SSM_OK);
            ssmd_stream_complete(s, mask);
            size_t got;
            while ((got = ssmd_stream_pop(s, y + *len, 1 << 20)) > 0) *len += got;
        }
    }
}

static float *noise(size_t n)
{
    float *x = malloc(n * sizeof *x);
    uint32_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = 0.1f * ((float)(r >> 8) / 16777216.0f - 0.5f);
    }
    return x;
}

static void t_encode_decode(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f);
    const size_t n = 20000, cut = 7000, hop = (size_t)f.fe.hop_samples, lat = (size_t)f.fe.latency_samples;
    float *x = noise(n), *ya = calloc(2 * n, sizeof(float)), *yb = calloc(2 * n, sizeof(float));
    size_t la = 0, lb = 0;
    ssmd_stream *a = stream_new(&f);
    feed(&f, a, x, cut, ya, &la);
    ssmd_stream_stats st;
    ssmd_stream_stats_get(a, &st);
    ssmd_ckpt_counters k = { .input_sample = st.samples_in, .output_sample = st.samples_out, .frames = st.frames,
                             .resets = 2, .vad_quiet_frames = 9 };
    assert_int_equal(k.input_sample, cut);
    assert_int_equal(k.output_sample, cut / hop * hop - lat);
    size_t bytes = ssmd_ckpt_bytes(a);
    assert_int_equal(bytes, SSMD_CKPT_HEADER + ssmd_stream_save_bytes(a));
    unsigned char *buf = malloc(bytes);
    assert_int_equal(ssmd_ckpt_encode(buf, bytes, a, &k), (long)bytes);
    printf("checkpoint after %llu input samples: output sample %llu, %zu bytes\n",
           (unsigned long long)k.input_sample, (unsigned long long)k.output_sample, bytes);

    ssmd_stream *b = stream_new(&f);
    ssmd_ckpt_counters kb;
    char err[512];
    if (ssmd_ckpt_decode(b, buf, bytes, &kb, err, sizeof err) != 0) fail_msg("%s", err);
    assert_memory_equal(&kb, &k, sizeof k);
    lb = la;
    memcpy(yb, ya, la * sizeof(float));
    feed(&f, a, x + cut, n - cut, ya, &la);
    feed(&f, b, x + cut, n - cut, yb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ya, yb, la * sizeof(float));
    printf("decoded into a fresh stream: the next %zu output samples bit-identical\n", la - (size_t)k.output_sample);

    /* damaged: magic, version, an index that contradicts the stream, the model state */
    const size_t at[] = { 0, 8, 16, bytes - 1 };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        unsigned char *d = malloc(bytes);
        memcpy(d, buf, bytes);
        d[at[i]] ^= 0x5a;
        ssmd_stream *c = stream_new(&f);
        assert_int_equal(ssmd_ckpt_decode(c, d, bytes, &kb, err, sizeof err), -1);
        printf("byte %zu damaged: %s\n", at[i], err);
        ssmd_stream_destroy(c);
        free(d);
    }
    ssmd_stream_destroy(a);
    ssmd_stream_destroy(b);
    free(buf);
    free(x);
    free(ya);
    free(yb);
    fixture_close(&f);
}

static void t_info_json(void **state)
{
    (void)state;
    ssmd_ckpt_info m, back;
    memset(&m, 0, sizeof m);
    snprintf(m.stream, sizeof m.stream, "room.1");
    snprintf(m.node, sizeof m.node, "n1");
    snprintf(m.epoch, sizeof m.epoch, "0x00000000deadbeef");
    m.input_sample = 1ull << 40;
    m.output_sample = (1ull << 40) - 256;
    m.sample_rate_hz = 48000;
    m.model_hash = 0xfedcba9876543210ull;
    m.time_ms = 1700000000123ull;
    m.bytes = 54321;
    m.checksum = 0x8000000000000001ull;
    for (int file = 0; file < 2; file++) {
        snprintf(m.path, sizeof m.path, "%s", file ? "/srv/ckpt/room.1.1099511627776.ckpt" : "");
        char *j = ssmd_ckpt_info_json(&m);
        char err[256];
        assert_int_equal(ssmd_ckpt_info_parse(&back, j, strlen(j), err, sizeof err), 0);
        assert_memory_equal(&back, &m, sizeof m);
        printf("%s\n", j);
        free(j);
    }
    const char *bad[] = { "[]", "{\"stream\":\"s\"}", "not json",
                          "{\"stream\":\"s\",\"node\":\"n\",\"input_sample\":1,\"output_sample\":0,"
                          "\"sample_rate_hz\":1,\"model_hash\":\"0x1\",\"time_ms\":1,\"bytes\":1,\"checksum\":\"0x1\","
                          "\"stored\":\"file\"}" /* a file without its path */ };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256];
        assert_int_equal(ssmd_ckpt_info_parse(&back, bad[i], strlen(bad[i]), err, sizeof err), -1);
    }
}

static void t_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ssmd-ckpt-test-XXXXXX", err[600];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(ssmd_ckpt_dir_check(dir, err, sizeof err), 0);
    ssmd_ckpt_info m;
    memset(&m, 0, sizeof m);
    snprintf(m.stream, sizeof m.stream, "s1");
    snprintf(m.node, sizeof m.node, "n1");
    m.input_sample = 32000;
    unsigned char data[3000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 7);
    m.bytes = sizeof data;
    m.checksum = ssmd_ckpt_fnv1a64(data, sizeof data);
    assert_int_equal(ssmd_ckpt_file_write(dir, &m, data, sizeof data, true, err, sizeof err), 0);
    char want[256];
    snprintf(want, sizeof want, "%s/s1.32000.ckpt", dir);
    assert_string_equal(m.path, want);
    void *back = ssmd_ckpt_file_read(&m, err, sizeof err);
    assert_non_null(back);
    assert_memory_equal(back, data, sizeof data);
    free(back);
    /* a wrong checksum, a wrong size, a missing file */
    ssmd_ckpt_info w = m;
    w.checksum ^= 1;
    assert_null(ssmd_ckpt_file_read(&w, err, sizeof err));
    printf("%s\n", err);
    assert_non_null(strstr(err, "checksum"));
    w = m;
    w.bytes++;
    assert_null(ssmd_ckpt_file_read(&w, err, sizeof err));
    printf("%s\n", err);
    unlink(m.path);
    assert_null(ssmd_ckpt_file_read(&m, err, sizeof err));
    printf("%s\n", err);
    /* nothing else was left in the directory (no temporary file) */
    assert_int_equal(rmdir(dir), 0);
    /* the directory check */
    assert_int_equal(ssmd_ckpt_dir_check("/nonexistent-ssmd", err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, "No such file"));
    char afile[] = "/tmp/ssmd-ckpt-file-XXXXXX";
    int fd = mkstemp(afile);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ssmd_ckpt_dir_check(afile, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, "not a directory"));
    unlink(afile);
    if (geteuid() != 0) { /* root may write anywhere */
        assert_int_equal(ssmd_ckpt_dir_check("/proc", err, sizeof err), -1);
        printf("%s\n", err);
    }
    /* a write into a directory that is gone leaves nothing and says why */
    assert_int_equal(ssmd_ckpt_file_write("/nonexistent-ssmd", &m, data, sizeof data, false, err, sizeof err), -1);
    printf("%s\n", err);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL (tests/daemon's random.safetensors)\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_encode_decode),
        cmocka_unit_test(t_info_json),
        cmocka_unit_test(t_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
