/* SPDX-License-Identifier: MIT */
/* The CUDA backend of model.c (internal; model_cuda.c when built with the
 * meson `cuda` feature, model_cuda_stub.c otherwise).
 *
 * model.c keeps everything that does not touch the device (argument checks,
 * per-state headers and counters, snapshot format, resets); this part owns
 * the device copies of the weights, a pool of device states and the runners
 * that run one frame of a batch (or one chunk of a stream) as one CUDA graph.
 * All functions return SSM_OK or a negative ssm_status; err may be NULL.
 */
#ifndef SSM_MODEL_CUDA_H
#define SSM_MODEL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "ssm/model.h"
#include "weights.h"

typedef struct ssm_cuda_model ssm_cuda_model;
typedef struct ssm_cuda_runner ssm_cuda_runner;

/* Runner options (a subset of the public SSM_RUNNER_* bits are mapped here). */
enum {
    SSM_CUDA_BF16 = 1u << 0,     /* projections from bf16 weights, fp32 accumulation */
    SSM_CUDA_NO_GRAPH = 1u << 1, /* launch kernels one by one (no CUDA graph) */
};

/* 1 when device `device` can run kernels; else 0 with the reason in why. */
int ssm_cuda_probe(int device, char *why, size_t why_size);

/* Uploads the weights once; the device's name goes to name (may be NULL). */
int ssm_cuda_model_create(const ssm_weights *w, int device, ssm_cuda_model **out,
                          ssm_error *err);
void ssm_cuda_model_free(ssm_cuda_model *cm);
/* Device bytes of the weights (fp32 and bf16 copies). */
size_t ssm_cuda_model_bytes(const ssm_cuda_model *cm);
/* "NVIDIA H200" etc. (lives as long as cm). */
const char *ssm_cuda_model_device(const ssm_cuda_model *cm);

/* One stream's state payload on the device (state_floats floats), from a
 * pool; zeroed.  Thread-safe (a mutex guards the pool). */
int ssm_cuda_state_alloc(ssm_cuda_model *cm, float **dev);
void ssm_cuda_state_free(ssm_cuda_model *cm, float *dev);
int ssm_cuda_state_zero(ssm_cuda_model *cm, float *dev);
/* Synchronous copies of a whole payload between host and device. */
int ssm_cuda_state_download(ssm_cuda_model *cm, void *host, const float *dev);
int ssm_cuda_state_upload(ssm_cuda_model *cm, float *dev, const void *host);

int ssm_cuda_runner_create(ssm_cuda_model *cm, int max_batch, int max_chunk, unsigned flags,
                           ssm_cuda_runner **out, ssm_error *err);
void ssm_cuda_runner_destroy(ssm_cuda_runner *r);
size_t ssm_cuda_runner_bytes(const ssm_cuda_runner *r);

/* n_streams streams (device payloads dev_states {n_streams}) advanced by
 * n_frames frames each; rows = n_streams·n_frames (one of the two is 1 in
 * model.c's calls).  Inputs and outputs are host memory as in ssm_step.
 * count {rows} receives the non-finite input values zeroed per row, bad
 * {rows} 1 where the residual went non-finite (states are not reset here).
 * Returns SSM_OK or SSM_ERR_BACKEND (a CUDA or cuBLAS error; states then
 * unspecified). */
int ssm_cuda_run(ssm_cuda_runner *r, float *const *dev_states, int n_streams, int n_frames,
                 const float *features, const int32_t *tokens, const ssm_outputs *out,
                 size_t *count, unsigned char *bad);

/* When the last call ran as a CUDA graph replay: the graph's node count
 * (>= 1); else 0 (tests, benchmarks). */
int ssm_cuda_runner_graphed(const ssm_cuda_runner *r);

#endif /* SSM_MODEL_CUDA_H */
