/* SPDX-License-Identifier: MIT */
/* Model search path (model_find.h).  The compiled-in directories come from
 * meson: SSMD_MODELS_DATADIR (<prefix>/<datadir>/ssmd/models) and
 * SSMD_MODELS_SRCDIR (<source root>/models). */
#include "model_find.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SSMD_MODELS_DATADIR
#define SSMD_MODELS_DATADIR "/usr/local/share/ssmd/models"
#endif

/* The places looked at, for the error line; truncated quietly when long. */
typedef struct looked {
    char *buf;
    size_t cap, len;
} looked;

static void looked_add(looked *l, const char *what)
{
    if (!l->buf || l->cap == 0 || l->len + 1 >= l->cap) return;
    int n = snprintf(l->buf + l->len, l->cap - l->len, "%s%s", l->len ? ", " : "", what);
    if (n > 0) l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

static int copy_out(char *out, size_t cap, const char *path)
{
    size_t n = strlen(path);
    if (n + 1 > cap) return -1;
    memcpy(out, path, n + 1);
    return 0;
}

static bool readable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* dir + "/" + sub + "/" + name, then checks it; 1 found, 0 not, -1 too long. */
static int try_dir(const char *dir, size_t dir_len, const char *sub, const char *name, char *out,
                   size_t cap, looked *l)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%.*s%s%s", (int)dir_len, dir, sub, name);
    if (n < 0 || (size_t)n >= sizeof path) return 0;
    char shown[4096];
    snprintf(shown, sizeof shown, "%.*s%s", (int)dir_len, dir, sub);
    looked_add(l, shown);
    if (!readable_file(path)) return 0;
    return copy_out(out, cap, path) == 0 ? 1 : -1;
}

int ssmd_model_find(const char *name, const char *explicit_path, char *out, size_t cap, char *err,
                    size_t errcap)
{
    if (err && errcap) err[0] = '\0';
    if (!name || !name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        if (err && errcap) snprintf(err, errcap, "model name '%s': expected a bare file name", name ? name : "");
        return -1;
    }
    if (!out || cap == 0) {
        if (err && errcap) snprintf(err, errcap, "model %s: no output buffer", name);
        return -1;
    }
    const char *given = explicit_path && explicit_path[0] ? explicit_path : NULL;
    const char *env = getenv("SSMD_MODEL");
    if (!given && env && env[0]) given = env;
    if (given) {
        if (copy_out(out, cap, given) != 0) {
            if (err && errcap) snprintf(err, errcap, "model path longer than %zu bytes", cap - 1);
            return -1;
        }
        return 0;
    }

    char where[1536];
    looked l = { where, sizeof where, 0 };
    int r = 0;
    const char *xdg_home = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg_home && xdg_home[0] == '/') {
        r = try_dir(xdg_home, strlen(xdg_home), "/ssmd/models/", name, out, cap, &l);
    } else if (home && home[0] == '/') {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/.local/share", home);
        r = try_dir(dir, strlen(dir), "/ssmd/models/", name, out, cap, &l);
    }
    const char *dirs = getenv("XDG_DATA_DIRS");
    if (!dirs || !dirs[0]) dirs = "/usr/local/share:/usr/share";
    /* the install datadir is often one of $XDG_DATA_DIRS (/usr/local/share):
     * looked at once */
    const size_t dd_len = strlen(SSMD_MODELS_DATADIR), sub_len = strlen("/ssmd/models");
    bool datadir_seen = false;
    for (const char *p = dirs; r == 0 && *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0 && p[0] == '/') {
            r = try_dir(p, len, "/ssmd/models/", name, out, cap, &l);
            if (len + sub_len == dd_len && strncmp(p, SSMD_MODELS_DATADIR, len) == 0 &&
                strcmp(SSMD_MODELS_DATADIR + len, "/ssmd/models") == 0)
                datadir_seen = true;
        }
        p += len + (p[len] == ':');
    }
    if (r == 0 && !datadir_seen)
        r = try_dir(SSMD_MODELS_DATADIR, dd_len, "/", name, out, cap, &l);
#ifdef SSMD_MODELS_SRCDIR
    const char *no_src = getenv("SSMD_NO_SOURCE_MODELS");
    if (r == 0 && !(no_src && no_src[0]))
        r = try_dir(SSMD_MODELS_SRCDIR, strlen(SSMD_MODELS_SRCDIR), "/", name, out, cap, &l);
#endif
    if (r == 1) return 0;
    if (err && errcap) {
        if (r < 0)
            snprintf(err, errcap, "model %s: path longer than %zu bytes", name, cap - 1);
        else
            snprintf(err, errcap, "no model %s found: SSMD_MODEL unset, looked in %s",
                     name, where);
    }
    return -1;
}
