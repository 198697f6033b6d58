/* SPDX-License-Identifier: MIT */
/* loader_check: loads a model file with ssm_weights_load and prints its
 * configuration as one JSON object on stdout, or the loader's error line on
 * stderr with exit status 1.  With --dump DIR it also writes every fp32 tensor
 * the loader produced to DIR/NAME.f32 (raw little-endian float32, NAME such as
 * "layers.0.A" or "embedding") so a Python test can compare values exactly.
 * Test helper for tests/model/test_export_loader.py. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

static int dump(const char *dir, const char *name, const float *p, size_t n)
{
    char path[1024];
    if (!p)
        return 0;
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof *p, n, f) != n) {
        fprintf(stderr, "loader_check: cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

static int dump_all(const ssm_weights *w, const char *dir)
{
    const ssm_config *c = &w->cfg;
    size_t dm = (size_t)c->d_model, di = (size_t)c->d_inner, ds = (size_t)c->d_state,
           dr = (size_t)c->dt_rank, dc = (size_t)c->d_conv;
    int bad = 0;
    char nm[128];
    bad |= dump(dir, "embedding", w->embedding, (size_t)c->vocab_size * dm);
    bad |= dump(dir, "frontend_proj", w->frontend_proj, (size_t)c->n_features * dm);
    bad |= dump(dir, "frontend_bias", w->frontend_bias, dm);
    bad |= dump(dir, "norm_f", w->norm_f, dm);
    bad |= dump(dir, "lm_head", w->lm_head, (size_t)c->vocab_size * dm);
    bad |= dump(dir, "mask_w", w->mask_w, (size_t)c->n_mask * dm);
    bad |= dump(dir, "mask_b", w->mask_b, (size_t)c->n_mask);
    bad |= dump(dir, "vad_w", w->vad_w, dm);
    bad |= dump(dir, "vad_b", w->vad_b, 1);
    for (int i = 0; i < c->n_layer; i++) {
        const ssm_layer_weights *L = &w->layers[i];
#define D(field, n) (snprintf(nm, sizeof nm, "layers.%d.%s", i, #field), \
                     bad |= dump(dir, nm, L->field, (n)))
        if (L->kind == SSM_LAYER_MAMBA2) {
            size_t d2 = (size_t)L->d_inner, cd = (size_t)L->conv_dim, nh = (size_t)L->n_heads;
            D(norm, dm);
            D(in_proj, (size_t)L->d_in_proj * dm);
            D(in_proj_bias, (size_t)L->d_in_proj);
            D(conv1d, cd * (size_t)L->d_conv);
            D(conv1d_bias, cd);
            D(dt_bias, nh);
            D(A, nh);
            D(D, nh);
            D(norm_gated, d2);
            D(out_proj, dm * d2);
            D(out_proj_bias, dm);
            continue;
        }
        D(norm, dm);
        D(in_proj, 2 * di * dm);
        D(in_proj_bias, 2 * di);
        D(conv1d, di * dc);
        D(conv1d_bias, di);
        D(x_proj, (dr + 2 * ds) * di);
        D(dt_proj, di * dr);
        D(dt_proj_bias, di);
        D(A, di * ds);
        D(D, di);
        D(out_proj, dm * di);
        D(out_proj_bias, dm);
#undef D
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--dump") == 0)) {
        fprintf(stderr, "usage: loader_check MODEL.safetensors [--dump DIR]\n");
        return 2;
    }
    ssm_weights *w;
    ssm_error err = {0};
    int rc = ssm_weights_load(argv[1], &w, &err);
    if (rc != SSM_OK) {
        fprintf(stderr, "%s (%s)\n", err.msg, ssm_strerror(rc));
        return 1;
    }
    const ssm_config *c = &w->cfg;
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)w->hash);
    json_t *heads = json_array();
    if (c->heads & SSM_HEAD_MASK) json_array_append_new(heads, json_string("mask"));
    if (c->heads & SSM_HEAD_VAD) json_array_append_new(heads, json_string("vad"));
    if (c->heads & SSM_HEAD_LM) json_array_append_new(heads, json_string("lm"));
    if (c->heads & SSM_HEAD_EMBEDDING) json_array_append_new(heads, json_string("embedding"));
    json_t *kinds = json_array();
    for (int i = 0; i < c->n_layer; i++)
        json_array_append_new(kinds, json_string(w->layers[i].kind == SSM_LAYER_MAMBA2 ? "mamba2"
                                                 : w->layers[i].kind == SSM_LAYER_ATTENTION
                                                     ? "attention"
                                                     : "mamba1"));
    json_t *at = c->n_attn ? json_pack("{s:i, s:i, s:i, s:i, s:i, s:b, s:f, s:f, s:i, s:b, s:b}",
                                       "num_heads", c->at_n_heads, "num_heads_kv",
                                       c->at_n_heads_kv, "head_dim", c->at_head_dim, "window",
                                       c->at_window, "rotary_emb_dim", c->at_rot_dim,
                                       "rotary_emb_interleaved", c->at_rot_interleaved,
                                       "rotary_emb_base", c->at_rot_base, "softmax_scale",
                                       (double)c->at_scale, "mlp_dim", c->at_mlp_dim,
                                       "qkv_proj_bias", c->at_qkv_bias, "out_proj_bias",
                                       c->at_out_bias)
                           : json_null();
    json_t *m2 = c->n_mamba2 ? json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:f}", "d_inner",
                                         c->m2_d_inner, "d_state", c->m2_d_state, "d_conv",
                                         c->m2_d_conv, "head_dim", c->m2_head_dim, "n_heads",
                                         c->m2_n_heads, "n_groups", c->m2_n_groups, "norm_eps",
                                         (double)c->m2_norm_eps)
                             : json_null();
    json_t *meta = json_object();
    for (int i = 0; i < ssm_weights_meta_count(w); i++) {
        const char *k, *v;
        ssm_weights_meta_at(w, i, &k, &v);
        json_object_set_new(meta, k, json_string(v));
    }
    json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:o, s:s, s:i, s:i, s:o, "
                          "s:i, s:b, s:b, s:b, s:s, s:o, s:o, s:o, s:o, s:i}",
                          "d_model", c->d_model, "n_layer", c->n_layer, "d_state", c->d_state,
                          "d_conv", c->d_conv, "expand", c->expand, "d_inner", c->d_inner,
                          "dt_rank", c->dt_rank, "norm_eps", (double)c->norm_eps,
                          "delta_A_min", isinf(c->delta_A_min) ? json_null()
                                                               : json_real(c->delta_A_min),
                          "input", c->input == SSM_INPUT_TOKENS ? "tokens" : "features",
                          "vocab_size", c->vocab_size, "n_features", c->n_features,
                          "heads", heads, "n_mask", c->n_mask,
                          "lm_head_tied", w->lm_head && w->lm_head == w->embedding,
                          "conv1d_bias", w->layers[0].conv1d_bias != NULL,
                          "proj_bias", w->layers[0].in_proj_bias != NULL,
                          "hash", hash, "metadata", meta, "layer_kinds", kinds, "mamba2", m2,
                          "attention", at, "d_intermediate", c->d_intermediate);
    int bad = 0;
    if (!j) {
        fprintf(stderr, "loader_check: json_pack failed\n");
        bad = 1;
    } else {
        char *s = json_dumps(j, JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    if (argc == 4)
        bad |= dump_all(w, argv[3]);
    ssm_weights_free(w);
    return bad;
}
