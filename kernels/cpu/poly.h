/* SPDX-License-Identifier: MIT */
/* What the portable (_vec) kernels and their explicit AVX2 / AVX-512 twins
 * share, defined once so that the variants, which must give the same bits,
 * cannot drift apart: the coefficients of the exp and log polynomials
 * (Cephes expf and logf) and the scalar causal-conv tap loop.  Internal. */
#ifndef SSM_KERNELS_POLY_H
#define SSM_KERNELS_POLY_H

#include <stddef.h>

/* exp: x = n·ln 2 + r with ln 2 = SSM_LN2_HI + SSM_LN2_LO (Cody-Waite),
 * exp(r) ≈ 1 + r + r²·P(r), P of degree 5, Horner from k_exp_p[0]. */
#define SSM_EXP_SHIFTER 12582912.0f /* 1.5·2²³: adding it rounds to an integer */
#define SSM_LOG2E 1.44269504088896341f
#define SSM_LN2_HI 0.693359375f
#define SSM_LN2_LO -2.12194440e-4f
#define SSM_EXP_P_N 6
static const float k_exp_p[SSM_EXP_P_N] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                           4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

/* log(w), w in [1, 2]: m = w or w/2 in [√½, √2), x = m − 1,
 * log ≈ x − x²/2 + x³·Q(x) (+ ln 2 when halved), Q of degree 8. */
#define SSM_SQRT2 1.41421356f
#define SSM_LOG_Q_N 9
static const float k_log_q[SSM_LOG_Q_N] = {7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
                                           -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
                                           2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f};

/* One stream's conv sums before SiLU for channels c0 … d_inner−1: the state
 * row of a channel shifts left by one and takes x at its last tap, then
 * (((0 + s0·w0) + s1·w1) + …) + bias, each product and sum rounded once
 * (-ffp-contract=off). */
static inline void ssm_conv_sums_scalar(float *os, float *st, const float *xs, const float *w,
                                        const float *bias, int c0, int d_inner, int d_conv)
{
    for (int c = c0; c < d_inner; ++c) {
        float *sc = st + (size_t)c * d_conv;
        const float *wc = w + (size_t)c * d_conv;
        for (int k = 0; k + 1 < d_conv; ++k)
            sc[k] = sc[k + 1];
        sc[d_conv - 1] = xs[c];
        float acc = 0.0f;
        for (int k = 0; k < d_conv; ++k)
            acc += sc[k] * wc[k];
        os[c] = bias ? acc + bias[c] : acc;
    }
}

#endif /* SSM_KERNELS_POLY_H */
