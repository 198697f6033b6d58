/* SPDX-License-Identifier: MIT */
/* Elementwise kernels per ISA (ssm_softplus_get, ssm_conv_step_get,
 * ssm_gate_silu_get, ssm_sigmoid_get): every variant this CPU runs gives the
 * bits of the portable _vec function on awkward sizes (dim 1, 7, 253 and
 * multiples of 16; d_conv 1, 3, 4, 5; rows 1, 3, 64; row strides wider than
 * the rows), with NaN and ±Inf among the inputs (a NaN matches any NaN: its
 * payload is not part of the contract, and the runner only asks isfinite);
 * a row gives the same bits alone as inside the batch; NaN in gives NaN
 * out; and the new sigmoid stays within 2e-6 of the reference. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/ssm_kernels.h"

#define KT_SEED 0xD1B54A32D192ED03ull
#include "kt_rand.h"

static const int k_dims[] = {1, 7, 16, 31, 48, 253, 256};
static const int k_rows[] = {1, 3, 64};
static const int k_convs[] = {1, 3, 4, 5};
static const ssm_isa k_isas[] = {SSM_ISA_AVX2, SSM_ISA_AVX512};
#define LEN(a) ((int)(sizeof a / sizeof a[0]))

static long n_nan_payload; /* NaNs whose bits differed (reported, allowed) */

/* the same bits, or both NaN */
static void assert_same(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t ua, ub;
        memcpy(&ua, a + i, 4);
        memcpy(&ub, b + i, 4);
        if (ua == ub)
            continue;
        if (isnan(a[i]) && isnan(b[i])) {
            ++n_nan_payload;
            continue;
        }
        fail_msg("element %zu: %.9g (0x%08x) vs %.9g (0x%08x)", i, a[i], ua, b[i], ub);
    }
}

/* rand_vec with about one value in 40 replaced by NaN, +Inf or −Inf, and a
 * sprinkling of ±0 and values beyond exp's clamps */
static float *spiked_vec(size_t n, float lo, float hi)
{
    float *v = rand_vec(n, lo, hi);
    static const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 100.0f, -100.0f,
                                    20.0f, 20.000002f, -87.5f, 88.5f};
    for (size_t i = 0; i < n; ++i)
        if (frand(0, 1) < 0.025f)
            v[i] = special[(int)frand(0, (float)LEN(special)) % LEN(special)];
    return v;
}

static float *copy_of(const float *v, size_t n)
{
    float *c = malloc(n * sizeof *c + 1);
    assert_non_null(c);
    memcpy(c, v, n * sizeof *c);
    return c;
}

static void test_softplus_gate_sigmoid_isas(void **st)
{
    (void)st;
    int n_cmp = 0;
    for (int a = 0; a < LEN(k_rows); ++a)
        for (int b = 0; b < LEN(k_dims); ++b) {
            int rows = k_rows[a], dim = k_dims[b];
            size_t ld = (size_t)dim + 3, n = (size_t)rows * ld;
            float *x = spiked_vec(n, -40, 40), *bias = spiked_vec((size_t)dim, -2, 2);
            float *z = spiked_vec(n, -12, 12), *y = spiked_vec(n, -2, 2);
            for (int withb = 0; withb < 2; ++withb) {
                const float *bp = withb ? bias : NULL;
                float *ref = rand_vec(n, 0, 1), *got = copy_of(ref, n);
                ssm_softplus_f32_vec(ref, ld, x, ld, bp, rows, dim);
                float *g_ref = copy_of(y, n), *s_ref = copy_of(x, n);
                ssm_gate_silu_f32_vec(g_ref, ld, z, ld, rows, dim);
                ssm_sigmoid_f32_vec(s_ref, ld, rows, dim);
                for (int v = 0; v < LEN(k_isas); ++v) {
                    if (!ssm_isa_supported(k_isas[v]))
                        continue;
                    ssm_softplus_get(k_isas[v])(got, ld, x, ld, bp, rows, dim);
                    assert_same(ref, got, n);
                    float *g = copy_of(y, n), *s = copy_of(x, n);
                    ssm_gate_silu_get(k_isas[v])(g, ld, z, ld, rows, dim);
                    assert_same(g_ref, g, n);
                    ssm_sigmoid_get(k_isas[v])(s, ld, rows, dim);
                    assert_same(s_ref, s, n);
                    /* the last row alone: the same bits */
                    size_t o = (size_t)(rows - 1) * ld;
                    float one[260];
                    ssm_softplus_get(k_isas[v])(one, ld, x + o, ld, bp, 1, dim);
                    assert_same(ref + o, one, (size_t)dim);
                    memcpy(one, y + o, (size_t)dim * sizeof *one);
                    ssm_gate_silu_get(k_isas[v])(one, ld, z + o, ld, 1, dim);
                    assert_same(g_ref + o, one, (size_t)dim);
                    memcpy(one, x + o, (size_t)dim * sizeof *one);
                    ssm_sigmoid_get(k_isas[v])(one, ld, 1, dim);
                    assert_same(s_ref + o, one, (size_t)dim);
                    free(g);
                    free(s);
                    n_cmp += 6;
                }
                /* NaN in, NaN out; padding between rows untouched */
                for (int i = 0; i < rows; ++i)
                    for (int k = 0; k < dim; ++k) {
                        size_t e = (size_t)i * ld + (size_t)k;
                        if (isnan(x[e]) || (bp && isnan(bp[k])))
                            assert_true(isnan(ref[e]));
                        if (isnan(x[e]))
                            assert_true(isnan(s_ref[e]));
                        if (isnan(z[e]) || isnan(y[e]))
                            assert_true(isnan(g_ref[e]));
                    }
                for (int i = 0; i < rows; ++i)
                    for (size_t k = (size_t)dim; k < ld; ++k) {
                        assert_true(got[(size_t)i * ld + k] == ref[(size_t)i * ld + k] ||
                                    isnan(got[(size_t)i * ld + k]));
                        assert_same(&s_ref[(size_t)i * ld + k], &x[(size_t)i * ld + k], 1);
                    }
                free(ref); free(got); free(g_ref); free(s_ref);
            }
            free(x); free(bias); free(z); free(y);
        }
    printf("softplus, gate, sigmoid: %d comparisons with the _vec bits, all equal "
           "(%ld NaNs with other payloads)\n", n_cmp, n_nan_payload);
}

static void test_conv_isas(void **st)
{
    (void)st;
    int n_cmp = 0;
    for (int a = 0; a < LEN(k_rows); ++a)
        for (int b = 0; b < LEN(k_dims); ++b)
            for (int q = 0; q < LEN(k_convs); ++q) {
                int n = k_rows[a], d = k_dims[b], K = k_convs[q];
                size_t ldx = (size_t)2 * d + 1, ldo = (size_t)d + 5, nc = (size_t)n * d * K;
                float *x = spiked_vec((size_t)n * ldx, -3, 3), *w = spiked_vec((size_t)d * K, -1, 1);
                float *bias = spiked_vec((size_t)d, -1, 1), *cs = spiked_vec(nc, -2, 2);
                float **p = malloc((size_t)n * sizeof *p);
                for (int withb = 0; withb < 2; ++withb) {
                    const float *bp = withb ? bias : NULL;
                    float *c_ref = copy_of(cs, nc), *o_ref = rand_vec((size_t)n * ldo, 0, 1);
                    for (int s = 0; s < n; ++s)
                        p[s] = c_ref + (size_t)s * d * K;
                    ssm_conv_step_f32_vec(o_ref, ldo, p, x, ldx, w, bp, n, d, K);
                    for (int v = 0; v < LEN(k_isas); ++v) {
                        if (!ssm_isa_supported(k_isas[v]))
                            continue;
                        float *c = copy_of(cs, nc), *o = copy_of(o_ref, (size_t)n * ldo);
                        memset(o, 0, (size_t)n * ldo * sizeof *o);
                        for (int s = 0; s < n; ++s)
                            p[s] = c + (size_t)s * d * K;
                        ssm_conv_step_get(k_isas[v])(o, ldo, p, x, ldx, w, bp, n, d, K);
                        for (int s = 0; s < n; ++s)
                            assert_same(o_ref + (size_t)s * ldo, o + (size_t)s * ldo, (size_t)d);
                        assert_memory_equal(c_ref, c, nc * sizeof *c);
                        /* the last stream alone, from its old state: the same bits */
                        float *c1 = copy_of(cs + (size_t)(n - 1) * d * K, (size_t)d * K), one[260];
                        ssm_conv_step_get(k_isas[v])(one, ldo, &c1, x + (size_t)(n - 1) * ldx, ldx,
                                                     w, bp, 1, d, K);
                        assert_same(o_ref + (size_t)(n - 1) * ldo, one, (size_t)d);
                        assert_memory_equal(c1, c_ref + (size_t)(n - 1) * d * K,
                                            (size_t)d * K * sizeof *c1);
                        free(c1); free(c); free(o);
                        n_cmp += 2;
                    }
                    /* a NaN tap or input gives NaN out */
                    for (int s = 0; s < n; ++s)
                        for (int ch = 0; ch < d; ++ch) {
                            int bad = bp && isnan(bp[ch]);
                            for (int k = 0; k < K; ++k)
                                bad |= isnan(c_ref[((size_t)s * d + ch) * K + k]) ||
                                       isnan(w[(size_t)ch * K + k]);
                            if (bad)
                                assert_true(isnan(o_ref[(size_t)s * ldo + ch]));
                        }
                    free(c_ref); free(o_ref);
                }
                free(x); free(w); free(bias); free(cs); free(p);
            }
    printf("conv step + SiLU: %d comparisons with the _vec bits (states and outputs), all "
           "equal (%ld NaNs with other payloads so far)\n", n_cmp, n_nan_payload);
}

/* the vectorised sigmoid against the reference (libm expf), and softplus,
 * gate, conv of the explicit variants against the reference: the _vec
 * tolerances of test_kernels.c (2e-6 relative) */
static void test_vs_reference(void **st)
{
    (void)st;
    double worst_s = 0, worst_sp = 0, worst_g = 0, worst_c = 0;
    ssm_isa best = ssm_isa_best();
    for (int a = 0; a < LEN(k_rows); ++a)
        for (int b = 0; b < LEN(k_dims); ++b) {
            int rows = k_rows[a], dim = k_dims[b];
            size_t n = (size_t)rows * dim;
            float *v = rand_vec(n, -30, 30), *r = copy_of(v, n), *g = copy_of(v, n);
            ssm_sigmoid_f32(r, dim, rows, dim);
            ssm_sigmoid_get(best)(g, dim, rows, dim);
            for (size_t i = 0; i < n; ++i)
                worst_s = fmax(worst_s, fabs((double)g[i] - r[i]) / (fabs((double)r[i]) + 1e-6));
            float *bias = rand_vec((size_t)dim, -1, 1);
            ssm_softplus_f32(r, dim, v, dim, bias, rows, dim);
            ssm_softplus_get(best)(g, dim, v, dim, bias, rows, dim);
            for (size_t i = 0; i < n; ++i)
                worst_sp = fmax(worst_sp, fabs((double)g[i] - r[i]) / (fabs((double)r[i]) + 1e-30));
            float *y1 = rand_vec(n, -2, 2), *y2 = copy_of(y1, n), *z = rand_vec(n, -10, 10);
            ssm_gate_silu_f32(y1, dim, z, dim, rows, dim);
            ssm_gate_silu_get(best)(y2, dim, z, dim, rows, dim);
            for (size_t i = 0; i < n; ++i)
                worst_g = fmax(worst_g, fabs((double)y1[i] - y2[i]) / (fabs((double)y1[i]) + 1e-6));
            const int K = 4;
            float *cs1 = rand_vec(n * K, -1, 1), *cs2 = copy_of(cs1, n * K);
            float *w = rand_vec((size_t)dim * K, -1, 1);
            float **p1 = malloc((size_t)rows * sizeof *p1), **p2 = malloc((size_t)rows * sizeof *p2);
            for (int s = 0; s < rows; ++s) {
                p1[s] = cs1 + (size_t)s * dim * K;
                p2[s] = cs2 + (size_t)s * dim * K;
            }
            float *x = rand_vec(n, -2, 2);
            ssm_conv_step_f32(r, dim, p1, x, dim, w, bias, rows, dim, K);
            ssm_conv_step_get(best)(g, dim, p2, x, dim, w, bias, rows, dim, K);
            assert_memory_equal(cs1, cs2, n * K * sizeof *cs1);
            for (size_t i = 0; i < n; ++i)
                worst_c = fmax(worst_c, fabs((double)r[i] - g[i]) / (fabs((double)r[i]) + 1e-3));
            free(v); free(r); free(g); free(bias); free(y1); free(y2); free(z);
            free(cs1); free(cs2); free(w); free(p1); free(p2); free(x);
        }
    printf("%s vs reference: sigmoid %.3g, softplus %.3g, gate %.3g, conv %.3g relative "
           "(tolerance 2e-6)\n", ssm_isa_name(best), worst_s, worst_sp, worst_g, worst_c);
    assert_true(worst_s < 2e-6 && worst_sp < 2e-6 && worst_g < 2e-6 && worst_c < 2e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softplus_gate_sigmoid_isas),
        cmocka_unit_test(test_conv_isas),
        cmocka_unit_test(test_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
