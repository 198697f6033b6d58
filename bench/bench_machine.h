/* SPDX-License-Identifier: MIT */
/* The machine a benchmark line was measured on, appended to every JSON line
 * the C benchmarks print, so that no figure travels without it: the CPU model
 * (/proc/cpuinfo "model name") and its identity (vendor, family, model,
 * stepping: a VM may name an AMD Zen 3 and a Zen 5 both "AMD EPYC"), the ISA the kernels chose at start-up
 * (ssm_isa_best), the data cache sizes the kernels block for
 * (ssm_cpu_caches_get) and the load average when the line was printed
 * (/proc/loadavg: other work on a shared machine lowers every figure).
 *
 * ssm_bench_line(fmt, ...) formats one JSON object with printf's format
 * (fmt must produce a complete object "{...}", optionally followed by "\n")
 * and prints it with the fields "cpu", "cpu_id", "isa_best", "l1d_bytes", "l2_bytes",
 * "l3_bytes" and "loadavg" added before the closing brace.  Not thread-safe
 * (call it from the thread that prints); lines longer than 4 KiB are
 * printed as they are, without the fields.  Header-only: each benchmark is
 * one executable. */
#ifndef SSM_BENCH_MACHINE_H
#define SSM_BENCH_MACHINE_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/ssm_kernels.h"

/* The value of field `key` (matched whole: "model" is not "model name") in
 * /proc/cpuinfo's first processor block, made safe for a JSON string (the
 * values hold no quotes or backslashes, but never let one break the line);
 * 0 and an empty buf where there is no such field. */
static int ssm_bench_cpuinfo(const char *key, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f) && line[0] != '\n') {
        char *p = strchr(line, ':');
        if (!p)
            continue;
        char *e = p;
        while (e > line && (e[-1] == ' ' || e[-1] == '\t'))
            --e;
        if ((size_t)(e - line) != strlen(key) || strncmp(line, key, (size_t)(e - line)) != 0)
            continue;
        p += 1 + (p[1] == ' ');
        p[strcspn(p, "\n")] = 0;
        for (char *q = p; *q; ++q)
            if (*q == '"' || *q == '\\')
                *q = '\'';
        snprintf(buf, n, "%s", p);
        found = 1;
    }
    fclose(f);
    return found;
}

/* /proc/cpuinfo's "model name", or "unknown". */
static void ssm_bench_cpu_model(char *buf, size_t n)
{
    if (!ssm_bench_cpuinfo("model name", buf, n))
        snprintf(buf, n, "unknown");
}

/* "AuthenticAMD family 25 model 1 stepping 1" from /proc/cpuinfo's first
 * processor, spelt as bench/machine.py's cpu_id(): "unknown" where it has
 * neither vendor_id nor cpu family, a missing vendor left out, a missing
 * family, model or stepping printed as "?". */
static void ssm_bench_cpu_id(char *buf, size_t n)
{
    char vendor[64], family[16], model[16], stepping[16];
    int has_vendor = ssm_bench_cpuinfo("vendor_id", vendor, sizeof vendor);
    int has_family = ssm_bench_cpuinfo("cpu family", family, sizeof family);
    if (!has_vendor && !has_family) {
        snprintf(buf, n, "unknown");
        return;
    }
    if (!has_family)
        snprintf(family, sizeof family, "?");
    if (!ssm_bench_cpuinfo("model", model, sizeof model))
        snprintf(model, sizeof model, "?");
    if (!ssm_bench_cpuinfo("stepping", stepping, sizeof stepping))
        snprintf(stepping, sizeof stepping, "?");
    snprintf(buf, n, "%s%sfamily %s model %s stepping %s", vendor, has_vendor ? " " : "", family,
             model, stepping);
}

static void ssm_bench_loadavg(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a = 0, b = 0, c = 0;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

__attribute__((format(printf, 1, 2))) static void ssm_bench_line(const char *fmt, ...)
{
    static char cpu[256], cpu_id[160];
    if (!cpu[0]) {
        ssm_bench_cpu_model(cpu, sizeof cpu);
        ssm_bench_cpu_id(cpu_id, sizeof cpu_id);
    }
    char body[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof body) { /* too long to splice: print it as it is */
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        return;
    }
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == ' '))
        body[--len] = 0;
    if (len < 2 || body[len - 1] != '}') {
        printf("%s\n", body);
        return;
    }
    body[len - 1] = 0;
    ssm_cpu_caches c;
    ssm_cpu_caches_get(&c);
    char load[64];
    ssm_bench_loadavg(load, sizeof load);
    printf("%s%s\"cpu\":\"%s\",\"cpu_id\":\"%s\",\"isa_best\":\"%s\",\"l1d_bytes\":%zu,\"l2_bytes\":%zu,"
           "\"l3_bytes\":%zu,\"loadavg\":\"%s\"}\n",
           body, len > 2 ? "," : "", cpu, cpu_id, ssm_isa_name(ssm_isa_best()), c.l1d_bytes, c.l2_bytes, c.l3_bytes,
           load);
}

#endif
