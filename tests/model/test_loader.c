/* SPDX-License-Identifier: MIT */
/* Model-file loader tests (suite 'model').
 *
 * argv[1] is a directory that tests/model/make_loader_models.py filled at
 * test time: valid models (F32/F16/BF16, tied and untied lm_head, HuggingFace
 * names, features input with heads), numpy reference values, and one
 * malformed file per rule of docs/model-format.md.  Each malformed file is its
 * own cmocka test asserting the status, that *out stays NULL, that the line
 * starts with the path, and a fragment of the message.  Robustness sweeps
 * (every truncation, every byte of the header flipped) must fail cleanly;
 * run under ASan/UBSan by .ci/run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ssm_kernels.h"
#include "safetensors.h"
#include "weights.h"

static const char *g_dir = ".";

static char *path_of(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static ssm_weights *load_ok(const char *name)
{
    ssm_weights *w = NULL;
    ssm_error err = {0};
    int rc = ssm_weights_load(path_of(name), &w, &err);
    if (rc != SSM_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, SSM_OK);
    assert_non_null(w);
    return w;
}

/* Every fp32 array of w as (pointer, count), in a fixed order. */
typedef struct { const float *p; size_t n; const char *what; int layer; } view;

static int views(const ssm_weights *w, view *v, int cap)
{
    const ssm_config *c = &w->cfg;
    size_t dm = (size_t)c->d_model, di = (size_t)c->d_inner, ds = (size_t)c->d_state,
           dr = (size_t)c->dt_rank, dc = (size_t)c->d_conv;
    int k = 0;
#define V(ptr, cnt, name, l) do { if (k < cap) v[k] = (view){(ptr), (cnt), (name), (l)}; k++; } while (0)
    V(w->embedding, (size_t)c->vocab_size * dm, "embedding", -1);
    V(w->frontend_proj, (size_t)c->n_features * dm, "frontend_proj", -1);
    V(w->frontend_bias, dm, "frontend_bias", -1);
    V(w->norm_f, dm, "norm_f", -1);
    V(w->lm_head, (size_t)c->vocab_size * dm, "lm_head", -1);
    V(w->mask_w, (size_t)c->n_mask * dm, "mask_w", -1);
    V(w->mask_b, (size_t)c->n_mask, "mask_b", -1);
    V(w->vad_w, dm, "vad_w", -1);
    V(w->vad_b, 1, "vad_b", -1);
    for (int i = 0; i < c->n_layer; i++) {
        const ssm_layer_weights *L = &w->layers[i];
        V(L->norm, dm, "norm", i);
        V(L->in_proj, 2 * di * dm, "in_proj", i);
        V(L->in_proj_bias, 2 * di, "in_proj_bias", i);
        V(L->conv1d, di * dc, "conv1d", i);
        V(L->conv1d_bias, di, "conv1d_bias", i);
        V(L->x_proj, (dr + 2 * ds) * di, "x_proj", i);
        V(L->dt_proj, di * dr, "dt_proj", i);
        V(L->dt_proj_bias, di, "dt_proj_bias", i);
        V(L->A, di * ds, "A", i);
        V(L->D, di, "D", i);
        V(L->out_proj, dm * di, "out_proj", i);
        V(L->out_proj_bias, dm, "out_proj_bias", i);
    }
#undef V
    return k;
}

/* Bitwise equality of every tensor of a and b; returns the number of arrays compared. */
static int assert_same_values(const ssm_weights *a, const ssm_weights *b)
{
    view va[128], vb[128];
    int na = views(a, va, 128), nb = views(b, vb, 128);
    assert_int_equal(na, nb);
    assert_true(na <= 128);
    int compared = 0;
    for (int k = 0; k < na; k++) {
        assert_true((va[k].p == NULL) == (vb[k].p == NULL));
        if (!va[k].p)
            continue;
        assert_true(((uintptr_t)va[k].p & 3) == 0);
        assert_true(((uintptr_t)vb[k].p & 3) == 0);
        size_t bad = 0;
        for (size_t i = 0; i < va[k].n; i++)
            bad += memcmp(&va[k].p[i], &vb[k].p[i], sizeof(float)) != 0;
        if (bad)
            print_error("%s (layer %d): %zu of %zu values differ\n", va[k].what, va[k].layer,
                        bad, va[k].n);
        assert_int_equal(bad, 0);
        compared++;
    }
    return compared;
}

static void check_tok_config(const ssm_weights *w)
{
    const ssm_config *c = &w->cfg;
    assert_int_equal(c->d_model, 8);
    assert_int_equal(c->n_layer, 2);
    assert_int_equal(c->d_state, 4);
    assert_int_equal(c->d_conv, 3);
    assert_int_equal(c->expand, 2);
    assert_int_equal(c->d_inner, 16);
    assert_int_equal(c->dt_rank, 1);
    assert_int_equal(c->input, SSM_INPUT_TOKENS);
    assert_int_equal(c->vocab_size, 11);
    assert_int_equal(c->n_features, 0);
    assert_int_equal(c->heads, SSM_HEAD_LM | SSM_HEAD_EMBEDDING);
    assert_true(fabsf(c->norm_eps - 1e-5f) == 0.0f);
    assert_true(isinf(c->delta_A_min) && c->delta_A_min < 0);
}

/* ---- valid files ------------------------------------------------------- */

static void test_f32_values(void **state)
{
    (void)state;
    ssm_weights *w = load_ok("tok_f32.safetensors");
    check_tok_config(w);
    size_t n;
    unsigned char *raw = read_all(path_of("tok_expected.bin"), &n);
    const float *e = (const float *)(void *)raw;
    size_t dm = 8, di = 16, ds = 4, V = 11;
    struct { const float *p; size_t n; int exact; const char *what; } parts[] = {
        {w->embedding, V * dm, 1, "embedding"},
        {w->layers[0].in_proj, 2 * di * dm, 1, "layers.0.in_proj"},
        {w->layers[1].x_proj, (1 + 2 * ds) * di, 1, "layers.1.x_proj"},
        {w->norm_f, dm, 1, "norm_f"},
        {w->layers[0].A, di * ds, 0, "layers.0.A"},
        {w->layers[1].A, di * ds, 0, "layers.1.A"},
    };
    size_t at = 0;
    double worst_a = 0;
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        assert_true(at + parts[k].n <= n / 4);
        for (size_t i = 0; i < parts[k].n; i++) {
            float want = e[at + i], got = parts[k].p[i];
            if (parts[k].exact) {
                assert_memory_equal(&want, &got, sizeof want);
            } else {
                double rel = fabs((double)got - want) / fabs((double)want);
                worst_a = rel > worst_a ? rel : worst_a;
            }
        }
        at += parts[k].n;
    }
    assert_int_equal(at, n / 4);
    printf("# F32: values exact; A = -exp(A_log) worst relative error vs numpy %.3g\n", worst_a);
    assert_true(worst_a <= 2.5e-7);   /* within about 2 ulp of numpy's exp */
    /* A is finite and negative everywhere. */
    for (size_t i = 0; i < di * ds; i++)
        assert_true(w->layers[1].A[i] < 0);
    free(raw);
    ssm_weights_free(w);
}

static void test_f16_matches_numpy(void **state)
{
    (void)state;
    ssm_weights *a = load_ok("tok_f16.safetensors");
    ssm_weights *b = load_ok("tok_f16_ref.safetensors");
    check_tok_config(a);
    int k = assert_same_values(a, b);
    printf("# F16: %d arrays bitwise equal to numpy's float16 rounding\n", k);
    assert_true(a->hash != b->hash);
    ssm_weights_free(a);
    ssm_weights_free(b);
}

static void test_bf16_matches_numpy(void **state)
{
    (void)state;
    ssm_weights *a = load_ok("tok_bf16.safetensors");
    ssm_weights *b = load_ok("tok_bf16_ref.safetensors");
    int k = assert_same_values(a, b);
    printf("# BF16: %d arrays bitwise equal to numpy's bfloat16 rounding\n", k);
    ssm_weights_free(a);
    ssm_weights_free(b);
}

static void test_f16_all_bit_patterns(void **state)
{
    (void)state;
    size_t n;
    unsigned char *raw = read_all(path_of("f16_table.bin"), &n);
    assert_int_equal(n, 65536 * 4);
    size_t bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ssm_half_to_f32((unsigned short)h); /* the conversion the loader uses */
        if (memcmp(&f, raw + 4 * h, 4) != 0) {
            if (bad < 5)
                print_error("half 0x%04x: got %a\n", (unsigned)h, (double)f);
            bad++;
        }
    }
    printf("# F16 → F32: %zu of 65536 bit patterns differ from numpy (subnormals, inf, nan "
           "included)\n", bad);
    assert_int_equal(bad, 0);
    free(raw);
}

static void test_unaligned_f32_is_copied(void **state)
{
    (void)state;
    ssm_weights *a = load_ok("tok_unaligned.safetensors");
    ssm_weights *b = load_ok("tok_f32.safetensors");
    int k = assert_same_values(a, b);   /* also asserts every pointer is float-aligned */
    printf("# unaligned F32 file: %d arrays float-aligned and equal\n", k);
    ssm_weights_free(a);
    ssm_weights_free(b);

    /* Same bytes from a buffer at an odd address, through the buffer entry. */
    size_t n;
    unsigned char *raw = read_all(path_of("tok_f32.safetensors"), &n);
    unsigned char *odd = malloc(n + 1);
    assert_non_null(odd);
    memcpy(odd + 1, raw, n);
    ssm_weights *c = NULL, *d = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_weights_load_buffer(odd + 1, n, "odd", &c, &err), SSM_OK);
    assert_int_equal(ssm_weights_load_buffer(raw, n, "even", &d, &err), SSM_OK);
    assert_same_values(c, d);
    assert_true(c->hash == d->hash);
    assert_string_equal(c->path, "odd");
    ssm_weights_free(c);
    ssm_weights_free(d);
    free(odd);
    free(raw);
}

static void test_tied_and_untied(void **state)
{
    (void)state;
    ssm_weights *t = load_ok("tok_f32.safetensors");
    assert_non_null(t->embedding);
    assert_ptr_equal(t->lm_head, t->embedding);
    ssm_weights_free(t);
    ssm_weights *u = load_ok("tok_untied.safetensors");
    assert_non_null(u->lm_head);
    assert_ptr_not_equal(u->lm_head, u->embedding);
    assert_true(memcmp(u->lm_head, u->embedding, 11 * 8 * sizeof(float)) != 0);
    ssm_weights_free(u);
    ssm_weights *e = load_ok("tok_noheads.safetensors");   /* heads="": embedding only */
    assert_int_equal(e->cfg.heads, SSM_HEAD_EMBEDDING);
    assert_null(e->lm_head);
    assert_non_null(e->embedding);
    ssm_weights_free(e);
}

static void test_hf_names(void **state)
{
    (void)state;
    ssm_weights *w = load_ok("hf.safetensors");
    assert_non_null(w->embedding);           /* from backbone.embeddings.weight */
    assert_non_null(w->lm_head);
    assert_ptr_not_equal(w->lm_head, w->embedding);
    for (int i = 0; i < w->cfg.n_layer; i++) {
        assert_null(w->layers[i].conv1d_bias);
        assert_non_null(w->layers[i].in_proj_bias);
        assert_non_null(w->layers[i].out_proj_bias);
    }
    ssm_weights_free(w);
}

static void test_features_heads_meta(void **state)
{
    (void)state;
    ssm_weights *w = load_ok("feat.safetensors");
    const ssm_config *c = &w->cfg;
    assert_int_equal(c->input, SSM_INPUT_FEATURES);
    assert_int_equal(c->n_features, 5);
    assert_int_equal(c->vocab_size, 0);
    assert_int_equal(c->heads, SSM_HEAD_MASK | SSM_HEAD_VAD | SSM_HEAD_EMBEDDING);
    assert_int_equal(c->n_mask, 5);
    assert_true(c->delta_A_min == -20.0f);
    assert_true(c->norm_eps == 1e-6f);
    assert_null(w->embedding);
    assert_null(w->lm_head);
    assert_non_null(w->frontend_proj);
    assert_non_null(w->frontend_bias);
    assert_non_null(w->mask_w);
    assert_non_null(w->mask_b);
    assert_non_null(w->vad_w);
    assert_non_null(w->vad_b);
    assert_string_equal(ssm_weights_meta(w, "frontend.n_fft"), "8");
    assert_string_equal(ssm_weights_meta(w, "frontend.window"), "sqrt_hann");
    assert_null(ssm_weights_meta(w, "frontend.n_mels"));
    int n = ssm_weights_meta_count(w), seen = 0;
    for (int i = 0; i < n; i++) {
        const char *k, *v;
        assert_int_equal(ssm_weights_meta_at(w, i, &k, &v), SSM_OK);
        assert_string_equal(ssm_weights_meta(w, k), v);
        seen += strcmp(k, "frontend.hop") == 0 && strcmp(v, "4") == 0;
    }
    assert_int_equal(seen, 1);
    assert_int_equal(ssm_weights_meta_at(w, n, NULL, NULL), SSM_ERR_INVALID);
    assert_int_equal(ssm_weights_meta_at(w, -1, NULL, NULL), SSM_ERR_INVALID);
    ssm_weights_free(w);
}

/* A banded mask head: head.mask.interp {n_mask, B} (n_mask inferred from its rows),
 * head.mask.weight {B, d_model}, and the interpolation's nonzero entries by row. */
static void test_banded_mask_head(void **state)
{
    (void)state;
    ssm_weights *w = load_ok("feat_banded.safetensors");
    const ssm_config *c = &w->cfg;
    assert_int_equal(c->n_mask, 5);
    assert_int_equal(c->n_mask_bands, 2);
    assert_non_null(w->mask_interp);
    static const int want_row[] = {0, 1, 3, 5, 6, 6}, want_col[] = {0, 0, 1, 0, 1, 1};
    static const float want_val[] = {1.0f, 0.75f, 0.25f, 0.5f, 0.5f, 1.0f};
    for (int k = 0; k <= 5; k++)
        assert_int_equal(w->mask_interp_row[k], want_row[k]);
    for (int e = 0; e < 6; e++) {
        assert_int_equal(w->mask_interp_col[e], want_col[e]);
        assert_true(w->mask_interp_val[e] == want_val[e]);
    }
    ssm_weights_free(w);
    /* a per-output head has none */
    w = load_ok("feat.safetensors");
    assert_int_equal(w->cfg.n_mask_bands, 0);
    assert_null(w->mask_interp);
    assert_null(w->mask_interp_row);
    ssm_weights_free(w);
}

static void test_hash_is_fnv1a_of_file(void **state)
{
    (void)state;
    size_t n;
    unsigned char *txt = read_all(path_of("tok_f32.fnv1a64"), &n);
    txt[n] = '\0';
    unsigned long long want = strtoull((char *)txt, NULL, 16);
    ssm_weights *w = load_ok("tok_f32.safetensors");
    printf("# hash %016llx (python: %016llx)\n", (unsigned long long)w->hash, want);
    assert_true(w->hash == want);
    assert_string_equal(w->path, path_of("tok_f32.safetensors"));
    ssm_weights_free(w);
    free(txt);
}

static void test_null_arguments(void **state)
{
    (void)state;
    ssm_weights *w = (ssm_weights *)(uintptr_t)1;
    ssm_error err = {0};
    assert_int_equal(ssm_weights_load(NULL, &w, &err), SSM_ERR_INVALID);
    assert_null(w);
    assert_int_equal(ssm_weights_load("x", NULL, NULL), SSM_ERR_INVALID);
    ssm_weights_free(NULL);
    assert_null(ssm_weights_meta(NULL, "d_model"));
    assert_int_equal(ssm_weights_meta_count(NULL), 0);
    /* err may be NULL on failure too */
    assert_int_equal(ssm_weights_load(path_of("empty.safetensors"), &w, NULL), SSM_ERR_FORMAT);
}

/* Every prefix of a valid file, and every header byte replaced by a few
 * values, must load or fail with a message — never crash or leak. */
static void test_sweeps_fail_cleanly(void **state)
{
    (void)state;
    size_t n;
    unsigned char *raw = read_all(path_of("tok_f16.safetensors"), &n);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    size_t fails = 0, oks = 0;
    for (size_t len = 0; len < n; len++) {
        ssm_weights *w = NULL;
        ssm_error err = {0};
        memcpy(buf, raw, len);
        int rc = ssm_weights_load_buffer(buf, len, "prefix", &w, &err);
        assert_int_not_equal(rc, SSM_OK);
        assert_null(w);
        assert_true(strncmp(err.msg, "prefix: ", 8) == 0);
        fails++;
    }
    size_t hdr = 8 + (size_t)(raw[0] | raw[1] << 8 | raw[2] << 16);
    static const unsigned char subst[] = {0, '"', '}', '9', '-', 0xff, ' '};
    for (size_t i = 0; i < hdr; i++) {
        for (size_t s = 0; s < sizeof subst; s++) {
            ssm_weights *w = NULL;
            ssm_error err = {0};
            memcpy(buf, raw, n);
            buf[i] = subst[s];
            int rc = ssm_weights_load_buffer(buf, n, "flip", &w, &err);
            if (rc == SSM_OK) {
                oks++;
                ssm_weights_free(w);
            } else {
                assert_null(w);
                assert_true(strchr(err.msg, '\n') == NULL);
                fails++;
            }
        }
    }
    printf("# sweeps: %zu clean failures, %zu harmless edits loaded\n", fails, oks);
    free(buf);
    free(raw);
}

/* ---- malformed files --------------------------------------------------- */

typedef struct bad_case {
    const char *file;     /* in g_dir, or an absolute path when starting with '/' */
    int status;
    const char *fragment;
} bad_case;

static const bad_case bad_cases[] = {
    {"nonexistent.safetensors", SSM_ERR_IO, "cannot open: No such file or directory"},
    {".", SSM_ERR_IO, "is a directory, not a regular file"},
    {"/dev/null", SSM_ERR_IO, "is a special file, not a regular file"},
    {"empty.safetensors", SSM_ERR_FORMAT, "file is 0 bytes, too short"},
    {"short.safetensors", SSM_ERR_FORMAT, "file is 3 bytes, too short"},
    {"trunc_data.safetensors", SSM_ERR_FORMAT, "reach past the end of the data section"},
    {"hdr_gt_file.safetensors", SSM_ERR_FORMAT, "bytes that follow it (truncated file?)"},
    {"hdr_2p63.safetensors", SSM_ERR_FORMAT, "header length 9223372036854775808 exceeds the limit"},
    {"hdr_200mb.safetensors", SSM_ERR_FORMAT, "header length 200000000 exceeds the limit of 100000000"},
    {"not_json.safetensors", SSM_ERR_FORMAT, "header is not valid JSON"},
    {"json_newline.safetensors", SSM_ERR_FORMAT, "header is not valid JSON: invalid escape near '\"s\\?'"},
    {"root_array.safetensors", SSM_ERR_FORMAT, "header JSON is an array, expected an object"},
    {"trailing_junk.safetensors", SSM_ERR_FORMAT, "end of file expected"},
    {"dup_key.safetensors", SSM_ERR_FORMAT, "duplicate object key"},
    {"neg_offset.safetensors", SSM_ERR_FORMAT, "tensor t: data_offsets must be non-negative integers"},
    {"float_offset.safetensors", SSM_ERR_FORMAT, "tensor t: data_offsets must be non-negative integers"},
    {"float_shape.safetensors", SSM_ERR_FORMAT, "tensor t: shape[0] is not a non-negative integer"},
    {"neg_shape.safetensors", SSM_ERR_FORMAT, "tensor t: shape[0] is not a non-negative integer"},
    {"overlap.safetensors", SSM_ERR_FORMAT, "tensor b: data_offsets [8, 24] overlap tensor a"},
    {"gap.safetensors", SSM_ERR_FORMAT, "tensor b: gap of 4 bytes before it"},
    {"not_at_zero.safetensors", SSM_ERR_FORMAT, "tensor a: gap of 4 bytes before it (begins at 4"},
    {"out_of_file.safetensors", SSM_ERR_FORMAT, "tensor a: data_offsets [0, 16] reach past the end"},
    {"trailing_data.safetensors", SSM_ERR_FORMAT, "4 unused bytes after the last tensor"},
    {"end_before_begin.safetensors", SSM_ERR_FORMAT, "data_offsets [16, 0] end before begin"},
    {"dtype_f64.safetensors", SSM_ERR_FORMAT, "tensor a: unsupported dtype F64"},
    {"dtype_i8.safetensors", SSM_ERR_FORMAT, "tensor a: unsupported dtype I8"},
    {"size_mismatch.safetensors", SSM_ERR_FORMAT, "shape [3] of F32 needs 12 bytes but data_offsets [0, 16] hold 16"},
    {"shape_overflow.safetensors", SSM_ERR_FORMAT, "element count overflows 64 bits"},
    {"missing_field.safetensors", SSM_ERR_FORMAT, "tensor a: missing field \"dtype\""},
    {"extra_field.safetensors", SSM_ERR_FORMAT, "tensor a: unexpected field \"extra\""},
    {"entry_not_object.safetensors", SSM_ERR_FORMAT, "tensor a: entry is an array"},
    {"too_many_dims.safetensors", SSM_ERR_FORMAT, "shape has 10 dimensions (at most 8)"},
    {"meta_not_string.safetensors", SSM_ERR_FORMAT, "__metadata__ key \"d_model\" is an integer, expected a string"},
    {"meta_not_object.safetensors", SSM_ERR_FORMAT, "__metadata__ is a string, expected an object"},
    {"ctrl_name.safetensors", SSM_ERR_FORMAT, "tensor \"a?b\": name is empty, longer than 512 bytes or holds control characters"},
    {"wrong_shape.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.in_proj.weight: shape [32, 9], expected [32, 8]"},
    {"wrong_ndim.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.conv1d.weight: shape [16, 3], expected [16, 1, 3]"},
    {"missing_tensor.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.1.mixer.D: missing (required, shape [16])"},
    {"nan_a_log.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.A_log: non-finite value nan at flat index 5"},
    {"inf_d.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.1.mixer.D: non-finite value inf at flat index 3"},
    {"inf_d_f16.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.1.mixer.D: non-finite value inf at flat index 3"},
    {"a_overflow.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.A_log: value 100 at flat index 2 makes A = -exp(A_log) overflow"},
    {"unknown_tensor.safetensors", SSM_ERR_MODEL, "tensor extra.weight: unknown tensor"},
    {"interp_ndim.safetensors", SSM_ERR_MODEL, "tensor head.mask.interp: shape [5], expected [n_mask (5), n_bands] with n_bands in [1, 1048576]"},
    {"interp_weight_rows.safetensors", SSM_ERR_MODEL, "tensor head.mask.weight: shape [5, 8], expected [2, 8]"},
    {"interp_rows.safetensors", SSM_ERR_MODEL, "tensor head.mask.interp: shape [4, 2], expected [5, 2]"},
    {"interp_inf.safetensors", SSM_ERR_MODEL, "tensor head.mask.interp: non-finite value inf at flat index 5"},
    {"alias_twice.safetensors", SSM_ERR_MODEL, "tensor backbone.embedding.weight: present twice, also as its HuggingFace alias backbone.embeddings.weight"},
    {"conv_bias_false_present.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.conv1d.bias: present but __metadata__ says conv_bias=false"},
    {"proj_bias_missing.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.in_proj.bias: missing"},
    {"meta_inconsistent.safetensors", SSM_ERR_MODEL, "tensor backbone.embedding.weight: shape [11, 8], expected [11, 16]"},
    {"meta_d_state_wrong.safetensors", SSM_ERR_MODEL, "tensor backbone.layers.0.mixer.x_proj.weight: shape [9, 16], expected [17, 16]"},
    {"missing_d_state.safetensors", SSM_ERR_MODEL, "__metadata__ key d_state is missing"},
    {"missing_format.safetensors", SSM_ERR_MODEL, "__metadata__ key ssmd.format is missing"},
    {"bad_format.safetensors", SSM_ERR_MODEL, "__metadata__ ssmd.format: \"2\" is not one of: 1"},
    {"bad_arch.safetensors", SSM_ERR_MODEL, "__metadata__ architecture: \"mamba3\" is not one of: mamba1, mamba2"},
    {"int_junk.safetensors", SSM_ERR_MODEL, "__metadata__ d_model: \"64x\" is not a decimal integer"},
    {"int_neg.safetensors", SSM_ERR_MODEL, "__metadata__ d_model: \"-3\" is not a decimal integer"},
    {"int_big.safetensors", SSM_ERR_MODEL, "__metadata__ d_model: \"99999999999\" is not a decimal integer"},
    {"int_plus.safetensors", SSM_ERR_MODEL, "__metadata__ n_layer: \"+2\" is not a decimal integer"},
    {"int_empty.safetensors", SSM_ERR_MODEL, "__metadata__ d_conv: \"\" is not a decimal integer"},
    {"dt_rank_bad.safetensors", SSM_ERR_MODEL, "__metadata__ dt_rank: \"automatic\""},
    {"eps_bad.safetensors", SSM_ERR_MODEL, "__metadata__ norm_eps: \"abc\" is not a finite number"},
    {"eps_nan.safetensors", SSM_ERR_MODEL, "__metadata__ norm_eps: \"nan\" is not a finite number"},
    {"delta_pos.safetensors", SSM_ERR_MODEL, "__metadata__ delta_A_min: \"3\" is not a finite number"},
    {"heads_dup.safetensors", SSM_ERR_MODEL, "__metadata__ heads: \"lm,lm\""},
    {"heads_empty_item.safetensors", SSM_ERR_MODEL, "__metadata__ heads: \"lm,\""},
    {"heads_unknown.safetensors", SSM_ERR_MODEL, "__metadata__ heads: \"lm,pitch\""},
    {"norm_layer.safetensors", SSM_ERR_MODEL, "__metadata__ norm: \"layernorm\" is not one of: rmsnorm"},
    {"input_bad.safetensors", SSM_ERR_MODEL, "__metadata__ input: \"audio\" is not one of: tokens, features"},
    {"frontend_bad_int.safetensors", SSM_ERR_MODEL, "__metadata__ frontend.n_fft: \"512.0\" is not a decimal integer"},
    {"frontend_bad_float.safetensors", SSM_ERR_MODEL, "__metadata__ frontend.log_floor: \"1e-10dB\" is not a finite number"},
    {"vocab_missing.safetensors", SSM_ERR_MODEL, "__metadata__ key vocab_size is missing"},
    {"embedding_missing.safetensors", SSM_ERR_MODEL, "tensor backbone.embedding.weight: missing (required, shape [11, 8])"},
};

static void test_bad_file(void **state)
{
    const bad_case *c = *state;
    const char *path = c->file[0] == '/' ? c->file
                     : strcmp(c->file, ".") == 0 ? g_dir : path_of(c->file);
    ssm_weights *w = (ssm_weights *)(uintptr_t)1;
    ssm_error err = {0};
    int rc = ssm_weights_load(path, &w, &err);
    printf("# %s\n", err.msg);
    assert_int_equal(rc, c->status);
    assert_int_equal(err.status, c->status);
    assert_null(w);
    size_t pl = strlen(path);
    assert_true(strncmp(err.msg, path, pl) == 0 && strncmp(err.msg + pl, ": ", 2) == 0);
    assert_true(strchr(err.msg, '\n') == NULL);
    if (!strstr(err.msg, c->fragment))
        print_error("message lacks \"%s\"\n", c->fragment);
    assert_non_null(strstr(err.msg, c->fragment));
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_dir = argv[1];
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_f32_values),
        cmocka_unit_test(test_f16_matches_numpy),
        cmocka_unit_test(test_bf16_matches_numpy),
        cmocka_unit_test(test_f16_all_bit_patterns),
        cmocka_unit_test(test_unaligned_f32_is_copied),
        cmocka_unit_test(test_tied_and_untied),
        cmocka_unit_test(test_hf_names),
        cmocka_unit_test(test_features_heads_meta),
        cmocka_unit_test(test_banded_mask_head),
        cmocka_unit_test(test_hash_is_fnv1a_of_file),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_sweeps_fail_cleanly),
    };
    enum { N_FIXED = sizeof fixed / sizeof fixed[0],
           N_BAD = sizeof bad_cases / sizeof bad_cases[0] };
    static struct CMUnitTest tests[N_FIXED + N_BAD];
    static char names[N_BAD][96];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_BAD; i++) {
        snprintf(names[i], sizeof names[i], "bad:%s", bad_cases[i].file);
        tests[N_FIXED + i] = (struct CMUnitTest){names[i], test_bad_file, NULL, NULL,
                                                 (void *)&bad_cases[i]};
    }
    return _cmocka_run_group_tests("loader", tests, N_FIXED + N_BAD, NULL, NULL);
}
