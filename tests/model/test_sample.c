/* SPDX-License-Identifier: MIT */
/* test_sample.c — ssm/sample.h: the empirical distribution of many draws
 * against the distribution computed here in float64 from the definitions
 * (softmax with temperature, top-k, top-p, floor), reproducibility by seed,
 * greedy decoding, non-finite logits and bad parameters. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ssm/sample.h"

#define V 16
#define N_DRAWS 400000

static void make_logits(float *l, uint64_t seed)
{
    for (int i = 0; i < V; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((double)(seed >> 40) / (double)(1ull << 24) * 6.0 - 3.0);
    }
}

/* Reference: the distribution of sample.h's steps 1-4, float64, by sorting. */
static void reference(const float *l, double T, int k, double p, double f, double *out)
{
    double q[V];
    int order[V];
    double mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (isfinite(l[i]) && l[i] > mx)
            mx = l[i];
    for (int i = 0; i < V; i++) {
        q[i] = isfinite(l[i]) ? exp((l[i] - mx) / T) : 0;
        order[i] = i;
    }
    for (int a = 0; a < V; a++) /* selection sort, descending, ties by index */
        for (int b = a + 1; b < V; b++)
            if (q[order[b]] > q[order[a]] || (q[order[b]] == q[order[a]] && order[b] < order[a])) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    if (k > 0)
        for (int j = k; j < V; j++)
            q[order[j]] = 0;
    double tot = 0;
    for (int i = 0; i < V; i++)
        tot += q[i];
    if (p < 1) {
        double acc = 0;
        int j = 0;
        while (j < V && acc < p * tot)
            acc += q[order[j++]];
        for (; j < V; j++)
            q[order[j]] = 0;
    }
    tot = 0;
    for (int i = 0; i < V; i++)
        tot += q[i];
    for (int i = 0; i < V; i++)
        q[i] /= tot;
    if (f > 0) {
        for (int i = 0; i < V; i++)
            q[i] = q[i] > f ? q[i] - f : 0;
        tot = 0;
        for (int i = 0; i < V; i++)
            tot += q[i];
        for (int i = 0; i < V; i++)
            q[i] /= tot;
    }
    memcpy(out, q, sizeof q);
}

/* Draws N_DRAWS tokens and compares frequencies with the reference: a token
 * with reference probability 0 must never appear; the others within 5
 * standard deviations of the binomial count. */
static void check_dist(float T, int k, float p, float f, uint64_t seed)
{
    float l[V];
    make_logits(l, seed);
    double ref[V];
    reference(l, T, k, p, f, ref);
    ssm_sample_params sp = {T, k, p, f};
    ssm_sampler *s = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_sampler_create(V, &sp, seed, &s, &err), SSM_OK);
    long cnt[V] = {0};
    for (int n = 0; n < N_DRAWS; n++) {
        int32_t t = -1;
        assert_int_equal(ssm_sample(s, l, &t), SSM_OK);
        assert_true(t >= 0 && t < V);
        cnt[t]++;
    }
    double worst = 0;
    for (int i = 0; i < V; i++) {
        double e = ref[i] * N_DRAWS;
        if (ref[i] == 0) {
            if (cnt[i] != 0)
                fail_msg("T=%g k=%d p=%g f=%g: token %d has probability 0 but was drawn %ld times",
                         (double)T, k, (double)p, (double)f, i, cnt[i]);
            continue;
        }
        double z = fabs((double)cnt[i] - e) / sqrt(e * (1 - ref[i]) + 1e-9);
        if (z > worst)
            worst = z;
    }
    printf("T=%g top_k=%d top_p=%g floor=%g: worst |count - expected| = %.2f sigma over %d draws\n",
           (double)T, k, (double)p, (double)f, worst, N_DRAWS);
    assert_true(worst < 5.0);
    ssm_sampler_destroy(s);
}

static void test_distributions(void **st)
{
    (void)st;
    check_dist(1.0f, 0, 1.0f, 0.0f, 1);
    check_dist(0.5f, 0, 1.0f, 0.0f, 2);
    check_dist(1.7f, 0, 1.0f, 0.0f, 3);
    check_dist(1.0f, 3, 1.0f, 0.0f, 4);
    check_dist(1.0f, 0, 0.7f, 0.0f, 5);
    check_dist(1.0f, 5, 0.9f, 0.0f, 6);
    check_dist(1.0f, 0, 1.0f, 0.04f, 7);
    check_dist(0.8f, 8, 0.95f, 0.02f, 8);
}

static void draw(uint64_t seed, const ssm_sample_params *sp, int32_t *out, int n)
{
    ssm_sampler *s = NULL;
    assert_int_equal(ssm_sampler_create(V, sp, seed, &s, NULL), SSM_OK);
    float l[V];
    for (int i = 0; i < n; i++) {
        make_logits(l, (uint64_t)i + 100);
        assert_int_equal(ssm_sample(s, l, &out[i]), SSM_OK);
    }
    ssm_sampler_destroy(s);
}

static void test_reproducible(void **st)
{
    (void)st;
    enum { N = 4096 };
    static int32_t a[N], b[N], c[N];
    ssm_sample_params sp = {1.0f, 0, 0.95f, 0.001f};
    draw(42, &sp, a, N);
    draw(42, &sp, b, N);
    draw(43, &sp, c, N);
    assert_memory_equal(a, b, sizeof a);
    int diff = 0;
    for (int i = 0; i < N; i++)
        diff += a[i] != c[i];
    printf("same seed: identical over %d draws; seed 42 vs 43: %d of %d differ\n", N, diff, N);
    assert_true(diff > N / 4);
    /* reseed restarts the stream */
    ssm_sampler *s = NULL;
    assert_int_equal(ssm_sampler_create(V, &sp, 42, &s, NULL), SSM_OK);
    uint64_t x0 = ssm_sampler_next_u64(s), x1 = ssm_sampler_next_u64(s);
    ssm_sampler_reseed(s, 42);
    assert_true(ssm_sampler_next_u64(s) == x0);
    assert_true(ssm_sampler_next_u64(s) == x1);
    assert_true(x0 != x1);
    ssm_sampler_destroy(s);
}

static void test_greedy_and_nonfinite(void **st)
{
    (void)st;
    ssm_sample_params sp = {0.0f, 0, 1.0f, 0.0f};
    ssm_sampler *s = NULL;
    assert_int_equal(ssm_sampler_create(V, &sp, 1, &s, NULL), SSM_OK);
    float l[V];
    make_logits(l, 9);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > l[best])
            best = i;
    int32_t t = -1;
    assert_int_equal(ssm_sample(s, l, &t), SSM_OK);
    assert_int_equal(t, best);
    l[best] = NAN; /* excluded, the next best wins */
    int second = best == 0 ? 1 : 0;
    for (int i = 0; i < V; i++)
        if (i != best && l[i] > l[second])
            second = i;
    assert_int_equal(ssm_sample(s, l, &t), SSM_OK);
    assert_int_equal(t, second);
    for (int i = 0; i < V; i++)
        l[i] = (i & 1) ? NAN : INFINITY;
    assert_int_equal(ssm_sample(s, l, &t), SSM_ERR_NONFINITE);
    assert_int_equal(t, V / 2);
    /* with sampling: NaN and -inf tokens are never drawn */
    sp.temperature = 1.0f;
    assert_int_equal(ssm_sampler_set_params(s, &sp, NULL), SSM_OK);
    make_logits(l, 9);
    l[3] = NAN;
    l[4] = -INFINITY;
    l[5] = INFINITY;
    for (int n = 0; n < 20000; n++) {
        assert_int_equal(ssm_sample(s, l, &t), SSM_OK);
        assert_true(t != 3 && t != 4 && t != 5);
    }
    assert_int_equal(ssm_sample(NULL, l, &t), SSM_ERR_INVALID);
    assert_int_equal(ssm_sample(s, NULL, &t), SSM_ERR_INVALID);
    ssm_sampler_destroy(s);
    ssm_sampler_destroy(NULL);
}

static void test_bad_params(void **st)
{
    (void)st;
    struct { ssm_sample_params p; const char *word; } bad[] = {
        {{-1.0f, 0, 1.0f, 0.0f}, "temperature"},
        {{NAN, 0, 1.0f, 0.0f}, "temperature"},
        {{INFINITY, 0, 1.0f, 0.0f}, "temperature"},
        {{1.0f, -2, 1.0f, 0.0f}, "top_k"},
        {{1.0f, 0, 0.0f, 0.0f}, "top_p"},
        {{1.0f, 0, 1.5f, 0.0f}, "top_p"},
        {{1.0f, 0, NAN, 0.0f}, "top_p"},
        {{1.0f, 0, 1.0f, 1.0f}, "min_prob"},
        {{1.0f, 0, 1.0f, -0.1f}, "min_prob"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssm_sampler *s = (ssm_sampler *)&bad; /* must be overwritten with NULL */
        ssm_error err = {0};
        assert_int_equal(ssm_sampler_create(V, &bad[i].p, 1, &s, &err), SSM_ERR_INVALID);
        assert_null(s);
        printf("  refused: %s\n", err.msg);
        assert_non_null(strstr(err.msg, bad[i].word));
    }
    ssm_sampler *s = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_sampler_create(0, NULL, 1, &s, &err), SSM_ERR_INVALID);
    assert_non_null(strstr(err.msg, "vocab_size"));
    assert_int_equal(ssm_sampler_create(V, NULL, 1, &s, &err), SSM_OK);
    ssm_sample_params p = {1.0f, 0, 2.0f, 0.0f};
    assert_int_equal(ssm_sampler_set_params(s, &p, &err), SSM_ERR_INVALID);
    ssm_sampler_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_greedy_and_nonfinite),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
