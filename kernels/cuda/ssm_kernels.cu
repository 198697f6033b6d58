/* SPDX-License-Identifier: MIT */
/* CUDA kernels of kernels/ssm_kernels_cuda.h: the batched step and the
 * chunked scan that resumes a saved state.  The plain-C reference
 * (kernels/cpu/ssm_kernels_ref.c) is the oracle; tests/gpu/test_cuda.c holds
 * these to it on awkward sizes.
 *
 * Layout choices (DESIGN.md §4; Gu & Dao 2023 §3.3.2):
 *  - scan: G = the power of two >= d_state (at most 32) lanes of one warp
 *    share a channel; lane g keeps state elements n = g, g+G, ... in
 *    registers for every frame of the call, so a stream's SSM state crosses
 *    HBM once in and once out per call.  Consecutive lanes touch consecutive
 *    state elements and consecutive groups consecutive channels: the state
 *    read and write are fully coalesced.  y = Σ_n h·C is a shuffle reduction
 *    inside the group.
 *  - conv: one thread per (stream, channel), its d_conv window in registers.
 *  - everything is enqueued on the caller's stream, nothing synchronises or
 *    allocates: model/src/model_cuda.c captures a whole frame into a graph.
 */
#include "kernels/ssm_kernels_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#define MAX_K (SSM_CUDA_MAX_D_STATE / 32) /* state elements per lane */

static inline cudaStream_t as_stream(void *s)
{
    return (cudaStream_t)s;
}

static inline unsigned blocks_for(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return b > 0x7fffffffu ? 0x7fffffffu : (unsigned)(b ? b : 1);
}

static inline int launch_status(void)
{
    return (int)cudaGetLastError();
}

__device__ __forceinline__ float silu_f(float v)
{
    return v / (1.0f + expf(-v));
}

__device__ __forceinline__ float softplus_f(float v)
{
    return v > 20.0f ? v : log1pf(expf(v));
}

/* ---- RMSNorm: one warp per row ------------------------------------------ */

__global__ void rmsnorm_kernel(float *out, size_t ld_out, const float *x, size_t ld_x,
                               const float *w, int n_rows, int dim, float eps)
{
    long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= n_rows)
        return; /* a whole warp leaves together: row is uniform per warp */
    const float *xi = x + (size_t)row * ld_x;
    double ss = 0.0;
    for (int k = lane; k < dim; k += 32)
        ss += (double)xi[k] * xi[k];
    for (int off = 16; off > 0; off >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, off);
    float rstd = (float)(1.0 / sqrt(ss / dim + (double)eps));
    float *oi = out + (size_t)row * ld_out;
    for (int k = lane; k < dim; k += 32)
        oi[k] = xi[k] * rstd * w[k];
}

extern "C" int ssm_cuda_rmsnorm(float *out, size_t ld_out, const float *x, size_t ld_x,
                                const float *w, int n_rows, int dim, float eps, void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    const unsigned threads = 256;
    rmsnorm_kernel<<<blocks_for((size_t)n_rows, threads / 32), threads, 0, as_stream(stream)>>>(
        out, ld_out, x, ld_x, w, n_rows, dim, eps);
    return launch_status();
}

/* ---- causal conv + SiLU ------------------------------------------------- */

__global__ void conv_kernel(float *out, size_t ld_out, float *const *states, size_t offset,
                            const float *x, size_t ld_x, const float *w, const float *bias,
                            int n_streams, int n_frames, int d_inner, int d_conv)
{
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)n_streams * (size_t)d_inner)
        return;
    size_t s = idx / (size_t)d_inner;
    int c = (int)(idx % (size_t)d_inner);
    float *st = states[s] + offset + (size_t)c * d_conv;
    const float *wc = w + (size_t)c * d_conv;
    float win[SSM_CUDA_MAX_D_CONV], wk[SSM_CUDA_MAX_D_CONV];
    /* the common d_conv = 4 moves its window as one float4 when aligned */
    bool vec4 = d_conv == 4 && ((uintptr_t)st & 15u) == 0;
#pragma unroll
    for (int k = 0; k < SSM_CUDA_MAX_D_CONV; ++k) {
        win[k] = (!vec4 && k < d_conv) ? st[k] : 0.0f;
        wk[k] = k < d_conv ? wc[k] : 0.0f;
    }
    if (vec4) {
        float4 v = *(const float4 *)st;
        win[0] = v.x, win[1] = v.y, win[2] = v.z, win[3] = v.w;
    }
    float b = bias ? bias[c] : 0.0f;
    for (int t = 0; t < n_frames; ++t) {
        size_t row = s * (size_t)n_frames + (size_t)t;
        float xv = x[row * ld_x + c];
        /* roll left by one, the new value at tap d_conv-1 (static indices keep
         * the window in registers) */
#pragma unroll
        for (int k = 0; k < SSM_CUDA_MAX_D_CONV; ++k) {
            if (k + 1 < d_conv)
                win[k] = win[k + 1 < SSM_CUDA_MAX_D_CONV ? k + 1 : k];
            else if (k + 1 == d_conv)
                win[k] = xv;
        }
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < SSM_CUDA_MAX_D_CONV; ++k)
            if (k < d_conv)
                acc += win[k] * wk[k];
        if (bias)
            acc += b;
        out[row * ld_out + c] = silu_f(acc);
    }
    if (vec4) {
        *(float4 *)st = make_float4(win[0], win[1], win[2], win[3]);
        return;
    }
#pragma unroll
    for (int k = 0; k < SSM_CUDA_MAX_D_CONV; ++k)
        if (k < d_conv)
            st[k] = win[k];
}

extern "C" int ssm_cuda_conv(float *out, size_t ld_out, float *const *states, size_t offset,
                             const float *x, size_t ld_x, const float *w, const float *bias,
                             int n_streams, int n_frames, int d_inner, int d_conv, void *stream)
{
    if (n_streams < 1 || n_frames < 1 || d_inner < 1 || d_conv < 1 ||
        d_conv > SSM_CUDA_MAX_D_CONV)
        return (int)cudaErrorInvalidValue;
    const unsigned threads = 128;
    conv_kernel<<<blocks_for((size_t)n_streams * (size_t)d_inner, threads), threads, 0,
                  as_stream(stream)>>>(out, ld_out, states, offset, x, ld_x, w, bias, n_streams,
                                       n_frames, d_inner, d_conv);
    return launch_status();
}

/* ---- fused selective scan ------------------------------------------------ */

/* Where a thread of a scan block works (block = blockDim.x / G channels of
 * one stream, blockIdx.x = stream · n_cblocks + channel block): stream *s,
 * channel *c, lane *g of the channel's G-lane group.  Returns c < d_inner
 * (false: a padding lane, which still takes part in the shuffles). */
__device__ __forceinline__ bool scan_lane_of(int G, int n_cblocks, int d_inner, size_t *s, int *c,
                                             int *g)
{
    int cpb = blockDim.x / G;
    *s = blockIdx.x / (unsigned)n_cblocks;
    *g = threadIdx.x % G;
    *c = (int)(blockIdx.x % (unsigned)n_cblocks) * cpb + (int)threadIdx.x / G;
    return *c < d_inner;
}

/* One frame's inputs of channel c: x and Δ = softplus(dt + dt_bias); zeros
 * for a padding lane (c >= d_inner), which still runs the loop so that every
 * lane of the warp reaches the shuffles. */
__device__ __forceinline__ void frame_in(const float *x, size_t ld_x, const float *dt,
                                         size_t ld_dt, size_t row, int c, bool valid,
                                         float bias, float *xv, float *delta)
{
    float v = 0.0f, d = 0.0f;
    if (valid) {
        v = x[row * ld_x + c];
        d = dt[row * ld_dt + c] + bias;
    }
    *xv = v;
    *delta = softplus_f(d);
}

/* Sums acc over the G lanes of a channel's group (all 32 lanes take part)
 * and writes y = Σ + D·x, times SiLU(z) when gated, from the group's lane 0. */
__device__ __forceinline__ void frame_out(float acc, int G, int g, bool valid, float Dc,
                                          float xv, const float *z, size_t ld_z, float *y,
                                          size_t ld_y, size_t row, int c)
{
    for (int off = G / 2; off > 0; off >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, off, G);
    if (valid && g == 0) {
        float out = acc + Dc * xv;
        if (z)
            out *= silu_f(z[row * ld_z + c]);
        y[row * ld_y + c] = out;
    }
}

/* Block: blockDim.x threads = blockDim.x / G channels of one stream.
 * blockIdx.x = stream · n_cblocks + channel block. */
__global__ void scan_kernel(float *y, size_t ld_y, float *const *states, size_t offset,
                            const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                            const float *dt_bias, const float *A, const float *B,
                            const float *C, size_t ld_bc, const float *D, const float *z,
                            size_t ld_z, float dA_log_min, int n_frames, int d_inner,
                            int d_state, int G, int n_cblocks)
{
    size_t s;
    int c, g;
    bool valid = scan_lane_of(G, n_cblocks, d_inner, &s, &c, &g);
    int K = (d_state + G - 1) / G;

    float h[MAX_K], a[MAX_K];
    float *st = valid ? states[s] + offset + (size_t)c * d_state : NULL;
#pragma unroll
    for (int k = 0; k < MAX_K; ++k) {
        int n = g + k * G;
        bool on = valid && k < K && n < d_state;
        h[k] = on ? st[n] : 0.0f;
        a[k] = on ? A[(size_t)c * d_state + n] : 0.0f;
    }
    float Dc = (valid && D) ? D[c] : 0.0f;
    float bias = (valid && dt_bias) ? dt_bias[c] : 0.0f;

    for (int t = 0; t < n_frames; ++t) {
        size_t row = s * (size_t)n_frames + (size_t)t;
        float xv, delta;
        frame_in(x, ld_x, dt, ld_dt, row, c, valid, bias, &xv, &delta);
        float dx = delta * xv;
        const float *Br = B + row * ld_bc, *Cr = C + row * ld_bc;
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < MAX_K; ++k) {
            int n = g + k * G;
            if (valid && k < K && n < d_state) {
                float dA = expf(fmaxf(delta * a[k], dA_log_min));
                h[k] = dA * h[k] + dx * Br[n];
                acc += h[k] * Cr[n];
            }
        }
        frame_out(acc, G, g, valid, Dc, xv, z, ld_z, y, ld_y, row, c);
    }
#pragma unroll
    for (int k = 0; k < MAX_K; ++k) {
        int n = g + k * G;
        if (valid && k < K && n < d_state)
            st[n] = h[k];
    }
}

/* The same scan for d_state = 4·G·K4 (G a power of two <= 32, K4 = 1 or 2):
 * lane g of a channel's group holds the K4 runs of four consecutive state
 * elements 4(g + kG) .. 4(g + kG) + 3 and moves them as float4, so each
 * thread keeps 16·K4 bytes of state in flight (the plain kernel's 4 bytes
 * per thread leave HBM idle: Little's law wants ~30 KB in flight per SM).
 * A stream whose state is not 16-byte aligned takes scalar loads (a uniform
 * branch: a block holds one stream). */
template <int K4>
__global__ void scan_vec_kernel(float *y, size_t ld_y, float *const *states, size_t offset,
                                const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                const float *dt_bias, const float *A, const float *B,
                                const float *C, size_t ld_bc, const float *D, const float *z,
                                size_t ld_z, float dA_log_min, int n_frames, int d_inner,
                                int d_state, int G, int n_cblocks)
{
    size_t s;
    int c, g;
    bool valid = scan_lane_of(G, n_cblocks, d_inner, &s, &c, &g);
    float *base = states[s] + offset;
    bool aligned = ((uintptr_t)base & 15u) == 0;
    float *st = valid ? base + (size_t)c * d_state : NULL;
    const float *Ac = valid ? A + (size_t)c * d_state : NULL;

    float h[K4][4], a[K4][4];
#pragma unroll
    for (int k = 0; k < K4; ++k) {
        int n0 = 4 * (g + k * G);
        if (!valid) {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                h[k][j] = a[k][j] = 0.0f;
        } else if (aligned) {
            float4 v = *(const float4 *)(st + n0);
            h[k][0] = v.x, h[k][1] = v.y, h[k][2] = v.z, h[k][3] = v.w;
#pragma unroll
            for (int j = 0; j < 4; ++j)
                a[k][j] = Ac[n0 + j];
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                h[k][j] = st[n0 + j];
                a[k][j] = Ac[n0 + j];
            }
        }
    }
    float Dc = (valid && D) ? D[c] : 0.0f;
    float bias = (valid && dt_bias) ? dt_bias[c] : 0.0f;

    for (int t = 0; t < n_frames; ++t) {
        size_t row = s * (size_t)n_frames + (size_t)t;
        float xv, delta;
        frame_in(x, ld_x, dt, ld_dt, row, c, valid, bias, &xv, &delta);
        float dx = delta * xv;
        const float *Br = B + row * ld_bc, *Cr = C + row * ld_bc;
        float acc = 0.0f;
        if (valid) {
#pragma unroll
            for (int k = 0; k < K4; ++k) {
                int n0 = 4 * (g + k * G);
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    float dA = expf(fmaxf(delta * a[k][j], dA_log_min));
                    h[k][j] = dA * h[k][j] + dx * Br[n0 + j];
                    acc += h[k][j] * Cr[n0 + j];
                }
            }
        }
        frame_out(acc, G, g, valid, Dc, xv, z, ld_z, y, ld_y, row, c);
    }
    if (!valid)
        return;
#pragma unroll
    for (int k = 0; k < K4; ++k) {
        int n0 = 4 * (g + k * G);
        if (aligned) {
            *(float4 *)(st + n0) = make_float4(h[k][0], h[k][1], h[k][2], h[k][3]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j)
                st[n0 + j] = h[k][j];
        }
    }
}

static int g_elems_per_lane = 8;

extern "C" int ssm_cuda_scan_set_elems_per_lane(int n)
{
    int prev = g_elems_per_lane;
    if (n == 4 || n == 8)
        g_elems_per_lane = n;
    return prev;
}

extern "C" int ssm_cuda_scan(float *y, size_t ld_y, float *const *states, size_t offset,
                             const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                             const float *dt_bias, const float *A, const float *B,
                             const float *C, size_t ld_bc, const float *D, const float *z,
                             size_t ld_z, float dA_log_min, int n_streams, int n_frames,
                             int d_inner, int d_state, void *stream)
{
    if (n_streams < 1 || n_frames < 1 || d_inner < 1 || d_state < 1 ||
        d_state > SSM_CUDA_MAX_D_STATE)
        return (int)cudaErrorInvalidValue;
    const int threads = 256;
    int q = d_state / 4;
    if (d_state % 4 == 0 && (q & (q - 1)) == 0 && q <= 64) { /* float4 path */
        int G = q < 32 ? q : 32;
        if (g_elems_per_lane == 8 && q >= 2 && G == q)
            G = q / 2;
        int K4 = q / G;
        int cpb = threads / G;
        int n_cblocks = (d_inner + cpb - 1) / cpb;
        size_t grid = (size_t)n_streams * (size_t)n_cblocks;
        if (grid > 0x7fffffffu)
            return (int)cudaErrorInvalidValue;
        if (K4 == 1)
            scan_vec_kernel<1><<<(unsigned)grid, threads, 0, as_stream(stream)>>>(
                y, ld_y, states, offset, x, ld_x, dt, ld_dt, dt_bias, A, B, C, ld_bc, D, z, ld_z,
                dA_log_min, n_frames, d_inner, d_state, G, n_cblocks);
        else
            scan_vec_kernel<2><<<(unsigned)grid, threads, 0, as_stream(stream)>>>(
                y, ld_y, states, offset, x, ld_x, dt, ld_dt, dt_bias, A, B, C, ld_bc, D, z, ld_z,
                dA_log_min, n_frames, d_inner, d_state, G, n_cblocks);
        return launch_status();
    }
    int G = 1;
    while (G < d_state && G < 32)
        G *= 2;
    int cpb = threads / G;
    int n_cblocks = (d_inner + cpb - 1) / cpb;
    size_t grid = (size_t)n_streams * (size_t)n_cblocks;
    if (grid > 0x7fffffffu)
        return (int)cudaErrorInvalidValue;
    scan_kernel<<<(unsigned)grid, threads, 0, as_stream(stream)>>>(
        y, ld_y, states, offset, x, ld_x, dt, ld_dt, dt_bias, A, B, C, ld_bc, D, z, ld_z,
        dA_log_min, n_frames, d_inner, d_state, G, n_cblocks);
    return launch_status();
}

/* ---- small element-wise kernels ----------------------------------------- */

__global__ void add_bias_kernel(float *out, size_t ld, const float *bias, int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)dim, j = i % (size_t)dim;
        out[r * ld + j] += bias[j];
    }
}

__global__ void sigmoid_kernel(float *v, size_t ld, int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)dim, j = i % (size_t)dim;
        float *p = v + r * ld + j;
        *p = 1.0f / (1.0f + expf(-*p));
    }
}

__global__ void gather_kernel(float *r, size_t ld_r, const float *table, const int32_t *tokens,
                              int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / (size_t)dim, j = i % (size_t)dim;
        r[row * ld_r + j] = table[(size_t)tokens[row] * (size_t)dim + j];
    }
}

__global__ void sanitize_kernel(float *x, size_t ld, unsigned *count, int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)dim, j = i % (size_t)dim;
        float *p = x + r * ld + j;
        if (!isfinite(*p)) {
            *p = 0.0f;
            atomicAdd(count + r, 1u);
        }
    }
}

__global__ void nonfinite_rows_kernel(int *bad, const float *x, size_t ld, int n_rows, int dim)
{
    long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= n_rows)
        return;
    const float *xi = x + (size_t)row * ld;
    int any = 0;
    for (int k = lane; k < dim; k += 32)
        any |= !isfinite(xi[k]);
    any = __any_sync(0xffffffffu, any);
    if (lane == 0)
        bad[row] = any;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, size_t ld_dst, const float *src,
                               size_t ld_src, int n_rows, int dim)
{
    size_t n = (size_t)n_rows * (size_t)dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)dim, j = i % (size_t)dim;
        dst[r * ld_dst + j] = __float2bfloat16_rn(src[r * ld_src + j]);
    }
}

static unsigned grid_for(size_t n)
{
    size_t b = (n + 255) / 256;
    if (b > 65536)
        b = 65536; /* grid-stride loops take the rest */
    return (unsigned)(b ? b : 1);
}

extern "C" int ssm_cuda_add_bias(float *out, size_t ld, const float *bias, int n_rows, int dim,
                                 void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    add_bias_kernel<<<grid_for((size_t)n_rows * dim), 256, 0, as_stream(stream)>>>(
        out, ld, bias, n_rows, dim);
    return launch_status();
}

extern "C" int ssm_cuda_sigmoid(float *v, size_t ld, int n_rows, int dim, void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    sigmoid_kernel<<<grid_for((size_t)n_rows * dim), 256, 0, as_stream(stream)>>>(v, ld, n_rows,
                                                                                  dim);
    return launch_status();
}

extern "C" int ssm_cuda_gather(float *r, size_t ld_r, const float *table, const int32_t *tokens,
                               int n_rows, int dim, void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    gather_kernel<<<grid_for((size_t)n_rows * dim), 256, 0, as_stream(stream)>>>(
        r, ld_r, table, tokens, n_rows, dim);
    return launch_status();
}

extern "C" int ssm_cuda_sanitize(float *x, size_t ld, unsigned *count, int n_rows, int dim,
                                 void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    sanitize_kernel<<<grid_for((size_t)n_rows * dim), 256, 0, as_stream(stream)>>>(
        x, ld, count, n_rows, dim);
    return launch_status();
}

extern "C" int ssm_cuda_nonfinite_rows(int *bad, const float *x, size_t ld, int n_rows, int dim,
                                       void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    const unsigned threads = 256;
    nonfinite_rows_kernel<<<blocks_for((size_t)n_rows, threads / 32), threads, 0,
                            as_stream(stream)>>>(bad, x, ld, n_rows, dim);
    return launch_status();
}

extern "C" int ssm_cuda_to_bf16(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src,
                                int n_rows, int dim, void *stream)
{
    if (n_rows < 1 || dim < 1)
        return (int)cudaErrorInvalidValue;
    to_bf16_kernel<<<grid_for((size_t)n_rows * dim), 256, 0, as_stream(stream)>>>(
        (__nv_bfloat16 *)dst, ld_dst, src, ld_src, n_rows, dim);
    return launch_status();
}
