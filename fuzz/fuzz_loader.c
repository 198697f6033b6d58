/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the model-file loader: the input is a whole model file.
 * It goes through ssm_weights_load_buffer, i.e. the safetensors container
 * parser and the weights layer (metadata, shapes, conversion, finiteness),
 * exactly what ssm_weights_load runs after mmap.  Invariants checked beyond
 * "no crash, no leak" (ASan/UBSan): a failure returns a negative status,
 * *out == NULL and one non-empty line starting with the label; a success
 * gives readable fp32 tensors for every pointer the config promises.
 * Build and run: fuzz/run.sh [seconds]. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"
#include "weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

static float sum(const float *p, size_t n)
{
    float s = 0;
    for (size_t i = 0; p && i < n; i++)
        s += p[i];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssm_weights *w = (ssm_weights *)(uintptr_t)1;
    ssm_error err = {0};
    int rc = ssm_weights_load_buffer(data, size, "fuzz", &w, &err);
    if (rc != SSM_OK) {
        if (rc >= 0 || w != NULL || err.status != rc || strncmp(err.msg, "fuzz: ", 6) != 0 ||
            strchr(err.msg, '\n') != NULL)
            __builtin_trap();
        return 0;
    }
    const ssm_config *c = &w->cfg;
    size_t dm = (size_t)c->d_model, di = (size_t)c->d_inner, ds = (size_t)c->d_state;
    float s = sum(w->norm_f, dm) + sum(w->embedding, (size_t)c->vocab_size * dm) +
              sum(w->lm_head, (size_t)c->vocab_size * dm) +
              sum(w->frontend_proj, (size_t)c->n_features * dm) +
              sum(w->mask_w, (size_t)(c->n_mask_bands ? c->n_mask_bands : c->n_mask) * dm) +
              sum(w->mask_interp, (size_t)c->n_mask * (size_t)c->n_mask_bands) + sum(w->vad_w, dm);
    if (w->mask_interp) { /* the banded head's nonzero entries: rows in order, columns in range */
        const int *row = w->mask_interp_row;
        if (row[0] != 0)
            __builtin_trap();
        for (int k = 0; k < c->n_mask; k++) {
            if (row[k + 1] < row[k])
                __builtin_trap();
            for (int e = row[k]; e < row[k + 1]; e++)
                if (w->mask_interp_col[e] < 0 || w->mask_interp_col[e] >= c->n_mask_bands ||
                    w->mask_interp_val[e] == 0.0f)
                    __builtin_trap();
        }
    }
    for (int i = 0; i < c->n_layer; i++) {
        const ssm_layer_weights *L = &w->layers[i];
        s += sum(L->A, di * ds) + sum(L->D, di) + sum(L->out_proj, dm * di) +
             sum(L->x_proj, ((size_t)c->dt_rank + 2 * ds) * di) +
             sum(L->conv1d, di * (size_t)c->d_conv) + sum(L->in_proj, 2 * di * dm);
        for (size_t k = 0; k < di * ds; k++)
            if (!(L->A[k] <= 0) || isinf(L->A[k]))
                __builtin_trap();      /* A = -exp(A_log): finite, ≤ 0 (-0 when exp underflows) */
    }
    for (int i = 0; i < ssm_weights_meta_count(w); i++) {
        const char *k, *v;
        if (ssm_weights_meta_at(w, i, &k, &v) != SSM_OK || ssm_weights_meta(w, k) == NULL)
            __builtin_trap();
        s += (float)strlen(v);
    }
    sink = s;
    ssm_weights_free(w);
    return 0;
}
