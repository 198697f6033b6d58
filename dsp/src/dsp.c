/* SPDX-License-Identifier: MIT */
#include "dsp/dsp.h"

#include <stdarg.h>
#include <stdio.h>

const char *dsp_strerror(int status)
{
    switch (status) {
    case DSP_OK:              return "success";
    case DSP_ERR_INVALID:     return "invalid argument";
    case DSP_ERR_NOMEM:       return "out of memory or size overflow";
    case DSP_ERR_IO:          return "input/output error";
    case DSP_ERR_FORMAT:      return "unrecognised or corrupt data";
    case DSP_ERR_UNSUPPORTED: return "not supported";
    case DSP_ERR_LIBRARY:     return "library error";
    default:                  return "unknown status";
    }
}

int dsp_error_set(dsp_error *err, int status, const char *fmt, ...)
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

static void log_stderr(dsp_log_level level, const char *msg, void *user)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    (void)user;
    if (level <= DSP_LOG_WARN)
        fprintf(stderr, "dsp: %s: %s\n", names[level], msg);
}

static dsp_log_fn log_fn = log_stderr;
static void *log_user;

void dsp_log_set(dsp_log_fn fn, void *user)
{
    log_fn = fn ? fn : log_stderr;
    log_user = fn ? user : NULL;
}

void dsp_log(dsp_log_level level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}
