/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the daemon's config file parser (ssmd_config_load_file):
 * the input is the file's bytes.  Invariants: no crash or leak; an error is
 * one line that starts with the path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/ssmd-fuzz-config-%d.conf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    ssmd_config c;
    if (ssmd_config_init(&c) != 0) return 0;
    char err[1024] = "";
    if (ssmd_config_load_file(&c, path, err, sizeof err) != 0) {
        if (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n')) __builtin_trap();
    }
    ssmd_config_free(&c);
    return 0;
}
