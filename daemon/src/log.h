/* SPDX-License-Identifier: MIT */
/* The daemon's levelled log: one line on stderr, "ssmd: " first.  The level
 * is process-wide (the option log_level, re-read at SIGHUP).  Not for the
 * PortAudio callback (it formats and writes); fine on the loop and main
 * threads.  Internal to daemon/src/. */
#ifndef SSMD_LOG_H
#define SSMD_LOG_H

enum { SSMD_LOG_ERROR, SSMD_LOG_WARN, SSMD_LOG_INFO, SSMD_LOG_DEBUG };

/** Sets the level from its name ("error", "warn", "info", "debug"); an
 *  unknown name leaves the level as it was. */
void ssmd_log_set_level_name(const char *name);
/** Sets the level (SSMD_LOG_*). */
void ssmd_log_set_level(int level);

/** Writes "ssmd: <message>\n" on stderr when level is at or below the set
 *  level, its control bytes as '?' (ssmd_log_safe). */
void ssmd_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** Replaces control bytes (below 0x20 but line breaks, and 0x7f) in the
 *  NUL-terminated s by '?', in place, and returns s: messages quote paths,
 *  config values and arguments, whose terminal escapes must not reach a
 *  terminal.  Bytes from 0x80 on are kept (UTF-8 names). */
char *ssmd_log_safe(char *s);

#endif /* SSMD_LOG_H */
