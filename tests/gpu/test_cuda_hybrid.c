/* SPDX-License-Identifier: MIT */
/* tests/gpu: the CUDA kernels of Mamba-2, sliding-window attention and gated
 * MLP layers (kernels/cuda/ssm_kernels_hybrid.cu) and the CUDA backend on
 * Mamba-2, attention and mixed stacks, against the CPU.
 *
 * STATUS: written and compiled on a machine without a GPU; it has not yet
 * run.  tests/gpu/run.sh runs it on a device machine (suite gpu).
 *
 * Oracle: the plain-C reference kernels (ssm_scan_heads_step_f32 with
 * ssm_softplus_f32, ssm_rmsnorm_gated_f32, ssm_gate_silu_f32, ssm_attn_step /
 * ssm_attn_forward with ssm_attn_set_reference) for the kernel tests, and the
 * CPU backend's scalar reference runner (SSM_RUNNER_REFERENCE, itself held to
 * float64 numpy by tests/ref/mamba2_ref.py and attn_ref.py) for the model
 * tests.  Error measure: max over elements of |gpu − cpu| / (1 + |cpu|).
 * Tolerances and why:
 *  - 2e-5, one Mamba-2 scan, gated-norm or gate call (as test_cuda.c's
 *    kernels): expf/log1pf within 2 ulp on the GPU, FMA contraction of the
 *    state update, sums of ≤ 128 state products and ≤ 64 frames in another
 *    order (warp trees): a few 1e-7 relative, 2e-5 leaves two orders of margin;
 *  - 5e-5, one attention call: a score is a dot product of up to 256
 *    channels summed by a warp tree instead of in order (worst case
 *    256·2⁻²⁴ ≈ 1.5e-5 of Σ|q·k|), and the softmax passes a score's error
 *    on to every weight;
 *  - 1e-4, whole models over 40 steps or 372 forward frames (as test_cuda.c):
 *    cuBLAS sums the projections in its own order, the reference runner in
 *    eight lanes, and the recurrences carry the differences along;
 *  - 1e-5, CUDA against CUDA with another shape (a stream alone vs inside a
 *    batch; a chunked forward vs the same frames stepped): the layer kernels
 *    treat each stream alone and walk frames in the same order, so only
 *    cuBLAS's choice of algorithm for the row count changes any rounding
 *    (test_cuda.c measured 5.3e-7 for Mamba-1's forward vs steps);
 *  - 0 (bit for bit), snapshot → restore → continue on CUDA against the
 *    uninterrupted CUDA stream: the same kernels on the same shapes.
 * Every case prints its figure.
 *
 * Without a usable device the program prints "SKIP: <reason>" and exits 77.
 *
 * Usage: test_cuda_hybrid MODEL_DIR   (tests/gpu/make_gpu_models.py's output)
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
#include "ssm/model.h"

static const char *g_dir;

#define GPU_TEST_SEED 0x2405060717ull
#include "gpu_test_util.h"

static void *dup_up(const void *h, size_t n)
{
    void *d = dmalloc(n);
    assert_int_equal(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

static void down(void *h, const void *d, size_t n)
{
    assert_int_equal(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* Device array of S pointers base + s·per (the states of S streams). */
static float **dev_ptrs(float *base, size_t per, int S)
{
    float **h = xmalloc((size_t)S * sizeof *h);
    for (int s = 0; s < S; ++s)
        h[s] = base + (size_t)s * per;
    float **d = dup_up(h, (size_t)S * sizeof *h);
    free(h);
    return d;
}

static void max_into(double *worst, double e)
{
    if (!(e <= *worst))
        *worst = e;
}

/* ---- kernels: Mamba-2 scan ------------------------------------------------ */

/* S streams × T frames through ssm_cuda_scan_heads from random states (odd
 * per-stream stride and an offset: unaligned, as a layer inside a payload),
 * against softplus + ssm_scan_heads_step_f32 frame after frame. */
static void m2_case(int H, int P, int G, int N, int S, int T, double *worst)
{
    const int di = H * P;
    const size_t gn = (size_t)G * N, rows = (size_t)S * T, off = 5;
    const size_t per = (size_t)di * N + off + 2;
    float *x = xmalloc(rows * di * 4), *dt = xmalloc(rows * H * 4), *bc = xmalloc(rows * 2 * gn * 4);
    float *dtb = xmalloc((size_t)H * 4), *A = xmalloc((size_t)H * 4), *D = xmalloc((size_t)H * 4);
    float *st = xmalloc((size_t)S * per * 4), *st_gpu = xmalloc((size_t)S * per * 4);
    float *y = xmalloc(rows * di * 4), *y_gpu = xmalloc(rows * di * 4), *dts = xmalloc((size_t)H * 4);
    fill(x, rows * di, -2, 2);
    fill(dt, rows * H, -5, 1);
    fill(bc, rows * 2 * gn, -1, 1);
    fill(dtb, (size_t)H, -1, 1);
    for (int h = 0; h < H; ++h)
        A[h] = -expf(frand(-1, 2.5f));
    fill(D, (size_t)H, -1, 1);
    fill(st, (size_t)S * per, -1, 1);

    float *d_x = dup_up(x, rows * di * 4), *d_dt = dup_up(dt, rows * H * 4);
    float *d_bc = dup_up(bc, rows * 2 * gn * 4), *d_dtb = dup_up(dtb, (size_t)H * 4);
    float *d_A = dup_up(A, (size_t)H * 4), *d_D = dup_up(D, (size_t)H * 4);
    float *d_st = dup_up(st, (size_t)S * per * 4), *d_y = dmalloc(rows * di * 4);
    float **d_ptr = dev_ptrs(d_st, per, S);
    assert_int_equal(ssm_cuda_scan_heads(d_y, di, d_ptr, off, d_x, di, d_dt, H, d_dtb, d_A, d_bc,
                                         d_bc + gn, 2 * gn, d_D, S, T, H, P, G, N, NULL),
                     0);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    down(y_gpu, d_y, rows * di * 4);
    down(st_gpu, d_st, (size_t)S * per * 4);

    for (int s = 0; s < S; ++s) {
        float *ssm = st + (size_t)s * per + off;
        for (int t = 0; t < T; ++t) {
            size_t r = (size_t)s * T + t;
            ssm_softplus_f32(dts, H, dt + r * H, H, dtb, 1, H);
            ssm_scan_heads_step_f32(y + r * di, di, &ssm, x + r * di, di, dts, H, A,
                                    bc + r * 2 * gn, bc + r * 2 * gn + gn, 2 * gn, D, 1, H, P, G,
                                    N);
        }
    }
    double e = err_of(y_gpu, y, rows * di), es = err_of(st_gpu, st, (size_t)S * per);
    max_into(&e, es);
    max_into(worst, e);
    if (!(e <= 2e-5))
        fail_msg("m2 scan n_heads %d head_dim %d n_groups %d d_state %d streams %d frames %d: "
                 "%.3g (tol 2e-5)", H, P, G, N, S, T, e);
    void *dev[] = {d_x, d_dt, d_bc, d_dtb, d_A, d_D, d_st, d_y, d_ptr};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
        cudaFree(dev[i]);
    void *host[] = {x, dt, bc, dtb, A, D, st, st_gpu, y, y_gpu, dts};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
}

static void test_m2_scan_awkward(void **state)
{
    (void)state;
    static const int Hs[] = {1, 2, 3, 6, 17}, Ps[] = {1, 7, 64}, Gs[] = {1, 2};
    static const int Ns[] = {1, 16, 64, 128}, Ss[] = {1, 3, 33}, Ts[] = {1, 7};
    double worst = 0;
    int n = 0;
    for (size_t a = 0; a < 5; ++a)
        for (size_t b = 0; b < 3; ++b)
            for (size_t g = 0; g < 2; ++g) {
                if (Hs[a] % Gs[g])
                    continue;
                for (size_t c = 0; c < 4; ++c)
                    for (size_t d = 0; d < 3; ++d)
                        for (size_t e = 0; e < 2; ++e, ++n)
                            m2_case(Hs[a], Ps[b], Gs[g], Ns[c], Ss[d], Ts[e], &worst);
            }
    /* the register limit: d_state 256 (8 per lane), and 5, 33 (partial lanes) */
    m2_case(3, 7, 1, 256, 3, 7, &worst);
    m2_case(2, 7, 2, 5, 3, 7, &worst);
    m2_case(17, 1, 1, 33, 33, 7, &worst);
    n += 3;
    printf("kernels m2 scan: %d cases (n_heads 1/2/3/6/17, head_dim 1/7/64, n_groups 1/2, "
           "d_state 1/16/64/128 + 5/33/256, streams 1/3/33, frames 1/7): worst %.3g (tol 2e-5)\n",
           n, worst);
    /* bad sizes are refused before any launch */
    assert_int_not_equal(ssm_cuda_scan_heads(NULL, 1, NULL, 0, NULL, 1, NULL, 1, NULL, NULL, NULL,
                                             NULL, 1, NULL, 1, 1, 3, 1, 2, 4, NULL), 0);
    assert_int_not_equal(ssm_cuda_scan_heads(NULL, 1, NULL, 0, NULL, 1, NULL, 1, NULL, NULL, NULL,
                                             NULL, 1, NULL, 1, 1, 1, 1, 1, 257, NULL), 0);
    (void)cudaGetLastError();
}

/* ---- kernels: gated RMSNorm and the SiLU gate ------------------------------ */

static void gnorm_case(int rows, int dim, int gs, double *worst_norm, double *worst_gate)
{
    const size_t ldy = (size_t)dim + 3, ldz = (size_t)dim + 1, n = (size_t)rows;
    float *y = xmalloc(n * ldy * 4), *z = xmalloc(n * ldz * 4), *w = xmalloc((size_t)dim * 4);
    float *y_gpu = xmalloc(n * ldy * 4), *g = xmalloc(n * ldy * 4);
    fill(y, n * ldy, -3, 3);
    fill(z, n * ldz, -4, 4);
    fill(w, (size_t)dim, 0.5f, 1.5f);
    float *d_y = dup_up(y, n * ldy * 4), *d_z = dup_up(z, n * ldz * 4);
    float *d_w = dup_up(w, (size_t)dim * 4), *d_g = dmalloc(n * ldy * 4);
    /* the gate first (out = y ⊙ SiLU(z) into another buffer), then the norm in place */
    assert_int_equal(ssm_cuda_gate_silu(d_g, ldy, d_y, ldy, d_z, ldz, rows, dim, NULL), 0);
    assert_int_equal(ssm_cuda_rmsnorm_gated(d_y, ldy, d_z, ldz, d_w, rows, dim, gs, 1e-5f, NULL),
                     0);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    down(y_gpu, d_y, n * ldy * 4);
    float *g_gpu = xmalloc(n * ldy * 4);
    down(g_gpu, d_g, n * ldy * 4);
    memcpy(g, y, n * ldy * 4);
    ssm_gate_silu_f32(g, ldy, z, ldz, rows, dim);
    ssm_rmsnorm_gated_f32(y, ldy, z, ldz, w, rows, dim, dim / gs, 1e-5f, ssm_gate_silu_f32);
    double en = 0, eg = 0;
    for (size_t i = 0; i < n; ++i) {
        max_into(&en, err_of(y_gpu + i * ldy, y + i * ldy, (size_t)dim));
        max_into(&eg, err_of(g_gpu + i * ldy, g + i * ldy, (size_t)dim));
    }
    max_into(worst_norm, en);
    max_into(worst_gate, eg);
    if (!(en <= 2e-5 && eg <= 2e-5))
        fail_msg("gated norm rows %d dim %d group %d: norm %.3g gate %.3g (tol 2e-5)", rows, dim,
                 gs, en, eg);
    void *dev[] = {d_y, d_z, d_w, d_g};
    for (size_t i = 0; i < 4; ++i)
        cudaFree(dev[i]);
    free(y), free(z), free(w), free(y_gpu), free(g), free(g_gpu);
}

static void test_gated_norm(void **state)
{
    (void)state;
    static const int rows[] = {1, 5, 65}, dims[] = {1, 7, 119, 128, 1088};
    double wn = 0, wg = 0;
    int n = 0;
    for (size_t r = 0; r < 3; ++r)
        for (size_t d = 0; d < 5; ++d)
            for (int ng = 1; ng <= 17; ++ng)
                if (dims[d] % ng == 0 && (ng == 1 || ng == 2 || ng == 17 || ng == 8)) {
                    gnorm_case(rows[r], dims[d], dims[d] / ng, &wn, &wg);
                    ++n;
                }
    printf("kernels gated RMSNorm and SiLU gate: %d cases (rows 1/5/65, dim 1/7/119/128/1088, "
           "1/2/8/17 groups): worst norm %.3g, gate %.3g (tol 2e-5)\n", n, wn, wg);
}

/* ---- kernels: sliding-window attention ------------------------------------ */

static void set_counter(float *ctr, uint64_t pos)
{
    ctr[0] = (float)(pos % 16777216u);
    ctr[1] = (float)(pos / 16777216u);
}

/* T == 1: S streams, one step each (ssm_attn_step); T > 1: S streams of T
 * frames, each its own forward (ssm_attn_forward).  States from random
 * rings and counters pos0 + s. */
static void attn_case(int H, int Hkv, int P, int W, int rd, int inter, uint64_t pos0, int S,
                      int T, double *worst)
{
    double *f = xmalloc((size_t)(rd / 2 + 1) * sizeof *f);
    for (int i = 0; i < rd / 2; ++i)
        f[i] = pow(10000.0, -(double)(2 * i) / rd);
    ssm_attn a = {.n_heads = H, .n_heads_kv = Hkv, .head_dim = P, .window = W, .rot_dim = rd,
                  .rot_interleaved = inter, .inv_freq = f, .scale = 1.0f / sqrtf((float)P)};
    ssm_attn_set_reference(&a);
    const size_t nst = ssm_attn_state_floats(&a), per = nst + 1, rows = (size_t)S * T;
    const size_t nq = (size_t)H * P, ld_in = (size_t)(H + 2 * Hkv) * P + 2;
    float *qkv = xmalloc(rows * ld_in * 4), *st = xmalloc((size_t)S * per * 4);
    float *y = xmalloc(rows * nq * 4), *y_gpu = xmalloc(rows * nq * 4);
    float *st_gpu = xmalloc((size_t)S * per * 4);
    float *scratch = xmalloc(ssm_attn_scratch_floats(&a) * 4);
    fill(qkv, rows * ld_in, -1, 1);
    fill(st, (size_t)S * per, -1, 1);
    for (int s = 0; s < S; ++s)
        set_counter(st + (size_t)s * per + ssm_attn_counter_at(&a), pos0 + (uint64_t)s);
    float *d_qkv = dup_up(qkv, rows * ld_in * 4), *d_st = dup_up(st, (size_t)S * per * 4);
    float *d_y = dmalloc(rows * nq * 4);
    double *d_f = dup_up(f, (size_t)(rd / 2 + 1) * sizeof *f);
    float **d_ptr = dev_ptrs(d_st, per, S);
    assert_int_equal(ssm_cuda_attn(d_y, nq, d_ptr, 0, d_qkv, ld_in, rd ? d_f : NULL, S, T, H, Hkv,
                                   P, W, rd, inter, a.scale, NULL),
                     0);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    down(y_gpu, d_y, rows * nq * 4);
    down(st_gpu, d_st, (size_t)S * per * 4);
    if (T == 1) {
        float **ptr = xmalloc((size_t)S * sizeof *ptr);
        for (int s = 0; s < S; ++s)
            ptr[s] = st + (size_t)s * per;
        ssm_attn_step(&a, y, nq, qkv, ld_in, ptr, S, scratch);
        free(ptr);
    } else {
        for (int s = 0; s < S; ++s)
            ssm_attn_forward(&a, y + (size_t)s * T * nq, nq, qkv + (size_t)s * T * ld_in, ld_in,
                             st + (size_t)s * per, T, scratch);
    }
    double e = err_of(y_gpu, y, rows * nq), es = err_of(st_gpu, st, (size_t)S * per);
    max_into(&e, es);
    max_into(worst, e);
    for (int s = 0; s < S; ++s) { /* the counters exactly */
        const float *cg = st_gpu + (size_t)s * per + ssm_attn_counter_at(&a);
        const float *cc = st + (size_t)s * per + ssm_attn_counter_at(&a);
        if (cg[0] != cc[0] || cg[1] != cc[1])
            fail_msg("attn counter of stream %d: gpu %.0f+%.0f·2^24, cpu %.0f+%.0f·2^24", s,
                     cg[0], cg[1], cc[0], cc[1]);
    }
    if (!(e <= 5e-5))
        fail_msg("attn heads %d kv %d head_dim %d window %d rot %d%s pos %llu streams %d frames "
                 "%d: %.3g (tol 5e-5)", H, Hkv, P, W, rd, inter ? " interleaved" : "",
                 (unsigned long long)pos0, S, T, e);
    void *dev[] = {d_qkv, d_st, d_y, d_f, d_ptr};
    for (size_t i = 0; i < 5; ++i)
        cudaFree(dev[i]);
    free(qkv), free(st), free(y), free(y_gpu), free(st_gpu), free(scratch), free(f);
}

static void test_attn_awkward(void **state)
{
    (void)state;
    static const int geo[][3] = {{1, 1, 1},  {3, 3, 7},   {3, 1, 7},  {4, 2, 64},
                                 {17, 17, 7}, {17, 1, 64}, {2, 1, 256}};
    static const int Ws[] = {1, 3, 64};
    static const uint64_t pos0s[] = {0, 2, 16777216ull * 3 + 5};
    static const int ST[][2] = {{5, 1}, {2, 9}};
    double worst = 0;
    int n = 0;
    for (size_t g = 0; g < sizeof geo / sizeof geo[0]; ++g) {
        int H = geo[g][0], Hkv = geo[g][1], P = geo[g][2];
        int rots[3][2] = {{0, 0}, {P >= 2 ? 2 : 0, 0}, {P & ~1, 1}};
        for (size_t w = 0; w < 3; ++w)
            for (size_t p = 0; p < 3; ++p)
                for (size_t k = 0; k < 2; ++k)
                    for (size_t r = 0; r < 3; ++r, ++n)
                        attn_case(H, Hkv, P, Ws[w], rots[r][0], rots[r][1], pos0s[p], ST[k][0],
                                  ST[k][1], &worst);
    }
    /* a stream longer than its window inside one call, and a window of 200 */
    attn_case(3, 1, 7, 3, 6, 0, 0, 1, 40, &worst);
    attn_case(4, 2, 64, 200, 16, 1, 7, 1, 40, &worst);
    n += 2;
    printf("kernels attention: %d cases (heads/kv/head_dim 1/1/1, 3/3/7, 3/1/7, 4/2/64, "
           "17/17/7, 17/1/64, 2/1/256; windows 1/3/64/200; RoPE none/2/all, interleaved; "
           "positions 0, 2, 3·2^24+5; 5 streams × 1 step, 2 × 9 frames, 1 × 40): worst %.3g "
           "(tol 5e-5), counters exact\n", n, worst);
    assert_int_not_equal(ssm_cuda_attn(NULL, 1, NULL, 0, NULL, 1, NULL, 1, 1, 1, 1, 257, 1, 0, 0,
                                       1.0f, NULL), 0);
    assert_int_not_equal(ssm_cuda_attn(NULL, 1, NULL, 0, NULL, 1, NULL, 1, 1, 3, 2, 4, 1, 0, 0,
                                       1.0f, NULL), 0);
    (void)cudaGetLastError();
}

/* ---- models: CUDA backend vs the CPU reference runner ---------------------- */

static const char *const k_models[] = {
    "m2_h1_p1_g1_n1",          "m2_h3_p7_g1_n16",   "m2_h17_p7_g1_n64_tok",
    "m2_h2_p64_g2_n128_bias",  "m2_h6_p1_g2_n16_fullnorm", "at_h1_p1_w1",
    "at_h3_p7_w3_rope6",       "at_h6_kv3_p64_w64_inter",  "at_h17_kv1_p7_w200_mlp_tok",
    "mixed_m1_m2_at_dint",     "mixed_at_m1_at_m2_tok",
};
#define N_MODELS (sizeof k_models / sizeof k_models[0])

static char *model_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s.safetensors", g_dir, name);
    return b;
}

static ssm_model *load_backend(const char *name, int backend)
{
    ssm_model_options o = {.backend = backend};
    ssm_model *m = NULL;
    ssm_error err = {0};
    if (ssm_model_load(model_path(name), &o, &m, &err) != SSM_OK)
        fail_msg("%s", err.msg);
    return m;
}

/* Everything a model test needs of one model: both backends, their shapes. */
typedef struct pair {
    ssm_model *cpu, *gpu;
    int d_model, nf, V, nm;
    unsigned heads;
    size_t n_out; /* floats of one row's outputs (embedding, mask, vad, logits) */
} pair;

static void pair_load(pair *p, const char *name)
{
    p->cpu = load_backend(name, SSM_BACKEND_CPU);
    p->gpu = load_backend(name, SSM_BACKEND_CUDA);
    assert_string_equal(ssm_model_backend(p->gpu), "cuda");
    assert_int_equal(ssm_state_bytes(p->gpu), ssm_state_bytes(p->cpu));
    p->d_model = ssm_model_d_model(p->cpu);
    p->nf = ssm_model_n_features(p->cpu);
    p->V = ssm_model_vocab_size(p->cpu);
    p->nm = ssm_model_n_mask(p->cpu);
    p->heads = ssm_model_heads(p->cpu);
    p->n_out = (size_t)p->d_model + ((p->heads & SSM_MODEL_HEAD_MASK) ? (size_t)p->nm : 0) +
               ((p->heads & SSM_MODEL_HEAD_VAD) ? 1 : 0) +
               ((p->heads & SSM_MODEL_HEAD_LM) ? (size_t)p->V : 0);
}

static void pair_free(pair *p)
{
    ssm_model_free(p->cpu);
    ssm_model_free(p->gpu);
}

/* Outputs of `rows` rows, every head the model has, in one block per head. */
typedef struct outs {
    float *buf;
    ssm_outputs o;
} outs;

static void outs_make(outs *o, const pair *p, size_t rows)
{
    memset(o, 0, sizeof *o);
    o->buf = calloc(rows * p->n_out, 4); /* zeroed: rows never written compare equal */
    assert_non_null(o->buf);
    float *q = o->buf;
    o->o.embedding = q;
    q += rows * p->d_model;
    if (p->heads & SSM_MODEL_HEAD_MASK) {
        o->o.mask = q;
        q += rows * p->nm;
    }
    if (p->heads & SSM_MODEL_HEAD_VAD) {
        o->o.vad = q;
        q += rows;
    }
    if (p->heads & SSM_MODEL_HEAD_LM)
        o->o.logits = q;
}

/* Row i of o's heads copied into row j of d (same model, d sized for j + 1 rows at least). */
static void outs_copy_row(outs *d, size_t j, const outs *o, size_t i, const pair *p)
{
    memcpy(d->o.embedding + j * p->d_model, o->o.embedding + i * p->d_model, (size_t)p->d_model * 4);
    if (o->o.mask)
        memcpy(d->o.mask + j * p->nm, o->o.mask + i * p->nm, (size_t)p->nm * 4);
    if (o->o.vad)
        d->o.vad[j] = o->o.vad[i];
    if (o->o.logits)
        memcpy(d->o.logits + j * p->V, o->o.logits + i * p->V, (size_t)p->V * 4);
}

static void inputs(const pair *p, size_t rows, float *f, int32_t *tok)
{
    if (p->nf)
        fill(f, rows * p->nf, -2, 2);
    else
        for (size_t i = 0; i < rows; ++i)
            tok[i] = (int32_t)(frand(0, 1) * p->V) % p->V;
}

static double snap_err(ssm_state *g, ssm_state *c, const ssm_model *m)
{
    size_t bytes = ssm_state_bytes(m);
    unsigned char *bg = xmalloc(bytes), *bc = xmalloc(bytes);
    assert_int_equal(ssm_state_snapshot(g, bg, bytes, NULL), SSM_OK);
    assert_int_equal(ssm_state_snapshot(c, bc, bytes, NULL), SSM_OK);
    double e = err_of((float *)(bg + 64), (float *)(bc + 64), (bytes - 64) / 4);
    free(bg);
    free(bc);
    return e;
}

static ssm_runner *runner(ssm_model *m, int max_batch, int max_chunk, unsigned flags)
{
    ssm_runner *r = NULL;
    ssm_error err = {0};
    if (ssm_runner_create(m, max_batch, max_chunk, flags, &r, &err) != SSM_OK)
        fail_msg("%s", err.msg);
    return r;
}

static ssm_state **states(ssm_model *m, int n)
{
    ssm_state **s = xmalloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; ++i)
        assert_int_equal(ssm_state_create(m, &s[i]), SSM_OK);
    return s;
}

static void states_free(ssm_state **s, int n)
{
    for (int i = 0; i < n; ++i)
        ssm_state_destroy(s[i]);
    free(s);
}

/* B streams × n_steps on both backends (CPU: the scalar reference runner):
 * worst error of outputs and final states.  Also, on CUDA, streams 0 and B−1
 * stepped alone with the same inputs: *batch_err their worst error against
 * their rows of the batch. */
static double compare_steps(const char *name, int B, int n_steps, double *batch_err)
{
    pair p;
    pair_load(&p, name);
    ssm_runner *rc = runner(p.cpu, B, 1, SSM_RUNNER_REFERENCE), *rg = runner(p.gpu, B, 1, 0);
    ssm_runner *r1 = runner(p.gpu, 1, 1, 0);
    assert_string_equal(ssm_runner_isa(rg), "cuda");
    ssm_state **sc = states(p.cpu, B), **sg = states(p.gpu, B), **s1 = states(p.gpu, 2);
    float *f = xmalloc((size_t)B * (p.nf ? p.nf : 1) * 4);
    int32_t *tok = xmalloc((size_t)B * 4);
    outs oc, og, o1, ob;
    outs_make(&oc, &p, (size_t)B);
    outs_make(&og, &p, (size_t)B);
    outs_make(&o1, &p, 1);
    outs_make(&ob, &p, 1);
    double worst = 0, wb = 0;
    const int alone[2] = {0, B - 1};
    for (int t = 0; t < n_steps; ++t) {
        inputs(&p, (size_t)B, f, tok);
        assert_int_equal(ssm_step(rc, sc, B, f, tok, &oc.o, NULL), SSM_OK);
        assert_int_equal(ssm_step(rg, sg, B, f, tok, &og.o, NULL), SSM_OK);
        max_into(&worst, err_of(og.buf, oc.buf, (size_t)B * p.n_out));
        for (int k = 0; k < (B > 1 ? 2 : 0); ++k) {
            int i = alone[k];
            assert_int_equal(ssm_step(r1, &s1[k], 1, p.nf ? f + (size_t)i * p.nf : NULL, tok + i,
                                      &o1.o, NULL),
                             SSM_OK);
            outs_copy_row(&ob, 0, &og, (size_t)i, &p);
            max_into(&wb, err_of(o1.buf, ob.buf, p.n_out));
        }
    }
    for (int i = 0; i < B; ++i)
        max_into(&worst, snap_err(sg[i], sc[i], p.cpu));
    if (B > 1) {
        max_into(&wb, snap_err(s1[0], sg[0], p.cpu));
        max_into(&wb, snap_err(s1[1], sg[B - 1], p.cpu));
    }
    if (batch_err)
        *batch_err = wb;
    states_free(sc, B);
    states_free(sg, B);
    states_free(s1, 2);
    free(f);
    free(tok);
    free(oc.buf), free(og.buf), free(o1.buf), free(ob.buf);
    ssm_runner_destroy(rc);
    ssm_runner_destroy(rg);
    ssm_runner_destroy(r1);
    pair_free(&p);
    return worst;
}

static void test_model_steps(void **state)
{
    (void)state;
    static const int Bs[] = {1, 3, 65};
    double all = 0, all_b = 0;
    for (size_t i = 0; i < N_MODELS; ++i) {
        double worst = 0, wb = 0;
        for (size_t b = 0; b < 3; ++b) {
            double eb = 0;
            max_into(&worst, compare_steps(k_models[i], Bs[b], 40, &eb));
            max_into(&wb, eb);
        }
        printf("model %s: batches 1/3/65 × 40 steps vs CPU reference: worst %.3g (tol 1e-4); "
               "streams 0 and B−1 alone vs in the batch: %.3g (tol 1e-5)\n", k_models[i], worst,
               wb);
        max_into(&all, worst);
        max_into(&all_b, wb);
    }
    assert_true(all <= 1e-4);
    assert_true(all_b <= 1e-5);
}

/* Chunks of 1, 7, 64, 300 frames resuming one stream's state on CUDA, vs
 * the CPU reference runner's forward and vs the same frames stepped on CUDA. */
static void test_model_forward(void **state)
{
    (void)state;
    static const int Ts[] = {1, 7, 64, 300};
    double w_cpu = 0, w_step = 0;
    for (size_t i = 0; i < N_MODELS; ++i) {
        pair p;
        pair_load(&p, k_models[i]);
        ssm_runner *rc = runner(p.cpu, 1, 300, SSM_RUNNER_REFERENCE);
        ssm_runner *rg = runner(p.gpu, 1, 300, 0), *rs = runner(p.gpu, 1, 1, 0);
        ssm_state **sc = states(p.cpu, 1), **sg = states(p.gpu, 1), **ss = states(p.gpu, 1);
        float *f = xmalloc(300 * (size_t)(p.nf ? p.nf : 1) * 4);
        int32_t *tok = xmalloc(300 * 4);
        outs oc, og, os, o1;
        outs_make(&oc, &p, 300);
        outs_make(&og, &p, 300);
        outs_make(&os, &p, 300);
        outs_make(&o1, &p, 1);
        double ec = 0, es = 0;
        for (size_t k = 0; k < 4; ++k) {
            int T = Ts[k];
            inputs(&p, (size_t)T, f, tok);
            assert_int_equal(ssm_forward(rc, sc[0], T, f, tok, &oc.o, NULL), SSM_OK);
            assert_int_equal(ssm_forward(rg, sg[0], T, f, tok, &og.o, NULL), SSM_OK);
            for (int t = 0; t < T; ++t) {
                assert_int_equal(ssm_step(rs, ss, 1, p.nf ? f + (size_t)t * p.nf : NULL, tok + t,
                                          &o1.o, NULL),
                                 SSM_OK);
                outs_copy_row(&os, (size_t)t, &o1, 0, &p);
            }
            /* the blocks hold 300 rows; compare the T written */
            for (int t = 0; t < T; ++t) {
                outs a, b, c;
                outs_make(&a, &p, 1), outs_make(&b, &p, 1), outs_make(&c, &p, 1);
                outs_copy_row(&a, 0, &og, (size_t)t, &p);
                outs_copy_row(&b, 0, &oc, (size_t)t, &p);
                outs_copy_row(&c, 0, &os, (size_t)t, &p);
                max_into(&ec, err_of(a.buf, b.buf, p.n_out));
                max_into(&es, err_of(a.buf, c.buf, p.n_out));
                free(a.buf), free(b.buf), free(c.buf);
            }
        }
        max_into(&ec, snap_err(sg[0], sc[0], p.cpu));
        max_into(&es, snap_err(sg[0], ss[0], p.cpu));
        printf("forward %s: chunks 1/7/64/300 resuming the state: vs CPU reference forward %.3g "
               "(tol 1e-4), vs CUDA steps %.3g (tol 1e-5)\n", k_models[i], ec, es);
        max_into(&w_cpu, ec);
        max_into(&w_step, es);
        states_free(sc, 1), states_free(sg, 1), states_free(ss, 1);
        free(f), free(tok);
        free(oc.buf), free(og.buf), free(os.buf), free(o1.buf);
        ssm_runner_destroy(rc), ssm_runner_destroy(rg), ssm_runner_destroy(rs);
        pair_free(&p);
    }
    assert_true(w_cpu <= 1e-4);
    assert_true(w_step <= 1e-5);
}

/* Snapshot → restore → continue: on CUDA bit for bit against the
 * uninterrupted stream (after 30 steps: every window but 64 and 200 has
 * wrapped), through steps and a forward; and across backends (GPU snapshot
 * into a CPU state, CPU snapshot into a GPU state) within 1e-4. */
static void test_model_snapshot(void **state)
{
    (void)state;
    double w_cross = 0;
    for (size_t i = 0; i < N_MODELS; ++i) {
        pair p;
        pair_load(&p, k_models[i]);
        ssm_runner *rg = runner(p.gpu, 1, 16, 0), *rc = runner(p.cpu, 1, 16, SSM_RUNNER_REFERENCE);
        ssm_state **a = states(p.gpu, 1), **b = states(p.gpu, 1), **c = states(p.cpu, 1);
        size_t bytes = ssm_state_bytes(p.gpu);
        unsigned char *snap = xmalloc(bytes), *sa = xmalloc(bytes), *sb = xmalloc(bytes);
        float f[16 * 64];
        int32_t tok[16];
        assert_true(p.nf <= 64);
        outs oa, ob, oc;
        outs_make(&oa, &p, 16), outs_make(&ob, &p, 16), outs_make(&oc, &p, 16);
        for (int t = 0; t < 30; ++t) {
            inputs(&p, 1, f, tok);
            assert_int_equal(ssm_step(rg, a, 1, f, tok, &oa.o, NULL), SSM_OK);
        }
        size_t wrote = 0;
        assert_int_equal(ssm_state_snapshot(a[0], snap, bytes, &wrote), SSM_OK);
        assert_int_equal(wrote, bytes);
        assert_int_equal(ssm_state_restore(b[0], snap, bytes), SSM_OK);
        assert_int_equal(ssm_state_restore(c[0], snap, bytes), SSM_OK);
        int differ = 0;
        double ecross = 0;
        for (int t = 0; t < 20; ++t) { /* steps, then a forward of 16 */
            int n = t < 19 ? 1 : 16;
            inputs(&p, (size_t)n, f, tok);
            if (n == 1) {
                assert_int_equal(ssm_step(rg, a, 1, f, tok, &oa.o, NULL), SSM_OK);
                assert_int_equal(ssm_step(rg, b, 1, f, tok, &ob.o, NULL), SSM_OK);
                assert_int_equal(ssm_step(rc, c, 1, f, tok, &oc.o, NULL), SSM_OK);
            } else {
                assert_int_equal(ssm_forward(rg, a[0], n, f, tok, &oa.o, NULL), SSM_OK);
                assert_int_equal(ssm_forward(rg, b[0], n, f, tok, &ob.o, NULL), SSM_OK);
                assert_int_equal(ssm_forward(rc, c[0], n, f, tok, &oc.o, NULL), SSM_OK);
            }
            differ += memcmp(oa.buf, ob.buf, 16 * p.n_out * 4) != 0;
            max_into(&ecross, err_of(oa.buf, oc.buf, 16 * p.n_out));
        }
        assert_int_equal(ssm_state_snapshot(a[0], sa, bytes, NULL), SSM_OK);
        assert_int_equal(ssm_state_snapshot(b[0], sb, bytes, NULL), SSM_OK);
        differ += memcmp(sa, sb, bytes) != 0;
        max_into(&ecross, snap_err(a[0], c[0], p.cpu));
        /* and back: the CPU state into the GPU, one step each */
        assert_int_equal(ssm_state_snapshot(c[0], snap, bytes, NULL), SSM_OK);
        assert_int_equal(ssm_state_restore(b[0], snap, bytes), SSM_OK);
        inputs(&p, 1, f, tok);
        assert_int_equal(ssm_step(rg, b, 1, f, tok, &ob.o, NULL), SSM_OK);
        assert_int_equal(ssm_step(rc, c, 1, f, tok, &oc.o, NULL), SSM_OK);
        max_into(&ecross, err_of(ob.buf, oc.buf, p.n_out));
        /* a reset zeroes the device payload, the attention counters too */
        ssm_state_reset(b[0]);
        assert_int_equal(ssm_state_snapshot(b[0], sb, bytes, NULL), SSM_OK);
        size_t nonzero = 0;
        for (size_t k = 64; k < bytes; ++k)
            nonzero += sb[k] != 0;
        printf("snapshot %s (%zu bytes) after 30 steps: restored CUDA stream vs uninterrupted, 19 "
               "steps + a forward of 16: %d blocks differ (must be 0); GPU ↔ CPU: %.3g (tol "
               "1e-4); reset leaves %zu nonzero bytes\n", k_models[i], bytes, differ, ecross,
               nonzero);
        assert_int_equal(differ, 0);
        assert_int_equal(nonzero, 0);
        max_into(&w_cross, ecross);
        free(snap), free(sa), free(sb);
        free(oa.buf), free(ob.buf), free(oc.buf);
        states_free(a, 1), states_free(b, 1), states_free(c, 1);
        ssm_runner_destroy(rg), ssm_runner_destroy(rc);
        pair_free(&p);
    }
    assert_true(w_cross <= 1e-4);
}

/* Backends: `auto` keeps these layer kinds on the CPU (not yet verified on a
 * GPU) and says why; a model beyond the kernels' limits is refused by name. */
static void test_model_backend_choice(void **state)
{
    (void)state;
    ssm_model_options o = {.backend = SSM_BACKEND_AUTO};
    ssm_model *m = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_model_load(model_path("mixed_m1_m2_at_dint"), &o, &m, &err), SSM_OK);
    printf("auto, mixed stack: %s: %s\n", ssm_model_backend(m), ssm_model_backend_note(m));
    assert_string_equal(ssm_model_backend(m), "cpu");
    assert_non_null(strstr(ssm_model_backend_note(m), "not yet run on a GPU"));
    ssm_model_free(m);
    o.backend = SSM_BACKEND_CUDA;
    assert_int_equal(ssm_model_load(model_path("at_p300_refused"), &o, &m, &err),
                     SSM_ERR_BACKEND);
    printf("cuda, attention head_dim 300: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "head_dim 300"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_hybrid MODEL_DIR\n");
        return 2;
    }
    g_dir = argv[1];
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
        cmocka_unit_test(test_m2_scan_awkward),
        cmocka_unit_test(test_gated_norm),
        cmocka_unit_test(test_attn_awkward),
        cmocka_unit_test(test_model_backend_choice),
        cmocka_unit_test(test_model_steps),
        cmocka_unit_test(test_model_forward),
        cmocka_unit_test(test_model_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
