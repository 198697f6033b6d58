/* SPDX-License-Identifier: MIT */
/* This machine's roofline, measured: peak sgemm GFLOP/s through the BLAS the
 * model links (OpenBLAS; one thread unless OPENBLAS_NUM_THREADS says
 * otherwise), at a large square shape and at the projection shapes of a
 * batched step, and memory bandwidth by a STREAM-style copy (c[i] = a[i],
 * counted as 2 × 4 bytes per element as STREAM does) at working sets that
 * sit in L2, in L3 and in DRAM.  Each figure is the fastest of repeated
 * passes for SSMD_BENCH_SECONDS (default 1) seconds: other load on a shared
 * machine only slows a pass down.  Also the core's peak FMA rate (AVX-512
 * and AVX2 FMA loops with enough independent chains), since the BLAS may not
 * use the widest vectors (OpenBLAS 0.3.21 runs its Haswell AVX2 kernels on
 * AVX-512 Zen 4).  One JSON line per figure.
 *
 * Next to each sgemm shape: ssmd's own batch-invariant projection kernels
 * at the same shape (packed FMA kernel at the best ISA, fp32 and f16
 * weights; int8 weights and activations, counted as 2 operations per
 * multiply-add like the others; the no-FMA reference ssm_linear_f32), so the
 * fraction of the BLAS roofline they reach is measured in the same run.
 * The shape "matvec_1m" is one row through the in_proj of the ~1 M-parameter
 * token model (batch-1 generation).
 *
 *   roofline                                                                */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "kernels/ssm_kernels.h"
#include "bench_machine.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sgemm_figure(const char *label, int M, int N, int K, double budget)
{
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)N * K);
    float *c = malloc(sizeof(float) * (size_t)M * N);
    if (!a || !b || !c) {
        fprintf(stderr, "roofline: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; ++i)
        b[i] = (float)(i % 13) * 0.01f;
    double best = 1e30;
    int n = 0;
    double t0 = now_s();
    while (n < 3 || now_s() - t0 < budget) {
        double s = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double e = now_s() - s;
        if (e < best)
            best = e;
        ++n;
    }
    ssm_bench_line("{\"bench\":\"roofline\",\"what\":\"sgemm\",\"shape\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,"
           "\"gflops\":%.2f,\"reps\":%d}\n", label, M, N, K, 2.0 * M * N * K / best * 1e-9, n);
    fflush(stdout);
    double peak = 2.0 * M * N * K / best * 1e-9;
    /* ssmd's kernels at the same shape: out {M, N} = a {M, K} · bᵀ */
    float *p32 = malloc(sizeof(float) * ssm_pack_elems(K, N));
    unsigned short *p16 = malloc(sizeof(unsigned short) * ssm_pack_elems(K, N));
    void *p8 = aligned_alloc(64, ssm_pack_q8_bytes(K, N));
    if (!p32 || !p16 || !p8 || ssm_pack_q8(p8, b, K, N) != 0)
        exit(1);
    ssm_pack_f32(p32, b, K, N);
    ssm_pack_f16(p16, b, K, N);
    ssm_isa isa = ssm_isa_best();
    for (int v = 0; v < 4; ++v) {
        ssm_linear_packed_fn fn = v < 2 ? ssm_linear_packed_get(isa, v) : v == 3 ? ssm_linear_q8_get(isa) : NULL;
        const void *wp = v == 0 ? (const void *)p32 : v == 1 ? (const void *)p16 : p8;
        double kb = 1e30;
        int kn = 0;
        double k0 = now_s();
        while (kn < 3 || now_s() - k0 < budget) {
            double s = now_s();
            if (fn)
                fn(c, (size_t)N, a, (size_t)K, wp, NULL, M, K, N);
            else
                ssm_linear_f32(c, (size_t)N, a, (size_t)K, b, NULL, M, K, N);
            double e = now_s() - s;
            if (e < kb)
                kb = e;
            ++kn;
        }
        double g = 2.0 * M * N * K / kb * 1e-9;
        ssm_bench_line("{\"bench\":\"linear_kernel\",\"impl\":\"%s\",\"isa\":\"%s\",\"shape\":\"%s\","
               "\"gflops\":%.2f,\"fraction_of_sgemm\":%.3f}\n",
               v == 0 ? "packed-f32" : v == 1 ? "packed-f16" : v == 3 ? "int8" : "reference-nofma",
               v != 2 ? ssm_isa_name(isa) : "clone", label, g, g / peak);
        fflush(stdout);
    }
    free(p32);
    free(p16);
    free(p8);
    free(a);
    free(b);
    free(c);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* Peak FMA throughput: 16 independent accumulator chains (hides the FMA
 * latency), 2 FLOPs per lane per FMA. */
__attribute__((target("avx512f,fma"))) static double fma_peak_avx512(long iters)
{
    __m512 acc[16];
    for (int i = 0; i < 16; ++i)
        acc[i] = _mm512_set1_ps((float)i);
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
    double t = now_s();
    for (long k = 0; k < iters; ++k)
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i)
            acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    t = now_s() - t;
    __m512 s = acc[0];
    for (int i = 1; i < 16; ++i)
        s = _mm512_add_ps(s, acc[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    if (out[0] == 12345.0f)
        printf("#\n");
    return 2.0 * 16 * 16 * (double)iters / t * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma_peak_avx2(long iters)
{
    __m256 acc[12];
    for (int i = 0; i < 12; ++i)
        acc[i] = _mm256_set1_ps((float)i);
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    double t = now_s();
    for (long k = 0; k < iters; ++k)
#pragma GCC unroll 16
        for (int i = 0; i < 12; ++i)
            acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    t = now_s() - t;
    __m256 s = acc[0];
    for (int i = 1; i < 12; ++i)
        s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    if (out[0] == 12345.0f)
        printf("#\n");
    return 2.0 * 8 * 12 * (double)iters / t * 1e-9;
}

static void fma_figure(double budget)
{
    __builtin_cpu_init();
    for (int v = 0; v < 2; ++v) {
        if (v == 0 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")))
            continue;
        if (v == 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            continue;
        double best = 0, t0 = now_s();
        int n = 0;
        while (n < 3 || now_s() - t0 < budget) {
            double g = v == 0 ? fma_peak_avx512(2000000) : fma_peak_avx2(2000000);
            if (g > best)
                best = g;
            ++n;
        }
        ssm_bench_line("{\"bench\":\"roofline\",\"what\":\"fma_peak\",\"isa\":\"%s\",\"gflops\":%.2f}\n",
               v == 0 ? "avx512" : "avx2", best);
        fflush(stdout);
    }
}
#else
static void fma_figure(double budget)
{
    (void)budget;
}
#endif

static void copy_figure(const char *label, size_t bytes, double budget)
{
    size_t n = bytes / sizeof(float);
    float *a = aligned_alloc(64, n * sizeof(float)), *c = aligned_alloc(64, n * sizeof(float));
    if (!a || !c) {
        fprintf(stderr, "roofline: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; ++i) {
        a[i] = (float)i;
        c[i] = 0.0f;
    }
    double best = 1e30;
    int reps = 0;
    double t0 = now_s();
    while (reps < 5 || now_s() - t0 < budget) {
        double s = now_s();
        memcpy(c, a, n * sizeof(float));
        double e = now_s() - s;
        if (e < best)
            best = e;
        a[reps % n] += 1.0f; /* keep the copies observable */
        ++reps;
    }
    ssm_bench_line("{\"bench\":\"roofline\",\"what\":\"copy\",\"level\":\"%s\",\"bytes\":%zu,"
           "\"gb_per_s\":%.2f,\"reps\":%d,\"check\":%g}\n",
           label, bytes, 2.0 * (double)n * sizeof(float) / best * 1e-9, reps, (double)c[n / 2]);
    fflush(stdout);
    free(a);
    free(c);
}

int main(void)
{
    const char *secs_env = getenv("SSMD_BENCH_SECONDS");
    double budget = secs_env ? atof(secs_env) : 1.0;
    fma_figure(budget);
    sgemm_figure("square", 1024, 1024, 1024, budget);
    /* in_proj of a d_model 512 model at batch 64: M 64 × K 512 × N 2048 */
    sgemm_figure("step_b64_d512", 64, 2048, 512, budget);
    /* in_proj of the small model (d_model 128) at batch 64 */
    sgemm_figure("step_b64_d128", 64, 512, 128, budget);
    sgemm_figure("matvec_1m", 1, 1024, 256, budget);
    copy_figure("L2", 256u << 10, budget);       /* 2 × 256 KiB */
    copy_figure("L3", 4u << 20, budget);         /* 2 × 4 MiB */
    copy_figure("DRAM", 256u << 20, budget);     /* 2 × 256 MiB */
    return 0;
}
