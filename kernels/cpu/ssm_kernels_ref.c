/* SPDX-License-Identifier: MIT */
/* Plain-C reference of the kernels in ssm_kernels.h.
 *
 * Each function mirrors one line of mamba_ssm's Mamba.step (mamba_simple.py)
 * in the order PyTorch evaluates it, in fp32, so that a numpy or PyTorch run
 * of the same equations agrees to fp32 rounding.  No SIMD intrinsics: the
 * compiler may vectorise the independent lanes, never a reduction (no
 * -ffast-math), so results do not depend on the compiler's choices. */
#include "kernels/ssm_kernels.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef SSM_NO_CBLAS
#include <cblas.h>
#endif

/* Batch-invariant linear layer.
 *
 * Every output element out[i,j] = Σ_k x[i,k]·w[j,k] is summed in one fixed
 * order that depends on d_in only: eight lanes, lane l accumulating the
 * products k ≡ l (mod 8) for k < d_in rounded down to 8 in increasing k, the
 * remaining k added to lanes 0, 1, ...; then the fixed tree
 * ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)).  Each lane is a separate
 * multiply-then-add chain (no FMA: kernels/ builds with -ffp-contract=off),
 * so the 4×2 register-blocked path and the single-element path produce the
 * same bits, and so does any vector width the compiler picks for the lanes:
 * results depend neither on the batch nor on the row's position in it, nor
 * on the ISA clone that runs.  Weights are walked in blocks of 4 rows (a few
 * KiB, L1-resident) against every input row, so they stream from memory once
 * per call whatever the batch. */
#define LANES 8

static inline float lanes_sum(const float a[LANES])
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static inline float dot8(const float *w, const float *x, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; ++l)
            acc[l] += w[k + l] * x[k + l];
    for (int l = 0; k < n; ++k, ++l)
        acc[l] += w[k] * x[k];
    return lanes_sum(acc);
}

/* 4 weight rows × 2 input rows; same per-element order as dot8. */
static inline void dot8_4x2(float o0[4], float o1[4], const float *w, int d_in,
                            const float *x0, const float *x1)
{
    float a0[4][LANES] = {{0}}, a1[4][LANES] = {{0}};
    const float *w0 = w, *w1 = w + d_in, *w2 = w + 2 * (size_t)d_in, *w3 = w + 3 * (size_t)d_in;
    int k = 0;
    for (; k + LANES <= d_in; k += LANES) {
        for (int l = 0; l < LANES; ++l) {
            float xa = x0[k + l], xb = x1[k + l];
            a0[0][l] += w0[k + l] * xa;
            a0[1][l] += w1[k + l] * xa;
            a0[2][l] += w2[k + l] * xa;
            a0[3][l] += w3[k + l] * xa;
            a1[0][l] += w0[k + l] * xb;
            a1[1][l] += w1[k + l] * xb;
            a1[2][l] += w2[k + l] * xb;
            a1[3][l] += w3[k + l] * xb;
        }
    }
    for (int l = 0; k < d_in; ++k, ++l) {
        a0[0][l] += w0[k] * x0[k];
        a0[1][l] += w1[k] * x0[k];
        a0[2][l] += w2[k] * x0[k];
        a0[3][l] += w3[k] * x0[k];
        a1[0][l] += w0[k] * x1[k];
        a1[1][l] += w1[k] * x1[k];
        a1[2][l] += w2[k] * x1[k];
        a1[3][l] += w3[k] * x1[k];
    }
    for (int q = 0; q < 4; ++q) {
        o0[q] = lanes_sum(a0[q]);
        o1[q] = lanes_sum(a1[q]);
    }
}

/* The same source compiled for AVX2 and for the baseline; the loader picks
 * one at start-up (GNU ifunc).  Both give identical bits (see above). */
#ifndef SSM_CLONES /* tests/kernels/test_kernels_baseline.c predefines it empty */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define SSM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SSM_CLONES
#endif
#endif

SSM_CLONES
void ssm_linear_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                    const float *w, const float *bias,
                    int n_rows, int d_in, int d_out)
{
    assert(out && x && w && n_rows >= 0 && d_in >= 1 && d_out >= 1);
    int j = 0;
    for (; j + 4 <= d_out; j += 4) {
        const float *wj = w + (size_t)j * d_in;
        int i = 0;
        for (; i + 2 <= n_rows; i += 2) {
            float o0[4], o1[4];
            dot8_4x2(o0, o1, wj, d_in, x + (size_t)i * ld_x, x + (size_t)(i + 1) * ld_x);
            float *r0 = out + (size_t)i * ld_out + j, *r1 = r0 + ld_out;
            for (int q = 0; q < 4; ++q) {
                r0[q] = bias ? o0[q] + bias[j + q] : o0[q];
                r1[q] = bias ? o1[q] + bias[j + q] : o1[q];
            }
        }
        for (; i < n_rows; ++i) {
            const float *xi = x + (size_t)i * ld_x;
            float *oi = out + (size_t)i * ld_out + j;
            for (int q = 0; q < 4; ++q) {
                float v = dot8(wj + (size_t)q * d_in, xi, d_in);
                oi[q] = bias ? v + bias[j + q] : v;
            }
        }
    }
    for (; j < d_out; ++j) {
        const float *wj = w + (size_t)j * d_in;
        for (int i = 0; i < n_rows; ++i) {
            float v = dot8(wj, x + (size_t)i * ld_x, d_in);
            out[(size_t)i * ld_out + j] = bias ? v + bias[j] : v;
        }
    }
}

void ssm_linear_blas_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                         const float *w, const float *bias,
                         int n_rows, int d_in, int d_out)
{
    assert(out && x && w && n_rows >= 0 && d_in >= 1 && d_out >= 1);
    if (n_rows == 0)
        return;
#ifdef SSM_NO_CBLAS
    /* a build without OpenBLAS (meson -Dgpu_only=true on a machine with no
     * -dev packages): the reference kernel, same contract, other rounding */
    ssm_linear_f32(out, ld_out, x, ld_x, w, bias, n_rows, d_in, d_out);
#else
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < n_rows; ++i) {
            float *oi = out + (size_t)i * ld_out;
            for (int j = 0; j < d_out; ++j)
                oi[j] = bias[j];
        }
        beta = 1.0f;
    }
    if (n_rows == 1) {
        /* OpenBLAS 0.3.21's sgemm does not forward M = 1 to gemv (≈3× slower) */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, d_out, d_in, 1.0f, w, d_in, x, 1, beta, out, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_rows, d_out, d_in,
                1.0f, x, (int)ld_x, w, d_in, beta, out, (int)ld_out);
#endif
}

void ssm_rmsnorm_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                     const float *w, int n_rows, int dim, float eps)
{
    assert(out && x && w && dim >= 1);
    for (int i = 0; i < n_rows; ++i) {
        const float *xi = x + (size_t)i * ld_x;
        float *oi = out + (size_t)i * ld_out;
        /* eight partial sums (lane k mod 8), then a fixed tree: one
         * dependent add chain of dim/8 instead of dim (it was the step's
         * longest latency chain at small batches); double keeps it exact
         * to ~1e-16 either way */
        double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int k = 0;
        for (; k + 8 <= dim; k += 8)
            for (int l = 0; l < 8; ++l)
                p[l] += (double)xi[k + l] * xi[k + l];
        for (int l = 0; k < dim; ++k, ++l)
            p[l] += (double)xi[k] * xi[k];
        double ss = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
        float rstd = (float)(1.0 / sqrt(ss / dim + (double)eps));
        for (k = 0; k < dim; ++k)
            oi[k] = xi[k] * rstd * w[k];
    }
}

static inline float silu(float v)
{
    return v / (1.0f + expf(-v));
}

void ssm_conv_step_f32(float *out, size_t ld_out, float *const *conv_state,
                       const float *x, size_t ld_x,
                       const float *w, const float *bias,
                       int n_streams, int d_inner, int d_conv)
{
    assert(out && conv_state && x && w && d_conv >= 1);
    for (int s = 0; s < n_streams; ++s) {
        float *st = conv_state[s];
        const float *xs = x + (size_t)s * ld_x;
        float *os = out + (size_t)s * ld_out;
        for (int c = 0; c < d_inner; ++c) {
            float *sc = st + (size_t)c * d_conv;
            const float *wc = w + (size_t)c * d_conv;
            /* conv_state.copy_(torch.roll(conv_state, -1)); conv_state[:, -1] = x */
            for (int k = 0; k + 1 < d_conv; ++k)
                sc[k] = sc[k + 1];
            sc[d_conv - 1] = xs[c];
            /* torch.sum(conv_state * w, dim=-1) + bias, summed in tap order */
            float acc = 0.0f;
            for (int k = 0; k < d_conv; ++k)
                acc += sc[k] * wc[k];
            if (bias)
                acc += bias[c];
            os[c] = silu(acc);
        }
    }
}

void ssm_softplus_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                      const float *bias, int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        const float *xi = x + (size_t)i * ld_x;
        float *oi = out + (size_t)i * ld_out;
        for (int k = 0; k < dim; ++k) {
            float v = bias ? xi[k] + bias[k] : xi[k];
            oi[k] = v > 20.0f ? v : log1pf(expf(v));
        }
    }
}

void ssm_scan_step_f32(float *y, size_t ld_y, float *const *ssm_state,
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
            float acc = 0.0f;
            for (int n = 0; n < d_state; ++n) {
                float la = delta * Ac[n];
                if (la < dA_log_min)
                    la = dA_log_min;
                /* ssm_state * dA + x * dB  with dB = Δ ⊗ B */
                float hn = hc[n] * expf(la) + dx * Bs[n];
                hc[n] = hn;
                acc += hn * Cs[n];
            }
            ys[c] = D ? acc + D[c] * xs[c] : acc;
        }
    }
}

void ssm_gate_silu_f32(float *y, size_t ld_y, const float *z, size_t ld_z,
                       int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *yi = y + (size_t)i * ld_y;
        const float *zi = z + (size_t)i * ld_z;
        for (int k = 0; k < dim; ++k)
            yi[k] = yi[k] * silu(zi[k]);
    }
}

void ssm_sigmoid_f32(float *v, size_t ld, int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *vi = v + (size_t)i * ld;
        for (int k = 0; k < dim; ++k)
            vi[k] = 1.0f / (1.0f + expf(-vi[k]));
    }
}

void ssm_add_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                 int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *oi = out + (size_t)i * ld_out;
        const float *xi = x + (size_t)i * ld_x;
        for (int k = 0; k < dim; ++k)
            oi[k] += xi[k];
    }
}

size_t ssm_nonfinite_f32(size_t *count, float *x, size_t ld,
                         int n_rows, int dim, int zero)
{
    size_t total = 0;
    for (int i = 0; i < n_rows; ++i) {
        float *xi = x + (size_t)i * ld;
        size_t n = 0;
        /* branch-free, so that it vectorises: Inf and NaN are the floats
         * whose exponent bits are all ones */
        if (zero) {
            for (int k = 0; k < dim; ++k) {
                uint32_t u;
                memcpy(&u, &xi[k], sizeof u);
                uint32_t nonfinite = (u & 0x7f800000u) == 0x7f800000u;
                n += nonfinite;
                u &= nonfinite - 1u;
                memcpy(&xi[k], &u, sizeof u);
            }
        } else {
            for (int k = 0; k < dim; ++k) {
                uint32_t u;
                memcpy(&u, &xi[k], sizeof u);
                n += (u & 0x7f800000u) == 0x7f800000u;
            }
        }
        if (count)
            count[i] += n;
        total += n;
    }
    return total;
}

/* Mamba-2 state update (Mamba2.step; arXiv:2405.21060 §7): one decay per
 * head, B and C shared by the heads of a group. */
void ssm_scan_heads_step_f32(float *y, size_t ld_y, float *const *ssm_state,
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
            const float dA = expf(delta * A[h]); /* dA = torch.exp(dt * A) */
            for (int p = 0; p < head_dim; ++p) {
                const int c = h * head_dim + p;
                float *Sc = S + (size_t)c * d_state;
                const float dx = delta * xs[c];
                float acc = 0.0f;
                for (int n = 0; n < d_state; ++n) {
                    /* ssm_state * dA + dBx,  dBx = (dt · x) ⊗ B */
                    float hn = Sc[n] * dA + dx * Bg[n];
                    Sc[n] = hn;
                    acc += hn * Cg[n];
                }
                ys[c] = D ? acc + D[h] * xs[c] : acc;
            }
        }
    }
}

/* Softmax attention of one query over the ring, as mha.py's
 * F.scaled_dot_product_attention computes it for one query row: scores in
 * frame order, max subtracted before exp, sum of the weighted values in frame
 * order, one division at the end. */
void ssm_attn_core_f32(float *y, const float *q, const float *K, const float *V, int window,
                       int first, int n_keys, int n_heads, int n_heads_kv, int head_dim,
                       float scale, float *scores)
{
    assert(y && q && K && V && scores && n_heads_kv >= 1 && n_heads % n_heads_kv == 0 &&
           n_keys >= 1 && n_keys <= window && first >= 0 && first < window);
    const int per_kv = n_heads / n_heads_kv;
    const size_t ld = (size_t)n_heads_kv * head_dim;
    for (int h = 0; h < n_heads; ++h) {
        const int g = h / per_kv;
        const float *qh = q + (size_t)h * head_dim;
        float m = -INFINITY;
        for (int j = 0; j < n_keys; ++j) {
            const float *k = K + (size_t)((first + j) % window) * ld + (size_t)g * head_dim;
            float s = 0.0f;
            for (int d = 0; d < head_dim; ++d)
                s += qh[d] * k[d];
            scores[j] = s * scale;
            if (scores[j] > m)
                m = scores[j];
        }
        float z = 0.0f;
        for (int j = 0; j < n_keys; ++j) {
            scores[j] = expf(scores[j] - m);
            z += scores[j];
        }
        float *yh = y + (size_t)h * head_dim;
        for (int d = 0; d < head_dim; ++d) {
            float acc = 0.0f;
            for (int j = 0; j < n_keys; ++j)
                acc += scores[j] * V[(size_t)((first + j) % window) * ld + (size_t)g * head_dim + d];
            yh[d] = acc / z;
        }
    }
}
