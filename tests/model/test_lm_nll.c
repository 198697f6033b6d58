/* SPDX-License-Identifier: MIT */
/* test_lm_nll.c — the C engine's per-sample negative log-likelihood of a
 * held-out excerpt under models/mulaw_lm.safetensors equals PyTorch's
 * (tests/model/lm_golden.bin, written by train/lm_golden.py in float64) within
 * 1e-4 relative: through ssm_forward (the prompt path, chunks of 1000) and
 * through ssm_step (the generation path).
 * Usage: test_lm_nll MODEL GOLDEN
 *        test_lm_nll --eval MODEL CODES [f32|f16|int8]  (prints the mean NLL in
 *        bits/sample of a raw file of uint8 mu-law codes: the held-out figure of
 *        models/mulaw_lm.md; the last argument picks the runner's weights) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ssm/model.h"

static const char *model_path, *golden_path;

typedef struct golden {
    int T;
    uint64_t hash;
    uint8_t *codes;  /* {T + 1} */
    double *nll;     /* {T} nats */
} golden;

static int read_golden(const char *path, golden *g)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8];
    int32_t hdr[2];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "SSMDLMGD", 8) == 0 &&
             fread(hdr, 4, 2, f) == 2 && fread(&g->hash, 8, 1, f) == 1 && hdr[0] > 0 && hdr[0] < 1000000;
    if (ok) {
        g->T = hdr[0];
        size_t nc = (size_t)g->T + 1, pad = (8 - nc % 8) % 8;
        g->codes = malloc(nc + pad);
        g->nll = malloc((size_t)g->T * sizeof *g->nll);
        ok = g->codes && g->nll && fread(g->codes, 1, nc + pad, f) == nc + pad &&
             fread(g->nll, 8, (size_t)g->T, f) == (size_t)g->T;
    }
    fclose(f);
    return ok ? 0 : -1;
}

/* −ln softmax(l)[target], float64 */
static double nll_of(const float *l, int V, int target)
{
    double mx = l[0];
    for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)l[i] - mx);
    return log(s) + mx - (double)l[target];
}

static void compare(const char *what, const golden *g, const double *c, int n)
{
    double worst = 0, sum_c = 0, sum_g = 0;
    int at = 0;
    for (int t = 0; t < n; t++) {
        double d = fabs(c[t] - g->nll[t]) / fmax(fabs(g->nll[t]), 1.0);
        if (d > worst) { worst = d; at = t; }
        sum_c += c[t];
        sum_g += g->nll[t];
    }
    double rel_mean = fabs(sum_c - sum_g) / sum_g;
    printf("%s: %d samples: NLL C %.6f vs PyTorch %.6f bits/sample, relative difference of the mean "
           "%.3g; worst per-sample |diff|/max(nll, 1 nat) %.3g at sample %d (%.6f vs %.6f nats)\n",
           what, n, sum_c / n / log(2.0), sum_g / n / log(2.0), rel_mean, worst, at, c[at], g->nll[at]);
    assert_true(rel_mean <= 1e-4);
    assert_true(worst <= 1e-4);
}

static void test_nll(void **st)
{
    (void)st;
    golden g = {0};
    if (read_golden(golden_path, &g) != 0)
        fail_msg("%s: not a golden file (SSMDLMGD) or truncated", golden_path);
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(model_path, NULL, &m, &err) != SSM_OK) fail_msg("%s", err.msg);
    if (ssm_model_hash(m) != g.hash)
        fail_msg("%s was made from another model file than %s (hash %016llx vs %016llx): "
                 "run train/lm_golden.py", golden_path, model_path, (unsigned long long)g.hash,
                 (unsigned long long)ssm_model_hash(m));
    const int V = ssm_model_vocab_size(m), T = g.T, CH = 1000;
    assert_int_equal(V, 256);
    ssm_runner *r = NULL;
    ssm_state *s = NULL;
    assert_int_equal(ssm_runner_create(m, 1, CH, 0, &r, &err), SSM_OK);
    assert_int_equal(ssm_state_create(m, &s), SSM_OK);
    float *logits = malloc((size_t)CH * (size_t)V * sizeof *logits);
    double *nll = malloc((size_t)T * sizeof *nll);
    int32_t *tok = malloc((size_t)CH * sizeof *tok);
    assert_non_null(logits);
    assert_non_null(nll);
    assert_non_null(tok);
    ssm_outputs o = { .logits = logits };
    for (int at = 0; at < T; at += CH) {
        int n = T - at < CH ? T - at : CH;
        for (int i = 0; i < n; i++) tok[i] = g.codes[at + i];
        assert_int_equal(ssm_forward(r, s, n, NULL, tok, &o, NULL), SSM_OK);
        for (int i = 0; i < n; i++) nll[at + i] = nll_of(logits + (size_t)i * (size_t)V, V, g.codes[at + i + 1]);
    }
    compare("ssm_forward", &g, nll, T);
    ssm_state_reset(s);
    for (int t = 0; t < T; t++) {
        int32_t k = g.codes[t];
        assert_int_equal(ssm_step(r, &s, 1, NULL, &k, &o, NULL), SSM_OK);
        nll[t] = nll_of(logits, V, g.codes[t + 1]);
    }
    compare("ssm_step", &g, nll, T);
    free(logits);
    free(nll);
    free(tok);
    free(g.codes);
    free(g.nll);
    ssm_state_destroy(s);
    ssm_runner_destroy(r);
    ssm_model_free(m);
}

/* f16 and int8 weights (SSM_RUNNER_F16_WEIGHTS / _INT8_WEIGHTS): forward and
 * step give the same logits bit for bit (the kernels are row-wise), and the
 * mean NLL of the excerpt stays within 0.01 bits/sample of PyTorch's fp32
 * (measured cost on 60 s of held-out audio: docs/performance.md). */
static void test_nll_quantized(void **st)
{
    (void)st;
    golden g = {0};
    if (read_golden(golden_path, &g) != 0)
        fail_msg("%s: not a golden file (SSMDLMGD) or truncated", golden_path);
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(model_path, NULL, &m, &err) != SSM_OK) fail_msg("%s", err.msg);
    const int V = ssm_model_vocab_size(m), T = g.T;
    float *lf = malloc((size_t)T * (size_t)V * sizeof *lf), *ls = malloc((size_t)V * sizeof *ls);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    assert_true(lf && ls && tok);
    for (int t = 0; t < T; t++) tok[t] = g.codes[t];
    /* the fp32 runner's logits: the quantized runners must differ from them
     * (a flag silently ignored would pass every other check here) */
    float *l32 = malloc((size_t)T * (size_t)V * sizeof *l32);
    assert_non_null(l32);
    {
        ssm_runner *r = NULL;
        ssm_state *s = NULL;
        assert_int_equal(ssm_runner_create(m, 1, T, 0, &r, &err), SSM_OK);
        assert_int_equal(ssm_state_create(m, &s), SSM_OK);
        ssm_outputs o32 = { .logits = l32 };
        assert_int_equal(ssm_forward(r, s, T, NULL, tok, &o32, NULL), SSM_OK);
        ssm_state_destroy(s);
        ssm_runner_destroy(r);
    }
    /* int8 or f16 with SSM_RUNNER_BLAS_STEP would mix precisions: refused */
    {
        ssm_runner *r = NULL;
        assert_int_equal(ssm_runner_create(m, 1, 8, SSM_RUNNER_INT8_WEIGHTS | SSM_RUNNER_BLAS_STEP, &r, &err),
                         SSM_ERR_INVALID);
        assert_null(r);
        assert_int_equal(ssm_runner_create(m, 1, 8, SSM_RUNNER_F16_WEIGHTS | SSM_RUNNER_BLAS_STEP, &r, &err),
                         SSM_ERR_INVALID);
        assert_null(r);
        assert_non_null(strstr(err.msg, "exclude each other"));
    }
    static const struct { unsigned flags; const char *name; } kinds[] = {
        {SSM_RUNNER_F16_WEIGHTS, "f16"}, {SSM_RUNNER_INT8_WEIGHTS, "int8"}};
    for (int q = 0; q < 2; q++) {
        ssm_runner *r = NULL;
        ssm_state *s = NULL;
        assert_int_equal(ssm_runner_create(m, 1, T, kinds[q].flags, &r, &err), SSM_OK);
        assert_int_equal(ssm_state_create(m, &s), SSM_OK);
        assert_string_equal(ssm_runner_weights(r), kinds[q].name);
        ssm_outputs of = { .logits = lf }, os = { .logits = ls };
        assert_int_equal(ssm_forward(r, s, T, NULL, tok, &of, NULL), SSM_OK);
        size_t ndiff = 0;
        for (size_t i = 0; i < (size_t)T * (size_t)V; i++) ndiff += lf[i] != l32[i];
        printf("%s weights: %zu of %zu logits differ from the fp32 runner's\n", kinds[q].name, ndiff,
               (size_t)T * (size_t)V);
        assert_true(ndiff > (size_t)T * (size_t)V / 2);
        ssm_state_reset(s);
        double sum = 0, sum_g = 0;
        for (int t = 0; t < T; t++) {
            assert_int_equal(ssm_step(r, &s, 1, NULL, &tok[t], &os, NULL), SSM_OK);
            if (memcmp(ls, lf + (size_t)t * V, (size_t)V * sizeof *ls) != 0)
                fail_msg("%s: step %d differs from the forward's frame", kinds[q].name, t);
            sum += nll_of(ls, V, g.codes[t + 1]);
            sum_g += g.nll[t];
        }
        double d = (sum - sum_g) / T / log(2.0);
        printf("%s weights: NLL %.5f bits/sample vs PyTorch fp32 %.5f (difference %+.5f, bound 0.01); "
               "forward = step bit for bit over %d samples\n",
               kinds[q].name, sum / T / log(2.0), sum_g / T / log(2.0), d, T);
        assert_true(fabs(d) <= 0.01);
        ssm_state_destroy(s);
        ssm_runner_destroy(r);
    }
    free(lf);
    free(ls);
    free(l32);
    free(tok);
    free(g.codes);
    free(g.nll);
    ssm_model_free(m);
}

static int eval(const char *mpath, const char *cpath, const char *weights)
{
    unsigned flags = strcmp(weights, "int8") == 0 ? SSM_RUNNER_INT8_WEIGHTS
                     : strcmp(weights, "f16") == 0 ? SSM_RUNNER_F16_WEIGHTS : 0;
    if (!flags && strcmp(weights, "f32") != 0) {
        fprintf(stderr, "weights \"%s\": expected f32, f16 or int8\n", weights);
        return 2;
    }
    FILE *f = fopen(cpath, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", cpath);
        return 2;
    }
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(mpath, NULL, &m, &err) != SSM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        fclose(f);
        return 2;
    }
    enum { CH = 4096 };
    const int V = ssm_model_vocab_size(m);
    ssm_runner *r = NULL;
    ssm_state *s = NULL;
    static float logits[CH * 256];
    static uint8_t buf[CH + 1];
    int32_t tok[CH];
    if (V != 256 || ssm_runner_create(m, 1, CH, flags, &r, &err) != SSM_OK || ssm_state_create(m, &s) != SSM_OK) {
        fprintf(stderr, "%s: not a 256-token model\n", mpath);
        fclose(f);
        ssm_model_free(m);
        return 2;
    }
    ssm_outputs o = { .logits = logits };
    double sum = 0;
    long n = 0;
    size_t have = fread(buf, 1, 1, f);
    while (have == 1) {
        size_t got = fread(buf + 1, 1, CH, f);
        if (got == 0) break;
        for (size_t i = 0; i < got; i++) tok[i] = buf[i];
        if (ssm_forward(r, s, (int)got, NULL, tok, &o, NULL) != SSM_OK) break;
        for (size_t i = 0; i < got; i++) sum += nll_of(logits + i * 256, 256, buf[i + 1]);
        n += (long)got;
        buf[0] = buf[got];
    }
    fclose(f);
    printf("{\"weights\":\"%s\",\"samples\":%ld,\"nll_bits_per_sample\":%.4f}\n", weights, n,
           n ? sum / (double)n / log(2.0) : 0.0);
    ssm_state_destroy(s);
    ssm_runner_destroy(r);
    ssm_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "--eval") == 0)
        return eval(argv[2], argv[3], argc == 5 ? argv[4] : "f32");
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL GOLDEN\n       %s --eval MODEL CODES [f32|f16|int8]\n",
                argv[0], argv[0]);
        return 2;
    }
    model_path = argv[1];
    golden_path = argv[2];
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_nll), cmocka_unit_test(test_nll_quantized) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
