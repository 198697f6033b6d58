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

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v + 1);
    assert_non_null(v);
    for (size_t i = 0; i < n; ++i)
        v[i] = frand(lo, hi);
    return v;
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_conv_step),
        cmocka_unit_test(test_softplus_gate_sigmoid),
        cmocka_unit_test(test_scan_step),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
