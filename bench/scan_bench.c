/* SPDX-License-Identifier: MIT */
/* The selective-scan step alone (ssm_scan_step_get), per ISA, at the shapes
 * the models run: one JSON line per (shape, isa) with the fastest of several
 * passes in ns per channel-step (one stream, one channel, all its states)
 * and the state traffic it implies (each step reads and writes the state
 * once: 2 · d_inner · d_state · 4 bytes per stream).  Inputs are shaped like
 * a trained model's: A = −(n+1) (S4D-real init), Δ in [0.001, 0.1].
 *
 *   scan_bench [passes]        (default 15; pin it: taskset -c 0)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/ssm_kernels.h"
#include "bench_machine.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

static float *falloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) {
        fprintf(stderr, "scan_bench: out of memory\n");
        exit(1);
    }
    return p;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench(int d_inner, int d_state, int n_streams, int passes)
{
    const size_t hs = (size_t)d_inner * d_state;
    float *x = falloc((size_t)n_streams * d_inner), *dt = falloc((size_t)n_streams * d_inner);
    float *y = falloc((size_t)n_streams * d_inner), *A = falloc(hs), *D = falloc((size_t)d_inner);
    float *bc = falloc((size_t)n_streams * 2 * d_state);
    float **h = malloc((size_t)n_streams * sizeof *h);
    for (size_t i = 0; i < (size_t)n_streams * d_inner; ++i) {
        x[i] = frand(-2, 2);
        dt[i] = frand(0.001f, 0.1f);
    }
    for (int c = 0; c < d_inner; ++c) {
        D[c] = frand(-1, 1);
        for (int n = 0; n < d_state; ++n)
            A[(size_t)c * d_state + n] = -(float)(n + 1);
    }
    for (size_t i = 0; i < (size_t)n_streams * 2 * d_state; ++i)
        bc[i] = frand(-1, 1);
    for (int s = 0; s < n_streams; ++s) {
        h[s] = falloc(hs);
        memset(h[s], 0, hs * sizeof(float));
    }
    /* about 20 ms of work per pass */
    const double work = (double)n_streams * (double)hs;
    int iters = (int)(2e7 / work) + 1;
    static const ssm_isa isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};
    for (size_t v = 0; v < sizeof isas / sizeof isas[0]; ++v) {
        if (!ssm_isa_supported(isas[v]))
            continue;
        ssm_scan_step_fn fn = ssm_scan_step_get(isas[v]);
        double best = 1e300;
        for (int p = 0; p < passes; ++p) {
            double t0 = now_ns();
            for (int it = 0; it < iters; ++it)
                fn(y, (size_t)d_inner, h, x, (size_t)d_inner, dt, (size_t)d_inner, A, bc,
                   bc + d_state, (size_t)(2 * d_state), D, -INFINITY, n_streams, d_inner, d_state);
            double t = (now_ns() - t0) / iters;
            if (t < best)
                best = t;
        }
        double ns_ch = best / ((double)n_streams * d_inner);
        double gbs = 2.0 * (double)n_streams * (double)hs * sizeof(float) / best;
        ssm_bench_line("{\"bench\":\"scan_step\",\"d_inner\":%d,\"d_state\":%d,\"batch\":%d,\"isa\":\"%s\","
               "\"ns_per_channel_step\":%.3f,\"us_per_call\":%.3f,\"state_gb_s\":%.2f}\n",
               d_inner, d_state, n_streams, ssm_isa_name(isas[v]), ns_ch, best / 1e3, gbs);
        fflush(stdout);
    }
    for (int s = 0; s < n_streams; ++s)
        free(h[s]);
    free(h); free(x); free(dt); free(y); free(A); free(D); free(bc);
}

int main(int argc, char **argv)
{
    int passes = argc > 1 ? atoi(argv[1]) : 15;
    if (passes < 1)
        passes = 1;
    static const int shapes[][3] = {
        {512, 16, 1}, {256, 16, 64}, {256, 16, 256}, {256, 4, 1}, {256, 8, 1}, {256, 4, 64},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
        bench(shapes[i][0], shapes[i][1], shapes[i][2], passes);
    return 0;
}
