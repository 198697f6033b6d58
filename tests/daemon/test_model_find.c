/* SPDX-License-Identifier: MIT */
/* ssmd_model_find (model_find.h): the search order (--model, $SSMD_MODEL,
 * $XDG_DATA_HOME, $XDG_DATA_DIRS, install datadir, source tree), relative
 * XDG entries ignored, SSMD_NO_SOURCE_MODELS, and the one-line errors for a
 * bad name, a short buffer and a model found nowhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "model_find.h"

static char root[256];

static void touch(const char *dir, const char *name)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && : > '%s/%s'", dir, dir, name);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ssmd_model_find_XXXXXX");
    if (!mkdtemp(root)) return -1;
    char d[512];
    snprintf(d, sizeof d, "%s/home/ssmd/models", root);
    touch(d, "a.safetensors");
    snprintf(d, sizeof d, "%s/d1/ssmd/models", root);
    touch(d, "b.safetensors");
    snprintf(d, sizeof d, "%s/d2/ssmd/models", root);
    touch(d, "a.safetensors");
    touch(d, "b.safetensors");
    touch(d, "c.safetensors");
    unsetenv("SSMD_MODEL");
    char v[1024];
    snprintf(v, sizeof v, "%s/home", root);
    setenv("XDG_DATA_HOME", v, 1);
    snprintf(v, sizeof v, "relative/dir:%s/d1:%s/d2", root, root);
    setenv("XDG_DATA_DIRS", v, 1);
    setenv("SSMD_NO_SOURCE_MODELS", "1", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* want_suffix is under root when in_root, else the whole path */
static void expect_found(const char *name, const char *explicit_path, const char *want_suffix, int in_root)
{
    char out[1024], err[1024], want[1024];
    assert_int_equal(ssmd_model_find(name, explicit_path, out, sizeof out, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s%s", in_root ? root : "", want_suffix);
    assert_string_equal(out, want);
}

static void test_order(void **state)
{
    (void)state;
    expect_found("a.safetensors", NULL, "/home/ssmd/models/a.safetensors", 1); /* XDG_DATA_HOME first */
    expect_found("b.safetensors", NULL, "/d1/ssmd/models/b.safetensors", 1);   /* then XDG_DATA_DIRS in order */
    expect_found("c.safetensors", "", "/d2/ssmd/models/c.safetensors", 1);     /* "" = not given */
    setenv("SSMD_MODEL", "/from/env.safetensors", 1);                        /* the env var, unchecked */
    expect_found("a.safetensors", NULL, "/from/env.safetensors", 0);
    expect_found("a.safetensors", "/given.safetensors", "/given.safetensors", 0); /* --model wins */
    unsetenv("SSMD_MODEL");
}

static void test_not_found_names_places(void **state)
{
    (void)state;
    char out[1024], err[2048], want[1024];
    assert_int_equal(ssmd_model_find("zzz.safetensors", NULL, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "no model zzz.safetensors found"));
    snprintf(want, sizeof want, "%s/home/ssmd/models/, %s/d1/ssmd/models/, %s/d2/ssmd/models/", root, root, root);
    assert_non_null(strstr(err, want));
    assert_null(strstr(err, "relative/dir"));   /* relative XDG entries are ignored */
    assert_null(strchr(err, '\n'));
#ifndef SSMD_EXPECT_NO_SRCDIR
    /* the source tree is not searched with SSMD_NO_SOURCE_MODELS set ... */
    assert_int_equal(ssmd_model_find("default.safetensors", NULL, out, sizeof out, err, sizeof err),
                     access("/usr/local/share/ssmd/models/default.safetensors", R_OK) == 0 ? 0 : -1);
    /* ... and is without it (this test runs from a build of the checkout) */
    unsetenv("SSMD_NO_SOURCE_MODELS");
    assert_int_equal(ssmd_model_find("default.safetensors", NULL, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "/models/default.safetensors"));
    setenv("SSMD_NO_SOURCE_MODELS", "1", 1);
#endif
}

static void test_bad_input(void **state)
{
    (void)state;
    char out[16], err[256];
    const char *bad[] = { "", ".", "..", "sub/a.safetensors" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ssmd_model_find(bad[i], NULL, out, sizeof out, err, sizeof err), -1);
        assert_non_null(strstr(err, "expected a bare file name"));
    }
    assert_int_equal(ssmd_model_find(NULL, NULL, out, sizeof out, err, sizeof err), -1);
    /* a path that does not fit: an error, never a truncated path */
    assert_int_equal(ssmd_model_find("a.safetensors", NULL, out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer than 15 bytes"));
    assert_int_equal(ssmd_model_find("a.safetensors", "/a/very/long/explicit/path", out, sizeof out, err,
                                     sizeof err), -1);
    assert_non_null(strstr(err, "longer than 15 bytes"));
    /* err may be NULL */
    assert_int_equal(ssmd_model_find("", NULL, out, sizeof out, NULL, 0), -1);
}

/* The install datadir is often also an $XDG_DATA_DIRS entry (/usr/local/share
 * with the default prefix): the not-found line names it once. */
static void test_datadir_named_once(void **state)
{
    (void)state;
    const char *dd = SSMD_MODELS_DATADIR, *sub = "/ssmd/models";
    size_t len = strlen(dd) - strlen(sub);
    assert_string_equal(dd + len, sub);
    char dirs[1024], out[1024], err[4096], want[1024];
    snprintf(dirs, sizeof dirs, "%.*s:%s/d1", (int)len, dd, root);
    char *saved = strdup(getenv("XDG_DATA_DIRS"));
    setenv("XDG_DATA_DIRS", dirs, 1);
    assert_int_equal(ssmd_model_find("zzz.safetensors", NULL, out, sizeof out, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/", dd);
    const char *first = strstr(err, want);
    assert_non_null(first);
    assert_null(strstr(first + 1, want));
    setenv("XDG_DATA_DIRS", saved, 1);
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_not_found_names_places),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_datadir_named_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
