/* SPDX-License-Identifier: MIT */
/* ssm/model.h — a selective state-space model (Mamba-1 and Mamba-2 layers,
 * mixed in one stack as the model file says): load once, then step
 * any number of independent streams frame by frame with constant memory.
 *
 * Three kinds of object:
 *  - ssm_model   the weights, read-only after ssm_model_load; shared by every
 *                thread and stream; must outlive its states and runners.
 *  - ssm_state   one stream's recurrent state (per layer a conv_state
 *                {conv_dim, d_conv} and an ssm_state {d_inner, d_state};
 *                Mamba-1: conv_dim = d_inner; Mamba-2: conv_dim = d_inner +
 *                2·n_groups·d_state and the ssm_state is {n_heads, head_dim,
 *                d_state}; fp32),
 *                of fixed size ssm_state_bytes(); reset, snapshot, restore.
 *  - ssm_runner  scratch memory for computing: sized at create for a maximum
 *                batch (step) and chunk length (forward) in one allocation;
 *                ssm_step / ssm_forward never allocate.
 * Thread safety: functions taking a const ssm_model* may run concurrently.
 * A runner, and each state, is used by one thread at a time (several threads
 * each with their own runner may step disjoint sets of states at once).
 *
 * Math (mamba_ssm modules/mamba_simple.py Mamba.step): for a
 * frame input u the residual r = embedding[token] or frontend.proj·u + bias;
 * per layer h = RMSNorm(r)·norm, [x|z] = in_proj·h, causal depthwise conv of
 * the last d_conv x + bias then SiLU, [δ|B|C] = x_proj·x,
 * Δ = softplus(dt_proj·δ + dt_bias), h_ssm ← exp(Δ·A)⊙h_ssm + (Δ·x)⊗B,
 * y = h_ssm·C + D⊙x, y ← y⊙SiLU(z), r ← r + out_proj·y; then
 * h_f = RMSNorm(r)·norm_f feeds the heads.  Compute is fp32 whatever the
 * storage dtype of the file.
 * A Mamba-2 layer (Dao & Gu 2024, arXiv:2405.21060; mamba_ssm
 * modules/mamba2.py Mamba2.step) instead computes [z|xBC|dt] = in_proj·h,
 * xBC = SiLU(causal conv + bias), [x|B|C] = xBC, Δ = softplus(dt + dt_bias)
 * and A = −exp(A_log) one per head, S_h ← exp(Δ_h·A_h)·S_h + Δ_h·x_h ⊗ B_g,
 * y_h = S_h·C_g + D_h·x_h (g the head's group), y = RMSNorm_group(y⊙SiLU(z))
 * ·norm, r ← r + out_proj·y; ssm_forward gives the bits of the frames
 * stepped, or with SSM_RUNNER_SSD_FORWARD runs the chunked SSD form (within
 * 1e-5 relative of the steps).  Mamba-2 layers run on
 * the CPU backend only (CUDA: SSM_ERR_BACKEND; AUTO falls back to the CPU).
 * An attention layer (mamba_ssm modules/mha.py MHA, causal; Vaswani et al.
 * 2017 with grouped KV heads and rotary embedding) computes [q|k|v] =
 * in_proj·h, rotates q and k at the stream's frame position (RoPE), writes k
 * and v into the stream's ring of the last W frames (attention.window) and
 * attends softmax(scale·q·kᵀ)·v over the ring, r ← r + out_proj·y; its state
 * is the ring plus a frame counter, so memory per stream stays constant
 * (kernels/ssm_kernels.h "sliding-window attention").  With d_intermediate >
 * 0 every block also adds a gated MLP (mamba_ssm GatedMLP): r ← r +
 * fc2(a ⊙ SiLU(g)), [a|g] = fc1·RMSNorm(r)·norm2.  Both run on the CPU only.
 *
 * Backends (ssm_model_options.backend): CPU (kernels/cpu) or CUDA
 * (kernels/cuda, model/src/model_cuda.c).  On CUDA the weights are uploaded
 * once at load; each state's payload lives on the device (its 64-byte header
 * with the counters stays on the host), so ssm_state_init, which cannot
 * allocate, returns NULL for a CUDA model (use ssm_state_create); snapshots
 * copy the payload back and restores copy it up; ssm_step and ssm_forward
 * replay one CUDA graph per call and wait for it (real-time safe as far as
 * the driver is: no allocation after the first call of a given shape), and
 * return SSM_ERR_BACKEND if the device fails.  Results agree with the CPU
 * within the tolerances tests/gpu states (not bit for bit: cuBLAS sums in
 * its own order); on one device they are deterministic and independent of
 * the batch a stream is in only up to cuBLAS' choice of algorithm per shape.
 *
 * Errors: every function returning int returns SSM_OK (0) or a negative
 * ssm_status (ssm/status.h).  Nothing aborts on bad input.
 */
#ifndef SSM_MODEL_H
#define SSM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ssm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_model ssm_model;
typedef struct ssm_state ssm_state;
typedef struct ssm_runner ssm_runner;

/* ---- model ------------------------------------------------------------ */

/** What a frame input is (ssm_model_input). */
enum {
    SSM_MODEL_INPUT_TOKENS   = 0, /**< one int32 token id in [0, vocab_size) per frame */
    SSM_MODEL_INPUT_FEATURES = 1, /**< n_features floats per frame */
};

/** Output heads present in a model (bitmask, ssm_model_heads). */
enum {
    SSM_MODEL_HEAD_MASK      = 1u << 0, /**< {n_mask} gains in (0,1): sigmoid(W h_f + b) */
    SSM_MODEL_HEAD_VAD       = 1u << 1, /**< {1} speech probability: sigmoid(w·h_f + b) */
    SSM_MODEL_HEAD_LM        = 1u << 2, /**< {vocab_size} logits: lm_head·h_f */
    SSM_MODEL_HEAD_EMBEDDING = 1u << 3, /**< {d_model} h_f itself; always present */
};

/** Compute backends (ssm_model_options.backend). */
enum {
    SSM_BACKEND_CPU = 0,  /**< kernels/cpu (default) */
    SSM_BACKEND_CUDA = 1, /**< kernels/cuda on an NVIDIA GPU: weights uploaded
                               once at load, states on the device */
    SSM_BACKEND_AUTO = 2, /**< CUDA when a device is usable, else the CPU; the
                               reason for the fallback is in
                               ssm_model_backend_note() */
};

/** Load options; NULL (or all zero) means all defaults: the CPU backend. */
typedef struct ssm_model_options {
    /** SSM_BACKEND_*.  SSM_BACKEND_CUDA fails with SSM_ERR_BACKEND (and a line
     *  saying why) when the build has no CUDA, no device is present, or the
     *  model exceeds the kernels' limits (d_conv > 16, d_state > 256). */
    int backend;
    /** CUDA device ordinal (0 = first), for CUDA and AUTO. */
    int cuda_device;
} ssm_model_options;

/** 1 when backend (SSM_BACKEND_CPU or _CUDA; device ordinal for CUDA) can
 *  run here, else 0 with one line in why (may be NULL) saying why, e.g. "no
 *  CUDA device (cudaGetDeviceCount: ...)" or "this build has no CUDA
 *  backend".  Thread-safe; initialises the CUDA runtime on first use. */
int ssm_backend_available(int backend, int device, ssm_error *why);

/** "cpu" or "cuda": the backend the model runs on (static string). */
const char *ssm_model_backend(const ssm_model *model);

/** Why an SSM_BACKEND_AUTO load fell back to the CPU, or the device name
 *  ("cuda: NVIDIA H200") when it did not; "" for an explicit backend.  Lives
 *  as long as the model. */
const char *ssm_model_backend_note(const ssm_model *model);

/** Maps and validates the model file at path (safetensors, docs/model-format.md)
 *  and prepares it for compute.  On success *out owns everything and must be
 *  released with ssm_model_free.  On failure returns SSM_ERR_IO / _FORMAT /
 *  _MODEL / _NOMEM / _BACKEND, sets *out = NULL and, when err is not NULL,
 *  writes one line naming the file, the tensor and the reason.
 *  Not real-time safe (reads files, allocates).  Thread-safe. */
int ssm_model_load(const char *path, const ssm_model_options *opts,
                   ssm_model **out, ssm_error *err);

/** Releases a model; NULL is a no-op.  Every state and runner created from it
 *  must already be destroyed (or no longer used). */
void ssm_model_free(ssm_model *model);

/** Hyper-parameters (all >= 1 except where noted).  The getters below take a
 *  loaded, non-NULL model (except ssm_model_meta, which answers NULL), never
 *  fail, and are thread-safe and real-time safe. */
int ssm_model_d_model(const ssm_model *model);   /**< width of the residual stream */
int ssm_model_n_layer(const ssm_model *model);
int ssm_model_d_inner(const ssm_model *model);   /**< channels inside a mixer (expand·d_model) */
int ssm_model_d_state(const ssm_model *model);   /**< SSM state size per channel (N) */
int ssm_model_d_conv(const ssm_model *model);    /**< causal conv width (frames) */
int ssm_model_dt_rank(const ssm_model *model);
/** Layer kinds (ssm_model_layer_kind). */
enum {
    SSM_MODEL_LAYER_MAMBA1 = 0, /**< mamba_simple.py Mamba */
    SSM_MODEL_LAYER_MAMBA2 = 1, /**< mamba2.py Mamba2 (SSD) */
    SSM_MODEL_LAYER_ATTENTION = 2, /**< mha.py MHA, causal, over a window of frames */
};
/** SSM_MODEL_LAYER_* of layer (0 <= layer < n_layer), or SSM_ERR_INVALID.
 *  The getters above describe the Mamba-1 layers' geometry (the model
 *  file's d_inner, d_state, d_conv keys); a Mamba-2 layer's own is in its
 *  mamba2.* metadata, an attention layer's in its attention.* metadata
 *  (ssm_model_meta). */
int ssm_model_layer_kind(const ssm_model *model, int layer);
/** SSM_MODEL_INPUT_TOKENS or SSM_MODEL_INPUT_FEATURES. */
int ssm_model_input(const ssm_model *model);
/** Floats per frame for feature input; 0 for token input. */
int ssm_model_n_features(const ssm_model *model);
/** Token vocabulary (token input and/or LM head); 0 when unused. */
int ssm_model_vocab_size(const ssm_model *model);
/** SSM_MODEL_HEAD_* bits present (EMBEDDING always set). */
unsigned ssm_model_heads(const ssm_model *model);
/** Outputs of the mask head; 0 without one. */
int ssm_model_n_mask(const ssm_model *model);
/** Value of a __metadata__ key of the file (e.g. "frontend.n_fft"), or NULL
 *  when absent.  The string lives as long as the model. */
const char *ssm_model_meta(const ssm_model *model, const char *key);
/** Number of __metadata__ entries, and the i-th (0 <= i < count) key and
 *  value for listing; ssm_model_meta_at returns SSM_OK or SSM_ERR_INVALID
 *  (i out of range).  Strings live as long as the model. */
int ssm_model_meta_count(const ssm_model *model);
int ssm_model_meta_at(const ssm_model *model, int i, const char **key, const char **value);
/** 64-bit FNV-1a hash of the model file: identifies the model in snapshots. */
uint64_t ssm_model_hash(const ssm_model *model);

/* ---- per-stream state ---------------------------------------------------- */

/** Bytes of one stream's state as stored and as snapshotted: the sum over
 *  layers of (conv_dim·d_conv + d_inner·d_state)·4 (an attention layer:
 *  (2·window·num_heads_kv·head_dim + 2)·4, its KV ring and frame counter;
 *  for an all-Mamba-1
 *  model n_layer·d_inner·(d_conv + d_state)·4) plus a 64-byte header.  This is the
 *  figure "memory per stream"; it never grows with the stream's length. */
size_t ssm_state_bytes(const ssm_model *model);

/** Allocates a zeroed state (the state of a stream that has seen nothing).
 *  Returns SSM_OK, SSM_ERR_INVALID (model NULL) or SSM_ERR_NOMEM.
 *  Not real-time safe (allocates). */
int ssm_state_create(const ssm_model *model, ssm_state **out);

/** Bytes ssm_state_init needs at mem (a 64-byte aligned address). */
size_t ssm_state_size(const ssm_model *model);

/** Places a zeroed state in caller-owned memory mem of size bytes (>=
 *  ssm_state_size(model), 64-byte aligned).  Returns the state (which is just
 *  mem, typed) or NULL when mem is NULL, misaligned or too small.  The caller
 *  frees mem; ssm_state_destroy on such a state does nothing.  RT safe. */
ssm_state *ssm_state_init(const ssm_model *model, void *mem, size_t size);

/** Releases a state from ssm_state_create; NULL is a no-op. */
void ssm_state_destroy(ssm_state *state);

/** Zeroes the state (as after create) and its statistics.  RT safe. */
void ssm_state_reset(ssm_state *state);

/** Counters kept per state since create/init/reset (ssm_state_stats). */
typedef struct ssm_state_stats {
    uint64_t n_frames;           /**< frames stepped or forwarded */
    uint64_t n_nonfinite_inputs; /**< input values that were NaN/Inf and were zeroed */
    uint64_t n_resets;           /**< times the state went non-finite and was reset */
} ssm_state_stats;

/** Copies the state's counters to *out.  RT safe. */
void ssm_state_stats_get(const ssm_state *state, ssm_state_stats *out);

/** Serialises the state to buf (size bytes, >= ssm_state_bytes(model)):
 *  a 64-byte header (magic "SSMDSTAT", format version, model hash, n_layer,
 *  d_inner, d_conv, d_state, payload checksum) then the fp32 payload in host
 *  byte order.  *written (may be NULL) receives the byte count.  Returns
 *  SSM_OK or SSM_ERR_INVALID (buffer too small).  RT safe. */
int ssm_state_snapshot(const ssm_state *state, void *buf, size_t size, size_t *written);

/** Replaces the state with a snapshot of exactly ssm_state_bytes(model)
 *  bytes.  Refuses, leaving the state untouched: a snapshot of another model
 *  (hash), format version or geometry with SSM_ERR_MISMATCH; a buffer of
 *  another length, bad magic, non-zero reserved header bytes, checksum error
 *  or non-finite value with SSM_ERR_INVALID.  Counters are reset.  RT safe. */
int ssm_state_restore(ssm_state *state, const void *buf, size_t size);

/* ---- compute ------------------------------------------------------------- */

/** Runner options. */
enum {
    /** Compute step projections with BLAS sgemm: faster at large batches, but
     *  a stream's last bits then depend on its batch.  Default (0): the
     *  batch-invariant kernel, where a stream gives bit-identical results
     *  alone or in any batch. */
    SSM_RUNNER_BLAS_STEP = 1u << 0,
    /** Use the plain-C reference kernels (libm expf) for the conv, softplus,
     *  scan, gate and the heads' sigmoid instead of the vectorised ones (an
     *  exp polynomial within ~2 ulp);
     *  slower, for verification.  Both agree with a float64 reference to
     *  ~1e-6 relative. */
    SSM_RUNNER_REFERENCE = 1u << 1,
    /** Projections read binary16 copies of the weights (made at load, round
     *  to nearest even) and accumulate in fp32: half the weight bytes per
     *  step, for memory-bound steps of large models.  Outputs differ from the
     *  fp32 weights by the weights' rounding (measured in
     *  docs/performance.md); still batch-invariant.  ssm_forward then uses
     *  the same kernel (not sgemm).  Excludes SSM_RUNNER_BLAS_STEP
     *  (SSM_ERR_INVALID: steps and forwards would differ in precision);
     *  ignored with SSM_RUNNER_REFERENCE. */
    SSM_RUNNER_F16_WEIGHTS = 1u << 2,
    /** Cap the instruction set of the projection and elementwise kernels
     *  (conv, softplus, scan, gate, sigmoid) at AVX2+FMA, or at
     *  plain C (ISA_SCALAR wins when both are set): by default the runner
     *  picks the best this CPU has (AVX-512, AVX2+FMA, scalar) once, at
     *  creation.  Every choice gives the same bits (kernels/ssm_kernels.h,
     *  packed linear layers): these exist for benchmarks and tests. */
    SSM_RUNNER_ISA_AVX2 = 1u << 3,
    SSM_RUNNER_ISA_SCALAR = 1u << 4,
    /** CUDA backend only: projections read bfloat16 copies of the weights
     *  (made at load) and bf16 activations, accumulated in fp32
     *  (cublasGemmEx, CUBLAS_COMPUTE_32F); the accuracy cost is measured in
     *  tests/gpu and docs/performance.md.  SSM_ERR_INVALID on the CPU. */
    SSM_RUNNER_BF16_WEIGHTS = 1u << 5,
    /** CUDA backend only: launch the kernels one by one instead of replaying
     *  a CUDA graph (same results bit for bit; for tests and profiling). */
    SSM_RUNNER_NO_GRAPH = 1u << 6,
    /** CPU backend: projections in int8 (ssm_kernels.h "int8 linear
     *  layers"): int8 weights with one scale per output column (made at
     *  load), activations quantized to int8 per row on the fly, exact int32
     *  sums (AVX-512 VNNI / AVX2), one fp32 rescale per output; a quarter of
     *  the fp32 weight bytes, so a ~1 M-parameter model's projections stay
     *  in a 1 MB L2.  Outputs differ from fp32 by the quantization of both
     *  operands (measured in docs/performance.md and tests/model); every ISA
     *  gives the same bits and steps stay batch-invariant; ssm_forward uses
     *  the same kernel, so a chunk still equals its frames stepped.  Layers
     *  with more than SSM_Q8_MAX_D_IN (8192) inputs are refused; excludes
     *  SSM_RUNNER_F16_WEIGHTS and SSM_RUNNER_BLAS_STEP (SSM_ERR_INVALID);
     *  ignored with SSM_RUNNER_REFERENCE (all fp32). */
    SSM_RUNNER_INT8_WEIGHTS = 1u << 7,
    /** CPU, Mamba-2 layers: ssm_forward runs their scan in the chunked SSD
     *  form (arXiv:2405.21060 §6: blocks of SSM_SSD_CHUNK frames, the
     *  quadratic form inside a block, the state between blocks) instead of
     *  frame by frame.  Results then equal the steps within 1e-5 relative,
     *  not bit for bit, and their last bits depend on how the frames are
     *  split into ssm_forward calls — so the default (off) keeps "a chunk
     *  equals its frames stepped", which the daemon relies on.  No effect on
     *  Mamba-1 layers, on ssm_step, or with SSM_RUNNER_REFERENCE. */
    SSM_RUNNER_SSD_FORWARD = 1u << 8,
};

/** Creates scratch memory for steps of up to max_batch streams and forwards
 *  of up to max_chunk frames (both >= 1), in one overflow-checked 64-byte
 *  aligned allocation.  On the CPU the first runner that reads a weight
 *  precision also makes the model's packed panels of that precision (fp32 by
 *  default, f16 with SSM_RUNNER_F16_WEIGHTS, int8 with
 *  SSM_RUNNER_INT8_WEIGHTS; none with SSM_RUNNER_REFERENCE): one allocation
 *  of ssm_model_packed_bytes' growth, kept by the model until ssm_model_free
 *  and shared by every later runner, so a model holds only the precisions
 *  its runners use (see ssm_model_packed_bytes).  Safe to call from several
 *  threads on one model at once (the packing is serialised inside).
 *  Returns SSM_OK, SSM_ERR_INVALID or SSM_ERR_NOMEM (scratch or panels, with
 *  a line in err).  Not real-time safe. */
int ssm_runner_create(const ssm_model *model, int max_batch, int max_chunk,
                      unsigned flags, ssm_runner **out, ssm_error *err);

/** Spreads each ssm_step of at least 2·min_rows streams over n_threads
 *  threads: the calling thread and n_threads − 1 workers started here, each
 *  stepping one contiguous slice of the batch (slices of at least min_rows
 *  streams) on its own scratch memory, made here with the runner's max_batch
 *  and flags.  Smaller batches stay on the calling thread, so per-frame latency
 *  of a few streams does not pay the hand-off (~10–50 µs).  Results are
 *  bit-identical to one thread with the default (batch-invariant) step; with
 *  SSM_RUNNER_BLAS_STEP a row's last bits follow its slice, as they follow its
 *  batch.  ssm_forward stays on the calling thread.  n_threads = 1 stops the
 *  workers.  With workers, ssm_step hands slices over and waits through a
 *  mutex and condition variable (not strictly real-time safe).
 *  Returns SSM_OK, SSM_ERR_INVALID (n_threads outside [1, 256], min_rows < 1)
 *  or SSM_ERR_NOMEM (with a line in err); a CUDA runner ignores it (SSM_OK).
 *  Not real-time safe (creates threads and scratch memory); call it between
 *  steps, from the thread that uses the runner. */
int ssm_runner_set_threads(ssm_runner *runner, int n_threads, int min_rows, ssm_error *err);

/** Threads a runner's steps may use (1 without workers). */
int ssm_runner_threads(const ssm_runner *runner);

/** Releases a runner (and stops its worker threads); NULL is a no-op. */
void ssm_runner_destroy(ssm_runner *runner);

/** Bytes the runner allocated (for memory reports). */
size_t ssm_runner_bytes(const ssm_runner *runner);

/** Name of the instruction set the runner's projection kernels use:
 *  "avx512", "avx2" or "scalar", or "cuda" on the CUDA backend (static
 *  string; "none" for NULL). */
const char *ssm_runner_isa(const ssm_runner *runner);

/** Precision of the weights the runner's steps read: "f32", "f16" or "int8"
 *  (CPU, SSM_RUNNER_F16_WEIGHTS / _INT8_WEIGHTS; "f32" with
 *  SSM_RUNNER_REFERENCE or SSM_RUNNER_BLAS_STEP, which ignore them), "bf16"
 *  or "f32" on the CUDA backend; static string, "none" for NULL.
 *  Thread-safe. */
const char *ssm_runner_weights(const ssm_runner *runner);

/** Bytes of the packed weight copies the model holds now: for each
 *  precision some runner has read (ssm_runner_create: fp32, f16, int8), the
 *  panels of every linear layer (kernels/ssm_kernels.h; each rounded up to
 *  64 bytes): per layer {d_in, d_out rounded up to 16} elements of 4 (fp32)
 *  or 2 (f16) bytes, or ssm_pack_q8_bytes (int8).  0 right after
 *  ssm_model_load, on the CUDA backend (weights live on the device) and for
 *  NULL.  The fp32 weights themselves (mapped from the file or converted at
 *  load) are not counted.  Thread-safe (takes the packing lock); not
 *  real-time safe. */
size_t ssm_model_packed_bytes(const ssm_model *model);

/** Where results go: one caller buffer per head, NULL to skip a head (a
 *  requested head the model lacks is SSM_ERR_INVALID).  Rows are streams
 *  (ssm_step) or frames (ssm_forward); n_rows below is B or T. */
typedef struct ssm_outputs {
    float *mask;      /**< {n_rows, n_mask} */
    float *vad;       /**< {n_rows} */
    float *logits;    /**< {n_rows, vocab_size} */
    float *embedding; /**< {n_rows, d_model}: h_f */
} ssm_outputs;

/** Per-stream (step) or per-call (forward) report bits. */
enum {
    SSM_FLAG_NONFINITE_INPUT = 1u << 0, /**< non-finite input values were zeroed */
    SSM_FLAG_RESET           = 1u << 1, /**< the state went non-finite and was reset */
};

/** Advances n_streams independent streams by one frame each.
 *  states {n_streams}: distinct states of this model (the same state twice in
 *  one call is a programming error with unspecified results).  Input (by the model's
 *  input kind, the other pointer is ignored): features {n_streams,
 *  n_features} or tokens {n_streams} (each in [0, vocab_size)).
 *  Non-finite feature values are replaced by 0 and counted in the stream's
 *  stats.  After the step each stream's residual is checked: a stream whose
 *  state became non-finite is reset to zero, its output rows are set to 0 and
 *  it is reported; the other streams are unaffected.
 *  flags {n_streams} or NULL receives SSM_FLAG_* bits per stream.
 *  Returns SSM_OK; SSM_ERR_NONFINITE when at least one stream was reset (all
 *  outputs are still written); SSM_ERR_INVALID (n_streams outside
 *  [1, max_batch], NULL state or a state of another model, token out of
 *  range, missing input, or a requested head the model lacks),
 *  in which case no state was touched.
 *  Real-time safe: no allocation, lock or I/O (with OPENBLAS_NUM_THREADS=1
 *  when SSM_RUNNER_BLAS_STEP is set).
 *  Default projections: the packed FMA kernels of kernels/ (one fixed
 *  summation order per output element, identical on every ISA), so a stream
 *  gives bit-identical results alone or in any batch, on any x86-64. */
int ssm_step(ssm_runner *runner, ssm_state *const *states, int n_streams,
             const float *features, const int32_t *tokens,
             const ssm_outputs *out, unsigned *flags);

/** Runs n_frames consecutive frames of one stream, carrying its state: the
 *  result equals n_frames calls of ssm_step (bit for bit with the same
 *  runner flags, SSM_RUNNER_BLAS_STEP and SSM_RUNNER_SSD_FORWARD aside: the projections run the step's
 *  kernel over the chunk's rows, layer by layer; relative error <= 1e-5
 *  against a step with other flags).  Inputs are
 *  features {n_frames, n_features} or tokens {n_frames}; outputs have
 *  n_frames rows.  Non-finite inputs are zeroed and counted; if the state
 *  becomes non-finite it is reset, the chunk's outputs are set to 0 and
 *  SSM_ERR_NONFINITE is returned.  n_frames in [1, max_chunk], else
 *  SSM_ERR_INVALID (state untouched).  *flags (may be NULL) receives
 *  SSM_FLAG_* bits.  No allocation; uses the BLAS library's threads. */
int ssm_forward(ssm_runner *runner, ssm_state *state, int n_frames,
                const float *features, const int32_t *tokens,
                const ssm_outputs *out, unsigned *flags);

#ifdef __cplusplus
}
#endif
#endif /* SSM_MODEL_H */
