/* SPDX-License-Identifier: MIT */
/* ssm_runner_set_threads: a batch split over worker threads gives the bits of
 * one thread (outputs, flags, states), resets only the stream that went
 * non-finite, refuses a bad batch before any slice runs, and small batches
 * stay on the caller.  Models: tests/ref/mamba_ref.py gen (a: features,
 * c: tokens). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model_internal.h"
#include "ssm/model.h"

static const char *g_dir;

static ssm_model *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(path, NULL, &m, &err) != SSM_OK)
        fail_msg("%s", err.msg);
    return m;
}

typedef struct run {
    ssm_runner *rn;
    ssm_state *st[64];
    float *mask, *vad, *logits, *emb;
    unsigned flags[64];
} run;

static void run_make(run *r, ssm_model *m, int threads, int min_rows)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(ssm_runner_create(m, 64, 1, 0, &r->rn, NULL), SSM_OK);
    assert_int_equal(ssm_runner_set_threads(r->rn, threads, min_rows, NULL), SSM_OK);
    assert_int_equal(ssm_runner_threads(r->rn), threads);
    for (int i = 0; i < 64; ++i)
        assert_int_equal(ssm_state_create(m, &r->st[i]), SSM_OK);
    r->mask = calloc(64 * 16, 4);
    r->vad = calloc(64, 4);
    r->logits = calloc(64 * 16, 4);
    r->emb = calloc(64 * (size_t)ssm_model_d_model(m), 4);
}

static void run_free(run *r)
{
    for (int i = 0; i < 64; ++i)
        ssm_state_destroy(r->st[i]);
    ssm_runner_destroy(r->rn);
    free(r->mask);
    free(r->vad);
    free(r->logits);
    free(r->emb);
}

static int step(run *r, ssm_model *m, int n, const float *f, const int32_t *tok)
{
    unsigned heads = ssm_model_heads(m);
    ssm_outputs o = {.embedding = r->emb};
    if (heads & SSM_MODEL_HEAD_MASK)
        o.mask = r->mask;
    if (heads & SSM_MODEL_HEAD_VAD)
        o.vad = r->vad;
    if (heads & SSM_MODEL_HEAD_LM)
        o.logits = r->logits;
    return ssm_step(r->rn, r->st, n, f, tok, &o, r->flags);
}

static int same(const run *a, const run *b, ssm_model *m, int n)
{
    size_t dm = (size_t)ssm_model_d_model(m);
    int eq = memcmp(a->mask, b->mask, 64 * 16 * 4) == 0 && memcmp(a->vad, b->vad, 64 * 4) == 0 &&
             memcmp(a->logits, b->logits, 64 * 16 * 4) == 0 &&
             memcmp(a->emb, b->emb, (size_t)n * dm * 4) == 0 &&
             memcmp(a->flags, b->flags, (size_t)n * sizeof(unsigned)) == 0;
    size_t bytes = ssm_state_bytes(m);
    unsigned char *x = malloc(bytes), *y = malloc(bytes);
    for (int i = 0; i < n && eq; ++i) {
        ssm_state_snapshot(a->st[i], x, bytes, NULL);
        ssm_state_snapshot(b->st[i], y, bytes, NULL);
        eq = memcmp(x, y, bytes) == 0;
    }
    free(x);
    free(y);
    return eq;
}

static void inputs(float *f, int32_t *tok, int n, int nf, int V, int t)
{
    for (int i = 0; i < n * (nf ? nf : 1); ++i)
        f[i] = sinf(0.37f * (float)i + 1.3f * (float)t) * 2.0f;
    for (int i = 0; i < n; ++i)
        tok[i] = V ? (i * 7 + t * 3) % V : 0;
}

static void check_model(const char *name)
{
    ssm_model *m = load(name);
    int nf = ssm_model_n_features(m), V = ssm_model_vocab_size(m);
    float *f = calloc(64 * (size_t)(nf ? nf : 1), 4);
    int32_t tok[64];
    static const int ns[] = {1, 2, 7, 8, 9, 33, 64};
    int cases = 0, differ = 0;
    for (int threads = 2; threads <= 3; ++threads)
        for (int min_rows = 1; min_rows <= 4; min_rows += 3)
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; ++k) {
                run a, b;
                run_make(&a, m, 1, 1);
                run_make(&b, m, threads, min_rows);
                for (int t = 0; t < 5; ++t) {
                    inputs(f, tok, ns[k], nf, V, t);
                    assert_int_equal(step(&a, m, ns[k], f, tok), SSM_OK);
                    assert_int_equal(step(&b, m, ns[k], f, tok), SSM_OK);
                }
                differ += !same(&a, &b, m, ns[k]);
                ++cases;
                run_free(&a);
                run_free(&b);
            }
    printf("%s: %d cases (2-3 threads, min_rows 1/4, batches 1..64, 5 steps): %d differ from "
           "one thread\n", name, cases, differ);
    assert_int_equal(differ, 0);
    free(f);
    ssm_model_free(m);
}

static void test_bits_features(void **state)
{
    (void)state;
    check_model("a.safetensors");
}

static void test_bits_tokens(void **state)
{
    (void)state;
    check_model("c.safetensors");
}

/* Mamba-2 and mixed Mamba-1/Mamba-2 stacks (tests/ref/mamba2_ref.py gen) */
static void test_bits_mamba2(void **state)
{
    (void)state;
    check_model("m2.safetensors");
    check_model("mixed.safetensors");
}

/* The last slice (a worker's) holds a state that goes non-finite. */
static void test_reset_in_worker(void **state)
{
    (void)state;
    ssm_model *m = load("a.safetensors");
    int nf = ssm_model_n_features(m);
    float f[64 * 16];
    int32_t tok[64];
    run a, b;
    run_make(&a, m, 1, 1);
    run_make(&b, m, 3, 2);
    inputs(f, tok, 30, nf, 0, 0);
    assert_int_equal(step(&a, m, 30, f, tok), SSM_OK);
    assert_int_equal(step(&b, m, 30, f, tok), SSM_OK);
    size_t nfl;
    ssm_state_payload_(a.st[29], &nfl)[3] = NAN;
    ssm_state_payload_(b.st[29], &nfl)[3] = NAN;
    assert_int_equal(step(&a, m, 30, f, tok), SSM_ERR_NONFINITE);
    assert_int_equal(step(&b, m, 30, f, tok), SSM_ERR_NONFINITE);
    assert_int_equal(b.flags[29], SSM_FLAG_RESET);
    assert_int_equal(b.flags[0], 0);
    assert_true(same(&a, &b, m, 30));
    run_free(&a);
    run_free(&b);
    ssm_model_free(m);
}

/* A bad state or token anywhere refuses the batch before any slice runs. */
static void test_refused_whole(void **state)
{
    (void)state;
    ssm_model *m = load("c.safetensors"), *other = load("a.safetensors");
    float f[64];
    int32_t tok[64];
    run b;
    run_make(&b, m, 2, 1);
    inputs(f, tok, 40, 0, ssm_model_vocab_size(m), 0);
    assert_int_equal(step(&b, m, 40, f, tok), SSM_OK);
    size_t bytes = ssm_state_bytes(m);
    unsigned char *before = malloc(bytes * 40), *after = malloc(bytes * 40);
    for (int i = 0; i < 40; ++i)
        ssm_state_snapshot(b.st[i], before + i * bytes, bytes, NULL);
    tok[35] = 9999; /* out of range, in the worker's slice */
    assert_int_equal(step(&b, m, 40, f, tok), SSM_ERR_INVALID);
    tok[35] = 1;
    ssm_state *keep = b.st[38], *foreign = NULL;
    assert_int_equal(ssm_state_create(other, &foreign), SSM_OK);
    b.st[38] = foreign;
    assert_int_equal(step(&b, m, 40, f, tok), SSM_ERR_INVALID);
    b.st[38] = keep;
    for (int i = 0; i < 40; ++i)
        ssm_state_snapshot(b.st[i], after + i * bytes, bytes, NULL);
    assert_memory_equal(before, after, bytes * 40);
    assert_int_equal(ssm_runner_set_threads(b.rn, 0, 1, NULL), SSM_ERR_INVALID);
    assert_int_equal(ssm_runner_set_threads(b.rn, 2, 0, NULL), SSM_ERR_INVALID);
    assert_int_equal(ssm_runner_set_threads(b.rn, 1, 1, NULL), SSM_OK);
    assert_int_equal(ssm_runner_threads(b.rn), 1);
    assert_int_equal(step(&b, m, 40, f, tok), SSM_OK);
    ssm_state_destroy(foreign);
    free(before);
    free(after);
    run_free(&b);
    ssm_model_free(m);
    ssm_model_free(other);
}

/* min_rows beyond any batch (INT_MAX: 2·min_rows would overflow) keeps every
 * batch on the caller; workers' scratch is sized for their slices. */
static void test_limits(void **state)
{
    (void)state;
    ssm_model *m = load("a.safetensors");
    float f[64 * 16] = {0};
    int32_t tok[64] = {0};
    run b;
    run_make(&b, m, 2, 1);
    assert_int_equal(ssm_runner_set_threads(b.rn, 2, 2147483647, NULL), SSM_OK);
    for (int n = 1; n <= 64; n *= 2)
        assert_int_equal(step(&b, m, n, f, tok), SSM_OK);
    ssm_runner *one = NULL;
    assert_int_equal(ssm_runner_create(m, 64, 1, 0, &one, NULL), SSM_OK);
    size_t b1 = ssm_runner_bytes(one);
    assert_int_equal(ssm_runner_set_threads(one, 4, 4, NULL), SSM_OK);
    size_t b4 = ssm_runner_bytes(one);
    printf("runner bytes, max_batch 64: 1 thread %zu, 4 threads %zu (workers sized for 16-row "
           "slices)\n", b1, b4);
    assert_true(b4 < 2 * b1);
    assert_int_equal(ssm_runner_set_threads(one, 4, 4, NULL), SSM_OK);
    ssm_runner_destroy(one);
    run_free(&b);
    ssm_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_threads MODEL_DIR\n");
        return 2;
    }
    g_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bits_features),
        cmocka_unit_test(test_bits_tokens),
        cmocka_unit_test(test_bits_mamba2),
        cmocka_unit_test(test_reset_in_worker),
        cmocka_unit_test(test_refused_whole),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
