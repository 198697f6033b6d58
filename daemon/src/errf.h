/* SPDX-License-Identifier: MIT */
/* One-line error messages into a caller's buffer, for the daemon's modules
 * (options, front-end, generation).  Internal. */
#ifndef SSMD_ERRF_H
#define SSMD_ERRF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/** printf into err (cap bytes; nothing when err is NULL or cap 0); returns -1
 *  so that callers can `return ssmd_errf(err, cap, ...)`. */
static inline int ssmd_errf(char *err, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline int ssmd_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#endif /* SSMD_ERRF_H */
