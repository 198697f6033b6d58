/* SPDX-License-Identifier: MIT */
/* The elementwise kernels of a step alone (softplus, conv step + SiLU, SiLU
 * gate, sigmoid), per variant, at the models' shapes: one JSON line per
 * (kernel, shape, impl) with the fastest of several passes in ns per element
 * (per channel for the conv) and µs per call.  impl "reference" is the
 * plain-C kernel (libm expf), "vec" the portable _vec function (GNU target
 * clones: its AVX-512 clone here), "avx2" and "avx512" what the ssm_*_get
 * functions return for that ISA.  The in-place gate is timed with a copy
 * that restores its input, minus that copy timed alone.
 *
 *   elem_bench [passes]        (default 15; pin it: taskset -c 0)
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

static float *falloc(size_t n, float lo, float hi)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) {
        fprintf(stderr, "elem_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; ++i)
        p[i] = frand(lo, hi);
    return p;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum { K_SOFTPLUS, K_CONV, K_GATE, K_SIGMOID, N_KERNELS };
static const char *const k_names[] = {"softplus", "conv_step_silu", "gate_silu", "sigmoid"};

typedef struct impl {
    const char *name;
    ssm_softplus_fn softplus;
    ssm_conv_step_fn conv;
    ssm_gate_silu_fn gate;
    ssm_sigmoid_fn sigmoid;
} impl;

static void bench(int kernel, int dim, int rows, const impl *im, int passes)
{
    const int d_conv = 4;
    size_t n = (size_t)rows * dim;
    /* inputs shaped like a model's: dt_proj outputs around −4, conv inputs and
     * gates of order 1; the sigmoid rewrites its input, refilled per pass */
    float *x = falloc(n, -6, 2), *x0 = falloc(n, -6, 2), *out = falloc(n, 0, 1);
    float *bias = falloc((size_t)dim, -1, 1), *w = falloc((size_t)dim * d_conv, -1, 1);
    float *state = falloc(n * d_conv, -1, 1);
    float **ptr = malloc((size_t)rows * sizeof *ptr);
    for (int s = 0; s < rows; ++s)
        ptr[s] = state + (size_t)s * dim * d_conv;
    int iters = (int)(2e6 / (double)n) + 1; /* a few ms per pass */
    double best = 1e300;
    for (int p = 0; p < passes; ++p) {
        double t0 = now_ns();
        for (int it = 0; it < iters; ++it) {
            switch (kernel) {
            case K_SOFTPLUS: im->softplus(out, (size_t)dim, x, (size_t)dim, bias, rows, dim); break;
            case K_CONV:
                im->conv(out, (size_t)dim, ptr, x, (size_t)dim, w, bias, rows, dim, d_conv);
                break;
            case K_GATE:
                /* in place: y is restored first (y ← y·SiLU(z) over and over
                 * would sink into subnormals); the copy is timed apart and
                 * subtracted below */
                memcpy(out, x0, n * sizeof *out);
                im->gate(out, (size_t)dim, x, (size_t)dim, rows, dim);
                break;
            default:
                /* in place: alternate between two buffers so the input stays
                 * a model-like distribution (sigmoid of a sigmoid is in (0.5, 0.74)) */
                im->sigmoid((it & 1) ? x0 : out, (size_t)dim, rows, dim);
                break;
            }
        }
        double t = (now_ns() - t0) / iters;
        if (t < best)
            best = t;
    }
    if (kernel == K_GATE) {
        double copy = 1e300;
        for (int p = 0; p < passes; ++p) {
            double t0 = now_ns();
            for (int it = 0; it < iters; ++it) {
                memcpy(out, x0, n * sizeof *out);
                __asm__ volatile("" : : "r"(out) : "memory");
            }
            double t = (now_ns() - t0) / iters;
            if (t < copy)
                copy = t;
        }
        best -= copy;
    }
    ssm_bench_line("{\"bench\":\"elem\",\"kernel\":\"%s\",\"dim\":%d,\"batch\":%d,\"impl\":\"%s\","
           "\"ns_per_element\":%.3f,\"us_per_call\":%.3f}\n",
           k_names[kernel], dim, rows, im->name, best / (double)n, best / 1e3);
    fflush(stdout);
    free(x); free(x0); free(out); free(bias); free(w); free(state); free(ptr);
}

int main(int argc, char **argv)
{
    int passes = argc > 1 ? atoi(argv[1]) : 15;
    if (passes < 1)
        passes = 1;
    impl impls[4] = {
        {"reference", ssm_softplus_f32, ssm_conv_step_f32, ssm_gate_silu_f32, ssm_sigmoid_f32},
        {"vec", ssm_softplus_f32_vec, ssm_conv_step_f32_vec, ssm_gate_silu_f32_vec,
         ssm_sigmoid_f32_vec},
    };
    int n_impl = 2;
    static const ssm_isa isas[] = {SSM_ISA_AVX2, SSM_ISA_AVX512};
    for (size_t v = 0; v < sizeof isas / sizeof isas[0]; ++v)
        if (ssm_isa_supported(isas[v]))
            impls[n_impl++] = (impl){ssm_isa_name(isas[v]), ssm_softplus_get(isas[v]),
                                     ssm_conv_step_get(isas[v]), ssm_gate_silu_get(isas[v]),
                                     ssm_sigmoid_get(isas[v])};
    /* d_inner × batch of the small model's step and of a batch-1 stream of a
     * d_model 256 model; the sigmoid at the mask head's 257 bins */
    static const int shapes[][2] = {{256, 64}, {512, 1}};
    for (int k = 0; k < N_KERNELS; ++k)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
            int dim = shapes[s][0], rows = shapes[s][1];
            if (k == K_SIGMOID)
                dim = dim == 256 ? 257 : dim;
            for (int i = 0; i < n_impl; ++i)
                bench(k, dim, rows, &impls[i], passes);
        }
    return 0;
}
