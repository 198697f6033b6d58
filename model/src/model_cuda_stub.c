/* SPDX-License-Identifier: MIT */
/* The CUDA backend when this build has none (meson -Dcuda=disabled, or no
 * nvcc): every entry point reports SSM_ERR_BACKEND, the probe says why. */
#include <stdio.h>

#include "model_cuda.h"

int ssm_cuda_probe(int device, char *why, size_t why_size)
{
    (void)device;
    if (why)
        snprintf(why, why_size, "this build has no CUDA backend (meson -Dcuda=enabled needs nvcc)");
    return 0;
}

int ssm_cuda_model_create(const ssm_weights *w, int device, ssm_cuda_model **out, ssm_error *err)
{
    (void)w, (void)device;
    *out = NULL;
    return ssm_error_set(err, SSM_ERR_BACKEND, "cuda: not built");
}

void ssm_cuda_model_free(ssm_cuda_model *cm) { (void)cm; }
size_t ssm_cuda_model_bytes(const ssm_cuda_model *cm) { (void)cm; return 0; }
const char *ssm_cuda_model_device(const ssm_cuda_model *cm) { (void)cm; return ""; }

int ssm_cuda_state_alloc(ssm_cuda_model *cm, float **dev)
{
    (void)cm;
    *dev = NULL;
    return SSM_ERR_BACKEND;
}

void ssm_cuda_state_free(ssm_cuda_model *cm, float *dev) { (void)cm, (void)dev; }
int ssm_cuda_state_zero(ssm_cuda_model *cm, float *dev) { (void)cm, (void)dev; return SSM_ERR_BACKEND; }

int ssm_cuda_state_download(ssm_cuda_model *cm, void *host, const float *dev)
{
    (void)cm, (void)host, (void)dev;
    return SSM_ERR_BACKEND;
}

int ssm_cuda_state_upload(ssm_cuda_model *cm, float *dev, const void *host)
{
    (void)cm, (void)host, (void)dev;
    return SSM_ERR_BACKEND;
}

int ssm_cuda_runner_create(ssm_cuda_model *cm, int max_batch, int max_chunk, unsigned flags,
                           ssm_cuda_runner **out, ssm_error *err)
{
    (void)cm, (void)max_batch, (void)max_chunk, (void)flags;
    *out = NULL;
    return ssm_error_set(err, SSM_ERR_BACKEND, "cuda: not built");
}

void ssm_cuda_runner_destroy(ssm_cuda_runner *r) { (void)r; }
size_t ssm_cuda_runner_bytes(const ssm_cuda_runner *r) { (void)r; return 0; }

int ssm_cuda_run(ssm_cuda_runner *r, float *const *dev_states, int n_streams, int n_frames,
                 const float *features, const int32_t *tokens, const ssm_outputs *out,
                 size_t *count, unsigned char *bad)
{
    (void)r, (void)dev_states, (void)n_streams, (void)n_frames, (void)features, (void)tokens;
    (void)out, (void)count, (void)bad;
    return SSM_ERR_BACKEND;
}

int ssm_cuda_runner_graphed(const ssm_cuda_runner *r) { (void)r; return 0; }
