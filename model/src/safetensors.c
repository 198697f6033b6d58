/* SPDX-License-Identifier: MIT */
/* safetensors container parser.  Design note: the whole file is one
 * untrusted byte string, so every size is a uint64 checked before use, the
 * JSON goes through jansson with duplicate keys refused, and the layout check
 * (sort by begin, walk from 0 to the exact end) makes "no gap, no overlap,
 * nothing outside" one loop instead of pairwise comparisons. */
#include "safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ssmd reads little-endian tensors in place; add byte swapping for this host"
#endif

size_t ssm_st_dtype_size(ssm_st_dtype dt)
{
    return dt == SSM_ST_F32 ? 4 : 2;
}

const char *ssm_st_dtype_name(ssm_st_dtype dt)
{
    switch (dt) {
    case SSM_ST_F32:  return "F32";
    case SSM_ST_F16:  return "F16";
    case SSM_ST_BF16: return "BF16";
    }
    return "?";
}

uint64_t ssm_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Printable copy of an untrusted string for an error line: control bytes
 * become '?', long strings are cut with "...". */
static const char *printable(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

static int valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return n > 0 && n <= SSM_ST_MAX_NAME_BYTES;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "?";
}

/* A JSON integer ≥ 0 (jansson refuses integers beyond int64 while parsing). */
static int get_u64(const json_t *j, uint64_t *out)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(j);
    return 1;
}

void ssm_st_release(ssm_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    memset(f, 0, sizeof *f);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const ssm_st_tensor *)a)->name, ((const ssm_st_tensor *)b)->name);
}

static int cmp_offsets(const void *pa, const void *pb)
{
    const ssm_st_tensor *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

ssm_st_tensor *ssm_st_find(const ssm_st_file *f, const char *name)
{
    ssm_st_tensor key;
    key.name = (char *)name;
    if (!f->n_tensors)
        return NULL;
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_name);
}

const char *ssm_st_meta(const ssm_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

static int parse_metadata(ssm_st_file *f, const json_t *meta, const char *label,
                          ssm_error *err)
{
    char pk[96];
    const char *key;
    json_t *val;

    if (!json_is_object(meta))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: __metadata__ is %s, expected an object "
                             "of strings", label, json_kind(meta));
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory reading __metadata__", label);
    json_object_foreach((json_t *)meta, key, val) {
        if (!json_is_string(val))
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: __metadata__ key \"%s\" is %s, "
                                 "expected a string", label, printable(pk, sizeof pk, key),
                                 json_kind(val));
        if (!valid_name(key))
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: __metadata__ key \"%s\" is empty, "
                                 "longer than %d bytes or holds control characters", label,
                                 printable(pk, sizeof pk, key), SSM_ST_MAX_NAME_BYTES);
        f->meta_keys[f->n_meta] = strdup(key);
        f->meta_values[f->n_meta] = strdup(json_string_value(val));
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1])
            return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory reading __metadata__",
                                 label);
    }
    return SSM_OK;
}

static void format_shape(char *dst, size_t cap, const ssm_st_tensor *t)
{
    size_t o = 0;
    o += (size_t)snprintf(dst, cap, "[");
    for (int d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(dst + o, cap - o, d ? ", %llu" : "%llu",
                              (unsigned long long)t->shape[d]);
    if (o < cap)
        snprintf(dst + o, cap - o, "]");
}

/* One tensor entry {"dtype":..., "shape":[...], "data_offsets":[b, e]}. */
static int parse_tensor(ssm_st_tensor *t, const char *name, const json_t *v,
                        uint64_t data_bytes, const char *label, ssm_error *err)
{
    char pn[96], ps[96];
    const char *field;
    json_t *fv;

    if (!valid_name(name))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor \"%s\": name is empty, longer "
                             "than %d bytes or holds control characters", label,
                             printable(pn, sizeof pn, name), SSM_ST_MAX_NAME_BYTES);
    if (!json_is_object(v))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: entry is %s, expected an "
                             "object with dtype, shape, data_offsets", label, name, json_kind(v));
    json_object_foreach((json_t *)v, field, fv) {
        if (strcmp(field, "dtype") && strcmp(field, "shape") && strcmp(field, "data_offsets"))
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: unexpected field \"%s\" "
                                 "(only dtype, shape, data_offsets)", label, name,
                                 printable(pn, sizeof pn, field));
    }
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    const char *missing = !jd ? "dtype" : !js ? "shape" : !jo ? "data_offsets" : NULL;
    if (missing)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: missing field \"%s\"",
                             label, name, missing);

    if (!json_is_string(jd))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: dtype is %s, expected a "
                             "string", label, name, json_kind(jd));
    const char *ds = json_string_value(jd);
    if (strcmp(ds, "F32") == 0)
        t->dtype = SSM_ST_F32;
    else if (strcmp(ds, "F16") == 0)
        t->dtype = SSM_ST_F16;
    else if (strcmp(ds, "BF16") == 0)
        t->dtype = SSM_ST_BF16;
    else
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: unsupported dtype %s "
                             "(ssmd reads F32, F16 and BF16)", label, name,
                             printable(ps, sizeof ps, ds));

    if (!json_is_array(js))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: shape is %s, expected an "
                             "array of integers", label, name, json_kind(js));
    size_t nd = json_array_size(js);
    if (nd > SSM_ST_MAX_DIMS)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: shape has %zu dimensions "
                             "(at most %d)", label, name, nd, SSM_ST_MAX_DIMS);
    t->n_dims = (int)nd;
    t->n_elems = 1;
    for (size_t d = 0; d < nd; d++) {
        if (!get_u64(json_array_get(js, d), &t->shape[d]))
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: shape[%zu] is not a "
                                 "non-negative integer", label, name, d);
        if (!mul_u64(t->n_elems, t->shape[d], &t->n_elems))
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: shape element count "
                                 "overflows 64 bits", label, name);
    }

    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: data_offsets must be an "
                             "array [begin, end]", label, name);
    if (!get_u64(json_array_get(jo, 0), &t->begin) || !get_u64(json_array_get(jo, 1), &t->end))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: data_offsets must be "
                             "non-negative integers", label, name);
    if (t->end < t->begin)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] "
                             "end before begin", label, name, (unsigned long long)t->begin,
                             (unsigned long long)t->end);
    uint64_t nbytes;
    if (!mul_u64(t->n_elems, ssm_st_dtype_size(t->dtype), &nbytes))
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: byte size overflows 64 bits",
                             label, name);
    if (nbytes != t->end - t->begin) {
        format_shape(ps, sizeof ps, t);
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: shape %s of %s needs %llu "
                             "bytes but data_offsets [%llu, %llu] hold %llu", label, name, ps,
                             ds, (unsigned long long)nbytes, (unsigned long long)t->begin,
                             (unsigned long long)t->end,
                             (unsigned long long)(t->end - t->begin));
    }
    if (t->end > data_bytes)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] "
                             "reach past the end of the data section (%llu bytes; truncated "
                             "file?)", label, name, (unsigned long long)t->begin,
                             (unsigned long long)t->end, (unsigned long long)data_bytes);
    t->name = strdup(name);
    if (!t->name)
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", label);
    return SSM_OK;
}

/* Tensors sorted by begin must tile [0, data_bytes) exactly. */
static int check_layout(ssm_st_file *f, const char *label, ssm_error *err)
{
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_offsets);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const ssm_st_tensor *t = &f->tensors[i];
        if (t->begin < at)
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] "
                                 "overlap tensor %s, which ends at %llu", label, t->name,
                                 (unsigned long long)t->begin, (unsigned long long)t->end,
                                 f->tensors[i - 1].name, (unsigned long long)at);
        if (t->begin > at)
            return ssm_error_set(err, SSM_ERR_FORMAT, "%s: tensor %s: gap of %llu bytes before "
                                 "it (begins at %llu, previous data ends at %llu)", label,
                                 t->name, (unsigned long long)(t->begin - at),
                                 (unsigned long long)t->begin, (unsigned long long)at);
        at = t->end;
    }
    if (at != f->data_bytes)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: %llu unused bytes after the last tensor "
                             "(data section is %llu bytes, tensors end at %llu)", label,
                             (unsigned long long)(f->data_bytes - at),
                             (unsigned long long)f->data_bytes, (unsigned long long)at);
    return SSM_OK;
}

int ssm_st_parse(ssm_st_file *f, const void *buf, size_t size, const char *label,
                 ssm_error *err)
{
    const unsigned char *b = buf;
    memset(f, 0, sizeof *f);
    if (size < 8)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: file is %zu bytes, too short for the "
                             "8-byte header length", label, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    if (n > SSM_ST_MAX_HEADER_BYTES)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: not a safetensors model file (header length %llu "
                             "exceeds the limit of %llu bytes)", label, (unsigned long long)n,
                             SSM_ST_MAX_HEADER_BYTES);
    if (n > (uint64_t)size - 8)
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: header length %llu exceeds the %llu "
                             "bytes that follow it (truncated file?)", label,
                             (unsigned long long)n, (unsigned long long)(size - 8));
    f->header_bytes = n;
    f->data = b + 8 + n;
    f->data_bytes = (uint64_t)size - 8 - n;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)b + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) { /* jansson's text quotes the header near the error: its control bytes too */
        char why[JSON_ERROR_TEXT_LENGTH];
        return ssm_error_set(err, SSM_ERR_FORMAT, "%s: header is not valid JSON: %s (byte %d)",
                             label, printable(why, sizeof why, jerr.text), jerr.position);
    }
    int rc = SSM_OK;
    if (!json_is_object(root)) {
        rc = ssm_error_set(err, SSM_ERR_FORMAT, "%s: header JSON is %s, expected an object",
                           label, json_kind(root));
        goto done;
    }
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory for %zu tensors", label, cap);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_metadata(f, val, label, err);
        } else {
            rc = parse_tensor(&f->tensors[f->n_tensors], key, val, f->data_bytes, label, err);
            if (rc == SSM_OK)
                f->n_tensors++;
        }
        if (rc != SSM_OK)
            goto done;
    }
    rc = check_layout(f, label, err);
    if (rc != SSM_OK)
        goto done;
    for (size_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].data = f->data + f->tensors[i].begin;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name);
done:
    json_decref(root);
    if (rc != SSM_OK)
        ssm_st_release(f);
    return rc;
}
