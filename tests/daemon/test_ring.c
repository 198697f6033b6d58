/* SPDX-License-Identifier: MIT */
/* ssmd_ring: single-thread semantics (capacity rounding, wrap-around,
 * write-what-fits with overflow counting, read-up-to) and a two-thread
 * stress test: the producer writes 0, 1, 2, ... in random chunk sizes, the
 * consumer reads in random sizes and checks that it sees a strictly
 * increasing subsequence whose missing values add up exactly to the
 * overflow count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>

#include <cmocka.h>

#include "ring.h"

static void test_capacity_rounding(void **state)
{
    (void)state;
    const size_t asks[] = {0, 1, 2, 3, 5, 1000, 1024, 1025, 48000};
    const size_t want[] = {1, 1, 2, 4, 8, 1024, 1024, 2048, 65536};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        ssmd_ring *r = ssmd_ring_create(asks[i]);
        assert_non_null(r);
        assert_int_equal(ssmd_ring_capacity(r), want[i]);
        assert_int_equal(ssmd_ring_available(r), 0);
        assert_int_equal(ssmd_ring_write_space(r), want[i]);
        assert_int_equal(ssmd_ring_overflows(r), 0);
        ssmd_ring_destroy(r);
    }
    assert_null(ssmd_ring_create(SSMD_RING_MAX_CAPACITY + 1));
    assert_null(ssmd_ring_create(SIZE_MAX));
    ssmd_ring_destroy(NULL);
    printf("lock-free atomics: %s\n", ssmd_ring_is_lock_free() ? "yes" : "no");
}

static void test_wrap_around(void **state)
{
    (void)state;
    ssmd_ring *r = ssmd_ring_create(8);
    assert_non_null(r);
    float in[32], out[32];
    for (int i = 0; i < 32; i++) in[i] = (float)i;
    float next_in = 0.0f, next_out = 0.0f;
    /* Many rounds of uneven writes and reads so both positions wrap the
     * 8-slot buffer at every offset; the values must come out in order. */
    unsigned seed = 7;
    for (int round = 0; round < 2000; round++) {
        size_t space = ssmd_ring_write_space(r);
        size_t n = (size_t)(rand_r(&seed) % 9);
        if (n > space) n = space;
        for (size_t i = 0; i < n; i++) in[i] = next_in++;
        assert_int_equal(ssmd_ring_write(r, in, n), n);
        assert_int_equal(ssmd_ring_available(r), 8 - space + n);
        size_t m = (size_t)(rand_r(&seed) % 9);
        size_t avail = ssmd_ring_available(r);
        size_t got = ssmd_ring_read(r, out, m);
        assert_int_equal(got, m < avail ? m : avail);
        for (size_t i = 0; i < got; i++) assert_true(out[i] == next_out++);
    }
    assert_int_equal(ssmd_ring_overflows(r), 0);
    printf("wrap-around: %.0f floats through an 8-slot ring in order\n", (double)next_out);
    ssmd_ring_destroy(r);
}

static void test_overflow_counting(void **state)
{
    (void)state;
    ssmd_ring *r = ssmd_ring_create(8);
    float in[16], out[16];
    for (int i = 0; i < 16; i++) in[i] = (float)(i + 1);
    /* A write larger than the ring writes what fits: its first 8 values. */
    assert_int_equal(ssmd_ring_write(r, in, 10), 8);
    assert_int_equal(ssmd_ring_overflows(r), 2);
    assert_int_equal(ssmd_ring_write_space(r), 0);
    assert_int_equal(ssmd_ring_write(r, in, 1), 0);
    assert_int_equal(ssmd_ring_overflows(r), 3);
    assert_int_equal(ssmd_ring_write(r, NULL, 0), 0);
    assert_int_equal(ssmd_ring_overflows(r), 3);
    /* read-up-to: asks for 3, then frees room for 3 more. */
    assert_int_equal(ssmd_ring_read(r, out, 3), 3);
    assert_true(out[0] == 1.0f && out[1] == 2.0f && out[2] == 3.0f);
    assert_int_equal(ssmd_ring_write(r, in + 10, 5), 3); /* 11, 12, 13 fit; 14, 15 do not */
    assert_int_equal(ssmd_ring_overflows(r), 5);
    assert_int_equal(ssmd_ring_read(r, out, 16), 8);
    const float want[8] = {4, 5, 6, 7, 8, 11, 12, 13};
    for (int i = 0; i < 8; i++) assert_true(out[i] == want[i]);
    assert_int_equal(ssmd_ring_read(r, out, 16), 0);
    assert_int_equal(ssmd_ring_available(r), 0);
    ssmd_ring_destroy(r);
}

/* ---- two-thread stress ---- */

#define STRESS_N 10000000u /* < 2^24: every index is exact as a float */

typedef struct stress {
    ssmd_ring *ring;
    uint64_t written;  /* producer's own count of accepted floats */
    uint64_t refused;  /* producer's own count of refused floats */
    atomic_int finished;
} stress;

static void nap(unsigned us)
{
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

static void *producer(void *arg)
{
    stress *s = arg;
    unsigned seed = 12345;
    float chunk[512];
    uint32_t next = 0;
    while (next < STRESS_N) {
        uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 512);
        if (n > STRESS_N - next) n = STRESS_N - next;
        for (uint32_t i = 0; i < n; i++) chunk[i] = (float)(next + i);
        /* Mostly wait for room, so most values cross the ring and are
         * checked; now and then push into a full ring to provoke overflows. */
        if (rand_r(&seed) % 64 != 0)
            while (ssmd_ring_write_space(s->ring) < n) sched_yield();
        size_t k = ssmd_ring_write(s->ring, chunk, n);
        s->written += k;
        s->refused += n - k;
        next += n;
    }
    atomic_store(&s->finished, 1);
    return NULL;
}

static void test_stress_two_threads(void **state)
{
    (void)state;
    stress s = {ssmd_ring_create(4096), 0, 0, 0};
    assert_non_null(s.ring);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer, &s), 0);

    unsigned seed = 999;
    float buf[1024];
    int64_t last = -1;
    uint64_t got_total = 0, gaps = 0, missing = 0, bad = 0;
    int done = 0;
    while (!done) {
        size_t m = 1 + (size_t)(rand_r(&seed) % 1024);
        size_t got = ssmd_ring_read(s.ring, buf, m);
        for (size_t i = 0; i < got; i++) {
            int64_t v = (int64_t)buf[i];
            if ((float)v != buf[i] || v <= last || v >= (int64_t)STRESS_N) {
                if (bad++ < 5) printf("bad value %.1f after %lld\n", (double)buf[i], (long long)last);
                continue;
            }
            if (v != last + 1) { gaps++; missing += (uint64_t)(v - last - 1); }
            last = v;
        }
        got_total += got;
        if (got == 0 && atomic_load(&s.finished) && ssmd_ring_available(s.ring) == 0) done = 1;
        if (rand_r(&seed) % 2048 == 0) nap(300); /* stall: provokes overflows */
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    /* Drain whatever came after the loop decided to stop. */
    size_t got;
    while ((got = ssmd_ring_read(s.ring, buf, 1024)) > 0) {
        for (size_t i = 0; i < got; i++) {
            int64_t v = (int64_t)buf[i];
            if (v <= last) bad++;
            else { if (v != last + 1) { gaps++; missing += (uint64_t)(v - last - 1); } last = v; }
        }
        got_total += got;
    }
    missing += (uint64_t)((int64_t)STRESS_N - 1 - last); /* refused at the very end */
    uint64_t over = ssmd_ring_overflows(s.ring);
    printf("stress: %u floats, read %llu, overflows %llu (producer counted %llu), "
           "missing from the sequence %llu in %llu gaps, bad values %llu\n",
           STRESS_N, (unsigned long long)got_total, (unsigned long long)over,
           (unsigned long long)s.refused, (unsigned long long)missing,
           (unsigned long long)gaps, (unsigned long long)bad);
    assert_int_equal(bad, 0);
    assert_int_equal(got_total, s.written);
    assert_int_equal(over, s.refused);
    assert_int_equal(missing, over);
    assert_int_equal(got_total + over, STRESS_N);
    ssmd_ring_destroy(s.ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_rounding),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_overflow_counting),
        cmocka_unit_test(test_stress_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
