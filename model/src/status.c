/* SPDX-License-Identifier: MIT */
#include "ssm/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *ssm_strerror(int status)
{
    switch (status) {
    case SSM_OK:            return "success";
    case SSM_ERR_INVALID:   return "invalid argument";
    case SSM_ERR_NOMEM:     return "out of memory or size overflow";
    case SSM_ERR_IO:        return "input/output error";
    case SSM_ERR_FORMAT:    return "malformed model file";
    case SSM_ERR_MODEL:     return "invalid model";
    case SSM_ERR_MISMATCH:  return "snapshot does not match this model";
    case SSM_ERR_NONFINITE: return "state became non-finite and was reset";
    case SSM_ERR_BACKEND:   return "compute backend unavailable";
    default:                return "unknown status";
    }
}

int ssm_error_set(ssm_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}
