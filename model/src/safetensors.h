/* SPDX-License-Identifier: MIT */
/* Internal: safetensors container parser (docs/model-format.md §1).
 *
 * Parses an in-memory image of a whole safetensors file: 8-byte little-endian
 * header length N, N bytes of JSON, then the data section.  Everything is
 * validated before anything is returned: header size (≤ 100 MB and inside the
 * buffer), strict JSON (jansson, duplicate keys refused), every tensor entry
 * (known dtype F32/F16/BF16, integer shape and offsets, shape product × dtype
 * size == end − begin, all in uint64 with overflow checks) and the layout of
 * the data section (tensors contiguous in begin order from 0 to its exact
 * end: no gap, no overlap).  `__metadata__` must map strings to strings.
 *
 * The parser never reads outside [buf, buf + size) and never writes to it; the
 * tensor data pointers it returns alias buf.  Not thread-safe per ssm_st_file;
 * distinct files may be parsed concurrently.
 */
#ifndef SSM_SAFETENSORS_H
#define SSM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ssm/status.h"
#include "weights.h"

/** The reference implementation's bound on the JSON header (bytes). */
#define SSM_ST_MAX_HEADER_BYTES 100000000ull
/** Most dimensions a tensor may have (ours have at most 3). */
#define SSM_ST_MAX_DIMS 8
/** Longest tensor name or metadata key accepted (bytes). */
#define SSM_ST_MAX_NAME_BYTES 512

typedef enum ssm_st_dtype {
    SSM_ST_F32  = 0,
    SSM_ST_F16  = 1,
    SSM_ST_BF16 = 2,
} ssm_st_dtype;

typedef struct ssm_st_tensor {
    char *name;                     /* owned, NUL-terminated, no control bytes */
    ssm_st_dtype dtype;
    int n_dims;                     /* 0 (scalar) .. SSM_ST_MAX_DIMS */
    uint64_t shape[SSM_ST_MAX_DIMS];
    uint64_t n_elems;               /* product of shape (1 for a scalar) */
    uint64_t begin, end;            /* byte offsets inside the data section */
    const unsigned char *data;      /* = data section + begin; aliases the buffer */
    int used;                       /* free for the caller (weights.c marks tensors it consumed) */
} ssm_st_tensor;

typedef struct ssm_st_file {
    ssm_st_tensor *tensors;         /* sorted by name (ssm_st_find bisects) */
    size_t n_tensors;
    char **meta_keys;               /* __metadata__, in file order; owned */
    char **meta_values;
    size_t n_meta;
    uint64_t header_bytes;          /* N */
    const unsigned char *data;      /* buf + 8 + N */
    uint64_t data_bytes;            /* size − 8 − N */
} ssm_st_file;

/** Parses buf[0, size).  label (the path) starts every error line.  On
 *  success fills *f (release with ssm_st_release) and returns SSM_OK; on
 *  failure returns SSM_ERR_FORMAT (malformed) or SSM_ERR_NOMEM, leaves *f
 *  empty and sets err to "LABEL: reason" or "LABEL: tensor NAME: reason". */
int ssm_st_parse(ssm_st_file *f, const void *buf, size_t size, const char *label,
                 ssm_error *err);

/** Frees what ssm_st_parse allocated and zeroes *f; safe on a zeroed file. */
void ssm_st_release(ssm_st_file *f);

/** Tensor called name, or NULL.  O(log n). */
ssm_st_tensor *ssm_st_find(const ssm_st_file *f, const char *name);

/** Value of a __metadata__ key, or NULL.  O(n). */
const char *ssm_st_meta(const ssm_st_file *f, const char *key);

/** Bytes per element (4 or 2) and the safetensors spelling ("F32"...). */
size_t ssm_st_dtype_size(ssm_st_dtype dt);
const char *ssm_st_dtype_name(ssm_st_dtype dt);

/** Weights layer from an in-memory file image (what ssm_weights_load does
 *  after mmap): the fuzz target and the tests call it directly.  Aligned F32
 *  tensors alias buf, so buf must outlive *out; hash covers buf.  Same
 *  contract as ssm_weights_load otherwise (label replaces the path). */
int ssm_weights_load_buffer(const void *buf, size_t size, const char *label,
                            ssm_weights **out, ssm_error *err);

/** 64-bit FNV-1a of n bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t ssm_fnv1a64(const void *p, size_t n);

#endif /* SSM_SAFETENSORS_H */
