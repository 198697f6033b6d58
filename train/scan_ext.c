/* SPDX-License-Identifier: MIT */
/* The selective scan of train/model.py (scan_sequential) and its gradient, as
 * plain loops for training on a CPU: train/scan_ext.py compiles this file
 * into train/cache/ with the system's C compiler and calls it through ctypes
 * from a torch.autograd.Function.  PyTorch runs the same recurrence as ~20
 * small tensor operations per frame, whose dispatch and autograd bookkeeping
 * cost far more than their arithmetic; here one pass over each tensor does it.
 *
 * Shapes (all float32, C-contiguous): dt, x, y {B, L, Di}; A {Di, N};
 * Bm, Cm {B, L, N}; D {Di}; hs {B, L, Di, N} (the state after each frame,
 * written by the forward pass and read by the backward one; NULL in a
 * forward pass that needs no gradient).
 *
 * Recurrence (Gu & Dao 2023, Mamba, eq. 2a-2b, with the Δ·A bound of
 * train/model.py): dA = max(Δ·A, dA_min); h_t = exp(dA)·h_{t-1} + Δ·x_t·B_t;
 * y_t = Σ_n h_t·C_t + D·x_t, h_0 = 0.  The backward pass is its adjoint, run
 * from the last frame to the first; the bound passes no gradient where it
 * clips (as torch.clamp: gradient where Δ·A >= dA_min).
 *
 * Built with -ffast-math -fopenmp-simd: the loops over d_state are vectorised
 * with glibc's vector expf (libmvec); the sums over it are reassociated.
 * N <= 256 (the caller checks).  No allocation; calls on distinct buffers
 * may run in parallel. */
#include <math.h>
#include <stddef.h>

void ssm_train_scan_fwd(int B, int L, int Di, int N, float dA_min, const float *dt, const float *A,
                        const float *x, const float *Bm, const float *Cm, const float *D, float *y,
                        float *hs)
{
    for (int b = 0; b < B; ++b)
        for (int d = 0; d < Di; ++d) {
            float h[256];
            for (int n = 0; n < N; ++n)
                h[n] = 0.0f;
            const float *Ad = A + (size_t)d * N;
            for (int t = 0; t < L; ++t) {
                size_t bt = (size_t)b * L + t;
                float dtv = dt[bt * Di + d], xv = x[bt * Di + d];
                const float *Bt = Bm + bt * N, *Ct = Cm + bt * N;
                float *ht = hs ? hs + (bt * Di + d) * N : h; /* no hs: nothing kept */
                float acc = 0.0f, u = dtv * xv;
#pragma omp simd reduction(+ : acc)
                for (int n = 0; n < N; ++n) {
                    float dA = dtv * Ad[n];
                    dA = dA < dA_min ? dA_min : dA;
                    h[n] = expf(dA) * h[n] + u * Bt[n];
                    ht[n] = h[n];
                    acc += h[n] * Ct[n];
                }
                y[bt * Di + d] = acc + D[d] * xv;
            }
        }
}

/* Gradients of a scalar loss given gy {B, L, Di}: writes gdt, gx {B, L, Di};
 * adds into gD {Di}, gA {Di, N}, gBm, gCm {B, L, N} (sums over channels and
 * batch: the caller passes them zeroed).  N <= 256. */
void ssm_train_scan_bwd(int B, int L, int Di, int N, float dA_min, const float *dt, const float *A,
                        const float *x, const float *Bm, const float *Cm, const float *D,
                        const float *hs, const float *gy, float *gdt, float *gA, float *gx,
                        float *gBm, float *gCm, float *gD)
{
    for (int b = 0; b < B; ++b)
        for (int d = 0; d < Di; ++d) {
            float gh[256];
            for (int n = 0; n < N; ++n)
                gh[n] = 0.0f;
            const float *Ad = A + (size_t)d * N;
            float *gAd = gA + (size_t)d * N;
            float gDd = 0.0f;
            for (int t = L - 1; t >= 0; --t) {
                size_t bt = (size_t)b * L + t;
                float dtv = dt[bt * Di + d], xv = x[bt * Di + d], g = gy[bt * Di + d];
                const float *Bt = Bm + bt * N, *Ct = Cm + bt * N;
                const float *ht = hs + (bt * Di + d) * N;
                const float *hp = hs + ((bt - (t > 0)) * Di + d) * N; /* read only when t > 0 */
                float *gBt = gBm + bt * N, *gCt = gCm + bt * N;
                float u = dtv * xv, gu = 0.0f, gdtv = 0.0f;
                gDd += g * xv;
#pragma omp simd reduction(+ : gu, gdtv)
                for (int n = 0; n < N; ++n) {
                    gCt[n] += g * ht[n];
                    float ghn = gh[n] + g * Ct[n];
                    gBt[n] += ghn * u;
                    gu += ghn * Bt[n];
                    float dA = dtv * Ad[n];
                    int clipped = dA < dA_min;
                    float a = expf(clipped ? dA_min : dA);
                    float hprev = t > 0 ? hp[n] : 0.0f;
                    float gdA = clipped ? 0.0f : ghn * hprev * a;
                    gdtv += gdA * Ad[n];
                    gAd[n] += gdA * dtv;
                    gh[n] = ghn * a;
                }
                gdt[bt * Di + d] = gdtv + gu * xv;
                gx[bt * Di + d] = gu * dtv + g * D[d];
            }
            gD[d] += gDd;
        }
}
