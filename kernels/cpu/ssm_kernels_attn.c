/* SPDX-License-Identifier: MIT */
/* Sliding-window attention layer step (ssm_kernels.h, "sliding-window
 * attention"): RoPE of the new frame's q and k, the write of k and v into the
 * stream's ring, and the attention core over the ring, stream by stream.
 *
 * Design notes.
 *  - The ring holds keys already rotated at their own position (as mha.py's
 *    KV cache does), so a step rotates one q and one k per head, whatever the
 *    window; q·k then depends on the positions only through their
 *    difference (rotations compose), which is below the window.
 *  - The counter is the stream's frame count, kept as two fp32 integers
 *    (lo < 2^24, hi) so the state stays an array of finite floats that
 *    snapshots checksum and restores validate like the SSM states; it fixes
 *    the ring row, the valid rows and the RoPE angle (computed in float64 from
 *    the exact count, so a stream that has run for days rotates as precisely
 *    as on its first frame).
 *  - The forward is the step applied frame after frame: a chunk gives the
 *    bits of its frames stepped (the daemon's chunked file jobs rely on it).
 * Source of the math: state-spaces/mamba mamba_ssm/modules/mha.py `MHA`
 * (layout, GQA, scale, mlp_dim), flash_attn RotaryEmbedding (RoPE). */
#include "kernels/ssm_kernels.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define COUNTER_SPLIT 16777216.0 /* 2^24: lo < 2^24 is an exact float */

size_t ssm_attn_state_floats(const ssm_attn *a)
{
    return 2 * (size_t)a->window * (size_t)a->n_heads_kv * (size_t)a->head_dim + 2;
}

size_t ssm_attn_counter_at(const ssm_attn *a)
{
    return ssm_attn_state_floats(a) - 2;
}

size_t ssm_attn_scratch_floats(const ssm_attn *a)
{
    /* scores {window}, rotated q {n_heads, head_dim} */
    return (size_t)a->window + (size_t)a->n_heads * (size_t)a->head_dim + 16;
}

void ssm_attn_set_isa(ssm_attn *a, ssm_isa isa)
{
    a->core = ssm_attn_core_get(isa);
    a->gate = ssm_gate_silu_get(isa);
}

void ssm_attn_set_reference(ssm_attn *a)
{
    a->core = ssm_attn_core_f32;
    a->gate = ssm_gate_silu_f32;
}

ssm_attn_core_fn ssm_attn_core_get(ssm_isa isa)
{
    (void)isa; /* the _vec clones: AVX-512, AVX2 or baseline, the same bits */
    return ssm_attn_core_f32_vec;
}

void ssm_rope_f32(float *x, int n_heads, int head_dim, int rot_dim, int interleaved,
                  const double *inv_freq, uint64_t pos)
{
    assert(rot_dim >= 0 && rot_dim % 2 == 0 && rot_dim <= head_dim);
    const int half = rot_dim / 2;
    for (int i = 0; i < half; ++i) {
        const double ang = (double)pos * inv_freq[i];
        const float c = (float)cos(ang), s = (float)sin(ang);
        const int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
        for (int h = 0; h < n_heads; ++h) {
            float *xh = x + (size_t)h * head_dim;
            const float x0 = xh[i0], x1 = xh[i1];
            xh[i0] = x0 * c - x1 * s;
            xh[i1] = x1 * c + x0 * s;
        }
    }
}

static uint64_t counter_get(const float *ctr)
{
    return (uint64_t)ctr[0] + (uint64_t)ctr[1] * (uint64_t)COUNTER_SPLIT;
}

static void counter_set(float *ctr, uint64_t pos)
{
    ctr[0] = (float)(pos % (uint64_t)COUNTER_SPLIT);
    ctr[1] = (float)(pos / (uint64_t)COUNTER_SPLIT);
}

/* One frame of one stream: row qkv in, row y out, state updated. */
static void attn_frame(const ssm_attn *a, float *y, const float *qkv, float *state,
                       float *scratch)
{
    const int H = a->n_heads, Hkv = a->n_heads_kv, P = a->head_dim, W = a->window;
    const size_t nq = (size_t)H * P, nkv = (size_t)Hkv * P;
    float *K = state, *V = state + (size_t)W * nkv, *ctr = V + (size_t)W * nkv;
    float *scores = scratch, *q = scratch + W;
    const uint64_t pos = counter_get(ctr);
    const int row = (int)(pos % (uint64_t)W);
    memcpy(q, qkv, nq * sizeof *q);
    float *k = K + (size_t)row * nkv;
    memcpy(k, qkv + nq, nkv * sizeof *k);
    memcpy(V + (size_t)row * nkv, qkv + nq + nkv, nkv * sizeof *V);
    if (a->rot_dim > 0) {
        ssm_rope_f32(q, H, P, a->rot_dim, a->rot_interleaved, a->inv_freq, pos);
        ssm_rope_f32(k, Hkv, P, a->rot_dim, a->rot_interleaved, a->inv_freq, pos);
    }
    const uint64_t seen = pos + 1;
    const int n_keys = seen < (uint64_t)W ? (int)seen : W;
    const int first = (int)((seen - (uint64_t)n_keys) % (uint64_t)W);
    a->core(y, q, K, V, W, first, n_keys, H, Hkv, P, a->scale, scores);
    counter_set(ctr, seen);
}

/* The in-mixer MLP of mha.py (mlp_dim > 0): y[nq:] = up·SiLU(gate). */
static void attn_mlp(const ssm_attn *a, float *y, size_t ld_y, const float *qkv, size_t ld_in,
                     int n_rows)
{
    const size_t nq = (size_t)a->n_heads * a->head_dim;
    const size_t in_mlp = nq + 2 * (size_t)a->n_heads_kv * a->head_dim;
    const int half = a->mlp_dim / 2;
    for (int i = 0; i < n_rows; ++i)
        memcpy(y + (size_t)i * ld_y + nq, qkv + (size_t)i * ld_in + in_mlp,
               (size_t)half * sizeof *y);
    a->gate(y + nq, ld_y, qkv + in_mlp + half, ld_in, n_rows, half);
}

void ssm_attn_step(const ssm_attn *a, float *y, size_t ld_y, const float *qkv, size_t ld_in,
                   float *const *state, int n_streams, float *scratch)
{
    assert(a && y && qkv && state && scratch && a->window >= 1 && a->n_heads_kv >= 1 &&
           a->n_heads % a->n_heads_kv == 0);
    for (int s = 0; s < n_streams; ++s)
        attn_frame(a, y + (size_t)s * ld_y, qkv + (size_t)s * ld_in, state[s], scratch);
    if (a->mlp_dim > 0)
        attn_mlp(a, y, ld_y, qkv, ld_in, n_streams);
}

void ssm_attn_forward(const ssm_attn *a, float *y, size_t ld_y, const float *qkv, size_t ld_in,
                      float *state, int n_frames, float *scratch)
{
    assert(a && y && qkv && state && scratch);
    for (int t = 0; t < n_frames; ++t)
        attn_frame(a, y + (size_t)t * ld_y, qkv + (size_t)t * ld_in, state, scratch);
    if (a->mlp_dim > 0)
        attn_mlp(a, y, ld_y, qkv, ld_in, n_frames);
}
