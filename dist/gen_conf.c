/* SPDX-License-Identifier: MIT */
/* Writes the example configuration file (installed as <sysconfdir>/ssmd/ssmd.conf)
 * from ssmd's option table (daemon/src/config.c), so it lists every key with
 * its help and default and cannot drift from `ssmd --help`.  Every key is
 * commented out: the file as installed changes nothing.
 * Usage: gen_conf OUT SYSCONFDIR */
#include <stdio.h>
#include <string.h>

#include "config.h"

/* Writes text as "# "-prefixed lines of at most width columns. */
static void comment_wrapped(FILE *f, const char *text, size_t width)
{
    const char *p = text;
    while (*p) {
        size_t len = strlen(p), cut = len;
        if (len > width) {
            cut = width;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0) cut = width;
        }
        fprintf(f, "# %.*s\n", (int)cut, p);
        p += cut;
        while (*p == ' ') p++;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_conf OUT SYSCONFDIR\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "# ssmd configuration (ssmd --config FILE; the system unit ssmd.service reads\n"
               "# %s/ssmd/ssmd.conf, the user unit ~/.config/ssmd/ssmd.conf).\n"
               "# One 'key = value' per line; '#' starts a comment; a value may be\n"
               "# double-quoted.  Command-line flags (--key value) override this file.\n"
               "# Every key is listed with its default, commented out: uncomment to change.\n"
               "# Keys marked [reloads on SIGHUP] change while running (systemctl reload ssmd).\n"
               "# Generated from the option table, as `ssmd --help` and man ssmd(1).\n",
            argv[2]);
    size_t n;
    const ssmd_option *opt = ssmd_options(&n);
    for (size_t i = 0; i < n; i++) {
        const ssmd_option *o = &opt[i];
        char help[2048];
        int len = snprintf(help, sizeof help, "%s", o->help);
        if (o->type == SSMD_OPT_INT && len > 0 && (size_t)len < sizeof help)
            len += snprintf(help + len, sizeof help - (size_t)len, " [%ld..%ld]", o->min, o->max);
        if (o->type == SSMD_OPT_ENUM && len > 0 && (size_t)len < sizeof help)
            len += snprintf(help + len, sizeof help - (size_t)len, " (one of %s)", o->values);
        if (o->reloadable && len > 0 && (size_t)len < sizeof help)
            snprintf(help + len, sizeof help - (size_t)len, " [reloads on SIGHUP]");
        fputc('\n', f);
        comment_wrapped(f, help, 76);
        if (o->type == SSMD_OPT_INT || o->type == SSMD_OPT_BOOL)
            fprintf(f, "#%s = %s\n", o->key, o->def);
        else
            fprintf(f, "#%s = \"%s\"\n", o->key, o->def);
    }
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
