/* SPDX-License-Identifier: MIT */
/* Sliding-window attention kernels (ssm_kernels.h "sliding-window attention";
 * mamba_ssm/modules/mha.py MHA with a window):
 *  - the layer step (RoPE, ring write, softmax over the ring) with the ISA's
 *    core (_vec clones) against the plain-C reference core and against a
 *    float64 loop of the equations over the whole history (window mask,
 *    absolute-position RoPE, GQA), on a cross product of awkward sizes: KV
 *    heads 1, 3, 5 × query heads per KV head 1, 2 × head_dim 1, 7, 64 ×
 *    window 1, 3, 64, with streams shorter than the window and longer than
 *    it (2W + 3 frames); normwise relative error (max |error| / max |output|
 *    over the stream's frames, inputs uniform in [-2, 2]) <= 1e-5;
 *  - batch invariance: a stream alone gives its bits inside a batch of 3;
 *  - the forward equals its frames stepped bit for bit (ISA and reference);
 *  - the in-mixer MLP columns (mlp_dim) equal up · SiLU(gate).
 * Every check prints the worst error it saw. */
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

#define KT_SEED 0x5EED0A77E57ull
#include "kt_rand.h"

/* float64 attention of frame t over frames [max(0, t-W+1), t] of qkv rows
 * {T, n_in}, positions = frame indices, into y {nq}. */
static void attn_f64(double *y, const float *qkv, size_t n_in, int t, const ssm_attn *a)
{
    const int H = a->n_heads, Hkv = a->n_heads_kv, P = a->head_dim, W = a->window;
    const int rd = a->rot_dim, half = rd / 2;
    const size_t nq = (size_t)H * P, nkv = (size_t)Hkv * P;
    int lo = t - W + 1 < 0 ? 0 : t - W + 1;
    double *q = malloc((size_t)P * sizeof *q), *k = malloc((size_t)P * sizeof *k);
    double *s = malloc((size_t)W * sizeof *s);
    for (int h = 0; h < H; ++h) {
        int g = h / (H / Hkv);
        /* rotate x {P} at position pos in place */
#define ROT(x, pos)                                                                        \
    for (int i = 0; i < half; ++i) {                                                       \
        double ang = (double)(pos) * pow(10000.0, -(double)(2 * i) / rd);                  \
        int i0 = a->rot_interleaved ? 2 * i : i, i1 = a->rot_interleaved ? 2 * i + 1 : i + half; \
        double x0 = x[i0], x1 = x[i1];                                                     \
        x[i0] = x0 * cos(ang) - x1 * sin(ang);                                             \
        x[i1] = x1 * cos(ang) + x0 * sin(ang);                                             \
    }
        for (int d = 0; d < P; ++d)
            q[d] = qkv[(size_t)t * n_in + (size_t)h * P + d];
        ROT(q, t);
        double m = -INFINITY;
        for (int j = lo; j <= t; ++j) {
            for (int d = 0; d < P; ++d)
                k[d] = qkv[(size_t)j * n_in + nq + (size_t)g * P + d];
            ROT(k, j);
            double acc = 0;
            for (int d = 0; d < P; ++d)
                acc += q[d] * k[d];
            s[j - lo] = acc * a->scale;
            m = s[j - lo] > m ? s[j - lo] : m;
        }
        double z = 0;
        for (int j = lo; j <= t; ++j)
            z += s[j - lo] = exp(s[j - lo] - m);
        for (int d = 0; d < P; ++d) {
            double acc = 0;
            for (int j = lo; j <= t; ++j)
                acc += s[j - lo] * qkv[(size_t)j * n_in + nq + nkv + (size_t)g * P + d];
            y[(size_t)h * P + d] = acc / z;
        }
#undef ROT
    }
    free(q); free(k); free(s);
}

/* running max |a - b| into *e and max |b| into *r over n values */
static void acc_err(double *e, double *r, const float *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        *e = fmax(*e, fabs((double)a[i] - b[i]));
        *r = fmax(*r, fabs(b[i]));
    }
}

static void test_attn_step_vs_reference(void **st)
{
    (void)st;
    static const int kvs[] = {1, 3, 5}, pers[] = {1, 2}, hds[] = {1, 7, 64}, wins[] = {1, 3, 64};
    double worst_ref = 0, worst_f64 = 0;
    int n_cases = 0, bits_ok = 1;
    for (int a0 = 0; a0 < 3; ++a0)
    for (int a1 = 0; a1 < 2; ++a1)
    for (int a2 = 0; a2 < 3; ++a2)
    for (int a3 = 0; a3 < 3; ++a3) {
        const int Hkv = kvs[a0], H = Hkv * pers[a1], P = hds[a2], W = wins[a3];
        const int rd = P >= 2 ? (P / 2) & ~1 : 0;
        double *inv = malloc(((size_t)rd / 2 + 1) * sizeof *inv);
        for (int i = 0; i < rd / 2; ++i)
            inv[i] = pow(10000.0, -(double)(2 * i) / rd);
        ssm_attn a = {.n_heads = H, .n_heads_kv = Hkv, .head_dim = P, .window = W,
                      .rot_dim = rd, .rot_interleaved = (a2 + a3) & 1, .inv_freq = inv,
                      .scale = 1.0f / sqrtf((float)P)};
        ssm_attn r = a;
        ssm_attn_set_isa(&a, ssm_isa_best());
        ssm_attn_set_reference(&r);
        const size_t nq = (size_t)H * P, nkv = (size_t)Hkv * P, n_in = nq + 2 * nkv;
        const size_t sf = ssm_attn_state_floats(&a);
        float *scratch = malloc(ssm_attn_scratch_floats(&a) * sizeof(float));
        for (int longer = 0; longer < 2; ++longer) {
            const int T = longer ? 2 * W + 3 : (W > 1 ? W - 1 : 1), B = 3;
            float *qkv = rand_vec((size_t)T * B * n_in, -2, 2);
            float *sv = calloc(sf * B, sizeof *sv), *sr = calloc(sf * B, sizeof *sr);
            float *s1 = calloc(sf, sizeof *s1), *sf_ = calloc(sf, sizeof *sf_);
            float *yv = malloc(nq * B * sizeof *yv), *yr = malloc(nq * B * sizeof *yr);
            float *y1 = malloc(nq * sizeof *y1), *yall = malloc(nq * (size_t)T * sizeof *yall);
            float *yfw = malloc(nq * (size_t)T * sizeof *yfw);
            float *qkv0 = malloc((size_t)T * n_in * sizeof *qkv0); /* stream 0's frames */
            double *yd = malloc(nq * sizeof *yd);
            float *pv[3], *pr[3];
            for (int b = 0; b < B; ++b) {
                pv[b] = sv + (size_t)b * sf;
                pr[b] = sr + (size_t)b * sf;
            }
            for (int t = 0; t < T; ++t)
                memcpy(qkv0 + (size_t)t * n_in, qkv + ((size_t)t * B) * n_in, n_in * sizeof(float));
            double e_ref = 0, r_ref = 1e-30, e_f64 = 0, r_f64 = 1e-30;
            double *ydr = malloc(nq * B * sizeof *ydr);
            for (int t = 0; t < T; ++t) {
                const float *row = qkv + (size_t)t * B * n_in;
                ssm_attn_step(&a, yv, nq, row, n_in, pv, B, scratch);
                ssm_attn_step(&r, yr, nq, row, n_in, pr, B, scratch);
                ssm_attn_step(&a, y1, nq, row, n_in, &s1, 1, scratch);
                bits_ok &= memcmp(y1, yv, nq * sizeof *y1) == 0;
                memcpy(yall + (size_t)t * nq, yv, nq * sizeof *yv);
                attn_f64(yd, qkv0, n_in, t, &a);
                for (size_t i = 0; i < nq * B; ++i)
                    ydr[i] = yr[i];
                acc_err(&e_ref, &r_ref, yv, ydr, nq * B);
                acc_err(&e_f64, &r_f64, yv, yd, nq);
                acc_err(&e_f64, &r_f64, yr, yd, nq);
            }
            /* normwise over the stream: max error / max |output| */
            worst_ref = fmax(worst_ref, e_ref / r_ref);
            worst_f64 = fmax(worst_f64, e_f64 / r_f64);
            free(ydr);
            bits_ok &= memcmp(s1, sv, sf * sizeof *s1) == 0;
            ssm_attn_forward(&a, yfw, nq, qkv0, n_in, sf_, T, scratch);
            bits_ok &= memcmp(yfw, yall, nq * (size_t)T * sizeof *yfw) == 0;
            bits_ok &= memcmp(sf_, sv, sf * sizeof *sf_) == 0;
            n_cases++;
            free(qkv); free(sv); free(sr); free(s1); free(sf_); free(yv); free(yr); free(y1);
            free(yall); free(yfw); free(qkv0); free(yd);
        }
        free(scratch);
        free(inv);
    }
    printf("attention step, %d cases (KV heads 1/3/5 x heads per KV 1/2 x head_dim 1/7/64 x "
           "window 1/3/64 x stream shorter/longer than the window), 3 streams: ISA (%s) vs "
           "reference core %.2e, both vs float64 %.2e (tolerance 1e-5); alone == in batch, "
           "forward == steps: %s\n", n_cases, ssm_isa_name(ssm_isa_best()), worst_ref, worst_f64,
           bits_ok ? "bit-identical" : "DIFFER");
    assert_true(bits_ok);
    assert_true(worst_ref <= 1e-5);
    assert_true(worst_f64 <= 1e-5);
}

/* mha.py mlp_dim: the last mlp_dim/2 columns of y are up · SiLU(gate). */
static void test_attn_mlp_columns(void **st)
{
    (void)st;
    ssm_attn a = {.n_heads = 2, .n_heads_kv = 1, .head_dim = 3, .window = 2, .scale = 0.5f,
                  .mlp_dim = 10};
    ssm_attn_set_reference(&a);
    const size_t nq = 6, n_in = nq + 6 + 10, ny = nq + 5;
    float *qkv = rand_vec(n_in * 2, -3, 3), y[2 * 11];
    float *state = calloc(ssm_attn_state_floats(&a) * 2, sizeof(float));
    float *scratch = malloc(ssm_attn_scratch_floats(&a) * sizeof(float));
    float *ps[2] = {state, state + ssm_attn_state_floats(&a)};
    ssm_attn_step(&a, y, ny, qkv, n_in, ps, 2, scratch);
    double worst = 0;
    for (int s = 0; s < 2; ++s)
        for (int i = 0; i < 5; ++i) {
            double up = qkv[s * n_in + 12 + i], g = qkv[s * n_in + 17 + i];
            double want = up * g / (1 + exp(-g));
            worst = fmax(worst, fabs(y[s * ny + nq + i] - want) / fmax(fabs(want), 1e-6));
        }
    printf("in-mixer MLP columns vs float64: %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(qkv); free(state); free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attn_step_vs_reference),
        cmocka_unit_test(test_attn_mlp_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
