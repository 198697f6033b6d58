/* SPDX-License-Identifier: MIT */
/* Model layer of the loader: __metadata__ → ssm_config, then every tensor the
 * configuration requires, with its exact shape, converted to fp32.
 *
 * Design note: the container (safetensors.c) is validated first, so this file
 * only deals with well-formed tensors; it checks names, shapes against the
 * metadata, finiteness, and that no tensor is left unused (an unknown tensor
 * is refused: it is almost always a misspelt or unsupported head, and running
 * a model without it would silently compute something else).  Aligned F32
 * tensors alias the read-only mapping; everything else lives in 64-byte
 * aligned blocks this ssm_weights owns. */
#include "kernels/ssm_kernels.h"
#include "safetensors.h"
#include "weights.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct weights_impl {
    ssm_weights pub;        /* first: ssm_weights * and weights_impl * convert */
    ssm_st_file st;
    void *map;              /* mmap of the file, or NULL (buffer load / empty) */
    size_t map_bytes;
    void **owned;           /* converted / copied tensors, A, layers */
    size_t n_owned, cap_owned;
    char *path;
    char cfg_text[320];     /* "d_model=.. d_inner=.. ..." for shape errors */
    unsigned char *kinds;   /* {n_layer} ssm_layer_kind, from parse_config */
} weights_impl;

/* ---- strict metadata values ---------------------------------------------- */

/* Decimal digits only (no sign, space or junk), value in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    long v = 0;
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
        if (v > hi)
            return 0;
    }
    if (v < lo)
        return 0;
    *out = (int)v;
    return 1;
}

/* A finite decimal/scientific float (strtod syntax, "C" locale), nothing after. */
static int parse_float(const char *s, double *out)
{
    if (!*s || !(*s == '-' || *s == '+' || *s == '.' || (*s >= '0' && *s <= '9')))
        return 0;
    for (const char *p = s; *p; p++)   /* refuse hex floats, inf, nan */
        if (*p == 'x' || *p == 'X' || *p == 'n' || *p == 'N' || *p == 'i' || *p == 'I')
            return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static void meta_printable(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 4 < cap; i++)
        dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
}

static int meta_int(weights_impl *w, const char *key, int required, long lo, long hi,
                    int dflt, int *out, ssm_error *err)
{
    const char *v = ssm_st_meta(&w->st, key);
    char pv[64];
    if (!v) {
        if (required)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ key %s is missing "
                                 "(integer in [%ld, %ld])", w->path, key, lo, hi);
        *out = dflt;
        return SSM_OK;
    }
    if (!parse_int(v, lo, hi, out)) {
        meta_printable(pv, sizeof pv, v);
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ %s: \"%s\" is not a decimal "
                             "integer in [%ld, %ld]", w->path, key, pv, lo, hi);
    }
    return SSM_OK;
}

static int meta_float(weights_impl *w, const char *key, double lo, double hi, double dflt,
                      double *out, ssm_error *err)
{
    const char *v = ssm_st_meta(&w->st, key);
    char pv[64];
    if (!v) {
        *out = dflt;
        return SSM_OK;
    }
    if (!parse_float(v, out) || *out < lo || *out > hi) {
        meta_printable(pv, sizeof pv, v);
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ %s: \"%s\" is not a finite "
                             "number in [%g, %g]", w->path, key, pv, lo, hi);
    }
    return SSM_OK;
}

/* key must be one of the '|'-separated choices; returns its index in *idx. */
static int meta_choice(weights_impl *w, const char *key, const char *const *choices,
                       int n_choices, int dflt, int *idx, ssm_error *err)
{
    const char *v = ssm_st_meta(&w->st, key);
    char pv[64], list[128] = "";
    if (!v) {
        if (dflt < 0) {
            for (int i = 0; i < n_choices; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         i ? ", " : "", choices[i]);
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ key %s is missing "
                                 "(one of: %s)", w->path, key, list);
        }
        *idx = dflt;
        return SSM_OK;
    }
    for (int i = 0; i < n_choices; i++)
        if (strcmp(v, choices[i]) == 0) {
            *idx = i;
            return SSM_OK;
        }
    for (int i = 0; i < n_choices; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    meta_printable(pv, sizeof pv, v);
    return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ %s: \"%s\" is not one of: %s",
                         w->path, key, pv, list);
}

/* Upper bounds keep every tensor's element count below 2^31, so compute may
 * index with int (checked again on products in parse_config). */
#define DIM_MAX     (1L << 20)
#define SMALL_MAX   4096L

/* Frontend keys the daemon reads: the loader only checks they are well formed. */
static const struct { const char *key; char type; } frontend_keys[] = {
    {"frontend.sample_rate_hz", 'i'}, {"frontend.n_fft", 'i'}, {"frontend.hop", 'i'},
    {"frontend.win_length", 'i'},     {"frontend.n_mels", 'i'}, {"frontend.mulaw_mu", 'i'},
    {"frontend.log_floor", 'f'},      {"frontend.fmin_hz", 'f'}, {"frontend.fmax_hz", 'f'},
    {"frontend.window", 's'},         {"frontend.features", 's'},
};

static int parse_heads(weights_impl *w, const char *v, unsigned *heads, ssm_error *err)
{
    static const char *const names[] = {"mask", "vad", "lm", "embedding"};
    char pv[64];
    *heads = 0;
    if (!*v)
        return SSM_OK;   /* "": no head beyond the always-available embedding */
    const char *p = v;
    for (;;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strlen(names[i]) == n && strncmp(p, names[i], n) == 0)
                found = i;
        if (found < 0 || (*heads & (1u << found))) {
            meta_printable(pv, sizeof pv, v);
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ heads: \"%s\" is not a "
                                 "comma list of distinct mask, vad, lm, embedding", w->path, pv);
        }
        *heads |= 1u << found;
        if (!p[n])
            break;
        p += n + 1;
    }
    return SSM_OK;
}

/* attention.* keys (read when some layer is an attention layer). */
static int parse_attention(weights_impl *w, ssm_config *c, ssm_error *err)
{
    static const char *const bool_v[] = {"false", "true"};
    int rc, idx;
    double d;
    if (!ssm_st_meta(&w->st, "attention.window"))
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ key attention.window is "
                             "missing: this model has %d attention layer(s), and ssmd keeps a "
                             "stream's keys and values for a window of W frames so that memory "
                             "per stream stays constant; set attention.window to W (frames, "
                             "integer in [1, %ld])", w->path, c->n_attn, DIM_MAX);
    if ((rc = meta_int(w, "attention.window", 1, 1, DIM_MAX, 0, &c->at_window, err)) ||
        (rc = meta_int(w, "attention.num_heads", 1, 1, SMALL_MAX, 0, &c->at_n_heads, err)) ||
        (rc = meta_int(w, "attention.num_heads_kv", 0, 1, SMALL_MAX, c->at_n_heads,
                       &c->at_n_heads_kv, err)))
        return rc;
    if (c->at_n_heads % c->at_n_heads_kv != 0)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ attention.num_heads_kv: %d does "
                             "not divide the %d query heads (attention.num_heads)", w->path,
                             c->at_n_heads_kv, c->at_n_heads);
    if (!ssm_st_meta(&w->st, "attention.head_dim") && c->d_model % c->at_n_heads != 0)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ key attention.head_dim is "
                             "missing and attention.num_heads %d does not divide d_model %d "
                             "(mha.py's default head_dim = d_model / num_heads)", w->path,
                             c->at_n_heads, c->d_model);
    if ((rc = meta_int(w, "attention.head_dim", 0, 1, SMALL_MAX, c->d_model / c->at_n_heads,
                       &c->at_head_dim, err)) ||
        (rc = meta_int(w, "attention.rotary_emb_dim", 0, 0, SMALL_MAX, 0, &c->at_rot_dim, err)) ||
        (rc = meta_choice(w, "attention.rotary_emb_interleaved", bool_v, 2, 0,
                          &c->at_rot_interleaved, err)) ||
        (rc = meta_choice(w, "attention.qkv_proj_bias", bool_v, 2, 1, &c->at_qkv_bias, err)) ||
        (rc = meta_choice(w, "attention.out_proj_bias", bool_v, 2, 1, &c->at_out_bias, err)) ||
        (rc = meta_int(w, "attention.mlp_dim", 0, 0, DIM_MAX, 0, &c->at_mlp_dim, err)))
        return rc;
    if (c->at_rot_dim % 2 != 0 || c->at_rot_dim > c->at_head_dim)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ attention.rotary_emb_dim: %d "
                             "is not an even number of at most attention.head_dim %d channels",
                             w->path, c->at_rot_dim, c->at_head_dim);
    if (c->at_mlp_dim % 2 != 0)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ attention.mlp_dim: %d is odd "
                             "(its rows are up and gate halves)", w->path, c->at_mlp_dim);
    if ((rc = meta_float(w, "attention.rotary_emb_base", 1e-30, 1e30, 10000.0, &d, err)))
        return rc;
    c->at_rot_base = d;
    if ((rc = meta_float(w, "attention.softmax_scale", 1e-30, 1e30,
                         1.0 / sqrt((double)c->at_head_dim), &d, err)))
        return rc;
    c->at_scale = (float)d;
    (void)idx;
    uint64_t nkv = (uint64_t)c->at_n_heads_kv * c->at_head_dim;
    uint64_t n_in = ((uint64_t)c->at_n_heads + 2 * (uint64_t)c->at_n_heads_kv) * c->at_head_dim +
                    c->at_mlp_dim;
    uint64_t n_out = (uint64_t)c->at_n_heads * c->at_head_dim + c->at_mlp_dim / 2;
    if (n_in * (uint64_t)c->d_model > INT_MAX || n_out * (uint64_t)c->d_model > INT_MAX ||
        2 * nkv * (uint64_t)c->at_window + 2 > INT_MAX || n_in > DIM_MAX * 4)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ attention.* sizes give a "
                             "tensor or a KV ring of 2^31 elements or more (window %d, %d KV heads "
                             "of %d channels)", w->path, c->at_window, c->at_n_heads_kv,
                             c->at_head_dim);
    return SSM_OK;
}

static int parse_config(weights_impl *w, ssm_config *c, int *conv_bias, int *proj_bias,
                        ssm_error *err)
{
    static const char *const fmt_v[] = {"1"}, *const arch_v[] = {"mamba1", "mamba2", "attention"},
                             *const norm_v[] = {"rmsnorm"}, *const in_v[] = {"tokens", "features"},
                             *const bool_v[] = {"false", "true"};
    int idx, rc;
    double d;

    int arch = 0;
    memset(c, 0, sizeof *c);
    if ((rc = meta_choice(w, "ssmd.format", fmt_v, 1, -1, &idx, err)) ||
        (rc = meta_choice(w, "architecture", arch_v, 3, -1, &arch, err)) ||
        (rc = meta_int(w, "d_model", 1, 1, DIM_MAX, 0, &c->d_model, err)) ||
        (rc = meta_int(w, "n_layer", 1, 1, SMALL_MAX, 0, &c->n_layer, err)) ||
        (rc = meta_int(w, "d_state", 1, 1, SMALL_MAX, 0, &c->d_state, err)) ||
        (rc = meta_int(w, "d_conv", 1, 1, SMALL_MAX, 0, &c->d_conv, err)) ||
        (rc = meta_int(w, "expand", 1, 1, SMALL_MAX, 0, &c->expand, err)))
        return rc;
    long dflt_inner = (long)c->expand * c->d_model;
    if ((rc = meta_int(w, "d_inner", 0, 1, DIM_MAX, (int)(dflt_inner <= DIM_MAX ? dflt_inner : 0),
                       &c->d_inner, err)))
        return rc;
    if (c->d_inner == 0)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ expand × d_model = %ld "
                             "exceeds %ld", w->path, dflt_inner, DIM_MAX);
    const char *dtr = ssm_st_meta(&w->st, "dt_rank");
    if (!dtr || strcmp(dtr, "auto") == 0)
        c->dt_rank = (c->d_model + 15) / 16;
    else if ((rc = meta_int(w, "dt_rank", 1, 1, DIM_MAX, 0, &c->dt_rank, err)))
        return rc;
    if ((rc = meta_choice(w, "norm", norm_v, 1, 0, &idx, err)))
        return rc;
    if ((rc = meta_float(w, "norm_eps", 0.0, 1.0, 1e-5, &d, err)))
        return rc;
    c->norm_eps = (float)d;
    if (c->norm_eps <= 0.0f)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ norm_eps: must be > 0",
                             w->path);
    if (ssm_st_meta(&w->st, "delta_A_min")) {
        if ((rc = meta_float(w, "delta_A_min", -1e30, -1e-30, 0.0, &d, err)))
            return rc;
        c->delta_A_min = (float)d;
    } else {
        c->delta_A_min = -INFINITY;
    }
    if ((rc = meta_choice(w, "input", in_v, 2, -1, &idx, err)))
        return rc;
    c->input = idx ? SSM_INPUT_FEATURES : SSM_INPUT_TOKENS;

    const char *hv = ssm_st_meta(&w->st, "heads");
    if (hv) {
        if ((rc = parse_heads(w, hv, &c->heads, err)))
            return rc;
    } else {
        c->heads = c->input == SSM_INPUT_TOKENS ? SSM_HEAD_LM : 0;
    }
    c->heads |= SSM_HEAD_EMBEDDING;

    int need_vocab = c->input == SSM_INPUT_TOKENS || (c->heads & SSM_HEAD_LM);
    if ((rc = meta_int(w, "vocab_size", need_vocab, 1, 1L << 24, 0, &c->vocab_size, err)) ||
        (rc = meta_int(w, "n_features", c->input == SSM_INPUT_FEATURES, 1, DIM_MAX, 0,
                       &c->n_features, err)))
        return rc;
    if (!need_vocab)
        c->vocab_size = 0;
    if (c->input != SSM_INPUT_FEATURES)
        c->n_features = 0;
    if ((rc = meta_int(w, "n_mask", 0, 1, DIM_MAX, 0, &c->n_mask, err)))
        return rc;
    if (!(c->heads & SSM_HEAD_MASK))
        c->n_mask = 0;
    if ((rc = meta_choice(w, "conv_bias", bool_v, 2, 1, conv_bias, err)) ||
        (rc = meta_choice(w, "proj_bias", bool_v, 2, 0, proj_bias, err)))
        return rc;

    /* Layer kinds: architecture is every layer's default, layers.{i}.kind
     * overrides it (a mixed stack); an unknown kind is refused by name. */
    w->kinds = malloc((size_t)c->n_layer);
    if (!w->kinds)
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", w->path);
    for (int i = 0; i < c->n_layer; i++) {
        char key[48];
        snprintf(key, sizeof key, "layers.%d.kind", i);
        if ((rc = meta_choice(w, key, arch_v, 3, arch, &idx, err)))
            return rc;
        w->kinds[i] = (unsigned char)idx;
        c->n_mamba2 += idx == SSM_LAYER_MAMBA2;
        c->n_attn += idx == SSM_LAYER_ATTENTION;
    }
    /* a layers.* key that names no layer (an index beyond n_layer, a typo)
     * would silently give another architecture: refused by name */
    for (size_t k = 0; k < w->st.n_meta; k++) {
        const char *key = w->st.meta_keys[k];
        if (strncmp(key, "layers.", 7) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        long i = (key[7] >= '0' && key[7] <= '9') ? strtol(key + 7, &end, 10) : -1;
        if (i < 0 || errno || i >= c->n_layer || !end || strcmp(end, ".kind") != 0) {
            char pk[64];
            meta_printable(pk, sizeof pk, key);
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ key %s names no layer: expected "
                                 "layers.{i}.kind with 0 <= i < n_layer (%d)", w->path, pk, c->n_layer);
        }
    }
    if ((rc = meta_int(w, "d_intermediate", 0, 0, DIM_MAX, 0, &c->d_intermediate, err)))
        return rc;
    if ((uint64_t)2 * c->d_intermediate * (uint64_t)c->d_model > INT_MAX)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ d_intermediate: %d gives a "
                             "tensor of 2^31 elements or more", w->path, c->d_intermediate);
    if (c->n_attn && (rc = parse_attention(w, c, err)))
        return rc;
    if (c->n_mamba2) {
        static const char *const nbg_v[] = {"false"};
        if ((rc = meta_int(w, "mamba2.d_inner", 0, 1, DIM_MAX, c->d_inner, &c->m2_d_inner, err)) ||
            (rc = meta_int(w, "mamba2.d_state", 0, 1, SMALL_MAX, c->d_state, &c->m2_d_state, err)) ||
            (rc = meta_int(w, "mamba2.d_conv", 0, 1, SMALL_MAX, c->d_conv, &c->m2_d_conv, err)) ||
            (rc = meta_int(w, "mamba2.head_dim", 0, 1, DIM_MAX, 64, &c->m2_head_dim, err)) ||
            (rc = meta_int(w, "mamba2.n_groups", 0, 1, DIM_MAX, 1, &c->m2_n_groups, err)) ||
            (rc = meta_choice(w, "mamba2.norm_before_gate", nbg_v, 1, 0, &idx, err)) ||
            (rc = meta_float(w, "mamba2.norm_eps", 0.0, 1.0, c->norm_eps, &d, err)))
            return rc;
        c->m2_norm_eps = (float)d;
        if (c->m2_norm_eps <= 0.0f)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ mamba2.norm_eps: must be > 0",
                                 w->path);
        if (c->m2_d_inner % c->m2_head_dim != 0)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ mamba2.head_dim: %d does not "
                                 "divide the %d channels of a Mamba-2 layer (mamba2.d_inner)",
                                 w->path, c->m2_head_dim, c->m2_d_inner);
        c->m2_n_heads = c->m2_d_inner / c->m2_head_dim;
        if (c->m2_n_heads % c->m2_n_groups != 0)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ mamba2.n_groups: %d does not "
                                 "divide the %d heads (mamba2.d_inner / mamba2.head_dim)",
                                 w->path, c->m2_n_groups, c->m2_n_heads);
        if ((rc = meta_int(w, "mamba2.norm_group_size", 0, 1, DIM_MAX,
                           c->m2_d_inner / c->m2_n_groups,
                           &c->m2_norm_group_size, err)))
            return rc;
        if (c->m2_d_inner % c->m2_norm_group_size != 0)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ mamba2.norm_group_size: %d "
                                 "does not divide the %d channels of a Mamba-2 layer", w->path,
                                 c->m2_norm_group_size, c->m2_d_inner);
        uint64_t conv_dim = (uint64_t)c->m2_d_inner + 2 * (uint64_t)c->m2_n_groups * c->m2_d_state;
        uint64_t n_in = conv_dim + c->m2_d_inner + c->m2_n_heads;
        if (n_in * (uint64_t)c->d_model > INT_MAX || conv_dim * (uint64_t)c->m2_d_conv > INT_MAX ||
            (uint64_t)c->m2_d_inner * c->m2_d_state > INT_MAX)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ mamba2.* sizes give a tensor "
                                 "of 2^31 elements or more", w->path);
    }

    /* Every tensor below 2^31 elements (compute indexes with int). */
    const uint64_t lim = INT_MAX;
    const uint64_t di = (uint64_t)c->d_inner, dm = (uint64_t)c->d_model;
    if (2 * di * dm > lim || di * (uint64_t)c->d_state > lim ||
        ((uint64_t)c->dt_rank + 2 * (uint64_t)c->d_state) * di > lim ||
        di * (uint64_t)c->dt_rank > lim || di * (uint64_t)c->d_conv > lim ||
        (uint64_t)c->vocab_size * dm > lim || (uint64_t)c->n_features * dm > lim ||
        (uint64_t)c->n_mask * dm > lim)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ sizes give a tensor of 2^31 "
                             "elements or more (d_model=%d d_inner=%d d_state=%d dt_rank=%d "
                             "vocab_size=%d n_features=%d)", w->path, c->d_model, c->d_inner,
                             c->d_state, c->dt_rank, c->vocab_size, c->n_features);

    for (size_t i = 0; i < sizeof frontend_keys / sizeof frontend_keys[0]; i++) {
        const char *v = ssm_st_meta(&w->st, frontend_keys[i].key);
        int iv;
        rc = SSM_OK;
        if (!v)
            continue;
        if (frontend_keys[i].type == 'i')
            rc = meta_int(w, frontend_keys[i].key, 0, 1, INT_MAX, 0, &iv, err);
        else if (frontend_keys[i].type == 'f')
            rc = meta_float(w, frontend_keys[i].key, -1e30, 1e30, 0.0, &d, err);
        else if (!*v)
            rc = ssm_error_set(err, SSM_ERR_MODEL, "%s: __metadata__ %s: empty string",
                               w->path, frontend_keys[i].key);
        if (rc)
            return rc;
    }
    int o = snprintf(w->cfg_text, sizeof w->cfg_text, "d_model=%d d_inner=%d d_state=%d dt_rank=%d "
                     "d_conv=%d", c->d_model, c->d_inner, c->d_state, c->dt_rank, c->d_conv);
    if (c->n_mamba2 && o > 0 && (size_t)o < sizeof w->cfg_text)
        snprintf(w->cfg_text + o, sizeof w->cfg_text - (size_t)o, " mamba2.d_inner=%d "
                 "mamba2.d_state=%d mamba2.d_conv=%d mamba2.head_dim=%d mamba2.n_groups=%d",
                 c->m2_d_inner, c->m2_d_state, c->m2_d_conv, c->m2_head_dim, c->m2_n_groups);
    o = (int)strlen(w->cfg_text);
    if (c->n_attn && (size_t)o < sizeof w->cfg_text)
        snprintf(w->cfg_text + o, sizeof w->cfg_text - (size_t)o, " attention.num_heads=%d "
                 "attention.num_heads_kv=%d attention.head_dim=%d attention.mlp_dim=%d",
                 c->at_n_heads, c->at_n_heads_kv, c->at_head_dim, c->at_mlp_dim);
    o = (int)strlen(w->cfg_text);
    if (c->d_intermediate && (size_t)o < sizeof w->cfg_text)
        snprintf(w->cfg_text + o, sizeof w->cfg_text - (size_t)o, " d_intermediate=%d",
                 c->d_intermediate);
    return SSM_OK;
}

/* ---- tensors ------------------------------------------------------------- */

static void *own_alloc(weights_impl *w, size_t bytes)
{
    if (w->n_owned == w->cap_owned) {
        size_t cap = w->cap_owned ? 2 * w->cap_owned : 64;
        void **p = realloc(w->owned, cap * sizeof *p);
        if (!p)
            return NULL;
        w->owned = p;
        w->cap_owned = cap;
    }
    void *m = NULL;
    if (posix_memalign(&m, 64, bytes ? bytes : 64) != 0)
        return NULL;
    w->owned[w->n_owned++] = m;
    return m;
}

static void shape_text(char *dst, size_t cap, int n_dims, const uint64_t *shape)
{
    size_t o = (size_t)snprintf(dst, cap, "[");
    for (int d = 0; d < n_dims && o < cap; d++)
        o += (size_t)snprintf(dst + o, cap - o, d ? ", %llu" : "%llu",
                              (unsigned long long)shape[d]);
    if (o < cap)
        snprintf(dst + o, cap - o, "]");
}

/* Finds name (or its HF alias), checks the exact shape, converts to fp32 and
 * checks every value is finite.  *out = NULL when absent and not required. */
static int take(weights_impl *w, const char *name, const char *alias, int required,
                int n_dims, const uint64_t *shape, const float **out, ssm_error *err)
{
    ssm_st_tensor *t = ssm_st_find(&w->st, name);
    ssm_st_tensor *ta = alias ? ssm_st_find(&w->st, alias) : NULL;
    char got[96], want[96];

    *out = NULL;
    if (t && ta)
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: present twice, also as its "
                             "HuggingFace alias %s", w->path, name, alias);
    if (!t)
        t = ta;
    if (!t) {
        if (!required)
            return SSM_OK;
        shape_text(want, sizeof want, n_dims, shape);
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: missing (required, shape %s)",
                             w->path, name, want);
    }
    int same = t->n_dims == n_dims;
    for (int d = 0; same && d < n_dims; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        shape_text(got, sizeof got, t->n_dims, t->shape);
        shape_text(want, sizeof want, n_dims, shape);
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: shape %s, expected %s "
                             "(__metadata__ %s)", w->path, t->name, got, want, w->cfg_text);
    }
    t->used = 1;

    size_t n = (size_t)t->n_elems;   /* < 2^31 by parse_config's bounds */
    const float *f;
    if (t->dtype == SSM_ST_F32 && ((uintptr_t)t->data & (sizeof(float) - 1)) == 0) {
        f = (const float *)(const void *)t->data;
    } else {
        float *dst = own_alloc(w, n * sizeof *dst);
        if (!dst)
            return ssm_error_set(err, SSM_ERR_NOMEM, "%s: tensor %s: out of memory", w->path,
                                 t->name);
        if (t->dtype == SSM_ST_F32) {
            memcpy(dst, t->data, n * sizeof *dst);
        } else {
            for (size_t i = 0; i < n; i++) {
                uint16_t h = (uint16_t)(t->data[2 * i] | t->data[2 * i + 1] << 8);
                if (t->dtype == SSM_ST_F16) {
                    dst[i] = ssm_half_to_f32(h);
                } else {
                    uint32_t bits = (uint32_t)h << 16;
                    memcpy(&dst[i], &bits, sizeof bits);
                }
            }
        }
        f = dst;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(f[i]))
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: non-finite value %s at "
                                 "flat index %zu", w->path, t->name,
                                 isnan(f[i]) ? "nan" : f[i] > 0 ? "inf" : "-inf", i);
    *out = f;
    return SSM_OK;
}

#define SHAPE(...) (const uint64_t[]){__VA_ARGS__}

/* A tensor the configuration excludes (e.g. conv1d.bias with conv_bias=false)
 * must be absent: running without it would silently change the model. */
static int forbid(weights_impl *w, const char *name, const char *why, ssm_error *err)
{
    if (ssm_st_find(&w->st, name))
        return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: present but __metadata__ says "
                             "%s", w->path, name, why);
    return SSM_OK;
}

/* -exp(A_log) {n} into memory w owns; an A_log whose exp overflows fp32 is refused. */
static int make_A(weights_impl *w, const char *name, const float *a_log, size_t n,
                  const float **out, ssm_error *err)
{
    float *A = own_alloc(w, n * sizeof *A);
    if (!A)
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory for A", w->path);
    for (size_t k = 0; k < n; k++) {
        A[k] = -expf(a_log[k]);
        if (!isfinite(A[k]))
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: value %g at flat index %zu "
                                 "makes A = -exp(A_log) overflow fp32", w->path, name,
                                 (double)a_log[k], k);
    }
    *out = A;
    return SSM_OK;
}

/* A Mamba-2 block (mamba_ssm modules/mamba2.py Mamba2, HF Mamba2Mixer: same names). */
static int take_layer2(weights_impl *w, int i, int conv_bias, int proj_bias, ssm_error *err)
{
    const ssm_config *c = &w->pub.cfg;
    ssm_layer_weights *L = &w->pub.layers[i];
    L->d_inner = c->m2_d_inner;
    L->d_state = c->m2_d_state;
    L->d_conv = c->m2_d_conv;
    L->n_heads = c->m2_n_heads;
    L->head_dim = c->m2_head_dim;
    L->n_groups = c->m2_n_groups;
    L->conv_dim = L->d_inner + 2 * L->n_groups * L->d_state;
    L->d_in_proj = L->d_inner + L->conv_dim + L->n_heads;
    const uint64_t dm = (uint64_t)c->d_model, di = (uint64_t)L->d_inner,
                   cd = (uint64_t)L->conv_dim, nh = (uint64_t)L->n_heads,
                   dc = (uint64_t)L->d_conv, nin = (uint64_t)L->d_in_proj;
    char nm[128];
    const float *a_log;
    int rc;
#define NAME(suffix) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", i, suffix), nm)
    if ((!conv_bias && (rc = forbid(w, NAME("mixer.conv1d.bias"), "conv_bias=false", err))) ||
        (!proj_bias && (rc = forbid(w, NAME("mixer.in_proj.bias"), "proj_bias=false", err))) ||
        (!proj_bias && (rc = forbid(w, NAME("mixer.out_proj.bias"), "proj_bias=false", err))))
        return rc;
    if ((rc = take(w, NAME("norm.weight"), NULL, 1, 1, SHAPE(dm), &L->norm, err)) ||
        (rc = take(w, NAME("mixer.in_proj.weight"), NULL, 1, 2, SHAPE(nin, dm), &L->in_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.in_proj.bias"), NULL, proj_bias, 1, SHAPE(nin),
                   &L->in_proj_bias, err)) ||
        (rc = take(w, NAME("mixer.conv1d.weight"), NULL, 1, 3, SHAPE(cd, 1, dc), &L->conv1d,
                   err)) ||
        (rc = take(w, NAME("mixer.conv1d.bias"), NULL, conv_bias, 1, SHAPE(cd), &L->conv1d_bias,
                   err)) ||
        (rc = take(w, NAME("mixer.dt_bias"), NULL, 1, 1, SHAPE(nh), &L->dt_bias, err)) ||
        (rc = take(w, NAME("mixer.A_log"), NULL, 1, 1, SHAPE(nh), &a_log, err)) ||
        (rc = take(w, NAME("mixer.D"), NULL, 1, 1, SHAPE(nh), &L->D, err)) ||
        (rc = take(w, NAME("mixer.norm.weight"), NULL, 1, 1, SHAPE(di), &L->norm_gated, err)) ||
        (rc = take(w, NAME("mixer.out_proj.weight"), NULL, 1, 2, SHAPE(dm, di), &L->out_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.out_proj.bias"), NULL, proj_bias, 1, SHAPE(dm),
                   &L->out_proj_bias, err)))
        return rc;
    return make_A(w, NAME("mixer.A_log"), a_log, (size_t)nh, &L->A, err);
#undef NAME
}

/* An attention block (mamba_ssm modules/mha.py MHA; no conv1d: d_conv = 0). */
static int take_layer_attn(weights_impl *w, int i, ssm_error *err)
{
    const ssm_config *c = &w->pub.cfg;
    ssm_layer_weights *L = &w->pub.layers[i];
    L->n_heads = c->at_n_heads;
    L->head_dim = c->at_head_dim;
    L->n_groups = c->at_n_heads_kv;
    L->d_in_proj = (c->at_n_heads + 2 * c->at_n_heads_kv) * c->at_head_dim + c->at_mlp_dim;
    L->d_inner = c->at_n_heads * c->at_head_dim + c->at_mlp_dim / 2;
    L->conv_dim = L->d_conv = L->d_state = 0;
    const uint64_t dm = (uint64_t)c->d_model, nin = (uint64_t)L->d_in_proj,
                   di = (uint64_t)L->d_inner;
    char nm[128];
    int rc;
#define NAME(suffix) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", i, suffix), nm)
    if ((!c->at_qkv_bias && (rc = forbid(w, NAME("mixer.in_proj.bias"),
                                         "attention.qkv_proj_bias=false", err))) ||
        (!c->at_out_bias && (rc = forbid(w, NAME("mixer.out_proj.bias"),
                                         "attention.out_proj_bias=false", err))))
        return rc;
    if ((rc = take(w, NAME("norm.weight"), NULL, 1, 1, SHAPE(dm), &L->norm, err)) ||
        (rc = take(w, NAME("mixer.in_proj.weight"), NULL, 1, 2, SHAPE(nin, dm), &L->in_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.in_proj.bias"), NULL, c->at_qkv_bias, 1, SHAPE(nin),
                   &L->in_proj_bias, err)) ||
        (rc = take(w, NAME("mixer.out_proj.weight"), NULL, 1, 2, SHAPE(dm, di), &L->out_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.out_proj.bias"), NULL, c->at_out_bias, 1, SHAPE(dm),
                   &L->out_proj_bias, err)))
        return rc;
#undef NAME
    if (c->at_rot_dim > 0) {
        double *f = own_alloc(w, (size_t)(c->at_rot_dim / 2) * sizeof *f);
        if (!f)
            return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", w->path);
        for (int k = 0; k < c->at_rot_dim / 2; k++)
            f[k] = pow(c->at_rot_base, -(double)(2 * k) / (double)c->at_rot_dim);
        L->rope_inv_freq = f;
    }
    return SSM_OK;
}

/* The gated MLP of a block (mamba_ssm modules/mlp.py GatedMLP, bias=False), every
 * layer when d_intermediate > 0; its tensors are refused otherwise (unknown). */
static int take_mlp(weights_impl *w, int i, ssm_error *err)
{
    const ssm_config *c = &w->pub.cfg;
    ssm_layer_weights *L = &w->pub.layers[i];
    const uint64_t dm = (uint64_t)c->d_model, dh = (uint64_t)c->d_intermediate;
    char nm[128];
    int rc;
#define NAME(suffix) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", i, suffix), nm)
    if ((rc = take(w, NAME("norm2.weight"), NULL, 1, 1, SHAPE(dm), &L->norm2, err)) ||
        (rc = take(w, NAME("mlp.fc1.weight"), NULL, 1, 2, SHAPE(2 * dh, dm), &L->mlp_fc1, err)) ||
        (rc = take(w, NAME("mlp.fc2.weight"), NULL, 1, 2, SHAPE(dm, dh), &L->mlp_fc2, err)))
        return rc;
#undef NAME
    return SSM_OK;
}

static int take_layer_kind(weights_impl *w, int i, int conv_bias, int proj_bias, ssm_error *err);

static int take_layer(weights_impl *w, int i, int conv_bias, int proj_bias, ssm_error *err)
{
    int rc = take_layer_kind(w, i, conv_bias, proj_bias, err);
    if (rc == SSM_OK && w->pub.cfg.d_intermediate > 0)
        rc = take_mlp(w, i, err);
    return rc;
}

static int take_layer_kind(weights_impl *w, int i, int conv_bias, int proj_bias, ssm_error *err)
{
    const ssm_config *c = &w->pub.cfg;
    ssm_layer_weights *L = &w->pub.layers[i];
    const uint64_t dm = (uint64_t)c->d_model, di = (uint64_t)c->d_inner,
                   ds = (uint64_t)c->d_state, dr = (uint64_t)c->dt_rank,
                   dc = (uint64_t)c->d_conv;
    char nm[128];
    const float *a_log;
    int rc;
    L->kind = (ssm_layer_kind)w->kinds[i];
    if (L->kind == SSM_LAYER_MAMBA2)
        return take_layer2(w, i, conv_bias, proj_bias, err);
    if (L->kind == SSM_LAYER_ATTENTION)
        return take_layer_attn(w, i, err);
    L->d_inner = L->conv_dim = L->n_heads = c->d_inner;
    L->d_state = c->d_state;
    L->d_conv = c->d_conv;
    L->head_dim = L->n_groups = 1;
    L->d_in_proj = 2 * c->d_inner;
#define NAME(suffix) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", i, suffix), nm)
    if ((!conv_bias && (rc = forbid(w, NAME("mixer.conv1d.bias"), "conv_bias=false", err))) ||
        (!proj_bias && (rc = forbid(w, NAME("mixer.in_proj.bias"), "proj_bias=false", err))) ||
        (!proj_bias && (rc = forbid(w, NAME("mixer.out_proj.bias"), "proj_bias=false", err))))
        return rc;
    if ((rc = take(w, NAME("norm.weight"), NULL, 1, 1, SHAPE(dm), &L->norm, err)) ||
        (rc = take(w, NAME("mixer.in_proj.weight"), NULL, 1, 2, SHAPE(2 * di, dm), &L->in_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.in_proj.bias"), NULL, proj_bias, 1, SHAPE(2 * di),
                   &L->in_proj_bias, err)) ||
        (rc = take(w, NAME("mixer.conv1d.weight"), NULL, 1, 3, SHAPE(di, 1, dc), &L->conv1d,
                   err)) ||
        (rc = take(w, NAME("mixer.conv1d.bias"), NULL, conv_bias, 1, SHAPE(di), &L->conv1d_bias,
                   err)) ||
        (rc = take(w, NAME("mixer.x_proj.weight"), NULL, 1, 2, SHAPE(dr + 2 * ds, di),
                   &L->x_proj, err)) ||
        (rc = take(w, NAME("mixer.dt_proj.weight"), NULL, 1, 2, SHAPE(di, dr), &L->dt_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.dt_proj.bias"), NULL, 1, 1, SHAPE(di), &L->dt_proj_bias,
                   err)) ||
        (rc = take(w, NAME("mixer.A_log"), NULL, 1, 2, SHAPE(di, ds), &a_log, err)) ||
        (rc = take(w, NAME("mixer.D"), NULL, 1, 1, SHAPE(di), &L->D, err)) ||
        (rc = take(w, NAME("mixer.out_proj.weight"), NULL, 1, 2, SHAPE(dm, di), &L->out_proj,
                   err)) ||
        (rc = take(w, NAME("mixer.out_proj.bias"), NULL, proj_bias, 1, SHAPE(dm),
                   &L->out_proj_bias, err)))
        return rc;
    return make_A(w, NAME("mixer.A_log"), a_log, (size_t)(di * ds), &L->A, err);
#undef NAME
}

static int take_all(weights_impl *w, int conv_bias, int proj_bias, ssm_error *err)
{
    ssm_config *c = &w->pub.cfg;
    ssm_weights *p = &w->pub;
    const uint64_t dm = (uint64_t)c->d_model;
    int rc;

    p->layers = own_alloc(w, (size_t)c->n_layer * sizeof *p->layers);
    if (!p->layers)
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", w->path);
    memset(p->layers, 0, (size_t)c->n_layer * sizeof *p->layers);

    if (c->input == SSM_INPUT_TOKENS) {
        if ((rc = take(w, "backbone.embedding.weight", "backbone.embeddings.weight", 1, 2,
                       SHAPE((uint64_t)c->vocab_size, dm), &p->embedding, err)))
            return rc;
    } else {
        if ((rc = take(w, "frontend.proj.weight", NULL, 1, 2,
                       SHAPE(dm, (uint64_t)c->n_features), &p->frontend_proj, err)) ||
            (rc = take(w, "frontend.proj.bias", NULL, 0, 1, SHAPE(dm), &p->frontend_bias, err)))
            return rc;
    }
    for (int i = 0; i < c->n_layer; i++)
        if ((rc = take_layer(w, i, conv_bias, proj_bias, err)))
            return rc;
    if ((rc = take(w, "backbone.norm_f.weight", NULL, 1, 1, SHAPE(dm), &p->norm_f, err)))
        return rc;
    if (c->heads & SSM_HEAD_LM) {
        if ((rc = take(w, "lm_head.weight", NULL, !p->embedding, 2,
                       SHAPE((uint64_t)c->vocab_size, dm), &p->lm_head, err)))
            return rc;
        if (!p->lm_head)
            p->lm_head = p->embedding;   /* tied (mamba_ssm tie_embeddings) */
    }
    if (c->heads & SSM_HEAD_MASK) {
        /* a banded head: head.mask.interp {n_mask, B} maps B band logits (head.mask.weight
         * {B, d_model}, bias {B}) to the n_mask outputs before the sigmoid */
        ssm_st_tensor *ti = ssm_st_find(&w->st, "head.mask.interp");
        ssm_st_tensor *t = ti ? ti : ssm_st_find(&w->st, "head.mask.weight");
        if (!c->n_mask && t && t->n_dims == 2 && t->shape[0] >= 1 &&
            t->shape[0] <= (uint64_t)INT_MAX / dm)
            c->n_mask = (int)t->shape[0];   /* inferred when __metadata__ has no n_mask */
        uint64_t nm = c->n_mask ? (uint64_t)c->n_mask : 1, nb = nm;
        if (ti) {
            if (ti->n_dims != 2 || ti->shape[1] < 1 || ti->shape[1] > (uint64_t)DIM_MAX ||
                ti->shape[1] > (uint64_t)INT_MAX / nm || ti->shape[1] > (uint64_t)INT_MAX / dm) {
                char got[96];
                shape_text(got, sizeof got, ti->n_dims, ti->shape);
                return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor head.mask.interp: shape %s, expected "
                                     "[n_mask (%llu), n_bands] with n_bands in [1, %ld]", w->path, got,
                                     (unsigned long long)nm, DIM_MAX);
            }
            nb = ti->shape[1];
            if ((rc = take(w, "head.mask.interp", NULL, 1, 2, SHAPE(nm, nb), &p->mask_interp, err)))
                return rc;
            c->n_mask_bands = (int)nb;
            size_t nnz = 0;
            for (size_t i = 0; i < nm * nb; i++)
                nnz += p->mask_interp[i] != 0.0f;
            int *row = own_alloc(w, (nm + 1) * sizeof *row), *col = own_alloc(w, nnz * sizeof *col);
            float *val = own_alloc(w, nnz * sizeof *val);
            if (!row || !col || !val)
                return ssm_error_set(err, SSM_ERR_NOMEM, "%s: tensor head.mask.interp: out of memory", w->path);
            size_t k = 0;
            for (size_t i = 0; i < nm; i++) {
                row[i] = (int)k;
                for (size_t j = 0; j < nb; j++) {
                    float v = p->mask_interp[i * nb + j];
                    if (v != 0.0f) {
                        col[k] = (int)j;
                        val[k++] = v;
                    }
                }
            }
            row[nm] = (int)k;
            p->mask_interp_row = row;
            p->mask_interp_col = col;
            p->mask_interp_val = val;
        }
        if ((rc = take(w, "head.mask.weight", NULL, 1, 2, SHAPE(nb, dm), &p->mask_w, err)) ||
            (rc = take(w, "head.mask.bias", NULL, 0, 1, SHAPE(nb), &p->mask_b, err)))
            return rc;
    }
    if (c->heads & SSM_HEAD_VAD) {
        if ((rc = take(w, "head.vad.weight", NULL, 1, 2, SHAPE(1, dm), &p->vad_w, err)) ||
            (rc = take(w, "head.vad.bias", NULL, 0, 1, SHAPE(1), &p->vad_b, err)))
            return rc;
    }
    for (size_t i = 0; i < w->st.n_tensors; i++)
        if (!w->st.tensors[i].used)
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: tensor %s: unknown tensor, not used by "
                                 "this configuration (input=%s, heads=%s%s%s%s)", w->path,
                                 w->st.tensors[i].name,
                                 c->input == SSM_INPUT_TOKENS ? "tokens" : "features",
                                 c->heads & SSM_HEAD_MASK ? "mask," : "",
                                 c->heads & SSM_HEAD_VAD ? "vad," : "",
                                 c->heads & SSM_HEAD_LM ? "lm," : "", "embedding");
    return SSM_OK;
}

/* ---- public -------------------------------------------------------------- */

void ssm_weights_free(ssm_weights *pub)
{
    weights_impl *w = (weights_impl *)pub;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->kinds);
    ssm_st_release(&w->st);
    if (w->map)
        munmap(w->map, w->map_bytes);
    free(w->path);
    free(w);
}

int ssm_weights_load_buffer(const void *buf, size_t size, const char *label,
                            ssm_weights **out, ssm_error *err)
{
    int conv_bias = 1, proj_bias = 0, rc;
    if (!out)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_weights_load: out is NULL");
    *out = NULL;
    if (!label)
        label = "(memory)";
    if (!buf && size)
        return ssm_error_set(err, SSM_ERR_INVALID, "%s: NULL buffer", label);
    weights_impl *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(label))) {
        free(w);
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", label);
    }
    w->pub.path = w->path;
    if ((rc = ssm_st_parse(&w->st, buf ? buf : "", size, label, err)) ||
        (rc = parse_config(w, &w->pub.cfg, &conv_bias, &proj_bias, err)) ||
        (rc = take_all(w, conv_bias, proj_bias, err))) {
        ssm_weights_free(&w->pub);
        return rc;
    }
    w->pub.hash = ssm_fnv1a64(buf, size);
    *out = &w->pub;
    return SSM_OK;
}

int ssm_weights_load(const char *path, ssm_weights **out, ssm_error *err)
{
    struct stat sb;
    if (!out)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_weights_load: out is NULL");
    *out = NULL;
    if (!path)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_weights_load: path is NULL");
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ssm_error_set(err, SSM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ssm_error_set(err, SSM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ssm_error_set(err, SSM_ERR_IO, "%s: is %s, not a regular file", path,
                             S_ISDIR(sb.st_mode) ? "a directory" : "a special file");
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return ssm_error_set(err, SSM_ERR_IO, "%s: too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ssm_error_set(err, SSM_ERR_IO, "%s: cannot map %zu bytes: %s", path, size,
                                 strerror(e));
        }
    }
    close(fd);
    ssm_weights *pub;
    int rc = ssm_weights_load_buffer(map, size, path, &pub, err);
    if (rc != SSM_OK) {
        if (map)
            munmap(map, size);
        return rc;
    }
    weights_impl *w = (weights_impl *)pub;
    w->map = map;
    w->map_bytes = size;
    *out = pub;
    return SSM_OK;
}

const char *ssm_weights_meta(const ssm_weights *pub, const char *key)
{
    if (!pub || !key)
        return NULL;
    return ssm_st_meta(&((const weights_impl *)pub)->st, key);
}

int ssm_weights_meta_count(const ssm_weights *pub)
{
    if (!pub)
        return 0;
    size_t n = ((const weights_impl *)pub)->st.n_meta;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int ssm_weights_meta_at(const ssm_weights *pub, int i, const char **key, const char **value)
{
    if (!pub || i < 0 || (size_t)i >= ((const weights_impl *)pub)->st.n_meta)
        return SSM_ERR_INVALID;
    const ssm_st_file *f = &((const weights_impl *)pub)->st;
    if (key)
        *key = f->meta_keys[i];
    if (value)
        *value = f->meta_values[i];
    return SSM_OK;
}
