/* Internal hooks of model.c for tests (not installed, not public API). */
#ifndef SSM_MODEL_INTERNAL_H
#define SSM_MODEL_INTERNAL_H

#include <stddef.h>

#include "ssm/model.h"

/** The state's fp32 payload (per layer conv_state {d_inner, d_conv} then
 *  ssm_state {d_inner, d_state}) and its length in floats.  Tests use it to
 *  force a state non-finite, which no public call can do. */
float *ssm_state_payload_(ssm_state *state, size_t *n_floats);

#endif /* SSM_MODEL_INTERNAL_H */
