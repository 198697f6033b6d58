/* SPDX-License-Identifier: MIT */
/* Vectorisable variants of the elementwise-heavy kernels (ssm_kernels.h,
 * "_vec"): plain C shaped so that the compiler vectorises the independent
 * lanes, compiled for AVX-512, AVX2 and the baseline (GNU target_clones).
 *
 * What differs from the reference: exp() is computed by vexp_fma below
 * (Cephes' expf: range reduction by ln 2, degree-6 polynomial, scale by 2ⁿ
 * through the exponent bits, its multiply-adds fused with fmaf(); the scan,
 * softplus, conv SiLU, gate and sigmoid all use it, ssm_exp_f32_vec keeps
 * the unfused vexp) instead of libm's expf, which the compiler
 * cannot vectorise without -ffast-math; and the C·h sum of the scan uses
 * eight lanes like ssm_linear_f32.  Every operation is an IEEE add, multiply,
 * explicit fmaf() (the scan's exp, vexp_fma) or compare in a fixed order (no
 * contraction: -ffp-contract=off), so the AVX2 and the baseline clones
 * produce the same bits, and a stream's results still do
 * not depend on its batch.  NaN propagates as in the reference (the clamps
 * are comparisons that keep NaN, and no float is converted to an integer). */
#include "kernels/ssm_kernels.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef SSM_CLONES /* tests/kernels/test_kernels_baseline.c predefines it empty */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define SSM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SSM_CLONES
#endif
#endif

#include "bits.h"
#include "poly.h"

/* exp(x) within ~2 ulp for x in [-87, 88]; x below -87 gives exp(-87)
 * (1.6e-38, where the true value is smaller still), above 88 gives exp(88);
 * NaN gives NaN. */
static inline float vexp(float x)
{
    const float shifter = SSM_EXP_SHIFTER;
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    float fx = x * SSM_LOG2E;
    float t = fx + shifter;
    float n = t - shifter;                      /* round(x / ln 2) */
    float r = x - n * SSM_LN2_HI;               /* Cody-Waite: ln 2 = C1 + C2 */
    r = r - n * SSM_LN2_LO;
    float p = k_exp_p[0];
    for (int i = 1; i < SSM_EXP_P_N; ++i)
        p = p * r + k_exp_p[i];
    p = p * (r * r) + r;
    p = p + 1.0f;
    /* t's low mantissa bits hold n (two's complement offset by the shifter):
     * 2ⁿ = ((bits(t) − bits(shifter)) + 127) << 23, the two constants folded
     * into one (integer arithmetic modulo 2³², the same bits) */
    return p * u2f((f2u(t) + (127u - 0x4b400000u)) << 23);
}

/* vexp with fused multiply-adds (the scan's exp; ssm_scan_step_get's AVX2
 * and AVX-512 kernels compute exactly this): t = fma(x, log2 e, shifter) and
 * r = fma(n, −C1, x), fma(n, −C2, r) for the reduction, a Horner chain of
 * fmas for the polynomial, p = fma(p, r², r) + 1.  Each fma is rounded once,
 * so fmaf() here and the vector fmas give the same bits; the same clamps,
 * and NaN in gives NaN out (the NaN of t, n, r is x's).  Within the same
 * few ulp of expf as vexp (tests/kernels holds the scan to the reference). */
static inline float vexp_fma(float x)
{
    const float shifter = SSM_EXP_SHIFTER;
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    float t = fmaf(x, SSM_LOG2E, shifter);
    float n = t - shifter;
    float r = fmaf(n, -SSM_LN2_HI, x);
    r = fmaf(n, -SSM_LN2_LO, r);
    float p = k_exp_p[0];
    for (int i = 1; i < SSM_EXP_P_N; ++i)
        p = fmaf(p, r, k_exp_p[i]);
    p = fmaf(p, r * r, r);
    p = p + 1.0f;
    return p * u2f((f2u(t) + (127u - 0x4b400000u)) << 23);
}

/* log(w) for w in [1, 2] (Cephes logf: w = m·2ᵉ with m in [√½, √2), degree-8
 * polynomial in m − 1, ln 2 split in two), its multiply-adds fused with
 * fmaf() like vexp_fma: the Horner chain, the two ln 2 terms and the −z/2
 * term are one rounding each; (y·x)·z stays two products.  The explicit
 * AVX2/AVX-512 softplus computes exactly this with vector FMAs. */
static inline float vlog12(float w)
{
    float big = w > SSM_SQRT2 ? 1.0f : 0.0f;
    float m = big > 0.0f ? w * 0.5f : w;
    float x = m - 1.0f;
    float z = x * x;
    float y = k_log_q[0];
    for (int i = 1; i < SSM_LOG_Q_N; ++i)
        y = fmaf(y, x, k_log_q[i]);
    y = y * x * z;
    y = fmaf(big, SSM_LN2_LO, y);
    y = fmaf(-0.5f, z, y);
    x = x + y;
    return fmaf(big, SSM_LN2_HI, x);
}

/* softplus(v) = v for v > 20, else max(v, 0) + log1p(exp(−|v|)) (exp by
 * vexp_fma, log by vlog12), with
 * log1p(t) = log(1 + t) · t / ((1 + t) − 1) (Goldberg's correction of the
 * rounding of 1 + t; t itself when 1 + t rounds to 1). */
static inline float vsoftplus(float v)
{
    float t = vexp_fma(-fabsf(v));
    float w = 1.0f + t;
    float d = w - 1.0f;
    float l1p = d == 0.0f ? t : vlog12(w) * (t / (d == 0.0f ? 1.0f : d));
    float pos = v > 0.0f ? v : 0.0f;
    return v > 20.0f ? v : pos + l1p;
}

SSM_CLONES
void ssm_softplus_f32_vec(float *out, size_t ld_out, const float *x, size_t ld_x,
                          const float *bias, int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        const float *xi = x + (size_t)i * ld_x;
        float *oi = out + (size_t)i * ld_out;
        if (bias)
            for (int k = 0; k < dim; ++k)
                oi[k] = vsoftplus(xi[k] + bias[k]);
        else
            for (int k = 0; k < dim; ++k)
                oi[k] = vsoftplus(xi[k]);
    }
}

SSM_CLONES
void ssm_exp_f32_vec(float *out, const float *x, int n)
{
    for (int i = 0; i < n; ++i)
        out[i] = vexp(x[i]);
}

SSM_CLONES
void ssm_scan_step_f32_vec(float *y, size_t ld_y, float *const *ssm_state,
                           const float *x, size_t ld_x,
                           const float *dt, size_t ld_dt,
                           const float *A,
                           const float *B, const float *C, size_t ld_bc,
                           const float *D, float dA_log_min,
                           int n_streams, int d_inner, int d_state)
{
    assert(y && ssm_state && x && dt && A && B && C && d_state >= 1);
    for (int s = 0; s < n_streams; ++s) {
        float *h = ssm_state[s];
        const float *xs = x + (size_t)s * ld_x;
        const float *ds = dt + (size_t)s * ld_dt;
        const float *Bs = B + (size_t)s * ld_bc;
        const float *Cs = C + (size_t)s * ld_bc;
        float *ys = y + (size_t)s * ld_y;
        for (int c = 0; c < d_inner; ++c) {
            float *hc = h + (size_t)c * d_state;
            const float *Ac = A + (size_t)c * d_state;
            const float delta = ds[c];
            const float dx = delta * xs[c];
            for (int n = 0; n < d_state; ++n) {
                float la = delta * Ac[n];
                la = la < dA_log_min ? dA_log_min : la;
                hc[n] = hc[n] * vexp_fma(la) + dx * Bs[n];
            }
            float acc[8] = {0};
            int n = 0;
            for (; n + 8 <= d_state; n += 8)
                for (int l = 0; l < 8; ++l)
                    acc[l] += hc[n + l] * Cs[n + l];
            for (int l = 0; n < d_state; ++n, ++l)
                acc[l] += hc[n] * Cs[n];
            float v = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            ys[c] = D ? v + D[c] * xs[c] : v;
        }
    }
}

SSM_CLONES
void ssm_conv_step_f32_vec(float *out, size_t ld_out, float *const *conv_state,
                           const float *x, size_t ld_x,
                           const float *w, const float *bias,
                           int n_streams, int d_inner, int d_conv)
{
    assert(out && conv_state && x && w && d_conv >= 1);
    for (int s = 0; s < n_streams; ++s) {
        float *st = conv_state[s];
        const float *xs = x + (size_t)s * ld_x;
        float *os = out + (size_t)s * ld_out;
        if (d_conv == 4) {
            /* the common width as straight-line code the compiler can
             * vectorise across channels; same operations, same order */
            for (int c = 0; c < d_inner; ++c) {
                float *sc = st + (size_t)c * 4;
                const float *wc = w + (size_t)c * 4;
                float s0 = sc[1], s1 = sc[2], s2 = sc[3], s3 = xs[c];
                sc[0] = s0;
                sc[1] = s1;
                sc[2] = s2;
                sc[3] = s3;
                os[c] = (((0.0f + s0 * wc[0]) + s1 * wc[1]) + s2 * wc[2]) + s3 * wc[3];
            }
            if (bias)
                for (int c = 0; c < d_inner; ++c)
                    os[c] = os[c] + bias[c];
        } else {
            ssm_conv_sums_scalar(os, st, xs, w, bias, 0, d_inner, d_conv);
        }
        for (int c = 0; c < d_inner; ++c) {
            float v = os[c];
            os[c] = v / (1.0f + vexp_fma(-v));
        }
    }
}

SSM_CLONES
void ssm_gate_silu_f32_vec(float *y, size_t ld_y, const float *z, size_t ld_z,
                           int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *yi = y + (size_t)i * ld_y;
        const float *zi = z + (size_t)i * ld_z;
        for (int k = 0; k < dim; ++k)
            yi[k] = yi[k] * (zi[k] / (1.0f + vexp_fma(-zi[k])));
    }
}

SSM_CLONES
void ssm_sigmoid_f32_vec(float *v, size_t ld, int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *vi = v + (size_t)i * ld;
        for (int k = 0; k < dim; ++k)
            vi[k] = 1.0f / (1.0f + vexp_fma(-vi[k]));
    }
}
