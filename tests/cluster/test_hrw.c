/* SPDX-License-Identifier: MIT */
/* Placement by rendezvous hashing (daemon/src/hrw.h): the weight function
 * docs/cluster.md specifies (golden values from an independent Python
 * version of it), order independence, balance, and that a member joining
 * moves about 1/n of the names, all to itself, and one leaving moves only
 * its own.  Also etcd.c's pure helpers (base64, the etcd:// URL list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "etcd.h"
#include "hrw.h"

enum { N_NAMES = 6000 };

static void name_of(char *out, size_t cap, int i)
{
    snprintf(out, cap, "stream-%d", i);
}

static void t_weight_golden(void **state)
{
    (void)state;
    /* tests/cluster/test_cluster.py's hrw_weight() computes the same */
    assert_true(ssmd_hrw_weight("n1", "mic") == 0x527a25d6fdc39d37ull);
    assert_true(ssmd_hrw_weight("node-a", "stream.0") == 0xef2ff668a361db5cull);
    assert_true(ssmd_hrw_weight("", "") == 0x25fc6dd36ce04b20ull);
    assert_true(ssmd_hrw_weight("b", "a") == 0x75d8616d8a878837ull);
    /* (member, stream) is not (stream, member) */
    assert_true(ssmd_hrw_weight("a", "b") != ssmd_hrw_weight("b", "a"));
}

/* the channels ssm-push makes of one file (NAME.0, NAME.1, ...) are placed
 * with NAME: one member gets the whole file */
static void t_channels_together(void **state)
{
    (void)state;
    assert_int_equal(ssmd_hrw_key_len("room.0"), 4);
    assert_int_equal(ssmd_hrw_key_len("room.17"), 4);
    assert_int_equal(ssmd_hrw_key_len("a.b.3"), 3);
    assert_int_equal(ssmd_hrw_key_len("room"), 4);
    assert_int_equal(ssmd_hrw_key_len("room."), 5);
    assert_int_equal(ssmd_hrw_key_len("room.x1"), 7);
    assert_int_equal(ssmd_hrw_key_len("room1"), 5);
    assert_int_equal(ssmd_hrw_key_len(".5"), 2);
    assert_int_equal(ssmd_hrw_key_len("a.5"), 1);
    const char *m[] = {"n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    int split = 0;
    for (int i = 0; i < 500; i++) {
        char base[32], ch[40];
        name_of(base, sizeof base, i);
        int k = ssmd_hrw_pick(base, m, 7);
        for (int c = 0; c < 3; c++) {
            snprintf(ch, sizeof ch, "%s.%d", base, c);
            assert_int_equal(ssmd_hrw_pick(ch, m, 7), k);
            /* the weight of the whole name would have split them */
            int alone = 0;
            for (int j = 1; j < 7; j++)
                if (ssmd_hrw_weight(m[j], ch) > ssmd_hrw_weight(m[alone], ch)) alone = j;
            split += alone != k;
        }
    }
    assert_true(split > 1000); /* ~6/7 of 1500 */
}

static void t_order_independent(void **state)
{
    (void)state;
    const char *a[] = { "n1", "n2", "n3", "n4" }, *b[] = { "n3", "n1", "n4", "n2" };
    char name[32];
    for (int i = 0; i < 1000; i++) {
        name_of(name, sizeof name, i);
        int ka = ssmd_hrw_pick(name, a, 4), kb = ssmd_hrw_pick(name, b, 4);
        assert_string_equal(a[ka], b[kb]);
    }
    assert_int_equal(ssmd_hrw_pick("x", a, 0), -1);
    assert_int_equal(ssmd_hrw_pick("x", a, 1), 0);
    /* the same name twice (a configuration error) still gives one answer */
    const char *dup[] = { "n1", "n1" };
    assert_int_equal(ssmd_hrw_pick("x", dup, 2), 0);
}

static void t_balance(void **state)
{
    (void)state;
    const char *m[] = { "node-a", "node-b", "node-c" };
    int count[3] = { 0 };
    char name[32];
    for (int i = 0; i < N_NAMES; i++) {
        name_of(name, sizeof name, i);
        count[ssmd_hrw_pick(name, m, 3)]++;
    }
    printf("3 members, %d names: %d %d %d\n", N_NAMES, count[0], count[1], count[2]);
    for (int k = 0; k < 3; k++) { /* 2000 expected; binomial sd ~37 */
        assert_true(count[k] > 1850);
        assert_true(count[k] < 2150);
    }
}

static void t_join_moves_a_quarter(void **state)
{
    (void)state;
    const char *three[] = { "n1", "n2", "n3" }, *four[] = { "n1", "n2", "n3", "n4" };
    char name[32];
    int moved = 0;
    for (int i = 0; i < N_NAMES; i++) {
        name_of(name, sizeof name, i);
        int before = ssmd_hrw_pick(name, three, 3), after = ssmd_hrw_pick(name, four, 4);
        if (before != after) {
            moved++;
            assert_int_equal(after, 3); /* only to the new member */
        }
    }
    printf("a 4th member joins: %d of %d names move (%.3f; 1/4 expected)\n", moved, N_NAMES,
           (double)moved / N_NAMES);
    assert_true(moved > N_NAMES / 4 - 200); /* sd ~34 */
    assert_true(moved < N_NAMES / 4 + 200);
}

static void t_leave_moves_only_its_own(void **state)
{
    (void)state;
    const char *four[] = { "n1", "n2", "n3", "n4" }, *without2[] = { "n1", "n3", "n4" };
    char name[32];
    for (int i = 0; i < N_NAMES; i++) {
        name_of(name, sizeof name, i);
        const char *before = four[ssmd_hrw_pick(name, four, 4)];
        const char *after = without2[ssmd_hrw_pick(name, without2, 3)];
        if (strcmp(before, "n2") != 0) assert_string_equal(before, after);
    }
}

static void t_base64(void **state)
{
    (void)state;
    /* RFC 4648 section 10 */
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        char b[32], d[32];
        assert_int_equal(ssmd_base64_encode(b, sizeof b, plain[i], strlen(plain[i])), (long)strlen(coded[i]));
        assert_string_equal(b, coded[i]);
        long n = ssmd_base64_decode(d, sizeof d, coded[i], strlen(coded[i]));
        assert_int_equal(n, (long)strlen(plain[i]));
        assert_memory_equal(d, plain[i], (size_t)n);
    }
    char d[8];
    assert_int_equal(ssmd_base64_decode(d, sizeof d, "Zm9", 3), -1);      /* not a multiple of 4 */
    assert_int_equal(ssmd_base64_decode(d, sizeof d, "Zm=v", 4), -1);     /* padding in the middle */
    assert_int_equal(ssmd_base64_decode(d, sizeof d, "Zm9v!A==", 8), -1); /* not the alphabet */
    assert_int_equal(ssmd_base64_decode(d, 2, "Zm9v", 4), -1);            /* out too small */
    assert_int_equal(ssmd_base64_encode(d, 4, "foo", 3), -1);             /* no room for the NUL */
}

static void t_url(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ssmd_etcd_url_check("etcd://127.0.0.1:2379", err, sizeof err), 0);
    assert_int_equal(ssmd_etcd_url_check("etcd://a:1,b:2,c.example:2379", err, sizeof err), 0);
    assert_int_equal(ssmd_etcd_url_check("etcd://a:65535,b:1", err, sizeof err), 0);
    const char *bad[] = { "http://a:1", "etcd://", "etcd://a", "etcd://a:", "etcd://:1", "etcd://a:1,",
                          "etcd://a:x1", "etcd://a/b:1", "etcd://a:0", "etcd://a:65536",
                          "etcd://a:99999999999999999999", "etcd://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(ssmd_etcd_url_check(bad[i], err, sizeof err), -1);
        printf("%s -> %s\n", bad[i], err);
        assert_non_null(strstr(err, "cluster:"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_weight_golden),      cmocka_unit_test(t_order_independent),
        cmocka_unit_test(t_balance),            cmocka_unit_test(t_join_moves_a_quarter),
        cmocka_unit_test(t_leave_moves_only_its_own), cmocka_unit_test(t_base64),
        cmocka_unit_test(t_url),                cmocka_unit_test(t_channels_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
