/* SPDX-License-Identifier: MIT */
/* The per-layer mixer step (ssm_kernels.h, "mixer step"): everything of a
 * Mamba-1 layer between in_proj and out_proj — conv shift + depthwise conv +
 * bias + SiLU, x_proj, dt_proj + bias + softplus, the selective state update
 * with its vectorised exp, readout, D skip and the SiLU(z) gate — for a
 * batch of streams, run tile by tile: SSM_MIXER_TILE streams go through all
 * six stages before the next tile starts, so a tile's intermediates (x after
 * the conv, Δ|B|C, Δ) stay in L1 and never travel to L2 and back.
 *
 * The stages are the ISA's kernels (ssm_mixer_set_isa: the explicit
 * AVX-512 / AVX2+FMA variants or the portable ones; ssm_mixer_set_reference:
 * the plain-C reference of ssm_kernels_ref.c, libm exp), and the projections
 * whatever linear kernel the caller puts in (packed fp32/f16, int8, the
 * reference).  Every one of them is row-wise, so the mixer's bits are those
 * of the same kernels run one after the other over the whole batch, and a
 * stream's bits do not depend on its tile (tests/kernels kernels_mixer).
 * Source of the math: mamba_ssm/modules/mamba_simple.py `Mamba.step`. */
#include "kernels/ssm_kernels.h"

#include <assert.h>

void ssm_mixer_set_isa(ssm_mixer *mx, ssm_isa isa)
{
    mx->conv = ssm_conv_step_get(isa);
    mx->softplus = ssm_softplus_get(isa);
    mx->scan = ssm_scan_step_get(isa);
    mx->gate = ssm_gate_silu_get(isa);
}

void ssm_mixer_set_reference(ssm_mixer *mx)
{
    mx->conv = ssm_conv_step_f32;
    mx->softplus = ssm_softplus_f32;
    mx->scan = ssm_scan_step_f32;
    mx->gate = ssm_gate_silu_f32;
}

size_t ssm_mixer_scratch_floats(const ssm_mixer *mx)
{
    size_t ndbc = (size_t)mx->dt_rank + 2 * (size_t)mx->d_state;
    return (size_t)SSM_MIXER_TILE * (2 * (size_t)mx->d_inner + ndbc);
}

void ssm_mixer_step(const ssm_mixer *mx, float *y, size_t ld_y, const float *xz, size_t ld_xz,
                    float *const *conv_state, float *const *ssm_state, int n_streams,
                    float *scratch)
{
    assert(mx && y && xz && scratch && n_streams >= 0 && (n_streams == 0 || (conv_state && ssm_state)));
    assert(mx->conv && mx->softplus && mx->scan && mx->gate && mx->x_lin && mx->dt_lin);
    const int di = mx->d_inner, ds = mx->d_state, dr = mx->dt_rank;
    const int ndbc = dr + 2 * ds;
    const size_t ldi = (size_t)di, ldb = (size_t)ndbc;
    float *xc = scratch;                                  /* {T, d_inner} */
    float *dbc = xc + (size_t)SSM_MIXER_TILE * ldi;       /* {T, dt_rank + 2 d_state} */
    float *dt = dbc + (size_t)SSM_MIXER_TILE * ldb;       /* {T, d_inner} */
    for (int t0 = 0; t0 < n_streams; t0 += SSM_MIXER_TILE) {
        const int nt = n_streams - t0 < SSM_MIXER_TILE ? n_streams - t0 : SSM_MIXER_TILE;
        const float *xzt = xz + (size_t)t0 * ld_xz;
        float *yt = y + (size_t)t0 * ld_y;
        /* x part of in_proj's output → causal conv → SiLU */
        mx->conv(xc, ldi, conv_state + t0, xzt, ld_xz, mx->conv_w, mx->conv_b, nt, di, mx->d_conv);
        /* Δ|B|C = x_proj(x); Δ = softplus(dt_proj(Δ) + bias) */
        mx->x_lin(dbc, ldb, xc, ldi, mx->x_proj_w, NULL, nt, di, ndbc);
        mx->dt_lin(dt, ldi, dbc, ldb, mx->dt_proj_w, NULL, nt, dr, di);
        mx->softplus(dt, ldi, dt, ldi, mx->dt_bias, nt, di);
        /* state update, readout, D skip */
        mx->scan(yt, ld_y, ssm_state + t0, xc, ldi, dt, ldi, mx->A, dbc + dr, dbc + dr + ds, ldb,
                 mx->D, mx->dA_log_min, nt, di, ds);
        /* y ⊙ SiLU(z), z the second half of in_proj's output */
        mx->gate(yt, ld_y, xzt + ldi, ld_xz, nt, di);
    }
}
