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

/* ---- Mamba-2 (mamba_ssm/modules/mamba2.py Mamba2.step; arXiv:2405.21060) -- */

void ssm_rmsnorm_gated_f32(float *y, size_t ld_y, const float *z, size_t ld_z,
                           const float *w, int n_rows, int dim, int n_groups, float eps,
                           ssm_gate_silu_fn gate)
{
    assert(y && z && w && gate && n_groups >= 1 && dim % n_groups == 0);
    const int gs = dim / n_groups;
    gate(y, ld_y, z, ld_z, n_rows, dim); /* norm_before_gate=False: gate first */
    for (int g = 0; g < n_groups; ++g)
        ssm_rmsnorm_f32(y + (size_t)g * gs, ld_y, y + (size_t)g * gs, ld_y, w + (size_t)g * gs,
                        n_rows, gs, eps);
}

void ssm_mixer2_set_isa(ssm_mixer2 *mx, ssm_isa isa)
{
    mx->conv = ssm_conv_step_get(isa);
    mx->softplus = ssm_softplus_get(isa);
    mx->scan = ssm_scan_heads_step_get(isa);
    mx->gate = ssm_gate_silu_get(isa);
    mx->chunked = 0;
}

void ssm_mixer2_set_reference(ssm_mixer2 *mx)
{
    mx->conv = ssm_conv_step_f32;
    mx->softplus = ssm_softplus_f32;
    mx->scan = ssm_scan_heads_step_f32;
    mx->gate = ssm_gate_silu_f32;
    mx->chunked = 0;
}

static size_t conv_dim2(const ssm_mixer2 *mx)
{
    return (size_t)mx->d_inner + 2 * (size_t)mx->n_groups * (size_t)mx->d_state;
}

size_t ssm_mixer2_scratch_floats(const ssm_mixer2 *mx)
{
    /* a tile (step) or block (forward) of xBC and Δ rows, then the SSD scratch */
    size_t rows = SSM_SSD_CHUNK > SSM_MIXER_TILE ? SSM_SSD_CHUNK : SSM_MIXER_TILE;
    return rows * (conv_dim2(mx) + (size_t)mx->n_heads) + ssm_ssd_scratch_floats();
}

/* rows [0, nt) of a tile or block, their conv done: Δ, the scan, the gated
 * norm.  The scan: rows are streams (ssm_state {nt} pointers: a step), or
 * frames of one stream (one_state: the SSD form when ssd_scratch is given,
 * else frame by frame, each frame the step's scan of one row). */
static void mixer2_rows(const ssm_mixer2 *mx, float *y, size_t ld_y, const float *in, size_t ld_in,
                        const float *xbc, size_t ldc, float *dt, float *const *ssm_state,
                        float *one_state, int nt, float *ssd_scratch)
{
    const int di = mx->d_inner, nh = mx->n_heads;
    const size_t gn = (size_t)mx->n_groups * mx->d_state;
    const size_t cd = conv_dim2(mx);
    /* Δ = softplus(dt + dt_bias), dt the last n_heads columns of in_proj's row */
    mx->softplus(dt, (size_t)nh, in + (size_t)di + cd, ld_in, mx->dt_bias, nt, nh);
    const float *x = xbc, *B = xbc + di, *C = xbc + di + gn;
    if (one_state && ssd_scratch)
        ssm_ssd_chunk_f32(y, ld_y, one_state, x, ldc, dt, (size_t)nh, mx->A, B, C, ldc, mx->D, nt,
                          nh, mx->head_dim, mx->n_groups, mx->d_state, ssd_scratch);
    else if (one_state)
        for (int t = 0; t < nt; ++t)
            mx->scan(y + (size_t)t * ld_y, ld_y, &one_state, x + (size_t)t * ldc, ldc,
                     dt + (size_t)t * nh, (size_t)nh, mx->A, B + (size_t)t * ldc, C + (size_t)t * ldc,
                     ldc, mx->D, 1, nh, mx->head_dim, mx->n_groups, mx->d_state);
    else
        mx->scan(y, ld_y, ssm_state, x, ldc, dt, (size_t)nh, mx->A, B, C, ldc, mx->D, nt, nh,
                 mx->head_dim, mx->n_groups, mx->d_state);
    /* y = RMSNorm_groups(y ⊙ SiLU(z)) · norm_w, z the first d_inner columns */
    ssm_rmsnorm_gated_f32(y, ld_y, in, ld_in, mx->norm_w, nt, di,
                          mx->norm_groups ? mx->norm_groups : mx->n_groups, mx->norm_eps, mx->gate);
}

void ssm_mixer2_step(const ssm_mixer2 *mx, float *y, size_t ld_y, const float *zxbcdt,
                     size_t ld_in, float *const *conv_state, float *const *ssm_state,
                     int n_streams, float *scratch)
{
    assert(mx && y && zxbcdt && scratch && mx->conv && mx->softplus && mx->scan && mx->gate);
    const size_t cd = conv_dim2(mx);
    float *xbc = scratch;                                   /* {T, conv_dim} */
    float *dt = xbc + (size_t)SSM_MIXER_TILE * cd;          /* {T, n_heads} */
    for (int t0 = 0; t0 < n_streams; t0 += SSM_MIXER_TILE) {
        const int nt = n_streams - t0 < SSM_MIXER_TILE ? n_streams - t0 : SSM_MIXER_TILE;
        const float *in = zxbcdt + (size_t)t0 * ld_in;
        /* xBC part of in_proj's output → causal conv → SiLU */
        mx->conv(xbc, cd, conv_state + t0, in + mx->d_inner, ld_in, mx->conv_w, mx->conv_b, nt,
                 (int)cd, mx->d_conv);
        mixer2_rows(mx, y + (size_t)t0 * ld_y, ld_y, in, ld_in, xbc, cd, dt, ssm_state + t0, NULL,
                    nt, NULL);
    }
}

void ssm_mixer2_forward(const ssm_mixer2 *mx, float *y, size_t ld_y, const float *zxbcdt,
                        size_t ld_in, float *conv_state, float *ssm_state, int n_frames,
                        float *scratch)
{
    assert(mx && y && zxbcdt && scratch && conv_state && ssm_state);
    const size_t cd = conv_dim2(mx);
    const int blk = SSM_SSD_CHUNK;
    float *xbc = scratch;                                   /* {blk, conv_dim} */
    float *dt = xbc + (size_t)blk * cd;                     /* {blk, n_heads} */
    float *ssd = dt + (size_t)blk * mx->n_heads;
    for (int t0 = 0; t0 < n_frames; t0 += blk) {
        const int nt = n_frames - t0 < blk ? n_frames - t0 : blk;
        const float *in = zxbcdt + (size_t)t0 * ld_in;
        /* the conv walks the frames in order, one row at a time */
        for (int t = 0; t < nt; ++t)
            mx->conv(xbc + (size_t)t * cd, cd, &conv_state, in + (size_t)t * ld_in + mx->d_inner,
                     ld_in, mx->conv_w, mx->conv_b, 1, (int)cd, mx->d_conv);
        /* the SSD form, or the scan frame by frame (the step's bits: every
         * other stage is row-wise) */
        mixer2_rows(mx, y + (size_t)t0 * ld_y, ld_y, in, ld_in, xbc, cd, dt, NULL, ssm_state, nt,
                    mx->chunked ? ssd : NULL);
    }
}
