/* SPDX-License-Identifier: MIT */
/* The kernels compiled a second time for the x86-64 baseline (SSE2, no
 * target clones) and renamed, against the library's build, which runs its
 * AVX2 clone on a machine that has AVX2: every result must be bit-identical
 * (ssm_kernels.h promises the same bits whatever clone runs).  On a machine
 * without AVX2 both sides run baseline code and the test is trivially true. */
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

#define SSM_CLONES
#define ssm_linear_f32 base_linear_f32
#define ssm_linear_blas_f32 base_linear_blas_f32
#define ssm_rmsnorm_f32 base_rmsnorm_f32
#define ssm_conv_step_f32 base_conv_step_f32
#define ssm_softplus_f32 base_softplus_f32
#define ssm_scan_step_f32 base_scan_step_f32
#define ssm_gate_silu_f32 base_gate_silu_f32
#define ssm_sigmoid_f32 base_sigmoid_f32
#define ssm_add_f32 base_add_f32
#define ssm_nonfinite_f32 base_nonfinite_f32
#define ssm_exp_f32_vec base_exp_f32_vec
#define ssm_softplus_f32_vec base_softplus_f32_vec
#define ssm_conv_step_f32_vec base_conv_step_f32_vec
#define ssm_scan_step_f32_vec base_scan_step_f32_vec
#define ssm_gate_silu_f32_vec base_gate_silu_f32_vec
#define ssm_sigmoid_f32_vec base_sigmoid_f32_vec
#define ssm_scan_heads_step_f32 base_scan_heads_step_f32
#define ssm_scan_heads_step_f32_vec base_scan_heads_step_f32_vec
#define ssm_ssd_scratch_floats base_ssd_scratch_floats
#define ssm_ssd_chunk_f32 base_ssd_chunk_f32
#define ssm_attn_core_f32 base_attn_core_f32
#define ssm_attn_core_f32_vec base_attn_core_f32_vec
/* prototypes for the renamed copies (-Wmissing-prototypes) */
void ssm_linear_f32(float *, size_t, const float *, size_t, const float *, const float *, int, int, int);
void ssm_linear_blas_f32(float *, size_t, const float *, size_t, const float *, const float *, int, int, int);
void ssm_rmsnorm_f32(float *, size_t, const float *, size_t, const float *, int, int, float);
void ssm_conv_step_f32(float *, size_t, float *const *, const float *, size_t, const float *, const float *, int, int, int);
void ssm_softplus_f32(float *, size_t, const float *, size_t, const float *, int, int);
void ssm_scan_step_f32(float *, size_t, float *const *, const float *, size_t, const float *, size_t, const float *, const float *, const float *, size_t, const float *, float, int, int, int);
void ssm_gate_silu_f32(float *, size_t, const float *, size_t, int, int);
void ssm_sigmoid_f32(float *, size_t, int, int);
void ssm_add_f32(float *, size_t, const float *, size_t, int, int);
size_t ssm_nonfinite_f32(size_t *, float *, size_t, int, int, int);
void ssm_exp_f32_vec(float *, const float *, int);
void ssm_softplus_f32_vec(float *, size_t, const float *, size_t, const float *, int, int);
void ssm_conv_step_f32_vec(float *, size_t, float *const *, const float *, size_t, const float *, const float *, int, int, int);
void ssm_scan_step_f32_vec(float *, size_t, float *const *, const float *, size_t, const float *, size_t, const float *, const float *, const float *, size_t, const float *, float, int, int, int);
void ssm_gate_silu_f32_vec(float *, size_t, const float *, size_t, int, int);
void ssm_sigmoid_f32_vec(float *, size_t, int, int);
void ssm_scan_heads_step_f32(float *, size_t, float *const *, const float *, size_t, const float *, size_t, const float *, const float *, const float *, size_t, const float *, int, int, int, int, int);
void ssm_scan_heads_step_f32_vec(float *, size_t, float *const *, const float *, size_t, const float *, size_t, const float *, const float *, const float *, size_t, const float *, int, int, int, int, int);
size_t ssm_ssd_scratch_floats(void);
void ssm_ssd_chunk_f32(float *, size_t, float *, const float *, size_t, const float *, size_t, const float *, const float *, const float *, size_t, const float *, int, int, int, int, int, float *);
void ssm_attn_core_f32(float *, const float *, const float *, const float *, int, int, int, int, int, int, float, float *);
void ssm_attn_core_f32_vec(float *, const float *, const float *, const float *, int, int, int, int, int, int, float, float *);
#include "../../kernels/cpu/ssm_kernels_ref.c"
#include "../../kernels/cpu/ssm_kernels_vec.c"
#undef ssm_linear_f32
#undef ssm_exp_f32_vec
#undef ssm_softplus_f32_vec
#undef ssm_conv_step_f32_vec
#undef ssm_scan_step_f32_vec
#undef ssm_gate_silu_f32_vec
#undef ssm_sigmoid_f32_vec
#undef ssm_scan_heads_step_f32
#undef ssm_scan_heads_step_f32_vec
#undef ssm_ssd_scratch_floats
#undef ssm_ssd_chunk_f32
#undef ssm_attn_core_f32
#undef ssm_attn_core_f32_vec

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}
static float *rvec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; ++i)
        v[i] = frand(lo, hi);
    return v;
}

static void test_clones_bit_identical(void **st)
{
    (void)st;
    const int sizes[] = {1, 7, 253};
    int n_cmp = 0;
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) {
            int n = sizes[a], d = sizes[b], N = b == 2 ? 16 : sizes[b], K = 4;
            /* linear */
            float *x = rvec((size_t)n * d, -1, 1), *w = rvec((size_t)d * d, -1, 1);
            float *bias = rvec(d, -1, 1);
            float *o1 = rvec((size_t)n * d, 0, 1), *o2 = rvec((size_t)n * d, 0, 1);
            ssm_linear_f32(o1, d, x, d, w, bias, n, d, d);
            base_linear_f32(o2, d, x, d, w, bias, n, d, d);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            /* exp, softplus, gate, sigmoid */
            float *v = rvec((size_t)n * d, -90, 90);
            ssm_exp_f32_vec(o1, v, n * d);
            base_exp_f32_vec(o2, v, n * d);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            ssm_softplus_f32_vec(o1, d, v, d, bias, n, d);
            base_softplus_f32_vec(o2, d, v, d, bias, n, d);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            memcpy(o2, o1, (size_t)n * d * sizeof *o1);
            ssm_gate_silu_f32_vec(o1, d, v, d, n, d);
            base_gate_silu_f32_vec(o2, d, v, d, n, d);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            memcpy(o1, v, (size_t)n * d * sizeof *o1);
            memcpy(o2, v, (size_t)n * d * sizeof *o1);
            ssm_sigmoid_f32_vec(o1, d, n, d);
            base_sigmoid_f32_vec(o2, d, n, d);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            /* conv */
            float *c1 = rvec((size_t)n * d * K, -1, 1), *c2 = malloc((size_t)n * d * K * sizeof *c2);
            memcpy(c2, c1, (size_t)n * d * K * sizeof *c1);
            float **p1 = malloc((size_t)n * sizeof *p1), **p2 = malloc((size_t)n * sizeof *p2);
            for (int s = 0; s < n; ++s) {
                p1[s] = c1 + (size_t)s * d * K;
                p2[s] = c2 + (size_t)s * d * K;
            }
            float *wc = rvec((size_t)d * K, -1, 1);
            ssm_conv_step_f32_vec(o1, d, p1, x, d, wc, bias, n, d, K);
            base_conv_step_f32_vec(o2, d, p2, x, d, wc, bias, n, d, K);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            /* scan */
            float *h1 = rvec((size_t)n * d * N, -1, 1), *h2 = malloc((size_t)n * d * N * sizeof *h2);
            memcpy(h2, h1, (size_t)n * d * N * sizeof *h1);
            for (int s = 0; s < n; ++s) {
                p1[s] = h1 + (size_t)s * d * N;
                p2[s] = h2 + (size_t)s * d * N;
            }
            float *dt = rvec((size_t)n * d, 1e-3f, 2), *A = rvec((size_t)d * N, -16, -0.5f);
            float *BC = rvec((size_t)n * 2 * N, -1, 1);
            ssm_scan_step_f32_vec(o1, d, p1, x, d, dt, d, A, BC, BC + N, 2 * N, bias, -4.0f, n, d, N);
            base_scan_step_f32_vec(o2, d, p2, x, d, dt, d, A, BC, BC + N, 2 * N, bias, -4.0f, n, d, N);
            assert_memory_equal(o1, o2, (size_t)n * d * sizeof *o1);
            assert_memory_equal(h1, h2, (size_t)n * d * N * sizeof *h1);
            n_cmp += 8;
            free(x); free(w); free(bias); free(o1); free(o2); free(v); free(c1); free(c2);
            free(p1); free(p2); free(wc); free(h1); free(h2); free(dt); free(A); free(BC);
        }
    printf("library build (AVX2 clone where available) vs baseline build: %d comparisons, "
           "all bit-identical\n", n_cmp);
}

/* Mamba-2: the scan per head and the chunked SSD form, library clone vs baseline */
static void test_mamba2_clones_bit_identical(void **st)
{
    (void)st;
    static const int shp[][4] = {{1, 1, 1, 1}, {3, 7, 1, 16}, {4, 64, 2, 128}, {17, 1, 1, 64}};
    int n_cmp = 0;
    float *scratch = malloc(ssm_ssd_scratch_floats() * sizeof(float));
    for (int k = 0; k < 4; ++k) {
        int H = shp[k][0], P = shp[k][1], G = shp[k][2], N = shp[k][3], n = 3, T = 70;
        size_t di = (size_t)H * P, sn = di * N, gn = (size_t)G * N;
        float *x = rvec(di * T, -2, 2), *dt = rvec((size_t)H * T, 1e-3f, 0.5f);
        float *bc = rvec(2 * gn * T, -1, 1), *A = rvec((size_t)H, -8, -0.5f), *D = rvec((size_t)H, 0.5f, 1.5f);
        float *h1 = rvec(sn * n, -1, 1), *h2 = malloc(sn * n * sizeof *h2);
        float *o1 = malloc(di * T * sizeof *o1), *o2 = malloc(di * T * sizeof *o2);
        memcpy(h2, h1, sn * n * sizeof *h1);
        float *p1[3], *p2[3];
        for (int s = 0; s < n; ++s) {
            p1[s] = h1 + (size_t)s * sn;
            p2[s] = h2 + (size_t)s * sn;
        }
        ssm_scan_heads_step_f32_vec(o1, di, p1, x, di, dt, (size_t)H, A, bc, bc + gn, 2 * gn, D, n, H, P, G, N);
        base_scan_heads_step_f32_vec(o2, di, p2, x, di, dt, (size_t)H, A, bc, bc + gn, 2 * gn, D, n, H, P, G, N);
        assert_memory_equal(o1, o2, di * n * sizeof *o1);
        assert_memory_equal(h1, h2, sn * n * sizeof *h1);
        ssm_ssd_chunk_f32(o1, di, h1, x, di, dt, (size_t)H, A, bc, bc + gn, 2 * gn, D, T, H, P, G, N, scratch);
        base_ssd_chunk_f32(o2, di, h2, x, di, dt, (size_t)H, A, bc, bc + gn, 2 * gn, D, T, H, P, G, N, scratch);
        assert_memory_equal(o1, o2, di * T * sizeof *o1);
        assert_memory_equal(h1, h2, sn * sizeof *h1);
        n_cmp += 4;
        free(x); free(dt); free(bc); free(A); free(D); free(h1); free(h2); free(o1); free(o2);
    }
    free(scratch);
    printf("Mamba-2 scan per head and chunked SSD, library build vs baseline build: %d "
           "comparisons, all bit-identical\n", n_cmp);
}

/* Sliding-window attention core, library clone vs baseline */
static void test_attn_clones_bit_identical(void **st)
{
    (void)st;
    static const int shp[][4] = {{1, 1, 1, 1}, {6, 3, 7, 3}, {5, 5, 64, 64}, {2, 1, 9, 5}};
    int n_cmp = 0;
    for (int k = 0; k < 4; ++k) {
        int H = shp[k][0], Hkv = shp[k][1], P = shp[k][2], W = shp[k][3];
        size_t nkv = (size_t)Hkv * P;
        float *q = rvec((size_t)H * P, -2, 2), *K = rvec(W * nkv, -2, 2), *V = rvec(W * nkv, -2, 2);
        float *o1 = malloc((size_t)H * P * sizeof *o1), *o2 = malloc((size_t)H * P * sizeof *o2);
        float *sc = malloc((size_t)W * sizeof *sc);
        for (int n = 1; n <= W; ++n) {
            int first = (n * 7) % W;
            ssm_attn_core_f32_vec(o1, q, K, V, W, first, n, H, Hkv, P, 0.3f, sc);
            base_attn_core_f32_vec(o2, q, K, V, W, first, n, H, Hkv, P, 0.3f, sc);
            assert_memory_equal(o1, o2, (size_t)H * P * sizeof *o1);
            ++n_cmp;
        }
        free(q); free(K); free(V); free(o1); free(o2); free(sc);
    }
    printf("attention core, library build vs baseline build: %d comparisons, all bit-identical\n",
           n_cmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clones_bit_identical),
        cmocka_unit_test(test_mamba2_clones_bit_identical),
        cmocka_unit_test(test_attn_clones_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
