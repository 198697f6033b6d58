/* SPDX-License-Identifier: MIT */
/* kernels — the math of one Mamba-1 step on raw fp32 arrays.
 *
 * Every op is declared once here and implemented per backend; kernels/cpu/
 * holds the plain-C reference (ssm_kernels_ref.c), which mirrors the PyTorch
 * reference step by step (state-spaces/mamba, mamba_ssm/modules/
 * mamba_simple.py `Mamba.step`, ops/selective_scan_interface.py
 * `selective_scan_ref`) and stays forever as the oracle for SIMD and CUDA
 * variants (STYLE.md 8-9).
 *
 * Conventions of every function below:
 *  - batch first: matrices are {n_rows, dim} row-major, a "row" is one stream
 *    (step) or one frame (chunked forward);  ld_* is the distance in floats
 *    between consecutive rows (>= dim), so a kernel can read or write a
 *    column slice of a wider matrix (x and z are slices of in_proj's output,
 *    δ|B|C slices of x_proj's output);
 *  - output first, sizes explicit, caller-owned memory, no allocation, no
 *    locks, no I/O: every function is real-time safe and thread-safe as long
 *    as two threads do not write the same output or state;
 *  - shapes are written in braces, e.g. `B {n_streams, d_state}`;
 *  - per-stream state lives wherever its stream lives, so kernels that update
 *    state take an array of n_streams pointers, one per stream (the layout
 *    vLLM's selective_state_update reaches through state indices);
 *  - outputs never alias inputs unless the function says so.
 * Sizes are int (every dimension of a model fits) and must be >= 1 unless
 * stated; the functions assert on programming errors only.
 */
#ifndef KERNELS_SSM_KERNELS_H
#define KERNELS_SSM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Linear layer, batch-invariant: out = x · wᵀ + bias.
 *  out {n_rows, d_out} (ld_out), x {n_rows, d_in} (ld_x), w {d_out, d_in}
 *  row-major (PyTorch nn.Linear.weight), bias {d_out} or NULL.
 *  Each output element is one dot product summed in a fixed order that does
 *  not depend on n_rows nor on the row's position, so a stream gives
 *  bit-identical results alone or inside any batch (the reason it is not a
 *  BLAS call: OpenBLAS sgemm changes its summation order with the row count). */
void ssm_linear_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                    const float *w, const float *bias,
                    int n_rows, int d_in, int d_out);

/** Same contract as ssm_linear_f32 computed by CBLAS sgemm (OpenBLAS): fast
 *  for many rows (chunked forward, large batches) but results differ in the
 *  last bits with n_rows (relative error of a dot product ~ d_in·2⁻²⁴).
 *  Real-time safety and threading are those of the BLAS library
 *  (OPENBLAS_NUM_THREADS=1 keeps it on the calling thread). */
void ssm_linear_blas_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                         const float *w, const float *bias,
                         int n_rows, int d_in, int d_out);

/** RMSNorm (mamba_ssm ops/triton/layer_norm.py rms_norm_ref):
 *  out[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) · w.
 *  out {n_rows, dim} (ld_out), x {n_rows, dim} (ld_x), w {dim}; eps > 0.
 *  The mean of squares is accumulated in double, in eight partial sums
 *  (element k into sum k mod 8) added by a fixed tree.  out may equal x. */
void ssm_rmsnorm_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                     const float *w, int n_rows, int dim, float eps);

/** One step of the causal depthwise conv1d + SiLU (Mamba.step):
 *  conv_state[s] {d_inner, d_conv} shifts left by one (oldest value drops),
 *  the new x[s,:] enters at tap d_conv-1, then
 *  out[s,c] = SiLU(Σ_k conv_state[s][c,k] · w[c,k] + bias[c]).
 *  out {n_streams, d_inner} (ld_out), conv_state {n_streams} pointers each to
 *  {d_inner, d_conv} (updated in place), x {n_streams, d_inner} (ld_x),
 *  w {d_inner, d_conv} (conv1d.weight with its size-1 dim dropped), bias
 *  {d_inner} or NULL.  out must not alias x or a state. */
void ssm_conv_step_f32(float *out, size_t ld_out, float *const *conv_state,
                       const float *x, size_t ld_x,
                       const float *w, const float *bias,
                       int n_streams, int d_inner, int d_conv);

/** Δ = softplus(x + bias) with PyTorch's threshold: softplus(v) = v for
 *  v > 20, log1p(exp(v)) otherwise (torch.nn.functional.softplus).
 *  out {n_rows, dim} (ld_out), x {n_rows, dim} (ld_x), bias {dim} or NULL.
 *  out may equal x. */
void ssm_softplus_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                      const float *bias, int n_rows, int dim);

/** Selective state update, one step for a batch of streams (Mamba.step /
 *  selective_state_update), for every stream s, channel c, state n:
 *    dA            = exp(max(Δ[s,c]·A[c,n], dA_log_min))
 *    h[s][c,n]     = dA · h[s][c,n] + (Δ[s,c]·x[s,c]) · B[s,n]
 *    y[s,c]        = Σ_n h[s][c,n] · C[s,n] + D[c] · x[s,c]
 *  y {n_streams, d_inner} (ld_y); ssm_state {n_streams} pointers each to
 *  {d_inner, d_state} (updated in place); x, dt {n_streams, d_inner} (ld_x,
 *  ld_dt; dt already through softplus); A {d_inner, d_state}
 *  (= −exp(A_log)); B, C {n_streams, d_state} (ld_bc, B and C of a stream
 *  share the row stride); D {d_inner} or NULL; dA_log_min: lower bound on
 *  Δ·A (the log-decay clamp of chunked training scans), -INFINITY for none.
 *  y must not alias an input.
 *
 *  Mamba-2's sibling is ssm_scan_heads_step_f32 below (A one scalar per
 *  head, d_inner = n_heads·head_dim, B/C {n_streams, n_groups·d_state} shared
 *  by groups of heads, the same per-stream state pointers); this per-channel
 *  version is the head_dim = 1, A {d_inner, d_state} case. */
void ssm_scan_step_f32(float *y, size_t ld_y, float *const *ssm_state,
                       const float *x, size_t ld_x,
                       const float *dt, size_t ld_dt,
                       const float *A,
                       const float *B, const float *C, size_t ld_bc,
                       const float *D, float dA_log_min,
                       int n_streams, int d_inner, int d_state);

/** Output gate: y ← y ⊙ SiLU(z), SiLU(v) = v / (1 + exp(−v)).
 *  y {n_rows, dim} (ld_y, in place), z {n_rows, dim} (ld_z). */
void ssm_gate_silu_f32(float *y, size_t ld_y, const float *z, size_t ld_z,
                       int n_rows, int dim);

/** Logistic sigmoid in place: v ← 1 / (1 + exp(−v)).
 *  v {n_rows, dim} (ld). */
void ssm_sigmoid_f32(float *v, size_t ld, int n_rows, int dim);

/** out ← out + x, both {n_rows, dim} (ld_out, ld_x): the residual add. */
void ssm_add_f32(float *out, size_t ld_out, const float *x, size_t ld_x,
                 int n_rows, int dim);

/** Counts the non-finite (NaN or ±Inf) values of x {n_rows, dim} (ld) row by
 *  row into count {n_rows} (added to, not overwritten), and replaces them by
 *  0 when zero is non-zero.  Returns the total count. */
size_t ssm_nonfinite_f32(size_t *count, float *x, size_t ld,
                         int n_rows, int dim, int zero);

/* ---- vectorisable variants (cpu/ssm_kernels_vec.c) ------------------------
 * Same contracts as the functions above, written for the compiler's
 * auto-vectoriser and built for AVX-512, AVX2 and the x86-64 baseline (picked once at
 * load time; both give identical bits).  They differ from the reference only
 * in exp() and log1p(), computed by Cephes-style polynomials within a few ulp
 * of expf/log1pf (ssm_exp_f32_vec), and in summing C·h in eight lanes; tests/kernels holds
 * them to the reference on awkward sizes.  The exp of the scan, softplus,
 * conv SiLU, gate and sigmoid is that polynomial evaluated with fmaf()
 * (vexp_fma: range reduction and Horner chain fused; the explicit AVX2/AVX-512
 * kernels use vector FMAs with the same bits): exact but slow on a CPU
 * without FMA, where nothing faster runs anyway.  Softplus's log polynomial
 * is fused the same way (vlog12: Horner chain and ln 2 terms as fmaf).
 * Everything else (the conv's tap sum (((0 + s0·w0) + s1·w1) + …) + bias,
 * the divisions of SiLU and sigmoid) is separately rounded in the
 * reference's order. */

/** out[i] = exp(x[i]) within ~2 ulp for x in [-87, 88]; values below -87
 *  give exp(-87) ≈ 1.6e-38, above 88 exp(88); NaN stays NaN.  out may
 *  equal x. */
void ssm_exp_f32_vec(float *out, const float *x, int n);

/** Softplus with the reference's threshold; log1p by a Cephes log polynomial
 *  (within a few ulp of log1pf(expf(v))). */
void ssm_softplus_f32_vec(float *out, size_t ld_out, const float *x, size_t ld_x,
                          const float *bias, int n_rows, int dim);

void ssm_conv_step_f32_vec(float *out, size_t ld_out, float *const *conv_state,
                           const float *x, size_t ld_x,
                           const float *w, const float *bias,
                           int n_streams, int d_inner, int d_conv);

void ssm_scan_step_f32_vec(float *y, size_t ld_y, float *const *ssm_state,
                           const float *x, size_t ld_x,
                           const float *dt, size_t ld_dt,
                           const float *A,
                           const float *B, const float *C, size_t ld_bc,
                           const float *D, float dA_log_min,
                           int n_streams, int d_inner, int d_state);

void ssm_gate_silu_f32_vec(float *y, size_t ld_y, const float *z, size_t ld_z,
                           int n_rows, int dim);

/** Sigmoid v ← 1 / (1 + exp(−v)) with vexp_fma (a few ulp from the
 *  reference; −v beyond 88 gives 1/(1 + exp(88)) ≈ 6e-39, not 0). */
void ssm_sigmoid_f32_vec(float *v, size_t ld, int n_rows, int dim);


/* ---- packed linear layers and ISA dispatch (cpu/ssm_kernels_packed.c) ------
 * out = x · wᵀ + bias with w transposed once, at model load, into a packed
 * panel {n_pad / SSM_PACK_COLS, d_in + 1, SSM_PACK_COLS} (n_pad =
 * ssm_pack_cols(d_out): d_out rounded up to SSM_PACK_COLS; extra columns
 * and the extra row zero): strips of SSM_PACK_COLS columns, each contiguous
 * over k, element (k, j) at ((j / SSM_PACK_COLS)·(d_in + 1) + k)·
 * SSM_PACK_COLS + j % SSM_PACK_COLS;
 * stored as fp32 or IEEE binary16 (half:
 * half the bytes for the memory-bound batch-1 step, converted exactly to fp32
 * on load, accumulated in fp32).
 *
 * Summation order, identical in every variant: out[i,j] is ONE fused
 * multiply-add chain over k = 0 … d_in−1 from +0, then + bias[j].  FMA is
 * correctly rounded and half→float is exact, so the scalar (fmaf), AVX2+FMA
 * and AVX-512 variants give the same bits, and a row's bits depend neither
 * on n_rows nor on its position: batch-invariant, like ssm_linear_f32, at FMA
 * speed.  Against ssm_linear_f32 (no FMA, 8 lanes) results differ by
 * rounding only (relative ~d_in·2⁻²⁴ worst case; tests/kernels states the
 * bound).  Same shape conventions as ssm_linear_f32; out must not alias x.
 * Real-time safe, thread-safe (read-only weights), no allocation. */

/** Instruction sets a kernel variant is built for, in order of preference. */
typedef enum ssm_isa {
    SSM_ISA_SCALAR = 0, /**< plain C (fmaf): always available, slowest */
    SSM_ISA_AVX2 = 1,   /**< AVX2 + FMA (+F16C) */
    SSM_ISA_AVX512 = 2, /**< AVX-512 F + VL (+FMA, F16C) */
} ssm_isa;

/** 1 when this CPU runs isa's variants (CPUID through the compiler's
 *  __builtin_cpu_supports), else 0. */
int ssm_isa_supported(ssm_isa isa);
/** The fastest supported ISA: AVX-512, then AVX2+FMA, then scalar. */
ssm_isa ssm_isa_best(void);
/** "scalar", "avx2", "avx512" (static strings); "unknown" otherwise. */
const char *ssm_isa_name(ssm_isa isa);
/** Parses an ssm_isa_name() string into *out; 0, or -1 when unknown. */
int ssm_isa_parse(const char *name, ssm_isa *out);

/* ---- floating-point mode (kernels/cpu/ssm_fp.c) ------------------------ */

/** Makes the calling thread flush subnormal results to zero and read
 *  subnormal operands as zero: x86-64 MXCSR FTZ (bit 15) | DAZ (bit 6),
 *  aarch64 FPCR FZ (bit 24); a no-op elsewhere.  Silence with decaying tails
 *  drives the STFT, features and recurrent state into subnormal floats,
 *  which x86 cores process up to ~100x slower; flushed, they are 0 (a change
 *  below 1.2e-38, invisible at audio precision).  Every thread that computes
 *  (the daemon's loop, the step workers, offline tools whose results are
 *  compared with the daemon's) calls it when it starts, so results stay
 *  bit-identical across paths.  The mode is per thread: threads created
 *  later inherit the creator's on Linux/glibc, but callers set it
 *  explicitly.  Returns 1 when the mode is set, 0 where the architecture
 *  has none.  Real-time safe (two instructions); thread-safe. */
int ssm_fp_flush_denormals(void);

/** 1 when the calling thread flushes subnormals (the bits above are set),
 *  0 otherwise or where unsupported.  Thread-safe. */
int ssm_fp_denormals_flushed(void);

/** Column padding of packed panels (one AVX-512 vector of floats). */
#define SSM_PACK_COLS 16
/** Rows of a panel's strip: d_in, plus one row of zeros so that the strips
 *  of a register tile never start a multiple of 4 KiB apart (their loads
 *  would then meet in the same L1 sets and banks at every k). */
#define SSM_PACK_STRIP_ROWS(d_in) ((d_in) + 1)
/** d_out rounded up to SSM_PACK_COLS. */
int ssm_pack_cols(int d_out);
/** Elements of a packed panel: SSM_PACK_STRIP_ROWS(d_in) · ssm_pack_cols(d_out). */
size_t ssm_pack_elems(int d_in, int d_out);
/** Packs w {d_out, d_in} row-major (nn.Linear.weight) into the strips
 *  of wp (ssm_pack_elems floats, layout above). */
void ssm_pack_f32(float *wp, const float *w, int d_in, int d_out);
/** Same as ssm_pack_f32 into IEEE binary16 (round to nearest even; beyond
 *  ±65504 → ±Inf, NaN → quiet NaN). */
void ssm_pack_f16(unsigned short *wp, const float *w, int d_in, int d_out);
/** float → binary16 bits (round to nearest even) and back (exact). */
unsigned short ssm_f32_to_half(float f);
float ssm_half_to_f32(unsigned short h);

/** Signature of every packed linear variant; wp is float * (f32 variants)
 *  or unsigned short * (f16 variants) as packed above. */
typedef void (*ssm_linear_packed_fn)(float *out, size_t ld_out, const float *x, size_t ld_x,
                                     const void *wp, const float *bias,
                                     int n_rows, int d_in, int d_out);

/** The variant for isa and weight type (f16 != 0: binary16 panels), or NULL
 *  when this CPU lacks isa.  Call once at set-up and keep the pointer. */
ssm_linear_packed_fn ssm_linear_packed_get(ssm_isa isa, int f16);

/** Data cache sizes of the CPU, bytes: sysconf(_SC_LEVEL1_DCACHE_SIZE,
 *  _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE), else cpu0's
 *  /sys/devices/system/cpu/cpu0/cache/index*; 0 where neither says. */
typedef struct ssm_cpu_caches {
    size_t l1d_bytes, l2_bytes, l3_bytes;
} ssm_cpu_caches;

/** Fills *out with the sizes, detected on the first call and kept (the
 *  process is assumed to stay on one kind of core).  Thread-safe;
 *  real-time safe after the first call (which reads sysconf/sysfs). */
void ssm_cpu_caches_get(ssm_cpu_caches *out);

/** The nominal cache blocking the packed variants of isa (f16 != 0:
 *  binary16 panels) use for batches of 3 rows or more: *kc inputs per K
 *  block (the weights of one register tile's column strip, kc × its
 *  columns, fill a quarter of L2) and *mc rows per row block (mc × kc
 *  inputs fill half of L2; a multiple of the tile's rows), from
 *  ssm_cpu_caches_get (an unknown L2 counts as 256 KiB); 0 and 0 for the
 *  unblocked scalar variant.  A call evens the blocks out over its d_in and
 *  n_rows (no small last block) and sizes mc for the K block it uses.  One
 *  or two rows are not blocked (no weight reuse to win).  The bits of a
 *  result never depend on the blocking (see the summation order above).
 *  Thread-safe. */
void ssm_linear_packed_blocking(ssm_isa isa, int f16, int *kc, int *mc);

/** Test and benchmark hook: forces kc and mc (> 0) for every packed variant
 *  of the process, or restores the cache-derived sizes (0); kc ≥ d_in and
 *  mc ≥ n_rows run a layer unblocked.  Thread-safe (relaxed atomics), but a
 *  kernel running in another thread may see either setting. */
void ssm_linear_packed_set_blocking(int kc, int mc);

/** Signature of ssm_scan_step_f32 and its variants. */
typedef void (*ssm_scan_step_fn)(float *y, size_t ld_y, float *const *ssm_state,
                                 const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                 const float *A, const float *B, const float *C, size_t ld_bc,
                                 const float *D, float dA_log_min,
                                 int n_streams, int d_inner, int d_state);

/** The fastest scan step for isa with the bits of ssm_scan_step_f32_vec
 *  (same operations in the same order; the exp's fused multiply-adds are
 *  vector FMAs here and fmaf() there, the rest unfused): explicit AVX-512
 *  intrinsics over blocks of 16 states (isa AVX-512, CPU with AVX-512 DQ),
 *  AVX2+FMA over blocks of 8 (isa AVX2), else ssm_scan_step_f32_vec itself.
 *  At d_state 16, 8 and 4 they run 16 (AVX-512) or 8 (AVX2) channels at
 *  once and finish the C·h sums by a transpose-add, in the same order. */
ssm_scan_step_fn ssm_scan_step_get(ssm_isa isa);

/** Signatures of the elementwise kernels (ssm_softplus_f32, ssm_conv_step_f32,
 *  ssm_gate_silu_f32, ssm_sigmoid_f32) and their variants. */
typedef void (*ssm_softplus_fn)(float *out, size_t ld_out, const float *x, size_t ld_x,
                                const float *bias, int n_rows, int dim);
typedef void (*ssm_conv_step_fn)(float *out, size_t ld_out, float *const *conv_state,
                                 const float *x, size_t ld_x, const float *w, const float *bias,
                                 int n_streams, int d_inner, int d_conv);
typedef void (*ssm_gate_silu_fn)(float *y, size_t ld_y, const float *z, size_t ld_z,
                                 int n_rows, int dim);
typedef void (*ssm_sigmoid_fn)(float *v, size_t ld, int n_rows, int dim);

/** The fastest softplus, conv step + SiLU, SiLU gate and sigmoid for isa,
 *  each with the bits of its _vec version (ssm_softplus_f32_vec,
 *  ssm_conv_step_f32_vec, ssm_gate_silu_f32_vec, ssm_sigmoid_f32_vec: the
 *  same operations in the same order, vexp_fma's fmas as vector FMAs):
 *  explicit AVX-512 intrinsics over 16 lanes (isa AVX-512, CPU with AVX-512
 *  DQ, as ssm_scan_step_get), AVX2+FMA over 8 (isa AVX2), else the _vec
 *  function itself.  Row tails are masked.  The conv runs 16 (AVX-512) or 8
 *  (AVX2) channels at once when d_conv is 4 (a transpose of the taps inside
 *  128-bit lanes), any other width channel by channel, then SiLU in
 *  vectors.  Call once at set-up and keep the pointer. */
ssm_softplus_fn ssm_softplus_get(ssm_isa isa);
ssm_conv_step_fn ssm_conv_step_get(ssm_isa isa);
ssm_gate_silu_fn ssm_gate_silu_get(ssm_isa isa);
ssm_sigmoid_fn ssm_sigmoid_get(ssm_isa isa);

/* ---- int8 linear layers (cpu/ssm_kernels_q8.c) ------------------------------
 * out = x · wᵀ + bias with int8 weights (one scale per output column, made
 * at load) and int8 activations (one scale per row, made on the fly),
 * multiplied and summed exactly in int32 and scaled back to fp32 once per
 * output (LLM.int8() vector-wise quantization, Dettmers et al. 2022 §3.1,
 * without the outlier split).  For row i, column j:
 *   sx = max_k|x[i,k]| / 127;  q[k] = clamp(rint(x[i,k] · 127/max_k|x[i,k]|), ±127)
 *   out[i,j] = ((float)Σ_k q[k]·wq[k,j] · sx) · sw[j] + bias[j]
 * Every variant gives the same bits (integer sums are exact; the float steps
 * are the same operations in the same order) and a row's result depends
 * neither on the batch nor on its position.  Error against the fp32 product:
 * at most (sx/2)·Σ_k|w[j,k]| + (sw[j]/2)·Σ_k|q[k]|·sx per output (half a
 * quantization step of each operand; tests/kernels checks it).  A row with
 * NaN or ±Inf gives NaN in every column; a row whose max |x| is below
 * 2⁻¹⁰⁰ (zero included) counts as zero and gives bias (so that 127/max stays
 * finite and every ISA rounds the same).
 * Same shape conventions as ssm_linear_f32; d_in ≤ SSM_Q8_MAX_D_IN (the
 * quantized rows live on the stack: ≤ 50 KB); out must not alias x.
 * Real-time safe, thread-safe (read-only panel), no allocation. */

/** Largest d_in of an int8 layer. */
#define SSM_Q8_MAX_D_IN 8192
/** Bytes of an int8 panel for w {d_out, d_in} (64-byte multiple). */
size_t ssm_pack_q8_bytes(int d_in, int d_out);
/** Quantizes w {d_out, d_in} row-major (nn.Linear.weight) into wp
 *  (ssm_pack_q8_bytes bytes, 64-byte aligned): per output column j,
 *  sw[j] = max_k|w[j,k]| / 127 and wq[k,j] = clamp(rint(w[j,k]·127/max), ±127)
 *  (a column whose max |w| is below 2⁻¹⁰⁰: all zero, scale 0).  Returns 0,
 *  or -1 (wp unspecified) when a weight is NaN or ±Inf or d_in >
 *  SSM_Q8_MAX_D_IN (the kernels then write NaN rather than overflow). */
int ssm_pack_q8(void *wp, const float *w, int d_in, int d_out);
/** 1 when isa's int8 variant runs natively here (AVX-512 also needs
 *  AVX-512 BW and VNNI; without them ssm_linear_q8_get(SSM_ISA_AVX512)
 *  returns the AVX2 variant), else 0. */
int ssm_q8_isa_supported(ssm_isa isa);
/** The int8 variant for isa (a panel from ssm_pack_q8 as wp), or NULL when
 *  this CPU lacks isa.  Same signature as the packed variants. */
ssm_linear_packed_fn ssm_linear_q8_get(ssm_isa isa);
void ssm_linear_q8_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                          const void *wp, const float *bias, int n_rows, int d_in, int d_out);

/* ---- the per-layer mixer step (cpu/ssm_kernels_mixer.c) -------------------
 * Everything of one Mamba-1 layer between in_proj and out_proj for a batch
 * of streams (mamba_ssm/modules/mamba_simple.py `Mamba.step`):
 *   x, z   = the two halves of in_proj's output row xz {2·d_inner}
 *   x      = SiLU(causal depthwise conv(conv_state ← x) + conv_b)
 *   Δ|B|C  = x_proj(x)                          {dt_rank + 2·d_state}
 *   Δ      = softplus(dt_proj(Δ) + dt_bias)     {d_inner}
 *   h      = exp(max(Δ·A, dA_log_min))·h + Δ·x·B;  y = C·h + D·x
 *   y      = y ⊙ SiLU(z)
 * run tile by tile: SSM_MIXER_TILE streams pass through all six stages
 * before the next tile, so a tile's intermediates stay in L1.  The stages are
 * the kernels declared above (chosen once: ssm_mixer_set_isa or
 * ssm_mixer_set_reference) and the projections the caller's linear kernels
 * (x_lin, dt_lin with their weights: packed fp32/f16, int8 or a wrapper of
 * the reference), all row-wise, so the result equals, bit for bit, the same
 * kernels run stage by stage over the whole batch, and a stream's bits do
 * not depend on its batch or tile.  Real-time safe, no allocation: scratch
 * is the caller's (ssm_mixer_scratch_floats floats).  Thread-safe for
 * disjoint streams and scratch. */

/** Streams per tile of ssm_mixer_step: a multiple of the projection
 *  kernels' register tiles (6 rows AVX-512 and int8, 4 and 3 AVX2), so no
 *  tile leaves a remainder the kernels run row by row. */
#define SSM_MIXER_TILE 12

/** One layer's weights and kernels for ssm_mixer_step.  Shapes: conv_w
 *  {d_inner, d_conv}, conv_b {d_inner} or NULL, dt_bias {d_inner} or NULL,
 *  A {d_inner, d_state} (= −exp(A_log)), D {d_inner} or NULL; x_proj_w /
 *  dt_proj_w as x_lin / dt_lin read them (x_proj: d_inner → dt_rank +
 *  2·d_state, dt_proj: dt_rank → d_inner, no bias).  Borrowed, not owned. */
typedef struct ssm_mixer {
    int d_inner, d_state, d_conv, dt_rank;
    const float *conv_w, *conv_b, *dt_bias, *A, *D;
    float dA_log_min;
    const void *x_proj_w, *dt_proj_w;
    ssm_linear_packed_fn x_lin, dt_lin;
    ssm_conv_step_fn conv;
    ssm_softplus_fn softplus;
    ssm_scan_step_fn scan;
    ssm_gate_silu_fn gate;
} ssm_mixer;

/** Sets mx's conv, softplus, scan and gate to isa's variants (the getters
 *  above: explicit AVX-512 / AVX2+FMA, or the portable _vec kernels). */
void ssm_mixer_set_isa(ssm_mixer *mx, ssm_isa isa);
/** Sets them to the plain-C reference kernels (libm exp and log1p). */
void ssm_mixer_set_reference(ssm_mixer *mx);
/** Floats of scratch ssm_mixer_step needs: SSM_MIXER_TILE · (2·d_inner +
 *  dt_rank + 2·d_state). */
size_t ssm_mixer_scratch_floats(const ssm_mixer *mx);
/** One mixer step of n_streams streams: y {n_streams, d_inner} (ld_y) from
 *  xz {n_streams, 2·d_inner} (ld_xz; x then z), updating conv_state[s]
 *  {d_inner, d_conv} and ssm_state[s] {d_inner, d_state} in place.  y must
 *  not alias xz, the states or scratch. */
void ssm_mixer_step(const ssm_mixer *mx, float *y, size_t ld_y, const float *xz, size_t ld_xz,
                    float *const *conv_state, float *const *ssm_state, int n_streams,
                    float *scratch);

/* ---- Mamba-2 (SSD) mixer (cpu/ssm_kernels_ref.c, _vec.c, _mixer.c) ----------
 * Source of the math: Dao & Gu 2024, "Transformers are SSMs: Generalized
 * Models and Efficient Algorithms Through Structured State Space Duality"
 * (arXiv:2405.21060) §6-7, and state-spaces/mamba mamba_ssm/modules/mamba2.py
 * (`Mamba2.step`), ops/triton/ssd_combined.py (the chunked form).  Differences
 * from Mamba-1: A and Δ are one scalar per head (d_inner = n_heads·head_dim
 * channels, head h owns channels [h·head_dim, (h+1)·head_dim)), B and C come
 * out of the conv (not a projection) and are shared by the n_heads/n_groups
 * heads of a group (head h reads group h / (n_heads/n_groups)), and the
 * output is normalised by a gated, group-wise RMSNorm.  The per-stream state
 * is {n_heads, head_dim, d_state} (the same floats as Mamba-1's {d_inner,
 * d_state}; the CUDA kernels take the same layout). */

/** One Mamba-2 state update for a batch of streams (Mamba2.step), for every
 *  stream s, head h (group g), channel p of the head, state n:
 *    dA          = exp(Δ[s,h]·A[h])
 *    S[s][h,p,n] = dA · S[s][h,p,n] + (Δ[s,h]·x[s,h,p]) · B[s,g,n]
 *    y[s,h,p]    = Σ_n S[s][h,p,n] · C[s,g,n] + D[h] · x[s,h,p]
 *  y {n_streams, n_heads·head_dim} (ld_y); ssm_state {n_streams} pointers each
 *  to {n_heads, head_dim, d_state} (updated in place); x {n_streams,
 *  n_heads·head_dim} (ld_x); dt {n_streams, n_heads} (ld_dt, after softplus);
 *  A {n_heads} (= −exp(A_log)); B, C {n_streams, n_groups·d_state} (ld_bc);
 *  D {n_heads} or NULL.  n_heads must be a multiple of n_groups.  y must not
 *  alias an input.  The reference sums C·S in state order with libm expf. */
void ssm_scan_heads_step_f32(float *y, size_t ld_y, float *const *ssm_state,
                             const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                             const float *A, const float *B, const float *C, size_t ld_bc,
                             const float *D, int n_streams, int n_heads, int head_dim,
                             int n_groups, int d_state);
/** Vectorisable variant (target clones AVX-512 / AVX2 / baseline, the same
 *  bits on each): exp by vexp_fma, the C·S sum in eight lanes like
 *  ssm_scan_step_f32_vec. */
void ssm_scan_heads_step_f32_vec(float *y, size_t ld_y, float *const *ssm_state,
                                 const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                 const float *A, const float *B, const float *C, size_t ld_bc,
                                 const float *D, int n_streams, int n_heads, int head_dim,
                                 int n_groups, int d_state);
typedef void (*ssm_scan_heads_step_fn)(float *y, size_t ld_y, float *const *ssm_state,
                                       const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                                       const float *A, const float *B, const float *C,
                                       size_t ld_bc, const float *D, int n_streams, int n_heads,
                                       int head_dim, int n_groups, int d_state);
/** The Mamba-2 scan step for isa, with the bits of
 *  ssm_scan_heads_step_f32_vec (the same operations in the same order):
 *  explicit AVX2 intrinsics for isa AVX2 and AVX-512 (one pass over each
 *  channel's state in blocks of 8, the tail masked; cpu/ssm_kernels_packed.c),
 *  else the _vec function itself.  Call once at set-up and keep the pointer. */
ssm_scan_heads_step_fn ssm_scan_heads_step_get(ssm_isa isa);

/** Frames per block of the chunked SSD form (ssm_ssd_chunk_f32). */
#define SSM_SSD_CHUNK 64
/** Floats of scratch ssm_ssd_chunk_f32 needs (any n_frames). */
size_t ssm_ssd_scratch_floats(void);

/** The chunked (SSD) form of n_frames Mamba-2 state updates of ONE stream
 *  (arXiv:2405.21060 §6, "SSD algorithm"): frames are taken in blocks of
 *  SSM_SSD_CHUNK; inside a block, per head h with a_t = Σ_{k≤t} Δ_k·A[h]
 *  (accumulated in double),
 *    y_t = exp(a_t)·(S₀ C_t) + Σ_{s≤t} exp(a_t − a_s)·(C_t·B_s)·Δ_s·x_s + D·x_t
 *    S   = exp(a_L)·S₀ + Σ_s exp(a_L − a_s)·Δ_s·x_s ⊗ B_s
 *  (the quadratic "attention" form within a block, the state between
 *  blocks), so it starts from and leaves the state exactly where n_frames
 *  calls of ssm_scan_heads_step_f32 would, within fp32 rounding (tests hold
 *  the two to 1e-5 relative).  Shapes as ssm_scan_heads_step_f32 with rows =
 *  frames and one state {n_heads, head_dim, d_state}; scratch
 *  ssm_ssd_scratch_floats() floats.  Real-time safe, no allocation. */
void ssm_ssd_chunk_f32(float *y, size_t ld_y, float *ssm_state,
                       const float *x, size_t ld_x, const float *dt, size_t ld_dt,
                       const float *A, const float *B, const float *C, size_t ld_bc,
                       const float *D, int n_frames, int n_heads, int head_dim,
                       int n_groups, int d_state, float *scratch);

/** Gated group-wise RMSNorm (mamba_ssm RMSNormGated, norm_before_gate=False):
 *  y ← y ⊙ SiLU(z), then per group of group_size = dim / n_groups channels
 *  y ← y / sqrt(mean(y²) + eps) · w (mean over the group; ssm_rmsnorm_f32's
 *  order).  y {n_rows, dim} (ld_y, in place), z {n_rows, dim} (ld_z), w {dim};
 *  gate: the SiLU gate kernel to use (reference or an ISA's). */
void ssm_rmsnorm_gated_f32(float *y, size_t ld_y, const float *z, size_t ld_z,
                           const float *w, int n_rows, int dim, int n_groups, float eps,
                           ssm_gate_silu_fn gate);

/** One layer's Mamba-2 weights and kernels (borrowed).  Shapes: conv_w
 *  {conv_dim, d_conv} with conv_dim = d_inner + 2·n_groups·d_state, conv_b
 *  {conv_dim} or NULL, dt_bias {n_heads}, A {n_heads} (= −exp(A_log)), D
 *  {n_heads} or NULL, norm_w {d_inner}; d_inner = n_heads·head_dim. */
typedef struct ssm_mixer2 {
    int d_inner, d_state, d_conv, n_heads, head_dim, n_groups;
    const float *conv_w, *conv_b, *dt_bias, *A, *D, *norm_w;
    float norm_eps;
    int norm_groups; /* gated-norm groups (d_inner / group size); 0: n_groups (mamba_ssm) */
    ssm_conv_step_fn conv;
    ssm_softplus_fn softplus;
    ssm_scan_heads_step_fn scan;
    ssm_gate_silu_fn gate;
    int chunked; /* forward: 1 the SSD form (ssm_ssd_chunk_f32), 0 (set_isa, set_reference)
                    the scan frame by frame: the step's bits */
} ssm_mixer2;

/** The ISA's kernels or the plain-C reference (the oracle); both leave
 *  chunked = 0 (set it to 1 afterwards for the SSD forward). */
void ssm_mixer2_set_isa(ssm_mixer2 *mx, ssm_isa isa);
void ssm_mixer2_set_reference(ssm_mixer2 *mx);
/** Floats of scratch ssm_mixer2_step and ssm_mixer2_forward need. */
size_t ssm_mixer2_scratch_floats(const ssm_mixer2 *mx);
/** Everything of a Mamba-2 layer between in_proj and out_proj for n_streams
 *  streams (Mamba2.step): from in_proj's row zxbcdt = [z {d_inner} | xBC
 *  {conv_dim} | dt {n_heads}] (ld_in), causal conv + SiLU of xBC (conv_state[s]
 *  {conv_dim, d_conv}), Δ = softplus(dt + dt_bias), the scan
 *  (ssm_state[s] {n_heads, head_dim, d_state}), then the gated RMSNorm
 *  into y {n_streams, d_inner} (ld_y).  Tile by tile like ssm_mixer_step; row-wise,
 *  so a stream's bits do not depend on its batch.  y must not alias the
 *  input, the states or scratch.  Real-time safe; thread-safe for disjoint
 *  streams and scratch. */
void ssm_mixer2_step(const ssm_mixer2 *mx, float *y, size_t ld_y, const float *zxbcdt,
                     size_t ld_in, float *const *conv_state, float *const *ssm_state,
                     int n_streams, float *scratch);
/** n_frames consecutive frames of ONE stream (rows of zxbcdt and y are
 *  frames), starting from and updating its states: the conv walks the frames;
 *  the scan walks them too (mx->chunked = 0: bit for bit n_frames calls of
 *  ssm_mixer2_step, the other stages run over all rows at once) or runs the
 *  chunked SSD form (mx->chunked = 1: within 1e-5 relative of the steps, and
 *  its last bits depend on how frames are split into calls). */
void ssm_mixer2_forward(const ssm_mixer2 *mx, float *y, size_t ld_y, const float *zxbcdt,
                        size_t ld_in, float *conv_state, float *ssm_state, int n_frames,
                        float *scratch);

/* ---- sliding-window attention (cpu/ssm_kernels_ref.c, _vec.c, _attn.c) ------
 * Source of the math: causal multi-head softmax attention (Vaswani et al.
 * 2017, arXiv:1706.03762) with grouped KV heads (GQA, Ainslie et al. 2023,
 * arXiv:2305.13245) and rotary position embedding (RoPE, Su et al. 2021,
 * arXiv:2104.09864), as state-spaces/mamba mamba_ssm/modules/mha.py `MHA`
 * lays it out: in_proj's row is [q {n_heads, head_dim} | k {n_heads_kv,
 * head_dim} | v {n_heads_kv, head_dim} | mlp {mlp_dim}], query head h reads
 * KV head h / (n_heads / n_heads_kv) (torch.repeat_interleave), the softmax
 * scale defaults to 1/sqrt(head_dim), and RoPE rotates the first rot_dim
 * channels of every q and k head (flash_attn RotaryEmbedding: frequencies
 * base^(−2i/rot_dim), i < rot_dim/2; pairs (i, i + rot_dim/2), or (2i, 2i+1)
 * when interleaved: x' = x·cos − x_pair·sin, x_pair' = x_pair·cos + x·sin).
 * What ssmd adds is the window: a stream keeps the keys and values of its last
 * `window` frames in a ring, so its state has a fixed size (DESIGN.md §4) and a
 * query attends to at most `window` frames, itself included. */

/** Attention of one query frame over n_keys cached frames, for every query
 *  head h (KV head g = h / (n_heads / n_heads_kv)):
 *    s_j = scale · q_h · K[r_j, g]       r_j = (first + j) mod window, j < n_keys
 *    y_h = Σ_j exp(s_j − max s) · V[r_j, g] / Σ_j exp(s_j − max s)
 *  (j = 0 is the oldest frame).  y {n_heads·head_dim}; q {n_heads·head_dim};
 *  K, V {window, n_heads_kv·head_dim} (the ring); scores: scratch {window}.
 *  1 <= n_keys <= window, 0 <= first < window; y must not alias an input.
 *  The reference sums in j order with libm expf. */
void ssm_attn_core_f32(float *y, const float *q, const float *K, const float *V, int window,
                       int first, int n_keys, int n_heads, int n_heads_kv, int head_dim,
                       float scale, float *scores);
/** Vectorisable variant (target clones AVX-512 / AVX2 / baseline, the same
 *  bits on each): q·k in eight lanes (ssm_linear_f32's order), exp by the
 *  _vec polynomial, V rows accumulated contiguously over head_dim. */
void ssm_attn_core_f32_vec(float *y, const float *q, const float *K, const float *V, int window,
                           int first, int n_keys, int n_heads, int n_heads_kv, int head_dim,
                           float scale, float *scores);
typedef void (*ssm_attn_core_fn)(float *y, const float *q, const float *K, const float *V,
                                 int window, int first, int n_keys, int n_heads, int n_heads_kv,
                                 int head_dim, float scale, float *scores);
/** The attention core for isa: the _vec clones unless isa is scalar-capped
 *  (then still _vec, its baseline clone: the same bits).  Call once at set-up. */
ssm_attn_core_fn ssm_attn_core_get(ssm_isa isa);

/** Rotary embedding of one frame in place: x {n_heads, head_dim}, the first
 *  rot_dim (even, <= head_dim) channels of each head rotated by the angles
 *  pos·inv_freq[i] (inv_freq {rot_dim/2}, float64); the angle and its cos
 *  and sin are computed in float64 (libm cos/sin reduce any argument
 *  exactly), then rounded to fp32, so precision does not decay with pos. */
void ssm_rope_f32(float *x, int n_heads, int head_dim, int rot_dim, int interleaved,
                  const double *inv_freq, uint64_t pos);

/** One attention layer's geometry and kernels (borrowed pointers). */
typedef struct ssm_attn {
    int n_heads, n_heads_kv, head_dim;
    int window;          /* W: frames a query sees (itself included) */
    int rot_dim;         /* RoPE channels per head (even, <= head_dim); 0 = none */
    int rot_interleaved; /* 1: pairs (2i, 2i+1) (GPT-J); 0: (i, i + rot_dim/2) (GPT-NeoX) */
    const double *inv_freq; /* {rot_dim/2} base^(−2i/rot_dim) */
    float scale;         /* softmax scale (mha.py softmax_scale; default 1/sqrt(head_dim)) */
    int mlp_dim;         /* mha.py mlp_dim: in_proj rows [up {mlp_dim/2} | gate {mlp_dim/2}]
                            after q|k|v, up·SiLU(gate) appended to the attention output */
    ssm_attn_core_fn core;
    ssm_gate_silu_fn gate;
} ssm_attn;

/** Per-stream state of an attention layer, in floats: the key ring K {window,
 *  n_heads_kv·head_dim}, the value ring V (same), then the frame counter as
 *  two floats (lo = pos mod 2^24, hi = pos / 2^24, both exact integers): the
 *  number of frames the stream has seen, which fixes the next ring row (pos
 *  mod window), how many rows are valid (min(pos, window)) and the RoPE
 *  angle.  Keys are stored rotated (as mha.py's KV cache). */
size_t ssm_attn_state_floats(const ssm_attn *a);
/** Index of the counter's first float in that state. */
size_t ssm_attn_counter_at(const ssm_attn *a);
/** Floats of scratch ssm_attn_step / ssm_attn_forward need. */
size_t ssm_attn_scratch_floats(const ssm_attn *a);
/** ISA kernels (core and gate) or the plain-C reference ones. */
void ssm_attn_set_isa(ssm_attn *a, ssm_isa isa);
void ssm_attn_set_reference(ssm_attn *a);
/** Everything of an attention layer between in_proj and out_proj for
 *  n_streams streams, one frame each: from in_proj's row qkv (ld_in; layout
 *  above) RoPE q and k at the stream's position, write k and v into its ring
 *  (state[s], ssm_attn_state_floats floats, updated in place with its
 *  counter), attend over the ring, and write y {n_streams, n_heads·head_dim +
 *  mlp_dim/2} (ld_y).  Per stream, so a stream's bits do not depend on its
 *  batch.  y must not alias the input, the states or scratch.  Real-time
 *  safe; thread-safe for disjoint streams and scratch. */
void ssm_attn_step(const ssm_attn *a, float *y, size_t ld_y, const float *qkv, size_t ld_in,
                   float *const *state, int n_streams, float *scratch);
/** n_frames consecutive frames of ONE stream (rows are frames), starting from
 *  and updating its state: bit for bit n_frames calls of ssm_attn_step. */
void ssm_attn_forward(const ssm_attn *a, float *y, size_t ld_y, const float *qkv, size_t ld_in,
                      float *state, int n_frames, float *scratch);

void ssm_linear_packed_f32_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                                  const void *wp, const float *bias,
                                  int n_rows, int d_in, int d_out);
void ssm_linear_packed_f16_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                                  const void *wp, const float *bias,
                                  int n_rows, int d_in, int d_out);

#ifdef __cplusplus
}
#endif
#endif /* KERNELS_SSM_KERNELS_H */
