/* SPDX-License-Identifier: MIT */
/* The selective scan of train/model.py (scan_sequential) and its gradient, as
 * plain loops for training on a CPU: train/scan_ext.py compiles this file
 * into train/cache/ with the system's C compiler and calls it through ctypes
 * from a torch.autograd.Function.  PyTorch runs the same recurrence as ~20
 * small tensor operations per frame, whose dispatch and autograd bookkeeping
 * cost far more than their arithmetic; here one pass over each tensor does it.
 *
 * Shapes (all float32, C-contiguous): dt, x, y {B, L, Di}; At {N, Di} (A
 * transposed); Bm, Cm {B, L, N}; D {Di}; hs {B, L, N, Di} (the state after
 * each frame, written by the forward pass and read by the backward one; NULL
 * in a forward pass that needs no gradient, which then keeps the state in
 * scratch {N, Di}).
 *
 * Recurrence (Gu & Dao 2023, Mamba, eq. 2a-2b, with the Δ·A bound of
 * train/model.py): dA = max(Δ·A, dA_min); h_t = exp(dA)·h_{t-1} + Δ·x_t·B_t;
 * y_t = Σ_n h_t·C_t + D·x_t, h_0 = 0.  The backward pass is its adjoint, run
 * from the last frame to the first; the bound passes no gradient where it
 * clips (as torch.clamp: gradient where Δ·A >= dA_min).
 *
 * Loop order: stream, frame, state index n, then the Di channels innermost,
 * so every inner loop runs over contiguous rows ({N, Di} states, channels of
 * dt, x, y) and the per-channel sums over n accumulate in a row instead of a
 * horizontal reduction per channel and frame.  Built with -ffast-math
 * -fopenmp-simd: the channel loops are vectorised with glibc's vector expf
 * (libmvec); sums are reassociated.  No allocation (the caller passes the
 * scratch); calls on distinct buffers may run in parallel. */
#include <math.h>
#include <stddef.h>
#include <string.h>

/* scratch: {N, Di} floats when hs is NULL, else unused (may be NULL) */
void ssm_train_scan_fwd(int B, int L, int Di, int N, float dA_min, const float *dt, const float *At,
                        const float *x, const float *Bm, const float *Cm, const float *D, float *y,
                        float *hs, float *scratch)
{
    const size_t S = (size_t)N * Di;
    for (int b = 0; b < B; ++b) {
        if (!hs) memset(scratch, 0, S * sizeof *scratch);
        for (int t = 0; t < L; ++t) {
            const size_t bt = (size_t)b * L + t;
            const float *dtt = dt + bt * Di, *xt = x + bt * Di, *Bt = Bm + bt * N, *Ct = Cm + bt * N;
            float *yt = y + bt * Di;
            float *ht = hs ? hs + bt * S : scratch;
            const float *hp = hs ? (t > 0 ? hs + (bt - 1) * S : NULL) : scratch;
#pragma omp simd
            for (int d = 0; d < Di; ++d)
                yt[d] = 0.0f;
            for (int n = 0; n < N; ++n) {
                const float *An = At + (size_t)n * Di;
                const float *hpn = hp ? hp + (size_t)n * Di : NULL;
                float *hn = ht + (size_t)n * Di;
                const float bn = Bt[n], cn = Ct[n];
#pragma omp simd
                for (int d = 0; d < Di; ++d) {
                    float dA = dtt[d] * An[d];
                    dA = dA < dA_min ? dA_min : dA;
                    const float h = (hpn ? expf(dA) * hpn[d] : 0.0f) + dtt[d] * xt[d] * bn;
                    hn[d] = h;
                    yt[d] += h * cn;
                }
            }
#pragma omp simd
            for (int d = 0; d < Di; ++d)
                yt[d] += D[d] * xt[d];
        }
    }
}

/* Gradients of a scalar loss given gy {B, L, Di}: writes gdt, gx {B, L, Di};
 * adds into gD {Di}, gAt {N, Di}, gBm, gCm {B, L, N} (sums over channels and
 * batch: the caller passes them zeroed).  scratch {N, Di} floats (the state's
 * gradient). */
void ssm_train_scan_bwd(int B, int L, int Di, int N, float dA_min, const float *dt, const float *At,
                        const float *x, const float *Bm, const float *Cm, const float *D,
                        const float *hs, const float *gy, float *gdt, float *gAt, float *gx,
                        float *gBm, float *gCm, float *gD, float *scratch)
{
    const size_t S = (size_t)N * Di;
    float *gh = scratch;
    for (int b = 0; b < B; ++b) {
        memset(gh, 0, S * sizeof *gh);
        for (int t = L - 1; t >= 0; --t) {
            const size_t bt = (size_t)b * L + t;
            const float *dtt = dt + bt * Di, *xt = x + bt * Di, *g = gy + bt * Di;
            const float *Bt = Bm + bt * N, *Ct = Cm + bt * N;
            const float *ht = hs + bt * S;
            const float *hp = t > 0 ? hs + (bt - 1) * S : NULL;
            float *gBt = gBm + bt * N, *gCt = gCm + bt * N;
            float *gdtt = gdt + bt * Di, *gxt = gx + bt * Di; /* gu accumulates in gxt, gΔ·A in gdtt */
#pragma omp simd
            for (int d = 0; d < Di; ++d) {
                gdtt[d] = 0.0f;
                gxt[d] = 0.0f;
                gD[d] += g[d] * xt[d];
            }
            for (int n = 0; n < N; ++n) {
                const float *An = At + (size_t)n * Di, *hn = ht + (size_t)n * Di;
                const float *hpn = hp ? hp + (size_t)n * Di : NULL;
                float *ghn_row = gh + (size_t)n * Di, *gAn = gAt + (size_t)n * Di;
                const float bn = Bt[n], cn = Ct[n];
                float gc = 0.0f, gb = 0.0f;
#pragma omp simd reduction(+ : gc, gb)
                for (int d = 0; d < Di; ++d) {
                    gc += g[d] * hn[d];
                    const float ghn = ghn_row[d] + g[d] * cn;
                    gb += ghn * dtt[d] * xt[d];
                    gxt[d] += ghn * bn; /* gu */
                    float dA = dtt[d] * An[d];
                    const int clipped = dA < dA_min;
                    const float a = expf(clipped ? dA_min : dA);
                    const float gdA = clipped || !hpn ? 0.0f : ghn * hpn[d] * a;
                    gdtt[d] += gdA * An[d];
                    gAn[d] += gdA * dtt[d];
                    ghn_row[d] = ghn * a;
                }
                gCt[n] += gc;
                gBt[n] += gb;
            }
#pragma omp simd
            for (int d = 0; d < Di; ++d) {
                const float gu = gxt[d];
                gdtt[d] += gu * xt[d];
                gxt[d] = gu * dtt[d] + g[d] * D[d];
            }
        }
    }
}
