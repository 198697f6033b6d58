/* SPDX-License-Identifier: MIT */
/* tests/gpu: the CUDA kernels and the CUDA backend of model/ against the CPU.
 *
 * Oracle: the plain-C reference kernels (kernels/cpu/ssm_kernels_ref.c) for
 * the kernel tests, and the CPU backend (default runner, itself held to a
 * float64 numpy reference by tests/model) for the model tests.  Error measure
 * for every comparison: max over elements of |gpu − cpu| / (1 + |cpu|).
 * Tolerances: 2e-5 for one kernel call (expf/log1pf on the GPU are within 2
 * ulp; FMA contraction reorders a few roundings), 1e-4 for whole models over
 * many steps (cuBLAS sums dot products in its own order), 3e-2 for bf16
 * weights (8 significand bits).  Every case prints its figure.
 *
 * Without a usable device the program prints "SKIP: <reason>" and exits 77,
 * which meson reports as SKIP (never as a pass).
 *
 * Usage: test_cuda MODEL_DIR DEFAULT_MODEL
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cuda_runtime.h>

#include "kernels/ssm_kernels.h"
#include "kernels/ssm_kernels_cuda.h"
#include "model_internal.h"
#include "ssm/model.h"

static const char *g_dir;
static const char *g_default;

#define GPU_TEST_SEED 0x9e3779b97f4a7c15ull
#include "gpu_test_util.h"

static void up(void *d, const void *h, size_t n)
{
    assert_int_equal(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice), cudaSuccess);
}

static void down(void *h, const void *d, size_t n)
{
    assert_int_equal(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* ---- kernels ----------------------------------------------------------- */

/* One conv + scan case: n_streams streams of n_frames frames, states laid
 * out as model/ does (conv {di, dc} then ssm {di, N}) with a stride, both
 * kernels against the reference applied frame by frame. */
static void kernel_case(int di, int N, int dc, int S, int T, double *worst_conv,
                        double *worst_scan)
{
    /* per-stream stride: rounded to 4 floats (16-byte aligned states when the
     * conv part is) or odd (misaligned: the scan's scalar fallback) */
    size_t rows = (size_t)S * T, per = (size_t)di * (dc + N);
    per = T == 1 ? (per + 3) / 4 * 4 : per + 3;
    float *x = xmalloc(rows * di * 4), *z = xmalloc(rows * di * 4), *dt = xmalloc(rows * di * 4);
    float *bc = xmalloc(rows * 2 * N * 4), *w = xmalloc((size_t)di * dc * 4);
    float *cb = xmalloc((size_t)di * 4), *dtb = xmalloc((size_t)di * 4);
    float *A = xmalloc((size_t)di * N * 4), *D = xmalloc((size_t)di * 4);
    float *st = xmalloc((size_t)S * per * 4), *st_gpu = xmalloc((size_t)S * per * 4);
    float *xc = xmalloc(rows * di * 4), *y = xmalloc(rows * di * 4), *dts = xmalloc(rows * di * 4);
    float *xc_gpu = xmalloc(rows * di * 4), *y_gpu = xmalloc(rows * di * 4);
    fill(x, rows * di, -2, 2);
    fill(z, rows * di, -3, 3);
    fill(dt, rows * di, -5, 1);
    fill(bc, rows * 2 * N, -1, 1);
    fill(w, (size_t)di * dc, -1, 1);
    fill(cb, (size_t)di, -0.5f, 0.5f);
    fill(dtb, (size_t)di, -1, 1);
    for (size_t i = 0; i < (size_t)di * N; ++i)
        A[i] = -expf(frand(-1, 2.5f));
    fill(D, (size_t)di, -1, 1);
    fill(st, (size_t)S * per, -1, 1);

    /* GPU */
    float *d_x = dmalloc(rows * di * 4), *d_z = dmalloc(rows * di * 4);
    float *d_dt = dmalloc(rows * di * 4), *d_bc = dmalloc(rows * 2 * N * 4);
    float *d_w = dmalloc((size_t)di * dc * 4), *d_cb = dmalloc((size_t)di * 4);
    float *d_dtb = dmalloc((size_t)di * 4), *d_A = dmalloc((size_t)di * N * 4);
    float *d_D = dmalloc((size_t)di * 4), *d_st = dmalloc((size_t)S * per * 4);
    float *d_xc = dmalloc(rows * di * 4), *d_y = dmalloc(rows * di * 4);
    float **d_ptr = dmalloc((size_t)S * sizeof(float *));
    float **h_ptr = xmalloc((size_t)S * sizeof(float *));
    for (int s = 0; s < S; ++s)
        h_ptr[s] = d_st + (size_t)s * per;
    up(d_ptr, h_ptr, (size_t)S * sizeof(float *));
    up(d_x, x, rows * di * 4);
    up(d_z, z, rows * di * 4);
    up(d_dt, dt, rows * di * 4);
    up(d_bc, bc, rows * 2 * N * 4);
    up(d_w, w, (size_t)di * dc * 4);
    up(d_cb, cb, (size_t)di * 4);
    up(d_dtb, dtb, (size_t)di * 4);
    up(d_A, A, (size_t)di * N * 4);
    up(d_D, D, (size_t)di * 4);
    up(d_st, st, (size_t)S * per * 4);
    float dA_min = (di % 2) ? -INFINITY : -6.0f;
    assert_int_equal(ssm_cuda_conv(d_xc, di, d_ptr, 0, d_x, di, d_w, d_cb, S, T, di, dc, NULL), 0);
    assert_int_equal(ssm_cuda_scan(d_y, di, d_ptr, (size_t)di * dc, d_xc, di, d_dt, di, d_dtb, d_A,
                                   d_bc, d_bc + N, 2 * (size_t)N, d_D, d_z, di, dA_min, S, T, di,
                                   N, NULL),
                     0);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    down(xc_gpu, d_xc, rows * di * 4);
    down(y_gpu, d_y, rows * di * 4);
    down(st_gpu, d_st, (size_t)S * per * 4);

    /* CPU reference, frame by frame */
    for (int s = 0; s < S; ++s) {
        float *conv = st + (size_t)s * per, *ssm = conv + (size_t)di * dc;
        for (int t = 0; t < T; ++t) {
            size_t r = (size_t)s * T + t;
            ssm_conv_step_f32(xc + r * di, di, &conv, x + r * di, di, w, cb, 1, di, dc);
        }
        for (int t = 0; t < T; ++t) {
            size_t r = (size_t)s * T + t;
            /* the scan reads the GPU's conv output so each kernel is judged alone */
            ssm_softplus_f32(dts + r * di, di, dt + r * di, di, dtb, 1, di);
            ssm_scan_step_f32(y + r * di, di, &ssm, xc_gpu + r * di, di, dts + r * di, di, A,
                              bc + r * 2 * N, bc + r * 2 * N + N, 2 * (size_t)N, D, dA_min, 1,
                              di, N);
            ssm_gate_silu_f32(y + r * di, di, z + r * di, di, 1, di);
        }
    }
    double ec = err_of(xc_gpu, xc, rows * di), es = err_of(y_gpu, y, rows * di);
    double est = err_of(st_gpu, st, (size_t)S * per);
    if (est > es)
        es = est;
    if (ec > *worst_conv)
        *worst_conv = ec;
    if (es > *worst_scan)
        *worst_scan = es;
    if (ec > 2e-5 || es > 2e-5)
        fail_msg("d_inner %d d_state %d d_conv %d streams %d frames %d: conv %.3g scan %.3g "
                 "(tol 2e-5)", di, N, dc, S, T, ec, es);
    void *dev[] = {d_x, d_z, d_dt, d_bc, d_w, d_cb, d_dtb, d_A, d_D, d_st, d_xc, d_y, d_ptr};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
        cudaFree(dev[i]);
    void *host[] = {x, z, dt, bc, w, cb, dtb, A, D, st, st_gpu, xc, y, dts, xc_gpu, y_gpu, h_ptr};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
}

static void test_kernels_awkward(void **state)
{
    (void)state;
    static const int dis[] = {1, 7, 253}, Ns[] = {1, 4, 5, 16, 33, 64, 256}, dcs[] = {1, 4, 16};
    static const int Ss[] = {1, 3, 65}, Ts[] = {1, 7};
    double wc = 0, ws = 0;
    int n = 0;
    for (size_t a = 0; a < 3; ++a)
        for (size_t b = 0; b < 7; ++b)
            for (size_t c = 0; c < 3; ++c)
                for (size_t d = 0; d < 3; ++d)
                    for (size_t e = 0; e < 2; ++e) {
                        kernel_case(dis[a], Ns[b], dcs[c], Ss[d], Ts[e], &wc, &ws);
                        ++n;
                    }
    printf("kernels: %d awkward cases (d_inner 1/7/253, d_state 1/4/5/16/33/64/256, d_conv 1/4/16, "
           "streams 1/3/65, frames 1/7): worst conv %.3g, scan %.3g (tol 2e-5)\n", n, wc, ws);
    /* the scan's other lane layout (4 state elements per lane) */
    int prev = ssm_cuda_scan_set_elems_per_lane(4);
    wc = ws = 0;
    for (size_t b = 0; b < 7; ++b)
        for (size_t d = 0; d < 3; ++d)
            kernel_case(253, Ns[b], 4, Ss[d], 3, &wc, &ws);
    ssm_cuda_scan_set_elems_per_lane(prev);
    printf("kernels, 4 state elements per lane: d_inner 253, d_state 1..256, streams 1/3/65, "
           "3 frames: worst scan %.3g (tol 2e-5)\n", ws);
}

static void test_kernels_large_batch(void **state)
{
    (void)state;
    double wc = 0, ws = 0;
    kernel_case(7, 16, 4, 65536, 1, &wc, &ws);
    kernel_case(33, 16, 4, 4099, 3, &wc, &ws);
    printf("kernels: 65536 streams × d_inner 7 and 4099 streams × 3 frames × d_inner 33: worst "
           "conv %.3g, scan %.3g (tol 2e-5)\n", wc, ws);
}

static void test_kernels_bad_sizes(void **state)
{
    (void)state;
    assert_int_not_equal(ssm_cuda_scan(NULL, 1, NULL, 0, NULL, 1, NULL, 1, NULL, NULL, NULL, NULL,
                                       1, NULL, NULL, 1, 0, 1, 1, 1, 257, NULL), 0);
    assert_int_not_equal(ssm_cuda_conv(NULL, 1, NULL, 0, NULL, 1, NULL, NULL, 1, 1, 1, 17, NULL), 0);
    assert_int_not_equal(ssm_cuda_rmsnorm(NULL, 1, NULL, 1, NULL, 0, 1, 1e-5f, NULL), 0);
    (void)cudaGetLastError();
}

/* ---- model: CUDA backend vs CPU backend ---------------------------------- */

typedef struct pair {
    ssm_model *cpu, *gpu;
    int d_model, nf, V, nm;
    unsigned heads;
} pair;

static ssm_model *load_backend(const char *path, int backend)
{
    ssm_model_options o = {.backend = backend};
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(path, &o, &m, &err) != SSM_OK)
        fail_msg("%s", err.msg);
    return m;
}

static void pair_load(pair *p, const char *path)
{
    p->cpu = load_backend(path, SSM_BACKEND_CPU);
    p->gpu = load_backend(path, SSM_BACKEND_CUDA);
    assert_string_equal(ssm_model_backend(p->gpu), "cuda");
    p->d_model = ssm_model_d_model(p->cpu);
    p->nf = ssm_model_n_features(p->cpu);
    p->V = ssm_model_vocab_size(p->cpu);
    p->nm = ssm_model_n_mask(p->cpu);
    p->heads = ssm_model_heads(p->cpu);
}

static void pair_free(pair *p)
{
    ssm_model_free(p->cpu);
    ssm_model_free(p->gpu);
}

typedef struct outs {
    float *mask, *vad, *logits, *emb;
    ssm_outputs o;
} outs;

static void outs_make(outs *o, const pair *p, size_t rows)
{
    memset(o, 0, sizeof *o);
    if (p->heads & SSM_MODEL_HEAD_MASK)
        o->o.mask = o->mask = xmalloc(rows * p->nm * 4);
    if (p->heads & SSM_MODEL_HEAD_VAD)
        o->o.vad = o->vad = xmalloc(rows * 4);
    if (p->heads & SSM_MODEL_HEAD_LM)
        o->o.logits = o->logits = xmalloc(rows * p->V * 4);
    o->o.embedding = o->emb = xmalloc(rows * p->d_model * 4);
}

static void outs_free(outs *o)
{
    free(o->mask);
    free(o->vad);
    free(o->logits);
    free(o->emb);
}

static double outs_err(const outs *g, const outs *c, const pair *p, size_t rows)
{
    double e = err_of(g->emb, c->emb, rows * p->d_model), t;
    if (g->mask && (t = err_of(g->mask, c->mask, rows * p->nm)) > e)
        e = t;
    if (g->vad && (t = err_of(g->vad, c->vad, rows)) > e)
        e = t;
    if (g->logits && (t = err_of(g->logits, c->logits, rows * p->V)) > e)
        e = t;
    return e;
}

static void inputs(const pair *p, size_t rows, float *f, int32_t *tok)
{
    if (p->nf)
        fill(f, rows * p->nf, -2, 2);
    else if (tok)
        for (size_t i = 0; i < rows; ++i)
            tok[i] = (int32_t)(frand(0, 1) * p->V) % p->V;
}

static double states_err(ssm_state *const *g, ssm_state *const *c, int n, const ssm_model *m)
{
    size_t bytes = ssm_state_bytes(m);
    unsigned char *bg = xmalloc(bytes), *bcpu = xmalloc(bytes);
    double worst = 0;
    for (int i = 0; i < n; ++i) {
        assert_int_equal(ssm_state_snapshot(g[i], bg, bytes, NULL), SSM_OK);
        assert_int_equal(ssm_state_snapshot(c[i], bcpu, bytes, NULL), SSM_OK);
        double e = err_of((float *)(bg + 64), (float *)(bcpu + 64), (bytes - 64) / 4);
        if (e > worst)
            worst = e;
    }
    free(bg);
    free(bcpu);
    return worst;
}

/* Steps B streams for n_steps on both backends; returns the worst error of
 * outputs and final states. */
static double compare_steps(const char *path, int B, int n_steps, unsigned gpu_flags)
{
    pair p;
    pair_load(&p, path);
    ssm_runner *rc = NULL, *rg = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_runner_create(p.cpu, B, 1, 0, &rc, &err), SSM_OK);
    if (ssm_runner_create(p.gpu, B, 1, gpu_flags, &rg, &err) != SSM_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(ssm_runner_isa(rg), "cuda");
    ssm_state **sc = xmalloc((size_t)B * sizeof *sc), **sg = xmalloc((size_t)B * sizeof *sg);
    for (int i = 0; i < B; ++i) {
        assert_int_equal(ssm_state_create(p.cpu, &sc[i]), SSM_OK);
        assert_int_equal(ssm_state_create(p.gpu, &sg[i]), SSM_OK);
    }
    float *f = xmalloc((size_t)B * (p.nf ? p.nf : 1) * 4);
    int32_t *tok = xmalloc((size_t)B * 4);
    outs oc, og;
    outs_make(&oc, &p, (size_t)B);
    outs_make(&og, &p, (size_t)B);
    double worst = 0;
    for (int t = 0; t < n_steps; ++t) {
        inputs(&p, (size_t)B, f, tok);
        assert_int_equal(ssm_step(rc, sc, B, f, tok, &oc.o, NULL), SSM_OK);
        assert_int_equal(ssm_step(rg, sg, B, f, tok, &og.o, NULL), SSM_OK);
        double e = outs_err(&og, &oc, &p, (size_t)B);
        if (e > worst)
            worst = e;
    }
    double es = states_err(sg, sc, B, p.cpu);
    if (es > worst)
        worst = es;
    for (int i = 0; i < B; ++i) {
        ssm_state_destroy(sc[i]);
        ssm_state_destroy(sg[i]);
    }
    free(sc);
    free(sg);
    free(f);
    free(tok);
    outs_free(&oc);
    outs_free(&og);
    ssm_runner_destroy(rc);
    ssm_runner_destroy(rg);
    pair_free(&p);
    return worst;
}

static char *model_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

static void test_model_steps(void **state)
{
    (void)state;
    static const char *names[] = {"feat.safetensors", "tok.safetensors", "odd.safetensors",
                                  "tiny.safetensors"};
    static const int Bs[] = {1, 2, 65, 1000};
    for (size_t i = 0; i < 4; ++i) {
        double worst = 0;
        for (size_t b = 0; b < 4; ++b) {
            double e = compare_steps(model_path(names[i]), Bs[b], 20, 0);
            if (e > worst)
                worst = e;
        }
        printf("model %s: batches 1/2/65/1000 × 20 steps, outputs and states: worst %.3g "
               "(tol 1e-4)\n", names[i], worst);
        assert_true(worst <= 1e-4);
    }
    double e = compare_steps(g_default, 64, 50, 0);
    printf("model default.safetensors: 64 streams × 50 steps: worst %.3g (tol 1e-4)\n", e);
    assert_true(e <= 1e-4);
}

static void test_model_batch_65536(void **state)
{
    (void)state;
    double e = compare_steps(model_path("feat.safetensors"), 65536, 3, 0);
    printf("model feat.safetensors: 65536 streams × 3 steps: worst %.3g (tol 1e-4)\n", e);
    assert_true(e <= 1e-4);
}

/* Graph replay and one-by-one launches give the same bits. */
static void test_graph_equals_launches(void **state)
{
    (void)state;
    const char *path = model_path("odd.safetensors");
    ssm_model *m = load_backend(path, SSM_BACKEND_CUDA);
    pair p = {.cpu = m, .gpu = m};
    p.d_model = ssm_model_d_model(m);
    p.nf = ssm_model_n_features(m);
    p.nm = ssm_model_n_mask(m);
    p.heads = ssm_model_heads(m);
    const int B = 33;
    ssm_runner *ra = NULL, *rb = NULL;
    assert_int_equal(ssm_runner_create(m, B, 1, 0, &ra, NULL), SSM_OK);
    assert_int_equal(ssm_runner_create(m, B, 1, SSM_RUNNER_NO_GRAPH, &rb, NULL), SSM_OK);
    ssm_state *sa[33], *sb[33];
    for (int i = 0; i < B; ++i) {
        assert_int_equal(ssm_state_create(m, &sa[i]), SSM_OK);
        assert_int_equal(ssm_state_create(m, &sb[i]), SSM_OK);
    }
    float *f = xmalloc((size_t)B * p.nf * 4);
    outs oa, ob;
    outs_make(&oa, &p, B);
    outs_make(&ob, &p, B);
    int differ = 0;
    for (int t = 0; t < 10; ++t) {
        inputs(&p, B, f, NULL);
        /* the graph path re-captures when the batch changes: vary it */
        int n = t % 3 == 2 ? B - 5 : B;
        assert_int_equal(ssm_step(ra, sa, n, f, NULL, &oa.o, NULL), SSM_OK);
        assert_int_equal(ssm_step(rb, sb, n, f, NULL, &ob.o, NULL), SSM_OK);
        assert_true(ssm_runner_cuda_graphed_(ra) >= 1);
        assert_int_equal(ssm_runner_cuda_graphed_(rb), 0);
        differ += memcmp(oa.emb, ob.emb, (size_t)n * p.d_model * 4) != 0;
        differ += memcmp(oa.mask, ob.mask, (size_t)n * p.nm * 4) != 0;
    }
    printf("graph vs launches: 10 steps (batches 33 and 28): %d output blocks differ; one graph "
           "launch per step, %d nodes for 3 layers\n", differ, ssm_runner_cuda_graphed_(ra));
    assert_int_equal(differ, 0);
    for (int i = 0; i < B; ++i) {
        ssm_state_destroy(sa[i]);
        ssm_state_destroy(sb[i]);
    }
    free(f);
    outs_free(&oa);
    outs_free(&ob);
    ssm_runner_destroy(ra);
    ssm_runner_destroy(rb);
    ssm_model_free(m);
}

/* Chunked scan from a given state: CUDA forward vs CPU forward, and vs the
 * CUDA step (the 1e-5 for offline chunks vs frame-by-frame). */
static void test_forward(void **state)
{
    (void)state;
    static const char *names[] = {"feat.safetensors", "odd.safetensors", "tok.safetensors"};
    static const int Ts[] = {1, 7, 64, 300};
    double w_cpu = 0, w_step = 0;
    for (size_t i = 0; i < 3; ++i) {
        pair p;
        pair_load(&p, model_path(names[i]));
        ssm_runner *rc, *rg, *rs;
        assert_int_equal(ssm_runner_create(p.cpu, 1, 300, 0, &rc, NULL), SSM_OK);
        assert_int_equal(ssm_runner_create(p.gpu, 1, 300, 0, &rg, NULL), SSM_OK);
        assert_int_equal(ssm_runner_create(p.gpu, 1, 1, 0, &rs, NULL), SSM_OK);
        ssm_state *sc, *sg, *ss;
        assert_int_equal(ssm_state_create(p.cpu, &sc), SSM_OK);
        assert_int_equal(ssm_state_create(p.gpu, &sg), SSM_OK);
        assert_int_equal(ssm_state_create(p.gpu, &ss), SSM_OK);
        float *f = xmalloc(300 * (size_t)(p.nf ? p.nf : 1) * 4);
        int32_t *tok = xmalloc(300 * 4);
        outs oc, og, os, o1;
        outs_make(&oc, &p, 300);
        outs_make(&og, &p, 300);
        outs_make(&os, &p, 300);
        outs_make(&o1, &p, 1);
        for (size_t k = 0; k < 4; ++k) {
            int T = Ts[k];
            inputs(&p, (size_t)T, f, tok);
            assert_int_equal(ssm_forward(rc, sc, T, f, tok, &oc.o, NULL), SSM_OK);
            assert_int_equal(ssm_forward(rg, sg, T, f, tok, &og.o, NULL), SSM_OK);
            for (int t = 0; t < T; ++t) {
                assert_int_equal(ssm_step(rs, &ss, 1, p.nf ? f + (size_t)t * p.nf : NULL,
                                          tok + t, &o1.o, NULL),
                                 SSM_OK);
                memcpy(os.emb + (size_t)t * p.d_model, o1.emb, (size_t)p.d_model * 4);
                if (os.mask)
                    memcpy(os.mask + (size_t)t * p.nm, o1.mask, (size_t)p.nm * 4);
                if (os.vad)
                    os.vad[t] = o1.vad[0];
                if (os.logits)
                    memcpy(os.logits + (size_t)t * p.V, o1.logits, (size_t)p.V * 4);
            }
            double e = outs_err(&og, &oc, &p, (size_t)T), es = outs_err(&og, &os, &p, (size_t)T);
            if (e > w_cpu)
                w_cpu = e;
            if (es > w_step)
                w_step = es;
        }
        double e = states_err(&sg, &sc, 1, p.cpu), es = states_err(&sg, &ss, 1, p.cpu);
        if (e > w_cpu)
            w_cpu = e;
        if (es > w_step)
            w_step = es;
        ssm_state_destroy(sc);
        ssm_state_destroy(sg);
        ssm_state_destroy(ss);
        free(f);
        free(tok);
        outs_free(&oc);
        outs_free(&og);
        outs_free(&os);
        outs_free(&o1);
        ssm_runner_destroy(rc);
        ssm_runner_destroy(rg);
        ssm_runner_destroy(rs);
        pair_free(&p);
    }
    printf("forward (chunks 1/7/64/300 resuming the state, 3 models): vs CPU forward %.3g (tol "
           "1e-4), vs CUDA steps %.3g (tol 1e-5)\n", w_cpu, w_step);
    assert_true(w_cpu <= 1e-4);
    assert_true(w_step <= 1e-5);
}

/* Snapshots cross backends: a CUDA state continues on the CPU and back. */
static void test_snapshot_cross(void **state)
{
    (void)state;
    pair p;
    pair_load(&p, model_path("odd.safetensors"));
    ssm_runner *rc, *rg;
    assert_int_equal(ssm_runner_create(p.cpu, 1, 1, 0, &rc, NULL), SSM_OK);
    assert_int_equal(ssm_runner_create(p.gpu, 1, 1, 0, &rg, NULL), SSM_OK);
    ssm_state *sc, *sg;
    assert_int_equal(ssm_state_create(p.cpu, &sc), SSM_OK);
    assert_int_equal(ssm_state_create(p.gpu, &sg), SSM_OK);
    assert_null(ssm_state_init(p.gpu, NULL, 0));
    size_t bytes = ssm_state_bytes(p.gpu);
    assert_int_equal(bytes, ssm_state_bytes(p.cpu));
    unsigned char *buf = xmalloc(bytes);
    float f[64];
    outs oc, og;
    outs_make(&oc, &p, 1);
    outs_make(&og, &p, 1);
    for (int t = 0; t < 15; ++t) { /* GPU alone */
        inputs(&p, 1, f, NULL);
        assert_int_equal(ssm_step(rg, &sg, 1, f, NULL, &og.o, NULL), SSM_OK);
    }
    size_t wrote = 0;
    assert_int_equal(ssm_state_snapshot(sg, buf, bytes, &wrote), SSM_OK);
    assert_int_equal(wrote, bytes);
    assert_int_equal(ssm_state_restore(sc, buf, bytes), SSM_OK);
    double worst = 0;
    for (int t = 0; t < 15; ++t) {
        inputs(&p, 1, f, NULL);
        assert_int_equal(ssm_step(rg, &sg, 1, f, NULL, &og.o, NULL), SSM_OK);
        assert_int_equal(ssm_step(rc, &sc, 1, f, NULL, &oc.o, NULL), SSM_OK);
        double e = outs_err(&og, &oc, &p, 1);
        if (e > worst)
            worst = e;
    }
    /* and back: CPU state into the GPU, then one step each */
    assert_int_equal(ssm_state_snapshot(sc, buf, bytes, NULL), SSM_OK);
    assert_int_equal(ssm_state_restore(sg, buf, bytes), SSM_OK);
    inputs(&p, 1, f, NULL);
    assert_int_equal(ssm_step(rg, &sg, 1, f, NULL, &og.o, NULL), SSM_OK);
    assert_int_equal(ssm_step(rc, &sc, 1, f, NULL, &oc.o, NULL), SSM_OK);
    double e = outs_err(&og, &oc, &p, 1);
    if (e > worst)
        worst = e;
    /* a corrupted snapshot leaves the device state untouched */
    buf[100] ^= 1;
    assert_int_equal(ssm_state_restore(sg, buf, bytes), SSM_ERR_INVALID);
    printf("snapshot GPU → CPU → GPU: worst %.3g over 16 steps (tol 1e-4)\n", worst);
    assert_true(worst <= 1e-4);
    /* reset zeroes the device payload */
    ssm_state_reset(sg);
    assert_int_equal(ssm_state_snapshot(sg, buf, bytes, NULL), SSM_OK);
    size_t nonzero = 0;
    for (size_t i = 64; i < bytes; ++i)
        nonzero += buf[i] != 0;
    assert_int_equal(nonzero, 0);
    free(buf);
    outs_free(&oc);
    outs_free(&og);
    ssm_state_destroy(sc);
    ssm_state_destroy(sg);
    ssm_runner_destroy(rc);
    ssm_runner_destroy(rg);
    pair_free(&p);
}

/* Sets every payload float of a snapshot to 3e38 and re-signs it (FNV-1a 64
 * of the payload at header offset 48, docs/model-format.md). */
static void poison_snapshot(unsigned char *buf, size_t bytes)
{
    float v = 3e38f;
    for (size_t i = 64; i + 4 <= bytes; i += 4)
        memcpy(buf + i, &v, 4);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 64; i < bytes; ++i) {
        h ^= buf[i];
        h *= 0x100000001b3ull;
    }
    memcpy(buf + 48, &h, 8);
}

/* A stream driven non-finite is reset alone; NaN inputs are zeroed and counted. */
static void test_nonfinite(void **state)
{
    (void)state;
    pair p;
    pair_load(&p, model_path("feat.safetensors"));
    const int B = 4;
    ssm_runner *rc, *rg;
    assert_int_equal(ssm_runner_create(p.cpu, B, 1, 0, &rc, NULL), SSM_OK);
    assert_int_equal(ssm_runner_create(p.gpu, B, 1, 0, &rg, NULL), SSM_OK);
    ssm_state *sc[4], *sg[4];
    for (int i = 0; i < B; ++i) {
        assert_int_equal(ssm_state_create(p.cpu, &sc[i]), SSM_OK);
        assert_int_equal(ssm_state_create(p.gpu, &sg[i]), SSM_OK);
    }
    float *f = xmalloc((size_t)B * p.nf * 4);
    outs oc, og;
    outs_make(&oc, &p, B);
    outs_make(&og, &p, B);
    unsigned fc[4], fg[4];
    double worst = 0;
    /* stream 2's state is replaced by a (finite, valid) snapshot of values
     * 3e38: its next step overflows to Inf/NaN and must reset it alone */
    size_t bytes = ssm_state_bytes(p.cpu);
    unsigned char *huge = xmalloc(bytes);
    assert_int_equal(ssm_state_snapshot(sc[2], huge, bytes, NULL), SSM_OK);
    poison_snapshot(huge, bytes);
    for (int t = 0; t < 6; ++t) {
        inputs(&p, B, f, NULL);
        if (t == 3) {
            assert_int_equal(ssm_state_restore(sc[2], huge, bytes), SSM_OK);
            assert_int_equal(ssm_state_restore(sg[2], huge, bytes), SSM_OK);
            f[1 * p.nf] = NAN;
        }
        int a = ssm_step(rc, sc, B, f, NULL, &oc.o, fc);
        int b = ssm_step(rg, sg, B, f, NULL, &og.o, fg);
        assert_int_equal(a, b);
        assert_memory_equal(fc, fg, sizeof fc);
        double e = outs_err(&og, &oc, &p, B);
        if (e > worst)
            worst = e;
        if (t == 3) {
            assert_int_equal(b, SSM_ERR_NONFINITE);
            assert_int_equal(fg[2], SSM_FLAG_RESET);
            assert_int_equal(fg[1], SSM_FLAG_NONFINITE_INPUT);
        }
    }
    ssm_state_stats st;
    ssm_state_stats_get(sg[2], &st);
    assert_int_equal(st.n_resets, 1);
    ssm_state_stats_get(sg[1], &st);
    assert_int_equal(st.n_nonfinite_inputs, 1);
    printf("non-finite: reset stream and NaN input handled as on the CPU, worst %.3g\n", worst);
    assert_true(worst <= 1e-4);
    for (int i = 0; i < B; ++i) {
        ssm_state_destroy(sc[i]);
        ssm_state_destroy(sg[i]);
    }
    free(huge);
    free(f);
    outs_free(&oc);
    outs_free(&og);
    ssm_runner_destroy(rc);
    ssm_runner_destroy(rg);
    pair_free(&p);
}

static void test_bf16(void **state)
{
    (void)state;
    double e = compare_steps(g_default, 16, 50, SSM_RUNNER_BF16_WEIGHTS);
    double e2 = compare_steps(model_path("odd.safetensors"), 16, 20, SSM_RUNNER_BF16_WEIGHTS);
    printf("bf16 weights vs fp32 CPU: default model 16 streams × 50 steps %.3g, odd model %.3g "
           "(tol 3e-2)\n", e, e2);
    assert_true(e <= 3e-2);
    assert_true(e2 <= 3e-2);
}

static void test_backend_api(void **state)
{
    (void)state;
    ssm_error why = {0};
    assert_int_equal(ssm_backend_available(SSM_BACKEND_CUDA, 0, &why), 1);
    assert_int_equal(ssm_backend_available(SSM_BACKEND_CUDA, 4096, &why), 0);
    printf("device 4096: %s\n", why.msg);
    ssm_model_options o = {.backend = SSM_BACKEND_AUTO};
    ssm_model *m = NULL;
    assert_int_equal(ssm_model_load(g_default, &o, &m, NULL), SSM_OK);
    assert_string_equal(ssm_model_backend(m), "cuda");
    printf("auto: %s\n", ssm_model_backend_note(m));
    assert_non_null(strstr(ssm_model_backend_note(m), "cuda: "));
    ssm_model_free(m);
    o.backend = SSM_BACKEND_CUDA;
    o.cuda_device = 4096;
    ssm_error err = {0};
    assert_int_equal(ssm_model_load(g_default, &o, &m, &err), SSM_ERR_BACKEND);
    assert_non_null(strstr(err.msg, "not present"));
    printf("cuda device 4096: %s\n", err.msg);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_cuda MODEL_DIR DEFAULT_MODEL\n");
        return 2;
    }
    g_dir = argv[1];
    g_default = argv[2];
    ssm_error why = {0};
    if (!ssm_backend_available(SSM_BACKEND_CUDA, 0, &why)) {
        printf("SKIP: %s\n", why.msg);
        return 77;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        printf("device: %s, sm_%d%d, %d SMs, %.1f GiB\n", prop.name, prop.major, prop.minor,
               prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_api),
        cmocka_unit_test(test_kernels_bad_sizes),
        cmocka_unit_test(test_kernels_awkward),
        cmocka_unit_test(test_kernels_large_batch),
        cmocka_unit_test(test_model_steps),
        cmocka_unit_test(test_model_batch_65536),
        cmocka_unit_test(test_graph_equals_launches),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_snapshot_cross),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
