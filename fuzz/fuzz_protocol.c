/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the wire protocol parsers a client or the network can
 * reach: ssmd_header_decode (any header frame against any payload length)
 * and ssmd_topic_parse.  Input layout: 2 bytes payload length (LE, scaled),
 * then the header frame; the same bytes are also parsed as a topic.
 * Invariants: a decoded OK header describes exactly the payload length; a
 * parsed topic re-formats to a prefix of the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ssmd/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t payload_len = (size_t)(data[0] | data[1] << 8) * 4;
    const uint8_t *frame = data + 2;
    size_t len = size - 2;
    ssmd_header h;
    int rc = ssmd_header_decode(frame, len, payload_len, 0, &h);
    if (rc == SSMD_PROTO_OK) {
        if ((uint64_t)h.rows * h.cols * ssmd_dtype_bytes(h.dtype) != payload_len) __builtin_trap();
        uint8_t out[SSMD_HEADER_BYTES];
        ssmd_header_encode(out, &h);
        ssmd_header back;
        if (ssmd_header_decode(out, sizeof out, payload_len, 0, &back) != SSMD_PROTO_OK) __builtin_trap();
        if (memcmp(out + 8, frame + 8, SSMD_HEADER_BYTES - 8) != 0) __builtin_trap();
    } else if (rc > 0 || ssmd_proto_strerror(rc) == NULL) {
        __builtin_trap();
    }
    char stream[SSMD_STREAM_NAME_MAX + 1];
    uint16_t kind;
    if (ssmd_topic_parse((const char *)frame, len, stream, &kind) == SSMD_PROTO_OK) {
        char topic[SSMD_STREAM_NAME_MAX + 32];
        int n = ssmd_topic_format(topic, sizeof topic, stream, kind);
        if (n <= 0 || (size_t)n > len || memcmp(topic, frame, (size_t)n) != 0) __builtin_trap();
    }
    return 0;
}
