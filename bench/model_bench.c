/* Model step benchmark: latency (median, p99 of single steps) and throughput
 * (stream-steps per second = batch / median step time) of ssm_step at several
 * batch sizes, with the batch-invariant kernels ("ssmd") and with BLAS
 * projections ("ssmd-blas"), plus the
 * chunked forward's frames per second.  Prints one JSON line per figure; the
 * PyTorch peer (model_torch_peer.py) prints the same lines for the same model
 * file.  Run both with bench/model_bench.sh.
 *
 *   model_bench MODEL NAME [BATCH...]     (default batches 1 16 64 256)
 * Env: SSMD_BENCH_SECONDS (per figure, default 1.0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ssm/model.h"

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

int main(int argc, char **argv)
{
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

    for (int mode = 0; mode < 2; ++mode) {
        const char *impl = mode ? "ssmd-blas" : "ssmd";
        for (int bi = 0; bi < n_batches; ++bi) {
            int B = batches[bi];
            ssm_runner *rn = NULL;
            if (ssm_runner_create(m, B, 1, mode ? SSM_RUNNER_BLAS_STEP : 0, &rn, &err) < 0) {
                fprintf(stderr, "model_bench: %s\n", err.msg);
                return 1;
            }
            for (int w = 0; w < 5; ++w)
                ssm_step(rn, st, B, in, tok, &out, NULL);
            size_t n = 0;
            double t0 = now_s(), t_end = t0 + budget;
            while (n < max_steps && (n < 10 || now_s() < t_end)) {
                double a = now_s();
                ssm_step(rn, st, B, in, tok, &out, NULL);
                lat[n++] = now_s() - a;
            }
            double total = now_s() - t0;
            qsort(lat, n, sizeof *lat, cmp_double);
            /* throughput from the median step (robust to other load on a
             * shared machine); the mean over the run is printed too */
            double med = lat[n / 2];
            printf("{\"bench\":\"model_step\",\"impl\":\"%s\",\"model\":\"%s\",\"batch\":%d,"
                   "\"steps\":%zu,\"stream_steps_per_s\":%.1f,\"mean_stream_steps_per_s\":%.1f,"
                   "\"best_stream_steps_per_s\":%.1f,"
                   "\"median_us\":%.2f,\"p99_us\":%.2f,\"min_us\":%.2f,\"state_bytes\":%zu}\n",
                   impl, name, B, n, B / med, (double)n * B / total, B / lat[0], med * 1e6,
                   lat[(size_t)((double)(n - 1) * 0.99)] * 1e6, lat[0] * 1e6, ssm_state_bytes(m));
            fflush(stdout);
            ssm_runner_destroy(rn);
        }
    }
    /* chunked forward of one stream: frames per second */
    ssm_runner *rn = NULL;
    if (ssm_runner_create(m, 1, chunk, 0, &rn, &err) < 0)
        return 1;
    ssm_forward(rn, st[0], chunk, in, tok, &out, NULL);
    size_t n = 0;
    double t0 = now_s();
    while (n < 3 || now_s() < t0 + budget) {
        ssm_forward(rn, st[0], chunk, in, tok, &out, NULL);
        ++n;
    }
    double total = now_s() - t0;
    printf("{\"bench\":\"model_forward\",\"impl\":\"ssmd\",\"model\":\"%s\",\"chunk\":%d,"
           "\"frames_per_s\":%.1f}\n", name, chunk, (double)n * chunk / total);
    ssm_runner_destroy(rn);
    for (int i = 0; i < max_b; ++i)
        ssm_state_destroy(st[i]);
    ssm_model_free(m);
    free(in); free(tok); free(mask); free(vad); free(logits); free(emb); free(st); free(lat);
    return 0;
}
