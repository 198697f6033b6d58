/* SPDX-License-Identifier: MIT */
/* ssm — status codes and error record shared by model/ (and kernels/ callers). */
#ifndef SSM_STATUS_H
#define SSM_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes of every model/ function: 0 on success, negative on failure. */
typedef enum ssm_status {
    SSM_OK            = 0,
    SSM_ERR_INVALID   = -1, /**< argument out of range (batch too large, bad token...) */
    SSM_ERR_NOMEM     = -2, /**< allocation failed or a size computation overflowed */
    SSM_ERR_IO        = -3, /**< the file could not be opened, mapped or read */
    SSM_ERR_FORMAT    = -4, /**< the model file is malformed (container, JSON, offsets) */
    SSM_ERR_MODEL     = -5, /**< well-formed file but not a valid model (tensor missing,
                                 wrong shape, inconsistent metadata, non-finite values) */
    SSM_ERR_MISMATCH  = -6, /**< a snapshot belongs to another model or version */
    SSM_ERR_NONFINITE = -7, /**< a stream's state became non-finite and was reset */
    SSM_ERR_BACKEND   = -8, /**< the requested compute backend is unavailable */
} ssm_status;

/** Static English text for an ssm_status; never NULL.  Thread-safe. */
const char *ssm_strerror(int status);

/** Optional error record for calls whose failure a user must read.  msg is one
 *  line naming what was wrong, e.g.
 *  "m.safetensors: tensor backbone.layers.0.mixer.A_log: shape [64, 8], expected [128, 16]".
 *  Untouched on success; callers may pass NULL. */
typedef struct ssm_error {
    int  status;
    char msg[512];
} ssm_error;

/** Fills err (if not NULL) and returns status.  Thread-safe (touches *err only). */
int ssm_error_set(ssm_error *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* SSM_STATUS_H */
