/* SPDX-License-Identifier: MIT */
/* The option table: defaults, each type's validation, config files with
 * errors as file:line: key: reason, the command line, --help, round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char tmpdir[256];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ssmd-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    ssmd_config c;
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_string_equal(c.pub, "tcp://127.0.0.1:5560");
    assert_string_equal(c.control, "tcp://127.0.0.1:5562");
    assert_string_equal(c.input, "none");
    assert_int_equal(c.max_streams, 64);
    assert_int_equal(c.threads, 2);
    assert_string_equal(c.backend, "cpu");
    assert_int_equal(c.cuda_device, 0);
    assert_string_equal(c.weights, "f32");
    assert_false(c.realtime);
    assert_false(c.allow_insecure_remote);
    /* every default satisfies its own row's validation */
    size_t n;
    const ssmd_option *o = ssmd_options(&n);
    for (size_t i = 0; i < n; i++) {
        char err[256];
        if (ssmd_config_set(&c, o[i].key, o[i].def, err, sizeof err) != 0)
            fail_msg("default of %s rejected: %s", o[i].key, err);
    }
    ssmd_config_free(&c);
}

static void expect_set_error(ssmd_config *c, const char *key, const char *value, const char *fragment)
{
    char err[512] = "";
    if (ssmd_config_set(c, key, value, err, sizeof err) == 0)
        fail_msg("%s = '%s' accepted", key, value);
    if (!strstr(err, fragment)) fail_msg("error '%s' lacks '%s'", err, fragment);
    if (strncmp(err, key, strlen(key)) != 0) fail_msg("error '%s' does not start with the key", err);
}

static void test_set_validation(void **state)
{
    (void)state;
    ssmd_config c;
    assert_int_equal(ssmd_config_init(&c), 0);
    char err[256];
    assert_int_equal(ssmd_config_set(&c, "max-streams", "16", err, sizeof err), 0);
    assert_int_equal(c.max_streams, 16);
    assert_int_equal(ssmd_config_set(&c, "realtime", "yes", err, sizeof err), 0);
    assert_true(c.realtime);
    assert_int_equal(ssmd_config_set(&c, "pub", "ipc:///tmp/ssmd.pub", err, sizeof err), 0);
    assert_int_equal(ssmd_config_set(&c, "pub", "tcp://*:6000", err, sizeof err), 0);
    assert_int_equal(ssmd_config_set(&c, "channels", "split", err, sizeof err), 0);
    assert_string_equal(c.channels, "split");

    expect_set_error(&c, "max_streams", "0", "[1, 65536]");
    expect_set_error(&c, "max_streams", "65537", "got '65537'");
    expect_set_error(&c, "max_streams", "12x", "integer");
    expect_set_error(&c, "max_streams", "", "integer");
    expect_set_error(&c, "max_streams", " 5", "integer");
    expect_set_error(&c, "max_streams", "99999999999999999999999", "integer");
    expect_set_error(&c, "realtime", "maybe", "true or false");
    expect_set_error(&c, "channels", "stereo", "mono|split");
    expect_set_error(&c, "pub", "http://x", "tcp://");
    expect_set_error(&c, "pub", "tcp://127.0.0.1", "tcp://");
    expect_set_error(&c, "pub", "tcp://127.0.0.1:70000", "tcp://");
    expect_set_error(&c, "pub", "tcp://127.0.0.1:-1", "tcp://");
    expect_set_error(&c, "bogus", "1", "unknown option");
    /* a failed set leaves the previous value */
    assert_int_equal(c.max_streams, 16);
    assert_string_equal(c.channels, "split");
    ssmd_config_free(&c);
}

static void expect_file_error(const char *text, size_t len, const char *want)
{
    ssmd_config c;
    assert_int_equal(ssmd_config_init(&c), 0);
    const char *path = write_file("bad.conf", text, len);
    char err[1024] = "", expect[1024];
    assert_int_equal(ssmd_config_load_file(&c, path, err, sizeof err), -1);
    snprintf(expect, sizeof expect, "%s:%s", path, want);
    if (strncmp(err, expect, strlen(expect)) != 0) fail_msg("got '%s', expected '%s...'", err, expect);
    printf("config error: %s\n", err);
    ssmd_config_free(&c);
}

static void test_file(void **state)
{
    (void)state;
    const char *good =
        "# ssmd config\n"
        "\n"
        "max_streams = 8   # batch size\n"
        "  model=\"/opt/models/a b#c.safetensors\"\n"
        "realtime = on\n"
        "log-level = debug\n";
    ssmd_config c;
    assert_int_equal(ssmd_config_init(&c), 0);
    char err[1024];
    const char *path = write_file("good.conf", good, strlen(good));
    if (ssmd_config_load_file(&c, path, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(c.max_streams, 8);
    assert_string_equal(c.model, "/opt/models/a b#c.safetensors");
    assert_true(c.realtime);
    assert_string_equal(c.log_level, "debug");
    ssmd_config_free(&c);

    expect_file_error("max_streams = 8\nbogus = 1\n", 26, "2: bogus: unknown option");
    expect_file_error("\n\nmax_streams = many\n", 20, "3: max_streams: expected an integer");
    expect_file_error("max_streams 8\n", 14, "1: max_streams 8: expected 'key = value'");
    expect_file_error("model = \"abc\n", 13, "1: model: unterminated quote");
    expect_file_error("model = \"abc\" def\n", 18, "1: model: unterminated quote");
    expect_file_error("pub = udp://x:1\n", 16, "1: pub: expected tcp://");
    expect_file_error("a\0b = 1\n", 8, "1: NUL byte");
    /* the quoted text has no control bytes: a terminal escape becomes '?' */
    expect_file_error("\033[2Jkey 1\n", 11, "1: ?[2Jkey 1: expected 'key = value'");
    /* a line past the bound is refused at once (-c /dev/zero used to fill memory, and an
     * allocation failure read as the end of the file: the configuration was ignored) */
    static char huge[20000];
    memcpy(huge, "max_streams = 8\n#", 17);
    memset(huge + 17, 'x', sizeof huge - 18);
    huge[sizeof huge - 1] = '\n';
    expect_file_error(huge, sizeof huge, "2: line longer than 8192 bytes");
    /* a line of exactly 8192 bytes is not */
    assert_int_equal(ssmd_config_init(&c), 0);
    memset(huge + 17, 'x', 8191);
    huge[17 + 8191] = '\n';
    const char *edge = write_file("edge.conf", huge, 17 + 8192);
    assert_int_equal(ssmd_config_load_file(&c, edge, err, sizeof err), 0);
    ssmd_config_free(&c);
    /* the last line may lack its newline */
    assert_int_equal(ssmd_config_init(&c), 0);
    const char *noeol = write_file("noeol.conf", "max_streams = 8\natten_lim_db = 12", 33);
    assert_int_equal(ssmd_config_load_file(&c, noeol, err, sizeof err), 0);
    assert_int_equal(c.max_streams, 8);
    assert_int_equal(c.atten_lim_db, 12);
    ssmd_config_free(&c);

    assert_int_equal(ssmd_config_init(&c), 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/does-not-exist.conf", tmpdir);
    assert_int_equal(ssmd_config_load_file(&c, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    ssmd_config_free(&c);
}

static int parse(ssmd_config *c, ssmd_cli_action *action, char *err, size_t cap, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = (char *)"ssmd";
    for (int i = 1; i < argc; i++) argv[i] = va_arg(ap, char *);
    va_end(ap);
    return ssmd_config_parse_args(c, argc, argv, action, err, cap);
}

static void test_cli(void **state)
{
    (void)state;
    ssmd_config c;
    ssmd_cli_action a;
    char err[1024] = "";
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 8, "--max-streams", "4", "-j", "3",
                           "--realtime", "--log_level=warn", "in.flac"), 0);
    assert_int_equal(a, SSMD_CLI_RUN);
    assert_int_equal(c.max_streams, 4);
    assert_int_equal(c.threads, 3);
    assert_true(c.realtime);
    assert_string_equal(c.log_level, "warn");
    assert_string_equal(c.input, "in.flac");
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--no-realtime"), 0);
    assert_false(c.realtime);

    /* the command line overrides the config file whatever the order */
    const char *conf = "max_streams = 9\nthreads = 3\n";
    const char *path = write_file("cli.conf", conf, strlen(conf));
    assert_int_equal(parse(&c, &a, err, sizeof err, 5, "--threads", "5", "-c", path), 0);
    assert_int_equal(c.max_streams, 9);
    assert_int_equal(c.threads, 5);

    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--help"), 0);
    assert_int_equal(a, SSMD_CLI_HELP);
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--list-devices"), 0);
    assert_int_equal(a, SSMD_CLI_LIST_DEVICES);

    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--max-streams", "zero"), -1);
    assert_string_equal(err, "--max-streams: expected an integer in [1, 65536], got 'zero'");
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--frobnicate"), -1);
    assert_non_null(strstr(err, "--frobnicate: unknown option"));
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--output"), -1);
    assert_string_equal(err, "--output: needs a value");
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "a.wav", "b.wav"), -1);
    assert_non_null(strstr(err, "b.wav: unexpected argument"));
    /* a positional input and -i: refused whichever comes first (the last one used to win) */
    assert_int_equal(parse(&c, &a, err, sizeof err, 4, "a.wav", "-i", "b.wav"), -1);
    assert_string_equal(err, "-i b.wav: only one input may be given, and it is already 'a.wav'");
    assert_int_equal(parse(&c, &a, err, sizeof err, 4, "--input", "b.wav", "a.wav"), -1);
    assert_string_equal(err, "a.wav: unexpected argument (only one input may be given, and --input is b.wav)");
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--input=none", "--input=mic"), -1);
    assert_string_equal(err, "--input=mic: only one input may be given, and it is already 'none'");
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--config"), -1);
    assert_non_null(strstr(err, "--config: needs a file name"));
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--no-threads"), -1);
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "--realtime=sometimes"), -1);
    ssmd_config_free(&c);
}

/* Where each value came from (default, config file, command line), and the
 * job checks built on it: refused from the command line, a warning from a
 * config file, nothing for a default. */
static void test_origin_and_check(void **state)
{
    (void)state;
    ssmd_config c;
    ssmd_cli_action a;
    char err[1024] = "", warn[1024] = "x";
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(ssmd_config_origin_of(&c, "output_format"), SSMD_ORIGIN_DEFAULT);
    const char *conf = "output_format = float\npub = tcp://127.0.0.1:7000\n";
    const char *path = write_file("origin.conf", conf, strlen(conf));
    assert_int_equal(parse(&c, &a, err, sizeof err, 6, "-c", path, "in.wav", "-o", "out.mp3"), 0);
    assert_int_equal(ssmd_config_origin_of(&c, "output_format"), SSMD_ORIGIN_FILE);
    assert_int_equal(ssmd_config_origin_of(&c, "pub"), SSMD_ORIGIN_FILE);
    assert_int_equal(ssmd_config_origin_of(&c, "input"), SSMD_ORIGIN_COMMAND_LINE);
    assert_int_equal(ssmd_config_origin_of(&c, "output"), SSMD_ORIGIN_COMMAND_LINE);
    assert_int_equal(ssmd_config_origin_of(&c, "max-streams"), SSMD_ORIGIN_DEFAULT);
    /* from the file: one warning line, no error */
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    assert_non_null(strstr(warn, "output_format = float in the config file does nothing"));
    assert_non_null(strstr(warn, "codec"));
    const char *nl = strchr(warn, '\n');
    assert_true(nl != NULL && nl[1] == '\0'); /* one line */
    /* the same on the command line: refused, naming the format */
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--output-format", "float"), 0);
    assert_int_equal(ssmd_config_origin_of(&c, "output_format"), SSMD_ORIGIN_COMMAND_LINE);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "--output-format float: out.mp3 is encoded by its codec"));
    ssmd_config_free(&c);

    /* a file input and no output: refused unless published */
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 2, "in.wav"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "in.wav: no output file named (-o)"));
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--serve", "yes"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    assert_string_equal(warn, "");
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--serve", "no"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "serve is 'no'"));
    ssmd_config_free(&c);

    /* options only another option uses, given without it: refused on the command line (they
     * used to be accepted and ignored, --temperature abc included); with it, accepted */
    static const char *const lone[][3] = {
        { "--temperature", "abc", "--temperature: only used by a generation, and --generate-s is not given" },
        { "--prompt", "/nonexistent", "--prompt: only used by a generation" },
        { "--generate-streams", "5", "--generate-streams: only used by a generation" },
        { "--device", "0", "--device: only used with the microphone (--input mic)" },
        { "--monitor", "speakers", "--monitor: only used with the microphone (--input mic)" },
        { "--curve-allow-file", "/etc/passwd", "--curve-allow-file: only used with CURVE, and --curve-secret-file" },
    };
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        assert_int_equal(ssmd_config_init(&c), 0);
        assert_int_equal(parse(&c, &a, err, sizeof err, 6, "in.wav", "-o", "out.wav", lone[i][0], lone[i][1]), 0);
        assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
        if (!strstr(err, lone[i][2])) fail_msg("%s %s: '%s' lacks '%s'", lone[i][0], lone[i][1], err, lone[i][2]);
        ssmd_config_free(&c);
    }
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 7, "--generate-s", "1", "-o", "g.wav", "--temperature", "0.9"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    ssmd_config_free(&c);
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 5, "--input", "mic", "--device", "0"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    ssmd_config_free(&c);
    /* from a config file: a warning, except the microphone's devices (a configuration may name
     * them for the live runs) */
    const char *gconf = "seed = 3\ndevice = 0\n";
    const char *gpath = write_file("gen.conf", gconf, strlen(gconf));
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 6, "-c", gpath, "in.wav", "-o", "out.wav"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    char gwant[400];
    snprintf(gwant, sizeof gwant, "%s:1: seed does nothing without generate_s\n", gpath);
    assert_string_equal(warn, gwant);
    ssmd_config_free(&c);

    /* --wait-subscribers where no subscriber can arrive: refused (the job used to wait forever) */
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 8, "in.wav", "-o", "out.wav", "--wait-subscribers", "1", "--serve",
                           "no"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "--wait-subscribers: no subscriber could arrive (serve is 'no'"));
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--serve", "auto"), 0); /* auto: bound for them */
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    ssmd_config_free(&c);
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 7, "--generate-s", "1", "-o", "g.wav", "--wait-subscribers", "2"),
                     0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "only with --generate-publish"));
    ssmd_config_free(&c);

    /* where a value came from, for error lines: flag, FILE:LINE: key, or the key */
    char where[400];
    const char *cconf = "# cluster\nserve = yes\n\nnode = n1\ncluster-ttl-s = 5\n";
    const char *cpath = write_file("cluster.conf", cconf, strlen(cconf));
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 5, "-c", cpath, "--checkpoint-inline-bytes", "1000"), 0);
    char want[400];
    snprintf(want, sizeof want, "%s:4: node", cpath);
    assert_string_equal(ssmd_config_where(&c, "node", where, sizeof where), want);
    snprintf(want, sizeof want, "%s:5: cluster_ttl_s", cpath);
    assert_string_equal(ssmd_config_where(&c, "cluster-ttl-s", where, sizeof where), want);
    assert_string_equal(ssmd_config_where(&c, "checkpoint_inline_bytes", where, sizeof where),
                        "--checkpoint-inline-bytes");
    assert_string_equal(ssmd_config_where(&c, "max_streams", where, sizeof where), "max_streams");
    /* cluster options without --cluster: the flag refused, the file's lines warned about */
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), -1);
    assert_non_null(strstr(err, "--checkpoint-inline-bytes: only used in cluster mode"));
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--cluster", "etcd://127.0.0.1:2379"), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    assert_string_equal(warn, "");
    ssmd_config_free(&c);
    assert_int_equal(ssmd_config_init(&c), 0);
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "-c", cpath), 0);
    assert_int_equal(ssmd_config_check(&c, err, sizeof err, warn, sizeof warn), 0);
    snprintf(want, sizeof want, "%s:4: node does nothing without cluster = etcd://", cpath);
    assert_non_null(strstr(warn, want));
    snprintf(want, sizeof want, "%s:5: cluster_ttl_s does nothing", cpath);
    assert_non_null(strstr(warn, want));
    /* the command line overrides a file line: no line number left */
    assert_int_equal(parse(&c, &a, err, sizeof err, 3, "--node", "n2"), 0);
    assert_string_equal(ssmd_config_where(&c, "node", where, sizeof where), "--node");
    ssmd_config_free(&c);
}

static void test_help_lists_every_option(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ssmd_config_print_help(f, "ssmd");
    fclose(f);
    size_t n;
    const ssmd_option *o = ssmd_options(&n);
    for (size_t i = 0; i < n; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o[i].key);
        for (char *p = flag; *p; p++)
            if (*p == '_') *p = '-';
        if (!strstr(buf, flag)) fail_msg("--help lacks %s", flag);
        if (!strstr(buf, o[i].help)) fail_msg("--help lacks the help of %s", o[i].key);
    }
    printf("--help documents %zu options in %zu bytes\n", n, len);
    free(buf);
}

static void test_write_round_trip(void **state)
{
    (void)state;
    ssmd_config a, b;
    assert_int_equal(ssmd_config_init(&a), 0);
    char err[512];
    assert_int_equal(ssmd_config_set(&a, "model", "/m/with space#hash.st", err, sizeof err), 0);
    assert_int_equal(ssmd_config_set(&a, "max_streams", "123", err, sizeof err), 0);
    assert_int_equal(ssmd_config_set(&a, "allow_insecure_remote", "true", err, sizeof err), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/round.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ssmd_config_write(f, &a);
    fclose(f);
    assert_int_equal(ssmd_config_init(&b), 0);
    if (ssmd_config_load_file(&b, path, err, sizeof err) != 0) fail_msg("%s", err);
    size_t n;
    const ssmd_option *o = ssmd_options(&n);
    for (size_t i = 0; i < n; i++) {
        const char *pa = (const char *)&a + o[i].offset, *pb = (const char *)&b + o[i].offset;
        if (o[i].type == SSMD_OPT_INT) assert_int_equal(*(const long *)pa, *(const long *)pb);
        else if (o[i].type == SSMD_OPT_BOOL) assert_int_equal(*(const bool *)pa, *(const bool *)pb);
        else assert_string_equal(*(char *const *)pa, *(char *const *)pb);
    }
    ssmd_config_free(&a);
    ssmd_config_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_validation),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_origin_and_check),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_write_round_trip),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
