/* SPDX-License-Identifier: MIT */
/* The model as status and every meta/ message describe it (docs/protocol.md):
 * name, hash, architecture, per-layer kinds, attention window, state bytes.
 * One place, so the two messages cannot drift apart. */
#ifndef SSMD_MODEL_INFO_H
#define SSMD_MODEL_INFO_H

#include <jansson.h>

#include "ssm/model.h"

/** "mamba1", "mamba2" or "attention" when every layer is of that kind,
 *  "hybrid" when the stack mixes kinds (static string). */
const char *ssmd_model_architecture(const ssm_model *model);

/** A new JSON object {"name", "hash" ("0x" + 16 hex digits), "architecture",
 *  "layers" (one kind per layer, in order), "attention_window" (frames; only
 *  when some layer is an attention layer), "state_bytes"
 *  (ssm_state_bytes)}; name is the model's "name" metadata, else fallback.
 *  NULL when out of memory.  Not real-time safe (allocates). */
json_t *ssmd_model_info_json(const ssm_model *model, const char *fallback_name);

#endif
