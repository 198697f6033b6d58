/* SPDX-License-Identifier: MIT */
/* Mamba-2 (SSD) kernels (ssm_kernels.h "Mamba-2"; arXiv:2405.21060,
 * mamba_ssm/modules/mamba2.py):
 *  - the scan step per head: every ISA's variant (ssm_scan_heads_step_get:
 *    explicit AVX2 for AVX2 and AVX-512, _vec for scalar) bit for bit equal
 *    to the _vec kernel, which is held to the plain-C reference on a cross product of awkward sizes (heads per group 1, 3, 17;
 *    n_groups 1, 2; head_dim 1, 7, 64; d_state 1, 16, 64, 128), 5 steps of 3
 *    streams, normwise relative error on y and on the states <= 2e-6; and
 *    against a float64 loop of the equations;
 *  - the chunked SSD form (ssm_ssd_chunk_f32) against the same frames stepped,
 *    from a non-zero state, for 1, 5, 64, 65 and 150 frames (one, two and
 *    three blocks): y and the final state within 1e-5;
 *  - the mixer step: a stream alone gives its bits inside a batch of 13
 *    (a full tile of 12 and one more); ISA mixer vs reference mixer within
 *    2e-6; the mixer's forward equals its steps bit for bit (ISA and
 *    reference), its chunked SSD forward within 1e-5;
 *  - the gated group RMSNorm against float64.
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

#define KT_SEED 0x2405210600000001ull
#include "kt_rand.h"

/* max |a − b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - (double)b[i]);
        num = d > num ? d : num;
        den = fabs((double)b[i]) > den ? fabs((double)b[i]) : den;
    }
    return den > 0 ? num / den : num;
}

static double rel_err_d(const float *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - b[i]);
        num = d > num ? d : num;
        den = fabs(b[i]) > den ? fabs(b[i]) : den;
    }
    return den > 0 ? num / den : num;
}

typedef struct geo {
    int H, P, G, N;
} geo;

/* S {H, P, N} ← one step in float64 (the equations of ssm_scan_heads_step_f32);
 * returns max_c Σ_n |S·C| + |D·x|, the scale of y's rounding (a sum of
 * random-sign terms may cancel far below its terms) */
static double step_f64(double *y, double *S, const float *x, const float *dt, const float *A,
                     const float *B, const float *C, const float *D, geo g)
{
    double scale = 0.0;
    for (int h = 0; h < g.H; ++h) {
        int gr = h / (g.H / g.G);
        double dA = exp((double)dt[h] * A[h]);
        for (int p = 0; p < g.P; ++p) {
            int c = h * g.P + p;
            double acc = 0.0, mag = fabs((double)D[h] * x[c]);
            for (int n = 0; n < g.N; ++n) {
                double *s = &S[(size_t)c * g.N + n];
                *s = dA * *s + (double)dt[h] * x[c] * B[gr * g.N + n];
                acc += *s * C[gr * g.N + n];
                mag += fabs(*s * C[gr * g.N + n]);
            }
            y[c] = acc + (double)D[h] * x[c];
            scale = mag > scale ? mag : scale;
        }
    }
    return scale;
}

static void test_scan_heads_vec_vs_ref(void **st)
{
    (void)st;
    static const int per_group[] = {1, 3, 17}, groups[] = {1, 2}, pdims[] = {1, 7, 64},
                     nstates[] = {1, 16, 64, 128};
    const int NS = 3, STEPS = 5;
    double worst_y = 0, worst_s = 0, worst_64 = 0;
    int n_cases = 0, n_isa = 0;
    /* every ISA's variant this CPU runs must give the _vec kernel's bits */
    ssm_scan_heads_step_fn vec = ssm_scan_heads_step_f32_vec, isa_fn[3];
    for (int i = SSM_ISA_SCALAR; i <= SSM_ISA_AVX512; ++i)
        if (ssm_isa_supported((ssm_isa)i))
            isa_fn[n_isa++] = ssm_scan_heads_step_get((ssm_isa)i);
    assert_ptr_equal(isa_fn[0], vec);
    for (int ig = 0; ig < 2; ++ig)
        for (int ih = 0; ih < 3; ++ih)
            for (int ip = 0; ip < 3; ++ip)
                for (int in = 0; in < 4; ++in) {
                    geo g = {per_group[ih] * groups[ig], pdims[ip], groups[ig], nstates[in]};
                    size_t di = (size_t)g.H * g.P, sn = di * g.N, gn = (size_t)g.G * g.N;
                    float *A = rand_vec((size_t)g.H, -8.0f, -0.5f);
                    float *D = rand_vec((size_t)g.H, 0.5f, 1.5f);
                    float *S1 = rand_vec(sn * NS, -1.0f, 1.0f), *S2 = malloc(sn * NS * 4);
                    float *S3 = malloc(sn * NS * 4 * 3), *y3 = malloc(di * NS * 4);
                    double *S64 = malloc(sn * 8), *y64 = malloc(di * 8);
                    float *y1 = malloc(di * NS * 4), *y2 = malloc(di * NS * 4);
                    memcpy(S2, S1, sn * NS * 4);
                    for (int i = 0; i < 3; ++i)
                        memcpy(S3 + i * sn * NS, S1, sn * NS * 4);
                    for (size_t i = 0; i < sn; ++i)
                        S64[i] = S1[i]; /* stream 0 in float64 */
                    float *p1[3], *p2[3];
                    for (int s = 0; s < NS; ++s) {
                        p1[s] = S1 + s * sn;
                        p2[s] = S2 + s * sn;
                    }
                    for (int t = 0; t < STEPS; ++t) {
                        /* B and C in one row {2·G·N} with a stride: as in xBC */
                        float *x = rand_vec(di * NS, -2.0f, 2.0f);
                        float *dt = rand_vec((size_t)g.H * NS, 0.001f, 0.5f);
                        float *bc = rand_vec(2 * gn * NS, -1.0f, 1.0f);
                        ssm_scan_heads_step_f32(y1, di, p1, x, di, dt, (size_t)g.H, A, bc, bc + gn,
                                                2 * gn, D, NS, g.H, g.P, g.G, g.N);
                        vec(y2, di, p2, x, di, dt, (size_t)g.H, A, bc, bc + gn, 2 * gn, D, NS,
                            g.H, g.P, g.G, g.N);
                        for (int i = 0; i < n_isa; ++i) {
                            float *p3[3];
                            for (int s = 0; s < NS; ++s)
                                p3[s] = S3 + (size_t)i * sn * NS + s * sn;
                            isa_fn[i](y3, di, p3, x, di, dt, (size_t)g.H, A, bc, bc + gn, 2 * gn, D,
                                      NS, g.H, g.P, g.G, g.N);
                            assert_memory_equal(y3, y2, di * NS * 4);
                            assert_memory_equal(S3 + (size_t)i * sn * NS, S2, sn * NS * 4);
                        }
                        double scale = step_f64(y64, S64, x, dt, A, bc, bc + gn, D, g);
                        double e = rel_err(y2, y1, di * NS);
                        worst_y = e > worst_y ? e : worst_y;
                        e = 0.0; /* max |y − y64| / scale */
                        for (size_t c = 0; c < di; ++c)
                            e = fmax(e, fabs((double)y1[c] - y64[c]) / scale);
                        worst_64 = e > worst_64 ? e : worst_64;
                        free(x);
                        free(dt);
                        free(bc);
                    }
                    double e = rel_err(S2, S1, sn * NS);
                    worst_s = e > worst_s ? e : worst_s;
                    if (worst_y > 2e-6 || worst_s > 2e-6 || worst_64 > 2e-6)
                        printf("FAIL at H=%d P=%d G=%d N=%d: y %.2e state %.2e ref-vs-f64 %.2e\n",
                               g.H, g.P, g.G, g.N, worst_y, worst_s, worst_64);
                    ++n_cases;
                    free(S3); free(y3);
                    free(A); free(D); free(S1); free(S2); free(S64); free(y64); free(y1); free(y2);
                }
    printf("scan per head, %d shapes x %d steps x %d streams: %d ISA variants == _vec "
           "(bitwise); vec vs ref y %.2e, state %.2e; ref vs float64 %.2e (of max Σ|S·C| + "
           "|D·x|; tolerance 2e-6)\n", n_cases, STEPS, NS, n_isa, worst_y, worst_s, worst_64);
    assert_true(worst_y <= 2e-6 && worst_s <= 2e-6 && worst_64 <= 2e-6);
}

static void test_ssd_chunk_vs_steps(void **st)
{
    (void)st;
    static const geo shapes[] = {{1, 1, 1, 1}, {3, 7, 1, 16}, {4, 16, 2, 64}, {2, 64, 2, 128},
                                 {17, 1, 1, 16}};
    static const int frames[] = {1, 5, 64, 65, 150};
    float *scratch = malloc(ssm_ssd_scratch_floats() * sizeof(float));
    double worst_y = 0, worst_s = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; ++k) {
        geo g = shapes[k];
        size_t di = (size_t)g.H * g.P, sn = di * g.N, gn = (size_t)g.G * g.N;
        float *A = rand_vec((size_t)g.H, -4.0f, -0.5f);
        float *D = rand_vec((size_t)g.H, 0.5f, 1.5f);
        for (size_t f = 0; f < sizeof frames / sizeof frames[0]; ++f) {
            int T = frames[f];
            float *x = rand_vec(di * T, -2.0f, 2.0f);
            float *dt = rand_vec((size_t)g.H * T, 0.001f, 0.3f);
            float *bc = rand_vec(2 * gn * T, -1.0f, 1.0f);
            float *S1 = rand_vec(sn, -1.0f, 1.0f), *S2 = malloc(sn * 4);
            float *y1 = malloc(di * T * 4), *y2 = malloc(di * T * 4);
            memcpy(S2, S1, sn * 4);
            for (int t = 0; t < T; ++t)
                ssm_scan_heads_step_f32(y1 + (size_t)t * di, di, &S1, x + (size_t)t * di, di,
                                        dt + (size_t)t * g.H, (size_t)g.H, A,
                                        bc + (size_t)t * 2 * gn, bc + (size_t)t * 2 * gn + gn,
                                        2 * gn, D, 1, g.H, g.P, g.G, g.N);
            ssm_ssd_chunk_f32(y2, di, S2, x, di, dt, (size_t)g.H, A, bc, bc + gn, 2 * gn, D, T,
                              g.H, g.P, g.G, g.N, scratch);
            double ey = rel_err(y2, y1, di * T), es = rel_err(S2, S1, sn);
            if (ey > 1e-5 || es > 1e-5)
                printf("FAIL at H=%d P=%d G=%d N=%d T=%d: y %.2e state %.2e\n", g.H, g.P, g.G,
                       g.N, T, ey, es);
            worst_y = ey > worst_y ? ey : worst_y;
            worst_s = es > worst_s ? es : worst_s;
            free(x); free(dt); free(bc); free(S1); free(S2); free(y1); free(y2);
        }
        free(A);
        free(D);
    }
    free(scratch);
    printf("chunked SSD vs steps (1..150 frames, 5 shapes): y %.2e, final state %.2e "
           "(tolerance 1e-5)\n", worst_y, worst_s);
    assert_true(worst_y <= 1e-5 && worst_s <= 1e-5);
}

typedef struct layer2 {
    ssm_mixer2 mx;
    float *conv_w, *conv_b, *dt_b, *A, *D, *nw;
} layer2;

static layer2 make_layer2(int H, int P, int G, int N, int K)
{
    layer2 L;
    int di = H * P, cd = di + 2 * G * N;
    L.conv_w = rand_vec((size_t)cd * K, -0.5f, 0.5f);
    L.conv_b = rand_vec((size_t)cd, -0.2f, 0.2f);
    L.dt_b = rand_vec((size_t)H, -4.0f, -1.0f);
    L.A = rand_vec((size_t)H, -8.0f, -0.5f);
    L.D = rand_vec((size_t)H, 0.5f, 1.5f);
    L.nw = rand_vec((size_t)di, 0.8f, 1.2f);
    L.mx = (ssm_mixer2){.d_inner = di, .d_state = N, .d_conv = K, .n_heads = H, .head_dim = P,
                        .n_groups = G, .conv_w = L.conv_w, .conv_b = L.conv_b, .dt_bias = L.dt_b,
                        .A = L.A, .D = L.D, .norm_w = L.nw, .norm_eps = 1e-5f};
    return L;
}

static void free_layer2(layer2 *L)
{
    free(L->conv_w); free(L->conv_b); free(L->dt_b); free(L->A); free(L->D); free(L->nw);
}

static void test_mixer2(void **st)
{
    (void)st;
    static const int shp[][5] = {{1, 1, 1, 1, 4}, {3, 7, 1, 16, 4}, {6, 16, 2, 64, 3},
                                 {2, 64, 2, 128, 1}, {17, 1, 1, 16, 5}};
    double worst_ref = 0, worst_fw = 0;
    for (size_t k = 0; k < sizeof shp / sizeof shp[0]; ++k) {
        const int NS = 13, T = 70;
        layer2 L = make_layer2(shp[k][0], shp[k][1], shp[k][2], shp[k][3], shp[k][4]);
        ssm_mixer2 isa = L.mx, ref = L.mx;
        ssm_mixer2_set_isa(&isa, ssm_isa_best());
        ssm_mixer2_set_reference(&ref);
        int di = L.mx.d_inner, cd = di + 2 * L.mx.n_groups * L.mx.d_state, nh = L.mx.n_heads;
        size_t nin = (size_t)di + cd + nh, csz = (size_t)cd * L.mx.d_conv,
               ssz = (size_t)di * L.mx.d_state;
        float *scratch = malloc(ssm_mixer2_scratch_floats(&L.mx) * sizeof(float));
        /* four sets of NS streams: isa batch, reference batch, the last stream
         * alone (a tile of its own in the batch), the first alone (in a full tile) */
        float *conv = calloc(4 * NS * csz, 4), *ssm = calloc(4 * NS * ssz, 4);
        float *cp[4][13], *sp[4][13];
        for (int r = 0; r < 4; ++r)
            for (int s = 0; s < NS; ++s) {
                cp[r][s] = conv + ((size_t)r * NS + s) * csz;
                sp[r][s] = ssm + ((size_t)r * NS + s) * ssz;
            }
        float *in = malloc(nin * NS * T * 4), *y0 = malloc((size_t)di * NS * 4),
              *y1 = malloc((size_t)di * NS * 4), *y2 = malloc((size_t)di * 4);
        float *ys = malloc((size_t)di * T * 4); /* stream 0 stepped, for the forward */
        for (size_t i = 0; i < nin * NS * T; ++i)
            in[i] = frand(-2.0f, 2.0f);
        int same = 1;
        for (int t = 0; t < T; ++t) {
            const float *row = in + (size_t)t * NS * nin;
            ssm_mixer2_step(&isa, y0, (size_t)di, row, nin, cp[0], sp[0], NS, scratch);
            ssm_mixer2_step(&ref, y1, (size_t)di, row, nin, cp[1], sp[1], NS, scratch);
            ssm_mixer2_step(&isa, y2, (size_t)di, row + (NS - 1) * nin, nin, &cp[2][NS - 1],
                            &sp[2][NS - 1], 1, scratch);
            same = same && memcmp(y2, y0 + (size_t)(NS - 1) * di, (size_t)di * 4) == 0;
            ssm_mixer2_step(&isa, y2, (size_t)di, row, nin, &cp[3][0], &sp[3][0], 1, scratch);
            same = same && memcmp(y2, y0, (size_t)di * 4) == 0;
            memcpy(ys + (size_t)t * di, y0, (size_t)di * 4);
            double e = rel_err(y0, y1, (size_t)di * NS);
            worst_ref = e > worst_ref ? e : worst_ref;
        }
        double e = rel_err(ssm, ssm + (size_t)NS * ssz, (size_t)NS * ssz);
        worst_ref = e > worst_ref ? e : worst_ref;
        assert_true(same);
        /* stream 0's frames as one forward: frame by frame (the steps' bits),
         * in the chunked SSD form (within 1e-5), and the reference forward */
        float *inf = malloc(nin * T * 4), *yf = malloc((size_t)di * T * 4);
        for (int t = 0; t < T; ++t)
            memcpy(inf + (size_t)t * nin, in + (size_t)t * NS * nin, nin * 4);
        float *c2 = calloc(csz, 4), *s2 = calloc(ssz, 4);
        ssm_mixer2_forward(&isa, yf, (size_t)di, inf, nin, c2, s2, T, scratch);
        assert_memory_equal(yf, ys, (size_t)di * T * 4);
        assert_memory_equal(s2, sp[0][0], ssz * 4);
        assert_memory_equal(c2, cp[0][0], csz * 4);
        ssm_mixer2 ssd = isa;
        ssd.chunked = 1;
        memset(c2, 0, csz * 4);
        memset(s2, 0, ssz * 4);
        ssm_mixer2_forward(&ssd, yf, (size_t)di, inf, nin, c2, s2, T, scratch);
        double ef = rel_err(yf, ys, (size_t)di * T), es = rel_err(s2, sp[0][0], ssz);
        worst_fw = ef > worst_fw ? ef : worst_fw;
        worst_fw = es > worst_fw ? es : worst_fw;
        assert_memory_equal(c2, cp[0][0], csz * 4);
        /* the reference forward walks the frames: the reference steps' bits */
        float *yr = malloc((size_t)di * T * 4), *yrs = malloc((size_t)di * T * 4);
        memset(c2, 0, csz * 4);
        memset(s2, 0, ssz * 4);
        ssm_mixer2_forward(&ref, yr, (size_t)di, inf, nin, c2, s2, T, scratch);
        float *c3 = calloc(csz, 4), *s3 = calloc(ssz, 4);
        for (int t = 0; t < T; ++t)
            ssm_mixer2_step(&ref, yrs + (size_t)t * di, (size_t)di, inf + (size_t)t * nin, nin,
                            &c3, &s3, 1, scratch);
        assert_memory_equal(yr, yrs, (size_t)di * T * 4);
        assert_memory_equal(s2, s3, ssz * 4);
        free(yr); free(yrs); free(c3); free(s3);
        free(inf); free(yf); free(c2); free(s2);
        free(in); free(y0); free(y1); free(y2); free(ys); free(conv); free(ssm); free(scratch);
        free_layer2(&L);
    }
    printf("mixer2 over 70 steps of 13 streams, 5 shapes: batch 13 == alone (first and last "
           "stream, bitwise) yes; "
           "isa vs reference %.2e (tolerance 2e-6); forward == steps (bitwise, isa and "
           "reference); SSD forward vs steps %.2e (1e-5)\n", worst_ref, worst_fw);
    assert_true(worst_ref <= 2e-6 && worst_fw <= 1e-5);
}

static void test_rmsnorm_gated(void **st)
{
    (void)st;
    static const int dims[][2] = {{1, 1}, {7, 1}, {64, 2}, {96, 3}, {253, 11}};
    double worst = 0;
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; ++k) {
        int dim = dims[k][0], G = dims[k][1], n = 3, gs = dim / G;
        float *y = rand_vec((size_t)dim * n, -3.0f, 3.0f), *z = rand_vec((size_t)dim * n, -3.0f, 3.0f);
        float *w = rand_vec((size_t)dim, 0.5f, 1.5f);
        double *ref = malloc((size_t)dim * n * 8);
        for (int i = 0; i < n; ++i)
            for (int g = 0; g < G; ++g) {
                double ss = 0;
                for (int c = g * gs; c < (g + 1) * gs; ++c) {
                    double zz = z[i * dim + c], v = y[i * dim + c] * zz / (1.0 + exp(-zz));
                    ref[i * dim + c] = v;
                    ss += v * v;
                }
                double r = 1.0 / sqrt(ss / gs + 1e-5);
                for (int c = g * gs; c < (g + 1) * gs; ++c)
                    ref[i * dim + c] *= r * w[c];
            }
        ssm_rmsnorm_gated_f32(y, (size_t)dim, z, (size_t)dim, w, n, dim, G, 1e-5f, ssm_gate_silu_f32);
        double e = rel_err_d(y, ref, (size_t)dim * n);
        worst = e > worst ? e : worst;
        free(y); free(z); free(w); free(ref);
    }
    printf("gated group RMSNorm vs float64: %.2e (tolerance 1e-6)\n", worst);
    assert_true(worst <= 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_heads_vec_vs_ref),
        cmocka_unit_test(test_ssd_chunk_vs_steps),
        cmocka_unit_test(test_mixer2),
        cmocka_unit_test(test_rmsnorm_gated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
