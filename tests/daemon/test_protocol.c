/* SPDX-License-Identifier: MIT */
/* Checks daemon/include/ssmd/protocol.h against the golden vectors of
 * docs/protocol.md (tests/daemon/protocol_golden.json, written by hand from
 * the layout table): decode gives the fields and status, encode gives the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ssmd/protocol.h"

static const char *golden_path;
static json_t *golden;

static int load_golden(void **state)
{
    (void)state;
    json_error_t e;
    golden = json_load_file(golden_path, JSON_REJECT_DUPLICATES, &e);
    if (!golden) {
        fprintf(stderr, "%s:%d: %s\n", golden_path, e.line, e.text);
        return -1;
    }
    return 0;
}

static int free_golden(void **state)
{
    (void)state;
    json_decref(golden);
    return 0;
}

static size_t hex_to_bytes(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v = 0;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p == ' ') continue;
        else fail_msg("bad hex digit '%c'", *p);
        if (hi < 0) { hi = v; continue; }
        assert_true(n < cap);
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    assert_int_equal(hi, -1);
    return n;
}

static int status_from_name(const char *name)
{
    static const struct { const char *name; int status; } t[] = {
        { "SSMD_PROTO_OK", SSMD_PROTO_OK }, { "SSMD_PROTO_SHORT", SSMD_PROTO_SHORT },
        { "SSMD_PROTO_BAD_MAGIC", SSMD_PROTO_BAD_MAGIC },
        { "SSMD_PROTO_BAD_VERSION", SSMD_PROTO_BAD_VERSION },
        { "SSMD_PROTO_BAD_LENGTH", SSMD_PROTO_BAD_LENGTH },
        { "SSMD_PROTO_BAD_KIND", SSMD_PROTO_BAD_KIND },
        { "SSMD_PROTO_BAD_DTYPE", SSMD_PROTO_BAD_DTYPE },
        { "SSMD_PROTO_BAD_SIZE", SSMD_PROTO_BAD_SIZE },
        { "SSMD_PROTO_BAD_TOPIC", SSMD_PROTO_BAD_TOPIC },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, name) == 0) return t[i].status;
    fail_msg("unknown status name %s", name);
    return 1;
}

static uint64_t field(json_t *fields, const char *name)
{
    json_t *v = json_object_get(fields, name);
    if (json_is_string(v)) /* values >= 2^63 are "0x..." strings */
        return strtoull(json_string_value(v), NULL, 16);
    if (!json_is_integer(v)) fail_msg("field %s missing", name);
    return (uint64_t)json_integer_value(v);
}

static void test_vectors(void **state)
{
    (void)state;
    json_t *vectors = json_object_get(golden, "vectors");
    assert_true(json_array_size(vectors) >= 10);
    size_t i, n_ok = 0, n_err = 0;
    json_t *v;
    json_array_foreach(vectors, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        uint8_t buf[128];
        size_t len = hex_to_bytes(json_string_value(json_object_get(v, "hex")), buf, sizeof buf);
        size_t payload_len = (size_t)json_integer_value(json_object_get(v, "payload_len"));
        int want = status_from_name(json_string_value(json_object_get(v, "status")));
        ssmd_header h;
        int got = ssmd_header_decode(buf, len, payload_len, 0, &h);
        if (got != want)
            fail_msg("%s: decode gave %d (%s), expected %d", name, got, ssmd_proto_strerror(got), want);
        if (want != SSMD_PROTO_OK) { n_err++; continue; }
        n_ok++;
        json_t *f = json_object_get(v, "fields");
        assert_int_equal(h.version, field(f, "version"));
        assert_int_equal(h.header_bytes, field(f, "header_bytes"));
        assert_int_equal(h.kind, field(f, "kind"));
        assert_int_equal(h.dtype, field(f, "dtype"));
        assert_int_equal(h.flags, field(f, "flags"));
        assert_int_equal(h.sample_rate_hz, field(f, "sample_rate_hz"));
        assert_int_equal(h.rows, field(f, "rows"));
        assert_int_equal(h.cols, field(f, "cols"));
        assert_int_equal(h.hop_samples, field(f, "hop_samples"));
        assert_true(h.seq == field(f, "seq"));
        assert_true(h.first_sample == field(f, "first_sample"));
        assert_true(h.capture_ns == field(f, "capture_ns"));
        assert_true(h.epoch == field(f, "epoch"));
        if (json_is_true(json_object_get(v, "encode"))) {
            uint8_t out[SSMD_HEADER_BYTES];
            assert_int_equal(ssmd_header_encode(out, &h), SSMD_HEADER_BYTES);
            assert_int_equal(len, SSMD_HEADER_BYTES);
            assert_memory_equal(out, buf, SSMD_HEADER_BYTES);
        }
    }
    printf("protocol: %zu valid and %zu invalid golden headers matched\n", n_ok, n_err);
    assert_true(n_ok >= 4 && n_err >= 8);
}

static void test_topics(void **state)
{
    (void)state;
    json_t *topics = json_object_get(golden, "topics");
    size_t i;
    json_t *t;
    json_array_foreach(topics, i, t) {
        const char *topic = json_string_value(json_object_get(t, "topic"));
        char stream[SSMD_STREAM_NAME_MAX + 1];
        uint16_t kind = 0;
        int rc = ssmd_topic_parse(topic, strlen(topic), stream, &kind);
        if (json_is_true(json_object_get(t, "ok"))) {
            if (rc != SSMD_PROTO_OK) fail_msg("topic '%s' refused", topic);
            assert_string_equal(stream, json_string_value(json_object_get(t, "stream")));
            assert_int_equal(kind, json_integer_value(json_object_get(t, "kind")));
            /* formatting the two-level topic gives back the prefix */
            char out[128];
            int n = ssmd_topic_format(out, sizeof out, stream, kind);
            assert_true(n > 0);
            assert_memory_equal(out, topic, (size_t)n);
        } else if (rc != SSMD_PROTO_BAD_TOPIC) {
            fail_msg("topic '%s' accepted", topic);
        }
    }
    char small[8];
    assert_int_equal(ssmd_topic_format(small, sizeof small, "mic0", SSMD_KIND_AUDIO), SSMD_PROTO_BAD_TOPIC);
    assert_int_equal(ssmd_topic_format(small, sizeof small, "m", 99), SSMD_PROTO_BAD_TOPIC);
}

/* Every truncation of a valid header and every single-byte corruption decodes
 * without reading out of bounds (ASan checks) and never yields OK with a
 * payload size other than rows × cols × element size. */
static void test_truncations_and_flips(void **state)
{
    (void)state;
    ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .sample_rate_hz = 16000,
                      .rows = 4, .cols = 2, .hop_samples = 4 };
    uint8_t buf[SSMD_HEADER_BYTES];
    ssmd_header_encode(buf, &h);
    for (size_t len = 0; len < SSMD_HEADER_BYTES; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        ssmd_header d;
        assert_int_equal(ssmd_header_decode(copy, len, 32, 0, &d), SSMD_PROTO_SHORT);
        free(copy);
    }
    size_t n_ok = 0;
    for (size_t pos = 0; pos < SSMD_HEADER_BYTES; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t c[SSMD_HEADER_BYTES];
            memcpy(c, buf, sizeof c);
            c[pos] ^= (uint8_t)(1u << bit);
            ssmd_header d;
            if (ssmd_header_decode(c, sizeof c, 32, 0, &d) == SSMD_PROTO_OK) {
                n_ok++;
                assert_int_equal((uint64_t)d.rows * d.cols * ssmd_dtype_bytes(d.dtype), 32);
            }
        }
    }
    /* flips in flags/rate/hop/seq/first_sample/capture/epoch stay valid */
    printf("protocol: %zu of %d single-bit corruptions still decode (fields without a check)\n",
           n_ok, SSMD_HEADER_BYTES * 8);
    assert_true(n_ok < SSMD_HEADER_BYTES * 8);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s protocol_golden.json\n", argv[0]);
        return 2;
    }
    golden_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_truncations_and_flips),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
