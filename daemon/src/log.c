/* SPDX-License-Identifier: MIT */
/* The daemon's levelled log (log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* atomic: the cluster thread (cluster.c) logs too, while SIGHUP may change it */
static atomic_int log_level = SSMD_LOG_ERROR;

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
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* one write per line: lines of two threads never interleave */
    fprintf(stderr, "ssmd: %s\n", ssmd_log_safe(line));
}

char *ssmd_log_safe(char *s)
{
    for (char *p = s; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7f) *p = '?';
    return s;
}
