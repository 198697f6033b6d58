/* SPDX-License-Identifier: MIT */
/* One-line error messages into a caller's buffer, for the daemon's modules
 * (options, front-end, generation).  Internal. */
#ifndef SSMD_ERRF_H
#define SSMD_ERRF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

/** A client's bytes echoed in an error message (src, len bytes): printable
 *  ASCII as is, every other byte (control, non-ASCII: a name cut inside a
 *  UTF-8 character) as '?', so a reply can never carry invalid UTF-8 or a
 *  line break; cut to fit cap (with "..." at the end when it was cut). */
static inline void ssmd_errf_echo(char *dst, size_t cap, const void *src, size_t len)
{
    const unsigned char *p = src;
    size_t n = 0;
    if (cap == 0) return;
    for (size_t i = 0; p && i < len && n + 1 < cap; i++) dst[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    if (p && n < len && cap >= 4) { /* cut: it ends with "..." */
        n = n > cap - 4 ? cap - 4 : n;
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

#endif /* SSMD_ERRF_H */
