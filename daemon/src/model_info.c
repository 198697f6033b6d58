/* SPDX-License-Identifier: MIT */
#include "model_info.h"

#include <stdio.h>
#include <stdlib.h>

static const char *kind_name(int kind)
{
    switch (kind) {
    case SSM_MODEL_LAYER_MAMBA2: return "mamba2";
    case SSM_MODEL_LAYER_ATTENTION: return "attention";
    default: return "mamba1";
    }
}

const char *ssmd_model_architecture(const ssm_model *model)
{
    int n = ssm_model_n_layer(model), first = ssm_model_layer_kind(model, 0);
    for (int l = 1; l < n; l++)
        if (ssm_model_layer_kind(model, l) != first)
            return "hybrid";
    return kind_name(first);
}

json_t *ssmd_model_info_json(const ssm_model *model, const char *fallback_name)
{
    char hash[32];
    snprintf(hash, sizeof hash, "0x%016llx", (unsigned long long)ssm_model_hash(model));
    const char *name = ssm_model_meta(model, "name");
    json_t *layers = json_array();
    int n_attn = 0;
    for (int l = 0; l < ssm_model_n_layer(model); l++) {
        int kind = ssm_model_layer_kind(model, l);
        n_attn += kind == SSM_MODEL_LAYER_ATTENTION;
        json_array_append_new(layers, json_string(kind_name(kind)));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I}", "name", name ? name : fallback_name,
                          "hash", hash, "architecture", ssmd_model_architecture(model),
                          "layers", layers, "state_bytes", (json_int_t)ssm_state_bytes(model));
    /* the loader validated attention.window (an integer in [1, 2^20]) */
    const char *window = ssm_model_meta(model, "attention.window");
    if (o && n_attn > 0 && window)
        json_object_set_new(o, "attention_window", json_integer(strtol(window, NULL, 10)));
    return o;
}
