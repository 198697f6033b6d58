/* SPDX-License-Identifier: MIT */
/* kernels/cuda — the Mamba-1 step and the chunked scan on an NVIDIA GPU
 * (cuda/ssm_kernels.cu), and the pieces of Mamba-2, sliding-window attention
 * and gated-MLP layers (cuda/ssm_kernels_hybrid.cu; see the note at their
 * declarations: compiled, not yet run on a GPU).
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
/** Largest attention head_dim ssm_cuda_attn takes (a lane keeps
 *  head_dim/32 channels of q and of the output in registers). */
#define SSM_CUDA_MAX_HEAD_DIM 256

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

/* ---- Mamba-2, sliding-window attention, gated MLP (cuda/ssm_kernels_hybrid.cu)
 * STATUS: compiled on every build with nvcc, NOT YET RUN ON A GPU: the
 * machine that wrote them had none.  tests/gpu/test_cuda_hybrid.c holds each
 * to the CPU reference (tests/gpu/run.sh runs it on a device machine); until
 * it has passed there, treat their results as unverified.
 * Same conventions as above (device pointers, enqueue only, states through
 * {n_streams} pointers plus a float offset, row of stream s, frame t =
 * s·n_frames + t, 0 or a cudaError_t as int). */

/** Mamba-2 state update over n_frames frames per stream (the Mamba2.step of
 *  ssm_scan_heads_step_f32, frame after frame, with Δ's softplus fused in):
 *  for stream s, head h (group g = h / (n_heads / n_groups)), channel p, state n,
 *    Δ        = softplus(dt[row, h] + dt_bias[h])      (PyTorch threshold 20)
 *    S[h,p,n] = exp(Δ·A[h])·S[h,p,n] + (Δ·x[row, h·P + p])·B[row, g·N + n]
 *    y[row, h·P + p] = Σ_n S[h,p,n]·C[row, g·N + n] + D[h]·x[row, h·P + p]
 *  y {rows, n_heads·head_dim} (ld_y); states: stream s's SSM state at
 *  states[s] + offset, {n_heads, head_dim, d_state}; x {rows, n_heads·head_dim}
 *  (ld_x); dt {rows, n_heads} (ld_dt) before softplus; dt_bias {n_heads} or
 *  NULL; A {n_heads} (= −exp(A_log)); B, C {rows, n_groups·d_state} (ld_bc);
 *  D {n_heads} or NULL.  n_groups divides n_heads; d_state <=
 *  SSM_CUDA_MAX_D_STATE.  No gate: the caller applies ssm_cuda_rmsnorm_gated.
 *  State in registers across the frames: n_frames > 1 is the chunked forward
 *  that starts from (and leaves) the stream's state, the same operations as
 *  n_frames single steps.  y must not alias an input. */
int ssm_cuda_scan_heads(float *y, size_t ld_y, float *const *states, size_t offset,
                        const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                        const float *dt_bias, const float *A, const float *B, const float *C,
                        size_t ld_bc, const float *D, int n_streams, int n_frames, int n_heads,
                        int head_dim, int n_groups, int d_state, void *stream);

/** Gated group-wise RMSNorm in place, as ssm_rmsnorm_gated_f32 (mamba_ssm
 *  RMSNormGated, norm_before_gate=False): y ← y ⊙ SiLU(z), then each group of
 *  group_size consecutive channels y ← y / sqrt(mean(y²) + eps) · w (sum of
 *  squares in double).  y {n_rows, dim} (ld_y), z {n_rows, dim} (ld_z), w
 *  {dim}; group_size divides dim.  One warp per (row, group). */
int ssm_cuda_rmsnorm_gated(float *y, size_t ld_y, const float *z, size_t ld_z, const float *w,
                           int n_rows, int dim, int group_size, float eps, void *stream);

/** out[i, j] = a[i, j] · SiLU(b[i, j]) for {n_rows, dim} (the GatedMLP's
 *  and mha.py's mlp_dim gate; ssm_gate_silu_f32 when out = a).  out may
 *  equal a; it must not overlap b otherwise. */
int ssm_cuda_gate_silu(float *out, size_t ld_out, const float *a, size_t ld_a, const float *b,
                       size_t ld_b, int n_rows, int dim, void *stream);

/** Sliding-window attention over n_frames frames per stream, as
 *  ssm_attn_step / ssm_attn_forward with the reference core (everything but
 *  the mlp_dim gate, which the caller runs with ssm_cuda_gate_silu): per
 *  frame, at the stream's position pos (its frame counter), RoPE rotates q
 *  and k by pos·inv_freq (cos/sin in float64, rounded to fp32), k and v go
 *  into ring row pos mod window, query head h attends with KV head
 *  h / (n_heads / n_heads_kv) over the min(pos + 1, window) newest rows,
 *  oldest first: y_h = Σ_j exp(s_j − max s)·v_j / Σ_j exp(s_j − max s) with
 *  s_j = scale·q_h·k_j; then pos + 1 is stored.
 *  y {rows, n_heads·head_dim} (ld_y); states: stream s's attention state at
 *  states[s] + offset as ssm_attn_state_floats lays it out (K ring {window,
 *  n_heads_kv·head_dim}, V ring, counter {2}: lo = pos mod 2^24, hi =
 *  pos / 2^24, exact integers), updated in place; qkv {rows, ld_in}: in_proj's
 *  rows [q {n_heads·head_dim} | k | v {n_heads_kv·head_dim} | ...] — the q
 *  columns are ROTATED IN PLACE (scratch of the caller's); inv_freq
 *  {rot_dim/2} float64 (NULL when rot_dim is 0); rot_dim even, <= head_dim;
 *  rot_interleaved: pairs (2i, 2i+1), else (i, i + rot_dim/2).  head_dim <=
 *  SSM_CUDA_MAX_HEAD_DIM; any window.  One block per stream walks its
 *  frames in order.  y must not alias qkv or a state. */
int ssm_cuda_attn(float *y, size_t ld_y, float *const *states, size_t offset, float *qkv,
                  size_t ld_in, const double *inv_freq, int n_streams, int n_frames,
                  int n_heads, int n_heads_kv, int head_dim, int window, int rot_dim,
                  int rot_interleaved, float scale, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* KERNELS_SSM_KERNELS_CUDA_H */
