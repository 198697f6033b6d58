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

/* Σ_n a[n]·b[n] in eight lanes and the fixed tree of ssm_linear_f32. */
static inline float dot8_lanes(const float *a, const float *b, int n)
{
    float acc[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; ++l)
            acc[l] += a[k + l] * b[k + l];
    for (int l = 0; k < n; ++k, ++l)
        acc[l] += a[k] * b[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

SSM_CLONES
void ssm_scan_heads_step_f32_vec(float *y, size_t ld_y, float *const *ssm_state,
                                 const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                 const float *A, const float *B, const float *C, size_t ld_bc,
                                 const float *D, int n_streams, int n_heads, int head_dim,
                                 int n_groups, int d_state)
{
    assert(y && ssm_state && x && dt && A && B && C && d_state >= 1 && n_groups >= 1 &&
           n_heads % n_groups == 0);
    const int per_group = n_heads / n_groups;
    for (int s = 0; s < n_streams; ++s) {
        float *S = ssm_state[s];
        const float *xs = x + (size_t)s * ld_x;
        const float *ds = dt + (size_t)s * ld_dt;
        float *ys = y + (size_t)s * ld_y;
        for (int h = 0; h < n_heads; ++h) {
            const int g = h / per_group;
            const float *Bg = B + (size_t)s * ld_bc + (size_t)g * d_state;
            const float *Cg = C + (size_t)s * ld_bc + (size_t)g * d_state;
            const float delta = ds[h];
            const float dA = vexp_fma(delta * A[h]);
            for (int p = 0; p < head_dim; ++p) {
                const int c = h * head_dim + p;
                float *Sc = S + (size_t)c * d_state;
                const float dx = delta * xs[c];
                for (int n = 0; n < d_state; ++n)
                    Sc[n] = Sc[n] * dA + dx * Bg[n];
                float v = dot8_lanes(Sc, Cg, d_state);
                ys[c] = D ? v + D[h] * xs[c] : v;
            }
        }
    }
}

size_t ssm_ssd_scratch_floats(void)
{
    /* CB {L, L}, M {L, L}, a {L} double, w {L}, e {L} */
    return 2 * (size_t)SSM_SSD_CHUNK * SSM_SSD_CHUNK + 2 * (size_t)SSM_SSD_CHUNK + 2 * (size_t)SSM_SSD_CHUNK + 16;
}

/* Design note: the decays are exp of differences of a cumulative sum a_t
 * kept in double (the "segsum" of ssd_combined.py without its
 * cancellation: a_t − a_s is exact to ~1e-16·|a|), so the block form differs
 * from the product of per-step decays only by fp32 rounding.  Every loop
 * over n (state) or p (head channel) is contiguous and vectorises; the
 * reductions use eight lanes. */
SSM_CLONES
void ssm_ssd_chunk_f32(float *y, size_t ld_y, float *ssm_state,
                       const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                       const float *A, const float *B, const float *C, size_t ld_bc,
                       const float *D, int n_frames, int n_heads, int head_dim,
                       int n_groups, int d_state, float *scratch)
{
    assert(y && ssm_state && x && dt && A && B && C && scratch && n_groups >= 1 &&
           n_heads % n_groups == 0);
    const int per_group = n_heads / n_groups;
    const int Lc = SSM_SSD_CHUNK;
    float *CB = scratch;                       /* {L, L}: C_t · B_s of the group */
    float *M = CB + (size_t)Lc * Lc;           /* {L, L}: exp(a_t − a_s)·CB·Δ_s */
    double *a = (double *)(void *)(((uintptr_t)(M + (size_t)Lc * Lc) + 7) & ~(uintptr_t)7);
    float *wdec = (float *)(a + Lc);           /* {L}: exp(a_L − a_s)·Δ_s */
    float *edec = wdec + Lc;                   /* {L}: exp(a_t) */
    for (int t0 = 0; t0 < n_frames; t0 += Lc) {
        const int L = n_frames - t0 < Lc ? n_frames - t0 : Lc;
        for (int g = 0; g < n_groups; ++g) {
            const size_t go = (size_t)g * d_state;
            for (int t = 0; t < L; ++t)
                for (int s = 0; s <= t; ++s)
                    CB[(size_t)t * Lc + s] = dot8_lanes(C + (size_t)(t0 + t) * ld_bc + go,
                                                        B + (size_t)(t0 + s) * ld_bc + go, d_state);
            for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
                double acc = 0.0;
                for (int t = 0; t < L; ++t) {
                    acc += (double)(dt[(size_t)(t0 + t) * ld_dt + h] * A[h]);
                    a[t] = acc;
                    edec[t] = expf((float)acc);
                }
                for (int s = 0; s < L; ++s)
                    wdec[s] = expf((float)(a[L - 1] - a[s])) * dt[(size_t)(t0 + s) * ld_dt + h];
                for (int t = 0; t < L; ++t)
                    for (int s = 0; s <= t; ++s)
                        M[(size_t)t * Lc + s] = CB[(size_t)t * Lc + s] * expf((float)(a[t] - a[s])) *
                                                dt[(size_t)(t0 + s) * ld_dt + h];
                float *Sh = ssm_state + (size_t)h * head_dim * d_state;
                const float Dh = D ? D[h] : 0.0f;
                /* outputs */
                for (int t = 0; t < L; ++t) {
                    const float *Ct = C + (size_t)(t0 + t) * ld_bc + go;
                    const float *Mt = M + (size_t)t * Lc;
                    float *yt = y + (size_t)(t0 + t) * ld_y + (size_t)h * head_dim;
                    const float *xt = x + (size_t)(t0 + t) * ld_x + (size_t)h * head_dim;
                    /* within the block: yt = Σ_{s≤t} M[t,s]·x_s, rows of x added in s
                     * order (contiguous over p: vectorises) */
                    for (int p = 0; p < head_dim; ++p)
                        yt[p] = 0.0f;
                    for (int s = 0; s <= t; ++s) {
                        const float m = Mt[s];
                        const float *xs = x + (size_t)(t0 + s) * ld_x + (size_t)h * head_dim;
                        for (int p = 0; p < head_dim; ++p)
                            yt[p] += m * xs[p];
                    }
                    /* from the block's starting state, then the skip */
                    for (int p = 0; p < head_dim; ++p) {
                        float v = edec[t] * dot8_lanes(Sh + (size_t)p * d_state, Ct, d_state);
                        yt[p] = (v + yt[p]) + Dh * xt[p];
                    }
                }
                /* the state at the block's end */
                const float eL = edec[L - 1];
                for (int p = 0; p < head_dim; ++p) {
                    float *Sp = Sh + (size_t)p * d_state;
                    for (int n = 0; n < d_state; ++n)
                        Sp[n] *= eL;
                    for (int s = 0; s < L; ++s) {
                        const float c = wdec[s] * x[(size_t)(t0 + s) * ld_x + (size_t)h * head_dim + p];
                        const float *Bs = B + (size_t)(t0 + s) * ld_bc + go;
                        for (int n = 0; n < d_state; ++n)
                            Sp[n] += c * Bs[n];
                    }
                }
            }
        }
    }
}

/* The reference's softmax attention with the _vec building blocks: the q·k
 * dot in eight lanes, vexp, and the weighted value rows added in frame order
 * contiguously over head_dim (vectorises); the same operations in the same
 * order on every clone. */
SSM_CLONES
void ssm_attn_core_f32_vec(float *y, const float *q, const float *K, const float *V, int window,
                           int first, int n_keys, int n_heads, int n_heads_kv, int head_dim,
                           float scale, float *scores)
{
    assert(y && q && K && V && scores && n_heads_kv >= 1 && n_heads % n_heads_kv == 0 &&
           n_keys >= 1 && n_keys <= window && first >= 0 && first < window);
    const int per_kv = n_heads / n_heads_kv;
    const size_t ld = (size_t)n_heads_kv * head_dim;
    for (int h = 0; h < n_heads; ++h) {
        const size_t go = (size_t)(h / per_kv) * head_dim;
        const float *qh = q + (size_t)h * head_dim;
        float m = -INFINITY;
        int r = first;
        for (int j = 0; j < n_keys; ++j) {
            const float s = dot8_lanes(qh, K + (size_t)r * ld + go, head_dim) * scale;
            scores[j] = s;
            m = s > m ? s : m;
            r = r + 1 == window ? 0 : r + 1;
        }
        float z = 0.0f;
        for (int j = 0; j < n_keys; ++j) {
            scores[j] = vexp(scores[j] - m);
            z += scores[j];
        }
        float *yh = y + (size_t)h * head_dim;
        for (int d = 0; d < head_dim; ++d)
            yh[d] = 0.0f;
        r = first;
        for (int j = 0; j < n_keys; ++j) {
            const float p = scores[j];
            const float *v = V + (size_t)r * ld + go;
            for (int d = 0; d < head_dim; ++d)
                yh[d] += p * v[d];
            r = r + 1 == window ? 0 : r + 1;
        }
        const float inv = 1.0f / z;
        for (int d = 0; d < head_dim; ++d)
            yh[d] = yh[d] * inv;
    }
}
