/* SPDX-License-Identifier: MIT */
/* ssmd wire protocol: the fixed little-endian message header and topic rules.
 *
 * Header-only (static inline), so clients depend on nothing but this file
 * (DESIGN.md §2: clients → protocol header only).  docs/protocol.md is the
 * contract; its golden byte vectors are checked by tests/daemon/test_protocol.c
 * and clients/python/tests.
 *
 * Data-plane message = 3 ZeroMQ frames: [topic][header][payload].
 *   topic   "<stream>/<kind>/" (ends with '/', so prefix subscriptions do not over-match)
 *   header  SSMD_HEADER_BYTES (64) bytes in version 1, layout below; a reader
 *           accepts any header_bytes >= 64 and skips bytes it does not know
 *   payload rows × cols values of dtype, little-endian, row-major
 *
 * Byte layout of version 1 (all little-endian, no padding):
 *   off size field
 *     0    4 magic         "SSMD" (0x53 0x53 0x4D 0x44)
 *     4    2 version       1
 *     6    2 header_bytes  64 (length of the header frame that the writer wrote)
 *     8    2 kind          enum ssmd_kind
 *    10    2 dtype         enum ssmd_dtype
 *    12    4 flags         SSMD_FLAG_*
 *    16    4 sample_rate_hz   of the stream the payload belongs to
 *    20    4 rows          frames (audio: sample frames; features: model frames)
 *    24    4 cols          values per row (audio: channels; log-mel: n_mels)
 *    28    4 hop_samples   samples between consecutive model frames
 *    32    8 seq           per-topic sequence number, 0 for the first message
 *    40    8 first_sample  index of the first input sample this message covers,
 *                          counted from the start of the stream
 *    48    8 capture_ns    capture time of first_sample, ns since the Unix epoch
 *                          (CLOCK_REALTIME), 0 when unknown (files)
 *    56    8 epoch         random number drawn at each daemon start
 *
 * Thread-safety: every function here is pure and re-entrant.
 */
#ifndef SSMD_PROTOCOL_H
#define SSMD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SSMD_MAGIC          "SSMD"
#define SSMD_VERSION        1u
#define SSMD_HEADER_BYTES   64u
/** Largest payload a reader accepts by default (bytes): 64 MiB. */
#define SSMD_MAX_PAYLOAD_BYTES (64u * 1024u * 1024u)
/** Largest payload of one message pushed to the ingest socket (8 MiB: 2 Mi f32
 *  samples, 43 s of mono 48 kHz audio); the daemon's socket drops a client that
 *  sends more, so clients split longer pushes into several messages. */
#define SSMD_INGEST_MAX_PAYLOAD_BYTES (8u * 1024u * 1024u)
/** Smallest ingest cap a daemon may be configured with (64 KiB); a daemon
 *  advertises its cap (ingest_max_payload_bytes in the stream's meta/, sent
 *  back to the pushing client first, and in status), and clients send
 *  messages of at most this size until they have seen it. */
#define SSMD_INGEST_MIN_PAYLOAD_BYTES (64u * 1024u)
/** Largest frame a client accepts from the daemon (bytes; clients set it as
 *  ZMQ_MAXMSGSIZE on every socket that reads from the daemon, so a hostile
 *  endpoint cannot make them buffer without bound).  Every frame the daemon
 *  sends is within it: payloads are at most SSMD_MAX_PAYLOAD_BYTES (readers
 *  reject more), topic and header frames are under 100 bytes, JSON replies
 *  and state snapshots a few megabytes at most. */
#define SSMD_CLIENT_MAX_FRAME_BYTES ((int64_t)SSMD_MAX_PAYLOAD_BYTES)
/** Longest stream name (bytes, without terminator). */
#define SSMD_STREAM_NAME_MAX 64u

/** What a message carries. */
typedef enum ssmd_kind {
    SSMD_KIND_AUDIO     = 1, /**< samples {frames, channels} */
    SSMD_KIND_FEATURES  = 2, /**< per-frame features {frames, n} (log-mel, log-power) */
    SSMD_KIND_VAD       = 3, /**< voice-activity probability {frames, 1} */
    SSMD_KIND_MASK      = 4, /**< gain per STFT bin {frames, bins} */
    SSMD_KIND_LOGITS    = 5, /**< next-token logits {frames, vocab} */
    SSMD_KIND_EMBEDDING = 6, /**< final hidden state {frames, d_model} */
    SSMD_KIND_META      = 7, /**< stream description, UTF-8 JSON {1, bytes} */
    SSMD_KIND_EVENT     = 8, /**< event, UTF-8 JSON {1, bytes} */
} ssmd_kind;

/** Element type of the payload. */
typedef enum ssmd_dtype {
    SSMD_DTYPE_F32  = 1, /**< IEEE-754 binary32 */
    SSMD_DTYPE_I16  = 2, /**< signed 16-bit PCM */
    SSMD_DTYPE_U8   = 3, /**< unsigned byte (mu-law codes) */
    SSMD_DTYPE_UTF8 = 4, /**< bytes of UTF-8 text (JSON) */
} ssmd_dtype;

/** Flags (bit set). */
enum {
    SSMD_FLAG_DISCONTINUITY = 1u << 0, /**< frames were dropped before this message */
    SSMD_FLAG_OVERFLOW      = 1u << 1, /**< the capture ring overflowed */
    SSMD_FLAG_CLIPPED       = 1u << 2, /**< some output samples were clipped */
    SSMD_FLAG_END_OF_STREAM = 1u << 3, /**< last message of this topic */
    SSMD_FLAG_STATE_RESET   = 1u << 4, /**< the model state was reset (non-finite or by request) */
    SSMD_FLAG_FOLLOWS       = 1u << 5, /**< ingest, set by a client: it follows its stream to another
                                            member (a cluster-aware client, docs/cluster.md), so the
                                            stream may be handed over to a member that joins */
};

/** Decoded header (host representation). */
typedef struct ssmd_header {
    uint16_t version;
    uint16_t header_bytes;
    uint16_t kind;          /**< ssmd_kind */
    uint16_t dtype;         /**< ssmd_dtype */
    uint32_t flags;         /**< SSMD_FLAG_* */
    uint32_t sample_rate_hz;
    uint32_t rows;
    uint32_t cols;
    uint32_t hop_samples;
    uint64_t seq;
    uint64_t first_sample;
    uint64_t capture_ns;
    uint64_t epoch;
} ssmd_header;

/** Result of ssmd_header_decode (0 ok, negative error). */
typedef enum ssmd_proto_status {
    SSMD_PROTO_OK          = 0,
    SSMD_PROTO_SHORT       = -1, /**< fewer bytes than a version-1 header */
    SSMD_PROTO_BAD_MAGIC   = -2, /**< first 4 bytes are not "SSMD" */
    SSMD_PROTO_BAD_VERSION = -3, /**< version 0 or newer than this reader knows */
    SSMD_PROTO_BAD_LENGTH  = -4, /**< header_bytes < 64 or larger than the frame */
    SSMD_PROTO_BAD_KIND    = -5, /**< kind outside ssmd_kind */
    SSMD_PROTO_BAD_DTYPE   = -6, /**< dtype outside ssmd_dtype */
    SSMD_PROTO_BAD_SIZE    = -7, /**< rows × cols × element size overflows, exceeds the
                                      limit, or differs from the payload length */
    SSMD_PROTO_BAD_TOPIC   = -8, /**< topic is not "<stream>/<kind>/" with a valid name */
} ssmd_proto_status;

/** Static English text for an ssmd_proto_status; never NULL. */
static inline const char *ssmd_proto_strerror(int status)
{
    switch (status) {
    case SSMD_PROTO_OK:          return "ok";
    case SSMD_PROTO_SHORT:       return "header shorter than 64 bytes";
    case SSMD_PROTO_BAD_MAGIC:   return "bad magic (expected \"SSMD\")";
    case SSMD_PROTO_BAD_VERSION: return "unsupported protocol version";
    case SSMD_PROTO_BAD_LENGTH:  return "header length field out of range";
    case SSMD_PROTO_BAD_KIND:    return "unknown message kind";
    case SSMD_PROTO_BAD_DTYPE:   return "unknown payload dtype";
    case SSMD_PROTO_BAD_SIZE:    return "payload size does not match rows x cols x dtype";
    case SSMD_PROTO_BAD_TOPIC:   return "malformed topic";
    default:                     return "unknown protocol status";
    }
}

/** Bytes per element of a dtype, 0 for an unknown dtype. */
static inline size_t ssmd_dtype_bytes(uint16_t dtype)
{
    switch (dtype) {
    case SSMD_DTYPE_F32:  return 4;
    case SSMD_DTYPE_I16:  return 2;
    case SSMD_DTYPE_U8:   return 1;
    case SSMD_DTYPE_UTF8: return 1;
    default:              return 0;
    }
}

static inline void ssmd_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ssmd_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ssmd_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ssmd_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ssmd_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t ssmd_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/** Writes h as a version-1 header into out[64] (version and header_bytes are
 *  written as SSMD_VERSION / SSMD_HEADER_BYTES whatever h holds).  Returns
 *  SSMD_HEADER_BYTES.  Real-time safe. */
static inline size_t ssmd_header_encode(uint8_t out[SSMD_HEADER_BYTES], const ssmd_header *h)
{
    memcpy(out, SSMD_MAGIC, 4);
    ssmd_put_u16(out + 4, SSMD_VERSION);
    ssmd_put_u16(out + 6, SSMD_HEADER_BYTES);
    ssmd_put_u16(out + 8, h->kind);
    ssmd_put_u16(out + 10, h->dtype);
    ssmd_put_u32(out + 12, h->flags);
    ssmd_put_u32(out + 16, h->sample_rate_hz);
    ssmd_put_u32(out + 20, h->rows);
    ssmd_put_u32(out + 24, h->cols);
    ssmd_put_u32(out + 28, h->hop_samples);
    ssmd_put_u64(out + 32, h->seq);
    ssmd_put_u64(out + 40, h->first_sample);
    ssmd_put_u64(out + 48, h->capture_ns);
    ssmd_put_u64(out + 56, h->epoch);
    return SSMD_HEADER_BYTES;
}

/** Parses a header frame of len bytes into *h and checks it against the
 *  payload frame length.  Unknown trailing header bytes (header_bytes > 64,
 *  from a newer writer) are skipped.  max_payload_bytes bounds rows × cols ×
 *  element size (0 means SSMD_MAX_PAYLOAD_BYTES).  Returns SSMD_PROTO_OK or a
 *  negative ssmd_proto_status; *h is filled as far as parsing got.  Never reads
 *  outside buf[0, len).  Real-time safe. */
static inline int ssmd_header_decode(const uint8_t *buf, size_t len, size_t payload_len,
                                     size_t max_payload_bytes, ssmd_header *h)
{
    memset(h, 0, sizeof *h);
    if (!buf || len < SSMD_HEADER_BYTES) return SSMD_PROTO_SHORT;
    if (memcmp(buf, SSMD_MAGIC, 4) != 0) return SSMD_PROTO_BAD_MAGIC;
    h->version = ssmd_get_u16(buf + 4);
    h->header_bytes = ssmd_get_u16(buf + 6);
    if (h->version == 0 || h->version > SSMD_VERSION) return SSMD_PROTO_BAD_VERSION;
    if (h->header_bytes < SSMD_HEADER_BYTES || h->header_bytes > len) return SSMD_PROTO_BAD_LENGTH;
    h->kind = ssmd_get_u16(buf + 8);
    h->dtype = ssmd_get_u16(buf + 10);
    h->flags = ssmd_get_u32(buf + 12);
    h->sample_rate_hz = ssmd_get_u32(buf + 16);
    h->rows = ssmd_get_u32(buf + 20);
    h->cols = ssmd_get_u32(buf + 24);
    h->hop_samples = ssmd_get_u32(buf + 28);
    h->seq = ssmd_get_u64(buf + 32);
    h->first_sample = ssmd_get_u64(buf + 40);
    h->capture_ns = ssmd_get_u64(buf + 48);
    h->epoch = ssmd_get_u64(buf + 56);
    if (h->kind < SSMD_KIND_AUDIO || h->kind > SSMD_KIND_EVENT) return SSMD_PROTO_BAD_KIND;
    size_t esize = ssmd_dtype_bytes(h->dtype);
    if (esize == 0) return SSMD_PROTO_BAD_DTYPE;
    if (max_payload_bytes == 0) max_payload_bytes = SSMD_MAX_PAYLOAD_BYTES;
    /* rows and cols are < 2^32 each, so the product fits in 64 bits; the
     * element size (≤ 4) can then overflow only past 2^64 / 4: check it. */
    uint64_t n = (uint64_t)h->rows * (uint64_t)h->cols;
    if (n > UINT64_MAX / esize) return SSMD_PROTO_BAD_SIZE;
    uint64_t bytes = n * esize;
    if (bytes > max_payload_bytes || bytes != (uint64_t)payload_len) return SSMD_PROTO_BAD_SIZE;
    return SSMD_PROTO_OK;
}

/** Checks a stream name: 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'.
 *  Returns 1 when valid, 0 otherwise. */
static inline int ssmd_stream_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > SSMD_STREAM_NAME_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok) return 0;
    }
    return 1;
}

/** Topic word of a kind ("audio", "features", "vad", "mask", "logits",
 *  "embedding", "meta", "event"), NULL for an unknown kind. */
static inline const char *ssmd_kind_name(uint16_t kind)
{
    static const char *const names[] = { NULL, "audio", "features", "vad", "mask",
                                         "logits", "embedding", "meta", "event" };
    return kind >= 1 && kind <= 8 ? names[kind] : NULL;
}

/** Formats the topic "<stream>/<kind>/" into out (cap bytes, NUL-terminated).
 *  Returns its length, or SSMD_PROTO_BAD_TOPIC for an invalid name or kind,
 *  or when it does not fit. */
static inline int ssmd_topic_format(char *out, size_t cap, const char *stream, uint16_t kind)
{
    const char *k = ssmd_kind_name(kind);
    size_t ls = stream ? strlen(stream) : 0;
    if (!k || !ssmd_stream_name_valid(stream, ls)) return SSMD_PROTO_BAD_TOPIC;
    size_t lk = strlen(k);
    if (ls + lk + 3 > cap) return SSMD_PROTO_BAD_TOPIC;
    memcpy(out, stream, ls);
    out[ls] = '/';
    memcpy(out + ls + 1, k, lk);
    out[ls + 1 + lk] = '/';
    out[ls + 2 + lk] = '\0';
    return (int)(ls + 2 + lk);
}

/** Splits a topic frame of len bytes "<stream>/<kind>/" or
 *  "<stream>/<kind>/<anything>/" (no NUL needed) into the stream name (copied
 *  into stream[SSMD_STREAM_NAME_MAX + 1]) and the kind.
 *  Returns SSMD_PROTO_OK or SSMD_PROTO_BAD_TOPIC. */
static inline int ssmd_topic_parse(const char *topic, size_t len,
                                   char stream[SSMD_STREAM_NAME_MAX + 1], uint16_t *kind)
{
    if (!topic || len < 4 || topic[len - 1] != '/') return SSMD_PROTO_BAD_TOPIC;
    const char *slash = memchr(topic, '/', len);
    size_t ls = (size_t)(slash - topic);
    if (!ssmd_stream_name_valid(topic, ls)) return SSMD_PROTO_BAD_TOPIC;
    const char *k0 = slash + 1;
    const char *k1 = memchr(k0, '/', len - ls - 1); /* found: topic ends with '/' */
    size_t lk = (size_t)(k1 - k0);
    for (uint16_t k = 1; k <= 8; k++) {
        const char *name = ssmd_kind_name(k);
        if (strlen(name) == lk && memcmp(name, k0, lk) == 0) {
            memcpy(stream, topic, ls);
            stream[ls] = '\0';
            *kind = k;
            return SSMD_PROTO_OK;
        }
    }
    return SSMD_PROTO_BAD_TOPIC;
}

#ifdef __cplusplus
}
#endif
#endif /* SSMD_PROTOCOL_H */
