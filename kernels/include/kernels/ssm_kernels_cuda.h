/* SPDX-License-Identifier: MIT */
/* kernels/cuda — the Mamba-1 step and the chunked scan on an NVIDIA GPU.
 *
 * Same math as kernels/ssm_kernels.h (whose plain-C reference is the oracle
 * tests/gpu holds these to), with three differences of shape:
 *  - every pointer is a device pointer, and every function only enqueues work
 *    on `stream` (a cudaStream_t; NULL = the legacy default stream): nothing
 *    waits, nothing allocates, so a whole frame step can be captured into one
 *    CUDA graph (model/src/model_cuda.c does);
 *  - per-stream states are reached through a device array of n_streams
 *    pointers (each to one stream's whole state, as model/ lays it out) plus
 *    a float offset that selects the layer and the part (conv or SSM);
 *  - the conv and the scan walk n_frames frames of each stream in order, the
 *    state carried in registers across them: n_frames = 1 is the batched
 *    step (row = stream), n_streams = 1 the chunked scan of an offline block
 *    that starts from a given state (row = frame).  In general the row of
 *    stream s, frame t is s·n_frames + t.  (The reference mamba_ssm CUDA scan
 *    starts from zero state; this one resumes any saved state.)
 * The Mamba paper's hardware point (Gu & Dao 2023, §3.3.2): each (stream,
 * channel) SSM state is read from HBM once, kept in registers while the
 * frames are scanned, and written back once.
 *
 * Errors: each function returns 0 (cudaSuccess) or the cudaError_t of the
 * launch as an int (an invalid size is cudaErrorInvalidValue = 1); asynchronous
 * faults surface at the caller's next synchronisation.  Sizes must be >= 1;
 * d_conv <= SSM_CUDA_MAX_D_CONV, d_state <= SSM_CUDA_MAX_D_STATE.
 * Thread safety: as CUDA's: distinct streams may be driven from distinct
 * threads as long as no two launches write the same memory.
 */
#ifndef KERNELS_SSM_KERNELS_CUDA_H
#define KERNELS_SSM_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest conv width and state size the register-resident kernels take. */
#define SSM_CUDA_MAX_D_CONV 16
#define SSM_CUDA_MAX_D_STATE 256

/** RMSNorm as ssm_rmsnorm_f32 (sum of squares in double), one warp per row.
 *  out {n_rows, dim} (ld_out), x {n_rows, dim} (ld_x), w {dim}; out may equal x. */
int ssm_cuda_rmsnorm(float *out, size_t ld_out, const float *x, size_t ld_x, const float *w,
                     int n_rows, int dim, float eps, void *stream);

/** Causal depthwise conv + bias + SiLU over n_frames frames per stream
 *  (ssm_conv_step_f32 applied frame after frame).  out {rows, d_inner}
 *  (ld_out), x {rows, d_inner} (ld_x), rows = n_streams·n_frames;
 *  states {n_streams} device pointers, conv state of stream s at
 *  states[s] + offset, {d_inner, d_conv}, updated in place; w {d_inner,
 *  d_conv}; bias {d_inner} or NULL.  One thread per (stream, channel). */
int ssm_cuda_conv(float *out, size_t ld_out, float *const *states, size_t offset,
                  const float *x, size_t ld_x, const float *w, const float *bias,
                  int n_streams, int n_frames, int d_inner, int d_conv, void *stream);

/** Fused selective scan over n_frames frames per stream: for each row,
 *    Δ  = softplus(dt + dt_bias)            (PyTorch threshold 20)
 *    h  = exp(max(Δ·A, dA_log_min))·h + (Δ·x)·B
 *    y  = h·C + D·x,  then  y ← y·SiLU(z)    (z NULL: no gate)
 *  y {rows, d_inner} (ld_y); states as ssm_cuda_conv, SSM state of stream s
 *  at states[s] + offset, {d_inner, d_state}; x {rows, d_inner} (ld_x); dt
 *  {rows, d_inner} (ld_dt) before softplus; dt_bias {d_inner} or NULL; A
 *  {d_inner, d_state} (= −exp(A_log)); B, C {rows, d_state} (ld_bc); D
 *  {d_inner} or NULL; z {rows, d_inner} (ld_z) or NULL.  Lanes of a warp
 *  share a channel (one state element each, summed by warp shuffles);
 *  the state lives in registers across the frames. */
int ssm_cuda_scan(float *y, size_t ld_y, float *const *states, size_t offset,
                  const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                  const float *dt_bias, const float *A, const float *B, const float *C,
                  size_t ld_bc, const float *D, const float *z, size_t ld_z,
                  float dA_log_min, int n_streams, int n_frames, int d_inner, int d_state,
                  void *stream);

/** Benchmarks and tests only: state elements each lane of the float4 scan
 *  path holds, 4 (the default: d_state/4 lanes per channel) or 8 (half the
 *  lanes, two float4 each: more bytes in flight per thread, fewer threads).
 *  Returns the previous value; other values change nothing.  Not
 *  thread-safe: set it before launching. */
int ssm_cuda_scan_set_elems_per_lane(int n);

/** out[i, j] += bias[j] for {n_rows, dim} (ld). */
int ssm_cuda_add_bias(float *out, size_t ld, const float *bias, int n_rows, int dim, void *stream);

/** v ← 1 / (1 + exp(−v)) in place, {n_rows, dim} (ld). */
int ssm_cuda_sigmoid(float *v, size_t ld, int n_rows, int dim, void *stream);

/** r[i, :] = table[tokens[i], :] for i < n_rows; r {n_rows, dim} (ld_r),
 *  table {vocab, dim}.  Tokens must be in range (checked by the caller). */
int ssm_cuda_gather(float *r, size_t ld_r, const float *table, const int32_t *tokens,
                    int n_rows, int dim, void *stream);

/** Replaces NaN/±Inf of x {n_rows, dim} (ld) by 0 and adds their number per
 *  row to count {n_rows} (not cleared here). */
int ssm_cuda_sanitize(float *x, size_t ld, unsigned *count, int n_rows, int dim, void *stream);

/** bad[i] = 1 when row i of x {n_rows, dim} (ld) holds a NaN/±Inf, else 0. */
int ssm_cuda_nonfinite_rows(int *bad, const float *x, size_t ld, int n_rows, int dim,
                            void *stream);

/** dst {n_rows, dim} (ld_dst, IEEE bfloat16 bits, round to nearest even)
 *  from src {n_rows, dim} (ld_src): activations for bf16 cuBLAS products. */
int ssm_cuda_to_bf16(uint16_t *dst, size_t ld_dst, const float *src, size_t ld_src,
                     int n_rows, int dim, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* KERNELS_SSM_KERNELS_CUDA_H */
