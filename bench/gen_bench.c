/* SPDX-License-Identifier: MIT */
/* gen_bench — generated samples per second of the daemon's generator
 * (daemon/src/generate.h: ssm_step on the token model + ssm_sample per
 * stream) at several batch sizes, next to real time.
 *
 *   gen_bench MODEL [BATCH...]        (default batches 1 16)
 * Env: SSMD_BENCH_SECONDS (per figure, default 2.0); SSMD_BENCH_F16=1 or
 * SSMD_BENCH_INT8=1: the runner's f16 / int8 weights (ssmd --weights f16 /
 * int8; impl "ssmd-f16" / "ssmd-int8").
 * Prints one JSON line per batch:
 *   {"bench":"generate","impl":"ssmd","model":FILE,"batch":B,"steps":N,"seconds":S,
 *    "samples_per_s":B*N/S,"per_stream_realtime_x":N/S/rate,"rate_hz":rate}
 * Run it on one core (bench/gen_bench.sh uses taskset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "bench_machine.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [BATCH...]\n", argv[0]);
        return 2;
    }
    ssm_model *m = NULL;
    ssm_error se = {0};
    if (ssm_model_load(argv[1], NULL, &m, &se) != SSM_OK) {
        fprintf(stderr, "gen_bench: %s\n", se.msg);
        return 2;
    }
    char err[512];
    int rate = 16000;
    if (ssmd_generate_check_model(m, &rate, err, sizeof err) != 0) {
        fprintf(stderr, "gen_bench: %s: %s\n", argv[1], err);
        ssm_model_free(m);
        return 2;
    }
    const char *base = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
    const char *e = getenv("SSMD_BENCH_SECONDS");
    double budget = e ? atof(e) : 2.0;
    int def[2] = { 1, 16 }, nb = argc > 2 ? argc - 2 : 2;
    ssm_sample_params sp;
    ssm_sample_params_default(&sp);
    sp.min_prob = 0.001f;
    for (int k = 0; k < nb; k++) {
        int B = argc > 2 ? atoi(argv[2 + k]) : def[k];
        ssmd_generator *g = NULL;
        /* SSMD_BENCH_F16=1 / SSMD_BENCH_INT8=1: the runner's f16 / int8
         * weights (ssmd --weights f16 / int8) */
        unsigned rf = getenv("SSMD_BENCH_INT8") ? SSM_RUNNER_INT8_WEIGHTS
                      : getenv("SSMD_BENCH_F16") ? SSM_RUNNER_F16_WEIGHTS : 0;
        if (B < 1 || ssmd_generator_create(m, B, &sp, 1, rf, &g, err, sizeof err) != 0) {
            fprintf(stderr, "gen_bench: batch %d: %s\n", B, B < 1 ? "bad batch" : err);
            ssm_model_free(m);
            return 2;
        }
        uint8_t *codes = malloc((size_t)B);
        for (int i = 0; i < 200; i++) ssmd_generator_step(g, codes); /* warm-up */
        long steps = 0;
        double t0 = now_s(), t;
        do {
            for (int i = 0; i < 100; i++) ssmd_generator_step(g, codes);
            steps += 100;
            t = now_s() - t0;
        } while (t < budget);
        ssm_bench_line("{\"bench\":\"generate\",\"impl\":\"%s\",\"model\":\"%s\",\"batch\":%d,\"steps\":%ld,\"seconds\":%.3f,"
               "\"samples_per_s\":%.0f,\"per_stream_realtime_x\":%.3f,\"rate_hz\":%d}\n",
               rf == SSM_RUNNER_INT8_WEIGHTS ? "ssmd-int8" : rf ? "ssmd-f16" : "ssmd", base, B, steps, t, (double)steps * B / t, (double)steps / t / rate, rate);
        fflush(stdout);
        free(codes);
        ssmd_generator_destroy(g);
    }
    ssm_model_free(m);
    return 0;
}
