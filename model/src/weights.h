/* SPDX-License-Identifier: MIT */
/* Internal contract between the model-file loader (safetensors.c, weights.c)
 * and the compute (model.c, kernels/).  Not installed; the public API is
 * ssm/model.h.
 *
 * The loader validates the whole file (container, JSON, offsets, dtypes,
 * every required tensor with its exact shape, finite A_log/D/dt bias/norms)
 * and hands compute an ssm_weights whose pointers are all fp32, row-major,
 * 64-byte aligned or at least float-aligned, and valid until
 * ssm_weights_free().  F16/BF16 tensors and unaligned F32 tensors are
 * converted/copied into memory the ssm_weights owns; aligned F32 tensors may
 * alias the read-only mmap.  A = -exp(A_log) is computed once here.
 *
 * Tensor names (docs/model-format.md) follow mamba_ssm's MambaLMHeadModel;
 * HuggingFace MambaForCausalLM names are accepted as aliases.
 */
#ifndef SSM_WEIGHTS_H
#define SSM_WEIGHTS_H

#include <stdint.h>

#include "ssm/status.h"

/** What feeds the first layer. */
typedef enum ssm_input_kind {
    SSM_INPUT_TOKENS   = 0, /* backbone.embedding.weight {vocab_size, d_model} */
    SSM_INPUT_FEATURES = 1, /* frontend.proj.weight {d_model, n_features} (+ bias {d_model}) */
} ssm_input_kind;

/** Output heads (bitmask), computed from RMSNorm_f(r) (called h_f below). */
enum {
    SSM_HEAD_MASK      = 1u << 0, /* sigmoid(head.mask.weight {n_mask, d_model} h_f + bias {n_mask}) */
    SSM_HEAD_VAD       = 1u << 1, /* sigmoid(head.vad.weight {1, d_model} h_f + bias {1}) */
    SSM_HEAD_LM        = 1u << 2, /* lm_head.weight {vocab_size, d_model} h_f (tied to embedding if absent) */
    SSM_HEAD_EMBEDDING = 1u << 3, /* h_f itself, {d_model}; always computable */
};

/** Hyper-parameters from __metadata__ (all validated: positive, consistent). */
typedef struct ssm_config {
    int d_model;     /* width of the residual stream */
    int n_layer;
    int d_state;     /* N: SSM state size per channel */
    int d_conv;      /* causal depthwise conv width (conv_state keeps d_conv values) */
    int expand;      /* d_inner = expand * d_model unless d_inner given */
    int d_inner;     /* E*D: channel count inside a mixer */
    int dt_rank;     /* R: rank of the Δ projection ("auto" = ceil(d_model/16)) */
    float norm_eps;  /* RMSNorm epsilon (mamba_ssm default 1e-5) */
    /* Lower bound applied to Δ·A per step before exp (log-decay clamp used by
     * chunked training scans, see shared/notes/training.md); -INFINITY = none. */
    float delta_A_min;
    ssm_input_kind input;
    int vocab_size;  /* tokens input and/or lm head; 0 if unused */
    int n_features;  /* features input; 0 if unused */
    unsigned heads;  /* SSM_HEAD_* present in the file (EMBEDDING always set) */
    int n_mask;      /* outputs of the mask head; 0 if absent */
} ssm_config;

/** One Mamba-1 block (mamba_simple.py: Mamba + Block's pre-norm). */
typedef struct ssm_layer_weights {
    const float *norm;          /* {d_model}                layers.i.norm.weight */
    const float *in_proj;       /* {2*d_inner, d_model}     rows [0,d_inner) give x, [d_inner,2*d_inner) give z */
    const float *in_proj_bias;  /* {2*d_inner} or NULL      (HF optional) */
    const float *conv1d;        /* {d_inner, d_conv}        conv1d.weight {d_inner,1,d_conv}; tap d_conv-1 = newest */
    const float *conv1d_bias;   /* {d_inner} or NULL */
    const float *x_proj;        /* {dt_rank+2*d_state, d_inner}  rows: δ, then B, then C */
    const float *dt_proj;       /* {d_inner, dt_rank} */
    const float *dt_proj_bias;  /* {d_inner} */
    const float *A;             /* {d_inner, d_state}       -exp(A_log), computed at load */
    const float *D;             /* {d_inner} */
    const float *out_proj;      /* {d_model, d_inner} */
    const float *out_proj_bias; /* {d_model} or NULL        (HF optional) */
} ssm_layer_weights;

typedef struct ssm_weights {
    ssm_config cfg;
    const float *embedding;     /* {vocab_size, d_model} or NULL */
    const float *frontend_proj; /* {d_model, n_features} or NULL */
    const float *frontend_bias; /* {d_model} or NULL */
    ssm_layer_weights *layers;  /* n_layer entries */
    const float *norm_f;        /* {d_model} */
    const float *lm_head;       /* {vocab_size, d_model} or NULL (== embedding when tied) */
    const float *mask_w;        /* {n_mask, d_model} or NULL */
    const float *mask_b;        /* {n_mask} or NULL */
    const float *vad_w;         /* {1, d_model} or NULL */
    const float *vad_b;         /* {1} or NULL */
    uint64_t hash;              /* 64-bit FNV-1a of the whole file: identifies the model
                                   (snapshots refuse another hash) */
    const char *path;           /* as given to ssm_weights_load (owned copy) */
} ssm_weights;

/** Maps, validates and converts a model file.  On failure returns a negative
 *  ssm_status, sets *out = NULL and fills err with one line naming the file,
 *  the tensor (if any) and the reason.  Never aborts on bad input. */
int ssm_weights_load(const char *path, ssm_weights **out, ssm_error *err);

/** Releases everything ssm_weights_load allocated or mapped; NULL is a no-op. */
void ssm_weights_free(ssm_weights *w);

/** Value of a __metadata__ key (e.g. "frontend.n_fft"), or NULL when absent.
 *  The string lives as long as w. */
const char *ssm_weights_meta(const ssm_weights *w, const char *key);

/** Number of __metadata__ entries and the i-th key/value (for listing). */
int ssm_weights_meta_count(const ssm_weights *w);
int ssm_weights_meta_at(const ssm_weights *w, int i, const char **key, const char **value);

#endif /* SSM_WEIGHTS_H */
