/* SPDX-License-Identifier: MIT */
/* Model step benchmark: latency (median, p99 of single steps) and throughput
 * (stream-steps per second = batch / median step time) of ssm_step at several
 * batch sizes, per implementation:
 *   ssmd       default runner: packed FMA kernels, best ISA (batch-invariant)
 *   ssmd-f16   SSM_RUNNER_F16_WEIGHTS (binary16 weights, fp32 accumulation)
 *   ssmd-int8  SSM_RUNNER_INT8_WEIGHTS (int8 weights and activations, int32 sums)
 *   ssmd-avx2  SSM_RUNNER_ISA_AVX2 (the same bits as ssmd, AVX2+FMA code)
 *   ssmd-blas  SSM_RUNNER_BLAS_STEP (OpenBLAS sgemm/sgemv projections)
 * then ssm_step with T threads, each its own runner over B/T of the streams
 * (the daemon's --threads layout), and the chunked forward's frames per
 * second.  A "model_info" line gives FLOPs per stream-step and weight bytes
 * (for the roofline in bench/run.sh).  Prints one JSON line per figure; the
 * PyTorch peer (model_torch_peer.py) prints the same lines for the same file.
 *
 *   model_bench MODEL NAME [BATCH...]     (default batches 1 16 64 256)
 *   model_bench --memory MODEL NAME N_FRAMES [f32|f16|int8]
 *       loads the model, creates one runner with those weights (default f32)
 *       and one stream, steps it N_FRAMES frames, then runs ssm_forward over
 *       N_FRAMES more in chunks of 256; prints the resident set (VmRSS of
 *       /proc/self/statm) after load, after the runner and at the end, the
 *       peak RSS (getrusage), the model's packed panel bytes and the state
 *       bytes per stream
 * Env: SSMD_BENCH_SECONDS (per figure, default 1.0), SSMD_BENCH_MIN_STEPS_B1
 * (least steps timed at batch 1, default 10000), SSMD_BENCH_IMPLS (comma list,
 * default all five), SSMD_BENCH_THREADS (thread counts for the threaded
 * figure, default "2"; "" skips it). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ssm/model.h"
#include "bench_machine.h"

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

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; ++i) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
}

static double flops_per_step(const ssm_model *m, double *weight_bytes)
{
    double dm = ssm_model_d_model(m), di = ssm_model_d_inner(m), ds = ssm_model_d_state(m);
    double r = ssm_model_dt_rank(m), dc = ssm_model_d_conv(m), nl = ssm_model_n_layer(m);
    double nf = ssm_model_n_features(m), nm = ssm_model_n_mask(m);
    unsigned heads = ssm_model_heads(m);
    double macs_layer = dm * 2 * di + di * (r + 2 * ds) + r * di + di * dm;
    double macs = nl * macs_layer + nf * dm;
    if (heads & SSM_MODEL_HEAD_MASK)
        macs += dm * nm;
    if (heads & SSM_MODEL_HEAD_VAD)
        macs += dm;
    if (heads & SSM_MODEL_HEAD_LM)
        macs += dm * ssm_model_vocab_size(m);
    *weight_bytes = 4 * (macs + nl * (di * (dc + 1) + di * ds + 3 * di + dm));
    /* 2 per MAC; the scan's 3 multiplies, 2 adds and 1 exp per (channel,
     * state) counted as 6 */
    return 2 * macs + nl * (di * ds * 6 + di * dc * 2);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The resident set now, KiB (/proc/self/statm's second field); -1 when
 * unreadable. */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int memory_mode(const char *path, const char *name, long frames, const char *weights)
{
    unsigned rflags = strcmp(weights, "f16") == 0    ? SSM_RUNNER_F16_WEIGHTS
                      : strcmp(weights, "int8") == 0 ? SSM_RUNNER_INT8_WEIGHTS
                                                     : 0u;
    if (!rflags && strcmp(weights, "f32") != 0) {
        fprintf(stderr, "model_bench: --memory weights are f32, f16 or int8, not %s\n", weights);
        return 1;
    }
    ssm_error err = {0};
    ssm_model *m = NULL;
    long rss_start = rss_kb();
    if (ssm_model_load(path, NULL, &m, &err) < 0) {
        fprintf(stderr, "model_bench: %s\n", err.msg);
        return 1;
    }
    long rss_loaded = rss_kb();
    size_t packed_loaded = ssm_model_packed_bytes(m);
    const int chunk = 256;
    int tokens = ssm_model_input(m) == SSM_MODEL_INPUT_TOKENS;
    int nf = tokens ? 1 : ssm_model_n_features(m);
    int nm = ssm_model_n_mask(m);
    unsigned heads = ssm_model_heads(m);
    float *in = malloc(sizeof(float) * (size_t)chunk * nf);
    int32_t *tok = calloc((size_t)chunk, sizeof *tok);
    float *mask = malloc(sizeof(float) * (size_t)chunk * (nm + 1));
    float *vad = malloc(sizeof(float) * (size_t)chunk);
    float *logits = malloc(sizeof(float) * (size_t)chunk * (ssm_model_vocab_size(m) + 1));
    ssm_state *st = NULL;
    ssm_runner *rn = NULL;
    if (!in || !tok || !mask || !vad || !logits || ssm_state_create(m, &st) < 0 ||
        ssm_runner_create(m, 1, chunk, rflags, &rn, &err) < 0) {
        fprintf(stderr, "model_bench: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    long rss_runner = rss_kb();
    ssm_outputs out = {(heads & SSM_MODEL_HEAD_MASK) ? mask : NULL,
                       (heads & SSM_MODEL_HEAD_VAD) ? vad : NULL,
                       (heads & SSM_MODEL_HEAD_LM) ? logits : NULL, NULL};
    double t0 = now_s();
    for (long t = 0; t < frames; ++t) {
        fill(in, (size_t)nf, (unsigned)t);
        ssm_step(rn, &st, 1, in, tok, &out, NULL);
    }
    double t_step = now_s() - t0;
    t0 = now_s();
    for (long t = 0; t < frames; t += chunk) {
        int n = frames - t < chunk ? (int)(frames - t) : chunk;
        fill(in, (size_t)n * nf, (unsigned)t);
        ssm_forward(rn, st, n, in, tok, &out, NULL);
    }
    double t_fwd = now_s() - t0;
    ssm_bench_line("{\"bench\":\"model_memory\",\"impl\":\"ssmd\",\"model\":\"%s\",\"weights\":\"%s\","
           "\"runner_weights\":\"%s\",\"frames\":%ld,"
           "\"audio_s_at_100fps\":%.0f,\"peak_rss_kb\":%ld,\"rss_start_kb\":%ld,"
           "\"rss_after_load_kb\":%ld,\"rss_after_runner_kb\":%ld,\"rss_end_kb\":%ld,"
           "\"packed_bytes_after_load\":%zu,\"packed_bytes\":%zu,"
           "\"state_bytes\":%zu,\"runner_bytes\":%zu,\"step_s\":%.3f,\"forward_s\":%.3f,"
           "\"vad_last\":%.6f}\n",
           name, weights, ssm_runner_weights(rn), frames, frames / 100.0, peak_rss_kb(),
           rss_start, rss_loaded, rss_runner, rss_kb(), packed_loaded, ssm_model_packed_bytes(m),
           ssm_state_bytes(m), ssm_runner_bytes(rn), t_step, t_fwd, (double)vad[0]);
    ssm_runner_destroy(rn);
    ssm_state_destroy(st);
    ssm_model_free(m);
    free(in); free(tok); free(mask); free(vad); free(logits);
    return 0;
}

/* Threaded figure: each thread owns a runner and B/T streams. */
typedef struct worker {
    ssm_runner *rn;
    ssm_state **st;
    int B;
    const float *in;
    const int32_t *tok;
    ssm_outputs out;
    double budget;
    size_t steps;
    pthread_barrier_t *bar;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    for (int i = 0; i < 3; ++i)
        ssm_step(w->rn, w->st, w->B, w->in, w->tok, &w->out, NULL);
    pthread_barrier_wait(w->bar);
    double t0 = now_s();
    size_t n = 0;
    while (n < 10 || now_s() < t0 + w->budget) {
        ssm_step(w->rn, w->st, w->B, w->in, w->tok, &w->out, NULL);
        ++n;
    }
    w->steps = n;
    w->budget = now_s() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "--memory") == 0)
        return memory_mode(argv[2], argv[3], atol(argv[4]), argc == 6 ? argv[5] : "f32");
    if (argc < 3) {
        fprintf(stderr, "usage: model_bench MODEL NAME [BATCH...]\n");
        return 1;
    }
    const char *name = argv[2];
    int batches[16] = {1, 16, 64, 256}, n_batches = 4;
    if (argc > 3) {
        n_batches = 0;
        for (int i = 3; i < argc && n_batches < 16; ++i)
            batches[n_batches++] = atoi(argv[i]);
    }
    const char *secs_env = getenv("SSMD_BENCH_SECONDS");
    double budget = secs_env ? atof(secs_env) : 1.0;
    ssm_error err = {0};
    ssm_model *m = NULL;
    if (ssm_model_load(argv[1], NULL, &m, &err) < 0) {
        fprintf(stderr, "model_bench: %s\n", err.msg);
        return 1;
    }
    int tokens = ssm_model_input(m) == SSM_MODEL_INPUT_TOKENS;
    int nf = tokens ? 1 : ssm_model_n_features(m);
    int nm = ssm_model_n_mask(m), dm = ssm_model_d_model(m), nv = ssm_model_vocab_size(m);
    unsigned heads = ssm_model_heads(m);
    int max_b = 1;
    for (int i = 0; i < n_batches; ++i)
        if (batches[i] > max_b)
            max_b = batches[i];
    const int chunk = 256;
    int rows = max_b > chunk ? max_b : chunk;
    float *in = malloc(sizeof(float) * (size_t)rows * nf);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)rows);
    float *mask = malloc(sizeof(float) * (size_t)rows * (nm + 1));
    float *vad = malloc(sizeof(float) * (size_t)rows);
    float *logits = malloc(sizeof(float) * (size_t)rows * (nv + 1));
    float *emb = malloc(sizeof(float) * (size_t)rows * dm);
    ssm_state **st = calloc((size_t)max_b, sizeof *st);
    size_t max_steps = 100000;
    double *lat = malloc(sizeof(double) * max_steps);
    if (!in || !tok || !mask || !vad || !logits || !emb || !st || !lat)
        return 1;
    fill(in, (size_t)rows * nf, 1);
    for (int i = 0; i < rows; ++i)
        tok[i] = nv ? i % nv : 0;
    ssm_outputs out = {(heads & SSM_MODEL_HEAD_MASK) ? mask : NULL,
                       (heads & SSM_MODEL_HEAD_VAD) ? vad : NULL,
                       (heads & SSM_MODEL_HEAD_LM) ? logits : NULL, NULL};
    for (int i = 0; i < max_b; ++i)
        if (ssm_state_create(m, &st[i]) < 0)
            return 1;

    double wbytes = 0, flops = flops_per_step(m, &wbytes);
    /* the layer kinds, "mamba1,attention,..."; the FLOP and weight figures
     * use the Mamba-1 formulas: null for any other layer kind */
    char kinds[512] = "";
    int all_m1 = 1;
    for (int l = 0; l < ssm_model_n_layer(m); ++l) {
        int k = ssm_model_layer_kind(m, l);
        all_m1 &= k == SSM_MODEL_LAYER_MAMBA1;
        size_t len = strlen(kinds);
        snprintf(kinds + len, sizeof kinds - len, "%s%s", l ? "," : "",
                 k == SSM_MODEL_LAYER_MAMBA2 ? "mamba2" : k == SSM_MODEL_LAYER_ATTENTION ? "attention" : "mamba1");
    }
    char fl[32] = "null", wb[32] = "null";
    if (all_m1) {
        snprintf(fl, sizeof fl, "%.0f", flops);
        snprintf(wb, sizeof wb, "%.0f", wbytes);
    }
    ssm_bench_line("{\"bench\":\"model_info\",\"model\":\"%s\",\"d_model\":%d,\"n_layer\":%d,"
           "\"layers\":\"%s\",\"d_state\":%d,\"d_inner\":%d,\"flops_per_stream_step\":%s,"
           "\"weight_bytes_f32\":%s,\"state_bytes\":%zu,\"packed_bytes_after_load\":%zu}\n",
           name, dm, ssm_model_n_layer(m), kinds, ssm_model_d_state(m), ssm_model_d_inner(m), fl,
           wb, ssm_state_bytes(m), ssm_model_packed_bytes(m));
    const char *min_env = getenv("SSMD_BENCH_MIN_STEPS_B1");
    size_t min_b1 = min_env ? (size_t)atol(min_env) : 10000;
    const char *impls_env = getenv("SSMD_BENCH_IMPLS");
    static const struct { const char *name; unsigned flags; } k_impls[] = {
        {"ssmd", 0}, {"ssmd-f16", SSM_RUNNER_F16_WEIGHTS}, {"ssmd-int8", SSM_RUNNER_INT8_WEIGHTS},
        {"ssmd-avx2", SSM_RUNNER_ISA_AVX2}, {"ssmd-blas", SSM_RUNNER_BLAS_STEP}};
    for (size_t mode = 0; mode < sizeof k_impls / sizeof k_impls[0]; ++mode) {
        const char *impl = k_impls[mode].name;
        if (impls_env) {
            /* whole names in a comma list */
            const char *p = impls_env;
            size_t len = strlen(impl);
            int found = 0;
            while ((p = strstr(p, impl)) != NULL) {
                if ((p == impls_env || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
                    found = 1;
                p += len;
            }
            if (!found)
                continue;
        }
        for (int bi = 0; bi < n_batches; ++bi) {
            int B = batches[bi];
            ssm_runner *rn = NULL;
            if (ssm_runner_create(m, B, 1, k_impls[mode].flags, &rn, &err) < 0) {
                fprintf(stderr, "model_bench: %s\n", err.msg);
                return 1;
            }
            for (int w = 0; w < 5; ++w)
                ssm_step(rn, st, B, in, tok, &out, NULL);
            size_t n = 0, min_n = B == 1 ? min_b1 : 10;
            double t0 = now_s(), t_end = t0 + budget;
            while (n < max_steps && (n < min_n || now_s() < t_end)) {
                double a = now_s();
                ssm_step(rn, st, B, in, tok, &out, NULL);
                lat[n++] = now_s() - a;
            }
            double total = now_s() - t0;
            qsort(lat, n, sizeof *lat, cmp_double);
            /* throughput from the median step (robust to other load on a
             * shared machine); the mean over the run is printed too */
            double med = lat[n / 2];
            ssm_bench_line("{\"bench\":\"model_step\",\"impl\":\"%s\",\"model\":\"%s\",\"batch\":%d,"
                   "\"steps\":%zu,\"stream_steps_per_s\":%.1f,\"mean_stream_steps_per_s\":%.1f,"
                   "\"best_stream_steps_per_s\":%.1f,"
                   "\"median_us\":%.2f,\"p99_us\":%.2f,\"min_us\":%.2f,\"state_bytes\":%zu,"
                   "\"isa\":\"%s\",\"threads\":1}\n",
                   impl, name, B, n, B / med, (double)n * B / total, B / lat[0], med * 1e6,
                   lat[(size_t)((double)(n - 1) * 0.99)] * 1e6, lat[0] * 1e6, ssm_state_bytes(m),
                   ssm_runner_isa(rn));
            fflush(stdout);
            ssm_runner_destroy(rn);
        }
    }
    /* threads: T runners over B/T streams each, default ISA */
    const char *thr_env = getenv("SSMD_BENCH_THREADS");
    const char *thr_list = thr_env ? thr_env : "2";
    for (const char *p = thr_list; *p;) {
        char *endp;
        long T = strtol(p, &endp, 10);
        if (endp == p)
            break;
        p = endp;
        while (*p == ' ' || *p == ',')
            ++p;
        if (T < 1 || T > 64)
            continue;
        for (int bi = 0; bi < n_batches; ++bi) {
            int B = batches[bi];
            if (B < T)
                continue;
            worker ws[64];
            pthread_t th[64];
            pthread_barrier_t bar;
            pthread_barrier_init(&bar, NULL, (unsigned)T);
            int off = 0;
            for (long t = 0; t < T; ++t) {
                int b = B / (int)T + (t < B % T);
                ws[t] = (worker){NULL, st + off, b, in + (size_t)off * nf, tok + off, out, budget, 0, &bar};
                ws[t].out.mask = out.mask ? out.mask + (size_t)off * nm : NULL;
                ws[t].out.vad = out.vad ? out.vad + off : NULL;
                ws[t].out.logits = out.logits ? out.logits + (size_t)off * nv : NULL;
                off += b;
                if (ssm_runner_create(m, b, 1, 0, &ws[t].rn, &err) < 0) {
                    fprintf(stderr, "model_bench: %s\n", err.msg);
                    return 1;
                }
            }
            for (long t = 1; t < T; ++t)
                pthread_create(&th[t], NULL, worker_main, &ws[t]);
            worker_main(&ws[0]);
            double rate = 0;
            for (long t = 0; t < T; ++t) {
                if (t)
                    pthread_join(th[t], NULL);
                rate += (double)ws[t].steps * ws[t].B / ws[t].budget;
                ssm_runner_destroy(ws[t].rn);
            }
            pthread_barrier_destroy(&bar);
            ssm_bench_line("{\"bench\":\"model_step_threads\",\"impl\":\"ssmd\",\"model\":\"%s\","
                   "\"batch\":%d,\"threads\":%ld,\"mean_stream_steps_per_s\":%.1f}\n",
                   name, B, T, rate);
            fflush(stdout);
            /* the same batch through one runner with worker threads
             * (ssm_runner_set_threads: one step = every slice, then a join) */
            ssm_runner *tr = NULL;
            if (B >= 32 && ssm_runner_create(m, B, 1, 0, &tr, &err) == SSM_OK &&
                ssm_runner_set_threads(tr, (int)T, 16, &err) == SSM_OK) {
                long steps = 0;
                double t0 = now_s();
                while (steps < 10 || now_s() - t0 < budget) {
                    ssm_step(tr, st, B, in, tok, &out, NULL);
                    ++steps;
                }
                double dt = now_s() - t0;
                ssm_bench_line("{\"bench\":\"model_step_threads\",\"impl\":\"ssmd-runner\",\"model\":"
                       "\"%s\",\"batch\":%d,\"threads\":%ld,\"mean_stream_steps_per_s\":%.1f}\n",
                       name, B, T, (double)steps * B / dt);
                fflush(stdout);
            }
            ssm_runner_destroy(tr);
        }
    }
    /* chunked forward of one stream: frames per second (sgemm; f16 packed) */
    for (int f16 = 0; f16 < 2; ++f16) {
        ssm_runner *rn = NULL;
        if (ssm_runner_create(m, 1, chunk, f16 ? SSM_RUNNER_F16_WEIGHTS : 0, &rn, &err) < 0)
            return 1;
        ssm_forward(rn, st[0], chunk, in, tok, &out, NULL);
        size_t n = 0;
        double t0 = now_s();
        while (n < 3 || now_s() < t0 + budget) {
            ssm_forward(rn, st[0], chunk, in, tok, &out, NULL);
            ++n;
        }
        double total = now_s() - t0;
        ssm_bench_line("{\"bench\":\"model_forward\",\"impl\":\"%s\",\"model\":\"%s\",\"chunk\":%d,"
               "\"frames_per_s\":%.1f}\n", f16 ? "ssmd-f16" : "ssmd", name, chunk,
               (double)n * chunk / total);
        fflush(stdout);
        ssm_runner_destroy(rn);
    }
    for (int i = 0; i < max_b; ++i)
        ssm_state_destroy(st[i]);
    ssm_model_free(m);
    free(in); free(tok); free(mask); free(vad); free(logits); free(emb); free(st); free(lat);
    return 0;
}
