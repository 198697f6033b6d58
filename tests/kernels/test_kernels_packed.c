/* SPDX-License-Identifier: MIT */
/* Packed linear kernels (ssm_kernels.h, cpu/ssm_kernels_packed.c):
 *  - the scalar variant against a double-precision dot product written from
 *    the equation, within the FMA-chain bound stated below;
 *  - every variant this CPU supports (AVX2+FMA, AVX-512) bit-identical to the
 *    scalar variant, in fp32 and f16, and a row alone bit-identical to the
 *    same row inside any batch (batch invariance);
 *  - the f16 path equal, bit for bit, to the fp32 path on weights rounded to
 *    half, whose error against the fp32 weights stays within 2⁻¹¹·Σ|x·w|;
 *  - float → half conversion: every half round-trips, and random / special
 *    floats match the hardware's F16C conversion where the CPU has it;
 *  - columns beyond d_out and rows beyond n_rows are never written;
 *  - the same bits with the cache blocking forced to small, odd and
 *    oversized K and row blocks.
 * Sizes are awkward on purpose (1, 7, 17, 36, 253: not multiples of a vector)
 * and row counts cover every register-tile remainder. */
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define KT_SEED 0x243F6A8885A308D3ull
#include "kt_rand.h"
#include "kt_linear.h"

static const int k_din[] = {1, 7, 64, 253, 1100}; /* 1100 x 253: the streaming path */
static const int k_dout[] = {1, 7, 16, 17, 36, 253};
static const int k_rows[] = {1, 2, 3, 4, 5, 7, 13, 16, 64}; /* 4, 16: a remainder tile of 4 rows */
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static const ssm_isa k_isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};

static void test_packed_linear(void **st)
{
    (void)st;
    double worst_ratio = 0, worst_f16 = 0;
    int n_variants = 0, n_cases = 0;
    for (int a = 0; a < COUNT(k_din); ++a)
        for (int b = 0; b < COUNT(k_dout); ++b) {
            int d_in = k_din[a], d_out = k_dout[b];
            int max_rows = 64;
            size_t ldx = (size_t)d_in + 3, ldo = (size_t)d_out + 5;
            float *x = rand_vec((size_t)max_rows * ldx, -2.0f, 2.0f);
            float *w = rand_vec((size_t)d_out * d_in, -1.0f, 1.0f);
            float *w16r = malloc((size_t)d_out * d_in * sizeof *w16r);
            float *bias = rand_vec((size_t)d_out, -1.0f, 1.0f);
            size_t ne = ssm_pack_elems(d_in, d_out);
            float *p32 = malloc(ne * sizeof *p32), *p32r = malloc(ne * sizeof *p32r);
            unsigned short *p16 = malloc(ne * sizeof *p16);
            size_t osz = (size_t)(max_rows + 1) * ldo;
            float *ref = malloc(osz * sizeof *ref), *got = malloc(osz * sizeof *got);
            float *alone = malloc(ldo * 2 * sizeof *alone), *r16 = malloc(osz * sizeof *r16);
            assert_true(w16r && p32 && p32r && p16 && ref && got && alone && r16);
            for (size_t i = 0; i < (size_t)d_out * d_in; ++i)
                w16r[i] = ssm_half_to_f32(ssm_f32_to_half(w[i]));
            ssm_pack_f32(p32, w, d_in, d_out);
            ssm_pack_f32(p32r, w16r, d_in, d_out);
            ssm_pack_f16(p16, w, d_in, d_out);
            for (int rr = 0; rr < COUNT(k_rows); ++rr) {
                int n = k_rows[rr];
                for (int wb = 0; wb < 2; ++wb) {
                    const float *bs = wb ? bias : NULL;
                    ++n_cases;
                    /* scalar fp32 against double: an FMA chain of d_in terms
                     * errs by at most d_in·u·Σ|x·w| (u = 2⁻²⁴, γ_n bound of
                     * Higham §3.1 with one rounding per step), plus u·|v| for
                     * the bias add */
                    run(ssm_linear_packed_f32_scalar, ref, x, p32, bs, n, d_in, d_out);
                    for (int i = 0; i < n; ++i)
                        for (int j = 0; j < d_out; ++j) {
                            double s = 0, sa = 0;
                            for (int k = 0; k < d_in; ++k) {
                                double t = (double)x[(size_t)i * ldx + k] * w[(size_t)j * d_in + k];
                                s += t;
                                sa += fabs(t);
                            }
                            if (bs) {
                                s += bs[j];
                                sa += fabs(bs[j]);
                            }
                            double bound = (d_in + 1) * 0x1p-24 * sa + 1e-30;
                            double e = fabs((double)ref[(size_t)i * ldo + j] - s);
                            if (e / bound > worst_ratio)
                                worst_ratio = e / bound;
                            assert_true(e <= bound);
                        }
                    /* f16 weights: same bits as fp32 on the rounded weights */
                    run(ssm_linear_packed_f32_scalar, r16, x, p32r, bs, n, d_in, d_out);
                    run(ssm_linear_packed_f16_scalar, got, x, p16, bs, n, d_in, d_out);
                    assert_memory_equal(got, r16, (size_t)n * ldo * sizeof(float));
                    for (int i = 0; i < n; ++i)
                        for (int j = 0; j < d_out; ++j) {
                            double sa = 0;
                            for (int k = 0; k < d_in; ++k)
                                sa += fabs((double)x[(size_t)i * ldx + k] * w[(size_t)j * d_in + k]);
                            double e = fabs((double)got[(size_t)i * ldo + j] - ref[(size_t)i * ldo + j]);
                            double bound = (0x1p-11 + 2 * (d_in + 1) * 0x1p-24) * sa + 1e-30;
                            if (e / bound > worst_f16)
                                worst_f16 = e / bound;
                            assert_true(e <= bound);
                        }
                    for (int v = 0; v < COUNT(k_isas); ++v)
                        for (int h = 0; h < 2; ++h) {
                            ssm_linear_packed_fn fn = ssm_linear_packed_get(k_isas[v], h);
                            if (!fn)
                                continue;
                            if (n == 1 && wb == 0 && a == 0 && b == 0)
                                ++n_variants;
                            run(fn, got, x, h ? (const void *)p16 : (const void *)p32, bs, n,
                                d_in, d_out);
                            assert_memory_equal(got, h ? r16 : ref, (size_t)n * ldo * sizeof(float));
                            /* batch invariance: the last row alone */
                            fn(alone, ldo, x + (size_t)(n - 1) * ldx, ldx,
                               h ? (const void *)p16 : (const void *)p32, bs, 1, d_in, d_out);
                            assert_memory_equal(alone, got + (size_t)(n - 1) * ldo,
                                                (size_t)d_out * sizeof(float));
                        }
                }
            }
            free(x);
            free(w);
            free(w16r);
            free(bias);
            free(p32);
            free(p32r);
            free(p16);
            free(ref);
            free(got);
            free(alone);
            free(r16);
        }
    printf("packed linear: %d cases, %d variants (isa x f32/f16) on this CPU (best %s), "
           "all bit-identical to scalar and batch-invariant; worst error / FMA-chain bound "
           "(d_in+1)*2^-24*sum|x*w| = %.3f; worst f16-vs-f32 error / (2^-11+...)*sum|x*w| = %.3f\n",
           n_cases, n_variants, ssm_isa_name(ssm_isa_best()), worst_ratio, worst_f16);
}

/* Cache blocking (ssm_linear_packed_blocking): with K and row blocks
 * forced small, odd and larger than the layer (ssm_linear_packed_set_blocking),
 * every variant still gives the scalar variant's bits, at shapes where K
 * blocks end mid-tile and row blocks leave every tile remainder; then the
 * cache-derived sizes are restored and reported. */
static void test_packed_blocking(void **st)
{
    (void)st;
    static const int din[] = {1, 7, 33, 253, 1100};
    static const int dout[] = {7, 17, 36, 253};
    static const int rows[] = {3, 5, 7, 13, 64};
    static const int blocks[][2] = {{1, 1}, {3, 5}, {7, 6}, {16, 13}, {5, 64}, {4096, 7}, {64, 4096}};
    int n_cmp = 0;
    for (int a = 0; a < COUNT(din); ++a)
        for (int b = 0; b < COUNT(dout); ++b) {
            int d_in = din[a], d_out = dout[b], max_rows = 64;
            size_t ldx = (size_t)d_in + 3, ldo = (size_t)d_out + 5;
            float *x = rand_vec((size_t)max_rows * ldx, -2.0f, 2.0f);
            float *w = rand_vec((size_t)d_out * d_in, -1.0f, 1.0f);
            float *bias = rand_vec((size_t)d_out, -1.0f, 1.0f);
            size_t ne = ssm_pack_elems(d_in, d_out);
            float *p32 = malloc(ne * sizeof *p32);
            unsigned short *p16 = malloc(ne * sizeof *p16);
            size_t osz = (size_t)(max_rows + 1) * ldo;
            float *ref = malloc(osz * sizeof *ref), *got = malloc(osz * sizeof *got);
            assert_true(p32 && p16 && ref && got);
            ssm_pack_f32(p32, w, d_in, d_out);
            ssm_pack_f16(p16, w, d_in, d_out);
            for (int rr = 0; rr < COUNT(rows); ++rr)
                for (int h = 0; h < 2; ++h)
                    for (int wb = 0; wb < 2; ++wb) {
                        int n = rows[rr];
                        const void *wp = h ? (const void *)p16 : (const void *)p32;
                        const float *bs = wb ? bias : NULL;
                        ssm_linear_packed_set_blocking(0, 0);
                        run(ssm_linear_packed_get(SSM_ISA_SCALAR, h), ref, x, wp, bs, n, d_in, d_out);
                        for (int bl = 0; bl < COUNT(blocks); ++bl) {
                            ssm_linear_packed_set_blocking(blocks[bl][0], blocks[bl][1]);
                            for (int v = 1; v < COUNT(k_isas); ++v) {
                                ssm_linear_packed_fn fn = ssm_linear_packed_get(k_isas[v], h);
                                if (!fn)
                                    continue;
                                run(fn, got, x, wp, bs, n, d_in, d_out);
                                assert_memory_equal(got, ref, (size_t)n * ldo * sizeof(float));
                                ++n_cmp;
                            }
                        }
                    }
            ssm_linear_packed_set_blocking(0, 0);
            free(x);
            free(w);
            free(bias);
            free(p32);
            free(p16);
            free(ref);
            free(got);
        }
    ssm_cpu_caches c;
    ssm_cpu_caches_get(&c);
    printf("packed blocking: %d comparisons with forced K/row blocks %s, all bit-identical to "
           "scalar; caches L1d %zu L2 %zu L3 %zu bytes;",
           n_cmp, "1x1 3x5 7x6 16x13 5x64 4096x7 64x4096", c.l1d_bytes, c.l2_bytes, c.l3_bytes);
    for (int v = 1; v < COUNT(k_isas); ++v)
        for (int h = 0; h < 2; ++h) {
            int kc, mc;
            ssm_linear_packed_blocking(k_isas[v], h, &kc, &mc);
            assert_true(kc >= 16 && mc >= 4);
            printf(" %s/%s kc %d mc %d", ssm_isa_name(k_isas[v]), h ? "f16" : "f32", kc, mc);
        }
    printf("\n");
    int kc, mc;
    ssm_linear_packed_blocking(SSM_ISA_SCALAR, 0, &kc, &mc);
    assert_true(kc == 0 && mc == 0);
}

#ifdef HAVE_X86
__attribute__((target("f16c"))) static unsigned short cvt(float v)
{
    return (unsigned short)_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT);
}
#endif

static void test_f16_conversion(void **st)
{
    (void)st;
    /* every non-NaN half converts to float and back unchanged */
    int n_round = 0;
    for (unsigned h = 0; h < 65536; ++h) {
        float f = ssm_half_to_f32((unsigned short)h);
        if (isnan(f)) {
            assert_true(((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) != 0);
            assert_true(isnan(ssm_half_to_f32(ssm_f32_to_half(f))));
            continue;
        }
        assert_int_equal(ssm_f32_to_half(f), h);
        ++n_round;
    }
    /* specials */
    assert_int_equal(ssm_f32_to_half(65504.0f), 0x7bff);
    assert_int_equal(ssm_f32_to_half(65520.0f), 0x7c00);   /* rounds up to Inf */
    assert_int_equal(ssm_f32_to_half(65519.99f), 0x7bff);
    assert_int_equal(ssm_f32_to_half(-1e9f), 0xfc00);
    assert_int_equal(ssm_f32_to_half(0x1p-25f), 0x0000);   /* tie → even (0) */
    assert_int_equal(ssm_f32_to_half(0x1.8p-24f), 0x0002); /* tie → even (2) */
    assert_int_equal(ssm_f32_to_half(-0.0f), 0x8000);
    int n_hw = 0;
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) { /* F16C comes with every AVX2 CPU made */
        for (int i = 0; i < 200000; ++i) {
            float f;
            uint32_t u = (uint32_t)(rng_state >> 32);
            frand(0, 1);
            memcpy(&f, &u, sizeof f);
            if (isnan(f))
                continue;
            unsigned short hw = cvt(f);
            assert_int_equal(ssm_f32_to_half(f), hw);
            ++n_hw;
        }
    }
#endif
    printf("f16: %d halves round-trip exactly; %d random float bit patterns equal to F16C "
           "vcvtps2ph (0 when the CPU lacks it)\n", n_round, n_hw);
}

static void test_isa_dispatch(void **st)
{
    (void)st;
    ssm_isa best = ssm_isa_best();
    assert_true(ssm_isa_supported(best));
    assert_true(ssm_isa_supported(SSM_ISA_SCALAR));
    for (int v = 0; v < COUNT(k_isas); ++v) {
        ssm_isa p;
        assert_int_equal(ssm_isa_parse(ssm_isa_name(k_isas[v]), &p), 0);
        assert_int_equal(p, k_isas[v]);
        assert_true((ssm_linear_packed_get(k_isas[v], 0) != NULL) == ssm_isa_supported(k_isas[v]));
        if (k_isas[v] > best)
            assert_false(ssm_isa_supported(k_isas[v]));
    }
    ssm_isa p;
    assert_int_equal(ssm_isa_parse("sse9", &p), -1);
    assert_null(ssm_linear_packed_get((ssm_isa)99, 0));
    printf("isa: best %s (avx2 %d, avx512 %d)\n", ssm_isa_name(best),
           ssm_isa_supported(SSM_ISA_AVX2), ssm_isa_supported(SSM_ISA_AVX512));
}

/* The explicit scan step (ssm_scan_step_get) against the _vec kernel, bit
 * for bit, over several steps (the state feeds back), with a log-decay clamp
 * and without, and with a NaN input that must propagate the same way. */
static void test_scan_variants(void **st)
{
    (void)st;
    static const int k_inner[] = {1, 7, 32, 253}, k_state[] = {1, 4, 7, 8, 16, 17};
    static const ssm_isa isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};
    int n_cmp = 0;
    for (int a = 0; a < COUNT(k_inner); ++a)
        for (int b = 0; b < COUNT(k_state); ++b)
            for (int v = 0; v < COUNT(isas); ++v) {
                if (!ssm_isa_supported(isas[v]))
                    continue;
                ssm_scan_step_fn fn = ssm_scan_step_get(isas[v]);
                int di = k_inner[a], ds = k_state[b], ns = 3;
                size_t hs = (size_t)di * ds;
                float *x = rand_vec((size_t)ns * di, -3, 3), *dt = rand_vec((size_t)ns * di, 0, 2);
                /* Δ·A down to −100: below exp's clamp at −87 and the bounds tried */
                float *A = rand_vec(hs, -50, -0.01f), *bc = rand_vec((size_t)ns * 2 * ds, -2, 2);
                float *D = rand_vec((size_t)di, -1, 1);
                float *h1 = calloc((size_t)ns * hs, sizeof *h1), *h2 = calloc((size_t)ns * hs, sizeof *h2);
                float *y1 = malloc((size_t)ns * di * sizeof *y1), *y2 = malloc((size_t)ns * di * sizeof *y2);
                float *p1[3], *p2[3];
                for (int s = 0; s < ns; ++s) {
                    p1[s] = h1 + (size_t)s * hs;
                    p2[s] = h2 + (size_t)s * hs;
                }
                if (di == 7 || di == 32)
                    x[(size_t)di + 3] = NAN; /* stream 1, channel 3 */
                for (int step = 0; step < 6; ++step) {
                    /* a bound of −87 or above: exp's clamps left out (AVX-512, d_state 16) */
                    static const float k_lmin[] = {-5.0f, -INFINITY, -87.0f, -5.0f, -87.5f, -1e30f};
                    float lmin = k_lmin[step];
                    ssm_scan_step_f32_vec(y1, (size_t)di, p1, x, (size_t)di, dt, (size_t)di, A, bc,
                                          bc + ds, (size_t)(2 * ds), step == 3 ? NULL : D, lmin,
                                          ns, di, ds);
                    fn(y2, (size_t)di, p2, x, (size_t)di, dt, (size_t)di, A, bc, bc + ds,
                       (size_t)(2 * ds), step == 3 ? NULL : D, lmin, ns, di, ds);
                    assert_memory_equal(y1, y2, (size_t)ns * di * sizeof *y1);
                    assert_memory_equal(h1, h2, (size_t)ns * hs * sizeof *h1);
                    ++n_cmp;
                }
                if (di == 7 || di == 32)
                    assert_true(isnan(y2[(size_t)di + 3]));
                free(x); free(dt); free(A); free(bc); free(D); free(h1); free(h2); free(y1); free(y2);
            }
    printf("scan step: %d comparisons (d_inner 1/7/32/253 x d_state 1/4/7/8/16/17 x supported ISAs x 6 "
           "steps), explicit kernels bit-identical to ssm_scan_step_f32_vec (NaN propagated)\n",
           n_cmp);
}

/* The bound on Δ·A near exp's own clamp at −87 (the AVX-512 path leaves the
 * lower clamp out when the bound is −87 or above): with x = 0 the state
 * becomes h·exp(max(Δ·A, bound)) alone, so exp's bits show in h, for Δ·A from
 * −100 to 0 and states of order 1; then a negative Δ (Δ·A up to +100, past
 * exp's upper clamp at 88) and bounds above 0, which no model makes but the
 * kernel accepts. */
static void test_scan_exp_bound(void **st)
{
    (void)st;
    static const float k_lmin[] = {-87.5f, -87.0f, -86.5f, -6.0f, -INFINITY, -1e30f, 0.5f, 95.0f};
    static const ssm_isa isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};
    enum { DI = 48, DS = 16 };
    int n_cmp = 0;
    for (int v = 0; v < COUNT(isas); ++v) {
        if (!ssm_isa_supported(isas[v]))
            continue;
        ssm_scan_step_fn fn = ssm_scan_step_get(isas[v]);
        for (int b = 0; b < 2 * COUNT(k_lmin); ++b) {
            float x[DI] = {0}, dt[DI], A[DI * DS], bc[2 * DS], h1[DI * DS], h2[DI * DS], y1[DI], y2[DI];
            const float lmin = k_lmin[b % COUNT(k_lmin)];
            for (int c = 0; c < DI; ++c)
                dt[c] = b < COUNT(k_lmin) ? 2.0f : -2.0f;
            for (int i = 0; i < DI * DS; ++i) {
                A[i] = -50.0f * (float)i / (DI * DS - 1); /* Δ·A: 0 … −100 */
                h1[i] = h2[i] = 1.0f + (float)(i % 7) * 0.125f;
            }
            for (int i = 0; i < 2 * DS; ++i)
                bc[i] = 0.5f + (float)i / 64.0f;
            float *p1[1] = {h1}, *p2[1] = {h2};
            ssm_scan_step_f32_vec(y1, DI, p1, x, DI, dt, DI, A, bc, bc + DS, 2 * DS, NULL, lmin, 1, DI, DS);
            fn(y2, DI, p2, x, DI, dt, DI, A, bc, bc + DS, 2 * DS, NULL, lmin, 1, DI, DS);
            assert_memory_equal(h1, h2, sizeof h1);
            assert_memory_equal(y1, y2, sizeof y1);
            ++n_cmp;
        }
    }
    printf("scan step, bounds on Δ·A near exp's clamp: %d comparisons, bit-identical\n", n_cmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_dispatch),
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_packed_linear),
        cmocka_unit_test(test_packed_blocking),
        cmocka_unit_test(test_scan_variants),
        cmocka_unit_test(test_scan_exp_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
