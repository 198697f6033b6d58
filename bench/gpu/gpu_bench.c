/* SPDX-License-Identifier: MIT */
/* bench/gpu: the CUDA backend's step throughput, and the fused scan's share of
 * the device's memory bandwidth, measured in one run (JSON lines on stdout).
 *
 *   gpu_bench MODEL NAME [BATCH...]     (default batches 1 256 4096 65536)
 *
 * Lines:
 *   {"bench":"gpu_copy", ...}            cudaMemcpy device→device of 2 GiB,
 *                                        bytes read + written per second
 *   {"bench":"gpu_step","impl":"ssmd-cuda", "batch":B, "outputs":"mask+vad"|"none",
 *    "weights":"f32"|"bf16", ...}
 *                                        ssm_step latency (median, p99 over the
 *                                        timed steps) and stream-steps/s
 *   {"bench":"gpu_scan", ...}            ssm_cuda_scan alone at the largest
 *                                        batch: bytes it must move (state read
 *                                        and written once, inputs, output) per
 *                                        second, and that as a fraction of gpu_copy
 *   {"bench":"gpu_realtime", ...}        real-time streams (100 frames/s) one
 *                                        GPU sustains = best stream-steps/s / 100
 * Env: SSMD_BENCH_SECONDS per figure (default 1.0).
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/ssm_kernels_cuda.h"
#include "model_internal.h"
#include "ssm/model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double g_budget = 1.0;

static double copy_bandwidth(void)
{
    size_t n = (size_t)2 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) {
        fprintf(stderr, "gpu_bench: cannot allocate 4 GiB for the copy test\n");
        cudaFree(a);
        return 0;
    }
    cudaMemset(a, 1, n);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    float best = 1e30f;
    for (int i = 0; i < 10; ++i) {
        cudaEventRecord(e0, 0);
        cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (ms < best)
            best = ms;
    }
    double gbs = 2.0 * n / (best * 1e-3) / 1e9;
    printf("{\"bench\":\"gpu_copy\",\"bytes\":%zu,\"best_ms\":%.4f,\"gb_per_s\":%.1f}\n", n,
           (double)best, gbs);
    cudaFree(a);
    cudaFree(b);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return gbs;
}

/* Times ssm_step at batch B; returns the median stream-steps per second. */
static double bench_step(ssm_model *m, const char *name, int B, int with_outputs, int bf16)
{
    ssm_error err = {0};
    ssm_runner *rn = NULL;
    if (ssm_runner_create(m, B, 1, bf16 ? SSM_RUNNER_BF16_WEIGHTS : 0, &rn, &err) != SSM_OK) {
        fprintf(stderr, "gpu_bench: %s\n", err.msg);
        return 0;
    }
    ssm_state **st = calloc((size_t)B, sizeof *st);
    int nf = ssm_model_n_features(m), nm = ssm_model_n_mask(m);
    float *f = malloc((size_t)B * (nf ? nf : 1) * sizeof(float));
    int32_t *tok = calloc((size_t)B, sizeof *tok);
    float *mask = nm ? malloc((size_t)B * nm * sizeof(float)) : NULL;
    float *vad = malloc((size_t)B * sizeof(float));
    double t_alloc = now_s();
    for (int i = 0; i < B; ++i)
        if (ssm_state_create(m, &st[i]) != SSM_OK) {
            fprintf(stderr, "gpu_bench: state %d of %d: out of device memory\n", i, B);
            return 0;
        }
    t_alloc = now_s() - t_alloc;
    for (size_t i = 0; i < (size_t)B * (nf ? nf : 1); ++i)
        f[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    unsigned heads = ssm_model_heads(m);
    ssm_outputs out = {0};
    if (with_outputs) {
        out.mask = (heads & SSM_MODEL_HEAD_MASK) ? mask : NULL;
        out.vad = (heads & SSM_MODEL_HEAD_VAD) ? vad : NULL;
    }
    for (int i = 0; i < 3; ++i) /* graph capture, cuBLAS heuristics, clocks */
        ssm_step(rn, st, B, f, tok, &out, NULL);
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    double t0 = now_s();
    size_t min_steps = B == 1 ? 10000 : 20;
    while ((n < min_steps || now_s() - t0 < g_budget) && n < cap) {
        double a = now_s();
        if (ssm_step(rn, st, B, f, tok, &out, NULL) < 0) {
            fprintf(stderr, "gpu_bench: ssm_step failed at batch %d\n", B);
            break;
        }
        lat[n++] = now_s() - a;
        if (B >= 4096 && n >= min_steps && now_s() - t0 > g_budget)
            break;
    }
    double total = now_s() - t0;
    qsort(lat, n, sizeof *lat, cmp_d);
    double med = lat[n / 2], p99 = lat[(size_t)((n - 1) * 0.99)];
    printf("{\"bench\":\"gpu_step\",\"impl\":\"ssmd-cuda\",\"model\":\"%s\",\"batch\":%d,"
           "\"outputs\":\"%s\",\"weights\":\"%s\",\"steps\":%zu,\"median_us\":%.2f,\"p99_us\":%.2f,"
           "\"stream_steps_per_s\":%.1f,\"mean_stream_steps_per_s\":%.1f,"
           "\"state_bytes\":%zu,\"state_alloc_s\":%.3f,\"graph_nodes\":%d}\n",
           name, B, with_outputs ? "mask+vad" : "none", bf16 ? "bf16" : "f32", n, med * 1e6, p99 * 1e6, B / med,
           n * (double)B / total, ssm_state_bytes(m), t_alloc, ssm_runner_cuda_graphed_(rn));
    fflush(stdout);
    for (int i = 0; i < B; ++i)
        ssm_state_destroy(st[i]);
    free(st);
    free(f);
    free(tok);
    free(mask);
    free(vad);
    free(lat);
    ssm_runner_destroy(rn);
    return B / med;
}

/* The fused scan alone on the model's layer shape at batch B, timed with
 * events; bytes = what it must move at least. */
static void bench_scan(ssm_model *m, const char *name, int B, double copy_gbs)
{
    int di = ssm_model_d_inner(m), N = ssm_model_d_state(m);
    size_t per = (size_t)di * N, rows = (size_t)B;
    float *st = NULL, *x = NULL, *dt = NULL, *z = NULL, *y = NULL, *bc = NULL, *A = NULL;
    float **ptr = NULL;
    if (cudaMalloc((void **)&st, rows * per * 4) || cudaMalloc((void **)&x, rows * di * 4) ||
        cudaMalloc((void **)&dt, rows * di * 4) || cudaMalloc((void **)&z, rows * di * 4) ||
        cudaMalloc((void **)&y, rows * di * 4) || cudaMalloc((void **)&bc, rows * 2 * N * 4) ||
        cudaMalloc((void **)&A, per * 4) || cudaMalloc((void **)&ptr, rows * sizeof(float *))) {
        fprintf(stderr, "gpu_bench: scan buffers do not fit\n");
        return;
    }
    cudaMemset(st, 0, rows * per * 4);
    cudaMemset(x, 0, rows * di * 4);
    cudaMemset(dt, 0, rows * di * 4);
    cudaMemset(z, 0, rows * di * 4);
    cudaMemset(bc, 0, rows * 2 * N * 4);
    cudaMemset(A, 0, per * 4);
    float **h = malloc(rows * sizeof *h);
    for (size_t i = 0; i < rows; ++i)
        h[i] = st + i * per;
    cudaMemcpy(ptr, h, rows * sizeof *h, cudaMemcpyHostToDevice);
    free(h);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float best = 1e30f;
    for (int i = 0; i < 20; ++i) {
        cudaEventRecord(e0, 0);
        ssm_cuda_scan(y, di, ptr, 0, x, di, dt, di, NULL, A, bc, bc + N, 2 * (size_t)N, NULL, z,
                      di, -1e30f, B, 1, di, N, NULL);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 2 && ms < best)
            best = ms;
    }
    double bytes = 2.0 * rows * per * 4 + 4.0 * rows * di * 4 + 2.0 * rows * N * 4 + per * 4 +
                   rows * sizeof(float *);
    double gbs = bytes / (best * 1e-3) / 1e9;
    int per_lane = ssm_cuda_scan_set_elems_per_lane(0);
    printf("{\"bench\":\"gpu_scan\",\"model\":\"%s\",\"batch\":%d,\"d_inner\":%d,\"d_state\":%d,"
           "\"elems_per_lane\":%d,"
           "\"best_us\":%.2f,\"bytes\":%.0f,\"gb_per_s\":%.1f,\"fraction_of_copy\":%.3f}\n",
           name, B, di, N, per_lane, best * 1e3, bytes, gbs, copy_gbs > 0 ? gbs / copy_gbs : 0.0);
    fflush(stdout);
    cudaFree(st);
    cudaFree(x);
    cudaFree(dt);
    cudaFree(z);
    cudaFree(y);
    cudaFree(bc);
    cudaFree(A);
    cudaFree(ptr);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gpu_bench MODEL NAME [BATCH...]\n");
        return 2;
    }
    const char *e = getenv("SSMD_BENCH_SECONDS");
    if (e && atof(e) > 0)
        g_budget = atof(e);
    ssm_error err = {0};
    if (!ssm_backend_available(SSM_BACKEND_CUDA, 0, &err)) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    ssm_model_options o = {.backend = SSM_BACKEND_CUDA};
    ssm_model *m = NULL;
    if (ssm_model_load(argv[1], &o, &m, &err) != SSM_OK) {
        fprintf(stderr, "gpu_bench: %s\n", err.msg);
        return 1;
    }
    int batches[16] = {1, 256, 4096, 65536}, nb = 4;
    if (argc > 3) {
        nb = 0;
        for (int i = 3; i < argc && nb < 16; ++i)
            batches[nb++] = atoi(argv[i]);
    }
    double copy = copy_bandwidth();
    double best = 0;
    for (int i = 0; i < nb; ++i) {
        double s = bench_step(m, argv[2], batches[i], 1, 0);
        if (s > best)
            best = s;
        bench_step(m, argv[2], batches[i], 0, 0);
        if (batches[i] >= 256) {
            s = bench_step(m, argv[2], batches[i], 1, 1);
            if (s > best)
                best = s;
        }
    }
    int maxb = batches[nb - 1];
    bench_scan(m, argv[2], maxb, copy);
    int prev = ssm_cuda_scan_set_elems_per_lane(4); /* the other lane layout, for comparison */
    bench_scan(m, argv[2], maxb, copy);
    ssm_cuda_scan_set_elems_per_lane(prev);
    printf("{\"bench\":\"gpu_realtime\",\"model\":\"%s\",\"device\":\"%s\","
           "\"realtime_streams\":%.0f,\"frames_per_s\":100}\n",
           argv[2], ssm_model_backend_note(m), best / 100.0);
    ssm_model_free(m);
    return 0;
}
