/* SPDX-License-Identifier: MIT */
/* The daemon's levelled log (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int log_level = SSMD_LOG_ERROR;

void ssmd_log_set_level(int level)
{
    log_level = level;
}

void ssmd_log_set_level_name(const char *name)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, levels[i]) == 0) log_level = i;
}

void ssmd_log(int level, const char *fmt, ...)
{
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("ssmd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
