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

/** What a layer's mixer is (__metadata__ architecture / layers.{i}.kind). */
typedef enum ssm_layer_kind {
    SSM_LAYER_MAMBA1 = 0, /* mamba_ssm modules/mamba_simple.py Mamba */
    SSM_LAYER_MAMBA2 = 1, /* mamba_ssm modules/mamba2.py Mamba2 (SSD, arXiv:2405.21060) */
    SSM_LAYER_ATTENTION = 2, /* mamba_ssm modules/mha.py MHA, causal, over a window of frames */
} ssm_layer_kind;

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
    int n_mask_bands; /* the mask head's band logits when it has head.mask.interp; 0 if not */
    /* Mamba-2 layers (meaningful when n_mamba2 > 0; mamba2.* keys): */
    int n_mamba2;      /* layers of kind SSM_LAYER_MAMBA2 */
    int m2_d_inner;    /* n_heads·head_dim (mamba2.d_inner, default d_inner) */
    int m2_d_state;    /* N (mamba2.d_state, default d_state) */
    int m2_d_conv;     /* mamba2.d_conv, default d_conv */
    int m2_head_dim;   /* P (mamba2.head_dim, default 64) */
    int m2_n_heads;    /* H = m2_d_inner / m2_head_dim */
    int m2_n_groups;   /* G: B, C shared by H/G heads; gated norm over d_inner/G channels */
    float m2_norm_eps; /* epsilon of the gated RMSNorm (mamba2.norm_eps, default norm_eps) */
    int m2_norm_group_size; /* channels per gated-RMSNorm group (mamba2.norm_group_size,
                               default m2_d_inner / m2_n_groups as mamba_ssm) */
    /* Attention layers (meaningful when n_attn > 0; attention.* keys): */
    int n_attn;          /* layers of kind SSM_LAYER_ATTENTION */
    int at_n_heads;      /* query heads (attention.num_heads) */
    int at_n_heads_kv;   /* KV heads, divides at_n_heads (attention.num_heads_kv) */
    int at_head_dim;     /* channels per head (attention.head_dim, default d_model/num_heads) */
    int at_window;       /* W: frames a query sees, itself included (attention.window, required) */
    int at_rot_dim;      /* RoPE channels per head, even, <= head_dim; 0 = none */
    int at_rot_interleaved; /* 1: pairs (2i, 2i+1); 0: (i, i + rot_dim/2) */
    double at_rot_base;  /* RoPE base (attention.rotary_emb_base, default 10000) */
    float at_scale;      /* softmax scale (attention.softmax_scale, default 1/sqrt(head_dim)) */
    int at_mlp_dim;      /* mha.py mlp_dim (attention.mlp_dim, even, default 0) */
    int at_qkv_bias, at_out_bias; /* attention.qkv_proj_bias / out_proj_bias (default true) */
    /* Gated MLP after every mixer (mamba_ssm GatedMLP with d_intermediate > 0): */
    int d_intermediate;  /* hidden width of the MLP (d_intermediate key); 0 = no MLP */
} ssm_config;

/** One block: pre-norm + a Mamba-1 mixer (mamba_simple.py Mamba) or a
 *  Mamba-2 mixer (mamba2.py Mamba2).  Sizes below are the layer's own (a
 *  mixed stack may differ per kind); for Mamba-1 conv_dim = d_inner,
 *  n_heads = d_inner, head_dim = n_groups = 1.  The layer's state is
 *  conv {conv_dim, d_conv} then ssm {d_inner, d_state} (Mamba-2: {n_heads,
 *  head_dim, d_state}, the same count). */
typedef struct ssm_layer_weights {
    ssm_layer_kind kind;
    int d_inner, d_state, d_conv, conv_dim, n_heads, head_dim, n_groups;
    int d_in_proj;              /* rows of in_proj: 2·d_inner (Mamba-1);
                                   2·d_inner + 2·n_groups·d_state + n_heads (Mamba-2: z | xBC | dt) */
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
    /* Mamba-2 only (NULL for Mamba-1; then x_proj, dt_proj, dt_proj_bias are NULL
     * for Mamba-2, and A, D, conv1d, conv1d_bias take the shapes below): */
    const float *dt_bias;       /* {n_heads}                mixer.dt_bias */
    const float *norm_gated;    /* {d_inner}                mixer.norm.weight (RMSNormGated) */
    /* Mamba-2: A {n_heads} = -exp(A_log), D {n_heads}, conv1d {conv_dim, d_conv},
     * conv1d_bias {conv_dim} */
    /* Attention (SSM_LAYER_ATTENTION; mixer.in_proj / out_proj above, every
     * Mamba-only pointer NULL): d_in_proj = (n_heads + 2·n_heads_kv)·head_dim
     * + mlp_dim rows (q | k | v | mlp), d_inner = n_heads·head_dim + mlp_dim/2
     * (out_proj's input), n_heads / head_dim as the config, conv_dim = d_conv
     * = d_state = 0 (no SSM state: the ring's size is ssm_attn_state_floats). */
    const double *rope_inv_freq; /* {at_rot_dim/2}: base^(-2i/rot_dim), float64 */
    /* Gated MLP (every layer when d_intermediate > 0, else NULL): */
    const float *norm2;         /* {d_model}                layers.i.norm2.weight */
    const float *mlp_fc1;       /* {2·d_intermediate, d_model}  rows: y, then gate */
    const float *mlp_fc2;       /* {d_model, d_intermediate} */
} ssm_layer_weights;

typedef struct ssm_weights {
    ssm_config cfg;
    const float *embedding;     /* {vocab_size, d_model} or NULL */
    const float *frontend_proj; /* {d_model, n_features} or NULL */
    const float *frontend_bias; /* {d_model} or NULL */
    ssm_layer_weights *layers;  /* n_layer entries */
    const float *norm_f;        /* {d_model} */
    const float *lm_head;       /* {vocab_size, d_model} or NULL (== embedding when tied) */
    const float *mask_w;        /* {n_mask, d_model}, or {n_mask_bands, d_model} with mask_interp; or NULL */
    const float *mask_b;        /* {n_mask} (or {n_mask_bands}) or NULL */
    const float *mask_interp;   /* {n_mask, n_mask_bands} or NULL: mask logits = mask_interp · band logits */
    /* mask_interp's nonzero entries by row (CSR, column order within a row), NULL without it:
     * row k's are mask_interp_col/val[mask_interp_row[k] … mask_interp_row[k + 1]) */
    const int *mask_interp_row;  /* {n_mask + 1} */
    const int *mask_interp_col;  /* {nnz} */
    const float *mask_interp_val; /* {nnz} */
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
