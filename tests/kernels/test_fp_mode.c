/* SPDX-License-Identifier: MIT */
/* ssm_fp_flush_denormals (kernels/ssm_kernels.h): after the call the thread's
 * control register has the flush bits (read back independently with the SSE
 * intrinsic on x86-64) and a product whose exact result is subnormal comes
 * out as 0, a subnormal operand reads as 0; before the call neither holds. */
#include <float.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/ssm_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

/* volatile: computed at run time under the thread's mode, not folded */
static float product(float a, float b)
{
    volatile float x = a, y = b;
    return x * y;
}

static void check_flushed(void)
{
    assert_int_equal(ssm_fp_denormals_flushed(), 1);
#if defined(__x86_64__) || defined(__i386__)
    unsigned csr = _mm_getcsr();
    assert_true(csr & 0x8000u); /* FTZ */
    assert_true(csr & 0x0040u); /* DAZ */
#endif
    assert_true(product(FLT_MIN, 0.25f) == 0.0f);               /* FTZ: subnormal result */
    volatile float sub = 0;
    uint32_t bits = 0x00000100u;                                 /* a subnormal operand */
    __builtin_memcpy((void *)&sub, &bits, sizeof bits);
    assert_true(product(sub, 1e30f) == 0.0f);                    /* DAZ: read as zero */
}

static void *thread_main(void *arg)
{
    (void)arg;
    ssm_fp_flush_denormals();
    check_flushed();
    return NULL;
}

static void test_flush(void **unused)
{
    (void)unused;
    if (!ssm_fp_flush_denormals() && !ssm_fp_denormals_flushed()) {
        skip(); /* an architecture without the mode */
        return;
    }
    check_flushed();
}

static void test_default_keeps_subnormals(void **unused)
{
    (void)unused;
    /* a fresh process starts without the mode (checked before any call) */
    assert_int_equal(ssm_fp_denormals_flushed(), 0);
    assert_true(product(FLT_MIN, 0.25f) != 0.0f);
}

static void test_worker_thread(void **unused)
{
    (void)unused;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_main, NULL), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_keeps_subnormals),
        cmocka_unit_test(test_flush),
        cmocka_unit_test(test_worker_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
