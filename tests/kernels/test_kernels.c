/* SPDX-License-Identifier: MIT */
/* Scalar kernels against naive double-precision loops written from the
 * equations in ssm_kernels.h, on awkward sizes (1, 7, 253: not multiples of
 * any vector width), with stated tolerances; prints the worst error seen. */
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

static const int k_sizes[] = {1, 7, 253};
#define N_SIZES ((int)(sizeof k_sizes / sizeof k_sizes[0]))

#define KT_SEED 0x9E3779B97F4A7C15ull
#include "kt_rand.h"

/* relative error |a-b| / (|b| + floor) */
static double rel(double a, double b, double floor_)
{
    return fabs(a - b) / (fabs(b) + floor_);
}

static void test_linear(void **st)
{
    (void)st;
    double worst = 0.0, worst_blas = 0.0;
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b)
            for (int c = 0; c < N_SIZES; ++c) {
                int rows = k_sizes[a], d_in = k_sizes[b], d_out = k_sizes[c];
                size_t ld_x = (size_t)d_in + 3, ld_o = (size_t)d_out + 5;
                float *x = rand_vec(rows * ld_x, -1, 1);
                float *w = rand_vec((size_t)d_out * d_in, -1, 1);
                float *bias = rand_vec(d_out, -1, 1);
                float *o = rand_vec(rows * ld_o, -1, 1);
                float *o2 = rand_vec(rows * ld_o, -1, 1);
                float *one = rand_vec(d_out, -1, 1);
                ssm_linear_f32(o, ld_o, x, ld_x, w, bias, rows, d_in, d_out);
                ssm_linear_blas_f32(o2, ld_o, x, ld_x, w, bias, rows, d_in, d_out);
                for (int i = 0; i < rows; ++i) {
                    for (int j = 0; j < d_out; ++j) {
                        double ref = bias[j], mag = fabs(bias[j]);
                        for (int k = 0; k < d_in; ++k) {
                            ref += (double)x[i * ld_x + k] * w[(size_t)j * d_in + k];
                            mag += fabs((double)x[i * ld_x + k] * w[(size_t)j * d_in + k]);
                        }
                        /* error relative to Σ|terms|, the scale of fp32 rounding */
                        double e = fabs(o[i * ld_o + j] - ref) / mag;
                        double e2 = fabs(o2[i * ld_o + j] - ref) / mag;
                        if (e > worst) worst = e;
                        if (e2 > worst_blas) worst_blas = e2;
                    }
                    /* batch invariance: row i alone gives the same bits */
                    ssm_linear_f32(one, d_out, x + i * ld_x, ld_x, w, bias, 1, d_in, d_out);
                    assert_memory_equal(one, o + i * ld_o, (size_t)d_out * sizeof(float));
                }
                free(x); free(w); free(bias); free(o); free(o2); free(one);
            }
    printf("linear: worst error / sum|terms| = %.3g (blas %.3g), tolerance 1e-6\n",
           worst, worst_blas);
    assert_true(worst < 1e-6);
    assert_true(worst_blas < 1e-6);
}

static void test_rmsnorm(void **st)
{
    (void)st;
    double worst = 0.0;
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b) {
            int rows = k_sizes[a], dim = k_sizes[b];
            float *x = rand_vec((size_t)rows * dim, -3, 3);
            float *w = rand_vec(dim, 0.5f, 1.5f);
            float *o = rand_vec((size_t)rows * dim, 0, 1);
            ssm_rmsnorm_f32(o, dim, x, dim, w, rows, dim, 1e-5f);
            for (int i = 0; i < rows; ++i) {
                double ss = 0;
                for (int k = 0; k < dim; ++k)
                    ss += (double)x[i * dim + k] * x[i * dim + k];
                double r = 1.0 / sqrt(ss / dim + 1e-5);
                for (int k = 0; k < dim; ++k) {
                    double e = rel(o[i * dim + k], x[i * dim + k] * r * w[k], 1e-6);
                    if (e > worst) worst = e;
                }
            }
            free(x); free(w); free(o);
        }
    printf("rmsnorm: worst relative error %.3g, tolerance 1e-6\n", worst);
    assert_true(worst < 1e-6);
}

static double silu_d(double v) { return v / (1.0 + exp(-v)); }

static void test_conv_step(void **st)
{
    (void)st;
    double worst = 0.0;
    const int convs[] = {1, 4, 7};
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b)
            for (int q = 0; q < 3; ++q) {
                int n = k_sizes[a], d = k_sizes[b], K = convs[q];
                float *state = rand_vec((size_t)n * d * K, -1, 1);
                float *copy = malloc((size_t)n * d * K * sizeof *copy);
                memcpy(copy, state, (size_t)n * d * K * sizeof *copy);
                float **ptrs = malloc((size_t)n * sizeof *ptrs);
                /* streams deliberately in reverse memory order */
                for (int s = 0; s < n; ++s)
                    ptrs[s] = state + (size_t)(n - 1 - s) * d * K;
                float *x = rand_vec((size_t)n * (d + 2), -1, 1);
                float *w = rand_vec((size_t)d * K, -1, 1);
                float *bias = rand_vec(d, -1, 1);
                float *o = rand_vec((size_t)n * d, -1, 1);
                ssm_conv_step_f32(o, d, ptrs, x, d + 2, w, bias, n, d, K);
                for (int s = 0; s < n; ++s) {
                    const float *old = copy + (size_t)(n - 1 - s) * d * K;
                    for (int c = 0; c < d; ++c) {
                        double acc = bias[c], mag = fabs(bias[c]);
                        for (int k = 0; k < K; ++k) {
                            double v = k + 1 < K ? old[c * K + k + 1] : x[s * (d + 2) + c];
                            assert_true(ptrs[s][c * K + k] == (float)v);
                            acc += v * w[c * K + k];
                            mag += fabs(v * w[c * K + k]);
                        }
                        /* relative to the scale of the sum (SiLU' <= 1.1) */
                        double e = fabs(o[s * d + c] - silu_d(acc)) / (mag + 1e-6);
                        if (e > worst) worst = e;
                    }
                }
                free(state); free(copy); free(ptrs); free(x); free(w); free(bias); free(o);
            }
    printf("conv_step: worst error / sum|terms| %.3g, tolerance 1e-6\n", worst);
    assert_true(worst < 1e-6);
}

static void test_softplus_gate_sigmoid(void **st)
{
    (void)st;
    double worst_sp = 0, worst_g = 0, worst_s = 0;
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b) {
            int rows = k_sizes[a], dim = k_sizes[b];
            size_t n = (size_t)rows * dim;
            float *x = rand_vec(n, -30, 30);
            float *bias = rand_vec(dim, -1, 1);
            float *o = rand_vec(n, 0, 1);
            ssm_softplus_f32(o, dim, x, dim, bias, rows, dim);
            for (size_t i = 0; i < n; ++i) {
                /* x + bias is an fp32 sum by contract */
                double v = (double)(x[i] + bias[i % dim]);
                double ref = v > 20 ? v : log1p(exp(v));
                double e = rel(o[i], ref, 1e-30);
                if (e > worst_sp) worst_sp = e;
            }
            float *y = rand_vec(n, -2, 2), *y0 = malloc(n * sizeof *y0), *z = rand_vec(n, -8, 8);
            memcpy(y0, y, n * sizeof *y);
            ssm_gate_silu_f32(y, dim, z, dim, rows, dim);
            for (size_t i = 0; i < n; ++i) {
                double e = rel(y[i], y0[i] * silu_d(z[i]), 1e-6);
                if (e > worst_g) worst_g = e;
            }
            memcpy(y, z, n * sizeof *y);
            ssm_sigmoid_f32(y, dim, rows, dim);
            for (size_t i = 0; i < n; ++i) {
                double e = rel(y[i], 1.0 / (1.0 + exp(-(double)z[i])), 1e-6);
                if (e > worst_s) worst_s = e;
            }
            free(x); free(bias); free(o); free(y); free(y0); free(z);
        }
    printf("softplus %.3g, gate %.3g, sigmoid %.3g: worst relative errors, tolerance 1e-6\n",
           worst_sp, worst_g, worst_s);
    assert_true(worst_sp < 1e-6 && worst_g < 1e-6 && worst_s < 1e-6);
}

static void test_scan_step(void **st)
{
    (void)st;
    double worst = 0.0;
    const int states[] = {1, 4, 16};
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b)
            for (int q = 0; q < 3; ++q)
                for (int clamp = 0; clamp < 2; ++clamp) {
                    int n = k_sizes[a], d = k_sizes[b], N = states[q];
                    size_t ns = (size_t)n * d * N;
                    float *h = rand_vec(ns, -1, 1), *h0 = malloc(ns * sizeof *h0);
                    memcpy(h0, h, ns * sizeof *h);
                    float **ptrs = malloc((size_t)n * sizeof *ptrs);
                    for (int s = 0; s < n; ++s)
                        ptrs[s] = h + (size_t)s * d * N;
                    float *x = rand_vec((size_t)n * d, -1, 1);
                    float *dt = rand_vec((size_t)n * d, 1e-3f, 2.0f);
                    float *A = rand_vec((size_t)d * N, -16, -0.5f);
                    float *BC = rand_vec((size_t)n * 2 * N, -1, 1);
                    float *D = rand_vec(d, -1, 1);
                    float *y = rand_vec((size_t)n * d, 0, 1);
                    float lo = clamp ? -2.0f : -INFINITY;
                    ssm_scan_step_f32(y, d, ptrs, x, d, dt, d, A, BC, BC + N, 2 * N,
                                      D, lo, n, d, N);
                    for (int s = 0; s < n; ++s)
                        for (int c = 0; c < d; ++c) {
                            double acc = 0, mag = fabs((double)D[c] * x[s * d + c]);
                            for (int k = 0; k < N; ++k) {
                                size_t i = ((size_t)s * d + c) * N + k;
                                double la = (double)dt[s * d + c] * A[c * N + k];
                                if (la < lo) la = lo;
                                double hn = h0[i] * exp(la) +
                                            (double)dt[s * d + c] * x[s * d + c] * BC[s * 2 * N + k];
                                double hm = fabs(h0[i] * exp(la)) +
                                            fabs((double)dt[s * d + c] * x[s * d + c] * BC[s * 2 * N + k]);
                                double eh = fabs(h[i] - hn) / (hm + 1e-12);
                                if (eh > worst) worst = eh;
                                acc += hn * BC[s * 2 * N + N + k];
                                mag += fabs(hn * BC[s * 2 * N + N + k]);
                            }
                            acc += (double)D[c] * x[s * d + c];
                            double e = fabs(y[s * d + c] - acc) / (mag + 1e-6);
                            if (e > worst) worst = e;
                        }
                    free(h); free(h0); free(ptrs); free(x); free(dt); free(A); free(BC); free(D); free(y);
                }
    /* Δ·A is an fp32 product up to |32| here: its rounding (2⁻²⁴·32) moves
     * exp() by up to ~2e-6 relative before any other error. */
    printf("scan_step: worst error / sum|terms| (state and y) %.3g, tolerance 5e-6\n", worst);
    assert_true(worst < 5e-6);
}

static void test_nonfinite(void **st)
{
    (void)st;
    float x[3 * 7];
    for (int i = 0; i < 21; ++i)
        x[i] = (float)i;
    x[2] = NAN;
    x[7 + 6] = INFINITY;
    x[14] = -INFINITY;
    x[15] = NAN;
    size_t count[3] = {0, 0, 0};
    assert_int_equal(ssm_nonfinite_f32(count, x, 7, 3, 7, 0), 4);
    assert_true(isnan(x[2]));
    assert_int_equal(ssm_nonfinite_f32(count, x, 7, 3, 7, 1), 4);
    assert_int_equal(count[0], 2);
    assert_int_equal(count[1], 2);
    assert_int_equal(count[2], 4);
    for (int i = 0; i < 21; ++i)
        assert_true(isfinite(x[i]));
    assert_true(x[2] == 0.0f && x[13] == 0.0f && x[14] == 0.0f && x[15] == 0.0f && x[3] == 3.0f);
}


/* The vectorisable variants against the reference on awkward sizes: exp
 * within 3 ulp over [-87, 88] (and NaN kept), conv / scan / gate within a
 * few fp32 roundings, and batch invariance of each. */
static void test_vec_variants(void **st)
{
    (void)st;
    /* exp: dense sweep */
    double worst_ulp = 0;
    enum { NE = 200003 };
    float *xs = malloc(NE * sizeof *xs), *es = malloc(NE * sizeof *es);
    for (int i = 0; i < NE; ++i)
        xs[i] = -87.0f + 174.999f * (float)i / (NE - 1);
    ssm_exp_f32_vec(es, xs, NE);
    for (int i = 0; i < NE; ++i) {
        double ref = exp((double)xs[i]);
        double ulp = ldexp(1.0, ilogb(ref) - 23);
        double e = fabs(es[i] - ref) / ulp;
        if (e > worst_ulp) worst_ulp = e;
    }
    float special[4] = {NAN, -1000.0f, 1000.0f, 0.0f}, out4[4];
    ssm_exp_f32_vec(out4, special, 4);
    assert_true(isnan(out4[0]));
    assert_true(out4[1] >= 0.0f && out4[1] < 2e-38f);
    assert_true(isfinite(out4[2]) && out4[2] > 1e38f);
    assert_true(out4[3] == 1.0f);
    /* softplus over [-100, 30] against log1p(exp(v)) in double */
    double worst_sp = 0;
    for (int i = 0; i < NE; ++i)
        xs[i] = -100.0f + 130.0f * (float)i / (NE - 1);
    ssm_softplus_f32_vec(es, NE, xs, NE, NULL, 1, NE);
    for (int i = 0; i < NE; ++i) {
        double v = xs[i], ref = v > 20 ? v : log1p(exp(v));
        if (ref < 1e-37)
            continue; /* exp clamps at -87: absolute error < 2e-38 there */
        double e = fabs(es[i] - ref) / ref;
        if (e > worst_sp) worst_sp = e;
    }
    float spn[2] = {NAN, 5.0f};
    ssm_softplus_f32_vec(spn, 2, spn, 2, NULL, 1, 2);
    assert_true(isnan(spn[0]));
    printf("vec: softplus worst relative error %.3g over [-100, 30] (tolerance 5e-7)\n", worst_sp);
    assert_true(worst_sp < 5e-7);
    free(xs);
    free(es);

    double worst_conv = 0, worst_scan = 0, worst_gate = 0;
    for (int a = 0; a < N_SIZES; ++a)
        for (int b = 0; b < N_SIZES; ++b) {
            int n = k_sizes[a], d = k_sizes[b], K = 4, N = (b == 2) ? 16 : k_sizes[b];
            /* conv */
            size_t nc = (size_t)n * d * K;
            float *cs1 = rand_vec(nc, -1, 1), *cs2 = malloc(nc * sizeof *cs2);
            memcpy(cs2, cs1, nc * sizeof *cs1);
            float **p1 = malloc((size_t)n * sizeof *p1), **p2 = malloc((size_t)n * sizeof *p2);
            for (int s = 0; s < n; ++s) {
                p1[s] = cs1 + (size_t)s * d * K;
                p2[s] = cs2 + (size_t)s * d * K;
            }
            float *x = rand_vec((size_t)n * d, -2, 2), *w = rand_vec((size_t)d * K, -1, 1);
            float *bias = rand_vec(d, -1, 1);
            float *o1 = rand_vec((size_t)n * d, 0, 1), *o2 = rand_vec((size_t)n * d, 0, 1);
            ssm_conv_step_f32(o1, d, p1, x, d, w, bias, n, d, K);
            ssm_conv_step_f32_vec(o2, d, p2, x, d, w, bias, n, d, K);
            assert_memory_equal(cs1, cs2, nc * sizeof *cs1);
            for (size_t i = 0; i < (size_t)n * d; ++i) {
                double e = fabs(o1[i] - o2[i]) / (fabs(o1[i]) + 1e-3);
                if (e > worst_conv) worst_conv = e;
            }
            /* scan */
            size_t ns = (size_t)n * d * N;
            float *h1 = rand_vec(ns, -1, 1), *h2 = malloc(ns * sizeof *h2);
            memcpy(h2, h1, ns * sizeof *h1);
            for (int s = 0; s < n; ++s) {
                p1[s] = h1 + (size_t)s * d * N;
                p2[s] = h2 + (size_t)s * d * N;
            }
            float *dt = rand_vec((size_t)n * d, 1e-3f, 2.0f), *A = rand_vec((size_t)d * N, -16, -0.5f);
            float *BC = rand_vec((size_t)n * 2 * N, -1, 1), *D = rand_vec(d, -1, 1);
            ssm_scan_step_f32(o1, d, p1, x, d, dt, d, A, BC, BC + N, 2 * N, D, -INFINITY, n, d, N);
            ssm_scan_step_f32_vec(o2, d, p2, x, d, dt, d, A, BC, BC + N, 2 * N, D, -INFINITY, n, d, N);
            /* normwise: the lane-ordered C·h sum differs by roundings of
             * the terms, not of the (possibly cancelled) result */
            double hmax = 0, ymax = 0;
            for (size_t i = 0; i < ns; ++i)
                hmax = fmax(hmax, fabs(h1[i]));
            for (size_t i = 0; i < (size_t)n * d; ++i)
                ymax = fmax(ymax, fabs(o1[i]));
            for (size_t i = 0; i < ns; ++i) {
                double e = fabs(h1[i] - h2[i]) / hmax;
                if (e > worst_scan) worst_scan = e;
            }
            for (size_t i = 0; i < (size_t)n * d; ++i) {
                double e = fabs(o1[i] - o2[i]) / ymax;
                if (e > worst_scan) worst_scan = e;
            }
            /* batch invariance of the vec scan: the last stream alone */
            if (n > 1) {
                float *h3 = malloc((size_t)d * N * sizeof *h3), y3[253];
                float *hl = h2 + (size_t)(n - 1) * d * N;
                /* rerun the last stream from the same starting state */
                memcpy(h3, h1 + (size_t)(n - 1) * d * N, (size_t)d * N * sizeof *h3);
                memcpy(hl, h3, (size_t)d * N * sizeof *h3); /* reset to ref's result */
                float *hp = h3;
                /* both start from h1's last stream (ref result), step once more */
                ssm_scan_step_f32_vec(y3, d, &hp, x + (size_t)(n - 1) * d, d, dt + (size_t)(n - 1) * d, d,
                                      A, BC + (size_t)(n - 1) * 2 * N, BC + (size_t)(n - 1) * 2 * N + N,
                                      2 * N, D, -INFINITY, 1, d, N);
                ssm_scan_step_f32_vec(o2, d, p2, x, d, dt, d, A, BC, BC + N, 2 * N, D, -INFINITY, n, d, N);
                assert_memory_equal(y3, o2 + (size_t)(n - 1) * d, (size_t)d * sizeof *y3);
                assert_memory_equal(h3, hl, (size_t)d * N * sizeof *h3);
                free(h3);
            }
            /* gate */
            float *y1 = rand_vec((size_t)n * d, -2, 2), *y2 = malloc((size_t)n * d * sizeof *y2);
            memcpy(y2, y1, (size_t)n * d * sizeof *y1);
            float *z = rand_vec((size_t)n * d, -10, 10);
            ssm_gate_silu_f32(y1, d, z, d, n, d);
            ssm_gate_silu_f32_vec(y2, d, z, d, n, d);
            for (size_t i = 0; i < (size_t)n * d; ++i) {
                double e = fabs(y1[i] - y2[i]) / (fabs(y1[i]) + 1e-6);
                if (e > worst_gate) worst_gate = e;
            }
            free(cs1); free(cs2); free(p1); free(p2); free(x); free(w); free(bias); free(o1);
            free(o2); free(h1); free(h2); free(dt); free(A); free(BC); free(D); free(y1); free(y2);
            free(z);
        }
    printf("vec: exp worst %.2f ulp (tolerance 3); vs reference: conv %.3g, scan %.3g, "
           "gate %.3g relative, scan normwise (tolerance 2e-6)\n", worst_ulp, worst_conv, worst_scan, worst_gate);
    assert_true(worst_ulp <= 3.0);
    assert_true(worst_conv < 2e-6 && worst_scan < 2e-6 && worst_gate < 2e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_conv_step),
        cmocka_unit_test(test_softplus_gate_sigmoid),
        cmocka_unit_test(test_scan_step),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_vec_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
