/* SPDX-License-Identifier: MIT */
/* CUDA kernels of the layer kinds after Mamba-1 (kernels/ssm_kernels_cuda.h,
 * "Mamba-2, sliding-window attention, gated MLP"): the Mamba-2 scan over
 * heads, the gated group-wise RMSNorm, the SiLU-gated product of the MLPs,
 * and the sliding-window attention step with its per-stream KV ring.
 *
 * STATUS: these kernels compile (meson builds them whenever nvcc is found)
 * but have NOT yet run on a GPU; tests/gpu/test_cuda_hybrid.c holds them to
 * the plain-C reference and is run by tests/gpu/run.sh on a device machine.
 *
 * The oracle is the CPU code: ssm_scan_heads_step_f32 and
 * ssm_rmsnorm_gated_f32 (kernels/cpu/ssm_kernels_ref.c, _mixer.c: mamba_ssm
 * modules/mamba2.py Mamba2.step), ssm_attn_step with the reference core
 * (kernels/cpu/ssm_kernels_attn.c, _ref.c: mamba_ssm modules/mha.py MHA with
 * a window).  Each kernel does the reference's operations in the reference's
 * order where the order can matter (the softmax: max first, then exp and the
 * weighted sums in frame order, one division at the end; RoPE with separate
 * multiplies and adds, cos/sin in float64); what differs is the order of
 * the dot products' sums (warp shuffle trees), expf/log1pf within 2 ulp, and
 * FMA contraction in the state update.
 *
 * Layout choices:
 *  - Mamba-2 scan: as the Mamba-1 scan of ssm_kernels.cu, G lanes of a warp
 *    (the power of two >= d_state, at most 32) share one channel c = h·P + p
 *    and keep its d_state/G state elements in registers for every frame of
 *    the call; Δ and exp(Δ·A) are per head, so the lanes of a head's P
 *    channels compute the same scalar (cheaper than a broadcast).
 *  - attention: one block per stream walks the stream's frames in order
 *    (the ring and the counter make frame t+1 depend on frame t): RoPE of q
 *    (in place in the in_proj row) and of k (into the ring), v into the ring,
 *    then one warp per query head: the scores are computed twice (once for
 *    the max, once for exp and the sums) instead of being stored, so any
 *    window fits without scratch memory.
 *  - everything is enqueued on the caller's stream; nothing synchronises or
 *    allocates (model/src/model_cuda.c captures a whole frame into a graph).
 */
#include "kernels/ssm_kernels_cuda.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#define M2_MAX_K (SSM_CUDA_MAX_D_STATE / 32) /* state elements per lane */
#define AT_MAX_PL (SSM_CUDA_MAX_HEAD_DIM / 32) /* head channels per lane */
#define AT_THREADS 128

static inline cudaStream_t hy_stream(void *s)
{
    return (cudaStream_t)s;
}

static inline int hy_status(void)
{
    return (int)cudaGetLastError();
}

static inline unsigned hy_blocks(size_t n, unsigned per_block)
{
    size_t b = (n + per_block - 1) / per_block;
    return b > 0x7fffffffu ? 0x7fffffffu : (unsigned)(b ? b : 1);
}

static __device__ __forceinline__ float hy_silu(float v)
{
    return v / (1.0f + expf(-v));
}

static __device__ __forceinline__ float hy_softplus(float v)
{
    return v > 20.0f ? v : log1pf(expf(v));
}

/* ---- Mamba-2 scan over heads -------------------------------------------- */

__global__ void scan_heads_kernel(float *y, size_t ld_y, float *const *states, size_t offset,
                                  const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                  const float *dt_bias, const float *A, const float *B,
                                  const float *C, size_t ld_bc, const float *D, int n_frames,
                                  int n_heads, int head_dim, int n_groups, int d_state, int G,
                                  int n_cblocks)
{
    const int d_inner = n_heads * head_dim;
    const int cpb = blockDim.x / G;
    const size_t s = blockIdx.x / (unsigned)n_cblocks;
    const int g = threadIdx.x % G;
    const int c = (int)(blockIdx.x % (unsigned)n_cblocks) * cpb + (int)threadIdx.x / G;
    const bool valid = c < d_inner; /* padding lanes still reach the shuffles */
    const int h = valid ? c / head_dim : 0;
    const int grp = h / (n_heads / n_groups);
    const int K = (d_state + G - 1) / G;

    float st[M2_MAX_K];
    float *S = valid ? states[s] + offset + (size_t)c * d_state : NULL;
#pragma unroll
    for (int k = 0; k < M2_MAX_K; ++k) {
        int n = g + k * G;
        st[k] = (valid && k < K && n < d_state) ? S[n] : 0.0f;
    }
    const float Ah = valid ? A[h] : 0.0f;
    const float Dh = (valid && D) ? D[h] : 0.0f;
    const float bias = (valid && dt_bias) ? dt_bias[h] : 0.0f;

    for (int t = 0; t < n_frames; ++t) {
        size_t row = s * (size_t)n_frames + (size_t)t;
        float xv = 0.0f, d = 0.0f;
        if (valid) {
            xv = x[row * ld_x + c];
            d = dt[row * ld_dt + h] + bias;
        }
        const float delta = hy_softplus(d);
        const float dA = expf(delta * Ah); /* dA = torch.exp(dt * A) */
        const float dx = delta * xv;
        const float *Br = B + row * ld_bc + (size_t)grp * d_state;
        const float *Cr = C + row * ld_bc + (size_t)grp * d_state;
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < M2_MAX_K; ++k) {
            int n = g + k * G;
            if (valid && k < K && n < d_state) {
                st[k] = st[k] * dA + dx * Br[n];
                acc += st[k] * Cr[n];
            }
        }
        for (int off = G / 2; off > 0; off >>= 1)
            acc += __shfl_xor_sync(0xffffffffu, acc, off, G);
        if (valid && g == 0)
            y[row * ld_y + c] = D ? acc + Dh * xv : acc;
    }
#pragma unroll
    for (int k = 0; k < M2_MAX_K; ++k) {
        int n = g + k * G;
        if (valid && k < K && n < d_state)
            S[n] = st[k];
    }
}

extern "C" int ssm_cuda_scan_heads(float *y, size_t ld_y, float *const *states, size_t offset,
                                   const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                   const float *dt_bias, const float *A, const float *B,
                                   const float *C, size_t ld_bc, const float *D, int n_streams,
                                   int n_frames, int n_heads, int head_dim, int n_groups,
                                   int d_state, void *stream)
{
    if (n_streams < 1 || n_frames < 1 || n_heads < 1 || head_dim < 1 || n_groups < 1 ||
        n_heads % n_groups != 0 || d_state < 1 || d_state > SSM_CUDA_MAX_D_STATE ||
        (long long)n_heads * head_dim > 0x7fffffffLL)
        return (int)cudaErrorInvalidValue;
    const int threads = 256;
    int G = 1;
    while (G < d_state && G < 32)
        G *= 2;
    const int cpb = threads / G;
    const int d_inner = n_heads * head_dim;
    const int n_cblocks = (d_inner + cpb - 1) / cpb;
    size_t grid = (size_t)n_streams * (size_t)n_cblocks;
    if (grid > 0x7fffffffu)
        return (int)cudaErrorInvalidValue;
    scan_heads_kernel<<<(unsigned)grid, threads, 0, hy_stream(stream)>>>(
        y, ld_y, states, offset, x, ld_x, dt, ld_dt, dt_bias, A, B, C, ld_bc, D, n_frames,
        n_heads, head_dim, n_groups, d_state, G, n_cblocks);
    return hy_status();
}

/* ---- gated group-wise RMSNorm: one warp per (row, group) ---------------- */

__global__ void rmsnorm_gated_kernel(float *y, size_t ld_y, const float *z, size_t ld_z,
                                     const float *w, int n_rows, int n_norm_groups,
                                     int group_size, float eps)
{
    long wid = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (wid >= (long)n_rows * n_norm_groups)
        return; /* uniform per warp */
    long row = wid / n_norm_groups;
    int grp = (int)(wid % n_norm_groups);
    float *yi = y + (size_t)row * ld_y + (size_t)grp * group_size;
    const float *zi = z + (size_t)row * ld_z + (size_t)grp * group_size;
    const float *wg = w + (size_t)grp * group_size;
    double ss = 0.0;
    /* norm_before_gate=False: y ⊙ SiLU(z) first; each lane keeps its own
     * elements, so the write-back needs no synchronisation */
    for (int k = lane; k < group_size; k += 32) {
        float v = yi[k] * hy_silu(zi[k]);
        yi[k] = v;
        ss += (double)v * v;
    }
    for (int off = 16; off > 0; off >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, off);
    float rstd = (float)(1.0 / sqrt(ss / group_size + (double)eps));
    for (int k = lane; k < group_size; k += 32)
        yi[k] = yi[k] * rstd * wg[k];
}

extern "C" int ssm_cuda_rmsnorm_gated(float *y, size_t ld_y, const float *z, size_t ld_z,
                                      const float *w, int n_rows, int dim, int group_size,
                                      float eps, void *stream)
{
    if (n_rows < 1 || dim < 1 || group_size < 1 || dim % group_size != 0)
        return (int)cudaErrorInvalidValue;
    const unsigned threads = 256;
    size_t warps = (size_t)n_rows * (size_t)(dim / group_size);
    rmsnorm_gated_kernel<<<hy_blocks(warps, threads / 32), threads, 0, hy_stream(stream)>>>(
        y, ld_y, z, ld_z, w, n_rows, dim / group_size, group_size, eps);
    return hy_status();
}

/* ---- SiLU-gated product -------------------------------------------------- */

__global__ void gate_silu_kernel(float *out, size_t ld_out, const float *a, size_t ld_a,
                                 const float *b, size_t ld_b, int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)dim, j = i % (size_t)dim;
        out[r * ld_out + j] = a[r * ld_a + j] * hy_silu(b[r * ld_b + j]);
    }
}

extern "C" int ssm_cuda_gate_silu(float *out, size_t ld_out, const float *a, size_t ld_a,
                                  const float *b, size_t ld_b, int n_rows, int dim, void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    size_t blocks = ((size_t)n_rows * (size_t)dim + 255) / 256;
    if (blocks > 65536)
        blocks = 65536; /* the grid-stride loop takes the rest */
    gate_silu_kernel<<<(unsigned)blocks, 256, 0, hy_stream(stream)>>>(out, ld_out, a, ld_a, b,
                                                                      ld_b, n_rows, dim);
    return hy_status();
}

/* ---- sliding-window attention --------------------------------------------- */

#define AT_COUNTER_SPLIT 16777216ull /* 2^24: the counter's low float stays exact */

/* Rotates the pair (x0, x1) by the angle whose cos/sin are c, s, with the
 * reference's separately rounded operations (no FMA contraction). */
static __device__ __forceinline__ void hy_rot(float x0, float x1, float c, float s, float *o0,
                                              float *o1)
{
    *o0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    *o1 = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
}

/* q_h · K[r, g] over the head's channels, lanes over channels, the sum in
 * every lane.  qreg: the lane's channels of q (d = lane + 32m). */
static __device__ __forceinline__ float hy_score(const float *qreg, const float *k, int head_dim,
                                                 int lane)
{
    float part = 0.0f;
#pragma unroll
    for (int m = 0; m < AT_MAX_PL; ++m) {
        int d = lane + 32 * m;
        if (d < head_dim)
            part += qreg[m] * k[d];
    }
    for (int off = 16; off > 0; off >>= 1)
        part += __shfl_xor_sync(0xffffffffu, part, off);
    return part;
}

__global__ void __launch_bounds__(AT_THREADS)
attn_kernel(float *y, size_t ld_y, float *const *states, size_t offset, float *qkv, size_t ld_in,
            const double *inv_freq, int n_frames, int n_heads, int n_heads_kv, int head_dim,
            int window, int rot_dim, int interleaved, float scale)
{
    __shared__ float cs[SSM_CUDA_MAX_HEAD_DIM / 2], sn[SSM_CUDA_MAX_HEAD_DIM / 2];
    const size_t s = blockIdx.x;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, n_warps = blockDim.x / 32;
    const size_t nq = (size_t)n_heads * head_dim, nkv = (size_t)n_heads_kv * head_dim;
    float *Kr = states[s] + offset, *Vr = Kr + (size_t)window * nkv;
    float *ctr = Vr + (size_t)window * nkv;
    /* every thread reads the counter once; thread 0 writes it back at the end */
    uint64_t pos = (uint64_t)ctr[0] + (uint64_t)ctr[1] * AT_COUNTER_SPLIT;
    const int half = rot_dim / 2, per_kv = n_heads / n_heads_kv;
    const int k_items = half + (head_dim - rot_dim); /* per KV head: pairs, then plain channels */
    __syncthreads(); /* nobody writes ctr before every thread has read it */

    for (int t = 0; t < n_frames; ++t, ++pos) {
        const size_t row = s * (size_t)n_frames + (size_t)t;
        float *q = qkv + row * ld_in;
        const float *kin = q + nq, *vin = kin + nkv;
        const size_t ring = (size_t)(pos % (uint64_t)window);
        float *kr = Kr + ring * nkv, *vr = Vr + ring * nkv;
        /* the angles of this position, in float64 as ssm_rope_f32, rounded to fp32 */
        for (int i = tid; i < half; i += blockDim.x) {
            double ang = (double)pos * inv_freq[i];
            cs[i] = (float)cos(ang);
            sn[i] = (float)sin(ang);
        }
        __syncthreads();
        /* q: its rotated pairs in place (a thread owns a whole pair) */
        for (int it = tid; it < n_heads * half; it += blockDim.x) {
            int hh = it / half, i = it % half;
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float *qh = q + (size_t)hh * head_dim;
            hy_rot(qh[i0], qh[i1], cs[i], sn[i], &qh[i0], &qh[i1]);
        }
        /* k into the ring row: rotated pairs, then the plain channels */
        for (int it = tid; it < n_heads_kv * k_items; it += blockDim.x) {
            int hh = it / k_items, i = it % k_items;
            const float *kh = kin + (size_t)hh * head_dim;
            float *ko = kr + (size_t)hh * head_dim;
            if (i < half) {
                int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
                hy_rot(kh[i0], kh[i1], cs[i], sn[i], &ko[i0], &ko[i1]);
            } else {
                int d = rot_dim + (i - half);
                ko[d] = kh[d];
            }
        }
        for (size_t i = (size_t)tid; i < nkv; i += blockDim.x)
            vr[i] = vin[i];
        __syncthreads(); /* the ring row and the rotated q are visible to the block */

        const uint64_t seen = pos + 1;
        const int n_keys = seen < (uint64_t)window ? (int)seen : window;
        const int first = (int)((seen - (uint64_t)n_keys) % (uint64_t)window);
        for (int hh = warp; hh < n_heads; hh += n_warps) {
            const size_t go = (size_t)(hh / per_kv) * head_dim;
            const float *qh = q + (size_t)hh * head_dim;
            float qreg[AT_MAX_PL], acc[AT_MAX_PL];
#pragma unroll
            for (int m = 0; m < AT_MAX_PL; ++m) {
                int d = lane + 32 * m;
                qreg[m] = d < head_dim ? qh[d] : 0.0f;
                acc[m] = 0.0f;
            }
            /* pass 1: the largest score (frames oldest first) */
            float mx = -INFINITY;
            int r = first;
            for (int j = 0; j < n_keys; ++j) {
                const float *kj = Kr + (size_t)r * nkv + go;
                float sc = __fmul_rn(hy_score(qreg, kj, head_dim, lane), scale);
                mx = sc > mx ? sc : mx;
                r = r + 1 == window ? 0 : r + 1;
            }
            /* pass 2: the same scores again, exp(s − max), Σ and the weighted values */
            float zsum = 0.0f;
            r = first;
            for (int j = 0; j < n_keys; ++j) {
                const float *kj = Kr + (size_t)r * nkv + go;
                float sc = __fmul_rn(hy_score(qreg, kj, head_dim, lane), scale);
                float p = expf(__fsub_rn(sc, mx));
                zsum += p;
                const float *v = Vr + (size_t)r * nkv + go;
#pragma unroll
                for (int m = 0; m < AT_MAX_PL; ++m) {
                    int d = lane + 32 * m;
                    if (d < head_dim)
                        acc[m] += p * v[d];
                }
                r = r + 1 == window ? 0 : r + 1;
            }
            float *yh = y + row * ld_y + (size_t)hh * head_dim;
#pragma unroll
            for (int m = 0; m < AT_MAX_PL; ++m) {
                int d = lane + 32 * m;
                if (d < head_dim)
                    yh[d] = acc[m] / zsum;
            }
        }
        __syncthreads(); /* the next frame overwrites a ring row read here */
    }
    if (tid == 0) {
        ctr[0] = (float)(pos % AT_COUNTER_SPLIT);
        ctr[1] = (float)(pos / AT_COUNTER_SPLIT);
    }
}

extern "C" int ssm_cuda_attn(float *y, size_t ld_y, float *const *states, size_t offset,
                             float *qkv, size_t ld_in, const double *inv_freq, int n_streams,
                             int n_frames, int n_heads, int n_heads_kv, int head_dim, int window,
                             int rot_dim, int rot_interleaved, float scale, void *stream)
{
    if (n_streams < 1 || n_frames < 1 || n_heads < 1 || n_heads_kv < 1 ||
        n_heads % n_heads_kv != 0 || head_dim < 1 || head_dim > SSM_CUDA_MAX_HEAD_DIM ||
        window < 1 || rot_dim < 0 || rot_dim % 2 != 0 || rot_dim > head_dim ||
        (rot_dim > 0 && !inv_freq) || (unsigned)n_streams > 0x7fffffffu)
        return (int)cudaErrorInvalidValue;
    attn_kernel<<<(unsigned)n_streams, AT_THREADS, 0, hy_stream(stream)>>>(
        y, ld_y, states, offset, qkv, ld_in, inv_freq, n_frames, n_heads, n_heads_kv, head_dim,
        window, rot_dim, rot_interleaved, scale);
    return hy_status();
}
