/* SPDX-License-Identifier: MIT */
/* Projection kernels alone against OpenBLAS sgemm, in the same run: the
 * packed fp32 and f16 kernels (best ISA) with their cache blocking
 * (ssm_linear_packed_blocking, from the caches detected at start-up) and
 * with it switched off (ssm_linear_packed_set_blocking(d_in, n_rows): one
 * K block, one row block, the loop of the kernels before the blocking), at
 * the projection shapes of the bench models (small: d_model 128 × 4 layers,
 * medium: 512 × 8, d_state 16; in_proj, x_proj, dt_proj, out_proj) for
 * batches 1, 16 and 64, and 1024³.  The implementations are interleaved:
 * each round times one measurement of each in turn, so load on a shared
 * machine falls on all of them alike; a measurement repeats the call until
 * it lasts about 0.2 ms; every array is 64-byte aligned, as in the model.
 * Per shape and implementation: the best and the median GFLOP/s over the
 * rounds of SSMD_BENCH_SECONDS (default 1) seconds, and the best as a
 * fraction of sgemm's best.  Blocked and unblocked results are compared
 * bit for bit (they must be equal).
 * Run pinned, one BLAS thread:
 *   OPENBLAS_NUM_THREADS=1 taskset -c 1 build/bench/linear_bench
 * One JSON line per figure, the first with the CPU model, ISA, cache sizes,
 * the blocking and the load average (again at the end).
 *
 *   linear_bench --blocking M K N KC:MC [KC:MC ...]
 *       the packed fp32 kernel (best ISA) at one shape with each forced
 *       blocking (ssm_linear_packed_set_blocking; 0:0 = the cache-derived
 *       default), interleaved round by round: how the sizes were chosen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "kernels/ssm_kernels.h"
#include "bench_machine.h"

enum { IMPL_SGEMM, IMPL_F32, IMPL_F32_UNBLOCKED, IMPL_F16, IMPL_F16_UNBLOCKED, N_IMPL };
static const char *const k_impl[N_IMPL] = {"openblas-sgemm", "packed-f32", "packed-f32-unblocked",
                                           "packed-f16", "packed-f16-unblocked"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct shape {
    const char *model, *layer;
    int d_in, d_out;
} shape;

static void run_impl(int impl, ssm_linear_packed_fn f32, ssm_linear_packed_fn f16, float *c,
                     const float *a, const float *b, const float *p32, const unsigned short *p16,
                     int M, int K, int N)
{
    int unblocked = impl == IMPL_F32_UNBLOCKED || impl == IMPL_F16_UNBLOCKED;
    ssm_linear_packed_set_blocking(unblocked ? K : 0, unblocked ? M : 0);
    switch (impl) {
    case IMPL_SGEMM:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        break;
    case IMPL_F32:
    case IMPL_F32_UNBLOCKED:
        f32(c, (size_t)N, a, (size_t)K, p32, NULL, M, K, N);
        break;
    default:
        f16(c, (size_t)N, a, (size_t)K, p16, NULL, M, K, N);
        break;
    }
}

/* n bytes, 64-byte aligned as the model's panels and runner scratch are. */
static void *alloc64(size_t n)
{
    return aligned_alloc(64, (n + 63) / 64 * 64);
}

static void figure(const char *model, const char *layer, int M, int K, int N, double budget,
                   ssm_isa isa)
{
    float *a = alloc64(sizeof(float) * (size_t)M * K), *b = alloc64(sizeof(float) * (size_t)N * K);
    float *c = alloc64(sizeof(float) * (size_t)M * N), *c2 = alloc64(sizeof(float) * (size_t)M * N);
    float *p32 = alloc64(sizeof(float) * ssm_pack_elems(K, N));
    unsigned short *p16 = alloc64(sizeof(unsigned short) * ssm_pack_elems(K, N));
    if (!a || !b || !c || !c2 || !p32 || !p16) {
        fprintf(stderr, "linear_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = (float)((i * 2654435761u) % 1000) * 0.002f - 1.0f;
    for (size_t i = 0; i < (size_t)N * K; ++i)
        b[i] = (float)((i * 40503u) % 1000) * 0.002f - 1.0f;
    ssm_pack_f32(p32, b, K, N);
    ssm_pack_f16(p16, b, K, N);
    ssm_linear_packed_fn f32 = ssm_linear_packed_get(isa, 0), f16 = ssm_linear_packed_get(isa, 1);
    /* blocked = unblocked, bit for bit */
    int equal = 1;
    for (int h = 0; h < 2; ++h) {
        run_impl(h ? IMPL_F16 : IMPL_F32, f32, f16, c, a, b, p32, p16, M, K, N);
        run_impl(h ? IMPL_F16_UNBLOCKED : IMPL_F32_UNBLOCKED, f32, f16, c2, a, b, p32, p16, M, K, N);
        equal &= memcmp(c, c2, sizeof(float) * (size_t)M * N) == 0;
    }
    /* repetitions per measurement: about 0.2 ms of sgemm */
    double t = now_s();
    run_impl(IMPL_SGEMM, f32, f16, c, a, b, p32, p16, M, K, N);
    t = now_s() - t;
    int reps = t > 2e-4 ? 1 : (int)(2e-4 / (t > 1e-8 ? t : 1e-8)) + 1;
    enum { MAX_ROUNDS = 4096 };
    static double g[N_IMPL][MAX_ROUNDS];
    int rounds = 0;
    double t0 = now_s();
    while (rounds < MAX_ROUNDS && (rounds < 5 || now_s() - t0 < budget)) {
        for (int i = 0; i < N_IMPL; ++i) {
            run_impl(i, f32, f16, c, a, b, p32, p16, M, K, N); /* warm */
            double s = now_s();
            for (int r = 0; r < reps; ++r)
                run_impl(i, f32, f16, c, a, b, p32, p16, M, K, N);
            double e = (now_s() - s) / reps;
            g[i][rounds] = 2.0 * M * N * K / e * 1e-9;
        }
        ++rounds;
    }
    ssm_linear_packed_set_blocking(0, 0);
    double best[N_IMPL];
    for (int i = 0; i < N_IMPL; ++i) {
        qsort(g[i], (size_t)rounds, sizeof(double), cmp_double);
        best[i] = g[i][rounds - 1];
    }
    for (int i = 0; i < N_IMPL; ++i) {
        ssm_bench_line("{\"bench\":\"linear\",\"model\":\"%s\",\"layer\":\"%s\",\"M\":%d,\"K\":%d,\"N\":%d,"
               "\"impl\":\"%s\",\"isa\":\"%s\",\"gflops_best\":%.2f,\"gflops_median\":%.2f,"
               "\"fraction_of_sgemm_best\":%.3f,\"rounds\":%d,\"reps\":%d,"
               "\"blocked_equals_unblocked\":%s}\n",
               model, layer, M, K, N, k_impl[i], i == IMPL_SGEMM ? "openblas" : ssm_isa_name(isa),
               best[i], g[i][rounds / 2], best[i] / best[IMPL_SGEMM], rounds, reps,
               equal ? "true" : "false");
    }
    fflush(stdout);
    free(a);
    free(b);
    free(c);
    free(c2);
    free(p32);
    free(p16);
    if (!equal) {
        fprintf(stderr, "linear_bench: blocked and unblocked results differ (%s %s %dx%dx%d)\n",
                model, layer, M, K, N);
        exit(1);
    }
}

/* --blocking: one shape, the fp32 kernel under each forced blocking. */
static int blocking_grid(int argc, char **argv, double budget, ssm_isa isa, const char *cpu,
                         const char *load)
{
    int M = atoi(argv[2]), K = atoi(argv[3]), N = atoi(argv[4]), nc = argc - 5;
    enum { MAX_CFG = 32, MAX_ROUNDS = 4096 };
    if (M < 1 || K < 1 || N < 1 || nc < 1 || nc > MAX_CFG) {
        fprintf(stderr, "usage: linear_bench --blocking M K N KC:MC [KC:MC ...] (at most %d)\n",
                MAX_CFG);
        return 1;
    }
    int kc[MAX_CFG], mc[MAX_CFG];
    for (int i = 0; i < nc; ++i)
        if (sscanf(argv[5 + i], "%d:%d", &kc[i], &mc[i]) != 2) {
            fprintf(stderr, "linear_bench: %s is not KC:MC\n", argv[5 + i]);
            return 1;
        }
    float *a = alloc64(sizeof(float) * (size_t)M * K), *b = alloc64(sizeof(float) * (size_t)N * K);
    float *c = alloc64(sizeof(float) * (size_t)M * N);
    float *p32 = alloc64(sizeof(float) * ssm_pack_elems(K, N));
    if (!a || !b || !c || !p32)
        return 1;
    for (size_t i = 0; i < (size_t)M * K; ++i)
        a[i] = (float)((i * 2654435761u) % 1000) * 0.002f - 1.0f;
    for (size_t i = 0; i < (size_t)N * K; ++i)
        b[i] = (float)((i * 40503u) % 1000) * 0.002f - 1.0f;
    ssm_pack_f32(p32, b, K, N);
    ssm_linear_packed_fn f32 = ssm_linear_packed_get(isa, 0);
    static double g[MAX_CFG][MAX_ROUNDS];
    int rounds = 0;
    double t0 = now_s();
    while (rounds < MAX_ROUNDS && (rounds < 5 || now_s() - t0 < budget)) {
        for (int i = 0; i < nc; ++i) {
            ssm_linear_packed_set_blocking(kc[i], mc[i]);
            double s = now_s();
            f32(c, (size_t)N, a, (size_t)K, p32, NULL, M, K, N);
            g[i][rounds] = 2.0 * M * N * K / (now_s() - s) * 1e-9;
        }
        ++rounds;
    }
    ssm_linear_packed_set_blocking(0, 0);
    for (int i = 0; i < nc; ++i) {
        qsort(g[i], (size_t)rounds, sizeof(double), cmp_double);
        ssm_bench_line("{\"bench\":\"linear_blocking\",\"cpu\":\"%s\",\"isa\":\"%s\",\"M\":%d,"
               "\"K\":%d,\"N\":%d,\"kc\":%d,\"mc\":%d,\"gflops_best\":%.2f,"
               "\"gflops_median\":%.2f,\"rounds\":%d,\"loadavg_start\":\"%s\"}\n",
               cpu, ssm_isa_name(isa), M, K, N, kc[i], mc[i], g[i][rounds - 1], g[i][rounds / 2],
               rounds, load);
    }
    free(a);
    free(b);
    free(c);
    free(p32);
    return 0;
}

int main(int argc, char **argv)
{
    const char *secs_env = getenv("SSMD_BENCH_SECONDS");
    double budget = secs_env ? atof(secs_env) : 1.0;
    ssm_isa isa = ssm_isa_best();
    char cpu[256], load[64];
    ssm_bench_cpu_model(cpu, sizeof cpu);
    ssm_bench_loadavg(load, sizeof load);
    if (argc >= 2 && strcmp(argv[1], "--blocking") == 0)
        return blocking_grid(argc, argv, budget, isa, cpu, load);
    ssm_cpu_caches cc;
    ssm_cpu_caches_get(&cc);
    int kc32, mc32, kc16, mc16;
    ssm_linear_packed_blocking(isa, 0, &kc32, &mc32);
    ssm_linear_packed_blocking(isa, 1, &kc16, &mc16);
    const char *blas_threads = getenv("OPENBLAS_NUM_THREADS");
    ssm_bench_line("{\"bench\":\"linear_info\",\"cpu\":\"%s\",\"isa\":\"%s\",\"l1d_bytes\":%zu,"
           "\"l2_bytes\":%zu,\"l3_bytes\":%zu,\"f32_kc\":%d,\"f32_mc\":%d,\"f16_kc\":%d,"
           "\"f16_mc\":%d,\"openblas_num_threads\":\"%s\",\"loadavg_start\":\"%s\"}\n",
           cpu, ssm_isa_name(isa), cc.l1d_bytes, cc.l2_bytes, cc.l3_bytes, kc32, mc32, kc16, mc16,
           blas_threads ? blas_threads : "unset", load);
    fflush(stdout);
    /* d_inner = 2·d_model, dt_rank = d_model/16, x_proj out = dt_rank + 2·16 */
    static const shape shapes[] = {
        {"small", "in_proj", 128, 512},   {"small", "x_proj", 256, 40},
        {"small", "dt_proj", 8, 256},     {"small", "out_proj", 256, 128},
        {"medium", "in_proj", 512, 2048}, {"medium", "x_proj", 1024, 64},
        {"medium", "dt_proj", 32, 1024},  {"medium", "out_proj", 1024, 512},
    };
    static const int batches[] = {1, 16, 64};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; ++bi)
            figure(shapes[s].model, shapes[s].layer, batches[bi], shapes[s].d_in, shapes[s].d_out,
                   budget, isa);
    figure("square", "1024^3", 1024, 1024, 1024, budget, isa);
    ssm_bench_loadavg(load, sizeof load);
    ssm_bench_line("{\"bench\":\"linear_info\",\"loadavg_end\":\"%s\"}\n", load);
    return 0;
}
