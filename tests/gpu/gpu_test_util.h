/* SPDX-License-Identifier: MIT */
/* Helpers shared by the GPU tests (test_cuda.c, test_cuda_hybrid.c): a
 * xorshift64 random source seeded by GPU_TEST_SEED (defined by the including
 * file, so each test keeps its own sequence), the error measure
 * |gpu - cpu| / (1 + |cpu|) with NaN counting as infinitely wrong, and
 * allocations that fail the cmocka test instead of returning NULL.
 * Include after <cmocka.h> and <cuda_runtime.h>. */
#ifndef SSM_GPU_TEST_UTIL_H
#define SSM_GPU_TEST_UTIL_H

#ifndef GPU_TEST_SEED
#error "define GPU_TEST_SEED before including gpu_test_util.h"
#endif

static uint64_t g_rng = GPU_TEST_SEED;

static inline float frand(float lo, float hi)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

static inline void fill(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; ++i)
        p[i] = frand(lo, hi);
}

static inline double err_of(const float *gpu, const float *cpu, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double e = fabs((double)gpu[i] - (double)cpu[i]) / (1.0 + fabs((double)cpu[i]));
        if (!(e <= worst)) /* NaN counts as infinitely wrong */
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static inline void *dmalloc(size_t n)
{
    void *p = NULL;
    assert_int_equal(cudaMalloc(&p, n ? n : 1), cudaSuccess);
    return p;
}

#endif /* SSM_GPU_TEST_UTIL_H */
