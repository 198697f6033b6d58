/* SPDX-License-Identifier: MIT */
/* The per-layer mixer step (ssm_kernels.h, cpu/ssm_kernels_mixer.c):
 *  - for every ISA this CPU has: the mixer equals, bit for bit (y and both
 *    states), the same ISA's kernels run stage by stage over the whole
 *    batch (conv → x_proj → dt_proj → softplus → scan → gate), over several
 *    steps, with batches that leave partial tiles;
 *  - a stream's bits do not depend on its tile: the last stream alone equals
 *    its row inside the batch;
 *  - every ISA's mixer against the reference mixer (plain-C kernels, libm
 *    exp, no-FMA linear layer) within 2e-5 normwise relative error on y and
 *    on the states after 6 steps, on awkward sizes (d_inner 1, 7, 253; d_state
 *    1, 4, 16, 17; d_conv 1, 4, 5; dt_rank 1, 3).
 * A mutation (e.g. gating before the scan, or x_proj reading the pre-conv x)
 * breaks the first check. */
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

#define KT_SEED 0xA4093822299F31D0ull
#include "kt_rand.h"

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static void lin_ref_fn(float *out, size_t ld_out, const float *x, size_t ld_x, const void *w,
                       const float *bias, int n_rows, int d_in, int d_out)
{
    ssm_linear_f32(out, ld_out, x, ld_x, w, bias, n_rows, d_in, d_out);
}

typedef struct shape {
    int di, ds, dc, dr;
} shape;

typedef struct layer {
    shape sh;
    float *conv_w, *conv_b, *dt_b, *A, *D, *wx, *wdt; /* wx {ndbc, di}, wdt {di, dr} */
    float *px, *pdt;                                 /* packed fp32 panels */
    void *qx, *qdt;                                  /* int8 panels */
} layer;

static layer make_layer(shape sh)
{
    layer L = {.sh = sh};
    int ndbc = sh.dr + 2 * sh.ds;
    L.conv_w = rand_vec((size_t)sh.di * sh.dc, -0.5f, 0.5f);
    L.conv_b = rand_vec((size_t)sh.di, -0.2f, 0.2f);
    L.dt_b = rand_vec((size_t)sh.di, -4.0f, -2.0f);
    L.A = rand_vec((size_t)sh.di * sh.ds, -8.0f, -0.5f);
    L.D = rand_vec((size_t)sh.di, 0.5f, 1.5f);
    L.wx = rand_vec((size_t)ndbc * sh.di, -0.3f, 0.3f);
    L.wdt = rand_vec((size_t)sh.di * sh.dr, -0.5f, 0.5f);
    L.px = malloc(ssm_pack_elems(sh.di, ndbc) * sizeof(float));
    L.pdt = malloc(ssm_pack_elems(sh.dr, sh.di) * sizeof(float));
    assert_true(L.px && L.pdt);
    ssm_pack_f32(L.px, L.wx, sh.di, ndbc);
    ssm_pack_f32(L.pdt, L.wdt, sh.dr, sh.di);
    L.qx = aligned_alloc(64, ssm_pack_q8_bytes(sh.di, ndbc));
    L.qdt = aligned_alloc(64, ssm_pack_q8_bytes(sh.dr, sh.di));
    assert_true(L.qx && L.qdt);
    assert_int_equal(ssm_pack_q8(L.qx, L.wx, sh.di, ndbc), 0);
    assert_int_equal(ssm_pack_q8(L.qdt, L.wdt, sh.dr, sh.di), 0);
    return L;
}

static void free_layer(layer *L)
{
    free(L->conv_w); free(L->conv_b); free(L->dt_b); free(L->A); free(L->D);
    free(L->wx); free(L->wdt); free(L->px); free(L->pdt); free(L->qx); free(L->qdt);
}

/* isa -1: the reference mixer; q8: int8 projections instead of fp32 panels */
static ssm_mixer mixer_of(const layer *L, int isa, int q8)
{
    ssm_mixer mx = {
        .d_inner = L->sh.di, .d_state = L->sh.ds, .d_conv = L->sh.dc, .dt_rank = L->sh.dr,
        .conv_w = L->conv_w, .conv_b = L->conv_b, .dt_bias = L->dt_b, .A = L->A, .D = L->D,
        .dA_log_min = -INFINITY,
    };
    if (isa < 0) {
        mx.x_proj_w = L->wx;
        mx.dt_proj_w = L->wdt;
        mx.x_lin = mx.dt_lin = lin_ref_fn;
        ssm_mixer_set_reference(&mx);
    } else {
        mx.x_proj_w = q8 ? L->qx : (const void *)L->px;
        mx.dt_proj_w = q8 ? L->qdt : (const void *)L->pdt;
        mx.x_lin = mx.dt_lin = q8 ? ssm_linear_q8_get((ssm_isa)isa) : ssm_linear_packed_get((ssm_isa)isa, 0);
        ssm_mixer_set_isa(&mx, (ssm_isa)isa);
    }
    return mx;
}

/* The same kernels stage by stage over the whole batch. */
static void unfused(const ssm_mixer *mx, float *y, size_t ld_y, const float *xz, size_t ld_xz,
                    float *const *cs, float *const *hs, int n)
{
    int di = mx->d_inner, ndbc = mx->dt_rank + 2 * mx->d_state;
    float *xc = malloc((size_t)n * di * sizeof *xc), *dbc = malloc((size_t)n * ndbc * sizeof *dbc);
    float *dt = malloc((size_t)n * di * sizeof *dt);
    assert_true(xc && dbc && dt);
    mx->conv(xc, (size_t)di, cs, xz, ld_xz, mx->conv_w, mx->conv_b, n, di, mx->d_conv);
    mx->x_lin(dbc, (size_t)ndbc, xc, (size_t)di, mx->x_proj_w, NULL, n, di, ndbc);
    mx->dt_lin(dt, (size_t)di, dbc, (size_t)ndbc, mx->dt_proj_w, NULL, n, mx->dt_rank, di);
    mx->softplus(dt, (size_t)di, dt, (size_t)di, mx->dt_bias, n, di);
    mx->scan(y, ld_y, hs, xc, (size_t)di, dt, (size_t)di, mx->A, dbc + mx->dt_rank,
             dbc + mx->dt_rank + mx->d_state, (size_t)ndbc, mx->D, mx->dA_log_min, n, di, mx->d_state);
    mx->gate(y, ld_y, xz + di, ld_xz, n, di);
    free(xc);
    free(dbc);
    free(dt);
}

/* n streams' states, one allocation each (conv {di, dc}, ssm {di, ds}) */
typedef struct states {
    int n;
    float **c, **h;
} states;

static states make_states(const shape *sh, int n)
{
    states S = {.n = n, .c = calloc((size_t)n, sizeof(float *)), .h = calloc((size_t)n, sizeof(float *))};
    assert_true(S.c && S.h);
    for (int i = 0; i < n; ++i) {
        S.c[i] = calloc((size_t)sh->di * sh->dc, sizeof(float));
        S.h[i] = calloc((size_t)sh->di * sh->ds, sizeof(float));
        assert_true(S.c[i] && S.h[i]);
    }
    return S;
}

static void free_states(states *S)
{
    for (int i = 0; i < S->n; ++i) {
        free(S->c[i]);
        free(S->h[i]);
    }
    free(S->c);
    free(S->h);
}

static int states_equal(const shape *sh, const states *a, const states *b, int n)
{
    for (int i = 0; i < n; ++i)
        if (memcmp(a->c[i], b->c[i], (size_t)sh->di * sh->dc * sizeof(float)) ||
            memcmp(a->h[i], b->h[i], (size_t)sh->di * sh->ds * sizeof(float)))
            return 0;
    return 1;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static void test_mixer(void **st)
{
    (void)st;
    static const shape shapes[] = {
        {1, 1, 1, 1}, {7, 4, 4, 3}, {7, 17, 5, 1}, {16, 16, 4, 1}, {253, 16, 4, 3},
        {253, 4, 3, 3}, {64, 8, 4, 3}, {253, 17, 1, 1},
    };
    static const int batches[] = {1, 3, 8, 9, 17, 37}; /* 37 = 3 full tiles of 12 + 1 */
    static const ssm_isa isas[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};
    const int steps = 6;
    double worst_y = 0, worst_h = 0, worst_q = 0;
    int n_cases = 0;
    for (int a = 0; a < COUNT(shapes); ++a) {
        shape sh = shapes[a];
        layer L = make_layer(sh);
        ssm_mixer ref = mixer_of(&L, -1, 0);
        for (int b = 0; b < COUNT(batches); ++b) {
            int n = batches[b];
            size_t ld_xz = 2 * (size_t)sh.di + 3, ld_y = (size_t)sh.di + 5;
            float *xz = rand_vec((size_t)steps * n * ld_xz, -2.0f, 2.0f);
            float *y1 = malloc((size_t)n * ld_y * sizeof *y1), *y2 = malloc((size_t)n * ld_y * sizeof *y2);
            float *yr = malloc((size_t)n * ld_y * sizeof *yr), *ya = malloc(ld_y * sizeof *ya);
            float *scratch = malloc(ssm_mixer_scratch_floats(&ref) * sizeof *scratch);
            assert_true(y1 && y2 && yr && ya && scratch);
            for (int v = 0; v < 2 * COUNT(isas); ++v) {
                const int q8 = v >= COUNT(isas); /* the second round: int8 projections */
                if (!ssm_isa_supported(isas[v % COUNT(isas)]))
                    continue;
                ssm_mixer mx = mixer_of(&L, (int)isas[v % COUNT(isas)], q8);
                states S1 = make_states(&sh, n), S2 = make_states(&sh, n), Sa = make_states(&sh, 1);
                states Sr = make_states(&sh, n);
                for (int t = 0; t < steps; ++t) {
                    const float *x_t = xz + (size_t)t * n * ld_xz;
                    ssm_mixer_step(&mx, y1, ld_y, x_t, ld_xz, S1.c, S1.h, n, scratch);
                    unfused(&mx, y2, ld_y, x_t, ld_xz, S2.c, S2.h, n);
                    for (int i = 0; i < n; ++i)
                        if (memcmp(y1 + (size_t)i * ld_y, y2 + (size_t)i * ld_y, (size_t)sh.di * sizeof(float)))
                            fail_msg("%s d_inner %d d_state %d d_conv %d batch %d step %d: stream %d differs "
                                     "from the stage-by-stage kernels", ssm_isa_name(isas[v % COUNT(isas)]), sh.di, sh.ds,
                                     sh.dc, n, t, i);
                    assert_true(states_equal(&sh, &S1, &S2, n));
                    /* the last stream alone: same bits as in its tile */
                    ssm_mixer_step(&mx, ya, ld_y, x_t + (size_t)(n - 1) * ld_xz, ld_xz, Sa.c, Sa.h, 1, scratch);
                    assert_memory_equal(ya, y1 + (size_t)(n - 1) * ld_y, (size_t)sh.di * sizeof(float));
                    ssm_mixer_step(&ref, yr, ld_y, x_t, ld_xz, Sr.c, Sr.h, n, scratch);
                    /* against the reference mixer */
                    for (int i = 0; i < n; ++i) {
                        double e = rel_err(y1 + (size_t)i * ld_y, yr + (size_t)i * ld_y, (size_t)sh.di);
                        double eh = rel_err(S1.h[i], Sr.h[i], (size_t)sh.di * sh.ds);
                        double tol = q8 ? 5e-2 : 2e-5; /* int8: the projections' quantization */
                        if (!q8) {
                            worst_y = e > worst_y ? e : worst_y;
                            worst_h = eh > worst_h ? eh : worst_h;
                        } else {
                            worst_q = e > worst_q ? e : worst_q;
                        }
                        if (e > tol || eh > tol)
                            fail_msg("%s d_inner %d d_state %d batch %d step %d stream %d: y %.3g, state %.3g "
                                     "from the reference (tolerance %g)", ssm_isa_name(isas[v % COUNT(isas)]), sh.di,
                                     sh.ds, n, t, i, e, eh, tol);
                    }
                }
                ++n_cases;
                free_states(&S1);
                free_states(&S2);
                free_states(&Sa);
                free_states(&Sr);
            }
            free(xz); free(y1); free(y2); free(yr); free(ya); free(scratch);
        }
        free_layer(&L);
    }
    /* no streams: nothing touched */
    {
        layer L = make_layer(shapes[1]);
        ssm_mixer mx = mixer_of(&L, (int)SSM_ISA_SCALAR, 0);
        float y = 7.0f, xz = 1.0f, scratch = 0.0f;
        ssm_mixer_step(&mx, &y, 1, &xz, 1, NULL, NULL, 0, &scratch);
        assert_true(y == 7.0f);
        free_layer(&L);
    }
    printf("mixer step: %d cases (8 shapes x batches 1/3/8/9/17/37 x ISAs x fp32/int8 projections, "
           "6 steps each) equal to the stage-by-stage kernels bit for bit; vs the reference mixer: "
           "fp32 y %.3g, state %.3g normwise (tolerance 2e-5); int8 y %.3g (tolerance 5e-2)\n",
           n_cases, worst_y, worst_h, worst_q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mixer)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
