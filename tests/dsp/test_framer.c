/* SPDX-License-Identifier: MIT */
/* Framer and overlap-add: chunk-size invariance (bit-identical frames and
 * output), output length and latency, alignment, non-finite input, invalid
 * arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "dsp_test_util.h"

static dsp_framer *framer(size_t n, size_t hop, bool align)
{
    dsp_error err = {0};
    dsp_framer_config cfg = { .n_window = n, .hop_samples = hop, .align_output = align };
    dsp_framer *f = NULL;
    dsp_framer_create(&f, &cfg, &err);
    if (!f)
        fail_msg("framer create %zu/%zu: %s", n, hop, err.msg);
    return f;
}

static dsp_stft *stft(size_t n, size_t hop, dsp_window a, dsp_window s)
{
    dsp_error err = {0};
    dsp_stft_config cfg = { n, hop, a, s };
    dsp_stft *st = NULL;
    dsp_stft_create(&st, &cfg, &err);
    if (!st)
        fail_msg("stft create %zu/%zu: %s", n, hop, err.msg);
    return st;
}

/* Frames match a direct slice of the zero-history signal. */
static void test_frames_are_signal_slices(void **state)
{
    (void)state;
    const size_t n = 512, hop = 128, len = 3000;
    float *x = malloc(len * sizeof *x);
    tu_white(x, len, 7);
    dsp_framer *f = framer(n, hop, true);
    tu_run r;
    assert_int_equal(tu_run_chain(&r, f, NULL, x, len, 7), 0);
    size_t mismatches = 0;
    for (size_t m = 0; m < r.n_frames; m++) {
        for (size_t j = 0; j < n; j++) {
            long t = (long)((m + 1) * hop) - (long)n + (long)j;
            float want = (t >= 0 && (size_t)t < len) ? x[t] : 0.0f;
            if (memcmp(&want, &r.frames[m * n + j], sizeof want) != 0)
                mismatches++;
        }
    }
    printf("frames %zu, samples differing from the signal slice: %zu\n", r.n_frames, mismatches);
    assert_int_equal(mismatches, 0);
    /* frames needed to cover len + latency samples */
    assert_int_equal(r.n_frames, (len + n - hop + hop - 1) / hop);
    tu_run_free(&r);
    dsp_framer_destroy(f);
    free(x);
}

/* Same signal in chunks of 1, 7, 160, 4096 and whole: bit-identical. */
static void test_chunk_invariance(void **state)
{
    (void)state;
    static const size_t cfgs[][2] = { { 512, 256 }, { 512, 128 }, { 400, 160 }, { 960, 480 } };
    static const size_t chunks[] = { 1, 7, 160, 4096, 0 };
    const size_t len = 16000 + 37;
    float *x = malloc(len * sizeof *x);
    tu_speechlike(x, len, 16000.0);
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        const size_t n = cfgs[c][0], hop = cfgs[c][1];
        /* 400/160 is not COLA for Hann: frames only, no STFT. */
        const bool cola = n % hop == 0;
        tu_run ref = {0};
        for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
            dsp_framer *f = framer(n, hop, true);
            dsp_stft *st = cola ? stft(n, hop, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN) : NULL;
            tu_run r;
            assert_int_equal(tu_run_chain(&r, f, st, x, len, chunks[k]), 0);
            assert_int_equal(r.n_out, len);
            if (k == 0) {
                ref = r;
            } else {
                size_t bad_frames = 0;
                assert_int_equal(r.n_frames, ref.n_frames);
                for (size_t m = 0; m < r.n_frames; m++)
                    bad_frames += memcmp(r.frames + m * n, ref.frames + m * n, n * sizeof(float)) != 0;
                int out_same = memcmp(r.out, ref.out, len * sizeof(float)) == 0;
                printf("%zu/%zu chunk %zu vs 1: %zu frames, differing %zu, output identical %d\n",
                       n, hop, chunks[k], r.n_frames, bad_frames, out_same);
                assert_int_equal(bad_frames, 0);
                assert_true(out_same);
                tu_run_free(&r);
            }
            dsp_stft_destroy(st);
            dsp_framer_destroy(f);
        }
        tu_run_free(&ref);
    }
    free(x);
}

/* Output length = input length (aligned) or + latency (live); live output
 * is the aligned output delayed by the latency, bit for bit. */
static void test_lengths_and_latency(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 100, 511, 512, 1000, 4097 };
    const size_t n = 512, hop = 128, lat = n - hop;
    float *x = malloc(5000 * sizeof *x);
    tu_white(x, 5000, 3);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const size_t len = lens[i];
        dsp_framer *fa = framer(n, hop, true), *fl = framer(n, hop, false);
        dsp_stft *st = stft(n, hop, DSP_WINDOW_HANN, DSP_WINDOW_RECT);
        assert_int_equal(dsp_framer_latency_samples(fa), lat);
        tu_run ra, rl;
        assert_int_equal(tu_run_chain(&ra, fa, st, x, len, 7), 0);
        assert_int_equal(tu_run_chain(&rl, fl, st, x, len, 7), 0);
        printf("len %zu: aligned out %zu, live out %zu (latency %zu)\n", len, ra.n_out, rl.n_out, lat);
        assert_int_equal(ra.n_out, len);
        assert_int_equal(rl.n_out, len + lat);
        assert_true(dsp_framer_done(fa));
        assert_int_equal(dsp_framer_samples_in(fa), len);
        assert_int_equal(dsp_framer_samples_out(fa), len);
        if (len)
            assert_memory_equal(rl.out + lat, ra.out, len * sizeof(float));
        double err = tu_rel_rms_err(ra.out, x, len);
        printf("  reconstruction rel. RMS error %.3g\n", err);
        assert_true(err <= 1e-5);
        /* more frames after done are ignored */
        float fr[512] = {0}, o[128];
        assert_int_equal(dsp_framer_synthesize(fa, o, fr), 0);
        tu_run_free(&ra);
        tu_run_free(&rl);
        dsp_stft_destroy(st);
        dsp_framer_destroy(fa);
        dsp_framer_destroy(fl);
    }
    free(x);
}

static void test_push_stops_at_frame(void **state)
{
    (void)state;
    dsp_framer *f = framer(8, 4, false);
    float x[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, frame[8];
    assert_int_equal(dsp_framer_pop_frame(f, frame), 0);
    assert_int_equal(dsp_framer_push(f, x, 10, NULL), 4);
    assert_int_equal(dsp_framer_push(f, x + 4, 6, NULL), 0); /* frame waiting */
    assert_int_equal(dsp_framer_pop_frame(f, frame), 1);
    assert_int_equal(dsp_framer_pop_frame(f, frame), 0);
    assert_int_equal(dsp_framer_push(f, x + 4, 6, NULL), 4);
    assert_int_equal(dsp_framer_pop_frame(f, frame), 1);
    const float want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_memory_equal(frame, want, sizeof want);
    assert_int_equal(dsp_framer_frames_out(f), 2);
    dsp_framer_reset(f);
    assert_int_equal(dsp_framer_frames_out(f), 0);
    assert_int_equal(dsp_framer_push(f, x, 3, NULL), 3);
    assert_int_equal(dsp_framer_pop_frame(f, NULL), DSP_ERR_INVALID);
    dsp_framer_destroy(f);
    dsp_framer_destroy(NULL);
}

static void test_nonfinite_zeroed(void **state)
{
    (void)state;
    dsp_framer *f = framer(6, 3, false);
    float x[6] = { 1.0f, NAN, INFINITY, -INFINITY, 0.5f, NAN }, frame[6];
    size_t bad = 99, total_bad = 0, used = 0;
    used += dsp_framer_push(f, x, 6, &bad);
    total_bad += bad;
    assert_int_equal(dsp_framer_pop_frame(f, frame), 1);
    used += dsp_framer_push(f, x + used, 6 - used, &bad);
    total_bad += bad;
    assert_int_equal(used, 6);
    assert_int_equal(dsp_framer_pop_frame(f, frame), 1);
    printf("non-finite counted per call %zu, total %llu\n", total_bad,
           (unsigned long long)dsp_framer_nonfinite_count(f));
    assert_int_equal(total_bad, 4);
    assert_int_equal(dsp_framer_nonfinite_count(f), 4);
    const float want[6] = { 1.0f, 0.0f, 0.0f, 0.0f, 0.5f, 0.0f };
    assert_memory_equal(frame, want, sizeof want);
    /* the caller's buffer is untouched */
    assert_true(isnan(x[1]));

    float y[5] = { NAN, 1.0f, -INFINITY, 2.0f, INFINITY };
    assert_int_equal(dsp_sanitize_f32(y, 5), 3);
    for (int i = 0; i < 5; i++)
        assert_true(isfinite(y[i]));
    assert_int_equal(dsp_sanitize_f32(y, 5), 0);
    dsp_framer_destroy(f);
}

/* dsp_sanitize_f32 and dsp_condition_f32 (blocks of 16 with counts per lane,
 * one clone per ISA) against plain loops written here, bit for bit, at
 * lengths around the block size, with NaN (two payloads), ±Inf, the limit and
 * its neighbours, −0 and denormals at every position of a block. */
static void test_condition_blocks(void **state)
{
    (void)state;
    const float lim = 1000.0f;
    uint32_t nan_bits = 0x7fc01234u, neg_nan_bits = 0xffc00001u;
    float qnan, nnan;
    memcpy(&qnan, &nan_bits, sizeof qnan);
    memcpy(&nnan, &neg_nan_bits, sizeof nnan);
    const float special[] = { qnan, nnan, INFINITY, -INFINITY, lim, -lim, nextafterf(lim, INFINITY),
                              nextafterf(-lim, -INFINITY), 1e30f, -FLT_MAX, -0.0f, 1e-42f, -1e-40f, 0.25f };
    const size_t n_special = sizeof special / sizeof special[0];
    static const size_t lens[] = { 0, 1, 15, 16, 17, 47, 256, 1001 };
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        const size_t n = lens[t];
        float *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y), *want = malloc((n + 1) * sizeof *want);
        assert_non_null(x); assert_non_null(y); assert_non_null(want);
        for (size_t i = 0; i < n; i++)
            x[i] = i % 3 == 1 ? special[(i / 3) % n_special] : (float)((int)(i % 41) - 20) * 75.0f;
        uint64_t want_bad = 0, want_clip = 0;
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            if (!isfinite(v)) {
                v = 0.0f;
                want_bad++;
            } else if (v > lim || v < -lim) {
                v = v > lim ? lim : -lim;
                want_clip++;
            }
            want[i] = v;
        }
        memcpy(y, x, n * sizeof *y);
        uint64_t bad = 5, clip = 7; /* added to */
        dsp_condition_f32(y, n, lim, &bad, &clip);
        assert_memory_equal(y, want, n * sizeof *y);
        assert_int_equal(bad, 5 + want_bad);
        assert_int_equal(clip, 7 + want_clip);
        /* sanitize alone: only the non-finite change */
        memcpy(y, x, n * sizeof *y);
        assert_int_equal(dsp_sanitize_f32(y, n), want_bad);
        for (size_t i = 0; i < n; i++) {
            float w = isfinite(x[i]) ? x[i] : 0.0f;
            assert_memory_equal(&y[i], &w, sizeof w);
        }
        free(x); free(y); free(want);
    }
}

static void test_invalid_args(void **state)
{
    (void)state;
    static const size_t bad[][2] = { { 0, 1 }, { 512, 0 }, { 512, 513 }, { 4, 8 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsp_error err = {0};
        dsp_framer_config cfg = { bad[i][0], bad[i][1], false, 0 };
        dsp_framer *f = (dsp_framer *)&cfg; /* not NULL: a failed create clears it */
        dsp_framer_create(&f, &cfg, &err);
        assert_null(f);
        printf("n_window %zu hop %zu refused: %s\n", bad[i][0], bad[i][1], err.msg);
        assert_int_equal(err.status, DSP_ERR_INVALID);
        assert_true(strlen(err.msg) > 10);
    }
    dsp_framer *f = (dsp_framer *)bad; /* not NULL: a failed create clears it */
    dsp_framer_create(&f, NULL, NULL);
    assert_null(f);
}

/* A caller that hands back frame m − d at the synthesis of frame m (a model
 * with d frames of lookahead), zero frames for the first d: with
 * delay_samples = d·H the latency is N − H + d·H, live output has L +
 * latency samples and is the input delayed by it, aligned output is the
 * input itself with the input's length; a state saved with another delay is
 * refused; a delay over 2^28 is refused at create. */
static void test_processing_delay(void **state)
{
    (void)state;
    const size_t n = 512, hop = 128, d = 3, len = 3001;
    float *x = malloc(len * sizeof *x), *frame = malloc(n * sizeof *frame);
    float *held = calloc(d * n, sizeof *held), *y = calloc(2 * len + 4 * n, sizeof *y);
    tu_white(x, len, 21);
    for (int align = 0; align < 2; align++) {
        dsp_error err = {0};
        dsp_framer_config cfg = { .n_window = n, .hop_samples = hop, .align_output = align,
                                  .delay_samples = d * hop };
        dsp_framer *f = NULL;
        assert_int_equal(dsp_framer_create(&f, &cfg, &err), DSP_OK);
        size_t lat = n - hop + d * hop;
        assert_int_equal(dsp_framer_latency_samples(f), lat);
        dsp_stft *st = stft(n, hop, DSP_WINDOW_SQRT_HANN, DSP_WINDOW_SQRT_HANN);
        float *spec = malloc((n + 2) * sizeof *spec);
        memset(held, 0, d * n * sizeof *held);
        size_t pos = 0, got = 0, k = 0;
        bool fin = false;
        for (;;) {
            if (pos < len) pos += dsp_framer_push(f, x + pos, len - pos < 77 ? len - pos : 77, NULL);
            else if (!fin) dsp_framer_finish(f), fin = true;
            while (dsp_framer_pop_frame(f, frame) == 1) {
                dsp_stft_forward(st, spec, frame);
                dsp_stft_inverse(st, frame, spec);
                float *slot = held + (k++ % d) * n; /* frame m − d out, frame m in */
                for (size_t i = 0; i < n; i++) {
                    float v = slot[i];
                    slot[i] = frame[i];
                    frame[i] = v;
                }
                got += dsp_framer_synthesize(f, y + got, frame);
            }
            if (fin && dsp_framer_done(f)) break;
        }
        assert_int_equal(got, align ? len : len + lat);
        double err_max = 0;
        for (size_t j = 0; j < len; j++) err_max = fmax(err_max, fabs((double)y[j + (align ? 0 : lat)] - x[j]));
        for (size_t j = 0; !align && j < lat; j++) assert_true(fabsf(y[j]) < 1e-6f);
        printf("delay %zu samples, %s: %zu samples out, max |out - in| %.2e\n", d * hop,
               align ? "aligned" : "live", got, err_max);
        assert_true(err_max < 1e-5);
        if (align) { /* a state of this framer does not load into one without the delay */
            size_t bytes = dsp_framer_state_bytes(f);
            unsigned char *buf = malloc(bytes);
            assert_int_equal(dsp_framer_state_save(f, buf, bytes), (long)bytes);
            dsp_framer *g = framer(n, hop, true);
            assert_int_equal(dsp_framer_state_load(g, buf, bytes, &err), DSP_ERR_FORMAT);
            printf("refused: %s\n", err.msg);
            assert_non_null(strstr(err.msg, "delay 384"));
            dsp_framer_destroy(g);
            free(buf);
        }
        dsp_stft_destroy(st);
        free(spec);
        dsp_framer_destroy(f);
    }
    dsp_error err = {0};
    dsp_framer_config big = { .n_window = n, .hop_samples = hop, .delay_samples = ((size_t)1 << 28) + 1 };
    dsp_framer *f = (dsp_framer *)&big;
    assert_int_equal(dsp_framer_create(&f, &big, &err), DSP_ERR_INVALID);
    assert_null(f);
    printf("refused: %s\n", err.msg);
    free(x); free(frame); free(held); free(y);
}

/* A framer saved mid-stream (mid-hop) and loaded into a fresh one pops the
 * same frames and synthesises the same output as the original; loads of a
 * damaged state, or into a framer of another geometry, are refused and
 * leave the target untouched. */
static void test_state_save_load(void **state)
{
    (void)state;
    const size_t n = 512, hop = 256, len = 5000, cut = 1234;
    float *x = malloc(len * sizeof *x), *frame = malloc(n * sizeof *frame), *out = malloc(hop * sizeof *out);
    float *fa = malloc(n * sizeof *fa), *oa = malloc(hop * sizeof *oa);
    tu_white(x, len, 11);
    dsp_framer *a = framer(n, hop, true), *b = framer(n, hop, true);
    size_t pos = 0;
    while (pos < cut) { /* frames popped and synthesised as they come (identity) */
        pos += dsp_framer_push(a, x + pos, cut - pos, NULL);
        while (dsp_framer_pop_frame(a, frame) == 1) dsp_framer_synthesize(a, out, frame);
    }
    size_t bytes = dsp_framer_state_bytes(a);
    assert_int_equal(bytes, 112 + 2 * n * sizeof(float));
    unsigned char *buf = malloc(bytes);
    assert_int_equal(dsp_framer_state_save(a, buf, bytes - 1), DSP_ERR_INVALID);
    assert_int_equal(dsp_framer_state_save(a, buf, bytes), (long)bytes);
    dsp_error err = {0};
    assert_int_equal(dsp_framer_state_load(b, buf, bytes, &err), DSP_OK);
    assert_int_equal(dsp_framer_samples_in(b), cut);
    size_t frames = 0, pa = pos, pb = pos;
    for (int finished = 0; finished < 2; finished++) {
        if (finished) {
            dsp_framer_finish(a);
            dsp_framer_finish(b);
        }
        for (;;) {
            if (!finished) {
                pa += dsp_framer_push(a, x + pa, len - pa, NULL);
                pb += dsp_framer_push(b, x + pb, len - pb, NULL);
            }
            int ra = dsp_framer_pop_frame(a, fa), rb = dsp_framer_pop_frame(b, frame);
            assert_int_equal(ra, rb);
            if (ra != 1) break;
            assert_memory_equal(fa, frame, n * sizeof(float));
            size_t ga = dsp_framer_synthesize(a, oa, fa), gb = dsp_framer_synthesize(b, out, frame);
            assert_int_equal(ga, gb);
            assert_memory_equal(oa, out, ga * sizeof(float));
            frames++;
        }
    }
    assert_true(dsp_framer_done(b));
    assert_int_equal(dsp_framer_samples_out(b), len);
    printf("framer state of %zu bytes saved after %zu samples: %zu more frames identical\n", bytes, cut, frames);

    /* refusals, b untouched */
    dsp_framer *c = framer(n, hop, true), *other = framer(n, 128, true);
    struct { size_t at; unsigned char x; const char *want; } bad[] = {
        { 0, 'X', "magic" }, { 8, 2, "version" }, { 40, (unsigned char)(hop + 1), "counters" },
        { 112 + 3, 0x7f, "non-finite" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        unsigned char *d = malloc(bytes);
        memcpy(d, buf, bytes);
        d[bad[k].at] = bad[k].at == 112 + 3 ? (unsigned char)(d[bad[k].at] | 0x7f) : bad[k].x;
        if (bad[k].at == 112 + 3) d[112 + 2] |= 0x80; /* exponent all ones */
        assert_int_equal(dsp_framer_state_load(c, d, bytes, &err), DSP_ERR_FORMAT);
        printf("refused: %s\n", err.msg);
        assert_non_null(strstr(err.msg, bad[k].want));
        assert_int_equal(dsp_framer_samples_in(c), 0);
        free(d);
    }
    assert_int_equal(dsp_framer_state_load(c, buf, bytes - 1, &err), DSP_ERR_FORMAT);
    assert_int_equal(dsp_framer_state_load(other, buf, bytes, &err), DSP_ERR_FORMAT);
    printf("refused: %s\n", err.msg);
    dsp_framer_destroy(a);
    dsp_framer_destroy(b);
    dsp_framer_destroy(c);
    dsp_framer_destroy(other);
    free(buf);
    free(x);
    free(frame);
    free(out);
    free(fa);
    free(oa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_are_signal_slices),
        cmocka_unit_test(test_chunk_invariance),
        cmocka_unit_test(test_lengths_and_latency),
        cmocka_unit_test(test_push_stops_at_frame),
        cmocka_unit_test(test_nonfinite_zeroed),
        cmocka_unit_test(test_condition_blocks),
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_state_save_load),
        cmocka_unit_test(test_processing_delay),
    };
    return cmocka_run_group_tests_name("dsp_framer", tests, NULL, NULL);
}
