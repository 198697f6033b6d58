/* SPDX-License-Identifier: MIT */
/* Internal hooks of model.c for tests (not installed, not public API). */
#ifndef SSM_MODEL_INTERNAL_H
#define SSM_MODEL_INTERNAL_H

#include <stddef.h>

#include "ssm/model.h"

/** The state's fp32 payload (per layer conv_state {d_inner, d_conv} then
 *  ssm_state {d_inner, d_state}) and its length in floats.  Tests use it to
 *  force a state non-finite, which no public call can do. */
float *ssm_state_payload_(ssm_state *state, size_t *n_floats);

/** CUDA backend: the node count (>= 1) of the CUDA graph the runner's last
 *  step or forward replayed; 0 on the CPU, with SSM_RUNNER_NO_GRAPH, or if
 *  capture failed. */
int ssm_runner_cuda_graphed_(const ssm_runner *runner);

#endif /* SSM_MODEL_INTERNAL_H */
