/* SPDX-License-Identifier: MIT */
/* Golden test of the bundled default model (models/default.safetensors): the
 * C engine must reproduce the PyTorch model's outputs (train/make_golden.py,
 * float64, from the same file's weights) within 1e-4 on a short held-out
 * mixture, frame by frame (ssm_step) and in chunks (ssm_forward), for the
 * final hidden state, the mask gains and the voice-activity probability.
 *
 *   test_default_model MODEL GOLDEN
 *
 * GOLDEN layout: "SSMDGOLD", int32 T, n_features, d_model, n_mask, uint64
 * hash of the model file, then float32 features {T, n_features}, embedding
 * {T, d_model}, mask {T, n_mask}, vad {T} (little-endian). */
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

#define TOL 1e-4

static const char *g_model_path, *g_golden_path;

typedef struct golden {
    int32_t T, n_features, d_model, n_mask;
    uint64_t hash;
    float *features, *embedding, *mask, *vad;
    float *buf;
} golden;

static int golden_read(golden *g, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[8];
    int32_t hdr[4];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "SSMDGOLD", 8) == 0 &&
             fread(hdr, 4, 4, f) == 4 && fread(&g->hash, 8, 1, f) == 1;
    if (ok) {
        g->T = hdr[0];
        g->n_features = hdr[1];
        g->d_model = hdr[2];
        g->n_mask = hdr[3];
        ok = g->T > 0 && g->T < 100000 && g->n_features > 0 && g->n_features < 100000 &&
             g->d_model > 0 && g->d_model < 100000 && g->n_mask > 0 && g->n_mask < 100000;
    }
    if (ok) {
        size_t n = (size_t)g->T * ((size_t)g->n_features + g->d_model + g->n_mask + 1);
        g->buf = malloc(n * sizeof(float));
        ok = g->buf && fread(g->buf, sizeof(float), n, f) == n;
        if (ok) {
            g->features = g->buf;
            g->embedding = g->features + (size_t)g->T * g->n_features;
            g->mask = g->embedding + (size_t)g->T * g->d_model;
            g->vad = g->mask + (size_t)g->T * g->n_mask;
        }
    }
    fclose(f);
    return ok ? 0 : -1;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) /* also catches NaN */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static void run_case(int chunk, unsigned rflags, const char *label)
{
    golden g = {0};
    if (golden_read(&g, g_golden_path) != 0) {
        fprintf(stderr, "%s: cannot read the golden file (missing, truncated or bad header)\n",
                g_golden_path);
        free(g.buf);
        fail();
    }
    ssm_error err = {0};
    ssm_model *m = NULL;
    if (ssm_model_load(g_model_path, NULL, &m, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        fail();
    }
    if (ssm_model_hash(m) != g.hash) {
        fprintf(stderr, "golden file was made from another model (hash %016llx, file %016llx): "
                        "rerun train/make_golden.py\n",
                (unsigned long long)g.hash, (unsigned long long)ssm_model_hash(m));
        fail();
    }
    assert_int_equal(ssm_model_n_features(m), g.n_features);
    assert_int_equal(ssm_model_d_model(m), g.d_model);
    assert_int_equal(ssm_model_n_mask(m), g.n_mask);
    int T = g.T;
    float *emb = malloc((size_t)T * g.d_model * sizeof(float));
    float *mask = malloc((size_t)T * g.n_mask * sizeof(float));
    float *vad = malloc((size_t)T * sizeof(float));
    assert_non_null(emb);
    assert_non_null(mask);
    assert_non_null(vad);
    ssm_runner *rn = NULL;
    ssm_state *st = NULL;
    assert_int_equal(ssm_runner_create(m, 1, chunk, rflags, &rn, &err), SSM_OK);
    assert_int_equal(ssm_state_create(m, &st), SSM_OK);
    for (int t = 0; t < T;) {
        int n = T - t < chunk ? T - t : chunk;
        ssm_outputs out = {mask + (size_t)t * g.n_mask, vad + t, NULL, emb + (size_t)t * g.d_model};
        const float *in = g.features + (size_t)t * g.n_features;
        int rc = chunk == 1 ? ssm_step(rn, &st, 1, in, NULL, &out, NULL)
                            : ssm_forward(rn, st, n, in, NULL, &out, NULL);
        assert_int_equal(rc, SSM_OK);
        t += n;
    }
    double e_emb = max_abs_diff(emb, g.embedding, (size_t)T * g.d_model);
    double e_mask = max_abs_diff(mask, g.mask, (size_t)T * g.n_mask);
    double e_vad = max_abs_diff(vad, g.vad, (size_t)T);
    printf("%s: %d frames, max |C - PyTorch|: embedding %.3g, mask %.3g, vad %.3g (tolerance %g)\n",
           label, T, e_emb, e_mask, e_vad, TOL);
    assert_true(e_emb <= TOL);
    assert_true(e_mask <= TOL);
    assert_true(e_vad <= TOL);
    ssm_state_destroy(st);
    ssm_runner_destroy(rn);
    ssm_model_free(m);
    free(emb);
    free(mask);
    free(vad);
    free(g.buf);
}

static void test_step(void **s)
{
    (void)s;
    run_case(1, 0, "ssm_step");
}

static void test_step_reference(void **s)
{
    (void)s;
    run_case(1, SSM_RUNNER_REFERENCE, "ssm_step (reference kernels)");
}

static void test_forward(void **s)
{
    (void)s;
    run_case(7, 0, "ssm_forward (chunks of 7)");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_default_model MODEL GOLDEN\n");
        return 1;
    }
    g_model_path = argv[1];
    g_golden_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_step_reference),
        cmocka_unit_test(test_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
